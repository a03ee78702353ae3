//! Single-use signing challenges, shared by the RA console's sign-in and the phone's device
//! token: issued with an audit event, consumed by one conditional update.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_proto::ChallengeResponse;
use vsc_proto::errors as code;
use vsc_store::Conn;
use vsc_store::Tx;
use vsc_store::repo::{self, ChallengeUse};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// How long a challenge stays valid.
pub const TTL_SECONDS: i64 = 120;

/// Issues a challenge for `subject` (a UID or device id) inside `tx` and audits it as `action`.
pub async fn issue(
    state: &AppState,
    tx: &mut Tx,
    ctx: &AuditContext,
    purpose: &str,
    subject: &str,
    action: &str,
) -> ApiResult<ChallengeResponse> {
    let id = state.new_id()?;
    let nonce = B64.encode(state.random::<32>()?);
    let now = state.now();
    let expires_at = now + time::Duration::seconds(TTL_SECONDS);
    repo::insert_challenge(
        tx,
        &id,
        purpose,
        subject,
        &nonce,
        now.unix_timestamp(),
        expires_at.unix_timestamp(),
    )
    .await?;
    let event = ctx.event(action, subject, "", serde_json::json!({"challenge_id": id}));
    state.append_audit(tx, &event, state.now_ms()).await?;
    Ok(ChallengeResponse {
        challenge_id: id,
        nonce,
        expires_at,
    })
}

/// Consumes a challenge of `purpose` for `subject`; returns its nonce, or says why not.
pub async fn consume(
    conn: &mut Conn,
    id: &str,
    purpose: &str,
    subject: &str,
    now: i64,
) -> ApiResult<String> {
    match repo::consume_challenge(conn, id, purpose, subject, now).await? {
        ChallengeUse::Consumed(nonce) => Ok(nonce),
        ChallengeUse::Unknown => Err(ApiError::unauthorized(
            code::CHALLENGE_UNKNOWN,
            "no such challenge for this sign-in; ask for a new one",
        )),
        ChallengeUse::Used => Err(ApiError::unauthorized(
            code::CHALLENGE_USED,
            "this challenge was already used; ask for a new one",
        )),
        ChallengeUse::Expired => Err(ApiError::unauthorized(
            code::CHALLENGE_EXPIRED,
            "the challenge expired; ask for a new one",
        )),
    }
}

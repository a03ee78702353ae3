//! One-time codes (card activations and unlock codes): issuing them, and redeeming them with
//! every check an attacker might probe — unknown, used, expired, too many wrong guesses — each
//! refused with its own error, and each wrong guess counted in the database.

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use vsc_core::ActivationCode;
use vsc_proto::errors as code;
use vsc_proto::{ActivationLink, LinkKind, OneTimeCode};
use vsc_store::repo::{self, CodeRow};
use vsc_store::{NewEvent, Outcome, Tx};

use crate::error::ApiError;
use crate::state::{AppState, AuditContext};

/// Wrong guesses allowed against one code before it is void.
pub const MAX_WRONG_GUESSES: i64 = 5;

/// Which kind of code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// Redeemed by a phone to enrol.
    Activation,
    /// Redeemed by an enrolled phone to set a new passcode.
    Unlock,
}

impl CodeKind {
    fn as_str(self) -> &'static str {
        match self {
            CodeKind::Activation => "activation",
            CodeKind::Unlock => "unlock",
        }
    }
    fn link(self) -> LinkKind {
        match self {
            CodeKind::Activation => LinkKind::Activate,
            CodeKind::Unlock => LinkKind::Unlock,
        }
    }
    fn errors(self) -> [&'static str; 6] {
        match self {
            CodeKind::Activation => [
                code::ACTIVATION_MALFORMED,
                code::ACTIVATION_UNKNOWN,
                code::ACTIVATION_USED,
                code::ACTIVATION_EXPIRED,
                code::ACTIVATION_LOCKED,
                code::ACTIVATION_WRONG_CODE,
            ],
            CodeKind::Unlock => [
                code::UNLOCK_CODE_MALFORMED,
                code::UNLOCK_CODE_UNKNOWN,
                code::UNLOCK_CODE_USED,
                code::UNLOCK_CODE_EXPIRED,
                code::UNLOCK_CODE_LOCKED,
                code::UNLOCK_CODE_WRONG,
            ],
        }
    }
}

fn hash_secret(secret: &str) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"vsc-one-time-code/v1\n");
    ctx.update(secret.as_bytes());
    ctx.finish().as_ref().to_vec()
}

/// A freshly issued code, to hand to the person once.
#[derive(Debug)]
pub struct IssuedCode {
    /// The code.
    pub code: ActivationCode,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

impl IssuedCode {
    /// The code as the API returns it.
    pub fn to_proto(&self, state: &AppState, kind: CodeKind) -> OneTimeCode {
        let fp = state.ca().root_fingerprint();
        let display = self.code.display();
        OneTimeCode {
            code: display.to_string(),
            url: ActivationLink::build(kind.link(), state.public_url(), &display, &fp.to_hex()),
            ca_fingerprint: fp.to_colon_hex(),
            expires_at: self.expires_at,
        }
    }
}

/// Issues a code for `card_id` inside the caller's transaction, voiding earlier unused codes of
/// the same kind for that card.
pub async fn issue(
    state: &AppState,
    tx: &mut Tx,
    kind: CodeKind,
    card_id: &str,
    created_by: &str,
    ttl: time::Duration,
) -> Result<IssuedCode, ApiError> {
    let now = state.now();
    repo::void_codes(tx, card_id, kind.as_str(), now.unix_timestamp()).await?;
    let code = ActivationCode::from_random(&state.random::<24>()?);
    let expires_at = now + ttl;
    let row = CodeRow {
        id: code.id().to_owned(),
        kind: kind.as_str().to_owned(),
        card_id: card_id.to_owned(),
        secret_hash: hash_secret(code.secret()),
        created_by: created_by.to_owned(),
        expires_at: expires_at.unix_timestamp(),
        used_at: None,
        failed_attempts: 0,
    };
    repo::insert_code(tx, &row, now.unix_timestamp()).await?;
    Ok(IssuedCode { code, expires_at })
}

/// Redeems a typed code. On success the code is consumed inside the returned transaction: the
/// caller finishes its work in it and commits, or drops it and the code stays unused.
///
/// `subject` is set to the code's card as soon as the code is found, so that a refusal (used,
/// expired, locked) is audited against the card it was for.
pub async fn redeem(
    state: &AppState,
    ctx: &AuditContext,
    kind: CodeKind,
    typed: &str,
    subject: &mut String,
) -> Result<(Tx, CodeRow), ApiError> {
    let [malformed, unknown, used, expired, locked, wrong] = kind.errors();
    let what = kind.as_str();
    let code = ActivationCode::parse(typed)
        .map_err(|e| ApiError::bad_request(malformed, e.to_string()))?;
    let now = state.now_unix();
    if !state.throttle().allowed(&ctx.source, now).await {
        return Err(ApiError::too_many(
            code::TOO_MANY_ATTEMPTS,
            "too many wrong codes from this address; wait 15 minutes and try again",
        ));
    }
    let mut tx = state.write().await?;
    let row = match repo::code(&mut tx, code.id()).await? {
        Some(row) if row.kind == what => row,
        _ => {
            state.throttle().record_failure(&ctx.source, now).await;
            return Err(ApiError::not_found(
                unknown,
                format!("no {what} has this code: check it against what your RA gave you"),
            ));
        }
    };
    subject.clone_from(&row.card_id);
    if row.used_at.is_some() {
        return Err(ApiError::gone(
            used,
            format!("this {what} code has already been used; ask your RA for a new one"),
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::gone(
            expired,
            format!("this {what} code has expired; ask your RA for a new one"),
        ));
    }
    if row.failed_attempts >= MAX_WRONG_GUESSES {
        return Err(ApiError::too_many(
            locked,
            format!(
                "this {what} code was typed wrongly too many times and no longer works; ask your RA for a new one"
            ),
        ));
    }
    let matches: bool = hash_secret(code.secret()).ct_eq(&row.secret_hash).into();
    if !matches {
        // The wrong guess must count even though the request fails: commit the counter and its
        // audit event, and only then refuse.
        let failures = repo::record_code_failure(&mut tx, &row.id).await?;
        let left = (MAX_WRONG_GUESSES - failures).max(0);
        let err = ApiError::unauthorized(
            wrong,
            format!(
                "this {what} code is not right: check it and type it again ({left} tries left)"
            ),
        );
        let event = NewEvent {
            actor: ctx.actor.clone(),
            action: format!("{what}.redeem"),
            subject: row.card_id.clone(),
            organisation: String::new(),
            source: ctx.source.to_string(),
            outcome: Outcome::Failure,
            detail: serde_json::json!({"error": wrong, "code_id": row.id, "failed_attempts": failures}),
        };
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
        state.throttle().record_failure(&ctx.source, now).await;
        return Err(err.audited());
    }
    if !repo::consume_code(&mut tx, &row.id, now, MAX_WRONG_GUESSES).await? {
        return Err(ApiError::gone(
            used,
            format!("this {what} code has already been used"),
        ));
    }
    Ok((tx, row))
}

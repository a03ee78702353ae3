//! The virtual PIV card's server side: what the agent needs to present the card, the card PIN
//! (set on the phone, checked here, never held in clear, three wrong tries lock the card until
//! an RA unlock), and its private-key operations, which go to the phone as signing requests of
//! kind `card` and are collected through `GET /api/v1/signing/requests/{id}`.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/card` | agent (session ticket + agent key) | certificates, holder, PIN state of the session's card |
//! | `POST /api/v1/card/pin/verify` | agent (session ticket + agent key) | check a PIN typed at the workstation |
//! | `POST /api/v1/card/operations` | agent (session ticket + agent key) | a GENERAL AUTHENTICATE for slot 9A or 9C, to be approved on the phone (after the PIN was verified in this session) |
//!
//! The phone sets the PIN with `POST /api/v1/device/card-pin`, in [`super::device`].

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_core::CardState;
use vsc_proto::card::{
    CardInfo, CardOperation, CardPinResult, PIN_TRIES, VerifyCardPin, pin_is_well_formed,
};
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::signing::{SigningItem, SigningKind, SigningRequestCreated};
use vsc_store::repo;
use vsc_store::signing::{self as db, SigningRequestRow};
use zeroize::Zeroizing;

use super::ApiJson;
use super::session::{AgentSession, TicketHolder};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::CARD, get(card_info))
        .route(routes::CARD_PIN_VERIFY, post(verify_pin))
        .route(routes::CARD_OPERATIONS, post(operation))
}

/// Argon2id for PINs: a PIN has few digits, so the hash is what makes a stolen database
/// expensive to search; 19 MiB and 2 passes (OWASP's minimum) keep a check near 20 ms.
pub(super) fn pin_hasher() -> ApiResult<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(ApiError::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The session's card, which must be active with its keys on the phone.
async fn session_card(state: &AppState, holder: &TicketHolder) -> ApiResult<repo::CardRow> {
    let mut conn = state.store().pool().acquire().await?;
    super::signing::phone_card(
        &mut conn,
        &holder.session,
        "the virtual smartcard needs keys held on the phone",
    )
    .await
}

fn tries_left(failures: i64) -> u8 {
    u8::try_from((i64::from(PIN_TRIES) - failures).max(0)).unwrap_or(0)
}

async fn card_info(
    State(state): State<AppState>,
    AgentSession(holder): AgentSession,
) -> ApiResult<Json<CardInfo>> {
    let card = session_card(&state, &holder).await?;
    let mut conn = state.store().pool().acquire().await?;
    let now = state.now_unix();
    let mut auth = None;
    let mut signing = None;
    for cert in repo::certificates_of(&mut conn, &card.id).await? {
        if cert.revoked_at.is_some() || cert.not_before > now || now >= cert.not_after {
            continue;
        }
        match cert.usage.as_str() {
            "piv-authentication" => auth = Some(cert.der),
            "piv-signature" => signing = Some(cert.der),
            _ => {}
        }
    }
    let (Some(auth), Some(signing)) = (auth, signing) else {
        return Err(ApiError::forbidden(
            code::NO_SMARTCARD_KEYS,
            "this card has no valid smartcard (PIV) certificates: it was enrolled by an app without the virtual smartcard, or they are revoked; ask your RA for a new card",
        ));
    };
    let person = repo::person(&mut conn, &card.uid)
        .await?
        .ok_or_else(|| ApiError::internal("card without person"))?;
    let organisation = repo::organisation(&mut conn, &card.issued_by)
        .await?
        .map_or_else(|| card.issued_by.clone(), |o| o.name);
    let (pin_hash, failures) = db::card_pin(&mut conn, &card.id)
        .await?
        .unwrap_or((None, 0));
    Ok(Json(CardInfo {
        card_id: card.id,
        uid: card.uid,
        holder_name: format!("{} {}", person.given_name, person.family_name),
        organisation,
        auth_certificate: B64.encode(auth),
        signing_certificate: B64.encode(signing),
        pin_set: pin_hash.is_some(),
        pin_tries_left: tries_left(failures),
    }))
}

async fn verify_pin(
    State(state): State<AppState>,
    AgentSession(holder): AgentSession,
    ApiJson(req): ApiJson<VerifyCardPin>,
) -> ApiResult<Json<CardPinResult>> {
    let pin = Zeroizing::new(req.pin);
    match verify_pin_inner(&state, &holder, &pin).await {
        Ok(r) => Ok(Json(r)),
        Err(err) => {
            state
                .audit_failure(&holder.ctx, "card.pin", &holder.session.card_id, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn verify_pin_inner(
    state: &AppState,
    holder: &TicketHolder,
    pin: &str,
) -> ApiResult<CardPinResult> {
    let card = session_card(state, holder).await?;
    // The whole check runs in one write transaction: the try is counted against the state it
    // was checked in, so concurrent guesses cannot outrun the three-try limit (a right PIN
    // landing between wrong ones cannot reset a count that has already locked the card). The
    // hash comparison (about 20 ms) holds the writer meanwhile; PIN checks are rare.
    let mut tx = state.write().await?;
    let current = repo::card(&mut tx, &card.id)
        .await?
        .ok_or_else(|| ApiError::internal("card vanished"))?;
    let (hash, failures) = db::card_pin(&mut tx, &card.id).await?.unwrap_or((None, 0));
    if current.state != CardState::Active || failures >= i64::from(PIN_TRIES) {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            format!(
                "the card is {}; an RA must unlock it before it can be used",
                current.state
            ),
        ));
    }
    let hash = hash.ok_or_else(|| {
        ApiError::conflict(
            code::PIN_NOT_SET,
            "no card PIN has been set; set one on the phone (vsc authenticator card-pin)",
        )
    })?;
    // A malformed PIN is a wrong PIN: the card counts every try, whatever it looks like.
    let correct = pin_is_well_formed(pin) && {
        let pin = Zeroizing::new(pin.to_owned());
        tokio::task::spawn_blocking(move || -> ApiResult<bool> {
            let parsed = PasswordHash::new(&hash).map_err(ApiError::internal)?;
            Ok(pin_hasher()?
                .verify_password(pin.as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .map_err(ApiError::internal)??
    };
    let now = state.now_unix();
    let result = if correct {
        db::reset_pin_failures(&mut tx, &card.id).await?;
        db::set_session_pin_verified(&mut tx, &holder.session.id, Some(now)).await?;
        state
            .append_audit(
                &mut tx,
                &holder.ctx.event(
                    "card.pin.verified",
                    &card.id,
                    &card.issued_by,
                    serde_json::json!({"uid": card.uid, "session_id": holder.session.id}),
                ),
                state.now_ms(),
            )
            .await?;
        CardPinResult {
            correct: true,
            tries_left: PIN_TRIES,
            blocked: false,
        }
    } else {
        let failures = db::record_pin_failure(&mut tx, &card.id).await?;
        db::set_session_pin_verified(&mut tx, &holder.session.id, None).await?;
        let blocked = failures >= i64::from(PIN_TRIES)
            && repo::transition_card(
                &mut tx,
                &card.id,
                &[CardState::Active],
                CardState::Locked,
                now,
            )
            .await?;
        if blocked {
            vsc_store::signin::end_sessions_of_card(&mut tx, &card.id, now, "card-locked").await?;
        }
        let mut event = holder.ctx.event(
            "card.pin.failed",
            &card.id,
            &card.issued_by,
            serde_json::json!({"uid": card.uid, "consecutive_failures": failures, "card_locked": blocked}),
        );
        event.outcome = vsc_store::Outcome::Failure;
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        if blocked {
            state
                .append_audit(
                    &mut tx,
                    &holder.ctx.event(
                        "card.locked",
                        &card.id,
                        &card.issued_by,
                        serde_json::json!({"uid": card.uid, "reason": "three wrong card PINs"}),
                    ),
                    state.now_ms(),
                )
                .await?;
        }
        CardPinResult {
            correct: false,
            tries_left: tries_left(failures),
            blocked: failures >= i64::from(PIN_TRIES),
        }
    };
    tx.commit().await?;
    Ok(result)
}

/// A slot's name, purpose and expected input length.
fn slot_facts(slot: &str) -> ApiResult<(&'static str, &'static str, usize)> {
    match slot.to_ascii_lowercase().as_str() {
        "9a" => Ok(("9a", "PIV Authentication (9A): sign-in, ssh, TLS", 32)),
        "9c" => Ok(("9c", "Digital Signature (9C): a signature", 32)),
        other => Err(ApiError::bad_request(
            code::INVALID_SLOT,
            format!("'{other}' is not a card slot: use 9a or 9c"),
        )),
    }
}

async fn operation(
    State(state): State<AppState>,
    AgentSession(holder): AgentSession,
    ApiJson(req): ApiJson<CardOperation>,
) -> ApiResult<Json<SigningRequestCreated>> {
    match operation_inner(&state, &holder, &req).await {
        Ok(created) => Ok(Json(created)),
        Err(err) => {
            state
                .audit_failure(
                    &holder.ctx,
                    "card.operation",
                    &holder.session.card_id,
                    "",
                    &err,
                )
                .await;
            Err(err)
        }
    }
}

async fn operation_inner(
    state: &AppState,
    holder: &TicketHolder,
    req: &CardOperation,
) -> ApiResult<SigningRequestCreated> {
    let (slot, purpose, input_len) = slot_facts(&req.slot)?;
    let input = B64
        .decode(req.input.trim())
        .map_err(|_| ApiError::bad_request(code::INPUT_MALFORMED, "the input is not base64"))?;
    if input.len() != input_len {
        return Err(ApiError::bad_request(
            code::INPUT_LENGTH,
            format!("slot {slot} takes {input_len} bytes, not {}", input.len()),
        ));
    }
    let card = session_card(state, holder).await?;
    let session = &holder.session;
    let mut conn = state.store().pool().acquire().await?;
    // The card asks for its PIN before a private-key operation; the server holds the session
    // to the same rule, so software holding only the ticket cannot skip the PIN.
    if !db::session_pin_verified(&mut conn, &session.id).await? {
        return Err(ApiError::forbidden(
            code::CARD_PIN_NOT_VERIFIED,
            "verify the card PIN in this session before using the card's keys",
        ));
    }
    let workstation = super::signing::session_workstation(&mut conn, session).await?;
    drop(conn);
    let reason: String = req
        .purpose
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    let description = if reason.is_empty() {
        purpose.to_owned()
    } else {
        format!("{purpose}; the workstation says: {reason}")
    };
    let item = SigningItem {
        id: "op".into(),
        fragments: None,
        payload: Some(B64.encode(&input)),
        description: Some(description),
        slot: Some(slot.into()),
    };
    let input_sha256 = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &input,
    ));
    let stored = [super::signing::StoredItem {
        item,
        signed_info: String::new(),
        digest: Some(input_sha256.clone()),
        prescription_id: None,
    }];
    let id = state.new_id()?;
    let now = state.now_unix();
    let expires_at = now + state.config().signin.request_ttl.whole_seconds();
    let row = SigningRequestRow {
        id: id.clone(),
        card_id: card.id.clone(),
        uid: session.uid.clone(),
        session_id: session.id.clone(),
        kind: SigningKind::Card.as_str().into(),
        algorithm: "ES256".into(),
        items: serde_json::to_string(&stored).map_err(ApiError::internal)?,
        workstation,
        role: String::new(),
        created_at: now,
        expires_at,
        state: vsc_core::SigningRequestState::Pending,
        decided_at: None,
        outcome: None,
    };
    let event = holder.ctx.event(
        "card.operation.requested",
        &card.id,
        &card.issued_by,
        serde_json::json!({"request_id": id, "slot": slot, "session_id": session.id, "input_sha256": input_sha256}),
    );
    super::signing::open_request(state, &row, &event).await
}

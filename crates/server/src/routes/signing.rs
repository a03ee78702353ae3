//! Signing prescriptions with the card's signing key, which never leaves the phone.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/signing/requests` | agent (session ticket + agent key) | open a request: a batch of prescriptions (their fragments) or of prepared SignedInfo |
//! | `GET /api/v1/signing/requests/{id}?wait=S` | agent (same session's ticket + agent key) | the outcome: verified signatures, the certificate, refused items |
//! | `GET /api/v1/device/signing` | phone (device token) | signing requests waiting for it, in full (the event stream only names them: `signing-request`) |
//! | `POST /api/v1/device/signing/{id}/complete` | phone (device token) | one signature per item (and items it refused) |
//! | `POST /api/v1/device/signing/{id}/decline` | phone (device token) | `declined`, or `not-me` ("I didn't do this": the asking session ends, alert) |
//!
//! Policy, checked when the request opens: the session is live and its role holds a
//! prescribing activity; the card is active and its keys are held on the phone (a card with
//! server-held keys can sign in, never sign a prescription); its signing certificate is valid
//! and unrevoked. For prescriptions the server computes each digest and SignedInfo itself (the
//! phone does the same independently), so every returned signature is verified here against
//! the signing certificate before anyone collects it, and every item is audited with its
//! prescription id, digest, signer and outcome in the transaction that completes the request.

use std::time::Duration as StdDuration;
use vsc_proto::errors as code;
use vsc_proto::routes;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tower_http::limit::RequestBodyLimitLayer;
use vsc_core::{CardState, KeyCustody, SigningRequestState};
use vsc_eps::sign::SignatureAlgorithm;
use vsc_proto::signin::DeclineAuthRequest;
use vsc_proto::signing::{
    CompleteSigningRequest, CreateSigningRequest, FailedSignature, ItemSignature,
    PendingSigningRequest, SigningItem, SigningKind, SigningOutcome, SigningRequestCreated,
};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signing::{self as db, SigningRequestRow};

use super::ApiJson;
use super::session::{AgentSession, TicketHolder};
use super::signin::DeviceCaller;
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::state::AppState;

/// Largest signing request body: 100 prescriptions' fragments with room to spare.
const MAX_SIGNING_BODY: usize = 16 * 1024 * 1024;
/// Longest a long-poll waits before answering "still pending".
const MAX_WAIT_SECONDS: u64 = 30;
/// Longest item id.
const MAX_ITEM_ID: usize = 64;
/// Largest single item (fragments or SignedInfo), bytes.
const MAX_ITEM_BYTES: usize = 256 * 1024;
/// Pending requests one card may have at once, in each family (prescriptions and prepared
/// signatures; card operations).
const MAX_OPEN_PER_CARD: i64 = 4;

/// The routes (with their own, larger body limit).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::SIGNING_REQUESTS, post(create))
        .route(routes::SIGNING_REQUEST, get(outcome))
        .route(routes::DEVICE_SIGNING, get(device_pending))
        .route(routes::DEVICE_SIGNING_COMPLETE, post(complete))
        .route(routes::DEVICE_SIGNING_DECLINE, post(decline))
        .layer(DefaultBodyLimit::max(MAX_SIGNING_BODY))
        .layer(RequestBodyLimitLayer::new(MAX_SIGNING_BODY))
}

/// An item as the server keeps it: what was asked, and what the signature must cover.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredItem {
    /// What the phone receives.
    pub(crate) item: SigningItem,
    /// The canonical SignedInfo the signature must cover (empty for a card operation, whose
    /// input is the item's payload).
    pub(crate) signed_info: String,
    /// Hex digest: of the canonical fragments (prescriptions), of the input (card operations).
    #[serde(default)]
    pub(crate) digest: Option<String>,
    /// The prescription's id from the fragments (prescriptions only).
    #[serde(default)]
    pub(crate) prescription_id: Option<String>,
}

/// The session's card, which must be active and hold its keys on the phone; `custody_refusal`
/// says why server-held keys will not do for this use.
pub(crate) async fn phone_card(
    conn: &mut Conn,
    session: &vsc_store::signin::SessionRow,
    custody_refusal: &str,
) -> ApiResult<repo::CardRow> {
    let card = repo::card(conn, &session.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("session without card"))?;
    if card.state != CardState::Active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            format!(
                "the card is {}; an RA must unlock it before it can be used",
                card.state
            ),
        ));
    }
    if card.custody != KeyCustody::DeviceHeld.as_str() {
        return Err(ApiError::forbidden(
            code::KEYS_NOT_ON_PHONE,
            custody_refusal.to_owned(),
        ));
    }
    Ok(card)
}

#[derive(Debug, Deserialize)]
struct Wait {
    #[serde(default)]
    wait: u64,
}

fn parse_algorithm(code: &str) -> ApiResult<SignatureAlgorithm> {
    match code {
        "RS1" | "RS256" => code.parse().map_err(|_| {
            ApiError::bad_request(code::INVALID_ALGORITHM, "use RS1 (rsa-sha1) or RS256")
        }),
        other => Err(ApiError::bad_request(
            code::INVALID_ALGORITHM,
            format!("'{other}' is not a signing algorithm: use RS1 (rsa-sha1) or RS256"),
        )),
    }
}

/// Checks the items' shape and computes what each signature must cover.
fn prepare_items(
    kind: SigningKind,
    algorithm: SignatureAlgorithm,
    items: &[SigningItem],
    max_batch: usize,
) -> ApiResult<Vec<StoredItem>> {
    if items.is_empty() || items.len() > max_batch {
        return Err(ApiError::bad_request(
            code::BATCH_SIZE,
            format!(
                "a signing request holds 1 to {max_batch} items; this one has {}",
                items.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let id_ok = !item.id.is_empty()
            && item.id.len() <= MAX_ITEM_ID
            && item.id.chars().all(|c| c.is_ascii_graphic());
        if !id_ok {
            return Err(ApiError::bad_request(
                code::INVALID_ITEM_ID,
                format!("item ids are 1 to {MAX_ITEM_ID} printable ASCII characters"),
            ));
        }
        if !seen.insert(item.id.as_str()) {
            return Err(ApiError::bad_request(
                code::DUPLICATE_ITEM_ID,
                format!("the item id '{}' appears twice", item.id),
            ));
        }
        let stored = match kind {
            SigningKind::Prescriptions => {
                let fragments = item.fragments.as_deref().ok_or_else(|| {
                    ApiError::bad_request(
                        code::FRAGMENTS_MISSING,
                        format!("item '{}' has no fragments", item.id),
                    )
                })?;
                if fragments.len() > MAX_ITEM_BYTES {
                    return Err(ApiError::bad_request(
                        code::ITEM_TOO_LARGE,
                        format!("item '{}' is larger than {MAX_ITEM_BYTES} bytes", item.id),
                    ));
                }
                let bad = |e: &dyn std::fmt::Display| {
                    ApiError::bad_request(
                        code::FRAGMENTS_INVALID,
                        format!("item '{}': {e}", item.id),
                    )
                };
                let (digest, signed_info) =
                    vsc_eps::sign::prepare_from_fragments(fragments, algorithm)
                        .map_err(|e| bad(&e))?;
                let summary =
                    vsc_eps::summary::summarize_fragments(fragments).map_err(|e| bad(&e))?;
                StoredItem {
                    item: SigningItem {
                        id: item.id.clone(),
                        fragments: Some(fragments.to_owned()),
                        payload: None,
                        description: None,
                        slot: None,
                    },
                    signed_info,
                    digest: Some(hex::encode(digest)),
                    prescription_id: Some(summary.prescription_id),
                }
            }
            SigningKind::Card => {
                return Err(ApiError::bad_request(
                    code::INVALID_KIND,
                    "card operations go to POST /api/v1/card/operations",
                ));
            }
            SigningKind::Prepared => {
                let payload = item.payload.as_deref().ok_or_else(|| {
                    ApiError::bad_request(
                        code::PAYLOAD_MISSING,
                        format!("item '{}' has no payload", item.id),
                    )
                })?;
                let bytes = B64.decode(payload.trim()).map_err(|_| {
                    ApiError::bad_request(
                        code::PAYLOAD_INVALID,
                        format!("item '{}': the payload is not base64", item.id),
                    )
                })?;
                if bytes.len() > MAX_ITEM_BYTES {
                    return Err(ApiError::bad_request(
                        code::ITEM_TOO_LARGE,
                        format!("item '{}' is larger than {MAX_ITEM_BYTES} bytes", item.id),
                    ));
                }
                let signed_info = String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request(
                        code::PAYLOAD_INVALID,
                        format!("item '{}': the payload is not UTF-8 XML", item.id),
                    )
                })?;
                // The phone signs it blind, so it must not be able to sign anything else.
                vsc_eps::sign::check_signed_info(&signed_info, algorithm).map_err(|e| {
                    ApiError::bad_request(code::PAYLOAD_INVALID, format!("item '{}': {e}", item.id))
                })?;
                StoredItem {
                    item: SigningItem {
                        id: item.id.clone(),
                        fragments: None,
                        payload: Some(payload.trim().to_owned()),
                        description: item.description.clone(),
                        slot: None,
                    },
                    signed_info,
                    digest: None,
                    prescription_id: None,
                }
            }
        };
        out.push(stored);
    }
    Ok(out)
}

async fn create(
    State(state): State<AppState>,
    AgentSession(holder): AgentSession,
    ApiJson(req): ApiJson<CreateSigningRequest>,
) -> ApiResult<Json<SigningRequestCreated>> {
    match create_inner(&state, &holder, &req).await {
        Ok(created) => Ok(Json(created)),
        Err(err) => {
            state
                .audit_failure(
                    &holder.ctx,
                    "signing.request",
                    &holder.session.uid,
                    "",
                    &err,
                )
                .await;
            Err(err)
        }
    }
}

async fn create_inner(
    state: &AppState,
    holder: &TicketHolder,
    req: &CreateSigningRequest,
) -> ApiResult<SigningRequestCreated> {
    let session = &holder.session;
    let config = &state.config().signing;
    let algorithm = parse_algorithm(&req.algorithm)?;
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let card = phone_card(
        &mut conn,
        session,
        "prescriptions are signed only with keys held on the prescriber's phone; this card's keys are held by the server (authentication only). Ask your RA for a phone-held card",
    )
    .await?;
    let position_id = session.position_id.as_deref().ok_or_else(|| {
        ApiError::forbidden(
            code::NO_ROLE_SELECTED,
            "select a prescribing role for this session first (vsc agent role)",
        )
    })?;
    let positions = repo::positions(&mut conn, &session.uid).await?;
    let position = positions
        .iter()
        .find(|p| p.id == position_id)
        .ok_or_else(|| {
            ApiError::forbidden(
                code::NO_ROLE_SELECTED,
                "the session's role no longer exists; select a prescribing role again",
            )
        })?;
    if !position
        .activities
        .iter()
        .any(|a| config.prescribing_activities.contains(a))
    {
        return Err(ApiError::forbidden(
            code::NOT_A_PRESCRIBING_ROLE,
            format!(
                "the role '{}' at {} does not include prescribing (one of {}); select a prescribing role",
                position.role_name,
                position.ods_code,
                config.prescribing_activities.join(", ")
            ),
        ));
    }
    signing_certificate(&mut conn, &card.id, now).await?;
    // Checked again when the request is stored; here so a caller at the limit costs no XML work.
    if db::count_open_for_card(&mut conn, &card.id, false, now).await? >= MAX_OPEN_PER_CARD {
        return Err(ApiError::too_many(
            code::TOO_MANY_SIGNING_REQUESTS,
            "this card already has signing requests waiting on the phone; answer or let them expire first",
        ));
    }
    let items = prepare_items(req.kind, algorithm, &req.items, config.max_batch)?;
    let workstation = session_workstation(&mut conn, session).await?;
    drop(conn);

    let id = state.new_id()?;
    let expires_at = now + config.request_ttl.whole_seconds();
    let row = SigningRequestRow {
        id: id.clone(),
        card_id: card.id.clone(),
        uid: session.uid.clone(),
        session_id: session.id.clone(),
        kind: req.kind.as_str().into(),
        algorithm: req.algorithm.clone(),
        items: serde_json::to_string(&items).map_err(ApiError::internal)?,
        workstation,
        role: format!(
            "{} ({}) at {}",
            position.role_name, position.role_code, position.ods_code
        ),
        created_at: now,
        expires_at,
        state: SigningRequestState::Pending,
        decided_at: None,
        outcome: None,
    };
    let listed: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::json!({"id": i.item.id, "prescription_id": i.prescription_id, "digest": i.digest}))
        .collect();
    let event = holder.ctx.event(
        "signing.requested",
        &session.uid,
        &position.ods_code,
        serde_json::json!({"request_id": id, "card_id": card.id, "session_id": session.id, "kind": req.kind.as_str(), "algorithm": req.algorithm, "items": listed}),
    );
    open_request(state, &row, &event).await
}

/// The name of the workstation a session signed in from, as its agent reported it.
pub(crate) async fn session_workstation(
    conn: &mut Conn,
    session: &vsc_store::signin::SessionRow,
) -> ApiResult<String> {
    Ok(
        match vsc_store::signin::auth_request(conn, &session.request_id).await? {
            Some(r) => serde_json::from_str::<vsc_proto::signin::AuthContext>(&r.context)
                .map(|c| c.workstation_name)
                .unwrap_or_else(|_| session.workstation_id.clone()),
            None => session.workstation_id.clone(),
        },
    )
}

/// Stores a new signing request (at most [`MAX_OPEN_PER_CARD`] pending per card) with its audit
/// event in one transaction, tells the phone, and answers the agent.
pub(crate) async fn open_request(
    state: &AppState,
    row: &SigningRequestRow,
    event: &vsc_store::NewEvent,
) -> ApiResult<SigningRequestCreated> {
    let mut tx = state.write().await?;
    let cards = row.kind == SigningKind::Card.as_str();
    if db::count_open_for_card(&mut tx, &row.card_id, cards, row.created_at).await?
        >= MAX_OPEN_PER_CARD
    {
        return Err(ApiError::too_many(
            code::TOO_MANY_SIGNING_REQUESTS,
            "this card already has signing requests waiting on the phone; answer or let them expire first",
        ));
    }
    db::insert(&mut tx, row).await?;
    state.append_audit(&mut tx, event, state.now_ms()).await?;
    tx.commit().await?;
    state.hub().publish(Event::SigningOpened {
        card_id: row.card_id.clone(),
        request_id: row.id.clone(),
    });
    Ok(SigningRequestCreated {
        request_id: row.id.clone(),
        expires_at: time::OffsetDateTime::from_unix_timestamp(row.expires_at)
            .map_err(ApiError::internal)?,
    })
}

/// The card's valid, unrevoked signing certificate (DER).
async fn signing_certificate(conn: &mut Conn, card_id: &str, now: i64) -> ApiResult<Vec<u8>> {
    certificate_of(conn, card_id, "signing", now).await
}

/// The card's valid, unrevoked certificate for `usage` (DER).
async fn certificate_of(
    conn: &mut Conn,
    card_id: &str,
    usage: &str,
    now: i64,
) -> ApiResult<Vec<u8>> {
    for cert in repo::certificates_of(conn, card_id).await? {
        if cert.usage == usage
            && cert.revoked_at.is_none()
            && cert.not_before <= now
            && now < cert.not_after
        {
            return Ok(cert.der);
        }
    }
    Err(ApiError::forbidden(
        code::SIGNING_CERTIFICATE_INVALID,
        "the card has no valid, unrevoked signing certificate; ask your RA to renew the card",
    ))
}

fn outcome_of(row: &SigningRequestRow, now: i64) -> ApiResult<SigningOutcome> {
    if let Some(stored) = &row.outcome {
        return serde_json::from_str(stored).map_err(ApiError::internal);
    }
    let state = if row.state == SigningRequestState::Pending && row.expires_at <= now {
        "expired"
    } else {
        row.state.as_str()
    };
    Ok(SigningOutcome {
        state: state.into(),
        signatures: Vec::new(),
        certificate: None,
        failed_signatures: Vec::new(),
    })
}

async fn outcome(
    State(state): State<AppState>,
    AgentSession(holder): AgentSession,
    Path(id): Path<String>,
    Query(wait): Query<Wait>,
) -> ApiResult<Json<SigningOutcome>> {
    let mut events = state.hub().subscribe();
    let load = || async {
        let mut conn = state.store().pool().acquire().await?;
        let row = db::get(&mut conn, &id).await?;
        match row {
            Some(r) if r.session_id == holder.session.id => Ok(r),
            // Another session's request looks exactly like no request.
            _ => Err(ApiError::not_found(
                code::UNKNOWN_SIGNING_REQUEST,
                "no such signing request for this session",
            )),
        }
    };
    let row = match load().await {
        Ok(row) => row,
        Err(err) => {
            state
                .audit_failure(&holder.ctx, "signing.outcome", &id, "", &err)
                .await;
            return Err(err);
        }
    };
    if row.state != SigningRequestState::Pending || wait.wait == 0 {
        return Ok(Json(outcome_of(&row, state.now_unix())?));
    }
    let deadline =
        tokio::time::Instant::now() + StdDuration::from_secs(wait.wait.min(MAX_WAIT_SECONDS));
    let expiry = tokio::time::Instant::now()
        + StdDuration::from_secs(u64::try_from(row.expires_at - state.now_unix()).unwrap_or(0));
    let stopped = state.hub().stopped();
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            () = &mut stopped => break,
            () = tokio::time::sleep_until(expiry.min(deadline)) => break,
            event = events.recv() => event,
        };
        match event {
            Ok(Event::SigningDecided { request_id, .. }) if request_id == id => break,
            Ok(Event::Resync) => break,
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => break,
            Err(RecvError::Closed) => break,
        }
    }
    let row = load().await?;
    Ok(Json(outcome_of(&row, state.now_unix())?))
}

fn to_pending(row: &SigningRequestRow) -> ApiResult<PendingSigningRequest> {
    let items: Vec<StoredItem> = serde_json::from_str(&row.items).map_err(ApiError::internal)?;
    let kind = match row.kind.as_str() {
        "prescriptions" => SigningKind::Prescriptions,
        "prepared" => SigningKind::Prepared,
        "card" => SigningKind::Card,
        other => return Err(ApiError::internal(format!("stored kind {other}"))),
    };
    Ok(PendingSigningRequest {
        request_id: row.id.clone(),
        uid: row.uid.clone(),
        kind,
        algorithm: row.algorithm.clone(),
        workstation: row.workstation.clone(),
        role: row.role.clone(),
        items: items.into_iter().map(|i| i.item).collect(),
        created_at: time::OffsetDateTime::from_unix_timestamp(row.created_at)
            .map_err(ApiError::internal)?,
        expires_at: time::OffsetDateTime::from_unix_timestamp(row.expires_at)
            .map_err(ApiError::internal)?,
    })
}

/// The signing requests waiting for the calling phone.
pub(crate) async fn pending_for_device(
    state: &AppState,
    caller: &DeviceCaller,
) -> ApiResult<Vec<PendingSigningRequest>> {
    let mut conn = state.store().pool().acquire().await?;
    let now = state.now_unix();
    let mut out = Vec::new();
    for card in repo::live_cards_of(&mut conn, &caller.uid).await? {
        if card.device_id.as_deref() != Some(caller.device_id.as_str()) {
            continue;
        }
        for row in db::open_for_card(&mut conn, &card.id, now).await? {
            // One unreadable row must not hide every other request from the phone.
            match to_pending(&row) {
                Ok(p) => out.push(p),
                Err(e) => {
                    tracing::error!(request_id = %row.id, error = %e.message, "unreadable signing request skipped")
                }
            }
        }
    }
    Ok(out)
}

async fn device_pending(
    State(state): State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Json<Vec<PendingSigningRequest>>> {
    Ok(Json(pending_for_device(&state, &caller).await?))
}

/// Loads a request the calling device may answer now, with its card.
async fn request_for_device(
    conn: &mut Conn,
    caller: &DeviceCaller,
    id: &str,
    now: i64,
) -> ApiResult<(SigningRequestRow, repo::CardRow)> {
    let row = db::get(conn, id).await?.ok_or_else(|| {
        ApiError::not_found(code::UNKNOWN_SIGNING_REQUEST, "no such signing request")
    })?;
    let card = repo::card(conn, &row.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("signing request without card"))?;
    if card.device_id.as_deref() != Some(caller.device_id.as_str()) || card.uid != caller.uid {
        return Err(ApiError::forbidden(
            code::REQUEST_NOT_FOR_THIS_DEVICE,
            "this signing request is for a card held on another device",
        ));
    }
    if row.state != SigningRequestState::Pending {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            format!("this signing request is already {}", row.state),
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::gone(
            code::REQUEST_EXPIRED,
            "this signing request has expired; sign again at the workstation",
        ));
    }
    // Nothing is signed for a session that has ended (logout, lock-out, card locked).
    if !db::session_is_live(conn, &row.session_id, now).await? {
        return Err(ApiError::gone(
            code::SESSION_ENDED,
            "the workstation session that asked has ended; nothing was signed",
        ));
    }
    if card.state != CardState::Active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            format!("the card is {}; it cannot sign", card.state),
        ));
    }
    Ok((row, card))
}

/// Whether the phone's result for a card operation is an ECDSA P-256 signature over the
/// digest that verifies with the slot's certificate.
fn card_result_acceptable(item: &SigningItem, certificate_der: &[u8], result: &[u8]) -> bool {
    use aws_lc_rs::digest::{Digest, SHA256};
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use x509_parser::prelude::{FromDer, X509Certificate};
    match item.slot.as_deref() {
        Some("9a" | "9c") => {
            let Some(input) = item.payload.as_deref().and_then(|p| B64.decode(p).ok()) else {
                return false;
            };
            let Ok(digest) = Digest::import_less_safe(&input, &SHA256) else {
                return false;
            };
            let Ok((_, cert)) = X509Certificate::from_der(certificate_der) else {
                return false;
            };
            UnparsedPublicKey::new(
                &ECDSA_P256_SHA256_ASN1,
                &cert.public_key().subject_public_key.data,
            )
            .verify_digest(&digest, result)
            .is_ok()
        }
        _ => false,
    }
}

/// Verifies one RSA PKCS#1 v1.5 signature over `signed_info` with the certificate's key.
fn signature_verifies(
    algorithm: SignatureAlgorithm,
    certificate_der: &[u8],
    signed_info: &[u8],
    signature: &[u8],
) -> bool {
    use aws_lc_rs::signature::{
        RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(certificate_der) else {
        return false;
    };
    let key = &cert.public_key().subject_public_key.data;
    let params = match algorithm {
        SignatureAlgorithm::RsaSha1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        SignatureAlgorithm::RsaSha256 => &RSA_PKCS1_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(params, key)
        .verify(signed_info, signature)
        .is_ok()
}

async fn complete(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CompleteSigningRequest>,
) -> ApiResult<Json<SigningOutcome>> {
    match complete_inner(&state, &caller, &id, &req).await {
        Ok(o) => Ok(Json(o)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "signing.complete", &id, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn complete_inner(
    state: &AppState,
    caller: &DeviceCaller,
    id: &str,
    req: &CompleteSigningRequest,
) -> ApiResult<SigningOutcome> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let (row, card) = request_for_device(&mut conn, caller, id, now).await?;
    let items: Vec<StoredItem> = serde_json::from_str(&row.items).map_err(ApiError::internal)?;
    let card_slot = (row.kind == SigningKind::Card.as_str())
        .then(|| items.first().and_then(|i| i.item.slot.clone()))
        .flatten();
    let certificate = match card_slot.as_deref() {
        Some("9a") => certificate_of(&mut conn, &card.id, "piv-authentication", now).await?,
        Some(_) => certificate_of(&mut conn, &card.id, "piv-signature", now).await?,
        None => signing_certificate(&mut conn, &card.id, now).await?,
    };
    drop(conn);
    let algorithm = match card_slot {
        // A card operation has no XML-DSig algorithm; the check below is per slot.
        Some(_) => SignatureAlgorithm::RsaSha256,
        None => parse_algorithm(&row.algorithm)?,
    };

    let mut signatures = Vec::new();
    let mut failed = Vec::new();
    let mut events = Vec::new();
    let given_by_id: std::collections::HashMap<&str, &ItemSignature> =
        req.signatures.iter().map(|s| (s.id.as_str(), s)).collect();
    let refused_by_id: std::collections::HashMap<&str, &FailedSignature> =
        req.refused.iter().map(|r| (r.id.as_str(), r)).collect();
    for item in &items {
        let id = &item.item.id;
        let given = given_by_id.get(id.as_str()).copied();
        let refused = refused_by_id.get(id.as_str()).copied();
        let verdict = match (given, refused) {
            (Some(sig), None) if card_slot.is_some() => {
                match B64.decode(sig.signature.trim()) {
                    Ok(bytes) if card_result_acceptable(&item.item, &certificate, &bytes) => {
                        Ok(sig.clone())
                    }
                    Ok(_) => Err("the card operation's result does not verify with the card's certificate".to_owned()),
                    Err(_) => Err("the signature is not base64".to_owned()),
                }
            }
            (Some(sig), None) => match B64.decode(sig.signature.trim()) {
                Ok(bytes)
                    if signature_verifies(
                        algorithm,
                        &certificate,
                        item.signed_info.as_bytes(),
                        &bytes,
                    ) =>
                {
                    Ok(sig.clone())
                }
                Ok(_) => Err("the signature does not verify with the signing certificate over the SignedInfo the server computed".to_owned()),
                Err(_) => Err("the signature is not base64".to_owned()),
            },
            (None, Some(r)) => Err(format!("refused on the phone: {}", r.reason)),
            (Some(_), Some(_)) => Err("the phone both signed and refused this item".to_owned()),
            (None, None) => Err("the phone returned nothing for this item".to_owned()),
        };
        let mut event = caller.ctx.event(
            if card_slot.is_some() {
                "card.operation"
            } else {
                "eps.signature"
            },
            &row.uid,
            &card.issued_by,
            serde_json::json!({
                "request_id": row.id,
                "item_id": id,
                "prescription_id": item.prescription_id,
                "digest": item.digest,
                "algorithm": row.algorithm,
                "kind": row.kind,
                "card_id": card.id,
                "signer": row.uid,
                "error": verdict.as_ref().err(),
            }),
        );
        match verdict {
            Ok(sig) => signatures.push(sig),
            Err(reason) => {
                event.outcome = vsc_store::Outcome::Failure;
                failed.push(FailedSignature {
                    id: id.clone(),
                    reason,
                });
            }
        }
        events.push(event);
    }
    let outcome = SigningOutcome {
        state: "completed".into(),
        signatures,
        certificate: Some(B64.encode(&certificate)),
        failed_signatures: failed,
    };
    let stored = serde_json::to_string(&outcome).map_err(ApiError::internal)?;
    let mut tx = state.write().await?;
    // Checked again under the write lock: a cancellation or lock that landed while the
    // signatures were being verified wins, and nothing is handed out.
    let still_active = repo::card(&mut tx, &card.id)
        .await?
        .is_some_and(|c| c.state == CardState::Active);
    if !still_active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            "the card was cancelled or locked while the phone was signing; nothing was signed",
        ));
    }
    if !db::decide(
        &mut tx,
        &row.id,
        SigningRequestState::Completed,
        Some(&stored),
        state.now_unix(),
    )
    .await?
    {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            "this signing request was already answered (or has just expired)",
        ));
    }
    let at = state.now_ms();
    for e in &events {
        state.append_audit(&mut tx, e, at).await?;
    }
    tx.commit().await?;
    state.hub().publish(Event::SigningDecided {
        card_id: card.id,
        request_id: row.id,
        state: "completed".into(),
    });
    Ok(outcome)
}

async fn decline(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeclineAuthRequest>,
) -> ApiResult<Json<SigningOutcome>> {
    let result = async {
        if req.reason != "declined" && req.reason != "not-me" {
            return Err(ApiError::bad_request(
                code::INVALID_REASON,
                format!("'{}' is not a reason: use declined or not-me", req.reason),
            ));
        }
        let now = state.now_unix();
        let mut conn = state.store().pool().acquire().await?;
        let (row, card) = request_for_device(&mut conn, &caller, &id, now).await?;
        drop(conn);
        let outcome = SigningOutcome {
            state: "declined".into(),
            signatures: Vec::new(),
            certificate: None,
            failed_signatures: Vec::new(),
        };
        let stored = serde_json::to_string(&outcome).map_err(ApiError::internal)?;
        let mut tx = state.write().await?;
        if !db::decide(&mut tx, &row.id, SigningRequestState::Declined, Some(&stored), now).await? {
            return Err(ApiError::conflict(
                code::REQUEST_ALREADY_DECIDED,
                "this signing request was already answered",
            ));
        }
        let not_me = req.reason == "not-me";
        // "I didn't do this": the session that asked is ended at once (its ticket and agent key
        // are worthless from now on), and the security team gets an alert.
        let ended = not_me
            && vsc_store::signin::end_session(&mut tx, &row.session_id, now, "reported-by-holder")
                .await?;
        let mut event = caller.ctx.event(
            if not_me { "alert.not_me" } else { "signing.declined" },
            &row.uid,
            &card.issued_by,
            serde_json::json!({"request_id": row.id, "card_id": card.id, "kind": row.kind, "workstation": row.workstation, "session_id": row.session_id, "session_ended": ended, "reason": req.reason}),
        );
        event.outcome = vsc_store::Outcome::Failure;
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
        if not_me {
            tracing::warn!(uid = %row.uid, request_id = %row.id, workstation = %row.workstation, "ALERT: the card holder reported a signing request they did not make; its session is ended");
        }
        state.hub().publish(Event::SigningDecided {
            card_id: card.id,
            request_id: row.id,
            state: "declined".into(),
        });
        Ok(outcome)
    }
    .await;
    match result {
        Ok(o) => Ok(Json(o)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "signing.decline", &id, "", &err)
                .await;
            Err(err)
        }
    }
}

//! Signing prescriptions with the card's signing key, which never leaves the phone: the
//! prescribing system's side (through the agent). The phone's side (fetching, completing and
//! declining requests) is in [`super::device`].
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/signing/requests` | agent (session ticket + agent key) | open a request: a batch of prescriptions (their fragments) or of prepared SignedInfo |
//! | `GET /api/v1/signing/requests/{id}?wait=S` | agent (same session's ticket + agent key) | the outcome: verified signatures, the certificate, refused items |
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
use vsc_proto::signing::state as signing_state;

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
use vsc_proto::signing::{
    CreateSigningRequest, SigningItem, SigningKind, SigningOutcome, SigningRequestCreated,
};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signing::{self as db, SigningRequestRow};

use super::ApiJson;
use super::session::{AgentSession, TicketHolder};
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::state::AppState;

/// Largest signing request body: 100 prescriptions' fragments with room to spare.
pub(super) const MAX_SIGNING_BODY: usize = 16 * 1024 * 1024;
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

pub(super) fn parse_algorithm(code: &str) -> ApiResult<SignatureAlgorithm> {
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
    // Wakes a closed phone app (Web Push); from this node only, never from hub events.
    crate::push::notify(state, &row.card_id, &row.id, row.expires_at);
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
pub(super) async fn signing_certificate(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> ApiResult<Vec<u8>> {
    certificate_of(conn, card_id, "signing", now).await
}

/// The card's valid, unrevoked certificate for `usage` (DER).
pub(super) async fn certificate_of(
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
        signing_state::EXPIRED
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

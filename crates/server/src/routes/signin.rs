//! Signing in with the phone.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/auth/requests` | agent (a registered workstation signs it: see [`super::workstation`]) | open a request bound to the workstation's context; returns the number to show |
//! | `GET /api/v1/auth/requests/{id}?wait=S` | agent (`X-Vsc-Request-Secret`; to collect a registered workstation's request also `X-Vsc-Workstation-Signature`) | the outcome; an approved request is collected once, creating the session |
//! | `POST /api/v1/auth/requests/{id}/cancel` | agent (`X-Vsc-Request-Secret`) | withdraw a pending request |
//! | `POST /api/v1/device/challenge`, `POST /api/v1/device/token` | phone | a short-lived token bound to the device key |
//! | `GET /api/v1/device/events` | phone (device token) | server-sent events: pending requests now and as they come |
//! | `GET /api/v1/device/requests?wait=S` | phone (device token) | long-poll fallback: the pending requests |
//! | `POST /api/v1/device/requests/{id}/approve` | phone (device token) | the number the person typed + signature by the card's authentication key; a wrong number fails the request |
//! | `POST /api/v1/device/requests/{id}/decline` | phone (device token) | `declined`, or `not-me` ("I didn't do this") |
//!
//! Each request is single use and expires; approval is a conditional update in the database, so
//! of any number of concurrent approvals exactly one wins and exactly one session is created.

use std::convert::Infallible;
use std::time::Duration as StdDuration;
use vsc_proto::errors as code;
use vsc_proto::routes;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;
use vsc_core::{AuthRequestState, CardState, Uid};
use vsc_proto::ChallengeResponse;
use vsc_proto::signin::{
    ApproveAuthRequest, AuthContext, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest,
    DeclineAuthRequest, DeviceChallengeRequest, DeviceToken, DeviceTokenRequest,
    PendingAuthRequest,
};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signin::{self as db, AuthRequestRow};

use super::{ApiJson, Client, challenge, session};
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::metrics::SigninOutcome;
use crate::state::{AppState, AuditContext};

const DEVICE_TOKEN_PURPOSE: &str = "device-token";
/// Longest a long-poll waits before answering "still pending".
const MAX_WAIT_SECONDS: u64 = 30;
const POLL_SECRET_HEADER: &str = routes::headers::REQUEST_SECRET;
/// How long after its expiry an approved request can still be collected.
const COLLECT_GRACE_SECONDS: i64 = 60;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::AUTH_REQUESTS, post(create_request))
        .route(routes::AUTH_REQUEST, get(request_outcome))
        .route(routes::AUTH_REQUEST_CANCEL, post(cancel_request))
        .route(routes::DEVICE_CHALLENGE, post(device_challenge))
        .route(routes::DEVICE_TOKEN, post(device_token))
        .route(routes::DEVICE_EVENTS, get(device_events))
        .route(routes::DEVICE_REQUESTS, get(device_requests))
        .route(routes::DEVICE_REQUEST_APPROVE, post(approve))
        .route(routes::DEVICE_REQUEST_DECLINE, post(decline))
}

pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn check_context_field(name: &str, value: &str, required: bool) -> ApiResult<()> {
    if (required && value.trim().is_empty())
        || value.chars().count() > 200
        || value.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            code::INVALID_CONTEXT,
            format!(
                "context {name} must be {}at most 200 printable characters",
                if required { "1 to " } else { "" }
            ),
        ));
    }
    Ok(())
}

fn validate_context(ctx: &AuthContext) -> ApiResult<()> {
    check_context_field("workstation_id", &ctx.workstation_id, true)?;
    check_context_field("workstation_name", &ctx.workstation_name, true)?;
    check_context_field("client_address", &ctx.client_address, false)?;
    check_context_field("agent_version", &ctx.agent_version, true)?;
    check_context_field("purpose", &ctx.purpose, true)
}

/// The two-digit number (00 to 99) the workstation shows, uniform from the CSPRNG. Only the
/// workstation is told; the person types it on the phone, so a blind guess succeeds 1 time in
/// 100 and fails the request.
fn sign_in_number(state: &AppState) -> ApiResult<u8> {
    loop {
        // Rejection sampling keeps 0..=99 uniform (256 is not a multiple of 100).
        let [b] = state.random::<1>()?;
        if b < 200 {
            return Ok(b % 100);
        }
    }
}

/// The card a sign-in for `uid` goes to: their one active card.
async fn active_card_of(conn: &mut Conn, uid: &str) -> ApiResult<repo::CardRow> {
    let cards = repo::live_cards_of(conn, uid).await?;
    if let Some(card) = cards.iter().find(|c| c.state == CardState::Active) {
        return Ok(card.clone());
    }
    if let Some(card) = cards.iter().find(|c| c.state == CardState::Locked) {
        return Err(ApiError::forbidden(
            code::CARD_LOCKED,
            format!(
                "card {} is locked after repeated failures; an RA or Local Smartcard Administrator must unlock it",
                card.id
            ),
        ));
    }
    Err(ApiError::not_found(
        code::NO_ACTIVE_CARD,
        format!("{uid} has no active virtual smartcard"),
    ))
}

async fn create_request(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<CreateAuthRequest>,
) -> ApiResult<(StatusCode, Json<AuthRequestCreated>)> {
    // Guessing UIDs to find who has a card costs a failure each, throttled per address.
    if !state
        .throttle()
        .allowed(&ctx.source, state.now_unix())
        .await
    {
        let err = ApiError::too_many(
            code::TOO_MANY_ATTEMPTS,
            "too many failed sign-in requests from this address; wait 15 minutes",
        );
        state
            .audit_failure(&ctx, "auth.request", &req.uid, "", &err)
            .await;
        return Err(err);
    }
    match create_request_inner(&state, &ctx, &req).await {
        Ok(created) => Ok((StatusCode::CREATED, Json(created))),
        Err(err) => {
            if matches!(
                err.code,
                code::NO_ACTIVE_CARD
                    | code::INVALID_UID
                    | code::WORKSTATION_NOT_REGISTERED
                    | code::WORKSTATION_SIGNATURE_INVALID
            ) {
                state
                    .throttle()
                    .record_failure(&ctx.source, state.now_unix())
                    .await;
            }
            state
                .audit_failure(&ctx, "auth.request", &req.uid, "", &err)
                .await;
            Err(err)
        }
    }
}

/// Every check that can refuse a new sign-in request, in the opening transaction and before
/// it writes anything but the spent workstation challenge: what the phone will show (the
/// registry's name and organisation for a registered workstation, whose signature is checked
/// here, and always the address seen here), the person's active card, the organisation's rule
/// on unregistered workstations, a "not me" block, the per-card request cap, and another
/// workstation's request still open. Returns the context, the card and the card's open
/// requests (all from this workstation, to be superseded).
async fn admit_request(
    state: &AppState,
    ctx: &AuditContext,
    req: &CreateAuthRequest,
    uid: &Uid,
    tx: &mut Conn,
    now_unix: i64,
) -> ApiResult<(AuthContext, repo::CardRow, Vec<AuthRequestRow>)> {
    let cfg = &state.config().signin;
    let shown = super::workstation::opening_context(state, ctx, req, tx).await?;
    let card = active_card_of(tx, uid.as_str()).await?;
    super::workstation::check_unregistered_allowed(tx, &shown, &card.issued_by).await?;
    let (_, blocked_until) = db::card_guard(tx, &card.id).await?;
    if let Some(until) = blocked_until.filter(|u| *u > now_unix) {
        return Err(ApiError::forbidden(
            code::CARD_BLOCKED,
            format!(
                "sign-in to this card is blocked for {} more minutes after its holder reported a request they did not make",
                (until - now_unix + 59) / 60
            ),
        ));
    }
    let since = now_unix - cfg.request_window.whole_seconds();
    if db::requests_since(tx, &card.id, since).await? >= cfg.requests_per_window {
        return Err(ApiError::too_many(
            code::TOO_MANY_REQUESTS,
            format!(
                "too many sign-in requests for this card; wait {} minutes",
                cfg.request_window.whole_minutes()
            ),
        ));
    }
    let open = db::open_requests_for_card(tx, &card.id, now_unix).await?;
    if open
        .iter()
        .any(|o| o.workstation_id != shown.workstation_id)
    {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_OPEN,
            "a sign-in request for this card is already waiting on the phone; approve or decline it, or wait for it to expire",
        ));
    }
    Ok((shown, card, open))
}

async fn create_request_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &CreateAuthRequest,
) -> ApiResult<AuthRequestCreated> {
    let uid: Uid = req
        .uid
        .parse()
        .map_err(|e: vsc_core::IdError| ApiError::bad_request(code::INVALID_UID, e.to_string()))?;
    validate_context(&req.context)?;
    let cfg = &state.config().signin;
    let now = state.now();
    let now_unix = now.unix_timestamp();
    // One write transaction opens the request, spending the workstation's challenge in it. A
    // refusal still commits it, with only the spent challenge in it: a signed opening is never
    // usable twice, and a refused request costs no transaction of its own.
    let mut tx = state.write().await?;
    let (shown, card, open) = match admit_request(state, ctx, req, &uid, &mut tx, now_unix).await {
        Ok(admitted) => admitted,
        Err(err) => {
            tx.commit().await?;
            return Err(err);
        }
    };
    let mut superseded = Vec::new();
    for open in open {
        // The same workstation asking again replaces its own earlier request.
        db::decide_request(&mut tx, &open.id, AuthRequestState::Superseded, now_unix).await?;
        superseded.push(open.id);
    }
    let number = sign_in_number(state)?;
    let poll_secret = URL_SAFE_NO_PAD.encode(state.random::<32>()?);
    let expires_at = now + cfg.request_ttl;
    let row = AuthRequestRow {
        id: state.new_id()?,
        card_id: card.id.clone(),
        uid: uid.to_string(),
        nonce: B64.encode(state.random::<32>()?),
        context: serde_json::to_string(&shown).map_err(ApiError::internal)?,
        context_digest: vsc_proto::signin::context_digest(&shown, now_unix),
        workstation_id: shown.workstation_id.clone(),
        number,
        // No numbers are offered to choose from any more; the column stays for old rows.
        choices: "[]".into(),
        poll_secret_hash: sha256(poll_secret.as_bytes()),
        source: ctx.source.to_string(),
        created_at: now_unix,
        expires_at: expires_at.unix_timestamp(),
        state: AuthRequestState::Pending,
        decided_at: None,
    };
    db::insert_auth_request(&mut tx, &row).await?;
    let event = ctx.event(
        "auth.requested",
        uid.as_str(),
        &card.issued_by,
        serde_json::json!({"request_id": row.id, "card_id": card.id, "context": shown, "claimed_address": req.context.client_address, "superseded": superseded}),
    );
    state.append_audit(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
    state.metrics().signin_opened();
    for id in superseded {
        state.metrics().signin_outcome(SigninOutcome::Superseded);
        state.hub().publish(Event::Decided {
            card_id: card.id.clone(),
            request_id: id,
            state: "superseded".into(),
        });
    }
    state.hub().publish(Event::Opened {
        card_id: card.id,
        request_id: row.id.clone(),
    });
    Ok(AuthRequestCreated {
        request_id: row.id,
        poll_secret,
        number,
        expires_at,
        nonce: row.nonce,
    })
}

/// `?wait=SECONDS`.
#[derive(Debug, Deserialize)]
struct Wait {
    #[serde(default)]
    wait: u64,
}

/// Loads a request the caller proves it opened (by its poll secret).
async fn request_with_secret(
    state: &AppState,
    ctx: &AuditContext,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<AuthRequestRow> {
    let result = request_with_secret_inner(state, id, headers).await;
    if let Err(err) = &result {
        state.audit_failure(ctx, "auth.poll", id, "", err).await;
    }
    result
}

async fn request_with_secret_inner(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<AuthRequestRow> {
    let secret = headers
        .get(POLL_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::REQUEST_SECRET_MISSING,
                "send the request's secret in X-Vsc-Request-Secret",
            )
        })?;
    let mut conn = state.store().pool().acquire().await?;
    let row = db::auth_request(&mut conn, id).await?;
    match row {
        Some(r) if bool::from(sha256(secret.as_bytes()).ct_eq(&r.poll_secret_hash)) => Ok(r),
        _ => Err(ApiError::not_found(
            code::UNKNOWN_REQUEST,
            "no such sign-in request",
        )),
    }
}

async fn request_outcome(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(id): Path<String>,
    Query(wait): Query<Wait>,
    headers: HeaderMap,
) -> ApiResult<Json<AuthRequestOutcome>> {
    // Subscribe before reading, so a decision between the read and the wait is not missed.
    let mut events = state.hub().subscribe();
    let stopped = state.hub().stopped();
    tokio::pin!(stopped);
    let mut deadline =
        tokio::time::Instant::now() + StdDuration::from_secs(wait.wait.min(MAX_WAIT_SECONDS));
    loop {
        let row = request_with_secret(&state, &ctx, &id, &headers).await?;
        let expired = row.state == AuthRequestState::Pending && row.expires_at <= state.now_unix();
        // An approval is collected within a minute of the request's expiry, or never: a ticket
        // must not wait indefinitely for whoever holds the poll secret.
        if row.state == AuthRequestState::Approved
            && row.expires_at + COLLECT_GRACE_SECONDS > state.now_unix()
        {
            // Only the workstation that opened it collects a registered workstation's request.
            if let Err(err) = super::workstation::check_collect(&state, &row, &headers).await {
                state
                    .audit_failure(&ctx, "auth.collect", &id, "", &err)
                    .await;
                return Err(err.audited());
            }
            return Ok(Json(session::collect(&state, &ctx, &row).await?));
        }
        let expired = expired || row.state == AuthRequestState::Approved;
        if row.state != AuthRequestState::Pending || expired {
            let state_name = if expired {
                state.metrics().signin_outcome(SigninOutcome::Expired);
                "expired".to_owned()
            } else {
                row.state.as_str().to_owned()
            };
            return Ok(Json(AuthRequestOutcome {
                state: state_name,
                ticket: None,
                session: None,
                agent_key: None,
            }));
        }
        // Pending: wait for its decision, its expiry or the deadline.
        let until_expiry =
            StdDuration::from_secs(u64::try_from(row.expires_at - state.now_unix()).unwrap_or(0));
        let wake = deadline.min(tokio::time::Instant::now() + until_expiry);
        if tokio::time::Instant::now() >= deadline {
            return Ok(Json(AuthRequestOutcome {
                state: "pending".into(),
                ticket: None,
                session: None,
                agent_key: None,
            }));
        }
        loop {
            let event = tokio::select! {
                // Stopping: answer with the current state now instead of holding the shutdown.
                () = &mut stopped => {
                    deadline = tokio::time::Instant::now();
                    break;
                }
                event = tokio::time::timeout_at(wake, events.recv()) => event,
            };
            match event {
                // Resync: events from other nodes may have been missed; read the row again.
                Ok(Ok(Event::Decided { request_id, .. })) if request_id == id => break,
                Ok(Ok(Event::Resync)) => break,
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            }
        }
    }
}

async fn cancel_request(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<AuthRequestOutcome>> {
    let row = request_with_secret(&state, &ctx, &id, &headers).await?;
    let mut tx = state.write().await?;
    if !db::decide_request(&mut tx, &id, AuthRequestState::Cancelled, state.now_unix()).await? {
        let err = ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            "the request is no longer pending",
        );
        drop(tx);
        state
            .audit_failure(&ctx, "auth.cancel", &row.uid, "", &err)
            .await;
        return Err(err);
    }
    state
        .append_audit(
            &mut tx,
            &ctx.event(
                "auth.cancelled",
                &row.uid,
                "",
                serde_json::json!({"request_id": id}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    state.metrics().signin_outcome(SigninOutcome::Cancelled);
    state.hub().publish(Event::Decided {
        card_id: row.card_id,
        request_id: id,
        state: "cancelled".into(),
    });
    Ok(Json(AuthRequestOutcome {
        state: "cancelled".into(),
        ticket: None,
        session: None,
        agent_key: None,
    }))
}

// ---------------------------------------------------------------------------------------------
// The phone

async fn device_challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<DeviceChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    state
        .audited(
            &ctx,
            "device.challenge",
            &req.device_id,
            device_challenge_inner(&state, &ctx, &req),
        )
        .await
        .map(Json)
}

async fn device_challenge_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &DeviceChallengeRequest,
) -> ApiResult<ChallengeResponse> {
    let mut tx = state.write().await?;
    // Unknown devices count against the caller's address; enrolled ones against the device.
    if db::device_key(&mut tx, &req.device_id).await?.is_none() {
        state.admit_unauthenticated(ctx.source).await?;
        return Err(ApiError::not_found(
            code::UNKNOWN_DEVICE,
            "this device is not enrolled (or enrolled before device keys existed): enrol again",
        ));
    }
    state.admit_device_challenge(&req.device_id).await?;
    let issued = challenge::issue(
        state,
        &mut tx,
        ctx,
        DEVICE_TOKEN_PURPOSE,
        &req.device_id,
        "device.challenge.issued",
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

async fn device_token(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<DeviceTokenRequest>,
) -> ApiResult<Json<DeviceToken>> {
    state
        .audited(
            &ctx,
            "device.token",
            &req.device_id,
            device_token_inner(&state, &ctx, &req),
        )
        .await
        .map(Json)
}

async fn device_token_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &DeviceTokenRequest,
) -> ApiResult<DeviceToken> {
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let now = state.now_unix();
    let mut tx = state.write().await?;
    let nonce = challenge::consume(
        &mut tx,
        &req.challenge_id,
        DEVICE_TOKEN_PURPOSE,
        &req.device_id,
        now,
    )
    .await?;
    tx.commit().await?;
    let mut tx = state.write().await?;
    let (key, uid) = db::device_key(&mut tx, &req.device_id)
        .await?
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_DEVICE, "this device is not enrolled"))?;
    let statement = vsc_proto::signin::device_token_statement(
        &req.challenge_id,
        &nonce,
        &req.device_id,
        &state.origin(),
    );
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &key,
    )
    .verify(&statement, &signature)
    .map_err(|_| {
        ApiError::unauthorized(
            code::SIGNATURE_INVALID,
            "the signature does not verify with this device's key",
        )
    })?;
    let token = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    let expires_at = state.now() + state.config().signin.device_token_ttl;
    db::insert_device_token(
        &mut tx,
        &sha256(token.as_bytes()),
        &req.device_id,
        now,
        expires_at.unix_timestamp(),
    )
    .await?;
    let actor = AuditContext {
        actor: uid,
        source: ctx.source,
    };
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "device.token.issued",
                &req.device_id,
                "",
                serde_json::json!({}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(DeviceToken {
        token: token.to_string(),
        expires_at,
    })
}

/// A phone presenting a live device token.
#[derive(Debug, Clone)]
pub struct DeviceCaller {
    /// The device.
    pub device_id: String,
    /// SHA-256 of the device token it presented.
    pub token_hash: Vec<u8>,
    /// Its person.
    pub uid: String,
    /// For the audit log.
    pub ctx: AuditContext,
}

impl FromRequestParts<AppState> for DeviceCaller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Client(client) = Client::from_request_parts(parts, state).await?;
        let result = device_caller(parts, state, &client).await;
        if let Err(err) = &result {
            let path = parts.uri.path().to_owned();
            state
                .audit_failure(&client, "device.session", &path, "", err)
                .await;
        }
        result
    }
}

/// Checks the device token of a phone's request.
async fn device_caller(
    parts: &Parts,
    state: &AppState,
    client: &AuditContext,
) -> ApiResult<DeviceCaller> {
    let token = super::bearer_token(&parts.headers).ok_or_else(|| {
        ApiError::unauthorized(code::DEVICE_UNAUTHENTICATED, "get a device token first")
    })?;
    let mut conn = state.store().pool().acquire().await?;
    let token_hash = sha256(token.trim().as_bytes());
    let (device_id, uid) =
        db::device_and_person_for_token(&mut conn, &token_hash, state.now_unix())
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    code::DEVICE_TOKEN_EXPIRED,
                    "the device token is unknown or expired; get a new one",
                )
            })?;
    Ok(DeviceCaller {
        ctx: AuditContext {
            actor: uid.clone(),
            source: client.source,
        },
        device_id,
        token_hash,
        uid,
    })
}

/// Cards bound to the device that can be asked to sign in.
async fn device_cards(conn: &mut Conn, caller: &DeviceCaller) -> ApiResult<Vec<String>> {
    Ok(repo::live_cards_of(conn, &caller.uid)
        .await?
        .into_iter()
        .filter(|c| c.device_id.as_deref() == Some(caller.device_id.as_str()))
        .map(|c| c.id)
        .collect())
}

/// A request as the phone sees it: never with its number, which only the workstation shows.
fn to_pending(row: &AuthRequestRow) -> ApiResult<PendingAuthRequest> {
    Ok(PendingAuthRequest {
        request_id: row.id.clone(),
        uid: row.uid.clone(),
        nonce: row.nonce.clone(),
        context: serde_json::from_str(&row.context).map_err(ApiError::internal)?,
        context_digest: row.context_digest.clone(),
        created_at: row.created_at,
        expires_at: time::OffsetDateTime::from_unix_timestamp(row.expires_at)
            .map_err(ApiError::internal)?,
    })
}

async fn pending_for_device(
    state: &AppState,
    caller: &DeviceCaller,
) -> ApiResult<Vec<PendingAuthRequest>> {
    let mut conn = state.store().pool().acquire().await?;
    let now = state.now_unix();
    let mut out = Vec::new();
    for card in device_cards(&mut conn, caller).await? {
        for row in db::open_requests_for_card(&mut conn, &card, now).await? {
            out.push(to_pending(&row)?);
        }
    }
    Ok(out)
}

async fn device_requests(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Query(wait): Query<Wait>,
) -> ApiResult<Json<Vec<PendingAuthRequest>>> {
    let mut events = state.hub().subscribe();
    let pending = pending_for_device(&state, &caller).await?;
    if !pending.is_empty() || wait.wait == 0 {
        return Ok(Json(pending));
    }
    let cards = {
        let mut conn = state.store().pool().acquire().await?;
        device_cards(&mut conn, &caller).await?
    };
    let deadline =
        tokio::time::Instant::now() + StdDuration::from_secs(wait.wait.min(MAX_WAIT_SECONDS));
    let stopped = state.hub().stopped();
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            () = &mut stopped => break,
            event = tokio::time::timeout_at(deadline, events.recv()) => event,
        };
        match event {
            Ok(Ok(Event::Opened { card_id, .. } | Event::SigningOpened { card_id, .. }))
                if cards.contains(&card_id) =>
            {
                break;
            }
            Ok(Ok(Event::Resync)) => break,
            Ok(Ok(_)) => continue,
            Ok(Err(RecvError::Lagged(_))) => break,
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        }
    }
    Ok(Json(pending_for_device(&state, &caller).await?))
}

async fn device_events(
    State(state): State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>>> {
    let mut events = state.hub().subscribe();
    let initial = pending_for_device(&state, &caller).await?;
    let initial_signing = super::signing::pending_for_device(&state, &caller).await?;
    let cards = {
        let mut conn = state.store().pool().acquire().await?;
        device_cards(&mut conn, &caller).await?
    };
    let stopped = state.hub().stopped();
    let token_hash = caller.token_hash.clone();
    let stream = async_stream::stream! {
        // Counts this phone as connected for as long as the stream lives.
        let _connected = state.metrics().device_stream_opened();
        for p in initial {
            if let Ok(data) = serde_json::to_string(&p) {
                yield Ok(SseEvent::default().event("auth-request").data(data));
            }
        }
        // A signing request can be megabytes (a batch of prescriptions): the stream only names
        // it, and the phone fetches it with `GET /api/v1/device/signing`.
        for p in initial_signing {
            let data = serde_json::json!({"request_id": p.request_id}).to_string();
            yield Ok(SseEvent::default().event("signing-request").data(data));
        }
        tokio::pin!(stopped);
        // The stream re-checks its token now and then: an expired token or a cancelled card
        // must not keep receiving requests on a connection opened before.
        let mut recheck = tokio::time::interval(StdDuration::from_secs(30));
        recheck.tick().await;
        loop {
            let event = tokio::select! {
                () = &mut stopped => break,
                _ = recheck.tick() => {
                    if !stream_still_authorised(&state, &token_hash, &cards).await {
                        break;
                    }
                    continue;
                }
                event = events.recv() => event,
            };
            match event {
                Ok(Event::Opened { card_id, request_id }) if cards.contains(&card_id) => {
                    let row = match state.store().pool().acquire().await {
                        Ok(mut conn) => db::auth_request(&mut conn, &request_id).await.ok().flatten(),
                        Err(_) => None,
                    };
                    // The event only names the request (it may have come from another node,
                    // over a channel any database user can notify on): what the phone is sent is
                    // decided by the row, which must be this phone's card's and still pending.
                    let row = row.filter(|r| cards.contains(&r.card_id) && r.state == AuthRequestState::Pending);
                    if let Some(p) = row.and_then(|r| to_pending(&r).ok())
                        && let Ok(data) = serde_json::to_string(&p)
                    {
                        yield Ok(SseEvent::default().event("auth-request").data(data));
                    }
                }
                Ok(Event::SigningOpened { card_id, request_id }) if cards.contains(&card_id) => {
                    let data = serde_json::json!({"request_id": request_id}).to_string();
                    yield Ok(SseEvent::default().event("signing-request").data(data));
                }
                Ok(Event::SigningDecided { card_id, request_id, state: decided }) if cards.contains(&card_id) => {
                    let data = serde_json::json!({"request_id": request_id, "state": decided}).to_string();
                    yield Ok(SseEvent::default().event("signing-request-closed").data(data));
                }
                Ok(Event::Decided { card_id, request_id, state: decided }) if cards.contains(&card_id) => {
                    let data = serde_json::json!({"request_id": request_id, "state": decided}).to_string();
                    yield Ok(SseEvent::default().event("auth-request-closed").data(data));
                }
                // Fell behind, or events from other nodes may have been missed: tell the phone
                // to re-read what is pending.
                Ok(Event::Resync) | Err(RecvError::Lagged(_)) => yield Ok(SseEvent::default().event("resync").data("{}")),
                Ok(_) => {}
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(StdDuration::from_secs(15))))
}

/// Whether an open event stream may go on: its device token is still live and at least one of
/// its cards is still active.
async fn stream_still_authorised(state: &AppState, token_hash: &[u8], cards: &[String]) -> bool {
    let Ok(mut conn) = state.store().pool().acquire().await else {
        return true;
    };
    let now = state.now_unix();
    if !matches!(
        db::device_for_token(&mut conn, token_hash, now).await,
        Ok(Some(_))
    ) {
        return false;
    }
    for card in cards {
        if let Ok(Some(c)) = repo::card(&mut conn, card).await
            && c.state == CardState::Active
        {
            return true;
        }
    }
    false
}

/// Loads a request the calling device may decide, with the card it is for.
async fn request_for_device(
    conn: &mut Conn,
    caller: &DeviceCaller,
    id: &str,
    now: i64,
) -> ApiResult<(AuthRequestRow, repo::CardRow)> {
    let row = db::auth_request(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_REQUEST, "no such sign-in request"))?;
    let card = repo::card(conn, &row.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("request without card"))?;
    if card.device_id.as_deref() != Some(caller.device_id.as_str()) || card.uid != caller.uid {
        return Err(ApiError::forbidden(
            code::REQUEST_NOT_FOR_THIS_DEVICE,
            "this request is for a card held on another device",
        ));
    }
    if row.state != AuthRequestState::Pending {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            format!(
                "this request is already {}; it cannot be used again",
                row.state
            ),
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::gone(
            code::REQUEST_EXPIRED,
            "this request has expired; sign in again at the workstation",
        ));
    }
    Ok((row, card))
}

/// The SPKI of a card's valid, unrevoked authentication certificate.
pub(crate) async fn card_auth_key(
    conn: &mut Conn,
    card: &repo::CardRow,
    now: i64,
) -> ApiResult<Vec<u8>> {
    if card.state != CardState::Active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            format!("the card is {}", card.state),
        ));
    }
    for cert in repo::certificates_of(conn, &card.id).await? {
        if cert.usage == "authentication"
            && cert.revoked_at.is_none()
            && cert.not_before <= now
            && now < cert.not_after
        {
            return Ok(vsc_pki::certificate_info(&cert.der)?.spki_der);
        }
    }
    Err(ApiError::forbidden(
        code::CERTIFICATE_INVALID,
        "the card's authentication certificate is revoked or outside its validity",
    ))
}

/// Records a failed approval: the request fails, the failure is counted against the card and,
/// at the limit within the window, the card locks and its sessions end. Commits, then returns
/// `err` marked audited.
async fn fail_request(
    state: &AppState,
    caller: &DeviceCaller,
    row: &AuthRequestRow,
    card: &repo::CardRow,
    new_state: AuthRequestState,
    err: ApiError,
) -> ApiError {
    match fail_request_inner(state, caller, row, card, new_state, &err, |_| Ok(())).await {
        Ok(true) => err.audited(),
        // Somebody else decided the request first: this attempt counts for nothing.
        Ok(false) => ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            "this request was already decided; it cannot be used again",
        ),
        Err(e) => e,
    }
}

/// The transaction behind [`fail_request`]: decides the request and, only if this call decided
/// it, records the failure (so racing bad attempts on one request count once) and counts the
/// card's failures within the configured window (successes in between do not reset it), locks
/// the card at the limit, ends the card's live sessions on "I didn't do this" (`reported`),
/// audits, and runs `also` (more writes of the same decision) before committing.
async fn fail_request_inner(
    state: &AppState,
    caller: &DeviceCaller,
    row: &AuthRequestRow,
    card: &repo::CardRow,
    new_state: AuthRequestState,
    err: &ApiError,
    also: impl FnOnce(&mut Vec<vsc_store::NewEvent>) -> ApiResult<()>,
) -> ApiResult<bool> {
    let now = state.now_unix();
    let mut tx = state.write().await?;
    if !db::decide_request(&mut tx, &row.id, new_state, now).await? {
        return Ok(false);
    }
    let window = state.config().signin.failure_window;
    let failures = db::record_card_failure(
        &mut tx,
        &card.id,
        &row.id,
        now,
        now - window.whole_seconds(),
    )
    .await?;
    // "I didn't do this": whoever made the request may already hold a session from an earlier
    // approval (a mistaken one, or a stolen ticket); every live session of the card ends now.
    let ended_sessions = if new_state == AuthRequestState::Reported {
        db::end_live_sessions_of_card(&mut tx, &card.id, now, "not-me-reported").await?
    } else {
        Vec::new()
    };
    let mut locked = false;
    if failures >= state.config().signin.failure_limit
        && repo::transition_card(
            &mut tx,
            &card.id,
            &[CardState::Active],
            CardState::Locked,
            now,
        )
        .await?
    {
        db::end_sessions_of_card(&mut tx, &card.id, now, "card-locked").await?;
        locked = true;
    }
    let mut event = caller.ctx.event(
        "auth.failed",
        &row.uid,
        &card.issued_by,
        serde_json::json!({"request_id": row.id, "card_id": card.id, "error": err.code, "failures_in_window": failures, "window_minutes": window.whole_minutes(), "card_locked": locked}),
    );
    event.outcome = vsc_store::Outcome::Failure;
    let mut events = vec![event];
    if locked {
        events.push(caller.ctx.event(
            "card.locked",
            &card.id,
            &card.issued_by,
            serde_json::json!({"uid": card.uid, "reason": "repeated sign-in failures", "failures": failures, "window_minutes": window.whole_minutes()}),
        ));
    }
    for session_id in ended_sessions {
        events.push(caller.ctx.event(
            "session.ended",
            &card.uid,
            &card.issued_by,
            serde_json::json!({"session_id": session_id, "card_id": card.id, "reason": "not-me-reported", "request_id": row.id}),
        ));
    }
    also(&mut events)?;
    for e in &events {
        state.append_audit(&mut tx, e, state.now_ms()).await?;
    }
    if new_state == AuthRequestState::Reported {
        let until = now + state.config().signin.not_me_block.whole_seconds();
        db::block_card_until(&mut tx, &card.id, until).await?;
    }
    tx.commit().await?;
    state.metrics().signin_outcome(match (new_state, err.code) {
        (AuthRequestState::Reported, _) => SigninOutcome::NotMe,
        (AuthRequestState::Declined, _) => SigninOutcome::Declined,
        (_, code::WRONG_NUMBER) => SigninOutcome::WrongNumber,
        (_, code::SIGNATURE_INVALID) => SigninOutcome::SignatureInvalid,
        _ => SigninOutcome::Failed,
    });
    state.hub().publish(Event::Decided {
        card_id: card.id.clone(),
        request_id: row.id.clone(),
        state: new_state.as_str().into(),
    });
    Ok(true)
}

async fn approve(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ApproveAuthRequest>,
) -> ApiResult<Json<AuthRequestOutcome>> {
    match approve_inner(&state, &caller, &id, &req).await {
        Ok(o) => Ok(Json(o)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "auth.approve", &id, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn approve_inner(
    state: &AppState,
    caller: &DeviceCaller,
    id: &str,
    req: &ApproveAuthRequest,
) -> ApiResult<AuthRequestOutcome> {
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let (row, card) = request_for_device(&mut conn, caller, id, now).await?;
    let key = card_auth_key(&mut conn, &card, now).await?;
    drop(conn);
    let statement = vsc_proto::signin::approval_statement(
        &row.id,
        &row.nonce,
        &row.context_digest,
        req.number,
        &state.origin(),
    );
    let signature_ok = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &key,
    )
    .verify(&statement, &signature)
    .is_ok();
    if !signature_ok {
        let err = ApiError::unauthorized(
            code::SIGNATURE_INVALID,
            "the approval's signature does not verify with the card's authentication certificate (or the context was altered)",
        );
        return Err(fail_request(state, caller, &row, &card, AuthRequestState::Failed, err).await);
    }
    // Constant time, like any secret: the number is what a guesser lacks.
    if !bool::from(req.number.ct_eq(&row.number)) {
        let err = ApiError::forbidden(
            code::WRONG_NUMBER,
            "that is not the number the workstation shows; the request is refused: sign in again at the workstation",
        );
        return Err(fail_request(state, caller, &row, &card, AuthRequestState::Failed, err).await);
    }
    let mut tx = state.write().await?;
    if !db::decide_request(
        &mut tx,
        &row.id,
        AuthRequestState::Approved,
        state.now_unix(),
    )
    .await?
    {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            "this request was already decided",
        ));
    }
    // A success does not clear earlier failures: the lock counts them in a window.
    state.append_audit(
        &mut tx,
        &caller.ctx.event("auth.approved", &row.uid, &card.issued_by, serde_json::json!({"request_id": row.id, "card_id": card.id, "device_id": caller.device_id})),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    state.metrics().signin_outcome(SigninOutcome::Approved);
    state.hub().publish(Event::Decided {
        card_id: card.id,
        request_id: row.id,
        state: "approved".into(),
    });
    Ok(AuthRequestOutcome {
        state: "approved".into(),
        ticket: None,
        session: None,
        agent_key: None,
    })
}

async fn decline(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeclineAuthRequest>,
) -> ApiResult<Json<AuthRequestOutcome>> {
    match decline_inner(&state, &caller, &id, &req).await {
        Ok(o) => Ok(Json(o)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "auth.decline", &id, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn decline_inner(
    state: &AppState,
    caller: &DeviceCaller,
    id: &str,
    req: &DeclineAuthRequest,
) -> ApiResult<AuthRequestOutcome> {
    let not_me = match req.reason.as_str() {
        "declined" => false,
        "not-me" => true,
        other => {
            return Err(ApiError::bad_request(
                code::INVALID_REASON,
                format!("'{other}' is not a reason: use declined or not-me"),
            ));
        }
    };
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let (row, card) = request_for_device(&mut conn, caller, id, now).await?;
    drop(conn);
    let new_state = if not_me {
        AuthRequestState::Reported
    } else {
        AuthRequestState::Declined
    };
    let err = ApiError::new(
        StatusCode::OK,
        if not_me { code::NOT_ME } else { code::DECLINED },
        new_state.as_str(),
    );
    let until = now + state.config().signin.not_me_block.whole_seconds();
    let alert = not_me.then(|| {
        let mut alert = caller.ctx.event(
            "alert.not_me",
            &row.uid,
            &card.issued_by,
            serde_json::json!({"request_id": row.id, "card_id": card.id, "requested_from": row.source, "context": serde_json::from_str::<serde_json::Value>(&row.context).unwrap_or_default(), "blocked_until": until}),
        );
        alert.outcome = vsc_store::Outcome::Failure;
        alert
    });
    // The decision, the failure count, the block and the alert commit together, and only if
    // this call decided the request.
    let decided = fail_request_inner(state, caller, &row, &card, new_state, &err, |events| {
        events.extend(alert);
        Ok(())
    })
    .await?;
    if !decided {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            "this request was already decided; it cannot be used again",
        ));
    }
    if not_me {
        tracing::warn!(uid = %row.uid, request_id = %row.id, source = %row.source, "ALERT: the card holder reported a sign-in request they did not make");
    }
    Ok(AuthRequestOutcome {
        state: new_state.as_str().into(),
        ticket: None,
        session: None,
        agent_key: None,
    })
}

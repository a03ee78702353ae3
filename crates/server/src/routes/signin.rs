//! Signing in with the phone: the workstation's side. The phone's side (its device token, the
//! pending requests, approving and declining) is in [`super::device`]; collecting an approved
//! request's session is in [`super::session`].
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/auth/requests` | agent (a registered workstation signs it: see [`super::workstation`]) | open a request bound to the workstation's context; returns the number to show |
//! | `GET /api/v1/auth/requests/{id}?wait=S` | agent (`X-Vsc-Request-Secret`; to collect a registered workstation's request also `X-Vsc-Workstation-Signature`) | the outcome; an approved request is collected once, creating the session |
//! | `POST /api/v1/auth/requests/{id}/cancel` | agent (`X-Vsc-Request-Secret`) | withdraw a pending request |
//!
//! Each request is single use and expires; approval is a conditional update in the database, so
//! of any number of concurrent approvals exactly one wins and exactly one session is created.

use std::time::Duration as StdDuration;
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::signin::state as request_state;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;
use vsc_core::{AuthRequestState, CardState, Uid};
use vsc_proto::signin::{AuthContext, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signin::{self as db, AuthRequestRow};

use super::{ApiJson, Client, session};
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::metrics::SigninOutcome;
use crate::state::{AppState, AuditContext};

/// Longest a long-poll waits before answering "still pending".
pub(super) const MAX_WAIT_SECONDS: u64 = 30;
const POLL_SECRET_HEADER: &str = routes::headers::REQUEST_SECRET;
/// How long after its expiry an approved request can still be collected.
const COLLECT_GRACE_SECONDS: i64 = 60;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::AUTH_REQUESTS, post(create_request))
        .route(routes::AUTH_REQUEST, get(request_outcome))
        .route(routes::AUTH_REQUEST_CANCEL, post(cancel_request))
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

/// The card a sign-in for `uid` goes to: their one active card, with the time until which a
/// "not me" report blocks it.
async fn active_card_of(conn: &mut Conn, uid: &str) -> ApiResult<(repo::CardRow, Option<i64>)> {
    let cards = db::live_cards_with_block(conn, uid).await?;
    if let Some(found) = cards.iter().find(|(c, _)| c.state == CardState::Active) {
        return Ok(found.clone());
    }
    if let Some((card, _)) = cards.iter().find(|(c, _)| c.state == CardState::Locked) {
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
    opening: &Opening<'_>,
    uid: &Uid,
    tx: &mut Conn,
    now_unix: i64,
) -> ApiResult<(AuthContext, repo::CardRow, Vec<AuthRequestRow>)> {
    let cfg = &state.config().signin;
    let (shown, card, blocked_until) = match opening {
        Opening::Workstation(req) => {
            let shown = super::workstation::opening_context(state, ctx, req, tx).await?;
            // The agent's version, after the workstation proved itself (a registered one signs
            // the version it reports) and before anything of the person is looked at.
            super::ra_versions::check_agent_version(state, &shown).await?;
            let (card, blocked_until) = active_card_of(tx, uid.as_str()).await?;
            super::workstation::check_unregistered_allowed(tx, &shown, &card.issued_by).await?;
            (shown, card, blocked_until)
        }
        // The server wrote this context itself from the client registry and the browser's
        // address: there is no workstation to check.
        Opening::Web(shown) => {
            let (card, blocked_until) = active_card_of(tx, uid.as_str()).await?;
            ((*shown).clone(), card, blocked_until)
        }
    };
    // Renewal (issue 14): a card whose certificates expired is refused here, saying so.
    if let Err(err) = super::session::card_auth_key(tx, &card, now_unix).await
        && err.code == code::CARD_EXPIRED
    {
        return Err(err);
    }
    if let Some(until) = blocked_until.filter(|u| *u > now_unix) {
        return Err(ApiError::forbidden(
            code::CARD_BLOCKED,
            format!(
                "sign-in to this card is blocked for {} more minutes after its holder reported a request they did not make",
                (until - now_unix + 59) / 60
            ),
        ));
    }
    // Licences (issue 14): refused once the card's licence term and its grace period ended.
    super::ra_licences::check_signin(tx, &card.id, now_unix).await?;
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

/// Who opens a sign-in request.
pub(crate) enum Opening<'a> {
    /// An identity agent, with the context it claims and, for a registered workstation, its
    /// signed proof.
    Workstation(&'a CreateAuthRequest),
    /// The OpenID Connect provider's sign-in page, with the context the server wrote (the
    /// client's registered name, the browser's address).
    Web(&'a AuthContext),
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
    open_request(
        state,
        ctx,
        &uid,
        &Opening::Workstation(req),
        &req.context.client_address,
    )
    .await
}

/// Opens a sign-in request for `uid`'s active card: the shared path of workstations and of
/// the web sign-in page. `claimed_address` is what the opener said its address was (audited
/// beside the address seen).
pub(crate) async fn open_request(
    state: &AppState,
    ctx: &AuditContext,
    uid: &Uid,
    opening: &Opening<'_>,
    claimed_address: &str,
) -> ApiResult<AuthRequestCreated> {
    let cfg = &state.config().signin;
    let now = state.now();
    let now_unix = now.unix_timestamp();
    // One write transaction opens the request, spending the workstation's challenge in it. A
    // refusal still commits it, with only the spent challenge in it: a signed opening is never
    // usable twice, and a refused request costs no transaction of its own.
    let mut tx = state.write().await?;
    let (shown, card, open) = match admit_request(state, ctx, opening, uid, &mut tx, now_unix).await
    {
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
    if matches!(opening, Opening::Workstation(_)) {
        super::ra_versions::record_agent_version(&mut tx, &shown, &card.id, now_unix).await?;
    }
    let event = ctx.event(
        "auth.requested",
        uid.as_str(),
        &card.issued_by,
        serde_json::json!({"request_id": row.id, "card_id": card.id, "context": shown, "claimed_address": claimed_address, "superseded": superseded}),
    );
    state.append_audit(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
    state.metrics().signin_opened();
    for id in superseded {
        state.metrics().signin_outcome(SigninOutcome::Superseded);
        state.hub().publish(Event::Decided {
            card_id: card.id.clone(),
            request_id: id,
            state: request_state::SUPERSEDED.into(),
        });
    }
    // Wakes a closed phone app (Web Push); from this node only, never from hub events.
    crate::push::notify(state, &card.id, &row.id, row.expires_at);
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
pub(super) struct Wait {
    #[serde(default)]
    pub(super) wait: u64,
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
                request_state::EXPIRED.to_owned()
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
                state: request_state::PENDING.into(),
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
        state: request_state::CANCELLED.into(),
    });
    Ok(Json(AuthRequestOutcome {
        state: request_state::CANCELLED.into(),
        ticket: None,
        session: None,
        agent_key: None,
    }))
}

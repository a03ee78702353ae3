//! Signing in with the phone: the phone's side. The workstation opens, polls and cancels the
//! request in [`crate::routes::signin`], and collects the session in [`crate::routes::session`].
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/device/events` | phone (device token) | server-sent events: pending requests now and as they come |
//! | `GET /api/v1/device/requests?wait=S` | phone (device token) | long-poll fallback: the pending requests |
//! | `POST /api/v1/device/requests/{id}/approve` | phone (device token) | the number the person typed + signature by the card's authentication key; a wrong number fails the request |
//! | `POST /api/v1/device/requests/{id}/decline` | phone (device token) | `declined`, or `not-me` ("I didn't do this") |
//!
//! Approval is a conditional update in the database, so of any number of concurrent approvals
//! exactly one wins; a wrong number or signature fails the request and counts against the card.

use std::convert::Infallible;
use std::time::Duration as StdDuration;
use vsc_proto::errors as code;
use vsc_proto::signin::state as request_state;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;
use vsc_core::{AuthRequestState, CardState};
use vsc_proto::signin::{
    ApproveAuthRequest, AuthRequestOutcome, DeclineAuthRequest, PendingAuthRequest,
};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signin::{self as db, AuthRequestRow};

use super::DeviceCaller;
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::metrics::SigninOutcome;
use crate::routes::ApiJson;
use crate::routes::session::card_auth_key;
use crate::routes::signin::{MAX_WAIT_SECONDS, Wait};
use crate::state::AppState;

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
        card_renewal: None,
        licence_warning: None,
    })
}

/// What the phone shows beside each request of `card_id` at `now`: its renewal when due, its
/// licence term when ending. Every path that hands the phone a request fills these in, since
/// the phone takes a request without them to mean "not due".
async fn card_notices(
    state: &AppState,
    conn: &mut vsc_store::Conn,
    card_id: &str,
    now: i64,
) -> ApiResult<(
    Option<vsc_proto::renewal::RenewalWindow>,
    Option<vsc_proto::licences::LicenceWarning>,
)> {
    let card_renewal = match repo::card(conn, card_id).await? {
        Some(row) => super::renewal_window(state, conn, &row, now)
            .await?
            .filter(|w| w.due),
        None => None,
    };
    let licence_warning = crate::routes::ra_licences::holder_warning(conn, card_id, now).await?;
    Ok((card_renewal, licence_warning))
}

/// [`to_pending`] with the card's notices ([`card_notices`]).
async fn pending_with_notices(
    state: &AppState,
    conn: &mut vsc_store::Conn,
    row: &AuthRequestRow,
) -> ApiResult<PendingAuthRequest> {
    let mut pending = to_pending(row)?;
    (pending.card_renewal, pending.licence_warning) =
        card_notices(state, conn, &row.card_id, state.now_unix()).await?;
    Ok(pending)
}

async fn pending_for_device(
    state: &AppState,
    caller: &DeviceCaller,
) -> ApiResult<Vec<PendingAuthRequest>> {
    let mut conn = state.store().pool().acquire().await?;
    let now = state.now_unix();
    let mut out = Vec::new();
    for card in device_cards(&mut conn, caller).await? {
        let rows = db::open_requests_for_card(&mut conn, &card, now).await?;
        if rows.is_empty() {
            continue;
        }
        let (card_renewal, licence_warning) = card_notices(state, &mut conn, &card, now).await?;
        for row in rows {
            let mut pending = to_pending(&row)?;
            pending.card_renewal = card_renewal.clone();
            pending.licence_warning = licence_warning.clone();
            out.push(pending);
        }
    }
    Ok(out)
}

pub(super) async fn device_requests(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Query(wait): Query<Wait>,
) -> ApiResult<Json<Vec<PendingAuthRequest>>> {
    crate::routes::ra_versions::require_device_version(
        &state,
        &caller.ctx,
        &caller.device_id,
        "device.requests",
    )
    .await?;
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

pub(super) async fn device_events(
    State(state): State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>>> {
    crate::routes::ra_versions::require_device_version(
        &state,
        &caller.ctx,
        &caller.device_id,
        "device.events",
    )
    .await?;
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
                    // A card moved to another phone (its tokens deleted) stops here, not at the
                    // next periodic check: the old phone must not see the new phone's requests.
                    if !stream_still_authorised(&state, &token_hash, &cards).await {
                        break;
                    }
                    // The event only names the request (it may have come from another node,
                    // over a channel any database user can notify on): what the phone is sent is
                    // decided by the row, which must be this phone's card's and still pending.
                    let pending = match state.store().pool().acquire().await {
                        Ok(mut conn) => match db::auth_request(&mut conn, &request_id).await.ok().flatten() {
                            Some(r) if cards.contains(&r.card_id) && r.state == AuthRequestState::Pending => {
                                pending_with_notices(&state, &mut conn, &r).await.ok()
                            }
                            _ => None,
                        },
                        Err(_) => None,
                    };
                    if let Some(p) = pending
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

pub(super) async fn approve(
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
    // Before anything is read or decided: a refused version leaves the request pending and
    // counts nothing against the card (updating the app is not a failed sign-in).
    crate::routes::ra_versions::require_device_version(
        state,
        &caller.ctx,
        &caller.device_id,
        "auth.approve",
    )
    .await?;
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
    if !crate::routes::p256_signature_valid(&key, &statement, &signature) {
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
        state: request_state::APPROVED.into(),
    });
    Ok(AuthRequestOutcome {
        state: request_state::APPROVED.into(),
        ticket: None,
        session: None,
        agent_key: None,
    })
}

pub(super) async fn decline(
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

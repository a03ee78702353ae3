//! Sessions: created once when the agent collects an approved request, then used with the
//! ticket as a bearer secret.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/session[?touch=false]` | ticket holder | the session, its roles and timeouts (counts as use unless `touch=false`) |
//! | `POST /api/v1/session/role` | identity agent (ticket + agent key) | select one of the person's positions |
//! | `POST /api/v1/session/logout` | identity agent (ticket + agent key) | end the session at once ("card removal") |
//! | `POST /api/v1/session/lock` | identity agent (ticket + agent key) | the workstation locked: record it (idempotent) |
//! | `POST /api/v1/session/resume` | identity agent (ticket + agent key) | re-open a locked session within the organisation's grace period |
//! | `POST /api/v1/tickets/validate` | relying system | who, which role, which organisation, when, how assured |
//!
//! The ticket is 256 random bits, returned once and stored only as its SHA-256. A session ends at
//! logout, after its idle timeout, at its absolute timeout, when its card is cancelled or locked,
//! or when its holder answers a sign-in request with "I didn't do this".
//!
//! The ticket travels to relying systems, so it only reads: changing the session (its role, its
//! end) also needs the session's agent key, which only the workstation's identity agent holds
//! (header [`vsc_proto::signin::AGENT_KEY_HEADER`]); without it the answer is `agent_key_required`.
//!
//! Locking (issue 14). The server, not the agent, is the authority on a lock: the agent reports
//! it (`session/lock`, which records `locked_at`), and from then on every use through
//! [`AgentSession`] (card operations, signing, role selection) is refused with `session_locked`
//! (HTTP 423 Locked), ticket validation by relying systems too (a locked workstation's person
//! has walked away, so a stolen ticket buys nothing meanwhile), and nothing counts as use: the
//! idle and absolute timeouts keep running and a locked session can time out. `GET
//! /api/v1/session` still answers (with `locked: true`) so the agent can watch it. Two ways
//! out: `session/resume`, allowed only within the grace period of the session's organisation
//! (that of its registered workstation, else the card's issuing organisation, as for admitting
//! unregistered workstations) by one conditional update, else `unlock_grace_over` and nothing
//! changes; or a new phone approval, i.e. a new session (the agent then logs the locked one out,
//! or with fast user switching keeps it locked for its holder to come back to).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use vsc_core::CardState;
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::signin::state as request_state;
use vsc_proto::signin::{
    AuthRequestOutcome, SelectRole, SessionInfo, SessionRole, TicketValidation, ValidateTicket,
};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signin::{self as db, AuthRequestRow, SessionRow};

use super::signin::sha256;
use super::{ApiJson, Client};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// Level of assurance reported for sessions: the software keystore protects keys with a passcode
/// but not with hardware, so the honest level is AAL2; hardware-attested keystores will report AAL3.
pub const LEVEL_OF_ASSURANCE: &str = "AAL2";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::SESSION, get(current))
        .route(routes::SESSION_ROLE, post(select_role))
        .route(routes::SESSION_LOGOUT, post(logout))
        .route(routes::SESSION_LOCK, post(lock))
        .route(routes::SESSION_RESUME, post(resume))
        .route(routes::TICKETS_VALIDATE, post(validate))
}

fn ts(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The person's positions as session roles.
pub(crate) async fn roles_of(conn: &mut Conn, uid: &str) -> ApiResult<Vec<SessionRole>> {
    Ok(to_roles(
        repo::positions_with_organisation_names(conn, uid).await?,
    ))
}

fn to_roles(positions: Vec<(repo::PositionRow, String)>) -> Vec<SessionRole> {
    positions
        .into_iter()
        .map(|(p, organisation_name)| SessionRole {
            position_id: p.id,
            role_code: p.role_code,
            role_name: p.role_name,
            organisation: p.ods_code,
            organisation_name,
            activities: p.activities,
        })
        .collect()
}

/// The session as its identity agent sees it: with the lock policy of its organisation.
async fn info(conn: &mut Conn, s: &SessionRow) -> ApiResult<SessionInfo> {
    let roles = roles_of(conn, &s.uid).await?;
    info_with_roles(conn, s, roles).await
}

async fn info_with_roles(
    conn: &mut Conn,
    s: &SessionRow,
    roles: Vec<SessionRole>,
) -> ApiResult<SessionInfo> {
    let mut info = info_without_policy(conn, s, roles).await?;
    // The agent decides from these whether a second sign-in may park this session.
    if let Some((_, policy)) = vsc_store::workstation::session_policy(conn, &s.id).await? {
        info.unlock_grace_minutes = u32::try_from(policy.unlock_grace_minutes).unwrap_or(0);
        info.fast_user_switching = policy.fast_user_switching;
    }
    Ok(info)
}

/// The session without its organisation's lock policy (what relying systems are told needs
/// none of it).
async fn info_without_policy(
    conn: &mut Conn,
    s: &SessionRow,
    roles: Vec<SessionRole>,
) -> ApiResult<SessionInfo> {
    let person = repo::person(conn, &s.uid)
        .await?
        .ok_or_else(|| ApiError::internal("session without person"))?;
    let selected_role = s
        .position_id
        .as_ref()
        .and_then(|id| roles.iter().find(|r| &r.position_id == id).cloned());
    Ok(SessionInfo {
        locked: s.locked_at.is_some(),
        unlock_grace_minutes: 0,
        fast_user_switching: false,
        uid: s.uid.clone(),
        given_name: person.given_name,
        family_name: person.family_name,
        selected_role,
        roles,
        auth_time: ts(s.auth_time),
        idle_expires_at: ts(s.last_used + s.idle_seconds),
        expires_at: ts(s.expires_at),
        card_renewal: None,
        licence_warning: None,
    })
}

/// The card's renewal window when renewal is due, for the agent's warning (issue 14).
async fn due_renewal(
    state: &AppState,
    conn: &mut Conn,
    card_id: &str,
) -> ApiResult<Option<vsc_proto::renewal::RenewalWindow>> {
    let Some(card) = repo::card(conn, card_id).await? else {
        return Ok(None);
    };
    let window = super::device::renewal_window(state, conn, &card, state.now_unix()).await?;
    Ok(window.filter(|w| w.due))
}

/// Creates the session for an approved request, once: of concurrent collectors exactly one gets
/// the ticket.
pub async fn collect(
    state: &AppState,
    ctx: &AuditContext,
    row: &AuthRequestRow,
) -> ApiResult<AuthRequestOutcome> {
    let now = state.now_unix();
    let mut tx = state.write().await?;
    if !db::collect_request(&mut tx, &row.id).await? {
        return Ok(AuthRequestOutcome {
            state: request_state::COLLECTED.into(),
            ticket: None,
            session: None,
            agent_key: None,
        });
    }
    let (card, limits) = db::card_with_session_limits(&mut tx, &row.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("request without card"))?;
    // The card may have been cancelled or locked between the approval and this collection.
    if let Err(err) = card_auth_key(&mut tx, &card, now).await {
        drop(tx);
        // The approval is spent: later polls see `failed` instead of this refusal again.
        let mut tx = state.write().await?;
        db::fail_approved_request(&mut tx, &row.id).await?;
        tx.commit().await?;
        state
            .metrics()
            .signin_outcome(crate::metrics::SigninOutcome::CollectRefused);
        state
            .audit_failure(ctx, "session.create", &row.uid, &card.issued_by, &err)
            .await;
        return Err(err.audited());
    }
    let (idle, max) = limits.unwrap_or((900, 43_200));
    let roles = roles_of(&mut tx, &row.uid).await?;
    // With one position there is nothing to choose.
    let position_id = (roles.len() == 1).then(|| roles[0].position_id.clone());
    let ticket = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    let session = SessionRow {
        id: state.new_id()?,
        ticket_hash: sha256(ticket.as_bytes()),
        uid: row.uid.clone(),
        card_id: row.card_id.clone(),
        request_id: row.id.clone(),
        position_id,
        workstation_id: row.workstation_id.clone(),
        auth_time: row.decided_at.unwrap_or(now),
        last_used: now,
        idle_seconds: idle,
        expires_at: now + max,
        ended_at: None,
        end_reason: None,
        locked_at: None,
    };
    // The agent's own key, beside the ticket that relying systems will see (see
    // `AGENT_KEY_HEADER`): only its hash is kept.
    let agent_key = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    db::insert_session(&mut tx, &session, Some(&sha256(agent_key.as_bytes()))).await?;
    // What the agent is told about its session, read in the same transaction.
    let mut session_info = info_with_roles(&mut tx, &session, roles).await?;
    session_info.card_renewal = due_renewal(state, &mut tx, &session.card_id).await?;
    session_info.licence_warning =
        super::ra_licences::holder_warning(&mut tx, &session.card_id, now).await?;
    let actor = AuditContext {
        actor: row.uid.clone(),
        source: ctx.source,
    };
    state.append_audit(
        &mut tx,
        &actor.event(
            "session.created",
            &row.uid,
            &card.issued_by,
            serde_json::json!({"session_id": session.id, "request_id": row.id, "workstation_id": row.workstation_id, "role": session.position_id}),
        ),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    state
        .metrics()
        .signin_outcome(crate::metrics::SigninOutcome::Collected);
    Ok(AuthRequestOutcome {
        state: request_state::COLLECTED.into(),
        ticket: Some(ticket.to_string()),
        session: Some(session_info),
        agent_key: Some(agent_key.to_string()),
    })
}

/// Finds the live session of a ticket. With `touch` the call counts as use and moves the idle
/// deadline; without, it only looks (an agent checking its own session must not keep an unused
/// session alive).
async fn live_session(state: &AppState, ticket: &str, touch: bool) -> ApiResult<SessionRow> {
    let mut conn = state.store().pool().acquire().await?;
    let s = db::session_by_ticket(&mut conn, &sha256(ticket.trim().as_bytes()))
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::TICKET_INVALID,
                "this ticket does not belong to any session",
            )
        })?;
    let now = state.now_unix();
    if s.ended_at.is_some() {
        return Err(ApiError::unauthorized(
            code::SESSION_ENDED,
            format!(
                "this session has ended ({}); sign in again",
                s.end_reason.as_deref().unwrap_or("logout")
            ),
        ));
    }
    if s.expires_at <= now {
        return Err(ApiError::unauthorized(
            code::SESSION_EXPIRED,
            "this session reached its maximum length; sign in again",
        ));
    }
    if s.last_used + s.idle_seconds <= now {
        return Err(ApiError::unauthorized(
            code::SESSION_IDLE_TIMEOUT,
            "this session was idle too long; sign in again",
        ));
    }
    // A use within the last few seconds already moved the deadline: relying systems validate
    // a ticket on every page, and a write per validation would put them all in the writer's
    // queue. The deadline then moves in steps, so an idle session ends at most one step
    // earlier than exact, never later.
    // A locked session is looked at, never used: its idle timeout keeps running.
    if !touch || s.locked_at.is_some() || now - s.last_used < touch_step(s.idle_seconds) {
        return Ok(s);
    }
    // The conditional update also catches an end that happened since the read.
    drop(conn);
    let mut tx = state.write().await?;
    let touched = db::touch_session(&mut tx, &s.id, now).await?;
    tx.commit().await?;
    if !touched {
        // Ended, timed out or locked since the read: a lock that won the race is not an end.
        let mut conn = state.store().pool().acquire().await?;
        if let Some(now_locked) = db::session_by_ticket(&mut conn, &s.ticket_hash)
            .await?
            .filter(|r| r.ended_at.is_none() && r.locked_at.is_some())
        {
            return Ok(now_locked);
        }
        return Err(ApiError::unauthorized(
            code::SESSION_ENDED,
            "this session has ended; sign in again",
        ));
    }
    Ok(SessionRow {
        last_used: now,
        ..s
    })
}

/// How stale a session's `last_used` may be before a use writes it again: a tenth of the idle
/// timeout, at most 30 seconds.
fn touch_step(idle_seconds: i64) -> i64 {
    (idle_seconds / 10).clamp(0, 30)
}

/// The bearer of a live session ticket.
#[derive(Debug, Clone)]
pub struct TicketHolder {
    /// The session.
    pub session: SessionRow,
    /// For the audit log.
    pub ctx: AuditContext,
}

impl FromRequestParts<AppState> for TicketHolder {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Client(client) = Client::from_request_parts(parts, state).await?;
        let ticket = super::bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                code::TICKET_MISSING,
                "send the session ticket as a bearer token",
            )
        });
        let ticket = match ticket {
            Ok(t) => t,
            Err(err) => {
                let path = parts.uri.path().to_owned();
                state
                    .audit_failure(&client, "session.ticket", &path, "", &err)
                    .await;
                return Err(err);
            }
        };
        // `?touch=false` looks without counting as use.
        let touch = !parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "touch=false"));
        let session = match live_session(state, ticket, touch).await {
            Ok(s) => s,
            Err(err) => {
                let path = parts.uri.path().to_owned();
                state
                    .audit_failure(&client, "session.ticket", &path, "", &err)
                    .await;
                return Err(err);
            }
        };
        Ok(TicketHolder {
            ctx: AuditContext {
                actor: session.uid.clone(),
                source: client.source,
            },
            session,
        })
    }
}

/// A session's holder that is also the workstation's identity agent: the ticket plus the
/// session's agent key (header [`vsc_proto::signin::AGENT_KEY_HEADER`], compared in constant
/// time with the stored hash). Signing and the virtual card's operations need it; a relying
/// system that only saw the ticket gets `agent_key_required`.
#[derive(Debug)]
pub struct AgentSession(pub TicketHolder);

impl FromRequestParts<AppState> for AgentSession {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let holder = TicketHolder::from_request_parts(parts, state).await?;
        let checked = check_agent_key(state, &holder.session.id, &parts.headers)
            .await
            .and_then(|locked_at| match locked_at {
                // The one place every agent-key use other than lock, resume and logout passes.
                Some(_) => Err(session_locked()),
                None => Ok(()),
            });
        if let Err(err) = checked {
            let path = parts.uri.path().to_owned();
            state
                .audit_failure(&holder.ctx, "session.agent_key", &path, "", &err)
                .await;
            return Err(err);
        }
        Ok(AgentSession(holder))
    }
}

/// The refusal of a use of a locked session.
fn session_locked() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::LOCKED,
        code::SESSION_LOCKED,
        "this session's workstation is locked: unlock it first (`vsc agent unlock`)",
    )
}

/// Checks the session's agent key (header [`vsc_proto::signin::AGENT_KEY_HEADER`]) against its
/// stored hash, in constant time; `agent_key_required` when it is missing or wrong. Returns when
/// the session was locked, if it is.
async fn check_agent_key(
    state: &AppState,
    session_id: &str,
    headers: &axum::http::HeaderMap,
) -> ApiResult<Option<i64>> {
    let given = headers
        .get(vsc_proto::signin::AGENT_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| sha256(k.trim().as_bytes()));
    let mut conn = state.store().pool().acquire().await?;
    let (stored, locked_at) = db::session_agent_key_and_lock(&mut conn, session_id)
        .await?
        .unwrap_or((None, None));
    drop(conn);
    let matches = match (given, stored) {
        (Some(given), Some(stored)) => bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            stored.as_slice(),
        )),
        _ => false,
    };
    if matches {
        Ok(locked_at)
    } else {
        Err(ApiError::unauthorized(
            code::AGENT_KEY_REQUIRED,
            "only the workstation's identity agent may sign, use the card, change the role or log out: send the session's agent key (X-Vsc-Agent-Key) with the ticket",
        ))
    }
}

async fn current(
    State(state): State<AppState>,
    holder: TicketHolder,
) -> ApiResult<Json<SessionInfo>> {
    let mut conn = state.store().pool().acquire().await?;
    let mut session = info(&mut conn, &holder.session).await?;
    session.card_renewal = due_renewal(&state, &mut conn, &holder.session.card_id).await?;
    session.licence_warning =
        super::ra_licences::holder_warning(&mut conn, &holder.session.card_id, state.now_unix())
            .await?;
    Ok(Json(session))
}

/// Selects the session's role: the identity agent only (a relying system that saw the ticket
/// must not change who the person acts as).
async fn select_role(
    State(state): State<AppState>,
    AgentSession(holder): AgentSession,
    ApiJson(req): ApiJson<SelectRole>,
) -> ApiResult<Json<SessionInfo>> {
    let s = &holder.session;
    let mut tx = state.write().await?;
    let positions = repo::positions(&mut tx, &s.uid).await?;
    let Some(position) = positions.iter().find(|p| p.id == req.position_id) else {
        let err = ApiError::bad_request(
            code::UNKNOWN_ROLE,
            "that position is not one of this person's roles",
        );
        drop(tx);
        state
            .audit_failure(&holder.ctx, "session.role", &s.uid, "", &err)
            .await;
        return Err(err);
    };
    if !db::set_session_position(&mut tx, &s.id, &position.id).await? {
        let err =
            ApiError::unauthorized(code::SESSION_ENDED, "this session has ended; sign in again");
        drop(tx);
        state
            .audit_failure(&holder.ctx, "session.role", &s.uid, "", &err)
            .await;
        return Err(err);
    }
    state.append_audit(
        &mut tx,
        &holder.ctx.event(
            "session.role_selected",
            &s.uid,
            &position.ods_code,
            serde_json::json!({"session_id": s.id, "position_id": position.id, "role_code": position.role_code}),
        ),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    let mut conn = state.store().pool().acquire().await?;
    let updated = SessionRow {
        position_id: Some(position.id.clone()),
        ..s.clone()
    };
    Ok(Json(info(&mut conn, &updated).await?))
}

/// Ends the session of the bearer ticket at once, whether or not it has timed out meanwhile
/// (so `ended_at` always records the logout), without counting as use. The identity agent only:
/// the ticket must come with the session's agent key.
async fn logout(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    state
        .audited(
            &ctx,
            "session.logout",
            "",
            logout_inner(&state, &ctx, &headers),
        )
        .await
        .map(Json)
}

async fn logout_inner(
    state: &AppState,
    ctx: &AuditContext,
    headers: &axum::http::HeaderMap,
) -> ApiResult<serde_json::Value> {
    let ticket = super::bearer_token(headers).ok_or_else(|| {
        ApiError::unauthorized(
            code::TICKET_MISSING,
            "send the session ticket as a bearer token",
        )
    })?;
    let ticket_hash = sha256(ticket.trim().as_bytes());
    let s = {
        let mut conn = state.store().pool().acquire().await?;
        db::session_by_ticket(&mut conn, &ticket_hash)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    code::TICKET_INVALID,
                    "this ticket does not belong to any session",
                )
            })?
    };
    // Logging out works on a locked session too (that is how a locked session is replaced).
    check_agent_key(state, &s.id, headers).await?;
    let mut tx = state.write().await?;
    let ended = db::end_session(&mut tx, &s.id, state.now_unix(), "logout").await?;
    if ended {
        let actor = AuditContext {
            actor: s.uid.clone(),
            source: ctx.source,
        };
        state
            .append_audit(
                &mut tx,
                &actor.event(
                    "session.ended",
                    &s.uid,
                    "",
                    serde_json::json!({"session_id": s.id, "reason": "logout"}),
                ),
                state.now_ms(),
            )
            .await?;
    }
    tx.commit().await?;
    Ok(serde_json::json!({"ended": true, "already_ended": !ended}))
}

/// The holder of a session that is also its identity agent, whether or not the session is
/// locked: for lock and resume only.
async fn agent_even_if_locked(
    state: &AppState,
    holder: &TicketHolder,
    headers: &axum::http::HeaderMap,
    action: &str,
) -> ApiResult<Option<i64>> {
    match check_agent_key(state, &holder.session.id, headers).await {
        Ok(locked_at) => Ok(locked_at),
        Err(err) => {
            state
                .audit_failure(&holder.ctx, action, &holder.session.uid, "", &err)
                .await;
            Err(err)
        }
    }
}

/// Records that the session's workstation locked. Idempotent: locking a locked session keeps
/// the first lock's time (so the grace period cannot be stretched by locking again).
async fn lock(
    State(state): State<AppState>,
    holder: TicketHolder,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    agent_even_if_locked(&state, &holder, &headers, "session.lock").await?;
    let s = &holder.session;
    state
        .audited(&holder.ctx, "session.lock", &s.uid, async {
            let now = state.now_unix();
            let mut tx = state.write().await?;
            let newly = db::lock_session(&mut tx, &s.id, now).await?;
            if newly {
                state
                    .append_audit(
                        &mut tx,
                        &holder.ctx.event(
                            "session.locked",
                            &s.uid,
                            "",
                            serde_json::json!({"session_id": s.id, "workstation_id": s.workstation_id}),
                        ),
                        state.now_ms(),
                    )
                    .await?;
            }
            let locked_at = db::session_locked_at(&mut tx, &s.id).await?;
            tx.commit().await?;
            let Some(locked_at) = locked_at else {
                return Err(ApiError::unauthorized(
                    code::SESSION_ENDED,
                    "this session has ended; sign in again",
                ));
            };
            Ok(Json(serde_json::json!({
                "locked": true,
                "already_locked": !newly,
                "locked_at": ts(locked_at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            })))
        })
        .await
}

/// Re-opens a locked session without a phone approval, within the grace period of the
/// session's organisation; otherwise `unlock_grace_over` (nothing changes: the agent asks the
/// phone instead) or `session_not_locked`.
async fn resume(
    State(state): State<AppState>,
    holder: TicketHolder,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<vsc_proto::workstation::SessionResumed>> {
    let locked_at = agent_even_if_locked(&state, &holder, &headers, "session.resume").await?;
    let s = &holder.session;
    state
        .audited(&holder.ctx, "session.resume", &s.uid, async {
            let not_locked = || {
                ApiError::conflict(
                    code::SESSION_NOT_LOCKED,
                    "this session is not locked: there is nothing to resume",
                )
            };
            let Some(locked_at) = locked_at else {
                return Err(not_locked());
            };
            let now = state.now_unix();
            let mut tx = state.write().await?;
            let (ods, policy) = vsc_store::workstation::session_policy(&mut tx, &s.id)
                .await?
                .ok_or_else(|| ApiError::internal("session without organisation"))?;
            let grace_over = || {
                ApiError::forbidden(
                    code::UNLOCK_GRACE_OVER,
                    if policy.unlock_grace_minutes == 0 {
                        format!("{ods} has no unlock grace period: approve the unlock on your phone")
                    } else {
                        format!(
                            "the {}-minute unlock grace period of {ods} is over: approve the unlock on your phone",
                            policy.unlock_grace_minutes
                        )
                    },
                )
            };
            if policy.unlock_grace_minutes <= 0 {
                return Err(grace_over());
            }
            // Somebody else signed in here after the lock (fast user switching): whoever is at
            // the keyboard now may not be this session's holder.
            if db::signed_in_since_lock(&mut tx, &s.id).await? {
                return Err(ApiError::forbidden(
                    code::UNLOCK_GRACE_OVER,
                    "another person signed in on this workstation after it was locked: approve the unlock on your phone",
                ));
            }
            let cutoff = now - policy.unlock_grace_minutes * 60;
            if !db::resume_session(&mut tx, &s.id, cutoff, now).await? {
                // Lost to a concurrent resume or logout, timed out meanwhile, or the grace
                // period is over.
                let now_row = db::session_by_ticket(&mut tx, &s.ticket_hash).await?;
                return Err(match now_row {
                    Some(r)
                        if r.ended_at.is_some()
                            || r.expires_at <= now
                            || r.last_used + r.idle_seconds <= now =>
                    {
                        ApiError::unauthorized(
                            code::SESSION_ENDED,
                            "this session has ended; sign in again",
                        )
                    }
                    Some(r) if r.locked_at.is_some() => grace_over(),
                    _ => not_locked(),
                });
            }
            // The person is back: this counts as use.
            db::touch_session(&mut tx, &s.id, now).await?;
            let seconds = u64::try_from(now - locked_at).unwrap_or(0);
            state
                .append_audit(
                    &mut tx,
                    &holder.ctx.event(
                        "session.resumed",
                        &s.uid,
                        &ods,
                        serde_json::json!({"session_id": s.id, "grace": true, "seconds_since_lock": seconds}),
                    ),
                    state.now_ms(),
                )
                .await?;
            tx.commit().await?;
            Ok(Json(vsc_proto::workstation::SessionResumed {
                seconds_since_lock: seconds,
                unlock_grace_minutes: u32::try_from(policy.unlock_grace_minutes).unwrap_or(0),
            }))
        })
        .await
}

async fn validate(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<ValidateTicket>,
) -> ApiResult<Json<TicketValidation>> {
    let s = match live_session(&state, &req.ticket, true).await {
        Ok(s) => s,
        Err(err) => {
            state
                .audit_failure(&ctx, "ticket.validate", "", "", &err)
                .await;
            return Err(err);
        }
    };
    // While the workstation is locked its person is away: the ticket admits nobody meanwhile.
    if s.locked_at.is_some() {
        let err = session_locked();
        state
            .audit_failure(&ctx, "ticket.validate", &s.uid, "", &err)
            .await;
        return Err(err);
    }
    let mut conn = state.store().pool().acquire().await?;
    let roles = roles_of(&mut conn, &s.uid).await?;
    let info = info_without_policy(&mut conn, &s, roles).await?;
    Ok(Json(TicketValidation {
        uid: info.uid,
        given_name: info.given_name,
        family_name: info.family_name,
        role: info.selected_role,
        auth_time: info.auth_time,
        level_of_assurance: LEVEL_OF_ASSURANCE.into(),
        expires_at: info.expires_at,
    }))
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
    let mut expired = None;
    for cert in repo::certificates_of(conn, &card.id).await? {
        if cert.usage == "authentication"
            && cert.revoked_at.is_none()
            && cert.not_before <= now
            && now < cert.not_after
        {
            return Ok(vsc_pki::certificate_info(&cert.der)?.spki_der);
        }
        // Renewal (issue 14): an unrevoked authentication certificate past its end says why.
        if cert.usage == "authentication" && cert.revoked_at.is_none() && now >= cert.not_after {
            expired = expired.max(Some(cert.not_after));
        }
    }
    if let Some(not_after) = expired {
        return Err(crate::routes::device::card_expired(not_after));
    }
    Err(ApiError::forbidden(
        code::CERTIFICATE_INVALID,
        "the card's authentication certificate is revoked or outside its validity",
    ))
}

//! Virtual smartcard licences, as the NHS runs them: a national pool held by the national
//! organisation, allocated to organisations in blocks with a term.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/ra/licences/pool` | any RA | the pool and its waiting list |
//! | `POST /api/v1/ra/licences/pool` | RA Manager at the national organisation | create the pool, top it up (licences, extension funding), set its grace, warning and default term periods; a licence top-up serves the waiting list in order, a funding top-up the extension queue |
//! | `POST /api/v1/ra/licences/applications` | RA Manager of the organisation (or national) | apply for licences: how many, contact, for which systems |
//! | `POST /api/v1/ra/licences/approve` | RA Manager at the national organisation | approve waiting applications, first come first served, while the pool lasts |
//! | `POST /api/v1/ra/licences/return` | RA Manager of the organisation (or national) | give unused licences back; the pool then serves the waiting list in order |
//! | `GET /api/v1/ra/licences/extensions` | any RA | extension requests with their place in the queue (their own organisations'; national: all) |
//! | `POST /api/v1/ra/licences/extensions` | RA Manager of the block's organisation (or national) | ask for a block's term to be extended to a day; joins the extension queue (a national RA Manager's request is approved at once when first and funded) |
//! | `POST /api/v1/ra/licences/extensions/approve` | RA Manager at the national organisation | approve the extension queue first come first served while the funding lasts (licences × days each) |
//! | `POST /api/v1/ra/licences/extensions/withdraw` | RA Manager of the request's organisation (or national) | withdraw a waiting extension request |
//! | `GET /api/v1/ra/licences/report` | any RA | per organisation (their own; national: all): allocated, used, free, waiting, expiring |
//!
//! **Enforcement is off until a pool exists.** An instance without a `licence_pool` row issues
//! cards as before; once a national RA Manager creates the pool, every card issued takes a
//! licence. Cards issued before hold none and are never cut off by a term.
//!
//! **When a card takes its licence: at issuance**, in `issue_card`'s transaction. Issuing is the
//! RA's decision to give a person a card, and it is the RA (not the holder on a phone) who can
//! act on "no free licence" — so the refusal comes where it can be acted on, before an
//! activation code exists. A pending card that is never enrolled holds its licence until it is
//! cancelled (which gives the licence back, in `cancel_card`'s transaction).
//!
//! **Order.** The waiting list is ordered by time of application, ties by id. Approval is strict
//! first come first served: the first waiting application is approved in full or not at all,
//! and a smaller later one never jumps it. A return lowers the organisation's blocks (those
//! ending soonest first, never below the licences their cards hold), and the pool then approves
//! the waiting list in order as far as it lasts, with the default term.
//!
//! **Terms.** A block's term runs from the start of its first day to the end of its last day
//! (UTC). A card takes a licence only from a block in term. After the term ends, the block's
//! cards still sign in for the pool's grace period (`grace_days`), and then are refused with
//! `licence_expired`. From `warn_days` before the end, the block is `expiring` in the report,
//! whose `warnings` RAs see (and `vsc ra licences report` prints), and each sign-in tells the
//! card's holder ([`holder_warning`]: the agent's session, the phone's request) until the grace
//! period ends.
//!
//! **Extensions** are a queue like the waiting list: an organisation asks for a block's term to
//! end on a later day; national RA Managers approve the queue in order (time of request, ties
//! by id), each request in full — the block's licences × the days added, spent from the pool's
//! funding — or the run stops, so a later, cheaper request never jumps one the funding is short
//! for. A block has at most one waiting request (withdraw it to ask for another day). A request
//! for a block whose grace period is over is refused (`licence_term_over`); one whose block's
//! grace period ends while it waits lapses when the queue is next served. A funding top-up
//! serves the queue at once, as a licence top-up (and a return) serves the waiting list.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use time::{Date, OffsetDateTime};
use vsc_core::{OdsCode, RaAction, RaRole};
use vsc_proto::errors as code;
use vsc_proto::licences::{
    Application, Apply, Approve, ApproveExtensions, Extend, Extension, Extensions,
    ExtensionsChanged, LicenceWarning, LicencesChanged, Pool, Report, ReportRow, Return, SetPool,
    WithdrawExtension,
};
use vsc_proto::routes;
use vsc_store::Conn;
use vsc_store::licences::{self as db, ApplicationRow, DAY, ExtensionRow, PoolRow};

use super::ApiJson;
use super::ra::RaCaller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most licences in one application or return.
const MAX_COUNT: i64 = 100_000;
/// Most licences one top-up adds.
const MAX_TOP_UP: i64 = 10_000_000;
/// Most funding one top-up adds (licence-days).
const MAX_FUNDING: i64 = 10_000_000_000;
/// Longest contact or systems text.
const MAX_TEXT: usize = 200;
/// Longest term, in days.
const MAX_TERM_DAYS: i64 = 3650;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RA_LICENCES_POOL, get(get_pool).post(set_pool))
        .route(routes::RA_LICENCES_APPLY, post(apply))
        .route(routes::RA_LICENCES_APPROVE, post(approve))
        .route(routes::RA_LICENCES_RETURN, post(give_back))
        .route(
            routes::RA_LICENCES_EXTENSIONS,
            get(list_extensions).post(request_extension),
        )
        .route(
            routes::RA_LICENCES_EXTENSIONS_APPROVE,
            post(approve_extensions),
        )
        .route(
            routes::RA_LICENCES_EXTENSIONS_WITHDRAW,
            post(withdraw_extension),
        )
        .route(routes::RA_LICENCES_REPORT, get(report))
}

// ---------------------------------------------------------------------------------------------
// Issuance, cancellation and sign-in

/// Takes a licence for a new card at `ods`, inside the issuing transaction. Without a pool,
/// nothing (enforcement is off). Without a free licence, `no_free_licence` with where the
/// organisation stands in the waiting list.
pub async fn take_for_card(
    conn: &mut Conn,
    card_id: &str,
    ods: &str,
    now: i64,
) -> ApiResult<Option<i64>> {
    if db::pool(conn).await?.is_none() {
        return Ok(None);
    }
    if let Some(block) = db::take(conn, card_id, ods, now).await? {
        return Ok(Some(block));
    }
    let waiting = db::waiting(conn).await?;
    let standing = match waiting.iter().position(|a| a.ods_code == ods) {
        Some(i) => {
            let a = &waiting[i];
            format!(
                "its application #{} for {} licences is number {} of {} in the waiting list",
                a.id,
                a.requested,
                i + 1,
                waiting.len()
            )
        }
        None => format!(
            "it has no application in the waiting list (which holds {}): an RA Manager of {ods} applies with `vsc ra licences apply`",
            waiting.len()
        ),
    };
    Err(ApiError::conflict(
        code::NO_FREE_LICENCE,
        format!(
            "{ods} has no free virtual smartcard licence in term, so no card can be issued; {standing}. Cancelling a card frees its licence"
        ),
    ))
}

/// Gives back the licence of a cancelled card, inside the cancelling transaction.
pub async fn release_for_card(conn: &mut Conn, card_id: &str, now: i64) -> ApiResult<()> {
    db::release(conn, card_id, now).await?;
    Ok(())
}

/// Refuses sign-in with a card whose licence's term ended more than the grace period ago.
pub async fn check_signin(conn: &mut Conn, card_id: &str, now: i64) -> ApiResult<()> {
    let Some(pool) = db::pool(conn).await? else {
        return Ok(());
    };
    let Some(end) = db::term_end_of_card(conn, card_id).await? else {
        return Ok(());
    };
    let cutoff = end + pool.grace_days * DAY;
    if now >= cutoff {
        return Err(ApiError::forbidden(
            code::LICENCE_EXPIRED,
            format!(
                "the virtual smartcard licence of card {card_id} ended on {} and its grace period of {} days ended on {}: sign-in is refused until the organisation's licence term is extended; contact your RA",
                day(end - DAY),
                pool.grace_days,
                day(cutoff - DAY)
            ),
        ));
    }
    Ok(())
}

/// What the holder of `card_id` is told about their licence's term at `now`: from the pool's
/// warning period before the term ends until the grace period is over; `None` otherwise (and
/// always when no pool exists or the card holds no licence).
///
/// This runs on the sign-in path (each collected session, each phone poll), so it is one query
/// ([`db::holder_term`]: the card's licence joined to its block and the pool, with a waiting
/// extension request as a subquery) and no writes.
pub async fn holder_warning(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> ApiResult<Option<LicenceWarning>> {
    let Some(t) = db::holder_term(conn, card_id).await? else {
        return Ok(None);
    };
    let cutoff = t.term_end.saturating_add(t.grace_days.saturating_mul(DAY));
    if now < t.term_end.saturating_sub(t.warn_days.saturating_mul(DAY)) || now >= cutoff {
        return Ok(None);
    }
    let ended = now >= t.term_end;
    let term_end = day(t.term_end - DAY);
    let last_sign_in_day = day(cutoff - DAY);
    let next = match t.extension_to {
        Some(to) => format!(
            "Your RA has asked for an extension to {}, which waits for approval — ask them if unsure.",
            day(to - DAY)
        ),
        None => "Ask your RA about extending it.".to_owned(),
    };
    let message = format!(
        "Your organisation's ({}) smartcard licence {} on {term_end}; after {last_sign_in_day} this card can no longer sign in. {next}",
        t.ods_code,
        if ended { "ended" } else { "ends" }
    );
    Ok(Some(LicenceWarning {
        organisation: t.ods_code,
        term_end,
        last_sign_in_day,
        ended,
        message,
    }))
}

// ---------------------------------------------------------------------------------------------
// Checks and conversions

fn day(t: i64) -> String {
    let d = OffsetDateTime::from_unix_timestamp(t)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code::INVALID_LICENCE_REQUEST, message)
}

/// Midnight (UTC) starting `date` (`YYYY-MM-DD`).
fn parse_day(field: &str, text: &str) -> ApiResult<i64> {
    let bad = || invalid(format!("{field} must be a date written YYYY-MM-DD"));
    let text = text.trim();
    if text.len() != 10 {
        return Err(bad());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(text, &format).map_err(|_| bad())?;
    if !(2000..=2200).contains(&date.year()) {
        return Err(invalid(format!(
            "{field} must be between the years 2000 and 2200"
        )));
    }
    Ok(date.midnight().assume_utc().unix_timestamp())
}

fn today(now: i64) -> i64 {
    now - now.rem_euclid(DAY)
}

fn check_count(what: &str, n: i64, max: i64, min: i64) -> ApiResult<i64> {
    if n < min || n > max {
        return Err(invalid(format!("{what} must be from {min} to {max}")));
    }
    Ok(n)
}

fn check_text(what: &str, s: &str) -> ApiResult<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_TEXT || !vsc_core::text::displays_as_written(s) {
        return Err(invalid(format!(
            "{what} must be 1 to {MAX_TEXT} printable characters"
        )));
    }
    Ok(s.to_owned())
}

fn parse_ods(s: &str) -> ApiResult<OdsCode> {
    s.trim().parse().map_err(|e: vsc_core::IdError| {
        ApiError::bad_request(code::INVALID_ODS_CODE, e.to_string())
    })
}

async fn known_organisation(conn: &mut Conn, ods: &OdsCode) -> ApiResult<()> {
    vsc_store::repo::organisation(conn, ods.as_str())
        .await?
        .map(|_| ())
        .ok_or_else(|| {
            ApiError::not_found(
                code::UNKNOWN_ORGANISATION,
                format!("no organisation has ODS code {ods}"),
            )
        })
}

fn is_ram_at(caller: &RaCaller, ods: &str) -> bool {
    caller
        .grants
        .iter()
        .any(|g| g.role == RaRole::RaManager && g.organisation.as_str() == ods)
}

/// Pool, approvals and extensions: RA Managers at the national organisation.
fn national_manager(state: &AppState, caller: &RaCaller, what: &str) -> ApiResult<()> {
    let national = state.national_ods();
    if is_ram_at(caller, national) {
        return Ok(());
    }
    let code = if caller.grants.iter().any(|g| g.role == RaRole::RaManager) {
        code::RA_OUTSIDE_ORGANISATION
    } else {
        code::RA_ROLE_NOT_PERMITTED
    };
    Err(ApiError::forbidden(
        code,
        format!("only an RA Manager at the national organisation ({national}) may {what}"),
    ))
}

/// Applications and returns: RA Managers of the organisation (or national ones).
fn organisation_manager(
    state: &AppState,
    caller: &RaCaller,
    ods: &OdsCode,
    what: &str,
) -> ApiResult<()> {
    if is_ram_at(caller, ods.as_str()) || is_ram_at(caller, state.national_ods()) {
        return Ok(());
    }
    let code = if caller.grants.iter().any(|g| g.role == RaRole::RaManager) {
        code::RA_OUTSIDE_ORGANISATION
    } else {
        code::RA_ROLE_NOT_PERMITTED
    };
    Err(ApiError::forbidden(
        code,
        format!("only an RA Manager of {ods} may {what}"),
    ))
}

async fn require_pool(conn: &mut Conn) -> ApiResult<PoolRow> {
    db::pool(conn).await?.ok_or_else(|| {
        ApiError::conflict(
            code::NO_LICENCE_POOL,
            "there is no licence pool yet (licences are not enforced): a national RA Manager creates it with `vsc ra licences pool --add N`",
        )
    })
}

fn application(a: &ApplicationRow, position: Option<i64>) -> Application {
    Application {
        id: a.id,
        organisation: a.ods_code.clone(),
        requested: a.requested,
        contact: a.contact.clone(),
        systems: a.systems.clone(),
        state: a.state.clone(),
        applied_at: rfc3339(a.applied_at),
        position,
        allocated: a.allocated,
        used: a.used,
        start: a.term_start.map(day),
        end: a.term_end.map(|e| day(e - DAY)),
        extension_requested_to: None,
        extension_position: None,
    }
}

async fn pool_view(conn: &mut Conn, now: i64) -> ApiResult<Pool> {
    let waiting: Vec<Application> = db::waiting(conn)
        .await?
        .iter()
        .enumerate()
        .map(|(i, a)| application(a, Some(i as i64 + 1)))
        .collect();
    let Some(p) = db::pool(conn).await? else {
        return Ok(Pool {
            exists: false,
            total: 0,
            allocated: 0,
            available: 0,
            funding: 0,
            grace_days: 0,
            warn_days: 0,
            term_days: 0,
            waiting,
        });
    };
    let allocated = db::allocated_total(conn, now, p.grace_days * DAY).await?;
    Ok(Pool {
        exists: true,
        total: p.total,
        allocated,
        available: (p.total - allocated).max(0),
        funding: p.funding,
        grace_days: p.grace_days,
        warn_days: p.warn_days,
        term_days: p.term_days,
        waiting,
    })
}

/// Approves the waiting list in order while the pool lasts (`only`: just the first, which must
/// be that one). Answers the approved applications.
async fn serve_waiting(
    conn: &mut Conn,
    pool: &PoolRow,
    start: Option<i64>,
    end: Option<i64>,
    by: &str,
    now: i64,
    only: Option<i64>,
) -> ApiResult<Vec<ApplicationRow>> {
    let mut available = pool.total - db::allocated_total(conn, now, pool.grace_days * DAY).await?;
    let start = start.unwrap_or_else(|| today(now));
    let end = end.unwrap_or(start + pool.term_days * DAY);
    let mut approved = Vec::new();
    for a in db::waiting(conn).await? {
        if a.requested > available {
            break;
        }
        if !db::approve(conn, a.id, start, end, by, now).await? {
            return Err(ApiError::conflict(
                code::UNKNOWN_LICENCE_APPLICATION,
                "the waiting list changed meanwhile; look at it again",
            ));
        }
        available -= a.requested;
        approved.push(db::application(conn, a.id).await?.unwrap_or(a));
        if only.is_some() {
            break;
        }
    }
    Ok(approved)
}

// ---------------------------------------------------------------------------------------------
// The routes

async fn get_pool(State(state): State<AppState>, caller: RaCaller) -> ApiResult<Json<Pool>> {
    state
        .audited(&caller.ctx, "licences.pool.view", "", async {
            if !caller.grants.iter().any(|g| g.role.permits(RaAction::View)) {
                return Err(ApiError::forbidden(
                    code::RA_ROLE_NOT_PERMITTED,
                    "your RA roles do not allow you to view RA records",
                ));
            }
            let mut conn = state.store().pool().acquire().await?;
            pool_view(&mut conn, state.now_unix()).await.map(Json)
        })
        .await
}

async fn set_pool(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<SetPool>,
) -> ApiResult<Json<LicencesChanged>> {
    state
        .audited(&caller.ctx, "licences.pool.set", "", async {
            national_manager(&state, &caller, "change the licence pool")?;
            let add = check_count("the licences to add", req.add_licences.unwrap_or(0), MAX_TOP_UP, 0)?;
            let funding = check_count("the funding to add (licence-days)", req.add_funding.unwrap_or(0), MAX_FUNDING, 0)?;
            let grace = req.grace_days.map(|d| check_count("the grace period (days)", d, 90, 0)).transpose()?;
            let warn = req.warn_days.map(|d| check_count("the warning period (days)", d, 365, 1)).transpose()?;
            let term = req.term_days.map(|d| check_count("the default term (days)", d, MAX_TERM_DAYS, 1)).transpose()?;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            let before = db::pool(&mut tx).await?;
            let mut p = before.clone().unwrap_or(PoolRow {
                total: 0,
                funding: 0,
                grace_days: 14,
                warn_days: 30,
                term_days: 365,
                created_by: caller.uid.clone(),
                created_at: now,
                updated_at: now,
            });
            p.total += add;
            p.funding += funding;
            p.grace_days = grace.unwrap_or(p.grace_days);
            p.warn_days = warn.unwrap_or(p.warn_days);
            p.term_days = term.unwrap_or(p.term_days);
            p.updated_at = now;
            db::set_pool(&mut tx, &p).await?;
            let action = if before.is_none() { "licences.pool_created" } else { "licences.pool_changed" };
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        action,
                        "pool",
                        state.national_ods(),
                        serde_json::json!({"added_licences": add, "added_funding": funding, "total": p.total, "funding": p.funding, "grace_days": p.grace_days, "warn_days": p.warn_days, "term_days": p.term_days}),
                    ),
                    state.now_ms(),
                )
                .await?;
            // A top-up serves the queues in order, in this transaction: added licences the
            // waiting list (with the default term), added funding the extension queue.
            let approved = if add > 0 {
                serve_waiting(&mut tx, &p, None, None, "system", now, None).await?
            } else {
                Vec::new()
            };
            audit_approved(&state, &caller, &mut tx, &approved, "after a top-up").await?;
            let served = if funding > 0 {
                serve_extensions(&mut tx, "system", now, None).await?
            } else {
                Served::default()
            };
            audit_extensions(&state, &caller, &mut tx, &served, "after a funding top-up").await?;
            tx.commit().await?;
            let mut changed = changed(&state, approved, None).await?;
            changed.extensions_approved = served
                .approved
                .iter()
                .map(|(e, b)| extension_view(e, Some(b), None))
                .collect();
            Ok(changed)
        })
        .await
}

async fn apply(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<Apply>,
) -> ApiResult<Json<LicencesChanged>> {
    state
        .audited(&caller.ctx, "licences.apply", &req.organisation, async {
            let ods = parse_ods(&req.organisation)?;
            let count = check_count("the number of licences", req.count, MAX_COUNT, 1)?;
            let contact = check_text("the contact", &req.contact)?;
            let systems = check_text("the systems", &req.systems)?;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            known_organisation(&mut tx, &ods).await?;
            organisation_manager(&state, &caller, &ods, "apply for its licences")?;
            require_pool(&mut tx).await?;
            let id = db::insert_application(
                &mut tx,
                &ApplicationRow {
                    id: 0,
                    ods_code: ods.to_string(),
                    requested: count,
                    contact,
                    systems,
                    applied_by: caller.uid.clone(),
                    applied_at: now,
                    state: db::WAITING.into(),
                    allocated: 0,
                    term_start: None,
                    term_end: None,
                    approved_by: None,
                    approved_at: None,
                    used: 0,
                },
            )
            .await?;
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        "licences.applied",
                        &id.to_string(),
                        ods.as_str(),
                        serde_json::json!({"count": count}),
                    ),
                    state.now_ms(),
                )
                .await?;
            tx.commit().await?;
            changed(&state, Vec::new(), Some(id)).await
        })
        .await
}

async fn changed(
    state: &AppState,
    approved: Vec<ApplicationRow>,
    application_id: Option<i64>,
) -> ApiResult<Json<LicencesChanged>> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let pool = pool_view(&mut conn, now).await?;
    let application = match application_id {
        Some(id) => db::application(&mut conn, id).await?.map(|a| {
            let position = pool
                .waiting
                .iter()
                .find(|w| w.id == a.id)
                .and_then(|w| w.position);
            self::application(&a, position)
        }),
        None => None,
    };
    Ok(Json(LicencesChanged {
        approved: approved
            .iter()
            .map(|a| self::application(a, None))
            .collect(),
        application,
        pool,
        extensions_approved: Vec::new(),
    }))
}

async fn audit_approved(
    state: &AppState,
    caller: &RaCaller,
    tx: &mut vsc_store::Tx,
    approved: &[ApplicationRow],
    how: &str,
) -> ApiResult<()> {
    for a in approved {
        state
            .append_audit(
                tx,
                &caller.ctx.event(
                    "licences.approved",
                    &a.id.to_string(),
                    &a.ods_code,
                    serde_json::json!({"count": a.allocated, "term_start": a.term_start, "term_end": a.term_end, "how": how}),
                ),
                state.now_ms(),
            )
            .await?;
    }
    Ok(())
}

async fn approve(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<Approve>,
) -> ApiResult<Json<LicencesChanged>> {
    let subject = req.application.map(|a| a.to_string()).unwrap_or_default();
    state
        .audited(&caller.ctx, "licences.approve", &subject, async {
            national_manager(&state, &caller, "approve licence applications")?;
            let now = state.now_unix();
            let start = req.start.as_deref().map(|s| parse_day("the start", s)).transpose()?;
            let end = req.end.as_deref().map(|s| parse_day("the end", s).map(|e| e + DAY)).transpose()?;
            let from = start.unwrap_or_else(|| today(now));
            if let Some(end) = end
                && (end <= from || end - from > MAX_TERM_DAYS * DAY)
            {
                return Err(invalid(format!("the end must be on or after the start, at most {MAX_TERM_DAYS} days later")));
            }
            let mut tx = state.write().await?;
            let pool = require_pool(&mut tx).await?;
            let waiting = db::waiting(&mut tx).await?;
            if let Some(id) = req.application {
                match waiting.iter().position(|a| a.id == id) {
                    None => {
                        return Err(ApiError::not_found(
                            code::UNKNOWN_LICENCE_APPLICATION,
                            format!("no application #{id} is waiting: `vsc ra licences pool` lists the waiting list"),
                        ));
                    }
                    Some(0) => {}
                    Some(i) => {
                        return Err(ApiError::conflict(
                            code::LICENCE_NOT_FIRST,
                            format!("application #{id} is number {} in the waiting list; applications are approved first come, first served: approve #{} first", i + 1, waiting[0].id),
                        ));
                    }
                }
            }
            let approved = serve_waiting(&mut tx, &pool, start, end, &caller.uid, now, req.application).await?;
            if approved.is_empty()
                && let Some(first) = waiting.first()
            {
                let available = pool.total - db::allocated_total(&mut tx, now, pool.grace_days * DAY).await?;
                return Err(ApiError::conflict(
                    code::LICENCE_POOL_EXHAUSTED,
                    format!("the pool has {available} licences available and the first application in the waiting list (#{}, {}) asks for {}: it keeps its place; top the pool up (`vsc ra licences pool --add N`) or wait for returns", first.id, first.ods_code, first.requested),
                ));
            }
            audit_approved(&state, &caller, &mut tx, &approved, "approved").await?;
            tx.commit().await?;
            changed(&state, approved, None).await
        })
        .await
}

async fn give_back(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<Return>,
) -> ApiResult<Json<LicencesChanged>> {
    state
        .audited(&caller.ctx, "licences.return", &req.organisation, async {
            let ods = parse_ods(&req.organisation)?;
            let count = check_count("the number of licences", req.count, MAX_COUNT, 1)?;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            known_organisation(&mut tx, &ods).await?;
            organisation_manager(&state, &caller, &ods, "return its licences")?;
            let pool = require_pool(&mut tx).await?;
            // The organisation's blocks still in term, ending soonest first.
            let mut blocks: Vec<ApplicationRow> = db::applications(&mut tx)
                .await?
                .into_iter()
                .filter(|a| a.ods_code == ods.as_str() && a.state == db::APPROVED && a.term_end.unwrap_or(0) > now)
                .collect();
            blocks.sort_by_key(|a| (a.term_end, a.id));
            let free: i64 = blocks.iter().map(|a| (a.allocated - a.used).max(0)).sum();
            if count > free {
                return Err(ApiError::conflict(
                    code::LICENCE_NOT_FREE,
                    format!("{ods} has {free} unused licences in term; only unused licences can be returned (cancel cards to free theirs)"),
                ));
            }
            let mut left = count;
            for b in &blocks {
                let n = left.min((b.allocated - b.used).max(0));
                if n > 0 {
                    if !db::give_back(&mut tx, b.id, n).await? {
                        return Err(ApiError::conflict(code::LICENCE_NOT_FREE, "the licences changed meanwhile; look again"));
                    }
                    left -= n;
                }
            }
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event("licences.returned", ods.as_str(), ods.as_str(), serde_json::json!({"count": count})),
                    state.now_ms(),
                )
                .await?;
            // The returned licences go to the waiting list, in order, with the default term.
            let approved = serve_waiting(&mut tx, &pool, None, None, "system", now, None).await?;
            audit_approved(&state, &caller, &mut tx, &approved, "after a return").await?;
            tx.commit().await?;
            changed(&state, approved, None).await
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Extensions: a queue of requests, approved first come first served while funding lasts

/// Days a request adds to its block's term and what that costs now (licence-days: the block's
/// licences × the days).
fn extension_cost(block: &ApplicationRow, new_end: i64) -> (i64, i64) {
    let days = ((new_end - block.term_end.unwrap_or(new_end)) / DAY).max(0);
    (days, days.saturating_mul(block.allocated.max(0)))
}

fn extension_view(
    e: &ExtensionRow,
    block: Option<&ApplicationRow>,
    position: Option<i64>,
) -> Extension {
    let cost = match (e.state.as_str(), block) {
        (db::WAITING, Some(b)) => extension_cost(b, e.new_end).1,
        (db::EXTENDED, _) => e.cost.unwrap_or(0),
        _ => 0,
    };
    Extension {
        id: e.id,
        application: e.application_id,
        organisation: e.ods_code.clone(),
        end: day(e.new_end - DAY),
        current_end: block
            .and_then(|b| b.term_end)
            .map(|t| day(t - DAY))
            .unwrap_or_default(),
        licences: block.map_or(0, |b| b.allocated),
        cost,
        state: e.state.clone(),
        requested_by: e.requested_by.clone(),
        requested_at: rfc3339(e.requested_at),
        position,
        decided_by: e.decided_by.clone(),
        decided_at: e.decided_at.map(rfc3339),
    }
}

/// What [`serve_extensions`] did.
#[derive(Default)]
struct Served {
    approved: Vec<(ExtensionRow, ApplicationRow)>,
    lapsed: Vec<(ExtensionRow, Option<ApplicationRow>)>,
    /// The request the funding was short for (it keeps its place): it, its cost, the funding.
    short: Option<(ExtensionRow, i64, i64)>,
}

/// Approves the extension queue in order while the pool's funding lasts (`only`: just the
/// first, which the caller checked is that one). The first request is approved in full or the
/// run stops, so a later, cheaper one never jumps it. A request whose block's grace period
/// ended while it waited lapses (it can no longer be extended) and the run goes on.
async fn serve_extensions(
    conn: &mut Conn,
    by: &str,
    now: i64,
    only: Option<i64>,
) -> ApiResult<Served> {
    let pool = require_pool(conn).await?;
    let mut served = Served::default();
    let changed = || {
        ApiError::conflict(
            code::UNKNOWN_LICENCE_EXTENSION,
            "the extension queue changed meanwhile; look at it again (`vsc ra licences extensions`)",
        )
    };
    let mut funding = pool.funding;
    for e in db::waiting_extensions(conn).await? {
        let block = db::application(conn, e.application_id)
            .await?
            .filter(|b| b.state == db::APPROVED);
        let end = block.as_ref().and_then(|b| b.term_end).unwrap_or(0);
        let Some(block) = block.filter(|_| end + pool.grace_days * DAY > now && e.new_end > end)
        else {
            if !db::decide_extension(conn, e.id, db::LAPSED, None, by, now).await? {
                return Err(changed());
            }
            let block = db::application(conn, e.application_id).await?;
            served.lapsed.push((e, block));
            if only.is_some() {
                break;
            }
            continue;
        };
        let (_, cost) = extension_cost(&block, e.new_end);
        if !db::spend_funding(conn, cost, now).await? {
            served.short = Some((e, cost, funding));
            break;
        }
        funding -= cost;
        if !db::decide_extension(conn, e.id, db::EXTENDED, Some(cost), by, now).await?
            || !db::extend_term(conn, block.id, end, e.new_end).await?
        {
            return Err(changed());
        }
        let after = db::application(conn, block.id).await?.unwrap_or(block);
        let e = db::extension(conn, e.id).await?.unwrap_or(e);
        served.approved.push((e, after));
        if only.is_some() {
            break;
        }
    }
    Ok(served)
}

/// Appends the audit events of what [`serve_extensions`] did.
async fn audit_extensions(
    state: &AppState,
    caller: &RaCaller,
    tx: &mut vsc_store::Tx,
    served: &Served,
    how: &str,
) -> ApiResult<()> {
    for (e, b) in &served.approved {
        state
            .append_audit(
                tx,
                &caller.ctx.event(
                    "licences.extended",
                    &b.id.to_string(),
                    &b.ods_code,
                    serde_json::json!({"request": e.id, "to": e.new_end, "cost": e.cost, "how": how}),
                ),
                state.now_ms(),
            )
            .await?;
    }
    for (e, _) in &served.lapsed {
        state
            .append_audit(
                tx,
                &caller.ctx.event(
                    "licences.extension_lapsed",
                    &e.id.to_string(),
                    &e.ods_code,
                    serde_json::json!({"application": e.application_id, "to": e.new_end}),
                ),
                state.now_ms(),
            )
            .await?;
    }
    Ok(())
}

/// Extension requests: RA Managers somewhere (the organisation is checked once the block is
/// known).
fn some_manager(caller: &RaCaller, what: &str) -> ApiResult<()> {
    if caller.grants.iter().any(|g| g.role == RaRole::RaManager) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        code::RA_ROLE_NOT_PERMITTED,
        format!("only an RA Manager (of the block's organisation, or a national one) may {what}"),
    ))
}

async fn extensions_changed(
    conn: &mut Conn,
    request: Option<i64>,
    served: &Served,
) -> ApiResult<Json<ExtensionsChanged>> {
    let waiting = db::waiting_extensions(conn).await?;
    let funding = db::pool(conn).await?.map_or(0, |p| p.funding);
    let request = match request {
        Some(id) => match db::extension(conn, id).await? {
            Some(e) => {
                let block = db::application(conn, e.application_id).await?;
                let position = waiting
                    .iter()
                    .position(|w| w.id == e.id)
                    .map(|i| i as i64 + 1);
                Some(extension_view(&e, block.as_ref(), position))
            }
            None => None,
        },
        None => None,
    };
    Ok(Json(ExtensionsChanged {
        request,
        approved: served
            .approved
            .iter()
            .map(|(e, b)| extension_view(e, Some(b), None))
            .collect(),
        lapsed: served
            .lapsed
            .iter()
            .map(|(e, b)| extension_view(e, b.as_ref(), None))
            .collect(),
        funding,
        waiting: waiting.len() as i64,
    }))
}

async fn list_extensions(
    State(state): State<AppState>,
    caller: RaCaller,
) -> ApiResult<Json<Extensions>> {
    state
        .audited(&caller.ctx, "licences.extensions.view", "", async {
            if !caller.grants.iter().any(|g| g.role.permits(RaAction::View)) {
                return Err(ApiError::forbidden(
                    code::RA_ROLE_NOT_PERMITTED,
                    "your RA roles do not allow you to view RA records",
                ));
            }
            let national = state.national_ods();
            let all = caller
                .grants
                .iter()
                .any(|g| g.organisation.as_str() == national);
            let visible =
                |ods: &str| all || caller.grants.iter().any(|g| g.organisation.as_str() == ods);
            let mut conn = state.store().pool().acquire().await?;
            let funding = db::pool(&mut conn).await?.map_or(0, |p| p.funding);
            let blocks: std::collections::BTreeMap<i64, ApplicationRow> =
                db::applications(&mut conn)
                    .await?
                    .into_iter()
                    .map(|a| (a.id, a))
                    .collect();
            let rows = db::extensions(&mut conn).await?;
            let mut position = 0;
            let mut requests = Vec::new();
            for e in &rows {
                let p = (e.state == db::WAITING).then(|| {
                    position += 1;
                    position
                });
                if visible(&e.ods_code) {
                    requests.push(extension_view(e, blocks.get(&e.application_id), p));
                }
            }
            Ok(Json(Extensions {
                funding,
                waiting: position,
                requests,
            }))
        })
        .await
}

async fn request_extension(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<Extend>,
) -> ApiResult<Json<ExtensionsChanged>> {
    state
        .audited(&caller.ctx, "licences.extension.request", &req.application.to_string(), async {
            some_manager(&caller, "ask for a licence term to be extended")?;
            let new_end = parse_day("the end", &req.end)? + DAY;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            let pool = require_pool(&mut tx).await?;
            let block = db::application(&mut tx, req.application)
                .await?
                .filter(|a| a.state == db::APPROVED)
                .ok_or_else(|| ApiError::not_found(
                    code::UNKNOWN_LICENCE_APPLICATION,
                    format!("no approved block has id {}: `vsc ra licences report` lists the blocks", req.application),
                ))?;
            let ods = parse_ods(&block.ods_code)?;
            organisation_manager(&state, &caller, &ods, "ask for its licence terms to be extended")?;
            let end = block.term_end.unwrap_or(0);
            if end + pool.grace_days * DAY <= now {
                return Err(ApiError::conflict(
                    code::LICENCE_TERM_OVER,
                    format!("block #{} ended on {} and its grace period ended on {}: it can no longer be extended; the organisation applies again (`vsc ra licences apply`)", block.id, day(end - DAY), day(end + pool.grace_days * DAY - DAY)),
                ));
            }
            if new_end <= end || new_end - end > MAX_TERM_DAYS * DAY {
                return Err(invalid(format!("the new end must be after the block's current one ({}) and at most {MAX_TERM_DAYS} days later", day(end - DAY))));
            }
            let pending = || {
                ApiError::conflict(
                    code::LICENCE_EXTENSION_PENDING,
                    format!("block #{} already has an extension request waiting: withdraw it first (`vsc ra licences extensions --withdraw ID`) or wait for its approval", block.id),
                )
            };
            if db::waiting_extensions(&mut tx).await?.iter().any(|w| w.application_id == block.id) {
                return Err(pending());
            }
            let id = db::insert_extension(
                &mut tx,
                &ExtensionRow {
                    id: 0,
                    application_id: block.id,
                    ods_code: block.ods_code.clone(),
                    new_end,
                    requested_by: caller.uid.clone(),
                    requested_at: now,
                    state: db::WAITING.into(),
                    cost: None,
                    decided_by: None,
                    decided_at: None,
                },
            )
            .await?
            .ok_or_else(pending)?;
            let (days, cost) = extension_cost(&block, new_end);
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        "licences.extension_requested",
                        &id.to_string(),
                        &block.ods_code,
                        serde_json::json!({"application": block.id, "from": end, "to": new_end, "days": days, "cost_now": cost}),
                    ),
                    state.now_ms(),
                )
                .await?;
            // A national RA Manager's own request: approved at once when it is first in the
            // queue and the funding covers it; otherwise it waits like any other.
            let first = db::waiting_extensions(&mut tx).await?.first().map(|w| w.id) == Some(id);
            let served = if first && is_ram_at(&caller, state.national_ods()) {
                serve_extensions(&mut tx, &caller.uid, now, Some(id)).await?
            } else {
                Served::default()
            };
            audit_extensions(&state, &caller, &mut tx, &served, "requested by a national RA Manager").await?;
            tx.commit().await?;
            let mut conn = state.store().pool().acquire().await?;
            extensions_changed(&mut conn, Some(id), &served).await
        })
        .await
}

async fn approve_extensions(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<ApproveExtensions>,
) -> ApiResult<Json<ExtensionsChanged>> {
    let subject = req.request.map(|r| r.to_string()).unwrap_or_default();
    state
        .audited(&caller.ctx, "licences.extensions.approve", &subject, async {
            national_manager(&state, &caller, "approve licence term extensions")?;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            require_pool(&mut tx).await?;
            let waiting = db::waiting_extensions(&mut tx).await?;
            if let Some(id) = req.request {
                match waiting.iter().position(|e| e.id == id) {
                    None => {
                        return Err(ApiError::not_found(
                            code::UNKNOWN_LICENCE_EXTENSION,
                            format!("no extension request #{id} is waiting: `vsc ra licences extensions` lists the queue"),
                        ));
                    }
                    Some(0) => {}
                    Some(i) => {
                        return Err(ApiError::conflict(
                            code::LICENCE_EXTENSION_NOT_FIRST,
                            format!("extension request #{id} is number {} in the queue; extensions are approved first come, first served: approve #{} first", i + 1, waiting[0].id),
                        ));
                    }
                }
            }
            let served = serve_extensions(&mut tx, &caller.uid, now, req.request).await?;
            if served.approved.is_empty()
                && served.lapsed.is_empty()
                && let Some((e, cost, funding)) = &served.short
            {
                return Err(ApiError::conflict(
                    code::LICENCE_FUNDING_EXHAUSTED,
                    format!("the first extension request in the queue (#{}, {}, block #{}) costs {cost} licence-days and the pool's funding has {funding} left: it keeps its place; top the funding up (`vsc ra licences pool --add-funding N`), which serves the queue in order", e.id, e.ods_code, e.application_id),
                ));
            }
            audit_extensions(&state, &caller, &mut tx, &served, "approved").await?;
            tx.commit().await?;
            let mut conn = state.store().pool().acquire().await?;
            extensions_changed(&mut conn, None, &served).await
        })
        .await
}

async fn withdraw_extension(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<WithdrawExtension>,
) -> ApiResult<Json<ExtensionsChanged>> {
    state
        .audited(&caller.ctx, "licences.extension.withdraw", &req.request.to_string(), async {
            some_manager(&caller, "withdraw a licence extension request")?;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            let e = db::extension(&mut tx, req.request)
                .await?
                .filter(|e| e.state == db::WAITING)
                .ok_or_else(|| ApiError::not_found(
                    code::UNKNOWN_LICENCE_EXTENSION,
                    format!("no extension request #{} is waiting: `vsc ra licences extensions` lists them", req.request),
                ))?;
            let ods = parse_ods(&e.ods_code)?;
            organisation_manager(&state, &caller, &ods, "withdraw its extension requests")?;
            if !db::decide_extension(&mut tx, e.id, db::WITHDRAWN, None, &caller.uid, now).await? {
                return Err(ApiError::not_found(
                    code::UNKNOWN_LICENCE_EXTENSION,
                    format!("extension request #{} is no longer waiting: look at the queue again", e.id),
                ));
            }
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        "licences.extension_withdrawn",
                        &e.id.to_string(),
                        &e.ods_code,
                        serde_json::json!({"application": e.application_id, "to": e.new_end}),
                    ),
                    state.now_ms(),
                )
                .await?;
            tx.commit().await?;
            let mut conn = state.store().pool().acquire().await?;
            extensions_changed(&mut conn, Some(e.id), &Served::default()).await
        })
        .await
}

async fn report(State(state): State<AppState>, caller: RaCaller) -> ApiResult<Json<Report>> {
    state
        .audited(&caller.ctx, "licences.report", "", async {
            if !caller.grants.iter().any(|g| g.role.permits(RaAction::View)) {
                return Err(ApiError::forbidden(
                    code::RA_ROLE_NOT_PERMITTED,
                    "your RA roles do not allow you to view RA records",
                ));
            }
            let national = state.national_ods();
            let all = caller.grants.iter().any(|g| g.organisation.as_str() == national);
            let mine: std::collections::BTreeSet<String> =
                caller.grants.iter().map(|g| g.organisation.to_string()).collect();
            let now = state.now_unix();
            let mut conn = state.store().pool().acquire().await?;
            let pool = db::pool(&mut conn).await?;
            let grace = pool.as_ref().map_or(0, |p| p.grace_days) * DAY;
            let warn = pool.as_ref().map_or(0, |p| p.warn_days) * DAY;
            let apps: Vec<ApplicationRow> = db::applications(&mut conn).await?;
            let waiting: Vec<&ApplicationRow> = apps.iter().filter(|a| a.state == db::WAITING).collect();
            // The extension queue: per block, the waiting request's new end and place.
            let ext_queue = db::waiting_extensions(&mut conn).await?;
            let ext_of: std::collections::BTreeMap<i64, (i64, i64)> = ext_queue
                .iter()
                .enumerate()
                .map(|(i, e)| (e.application_id, (e.new_end, i as i64 + 1)))
                .collect();
            let visible = |ods: &str| all || mine.contains(ods);
            let mut orgs: std::collections::BTreeSet<String> =
                apps.iter().map(|a| a.ods_code.clone()).filter(|o| visible(o)).collect();
            if !all {
                orgs.extend(mine.iter().cloned());
            }
            let mut rows = Vec::new();
            let mut warnings = Vec::new();
            for ods in &orgs {
                let mut row = ReportRow {
                    organisation: ods.clone(),
                    allocated: 0,
                    used: 0,
                    free: 0,
                    waiting: 0,
                    waiting_position: None,
                    expiring: 0,
                    expiring_on: None,
                    extensions_waiting: 0,
                    extension_position: None,
                    extension_requested_to: None,
                };
                for (i, e) in ext_queue.iter().enumerate().filter(|(_, e)| &e.ods_code == ods) {
                    row.extensions_waiting += 1;
                    if row.extension_position.is_none() {
                        row.extension_position = Some(i as i64 + 1);
                        row.extension_requested_to = Some(day(e.new_end - DAY));
                    }
                }
                for a in apps.iter().filter(|a| &a.ods_code == ods) {
                    if a.state == db::WAITING {
                        row.waiting += a.requested;
                        if row.waiting_position.is_none() {
                            row.waiting_position = waiting.iter().position(|w| w.id == a.id).map(|i| i as i64 + 1);
                        }
                        continue;
                    }
                    let (start, end) = (a.term_start.unwrap_or(0), a.term_end.unwrap_or(0));
                    if end + grace <= now {
                        continue;
                    }
                    row.allocated += a.allocated;
                    row.used += a.used;
                    if start <= now && now < end {
                        row.free += (a.allocated - a.used).max(0);
                    }
                    if end - warn <= now {
                        row.expiring += a.allocated;
                        let last = day(end - DAY);
                        if row.expiring_on.as_ref().is_none_or(|e| *e > last) {
                            row.expiring_on = Some(last.clone());
                        }
                        let extension = match ext_of.get(&a.id) {
                            Some((to, place)) => format!("; an extension to {} is requested, number {place} in the extension queue", day(to - DAY)),
                            None => "; no extension is requested (`vsc ra licences extend`)".to_owned(),
                        };
                        warnings.push(if now < end {
                            format!("{ods}: {} licences (block #{}, {} in use) end on {last}; their cards stop signing in on {} unless the term is extended{extension}", a.allocated, a.id, a.used, day(end + grace))
                        } else {
                            format!("{ods}: {} licences (block #{}, {} in use) ended on {last}; their cards stop signing in on {} (grace period) unless the term is extended{extension}", a.allocated, a.id, a.used, day(end + grace))
                        });
                    }
                }
                rows.push(row);
            }
            let positions: std::collections::BTreeMap<i64, i64> =
                waiting.iter().enumerate().map(|(i, a)| (a.id, i as i64 + 1)).collect();
            Ok(Json(Report {
                enforced: pool.is_some(),
                organisations: rows,
                applications: apps
                    .iter()
                    .filter(|a| visible(&a.ods_code))
                    .map(|a| {
                        let mut view = application(a, positions.get(&a.id).copied());
                        if let Some((to, place)) = ext_of.get(&a.id) {
                            view.extension_requested_to = Some(day(to - DAY));
                            view.extension_position = Some(*place);
                        }
                        view
                    })
                    .collect(),
                warnings,
                extensions: ext_queue
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| visible(&e.ods_code))
                    .map(|(i, e)| {
                        extension_view(e, apps.iter().find(|a| a.id == e.application_id), Some(i as i64 + 1))
                    })
                    .collect(),
            }))
        })
        .await
}

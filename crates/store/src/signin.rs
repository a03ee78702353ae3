//! Typed queries for signing in with the phone: device keys and tokens, authentication requests
//! (with their single-use state changes), per-card sign-in failures (counted in a window) and
//! blocks, and sessions.

use vsc_core::AuthRequestState;

use crate::Conn;
use crate::StoreError;
use crate::repo::{CARD_COLUMNS, CardRow};
use crate::row::{from_row, get, parsed};
use sqlx::{FromRow as _, Row as _};

/// Records the device's channel key (SPKI DER), replacing an earlier one.
pub async fn set_device_key(
    conn: &mut Conn,
    device_id: &str,
    spki: &[u8],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE devices SET public_key = $1 WHERE device_id = $2")
        .bind(spki)
        .bind(device_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The device's channel key and its person.
pub async fn device_key(
    conn: &mut Conn,
    device_id: &str,
) -> Result<Option<(Vec<u8>, String)>, StoreError> {
    let row: Option<(Option<Vec<u8>>, String)> =
        sqlx::query_as("SELECT public_key, uid FROM devices WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(k, uid)| k.map(|k| (k, uid))))
}

/// Stores a device token (by hash).
pub async fn insert_device_token(
    conn: &mut Conn,
    token_hash: &[u8],
    device_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO device_tokens (token_hash, device_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(device_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    // Expired tokens are useless; dropping them here keeps the table small without a sweeper.
    sqlx::query("DELETE FROM device_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The device a live token belongs to.
pub async fn device_for_token(
    conn: &mut Conn,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT device_id FROM device_tokens WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(d,)| d))
}

/// The device a live token belongs to, with the device's person (one query).
pub async fn device_and_person_for_token(
    conn: &mut Conn,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.device_id, d.uid FROM device_tokens t JOIN devices d ON d.device_id = t.device_id \
         WHERE t.token_hash = $1 AND t.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// An authentication request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequestRow {
    /// Id.
    pub id: String,
    /// Card asked.
    pub card_id: String,
    /// Holder.
    pub uid: String,
    /// Nonce (base64).
    pub nonce: String,
    /// Context (JSON).
    pub context: String,
    /// Context digest (hex).
    pub context_digest: String,
    /// Workstation id from the context.
    pub workstation_id: String,
    /// The right number.
    pub number: u8,
    /// Numbers offered to choose from in earlier releases (JSON array); `[]` now that the person
    /// types the number.
    pub choices: String,
    /// SHA-256 of the agent's poll secret.
    pub poll_secret_hash: Vec<u8>,
    /// The agent's address.
    pub source: String,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Where it stands (stored as [`AuthRequestState::as_str`]).
    pub state: AuthRequestState,
    /// When it left `pending`.
    pub decided_at: Option<i64>,
}

const REQUEST_COLUMNS: &str = "id, card_id, uid, nonce, context, context_digest, workstation_id, number, choices, \
     poll_secret_hash, source, created_at, expires_at, state, decided_at";

from_row!(AuthRequestRow in "auth_requests" {
    id, card_id, uid, nonce, context, context_digest, workstation_id, number: number, choices,
    poll_secret_hash, source, created_at, expires_at, state: parsed, decided_at,
});

/// The request's number (`0` if the stored one does not fit, as it never should).
fn number(row: &sqlx::any::AnyRow, _table: &str, column: &str) -> Result<u8, sqlx::Error> {
    Ok(u8::try_from(get::<i64>(row, column)?).unwrap_or(0))
}

/// Stores a new request.
pub async fn insert_auth_request(conn: &mut Conn, r: &AuthRequestRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO auth_requests ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )))
    .bind(&r.id)
    .bind(&r.card_id)
    .bind(&r.uid)
    .bind(&r.nonce)
    .bind(&r.context)
    .bind(&r.context_digest)
    .bind(&r.workstation_id)
    .bind(i64::from(r.number))
    .bind(&r.choices)
    .bind(&r.poll_secret_hash)
    .bind(&r.source)
    .bind(r.created_at)
    .bind(r.expires_at)
    .bind(r.state.as_str())
    .bind(r.decided_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a request.
pub async fn auth_request(conn: &mut Conn, id: &str) -> Result<Option<AuthRequestRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, AuthRequestRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM auth_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// A card's pending, unexpired requests, oldest first.
pub async fn open_requests_for_card(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> Result<Vec<AuthRequestRow>, StoreError> {
    Ok(sqlx::query_as::<_, AuthRequestRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM auth_requests WHERE card_id = $1 AND state = 'pending' AND expires_at > $2 ORDER BY created_at, id"
    )))
    .bind(card_id)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Requests made for a card since `since` (for the per-window cap).
pub async fn requests_since(conn: &mut Conn, card_id: &str, since: i64) -> Result<i64, StoreError> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM auth_requests WHERE card_id = $1 AND created_at > $2")
            .bind(card_id)
            .bind(since)
            .fetch_one(conn)
            .await?;
    Ok(n)
}

/// Moves a pending, unexpired request to `to`. Exactly one caller wins.
pub async fn decide_request(
    conn: &mut Conn,
    id: &str,
    to: AuthRequestState,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE auth_requests SET state = $2, decided_at = $3 WHERE id = $1 AND state = 'pending' AND expires_at > $3",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves an approved request to `collected` (its session is created once). Exactly one caller wins.
pub async fn collect_request(conn: &mut Conn, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE auth_requests SET state = 'collected' WHERE id = $1 AND state = 'approved'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an approved request that can no longer be collected (its card was cancelled or locked
/// after the approval) as `failed`, so the agent sees a final state.
pub async fn fail_approved_request(conn: &mut Conn, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE auth_requests SET state = 'failed' WHERE id = $1 AND state = 'approved'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed sign-in (wrong number, bad signature, decline, "I didn't do this") against a
/// card at `now` and returns how many failures the card has had after `window_start` (this one
/// included). A success does not clear them: the lock counts failures in a window, not in a row,
/// so successes in between cannot hide a stream of guesses. Failures at or before
/// `window_start` can never count again and are dropped here, which keeps the table small.
/// Run it in the transaction that decides the request, so the count and the lock agree.
pub async fn record_card_failure(
    conn: &mut Conn,
    card_id: &str,
    request_id: &str,
    now: i64,
    window_start: i64,
) -> Result<i64, StoreError> {
    sqlx::query("INSERT INTO signin_failures (card_id, request_id, at) VALUES ($1, $2, $3)")
        .bind(card_id)
        .bind(request_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM signin_failures WHERE card_id = $1 AND at <= $2")
        .bind(card_id)
        .bind(window_start)
        .execute(&mut *conn)
        .await?;
    card_failures_since(conn, card_id, window_start).await
}

/// How many sign-in failures a card has had after `since`.
pub async fn card_failures_since(
    conn: &mut Conn,
    card_id: &str,
    since: i64,
) -> Result<i64, StoreError> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM signin_failures WHERE card_id = $1 AND at > $2")
            .bind(card_id)
            .bind(since)
            .fetch_one(conn)
            .await?;
    Ok(n)
}

/// Forgets a card's sign-in failures (after an RA unlock: the card starts afresh).
pub async fn reset_card_failures(conn: &mut Conn, card_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM signin_failures WHERE card_id = $1")
        .bind(card_id)
        .execute(&mut *conn)
        .await?;
    // The per-card counter of earlier releases, no longer used for the lock.
    sqlx::query(
        "UPDATE cards SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0",
    )
    .bind(card_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Blocks new requests to a card until `until` (after "I didn't do this").
pub async fn block_card_until(
    conn: &mut Conn,
    card_id: &str,
    until: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE cards SET blocked_until = $1 WHERE id = $2")
        .bind(until)
        .bind(card_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A card's failure count and block.
pub async fn card_guard(conn: &mut Conn, card_id: &str) -> Result<(i64, Option<i64>), StoreError> {
    Ok(
        sqlx::query_as("SELECT consecutive_failures, blocked_until FROM cards WHERE id = $1")
            .bind(card_id)
            .fetch_one(conn)
            .await?,
    )
}

/// A person's live cards (as [`crate::repo::live_cards_of`]), each with the time until which
/// a "not me" report blocks sign-in to it: what opening a sign-in request checks, in one query.
pub async fn live_cards_with_block(
    conn: &mut Conn,
    uid: &str,
) -> Result<Vec<(CardRow, Option<i64>)>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS}, blocked_until FROM cards WHERE uid = $1 AND state IN ('pending','active','locked','suspended')"
    )))
    .bind(uid)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                CardRow::from_row(row)?,
                row.try_get::<Option<i64>, _>("blocked_until")?,
            ))
        })
        .collect()
}

/// A card with its issuing organisation's session timeouts (idle, absolute; `None` when the
/// organisation is gone): what creating a session reads, in one query.
pub async fn card_with_session_limits(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Option<(CardRow, Option<(i64, i64)>)>, StoreError> {
    let row = sqlx::query(
        "SELECT c.id AS id, c.uid AS uid, c.state AS state, c.custody AS custody, \
         c.issued_by AS issued_by, c.device_id AS device_id, \
         o.session_idle_seconds AS idle, o.session_max_seconds AS max \
         FROM cards c LEFT JOIN organisations o ON o.ods_code = c.issued_by WHERE c.id = $1",
    )
    .bind(card_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let idle: Option<i64> = row.try_get("idle")?;
    let max: Option<i64> = row.try_get("max")?;
    Ok(Some((CardRow::from_row(&row)?, idle.zip(max))))
}

/// An organisation's session timeouts (idle, absolute), seconds.
pub async fn session_limits(conn: &mut Conn, ods: &str) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT session_idle_seconds, session_max_seconds FROM organisations WHERE ods_code = $1",
    )
    .bind(ods)
    .fetch_optional(conn)
    .await?)
}

/// Sets an organisation's session timeouts.
pub async fn set_session_limits(
    conn: &mut Conn,
    ods: &str,
    idle: i64,
    max: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE organisations SET session_idle_seconds = $1, session_max_seconds = $2 WHERE ods_code = $3")
        .bind(idle)
        .bind(max)
        .bind(ods)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Id.
    pub id: String,
    /// SHA-256 of the ticket.
    pub ticket_hash: Vec<u8>,
    /// Holder.
    pub uid: String,
    /// Card used.
    pub card_id: String,
    /// The request it came from.
    pub request_id: String,
    /// Selected position.
    pub position_id: Option<String>,
    /// Workstation.
    pub workstation_id: String,
    /// When the phone approved.
    pub auth_time: i64,
    /// Last use.
    pub last_used: i64,
    /// Idle timeout, seconds.
    pub idle_seconds: i64,
    /// Absolute expiry.
    pub expires_at: i64,
    /// When it ended (logout, card removal, timeout).
    pub ended_at: Option<i64>,
    /// Why.
    pub end_reason: Option<String>,
    /// When its workstation locked it (`None`: not locked). While locked it is not used.
    pub locked_at: Option<i64>,
}

pub(crate) const SESSION_COLUMNS: &str = "id, ticket_hash, uid, card_id, request_id, position_id, workstation_id, auth_time, \
     last_used, idle_seconds, expires_at, ended_at, end_reason, locked_at";

from_row!(SessionRow in "sessions" {
    id, ticket_hash, uid, card_id, request_id, position_id, workstation_id, auth_time,
    last_used, idle_seconds, expires_at, ended_at, end_reason, locked_at,
});

/// Stores a session, with the SHA-256 of its agent's key when it has one.
pub async fn insert_session(
    conn: &mut Conn,
    s: &SessionRow,
    agent_key_hash: Option<&[u8]>,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO sessions ({SESSION_COLUMNS}, agent_key_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )))
    .bind(&s.id)
    .bind(&s.ticket_hash)
    .bind(&s.uid)
    .bind(&s.card_id)
    .bind(&s.request_id)
    .bind(&s.position_id)
    .bind(&s.workstation_id)
    .bind(s.auth_time)
    .bind(s.last_used)
    .bind(s.idle_seconds)
    .bind(s.expires_at)
    .bind(s.ended_at)
    .bind(&s.end_reason)
    .bind(s.locked_at)
    .bind(agent_key_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a session by its ticket's hash.
pub async fn session_by_ticket(
    conn: &mut Conn,
    ticket_hash: &[u8],
) -> Result<Option<SessionRow>, StoreError> {
    Ok(sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE ticket_hash = $1"
    )))
    .bind(ticket_hash)
    .fetch_optional(conn)
    .await?)
}

/// Records use of a live, unlocked session (moving its idle deadline). `false` if it has ended,
/// timed out or is locked (a locked session's idle timeout keeps running).
pub async fn touch_session(conn: &mut Conn, id: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET last_used = $2
         WHERE id = $1 AND ended_at IS NULL AND locked_at IS NULL AND expires_at > $2 AND last_used + idle_seconds > $2",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A session's agent key hash and when it was locked (`None`: no such session).
pub async fn session_agent_key_and_lock(
    conn: &mut Conn,
    id: &str,
) -> Result<Option<(Option<Vec<u8>>, Option<i64>)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT agent_key_hash, locked_at FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// When a session was locked (`None`: not locked, or no such session).
pub async fn session_locked_at(conn: &mut Conn, id: &str) -> Result<Option<i64>, StoreError> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT locked_at FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(at,)| at))
}

/// Locks a live, unlocked session at `now`; `false` if it was locked already or has ended.
pub async fn lock_session(conn: &mut Conn, id: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET locked_at = $2 WHERE id = $1 AND locked_at IS NULL AND ended_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Resumes a live session locked at or after `cutoff` (the grace period's start); `false` if it
/// is not locked, was locked before `cutoff`, or has ended. One conditional update, so of two
/// concurrent resumes one wins.
pub async fn resume_session(
    conn: &mut Conn,
    id: &str,
    cutoff: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET locked_at = NULL \
         WHERE id = $1 AND locked_at IS NOT NULL AND locked_at >= $2 AND ended_at IS NULL \
         AND expires_at > $3 AND last_used + idle_seconds > $3",
    )
    .bind(id)
    .bind(cutoff)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a session of another person at the same workstation was approved after the locked session
/// `id` was locked (fast user switching): then its holder is no longer known to be the one at
/// the keyboard, and only their own phone approval re-opens it.
pub async fn signed_in_since_lock(conn: &mut Conn, id: &str) -> Result<bool, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sessions o JOIN sessions s ON s.id = $1 \
         WHERE o.workstation_id = s.workstation_id AND o.uid <> s.uid \
         AND s.locked_at IS NOT NULL AND o.auth_time >= s.locked_at",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Selects the session's role; `false` if the session has ended meanwhile.
pub async fn set_session_position(
    conn: &mut Conn,
    id: &str,
    position_id: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE sessions SET position_id = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(position_id)
            .bind(id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a session; `false` if it had already ended.
pub async fn end_session(
    conn: &mut Conn,
    id: &str,
    now: i64,
    reason: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every live session acting in a position: agent sessions that selected it, and web
/// sign-in sessions with a live OpenID Connect grant for it. Returns their ids.
pub async fn end_live_sessions_of_position(
    conn: &mut Conn,
    position_id: &str,
    now: i64,
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "UPDATE sessions SET ended_at = $1, end_reason = $2
         WHERE ended_at IS NULL AND (position_id = $3 OR id IN
             (SELECT session_id FROM oidc_grants WHERE position_id = $3 AND revoked_at IS NULL))
         RETURNING id",
    )
    .bind(now)
    .bind(reason)
    .bind(position_id)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Ends every live session of a card with `reason` and returns their ids (for the audit log).
pub async fn end_live_sessions_of_card(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE card_id = $3 AND ended_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(reason)
    .bind(card_id)
    .fetch_all(conn)
    .await?;
    let mut ids: Vec<String> = ids.into_iter().map(|(id,)| id).collect();
    ids.sort();
    Ok(ids)
}

/// Ends every live session of a card (cancellation, lock).
pub async fn end_sessions_of_card(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
    reason: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE card_id = $3 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(card_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

//! Typed queries for signing requests (EPS prescriptions signed on the phone): one row per
//! request, its items as JSON, and a single-use state change from `pending` to a decision.

use vsc_core::SigningRequestState;

use crate::Conn;
use crate::StoreError;
use crate::row::{from_row, parsed};

/// A signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRequestRow {
    /// Id.
    pub id: String,
    /// The card whose signing key signs.
    pub card_id: String,
    /// Its holder.
    pub uid: String,
    /// The session that asked.
    pub session_id: String,
    /// `prescriptions` or `prepared`.
    pub kind: String,
    /// `RS1` or `RS256`.
    pub algorithm: String,
    /// The items as the server keeps them (JSON).
    pub items: String,
    /// The workstation's name, for the phone's screen.
    pub workstation: String,
    /// The session's role, for the phone's screen.
    pub role: String,
    /// Opened.
    pub created_at: i64,
    /// Answers accepted until.
    pub expires_at: i64,
    /// Where it stands (stored as [`SigningRequestState::as_str`]).
    pub state: SigningRequestState,
    /// When it left `pending`.
    pub decided_at: Option<i64>,
    /// The outcome (JSON) once completed.
    pub outcome: Option<String>,
}

const COLUMNS: &str = "id, card_id, uid, session_id, kind, algorithm, items, workstation, role, \
     created_at, expires_at, state, decided_at, outcome";

from_row!(SigningRequestRow in "signing_requests" {
    id, card_id, uid, session_id, kind, algorithm, items, workstation, role,
    created_at, expires_at, state: parsed, decided_at, outcome,
});

/// Stores a new request.
pub async fn insert(conn: &mut Conn, r: &SigningRequestRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO signing_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )))
    .bind(&r.id)
    .bind(&r.card_id)
    .bind(&r.uid)
    .bind(&r.session_id)
    .bind(&r.kind)
    .bind(&r.algorithm)
    .bind(&r.items)
    .bind(&r.workstation)
    .bind(&r.role)
    .bind(r.created_at)
    .bind(r.expires_at)
    .bind(r.state.as_str())
    .bind(r.decided_at)
    .bind(&r.outcome)
    .execute(conn)
    .await?;
    Ok(())
}

/// One request.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<SigningRequestRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, SigningRequestRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM signing_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// The card's requests still waiting for the phone at `now`, from sessions that are still live.
pub async fn open_for_card(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> Result<Vec<SigningRequestRow>, StoreError> {
    Ok(sqlx::query_as::<_, SigningRequestRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM signing_requests WHERE card_id = $1 AND state = 'pending' AND expires_at > $2 \
         AND session_id IN (SELECT id FROM sessions WHERE ended_at IS NULL AND expires_at > $2) \
         ORDER BY created_at"
    )))
    .bind(card_id)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// How many of the card's requests of one family are pending at `now`: card operations
/// (`cards = true`) or prescriptions and prepared signatures, counted apart so that a busy
/// smartcard cannot hold up prescribing, nor the reverse.
pub async fn count_open_for_card(
    conn: &mut Conn,
    card_id: &str,
    cards: bool,
    now: i64,
) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM signing_requests WHERE card_id = $1 AND state = 'pending' AND expires_at > $2 \
         AND (kind = 'card') = $3",
    )
    .bind(card_id)
    .bind(now)
    .bind(cards)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Moves a pending, unexpired request to `to` with its outcome. Returns whether this call did
/// it: of any number of concurrent answers exactly one wins.
pub async fn decide(
    conn: &mut Conn,
    id: &str,
    to: SigningRequestState,
    outcome: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE signing_requests SET state = $2, outcome = $3, decided_at = $4 \
         WHERE id = $1 AND state = 'pending' AND expires_at > $4",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(outcome)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The card's PIN hash (Argon2id PHC string, if set) and its consecutive wrong PINs.
pub async fn card_pin(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Option<(Option<String>, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT pin_hash, pin_failures FROM cards WHERE id = $1")
            .bind(card_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Sets the card's PIN hash, clears its wrong-PIN count and every session's verified PIN.
pub async fn set_card_pin(
    conn: &mut Conn,
    card_id: &str,
    pin_hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE cards SET pin_hash = $1, pin_failures = 0 WHERE id = $2")
        .bind(pin_hash)
        .bind(card_id)
        .execute(&mut *conn)
        .await?;
    // A new PIN must be proven again in every session.
    sqlx::query("UPDATE sessions SET card_pin_verified_at = NULL WHERE card_id = $1")
        .bind(card_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Counts a wrong PIN; returns the new count.
pub async fn record_pin_failure(conn: &mut Conn, card_id: &str) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "UPDATE cards SET pin_failures = pin_failures + 1 WHERE id = $1 RETURNING pin_failures",
    )
    .bind(card_id)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Clears the wrong-PIN count (a right PIN, or an RA unlock).
pub async fn reset_pin_failures(conn: &mut Conn, card_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE cards SET pin_failures = 0 WHERE id = $1 AND pin_failures <> 0")
        .bind(card_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the card PIN was verified (`Some(now)`) or failed (`None`) in a session.
pub async fn set_session_pin_verified(
    conn: &mut Conn,
    session_id: &str,
    at: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET card_pin_verified_at = $1 WHERE id = $2")
        .bind(at)
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the card PIN has been verified in a session (and not failed since).
pub async fn session_pin_verified(conn: &mut Conn, session_id: &str) -> Result<bool, StoreError> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT card_pin_verified_at FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(conn)
            .await?;
    Ok(matches!(row, Some((Some(_),))))
}

/// The SHA-256 of a session's agent key, if it has one.
pub async fn session_agent_key_hash(
    conn: &mut Conn,
    session_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row: Option<(Option<Vec<u8>>,)> =
        sqlx::query_as("SELECT agent_key_hash FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(h,)| h))
}

/// Whether a session is live at `now`: not ended, not past its absolute expiry and not idle for
/// its idle timeout or longer (the same rule as `signin::touch_session`).
pub async fn session_is_live(
    conn: &mut Conn,
    session_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    // The idle timeout counts as much as the absolute one: a session nobody used for longer
    // than its idle timeout is over, even if no request has ended it yet.
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM sessions WHERE id = $1 AND ended_at IS NULL AND expires_at > $2
         AND last_used + idle_seconds > $2",
    )
    .bind(session_id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

//! Typed queries for registered workstations: the one-time registration codes an RA issues,
//! the registry itself (key, certificate, organisation, state), and each organisation's policy
//! on unregistered workstations, unlock grace period and fast user switching.
//!
//! Registration codes live in their own table rather than in `one_time_codes`, whose rows must
//! name a card; they follow the same rules (hashed secret, expiry, single use by one
//! conditional update, counted wrong guesses).

use vsc_core::WorkstationState;

use crate::Conn;
use crate::StoreError;
use crate::row::{from_row, parsed};

/// A registration code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkstationCodeRow {
    /// Public id (the first half of the code).
    pub id: String,
    /// Hash of the secret half.
    pub secret_hash: Vec<u8>,
    /// The organisation the workstation will belong to.
    pub ods_code: String,
    /// The name the RA fixed, if any.
    pub name: Option<String>,
    /// UID of the RA who issued it.
    pub created_by: String,
    /// Issued (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// When it was redeemed.
    pub used_at: Option<i64>,
    /// Wrong guesses so far.
    pub failed_attempts: i64,
}

from_row!(WorkstationCodeRow in "workstation_codes" {
    id, secret_hash, ods_code, name, created_by, created_at, expires_at, used_at, failed_attempts,
});

/// Stores a new registration code.
pub async fn insert_code(conn: &mut Conn, c: &WorkstationCodeRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workstation_codes (id, secret_hash, ods_code, name, created_by, created_at, expires_at, used_at, failed_attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0)",
    )
    .bind(&c.id)
    .bind(&c.secret_hash)
    .bind(&c.ods_code)
    .bind(&c.name)
    .bind(&c.created_by)
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a registration code by its public id.
pub async fn code(conn: &mut Conn, id: &str) -> Result<Option<WorkstationCodeRow>, StoreError> {
    Ok(sqlx::query_as::<_, WorkstationCodeRow>(
        "SELECT id, secret_hash, ods_code, name, created_by, created_at, expires_at, used_at, failed_attempts
         FROM workstation_codes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Counts a wrong guess against a code; returns the new count.
pub async fn record_code_failure(conn: &mut Conn, id: &str) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "UPDATE workstation_codes SET failed_attempts = failed_attempts + 1 WHERE id = $1 RETURNING failed_attempts",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Consumes a code for `workstation_id`: succeeds for exactly one caller, and only while the
/// code is unused, unexpired and under the guess limit.
pub async fn consume_code(
    conn: &mut Conn,
    id: &str,
    workstation_id: &str,
    now: i64,
    max_failures: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE workstation_codes SET used_at = $2, workstation_id = $3
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND failed_attempts < $4",
    )
    .bind(id)
    .bind(now)
    .bind(workstation_id)
    .bind(max_failures)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A registered workstation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkstationRow {
    /// Registration id (what the agent names itself with).
    pub id: String,
    /// Organisation (ODS code).
    pub ods_code: String,
    /// The name shown on phones.
    pub name: String,
    /// The workstation key's SubjectPublicKeyInfo (DER, ECDSA P-256).
    pub public_key: Vec<u8>,
    /// Serial of its certificate (hex).
    pub cert_serial: String,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// Certificate validity start (Unix seconds).
    pub not_before: i64,
    /// Certificate validity end (Unix seconds).
    pub not_after: i64,
    /// UID of the RA whose code registered it.
    pub registered_by: String,
    /// The code it was registered with.
    pub code_id: String,
    /// Registered (Unix seconds).
    pub created_at: i64,
    /// Where the registration stands (stored as its canonical name,
    /// [`WorkstationState::as_str`]).
    pub state: WorkstationState,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

const COLUMNS: &str = "id, ods_code, name, public_key, cert_serial, cert_der, not_before, not_after, \
     registered_by, code_id, created_at, state, revoked_at, revoked_by";

from_row!(WorkstationRow in "workstations" {
    id, ods_code, name, public_key, cert_serial, cert_der, not_before, not_after,
    registered_by, code_id, created_at, state: parsed, revoked_at, revoked_by,
});

/// Stores a newly registered workstation.
pub async fn insert(conn: &mut Conn, w: &WorkstationRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO workstations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )))
    .bind(&w.id)
    .bind(&w.ods_code)
    .bind(&w.name)
    .bind(&w.public_key)
    .bind(&w.cert_serial)
    .bind(&w.cert_der)
    .bind(w.not_before)
    .bind(w.not_after)
    .bind(&w.registered_by)
    .bind(&w.code_id)
    .bind(w.created_at)
    .bind(w.state.as_str())
    .bind(w.revoked_at)
    .bind(&w.revoked_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a workstation by registration id.
pub async fn workstation(conn: &mut Conn, id: &str) -> Result<Option<WorkstationRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, WorkstationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM workstations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Whether an active workstation of `ods` already has `name` (names compare without case).
pub async fn active_name_taken(conn: &mut Conn, ods: &str, name: &str) -> Result<bool, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM workstations WHERE ods_code = $1 AND lower(name) = lower($2) AND state = 'active'",
    )
    .bind(ods)
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// The workstations of an organisation (every one with `None`), newest first.
pub async fn list(conn: &mut Conn, ods: Option<&str>) -> Result<Vec<WorkstationRow>, StoreError> {
    Ok(sqlx::query_as::<_, WorkstationRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM workstations WHERE $1 IS NULL OR ods_code = $1 ORDER BY created_at DESC, id"
    )))
    .bind(ods)
    .fetch_all(conn)
    .await?)
}

/// Revokes an active workstation; `false` if it was not active.
pub async fn revoke(conn: &mut Conn, id: &str, by: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE workstations SET state = $4, revoked_at = $3, revoked_by = $2 WHERE id = $1 AND state = $5",
    )
    .bind(id)
    .bind(by)
    .bind(now)
    .bind(WorkstationState::Revoked.as_str())
    .bind(WorkstationState::Active.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the live sessions opened from a workstation (it was revoked); returns how many.
pub async fn end_sessions_of(
    conn: &mut Conn,
    workstation_id: &str,
    now: i64,
    reason: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE workstation_id = $3 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(workstation_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Whether an organisation lets unregistered workstations open sign-in requests for its cards
/// (`None`: no such organisation).
pub async fn allows_unregistered(conn: &mut Conn, ods: &str) -> Result<Option<bool>, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT allow_unregistered_workstations FROM organisations WHERE ods_code = $1",
    )
    .bind(ods)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(allow,)| allow != 0))
}

/// An organisation's workstation policy as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRow {
    /// Whether unregistered workstations may open sign-in requests for its cards.
    pub allow_unregistered: bool,
    /// Minutes after a lock within which a session resumes without a phone approval (0: off).
    pub unlock_grace_minutes: i64,
    /// Whether a second person may sign in on a locked workstation.
    pub fast_user_switching: bool,
}

/// The whole workstation policy of `ods` (`None`: no such organisation).
pub async fn policy(conn: &mut Conn, ods: &str) -> Result<Option<PolicyRow>, StoreError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT allow_unregistered_workstations, unlock_grace_minutes, fast_user_switching \
         FROM organisations WHERE ods_code = $1",
    )
    .bind(ods)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(allow, grace, fus)| PolicyRow {
        allow_unregistered: allow != 0,
        unlock_grace_minutes: grace,
        fast_user_switching: fus != 0,
    }))
}

/// Sets the whole workstation policy of `ods`; `false` if there is no such organisation.
pub async fn set_policy(conn: &mut Conn, ods: &str, p: &PolicyRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE organisations SET allow_unregistered_workstations = $1, unlock_grace_minutes = $2, \
         fast_user_switching = $3 WHERE ods_code = $4",
    )
    .bind(i64::from(p.allow_unregistered))
    .bind(p.unlock_grace_minutes)
    .bind(i64::from(p.fast_user_switching))
    .bind(ods)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The organisation whose workstation policy governs a session, with that policy: the
/// organisation of the session's workstation when it is registered, else the card's issuing
/// organisation (as for admitting unregistered workstations). `None`: no such session.
pub async fn session_policy(
    conn: &mut Conn,
    session_id: &str,
) -> Result<Option<(String, PolicyRow)>, StoreError> {
    let row: Option<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT o.ods_code, o.allow_unregistered_workstations, o.unlock_grace_minutes, o.fast_user_switching \
         FROM sessions s JOIN cards c ON c.id = s.card_id \
         LEFT JOIN workstations w ON w.id = s.workstation_id \
         JOIN organisations o ON o.ods_code = COALESCE(w.ods_code, c.issued_by) \
         WHERE s.id = $1",
    )
    .bind(session_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(ods, allow, grace, fus)| {
        (
            ods,
            PolicyRow {
                allow_unregistered: allow != 0,
                unlock_grace_minutes: grace,
                fast_user_switching: fus != 0,
            },
        )
    }))
}

//! Typed queries for the RA web console: its sessions (a cookie's SHA-256, the RA, the sign-in
//! session it came from, idle and absolute limits) and the people search behind its search page.

use crate::Conn;
use crate::StoreError;
use crate::repo::PersonRow;
use crate::row::from_row;

/// A console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    /// SHA-256 of the cookie's token.
    pub token_hash: Vec<u8>,
    /// The RA.
    pub uid: String,
    /// The sign-in session (phone approval) it was opened from.
    pub session_id: String,
    /// Opened (Unix seconds).
    pub created_at: i64,
    /// Last request (Unix seconds).
    pub last_used: i64,
    /// Absolute expiry (Unix seconds).
    pub expires_at: i64,
    /// Signed out (Unix seconds).
    pub ended_at: Option<i64>,
}

from_row!(ConsoleSessionRow in "console_sessions" {
    token_hash, uid, session_id, created_at, last_used, expires_at, ended_at,
});

/// Stores a console session.
pub async fn insert_session(conn: &mut Conn, s: &ConsoleSessionRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO console_sessions (token_hash, uid, session_id, created_at, last_used, expires_at, ended_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL)",
    )
    .bind(&s.token_hash)
    .bind(&s.uid)
    .bind(&s.session_id)
    .bind(s.created_at)
    .bind(s.last_used)
    .bind(s.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A console session by its token's hash.
pub async fn session(
    conn: &mut Conn,
    token_hash: &[u8],
) -> Result<Option<ConsoleSessionRow>, StoreError> {
    Ok(sqlx::query_as::<_, ConsoleSessionRow>(
        "SELECT token_hash, uid, session_id, created_at, last_used, expires_at, ended_at
         FROM console_sessions WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Moves a live session's idle deadline.
pub async fn touch_session(
    conn: &mut Conn,
    token_hash: &[u8],
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE console_sessions SET last_used = $2 WHERE token_hash = $1 AND ended_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a session (sign-out); false when it had already ended.
pub async fn end_session(conn: &mut Conn, token_hash: &[u8], now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE console_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// People matching `query` (part of a name or email, case-insensitive, or a UID prefix) who
/// belong to one of `organisations` (registered there or holding a position there), or to any
/// organisation when `organisations` is `None`; ordered by family and given name, `limit`
/// rows from `offset`.
pub async fn search_people(
    conn: &mut Conn,
    query: &str,
    organisations: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PersonRow>, StoreError> {
    let pattern = format!(
        "%{}%",
        query
            .trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // Organisations travel as one JSON array parameter, unpacked by each engine's own function
    // (PostgreSQL's json_array_elements_text, SQLite's json_each), so the statement stays fixed.
    let scoped = organisations.is_some();
    let sql = match (conn.backend_name(), scoped) {
        ("PostgreSQL", true) => {
            "SELECT uid, given_name, family_name, email, registered_by FROM people p
             WHERE (lower(given_name || ' ' || family_name) LIKE $1 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $1 ESCAPE '\\' OR uid LIKE $2)
               AND (registered_by IN (SELECT json_array_elements_text($3::json))
                    OR EXISTS (SELECT 1 FROM positions q WHERE q.uid = p.uid AND q.ods_code IN (SELECT json_array_elements_text($3::json))))
             ORDER BY family_name, given_name, uid LIMIT $4 OFFSET $5"
        }
        (_, true) => {
            "SELECT uid, given_name, family_name, email, registered_by FROM people p
             WHERE (lower(given_name || ' ' || family_name) LIKE $1 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $1 ESCAPE '\\' OR uid LIKE $2)
               AND (registered_by IN (SELECT value FROM json_each($3))
                    OR EXISTS (SELECT 1 FROM positions q WHERE q.uid = p.uid AND q.ods_code IN (SELECT value FROM json_each($3))))
             ORDER BY family_name, given_name, uid LIMIT $4 OFFSET $5"
        }
        (_, false) => {
            "SELECT uid, given_name, family_name, email, registered_by FROM people p
             WHERE (lower(given_name || ' ' || family_name) LIKE $1 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $1 ESCAPE '\\' OR uid LIKE $2)
               AND length($3) >= 0
             ORDER BY family_name, given_name, uid LIMIT $4 OFFSET $5"
        }
    };
    Ok(sqlx::query_as::<_, PersonRow>(sql)
        .bind(pattern)
        .bind(format!("{}%", query.trim().replace(' ', "")))
        .bind(orgs)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?)
}

/// Cards by state, among cards issued by one of `organisations` (all when `None`).
pub async fn card_counts(
    conn: &mut Conn,
    organisations: Option<&[String]>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = match (conn.backend_name(), organisations.is_some()) {
        ("PostgreSQL", true) => {
            "SELECT state, COUNT(*) AS n FROM cards WHERE issued_by IN (SELECT json_array_elements_text($1::json)) GROUP BY state ORDER BY state"
        }
        (_, true) => {
            "SELECT state, COUNT(*) AS n FROM cards WHERE issued_by IN (SELECT value FROM json_each($1)) GROUP BY state ORDER BY state"
        }
        (_, false) => {
            "SELECT state, COUNT(*) AS n FROM cards WHERE length($1) >= 0 GROUP BY state ORDER BY state"
        }
    };
    Ok(sqlx::query_as(sql).bind(orgs).fetch_all(conn).await?)
}

/// "I didn't do this" reports since `since` on cards issued by one of `organisations` (all when
/// `None`): `(uid, card id, when)`, newest first.
pub async fn reports_since(
    conn: &mut Conn,
    organisations: Option<&[String]>,
    since: i64,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = match (conn.backend_name(), organisations.is_some()) {
        ("PostgreSQL", true) => {
            "SELECT r.uid, r.card_id, COALESCE(r.decided_at, r.created_at) AS at FROM auth_requests r JOIN cards c ON c.id = r.card_id
             WHERE r.state = 'reported' AND r.created_at >= $2 AND c.issued_by IN (SELECT json_array_elements_text($1::json))
             ORDER BY at DESC LIMIT 50"
        }
        (_, true) => {
            "SELECT r.uid, r.card_id, COALESCE(r.decided_at, r.created_at) AS at FROM auth_requests r JOIN cards c ON c.id = r.card_id
             WHERE r.state = 'reported' AND r.created_at >= $2 AND c.issued_by IN (SELECT value FROM json_each($1))
             ORDER BY at DESC LIMIT 50"
        }
        (_, false) => {
            "SELECT r.uid, r.card_id, COALESCE(r.decided_at, r.created_at) AS at FROM auth_requests r
             WHERE r.state = 'reported' AND r.created_at >= $2 AND length($1) >= 0
             ORDER BY at DESC LIMIT 50"
        }
    };
    Ok(sqlx::query_as(sql)
        .bind(orgs)
        .bind(since)
        .fetch_all(conn)
        .await?)
}

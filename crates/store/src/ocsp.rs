//! Typed queries for the OCSP responder: its delegated signing certificates (`ocsp_responders`)
//! and the revocation status of one certificate by serial.
//!
//! Rotation is decided by one conditional insert: a new responder takes the next `generation`,
//! which is unique, so when two nodes rotate at once the second insert does nothing and that
//! node uses the winner's certificate instead of publishing a second one.

use crate::Conn;
use crate::StoreError;
use crate::row::{from_row, small_opt};

/// One delegated responder certificate with its sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderRow {
    /// Certificate serial (hex, vsc's spelling).
    pub serial: String,
    /// 1, 2, …: the highest is current.
    pub generation: i64,
    /// DER certificate.
    pub cert_der: Vec<u8>,
    /// The PKCS#8 private key sealed under the master key.
    pub sealed_key: Vec<u8>,
    /// Validity start (Unix seconds).
    pub not_before: i64,
    /// Validity end (Unix seconds).
    pub not_after: i64,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

from_row!(ResponderRow in "ocsp_responders" {
    serial, generation, cert_der, sealed_key, not_before, not_after, created_at,
});

/// The current responder: the highest generation.
pub async fn current_responder(conn: &mut Conn) -> Result<Option<ResponderRow>, StoreError> {
    Ok(sqlx::query_as::<_, ResponderRow>(
        "SELECT serial, generation, cert_der, sealed_key, not_before, not_after, created_at
         FROM ocsp_responders ORDER BY generation DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?)
}

/// Stores `row` unless its generation is taken (another node rotated first); true when stored.
pub async fn insert_responder(conn: &mut Conn, row: &ResponderRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO ocsp_responders
             (serial, generation, cert_der, sealed_key, not_before, not_after, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (generation) DO NOTHING",
    )
    .bind(&row.serial)
    .bind(row.generation)
    .bind(&row.cert_der)
    .bind(&row.sealed_key)
    .bind(row.not_before)
    .bind(row.not_after)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes responders that expired before `before` (their keys can sign nothing anyone would
/// accept, so they are not kept); returns how many.
pub async fn delete_expired_responders(conn: &mut Conn, before: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM ocsp_responders WHERE not_after < $1")
        .bind(before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// What the store knows about one certificate the issuing CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    /// When it was revoked (Unix seconds); `None` while it is not.
    pub revoked_at: Option<i64>,
    /// RFC 5280 CRLReason code, when one was recorded.
    pub reason_code: Option<u8>,
    /// Since when the key is known or suspected to be compromised (Unix seconds).
    pub invalidity_date: Option<i64>,
}

from_row!(StatusRow in "certificates" {
    revoked_at, reason_code = "revocation_reason_code": small_opt, invalidity_date,
});

/// The status of the certificate with `serial`: a person's (`certificates`) or a workstation's
/// (`workstations`, revoked when the workstation is; no reason is recorded there). `None` when
/// the store has no certificate with that serial.
pub async fn certificate_status(
    conn: &mut Conn,
    serial: &str,
) -> Result<Option<StatusRow>, StoreError> {
    let person = sqlx::query_as::<_, StatusRow>(
        "SELECT revoked_at, revocation_reason_code, invalidity_date FROM certificates
         WHERE serial = $1",
    )
    .bind(serial)
    .fetch_optional(&mut *conn)
    .await?;
    if person.is_some() {
        return Ok(person);
    }
    let workstation: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT revoked_at FROM workstations WHERE cert_serial = $1")
            .bind(serial)
            .fetch_optional(conn)
            .await?;
    Ok(workstation.map(|(revoked_at,)| StatusRow {
        revoked_at,
        reason_code: None,
        invalidity_date: None,
    }))
}

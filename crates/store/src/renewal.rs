//! Certificate renewal (issue 14): `card_renewals` (one row per renewal: `issued` →
//! `confirmed`, or `lapsed` when the next one starts first or the server's sweep finds it past
//! its confirmation deadline), `card_renewal_orders` (an RA made
//! the card's renewal due now) and the `pending_renewal` mark on certificates issued by a renewal
//! the phone has not confirmed yet (such certificates are not the card's:
//! [`crate::repo::certificates_of`] leaves them out).

use crate::Conn;
use crate::StoreError;

/// `card_renewals.state`: new certificates issued, waiting for the phone.
pub const ISSUED: &str = "issued";
/// `card_renewals.state`: the phone confirmed; the old certificates are revoked.
pub const CONFIRMED: &str = "confirmed";
/// `card_renewals.state`: not confirmed before the next renewal started or before it expired;
/// its certificates are revoked.
pub const LAPSED: &str = "lapsed";

/// One renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalRow {
    /// Id.
    pub id: String,
    /// The card.
    pub card_id: String,
    /// The phone that asked.
    pub device_id: String,
    /// Serial of the authentication certificate whose key signed the request.
    pub signed_by: String,
    /// Due only because an RA ordered it.
    pub forced: bool,
    /// What the confirmation signs.
    pub confirm_nonce: String,
    /// Serial of the new authentication certificate (its key signs the confirmation).
    pub new_auth_serial: String,
    /// [`ISSUED`], [`CONFIRMED`] or [`LAPSED`].
    pub state: String,
    /// When it was asked for.
    pub created_at: i64,
    /// Confirm before this.
    pub expires_at: i64,
    /// When it was confirmed.
    pub confirmed_at: Option<i64>,
}

type RawRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
);

const COLUMNS: &str = "id, card_id, device_id, signed_by, forced, confirm_nonce, new_auth_serial, state, created_at, expires_at, confirmed_at";

fn from_raw(r: RawRow) -> RenewalRow {
    RenewalRow {
        id: r.0,
        card_id: r.1,
        device_id: r.2,
        signed_by: r.3,
        forced: r.4 != 0,
        confirm_nonce: r.5,
        new_auth_serial: r.6,
        state: r.7,
        created_at: r.8,
        expires_at: r.9,
        confirmed_at: r.10,
    }
}

/// Records a renewal in state [`ISSUED`].
pub async fn insert_renewal(conn: &mut Conn, r: &RenewalRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO card_renewals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )))
    .bind(&r.id)
    .bind(&r.card_id)
    .bind(&r.device_id)
    .bind(&r.signed_by)
    .bind(i64::from(r.forced))
    .bind(&r.confirm_nonce)
    .bind(&r.new_auth_serial)
    .bind(&r.state)
    .bind(r.created_at)
    .bind(r.expires_at)
    .bind(r.confirmed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A renewal by id.
pub async fn renewal(conn: &mut Conn, id: &str) -> Result<Option<RenewalRow>, StoreError> {
    let row: Option<RawRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM card_renewals WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_raw))
}

/// The card's renewals, newest first.
pub async fn renewals_of(conn: &mut Conn, card_id: &str) -> Result<Vec<RenewalRow>, StoreError> {
    let rows: Vec<RawRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM card_renewals WHERE card_id = $1 ORDER BY created_at DESC, id"
    )))
    .bind(card_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(from_raw).collect())
}

/// Marks a certificate as issued by `renewal_id` and not yet the card's.
pub async fn mark_pending(
    conn: &mut Conn,
    serial: &str,
    renewal_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE certificates SET pending_renewal = $2 WHERE serial = $1")
        .bind(serial)
        .bind(renewal_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Lapses the card's unconfirmed renewals and revokes their certificates with `reason_code`;
/// returns the revoked serials.
pub async fn lapse_open(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
    reason_code: u8,
) -> Result<Vec<String>, StoreError> {
    let serials: Vec<(String,)> = sqlx::query_as(
        "SELECT serial FROM certificates
         WHERE card_id = $1 AND pending_renewal IS NOT NULL AND revoked_at IS NULL ORDER BY serial",
    )
    .bind(card_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE certificates SET revoked_at = $2, revocation_reason_code = $3
         WHERE card_id = $1 AND pending_renewal IS NOT NULL AND revoked_at IS NULL",
    )
    .bind(card_id)
    .bind(now)
    .bind(i64::from(reason_code))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE card_renewals SET state = $3, ended_at = $2 WHERE card_id = $1 AND state = $4",
    )
    .bind(card_id)
    .bind(now)
    .bind(LAPSED)
    .bind(ISSUED)
    .execute(conn)
    .await?;
    Ok(serials.into_iter().map(|(s,)| s).collect())
}

/// [`ISSUED`] renewals whose confirmation deadline (`expires_at`) is at or before `now`, oldest
/// first, at most `limit`.
pub async fn expired_issued(
    conn: &mut Conn,
    now: i64,
    limit: i64,
) -> Result<Vec<RenewalRow>, StoreError> {
    let rows: Vec<RawRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM card_renewals WHERE state = $1 AND expires_at <= $2
         ORDER BY expires_at, id LIMIT $3"
    )))
    .bind(ISSUED)
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(from_raw).collect())
}

/// Lapses one [`ISSUED`] renewal past its deadline and revokes its certificates with
/// `reason_code`. The state change is conditional, so of two nodes sweeping at once exactly one
/// lapses it; the other gets `None` and changes nothing. Returns the revoked serials.
pub async fn lapse_expired(
    conn: &mut Conn,
    renewal_id: &str,
    now: i64,
    reason_code: u8,
) -> Result<Option<Vec<String>>, StoreError> {
    let done = sqlx::query(
        "UPDATE card_renewals SET state = $2, ended_at = $3
         WHERE id = $1 AND state = $4 AND expires_at <= $3",
    )
    .bind(renewal_id)
    .bind(LAPSED)
    .bind(now)
    .bind(ISSUED)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let serials: Vec<(String,)> = sqlx::query_as(
        "SELECT serial FROM certificates
         WHERE pending_renewal = $1 AND revoked_at IS NULL ORDER BY serial",
    )
    .bind(renewal_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE certificates SET revoked_at = $2, revocation_reason_code = $3
         WHERE pending_renewal = $1 AND revoked_at IS NULL",
    )
    .bind(renewal_id)
    .bind(now)
    .bind(i64::from(reason_code))
    .execute(conn)
    .await?;
    Ok(Some(serials.into_iter().map(|(s,)| s).collect()))
}

/// Confirms an [`ISSUED`] renewal that has not expired: its certificates become the card's and
/// every other live certificate of the card is revoked with `reason_code`. Returns the revoked
/// serials, or `None` when the renewal was not open (nothing changed).
pub async fn confirm(
    conn: &mut Conn,
    renewal_id: &str,
    card_id: &str,
    now: i64,
    reason_code: u8,
) -> Result<Option<Vec<String>>, StoreError> {
    let done = sqlx::query(
        "UPDATE card_renewals SET state = $2, confirmed_at = $3, ended_at = $3
         WHERE id = $1 AND card_id = $4 AND state = $5 AND expires_at > $3",
    )
    .bind(renewal_id)
    .bind(CONFIRMED)
    .bind(now)
    .bind(card_id)
    .bind(ISSUED)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let old: Vec<(String,)> = sqlx::query_as(
        "SELECT serial FROM certificates
         WHERE card_id = $1 AND pending_renewal IS NULL AND revoked_at IS NULL ORDER BY serial",
    )
    .bind(card_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE certificates SET revoked_at = $2, revocation_reason_code = $3
         WHERE card_id = $1 AND pending_renewal IS NULL AND revoked_at IS NULL",
    )
    .bind(card_id)
    .bind(now)
    .bind(i64::from(reason_code))
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE certificates SET pending_renewal = NULL WHERE pending_renewal = $1")
        .bind(renewal_id)
        .execute(&mut *conn)
        .await?;
    clear_order(conn, card_id).await?;
    Ok(Some(old.into_iter().map(|(s,)| s).collect()))
}

/// An RA's order to renew now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// The RA.
    pub ordered_by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub ordered_at: i64,
}

/// Makes the card's renewal due now (replacing an earlier order).
pub async fn set_order(
    conn: &mut Conn,
    card_id: &str,
    ordered_by: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO card_renewal_orders (card_id, ordered_by, reason, ordered_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (card_id) DO UPDATE SET ordered_by = $2, reason = $3, ordered_at = $4",
    )
    .bind(card_id)
    .bind(ordered_by)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The card's order to renew now, if any.
pub async fn order(conn: &mut Conn, card_id: &str) -> Result<Option<OrderRow>, StoreError> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT ordered_by, reason, ordered_at FROM card_renewal_orders WHERE card_id = $1",
    )
    .bind(card_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(ordered_by, reason, ordered_at)| OrderRow {
        ordered_by,
        reason,
        ordered_at,
    }))
}

/// Removes the card's order (it renewed).
pub async fn clear_order(conn: &mut Conn, card_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM card_renewal_orders WHERE card_id = $1")
        .bind(card_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A certificate by serial, pending or not: its card, usage, DER, validity end and revocation.
pub async fn certificate(
    conn: &mut Conn,
    serial: &str,
) -> Result<Option<crate::repo::CertificateRow>, StoreError> {
    Ok(sqlx::query_as::<_, crate::repo::CertificateRow>(
        "SELECT serial, card_id, usage, der, spki_sha256, not_before, not_after, revoked_at
         FROM certificates WHERE serial = $1",
    )
    .bind(serial)
    .fetch_optional(conn)
    .await?)
}

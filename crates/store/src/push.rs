//! Web Push (issue 13): `push_subscriptions`, each phone's one push subscription (the browser's
//! push service endpoint, its P-256 public key and its auth secret, the last sealed under
//! `master.key` by the server). The server reads the subscription of the phone that holds a card
//! when it opens a request for that card, and deletes it when the push service says it is gone.

use crate::Conn;
use crate::StoreError;

/// One phone's push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    /// The phone.
    pub device_id: String,
    /// The push service URL (`https:`).
    pub endpoint: String,
    /// The browser's uncompressed P-256 public key (65 bytes).
    pub p256dh: Vec<u8>,
    /// The 16-byte auth secret, sealed under `master.key`.
    pub auth_sealed: Vec<u8>,
    /// When it was stored (Unix seconds).
    pub created_at: i64,
}

type RawRow = (String, String, Vec<u8>, Vec<u8>, i64);

fn from_raw(r: RawRow) -> PushSubscriptionRow {
    PushSubscriptionRow {
        device_id: r.0,
        endpoint: r.1,
        p256dh: r.2,
        auth_sealed: r.3,
        created_at: r.4,
    }
}

/// Stores `row` as its device's subscription, replacing the one it had; answers whether there
/// was one.
pub async fn replace(conn: &mut Conn, row: &PushSubscriptionRow) -> Result<bool, StoreError> {
    let removed = delete(&mut *conn, &row.device_id).await?;
    sqlx::query(
        "INSERT INTO push_subscriptions (device_id, endpoint, p256dh, auth_sealed, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.device_id)
    .bind(&row.endpoint)
    .bind(&row.p256dh)
    .bind(&row.auth_sealed)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(removed)
}

/// Deletes the device's subscription; answers whether there was one.
pub async fn delete(conn: &mut Conn, device_id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM push_subscriptions WHERE device_id = $1")
        .bind(device_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the device's subscription only if it is still the one for `endpoint` (a push
/// service's "gone" answer must not remove a subscription the phone has replaced since);
/// answers whether it was deleted.
pub async fn delete_if_endpoint(
    conn: &mut Conn,
    device_id: &str,
    endpoint: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM push_subscriptions WHERE device_id = $1 AND endpoint = $2")
        .bind(device_id)
        .bind(endpoint)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The device's subscription.
pub async fn of_device(
    conn: &mut Conn,
    device_id: &str,
) -> Result<Option<PushSubscriptionRow>, StoreError> {
    let row: Option<RawRow> = sqlx::query_as(
        "SELECT device_id, endpoint, p256dh, auth_sealed, created_at
         FROM push_subscriptions WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_raw))
}

/// The subscription of the phone that holds the card now (`cards.device_id`), if it has one.
pub async fn of_card_holder(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Option<PushSubscriptionRow>, StoreError> {
    let row: Option<RawRow> = sqlx::query_as(
        "SELECT p.device_id, p.endpoint, p.p256dh, p.auth_sealed, p.created_at
         FROM push_subscriptions p JOIN cards c ON c.device_id = p.device_id
         WHERE c.id = $1",
    )
    .bind(card_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_raw))
}

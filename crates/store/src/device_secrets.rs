//! What the server holds to check a phone's keystore passcode (issue 9, item 10): per card, the
//! passcode verifier `V` and the keystore's server secret `S`, both sealed under the instance
//! master key by the caller (this module stores bytes), and the count of wrong passcodes in a
//! row. See `vsc_authenticator::keystore` for the scheme.
//!
//! The row is written at enrolment and replaced at every redeemed RA unlock (new passcode, new
//! secret, count cleared), in the same transaction as the rest of that change.

use crate::Conn;
use crate::StoreError;
use crate::row::from_row;

/// A card's passcode check material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasscodeSecretRow {
    /// The card.
    pub card_id: String,
    /// `V`, sealed under the master key.
    pub sealed_verifier: Vec<u8>,
    /// `S`, sealed under the master key.
    pub sealed_secret: Vec<u8>,
    /// Wrong passcodes since the last right one.
    pub failed_attempts: i64,
}

from_row!(PasscodeSecretRow in "card_passcode_secrets" {
    card_id, sealed_verifier, sealed_secret, failed_attempts,
});

/// Sets (or replaces) a card's verifier and secret and clears its count.
pub async fn set_passcode_secret(
    conn: &mut Conn,
    card_id: &str,
    sealed_verifier: &[u8],
    sealed_secret: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO card_passcode_secrets (card_id, sealed_verifier, sealed_secret, failed_attempts, updated_at)
         VALUES ($1, $2, $3, 0, $4)
         ON CONFLICT (card_id) DO UPDATE SET sealed_verifier = excluded.sealed_verifier,
             sealed_secret = excluded.sealed_secret, failed_attempts = 0, updated_at = excluded.updated_at",
    )
    .bind(card_id)
    .bind(sealed_verifier)
    .bind(sealed_secret)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A card's verifier, secret and count; `None` for a card enrolled before the server checked
/// passcodes.
pub async fn passcode_secret(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Option<PasscodeSecretRow>, StoreError> {
    Ok(sqlx::query_as::<_, PasscodeSecretRow>(
        "SELECT card_id, sealed_verifier, sealed_secret, failed_attempts
         FROM card_passcode_secrets WHERE card_id = $1",
    )
    .bind(card_id)
    .fetch_optional(conn)
    .await?)
}

/// Counts a wrong passcode; returns the count after it.
pub async fn record_passcode_failure(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let (count,): (i64,) = sqlx::query_as(
        "UPDATE card_passcode_secrets SET failed_attempts = failed_attempts + 1, updated_at = $1
         WHERE card_id = $2 RETURNING failed_attempts",
    )
    .bind(now)
    .bind(card_id)
    .fetch_one(conn)
    .await?;
    Ok(count)
}

/// Clears a card's wrong-passcode count; returns whether there was one to clear.
pub async fn reset_passcode_failures(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE card_passcode_secrets SET failed_attempts = 0, updated_at = $1
         WHERE card_id = $2 AND failed_attempts <> 0",
    )
    .bind(now)
    .bind(card_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

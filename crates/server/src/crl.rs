//! Publishing the CA's certificate revocation lists: regenerated inside the transaction that
//! revokes (so a revocation and the CRL that lists it commit together), and re-published by a
//! background task before `nextUpdate` so relying parties never hold a stale CRL.
//!
//! Each entry carries the RFC 5280 reason code the RA gave (`reasonCode`, 2.5.29.21) and, for a
//! key compromise with a known time, the `invalidityDate` (2.5.29.24): relying parties reject
//! signatures made after it, which the revocation time alone would let through if a stolen key
//! back-dates its signatures.
//!
//! CRLs live in the database (`crls`), not in the data directory, so every node of an instance
//! serves the same, latest one. With several nodes, one publishes at a time: the scheduled
//! refresh first takes a PostgreSQL advisory lock of its own ([`PUBLISHER_LOCK_KEY`]) and a
//! node that does not get it leaves the work to the node that has it; the publication itself
//! runs under the store's write lock, so the check "is one due?" and the new number are
//! decided by one writer at a time (a revocation's CRL is published inside the revocation's own
//! write transaction, likewise).

use std::time::Duration as StdDuration;

use vsc_pki::{RevocationReason, RevokedEntry};
use vsc_store::Tx;
use vsc_store::repo::{self, CrlRow};

use crate::error::ApiError;
use crate::state::AppState;

/// Re-publish when less than this share of the validity is left.
const REFRESH_WHEN_REMAINING_BELOW: f64 = 0.5;

/// Which CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlIssuer {
    /// Signed by the issuing CA: people's certificates.
    Issuing,
    /// Signed by the root: issuing CAs.
    Root,
}

impl CrlIssuer {
    /// Database key and URL stem.
    pub fn as_str(self) -> &'static str {
        match self {
            CrlIssuer::Issuing => "issuing",
            CrlIssuer::Root => "root",
        }
    }
}

/// Generates and stores a new CRL inside `tx`; returns its number.
pub async fn publish(state: &AppState, tx: &mut Tx, issuer: CrlIssuer) -> Result<i64, ApiError> {
    let now = state.now();
    let number = repo::crl(tx, issuer.as_str())
        .await?
        .map_or(1, |c| c.crl_number + 1);
    let next_update = now + state.config().crl_validity;
    let der = match issuer {
        CrlIssuer::Issuing => {
            let revoked = repo::revoked_unexpired(tx, now.unix_timestamp())
                .await?
                .into_iter()
                .map(|r| {
                    let at = time::OffsetDateTime::from_unix_timestamp(r.revoked_at).unwrap_or(now);
                    RevokedEntry {
                        // Revocations from before reasons were kept stay "unspecified".
                        reason: r
                            .reason_code
                            .and_then(RevocationReason::from_code)
                            .unwrap_or_default(),
                        invalidity_date: r
                            .invalidity_date
                            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()),
                        ..RevokedEntry::new(r.serial, at)
                    }
                })
                .collect::<Vec<_>>();
            state
                .ca()
                .issuing_crl(&revoked, number as u64, now, next_update)?
        }
        // The root has never revoked an issuing CA; rotating one is an offline ceremony.
        CrlIssuer::Root => state.ca().root_crl(&[], number as u64, now, next_update)?,
    };
    let row = CrlRow {
        issuer: issuer.as_str().to_owned(),
        crl_number: number,
        der,
        this_update: now.unix_timestamp(),
        next_update: next_update.unix_timestamp(),
    };
    repo::put_crl(tx, &row).await?;
    Ok(number)
}

/// The key of the PostgreSQL advisory lock held by the node publishing scheduled CRLs.
pub const PUBLISHER_LOCK_KEY: i64 = 0x7673_635f_6372_6c70; // "vsc_crlp"

/// Publishes any CRL that is missing or past half its validity, with an audit event each. On a
/// shared store, returns without doing anything while another node is publishing.
pub async fn refresh_due(state: &AppState) -> Result<(), ApiError> {
    // Held (a transaction on a connection of its own) until this function returns; dropping
    // it rolls back, which releases the lock.
    let _publisher = match state.store().backend() {
        vsc_store::Backend::Sqlite => None,
        vsc_store::Backend::Postgres => {
            let mut lock = state
                .store()
                .pool()
                .begin()
                .await
                .map_err(vsc_store::StoreError::from)?;
            let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PUBLISHER_LOCK_KEY)
                .fetch_one(&mut *lock)
                .await
                .map_err(vsc_store::StoreError::from)?;
            if !got {
                tracing::debug!("another node is publishing CRLs");
                return Ok(());
            }
            Some(lock)
        }
    };
    let now = state.now_unix();
    for issuer in [CrlIssuer::Issuing, CrlIssuer::Root] {
        let mut tx = state.write().await?;
        let due = match repo::crl(&mut tx, issuer.as_str()).await? {
            None => true,
            Some(c) => {
                let total = (c.next_update - c.this_update).max(1) as f64;
                ((c.next_update - now) as f64) / total < REFRESH_WHEN_REMAINING_BELOW
            }
        };
        if !due {
            continue;
        }
        let number = publish(state, &mut tx, issuer).await?;
        let event = vsc_store::NewEvent {
            actor: "system".into(),
            action: "crl.published".into(),
            subject: issuer.as_str().into(),
            organisation: String::new(),
            source: "server".into(),
            outcome: vsc_store::Outcome::Success,
            detail: serde_json::json!({"crl_number": number, "reason": "scheduled"}),
        };
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
        tracing::info!(
            issuer = issuer.as_str(),
            crl_number = number,
            "published CRL"
        );
    }
    Ok(())
}

/// Checks every ten minutes whether a CRL is due; runs until the server stops.
pub async fn refresher(state: AppState) {
    loop {
        tokio::time::sleep(StdDuration::from_secs(600)).await;
        if let Err(e) = refresh_due(&state).await {
            tracing::error!(
                error = e.message,
                "scheduled CRL publication failed; will retry"
            );
        }
    }
}

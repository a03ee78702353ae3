//! Lapsing renewals the phone never confirmed (issue 14). A renewal issues its new certificates
//! at once, marked `pending_renewal`, and gives the phone an hour to confirm
//! with the new key (`CONFIRM_TTL_SECONDS` in the device renewal routes). A phone that never comes back
//! would otherwise leave those certificates valid and unrevoked until the card's next renewal,
//! cancellation or replacement; this sweep ends them promptly.
//!
//! Every [`SWEEP_SECONDS`], [`sweep_once`] looks for `issued` renewals past their deadline and,
//! in one write transaction, marks each `lapsed`, revokes its certificates `superseded`,
//! appends a `card.renewal.lapsed` event per renewal and, when anything was revoked, publishes
//! the issuing CRL once. With several nodes on one PostgreSQL store every node sweeps: the
//! lapse is a conditional `UPDATE … WHERE state = 'issued' AND expires_at <= now`, so exactly
//! one node lapses (and audits) a given renewal and the others find nothing left to do.

use vsc_pki::RevocationReason;
use vsc_store::renewal as db;

use crate::crl::{self, CrlIssuer};
use crate::error::ApiResult;
use crate::state::{AppState, AuditContext};

/// How often expired renewals are looked for.
pub const SWEEP_SECONDS: u64 = 60;

/// At most this many renewals are lapsed per transaction (the rest at the next pass).
const BATCH: i64 = 200;

/// Lapses every `issued` renewal whose confirmation deadline has passed (see the module
/// documentation); returns how many this node lapsed.
pub async fn sweep_once(state: &AppState) -> ApiResult<usize> {
    let now = state.now_unix();
    let expired = {
        let mut conn = state.store().pool().acquire().await?;
        db::expired_issued(&mut conn, now, BATCH).await?
    };
    if expired.is_empty() {
        return Ok(0);
    }
    let mut tx = state.write().await?;
    let system = AuditContext {
        actor: "system".into(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let mut lapsed = 0;
    let mut revoked_any = false;
    let mut events = Vec::new();
    for renewal in expired {
        let Some(serials) = db::lapse_expired(
            &mut tx,
            &renewal.id,
            now,
            RevocationReason::Superseded.code(),
        )
        .await?
        else {
            // Confirmed, lapsed by another renewal, or swept by another node meanwhile.
            continue;
        };
        lapsed += 1;
        revoked_any |= !serials.is_empty();
        let organisation = vsc_store::repo::card(&mut tx, &renewal.card_id)
            .await?
            .map(|c| c.issued_by)
            .unwrap_or_default();
        events.push(system.event(
            "card.renewal.lapsed",
            &renewal.card_id,
            &organisation,
            serde_json::json!({
                "renewal_id": renewal.id, "device_id": renewal.device_id,
                "expired_at": renewal.expires_at, "revoked_serials": serials,
                "reason_code": "superseded", "reason": "not-confirmed",
            }),
        ));
    }
    let crl_number = if revoked_any {
        Some(crl::publish(state, &mut tx, CrlIssuer::Issuing).await?)
    } else {
        None
    };
    for mut event in events {
        event.detail["crl_number"] = serde_json::json!(crl_number);
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
    }
    tx.commit().await?;
    if lapsed > 0 {
        tracing::info!(lapsed, ?crl_number, "lapsed unconfirmed renewals");
    }
    Ok(lapsed)
}

/// Runs [`sweep_once`] every [`SWEEP_SECONDS`] until the task is aborted.
pub async fn sweeper(state: AppState) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(SWEEP_SECONDS)).await;
        if let Err(e) = sweep_once(&state).await {
            tracing::warn!(error = e.message, "renewal sweep failed; will retry");
        }
    }
}

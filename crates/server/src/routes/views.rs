//! Turning stored rows into the API's views of people and cards (a card with its history:
//! certificates, revoked ones included, and the phones it has been on).

use vsc_proto::errors as code;
use vsc_proto::replacement::{CardDevice, PendingReplacement};
use vsc_proto::{Card, CertificateSummary, IdentityCheck, Person, Position, RaRoleGrant};
use vsc_store::Conn;
use vsc_store::repo;

use crate::error::{ApiError, ApiResult};

fn timestamp(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A card with its history: every certificate it has had (revoked ones with their reason) and
/// every phone it has been on, and the replacement waiting for a new phone, if any.
pub async fn card(conn: &mut Conn, row: repo::CardRow) -> ApiResult<Card> {
    let certificates = repo::certificate_history(conn, &row.id)
        .await?
        .into_iter()
        .map(|c| CertificateSummary {
            serial: c.serial,
            usage: c.usage,
            not_after: timestamp(c.not_after),
            revoked: c.revoked_at.is_some(),
            not_before: Some(timestamp(c.not_before)),
            revoked_at: c.revoked_at.map(timestamp),
            revocation_reason: c.revoked_at.map(|_| reason_name(c.reason_code).to_owned()),
        })
        .collect();
    let devices = repo::card_devices(conn, &row.id)
        .await?
        .into_iter()
        .map(|d| CardDevice {
            device_id: d.device_id,
            platform: d.platform,
            model: d.model,
            bound_at: timestamp(d.bound_at),
            unbound_at: d.unbound_at.map(timestamp),
            unbound_reason: d.unbound_reason,
        })
        .collect();
    let pending_replacement =
        repo::open_replacement(conn, &row.id)
            .await?
            .map(|r| PendingReplacement {
                lost: r.lost,
                reason: r.reason,
                requested_by: r.requested_by,
                requested_at: timestamp(r.requested_at),
                old_device_id: r.old_device_id,
            });
    Ok(Card {
        id: row.id,
        uid: row.uid,
        state: row.state.as_str().to_owned(),
        custody: row.custody,
        issued_by: row.issued_by,
        device_id: row.device_id,
        certificates,
        devices,
        pending_replacement,
        renewal: None,
    })
}

/// The name of an RFC 5280 CRLReason code as RAs give it (`unspecified` for revocations
/// recorded before reasons were kept, and for codes vsc never uses).
pub fn reason_name(code: Option<u8>) -> &'static str {
    use vsc_pki::RevocationReason as R;
    [
        (R::KeyCompromise, "key-compromise"),
        (R::AffiliationChanged, "affiliation-changed"),
        (R::Superseded, "superseded"),
        (R::CessationOfOperation, "cessation-of-operation"),
    ]
    .into_iter()
    .find(|(r, _)| Some(r.code()) == code)
    .map_or("unspecified", |(_, name)| name)
}

/// Loads a card or answers `unknown_card`.
pub async fn card_by_id(conn: &mut Conn, id: &str) -> ApiResult<repo::CardRow> {
    repo::card(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_CARD, format!("no card has id {id}")))
}

/// A person's whole profile.
pub async fn person(conn: &mut Conn, uid: &str) -> ApiResult<Person> {
    let p = repo::person(conn, uid).await?.ok_or_else(|| {
        ApiError::not_found(code::UNKNOWN_PERSON, format!("no person has UID {uid}"))
    })?;
    let positions = repo::positions(conn, uid)
        .await?
        .into_iter()
        .map(|p| Position {
            id: p.id,
            organisation: p.ods_code,
            role_code: p.role_code,
            role_name: p.role_name,
            activities: p.activities,
        })
        .collect();
    let ra_roles = repo::ra_roles(conn, uid)
        .await?
        .into_iter()
        .map(|r| RaRoleGrant {
            role: r.role,
            organisation: r.ods_code,
            assignable_roles: r.assignable_roles,
            assignable_activities: r.assignable_activities,
        })
        .collect();
    let identity_checks = repo::identity_checks(conn, uid)
        .await?
        .into_iter()
        .map(|c| IdentityCheck {
            checked_by: c.checked_by,
            recorded_by: c.recorded_by,
            evidence: c.evidence,
            level: c.level,
            organisation: c.ods_code,
            checked_at: timestamp(c.checked_at),
        })
        .collect();
    let mut cards = Vec::new();
    for row in repo::cards_of(conn, uid).await? {
        cards.push(card(conn, row).await?);
    }
    Ok(Person {
        uid: p.uid,
        given_name: p.given_name,
        family_name: p.family_name,
        email: p.email,
        registered_by: p.registered_by,
        positions,
        ra_roles,
        identity_checks,
        cards,
    })
}

//! Turning stored rows into the API's views of people and cards.

use vsc_proto::errors as code;
use vsc_proto::{Card, CertificateSummary, IdentityCheck, Person, Position, RaRoleGrant};
use vsc_store::Conn;
use vsc_store::repo;

use crate::error::{ApiError, ApiResult};

fn timestamp(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A card with its certificates.
pub async fn card(conn: &mut Conn, row: repo::CardRow) -> ApiResult<Card> {
    let certificates = repo::certificates_of(conn, &row.id)
        .await?
        .into_iter()
        .map(|c| CertificateSummary {
            serial: c.serial,
            usage: c.usage,
            not_after: timestamp(c.not_after),
            revoked: c.revoked_at.is_some(),
        })
        .collect();
    Ok(Card {
        id: row.id,
        uid: row.uid,
        state: row.state.as_str().to_owned(),
        custody: row.custody,
        issued_by: row.issued_by,
        device_id: row.device_id,
        certificates,
    })
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

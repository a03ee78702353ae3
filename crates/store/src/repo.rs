//! Typed queries, one small function per statement, composed by the server inside transactions.
//!
//! Functions take `&mut Conn` so that a caller holding a [`crate::Tx`] passes
//! `&mut tx` and a reader passes a pooled connection; none of them commits on its own.

use vsc_core::{CardState, PositionRequestState};

use crate::Conn;
use crate::StoreError;
use crate::row::{flag, from_row, get, json, parsed, small, small_opt};

/// An organisation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRow {
    /// ODS code.
    pub ods_code: String,
    /// Name.
    pub name: String,
    /// The national organisation.
    pub national: bool,
}

from_row!(OrganisationRow in "organisations" { ods_code, name, national: flag });

/// Inserts an organisation.
pub async fn insert_organisation(
    conn: &mut Conn,
    org: &OrganisationRow,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO organisations (ods_code, name, national, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&org.ods_code)
    .bind(&org.name)
    .bind(i64::from(org.national))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds an organisation.
pub async fn organisation(
    conn: &mut Conn,
    ods: &str,
) -> Result<Option<OrganisationRow>, StoreError> {
    Ok(sqlx::query_as::<_, OrganisationRow>(
        "SELECT ods_code, name, national FROM organisations WHERE ods_code = $1",
    )
    .bind(ods)
    .fetch_optional(conn)
    .await?)
}

/// The national organisation, once bootstrapped.
pub async fn national_organisation(conn: &mut Conn) -> Result<Option<OrganisationRow>, StoreError> {
    Ok(sqlx::query_as::<_, OrganisationRow>(
        "SELECT ods_code, name, national FROM organisations WHERE national = 1",
    )
    .fetch_optional(conn)
    .await?)
}

/// Every organisation, by ODS code.
pub async fn organisations(conn: &mut Conn) -> Result<Vec<OrganisationRow>, StoreError> {
    Ok(sqlx::query_as::<_, OrganisationRow>(
        "SELECT ods_code, name, national FROM organisations ORDER BY ods_code",
    )
    .fetch_all(conn)
    .await?)
}

/// A person row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// UID.
    pub uid: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Email.
    pub email: Option<String>,
    /// ODS code of the registering organisation.
    pub registered_by: String,
}

from_row!(PersonRow in "people" { uid, given_name, family_name, email, registered_by });

/// Inserts a person. Returns `false` if the UID is taken (the caller draws another).
pub async fn insert_person(conn: &mut Conn, p: &PersonRow, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO people (uid, given_name, family_name, email, registered_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(uid) DO NOTHING",
    )
    .bind(&p.uid)
    .bind(&p.given_name)
    .bind(&p.family_name)
    .bind(&p.email)
    .bind(&p.registered_by)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Finds a person.
pub async fn person(conn: &mut Conn, uid: &str) -> Result<Option<PersonRow>, StoreError> {
    Ok(sqlx::query_as::<_, PersonRow>(
        "SELECT uid, given_name, family_name, email, registered_by FROM people WHERE uid = $1",
    )
    .bind(uid)
    .fetch_optional(conn)
    .await?)
}

/// The organisations a person belongs to: where registered, and where holding a position.
pub async fn person_organisations(conn: &mut Conn, uid: &str) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT registered_by FROM people WHERE uid = $1
         UNION SELECT ods_code FROM positions WHERE uid = $1 AND ended_at IS NULL",
    )
    .bind(uid)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(o,)| o).collect())
}

/// A position row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionRow {
    /// Id.
    pub id: String,
    /// Holder.
    pub uid: String,
    /// ODS code.
    pub ods_code: String,
    /// NRBAC role code.
    pub role_code: String,
    /// Role name.
    pub role_name: String,
    /// Activity codes.
    pub activities: Vec<String>,
}

from_row!(PositionRow in "positions" {
    id, uid, ods_code, role_code, role_name, activities: json,
});

/// A position with its organisation's name (`positions_with_organisation_names`).
struct PositionWithOrganisationName {
    position: PositionRow,
    organisation_name: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for PositionWithOrganisationName {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(PositionWithOrganisationName {
            position: <PositionRow as sqlx::FromRow<'r, sqlx::any::AnyRow>>::from_row(row)?,
            organisation_name: get(row, "organisation_name")?,
        })
    }
}

/// Inserts a position, or takes up again one the person held before and that was ended (it
/// keeps its id, which old sessions refer to, and gets the new name and activities). Returns
/// the position's id, or `None` when the person holds that role there now.
pub async fn insert_position(
    conn: &mut Conn,
    p: &PositionRow,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let activities =
        serde_json::to_string(&p.activities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let id: Option<(String,)> = sqlx::query_as(
        "INSERT INTO positions (id, uid, ods_code, role_code, role_name, activities, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT(uid, ods_code, role_code) DO UPDATE SET role_name = excluded.role_name,
             activities = excluded.activities, created_at = excluded.created_at,
             ended_at = NULL, ended_by = NULL
         WHERE positions.ended_at IS NOT NULL
         RETURNING id",
    )
    .bind(&p.id)
    .bind(&p.uid)
    .bind(&p.ods_code)
    .bind(&p.role_code)
    .bind(&p.role_name)
    .bind(activities)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(|(id,)| id))
}

/// A position held now, by id.
pub async fn live_position(conn: &mut Conn, id: &str) -> Result<Option<PositionRow>, StoreError> {
    Ok(sqlx::query_as::<_, PositionRow>(
        "SELECT id, uid, ods_code, role_code, role_name, activities FROM positions WHERE id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Ends a person's position (`by` is the RA who ended it). Returns the position as it was, or
/// `None` when the person holds no such position now (never held, or already ended).
pub async fn end_position(
    conn: &mut Conn,
    uid: &str,
    id: &str,
    by: &str,
    now: i64,
) -> Result<Option<PositionRow>, StoreError> {
    Ok(sqlx::query_as::<_, PositionRow>(
        "UPDATE positions SET ended_at = $1, ended_by = $2
         WHERE id = $3 AND uid = $4 AND ended_at IS NULL
         RETURNING id, uid, ods_code, role_code, role_name, activities",
    )
    .bind(now)
    .bind(by)
    .bind(id)
    .bind(uid)
    .fetch_optional(conn)
    .await?)
}

/// A person's positions (those held now; ended ones stay in the table and the audit log).
pub async fn positions(conn: &mut Conn, uid: &str) -> Result<Vec<PositionRow>, StoreError> {
    Ok(sqlx::query_as::<_, PositionRow>(
        "SELECT id, uid, ods_code, role_code, role_name, activities FROM positions WHERE uid = $1 AND ended_at IS NULL ORDER BY created_at, id",
    )
    .bind(uid)
    .fetch_all(conn)
    .await?)
}

/// A person's positions, each with its organisation's name (one query, not one per position).
pub async fn positions_with_organisation_names(
    conn: &mut Conn,
    uid: &str,
) -> Result<Vec<(PositionRow, String)>, StoreError> {
    let rows = sqlx::query_as::<_, PositionWithOrganisationName>(
        "SELECT p.id, p.uid, p.ods_code, p.role_code, p.role_name, p.activities, \
         COALESCE(o.name, '') AS organisation_name \
         FROM positions p LEFT JOIN organisations o ON o.ods_code = p.ods_code \
         WHERE p.uid = $1 AND p.ended_at IS NULL ORDER BY p.created_at, p.id",
    )
    .bind(uid)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.position, r.organisation_name))
        .collect())
}

/// An RA role row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaRoleRow {
    /// Holder.
    pub uid: String,
    /// ODS code.
    pub ods_code: String,
    /// Role name (`ra-manager`, …).
    pub role: String,
    /// Sponsors: NRBAC role codes it may assign.
    pub assignable_roles: Vec<String>,
    /// Sponsors: activity codes it may put into the positions it assigns.
    pub assignable_activities: Vec<String>,
}

from_row!(RaRoleRow in "ra_roles" {
    uid, ods_code, role, assignable_roles: json, assignable_activities: json,
});

/// Grants an RA role (replacing the sponsor's assignable roles and activities if already held).
pub async fn upsert_ra_role(conn: &mut Conn, r: &RaRoleRow, now: i64) -> Result<(), StoreError> {
    let assignable = serde_json::to_string(&r.assignable_roles)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let activities = serde_json::to_string(&r.assignable_activities)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO ra_roles (uid, ods_code, role, assignable_roles, assignable_activities, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT(uid, ods_code, role) DO UPDATE SET assignable_roles = excluded.assignable_roles,
             assignable_activities = excluded.assignable_activities",
    )
    .bind(&r.uid)
    .bind(&r.ods_code)
    .bind(&r.role)
    .bind(assignable)
    .bind(activities)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes an RA role away. Returns the role as it was, or `None` when the person does not hold
/// it.
pub async fn remove_ra_role(
    conn: &mut Conn,
    uid: &str,
    ods_code: &str,
    role: &str,
) -> Result<Option<RaRoleRow>, StoreError> {
    Ok(sqlx::query_as::<_, RaRoleRow>(
        "DELETE FROM ra_roles WHERE uid = $1 AND ods_code = $2 AND role = $3
         RETURNING uid, ods_code, role, assignable_roles, assignable_activities",
    )
    .bind(uid)
    .bind(ods_code)
    .bind(role)
    .fetch_optional(conn)
    .await?)
}

/// A person's RA roles.
pub async fn ra_roles(conn: &mut Conn, uid: &str) -> Result<Vec<RaRoleRow>, StoreError> {
    Ok(sqlx::query_as::<_, RaRoleRow>(
        "SELECT uid, ods_code, role, assignable_roles, assignable_activities FROM ra_roles WHERE uid = $1 ORDER BY ods_code, role",
    )
    .bind(uid)
    .fetch_all(conn)
    .await?)
}

/// A request to give a person a position at an organisation where they are not yet registered
/// and hold no position. It takes effect only when an RA of the person's registering
/// organisation approves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionRequestRow {
    /// Id.
    pub id: String,
    /// Whose position.
    pub uid: String,
    /// Where the position would be.
    pub ods_code: String,
    /// The person's registering organisation when the request was made (who must approve).
    pub home_ods: String,
    /// NRBAC role code.
    pub role_code: String,
    /// Role name.
    pub role_name: String,
    /// Activity codes.
    pub activities: Vec<String>,
    /// The RA who asked (UID).
    pub requested_by: String,
    /// When (Unix seconds).
    pub created_at: i64,
    /// Until when it can be approved (Unix seconds).
    pub expires_at: i64,
    /// Where the request stands (stored as its canonical name,
    /// [`PositionRequestState::as_str`]).
    pub state: PositionRequestState,
    /// The RA who approved or declined it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// The approver's or decliner's note.
    pub note: Option<String>,
}

const POSITION_REQUEST_COLUMNS: &str = "id, uid, ods_code, home_ods, role_code, role_name, activities, requested_by, created_at, expires_at, state, decided_by, decided_at, note";

from_row!(PositionRequestRow in "position_requests" {
    id, uid, ods_code, home_ods, role_code, role_name, activities: json, requested_by,
    created_at, expires_at, state: parsed, decided_by, decided_at, note,
});

/// Stores a new (pending) position request.
pub async fn insert_position_request(
    conn: &mut Conn,
    r: &PositionRequestRow,
) -> Result<(), StoreError> {
    let activities =
        serde_json::to_string(&r.activities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO position_requests ({POSITION_REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )))
    .bind(&r.id)
    .bind(&r.uid)
    .bind(&r.ods_code)
    .bind(&r.home_ods)
    .bind(&r.role_code)
    .bind(&r.role_name)
    .bind(activities)
    .bind(&r.requested_by)
    .bind(r.created_at)
    .bind(r.expires_at)
    .bind(r.state.as_str())
    .bind(&r.decided_by)
    .bind(r.decided_at)
    .bind(&r.note)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a position request.
pub async fn position_request(
    conn: &mut Conn,
    id: &str,
) -> Result<Option<PositionRequestRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, PositionRequestRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {POSITION_REQUEST_COLUMNS} FROM position_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Position requests still pending and unexpired at `now`, oldest first.
pub async fn pending_position_requests(
    conn: &mut Conn,
    now: i64,
) -> Result<Vec<PositionRequestRow>, StoreError> {
    Ok(sqlx::query_as::<_, PositionRequestRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {POSITION_REQUEST_COLUMNS} FROM position_requests WHERE state = 'pending' AND expires_at > $1 ORDER BY created_at, id"
    )))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Whether `uid` already has a pending, unexpired request for `role_code` at `ods_code`.
pub async fn position_request_open(
    conn: &mut Conn,
    uid: &str,
    ods_code: &str,
    role_code: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM position_requests WHERE uid = $1 AND ods_code = $2 AND role_code = $3 AND state = 'pending' AND expires_at > $4",
    )
    .bind(uid)
    .bind(ods_code)
    .bind(role_code)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Decides a pending, unexpired request (`approved` or `declined`). Returns `false` if it was
/// not pending or had expired, so two RAs deciding at once cannot both succeed.
pub async fn decide_position_request(
    conn: &mut Conn,
    id: &str,
    state: PositionRequestState,
    decided_by: &str,
    note: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE position_requests SET state = $2, decided_by = $3, decided_at = $4, note = $5
         WHERE id = $1 AND state = $6 AND expires_at > $4",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(decided_by)
    .bind(now)
    .bind(note)
    .bind(PositionRequestState::Pending.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An identity-check row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCheckRow {
    /// Whose identity.
    pub uid: String,
    /// Who saw the evidence.
    pub checked_by: String,
    /// Who recorded the check when that was someone else (an RA running a bulk file).
    pub recorded_by: Option<String>,
    /// Organisation.
    pub ods_code: String,
    /// Evidence types.
    pub evidence: Vec<String>,
    /// e-GIF level.
    pub level: u8,
    /// When (Unix seconds).
    pub checked_at: i64,
}

from_row!(IdentityCheckRow in "identity_checks" {
    uid, checked_by, recorded_by, ods_code, evidence: json, level: small, checked_at,
});

/// Records an identity check.
pub async fn insert_identity_check(
    conn: &mut Conn,
    c: &IdentityCheckRow,
) -> Result<(), StoreError> {
    let evidence =
        serde_json::to_string(&c.evidence).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO identity_checks (uid, checked_by, recorded_by, ods_code, evidence, level, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.uid)
    .bind(&c.checked_by)
    .bind(&c.recorded_by)
    .bind(&c.ods_code)
    .bind(evidence)
    .bind(i64::from(c.level))
    .bind(c.checked_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A person's identity checks, oldest first.
pub async fn identity_checks(
    conn: &mut Conn,
    uid: &str,
) -> Result<Vec<IdentityCheckRow>, StoreError> {
    Ok(sqlx::query_as::<_, IdentityCheckRow>(
        "SELECT uid, checked_by, recorded_by, ods_code, evidence, level, checked_at FROM identity_checks WHERE uid = $1 ORDER BY id",
    )
    .bind(uid)
    .fetch_all(conn)
    .await?)
}

/// A device row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Device id.
    pub device_id: String,
    /// The one person this device belongs to.
    pub uid: String,
    /// Platform.
    pub platform: String,
    /// App version last seen.
    pub app_version: String,
    /// Model.
    pub model: String,
    /// A simulated phone.
    pub simulated: bool,
}

from_row!(DeviceRow in "devices" {
    device_id, uid, platform, app_version, model, simulated: flag,
});

/// Finds a device.
pub async fn device(conn: &mut Conn, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
    Ok(sqlx::query_as::<_, DeviceRow>(
        "SELECT device_id, uid, platform, app_version, model, simulated FROM devices WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_optional(conn)
    .await?)
}

/// Records a device for its person (or refreshes what it reported). Never rebinds a device to
/// another person: the statement only updates a row whose `uid` already matches.
pub async fn upsert_device(conn: &mut Conn, d: &DeviceRow, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO devices (device_id, uid, platform, app_version, model, simulated, first_seen, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT(device_id) DO UPDATE SET platform = excluded.platform, app_version = excluded.app_version,
             model = excluded.model, simulated = excluded.simulated, last_seen = excluded.last_seen
         WHERE devices.uid = excluded.uid",
    )
    .bind(&d.device_id)
    .bind(&d.uid)
    .bind(&d.platform)
    .bind(&d.app_version)
    .bind(&d.model)
    .bind(i64::from(d.simulated))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A card row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    /// Card id.
    pub id: String,
    /// Holder.
    pub uid: String,
    /// Where the card stands (stored as its canonical name, [`CardState::as_str`]).
    pub state: CardState,
    /// Custody name.
    pub custody: String,
    /// Issuing organisation.
    pub issued_by: String,
    /// Bound device.
    pub device_id: Option<String>,
}

pub(crate) const CARD_COLUMNS: &str = "id, uid, state, custody, issued_by, device_id";

from_row!(CardRow in "cards" { id, uid, state: parsed, custody, issued_by, device_id });

/// Inserts a card.
pub async fn insert_card(conn: &mut Conn, c: &CardRow, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cards (id, uid, state, custody, issued_by, device_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.id)
    .bind(&c.uid)
    .bind(c.state.as_str())
    .bind(&c.custody)
    .bind(&c.issued_by)
    .bind(&c.device_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a card.
pub async fn card(conn: &mut Conn, id: &str) -> Result<Option<CardRow>, StoreError> {
    Ok(sqlx::query_as::<_, CardRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// A person's cards, newest first.
pub async fn cards_of(conn: &mut Conn, uid: &str) -> Result<Vec<CardRow>, StoreError> {
    Ok(sqlx::query_as::<_, CardRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE uid = $1 ORDER BY created_at DESC, id"
    )))
    .bind(uid)
    .fetch_all(conn)
    .await?)
}

/// Moves a card from one of `from` states to `to`. Returns `false` if it was in none of them
/// (somebody else changed it first), so callers never act on a stale read.
pub async fn transition_card(
    conn: &mut Conn,
    id: &str,
    from: &[CardState],
    to: CardState,
    now: i64,
) -> Result<bool, StoreError> {
    let mut ok = false;
    for state in from {
        let done = sqlx::query(
            "UPDATE cards SET state = $3,
                 activated_at = CASE WHEN $3 = 'active' AND activated_at IS NULL THEN $4 ELSE activated_at END,
                 revoked_at = CASE WHEN $3 = 'revoked' THEN $4 ELSE revoked_at END
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(to.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        ok |= done.rows_affected() == 1;
        if ok {
            break;
        }
    }
    Ok(ok)
}

/// Binds an enrolled card to its device and keeps the sealed recovery key.
pub async fn bind_card_device(
    conn: &mut Conn,
    id: &str,
    device_id: &str,
    recovery_key_sealed: &[u8],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE cards SET device_id = $1, recovery_key_sealed = $2 WHERE id = $3")
        .bind(device_id)
        .bind(recovery_key_sealed)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records why a card was revoked.
pub async fn set_revocation_reason(
    conn: &mut Conn,
    id: &str,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE cards SET revocation_reason = $1 WHERE id = $2")
        .bind(reason)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The sealed recovery key of a card.
pub async fn card_recovery_key(conn: &mut Conn, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row: Option<(Option<Vec<u8>>,)> =
        sqlx::query_as("SELECT recovery_key_sealed FROM cards WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(k,)| k))
}

/// Other cards of the person that are still live (pending, active, locked, suspended).
pub async fn live_cards_of(conn: &mut Conn, uid: &str) -> Result<Vec<CardRow>, StoreError> {
    Ok(sqlx::query_as::<_, CardRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE uid = $1 AND state IN ('pending','active','locked','suspended')"
    )))
    .bind(uid)
    .fetch_all(conn)
    .await?)
}

/// A certificate row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// Serial (hex).
    pub serial: String,
    /// Card.
    pub card_id: String,
    /// `authentication` or `signing`.
    pub usage: String,
    /// DER.
    pub der: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo (hex), unique: one key, one certificate.
    pub spki_sha256: String,
    /// Validity start (Unix seconds).
    pub not_before: i64,
    /// Validity end (Unix seconds).
    pub not_after: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

const CERT_COLUMNS: &str =
    "serial, card_id, usage, der, spki_sha256, not_before, not_after, revoked_at";

from_row!(CertificateRow in "certificates" {
    serial, card_id, usage, der, spki_sha256, not_before, not_after, revoked_at,
});

/// Whether a public key already has a certificate.
pub async fn spki_known(conn: &mut Conn, spki_sha256: &str) -> Result<bool, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT serial FROM certificates WHERE spki_sha256 = $1")
            .bind(spki_sha256)
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// Stores an issued certificate.
pub async fn insert_certificate(conn: &mut Conn, c: &CertificateRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO certificates ({CERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(&c.serial)
    .bind(&c.card_id)
    .bind(&c.usage)
    .bind(&c.der)
    .bind(&c.spki_sha256)
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(c.revoked_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A card's certificates (not those of a renewal the phone has yet to confirm).
pub async fn certificates_of(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, CertificateRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE card_id = $1 AND pending_renewal IS NULL ORDER BY usage"
        )))
        .bind(card_id)
        .fetch_all(conn)
        .await?,
    )
}

/// Revokes every unrevoked certificate of a card with an RFC 5280 reason code and, when known,
/// the invalidity date (since when the key is known or suspected to be compromised); returns
/// how many.
pub async fn revoke_certificates_of(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
    reason_code: u8,
    invalidity_date: Option<i64>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE certificates SET revoked_at = $1, revocation_reason_code = $2, invalidity_date = $3
         WHERE card_id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(i64::from(reason_code))
    .bind(invalidity_date)
    .bind(card_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A revoked certificate as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRow {
    /// Serial (hex).
    pub serial: String,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
    /// RFC 5280 CRLReason code; `None` for revocations recorded before reasons were kept.
    pub reason_code: Option<u8>,
    /// Since when the key is known or suspected to be compromised (Unix seconds).
    pub invalidity_date: Option<i64>,
}

from_row!(RevokedRow in "certificates" {
    serial, revoked_at, reason_code = "revocation_reason_code": small_opt, invalidity_date,
});

/// Every revoked certificate of the issuing CA that has not yet expired (what the CRL must
/// list): people's certificates and registered workstations' certificates (revoked with the
/// workstation, without a reason, as the OCSP responder answers for them).
pub async fn revoked_unexpired(conn: &mut Conn, now: i64) -> Result<Vec<RevokedRow>, StoreError> {
    Ok(sqlx::query_as::<_, RevokedRow>(
        "SELECT serial, revoked_at, revocation_reason_code, invalidity_date FROM certificates
         WHERE revoked_at IS NOT NULL AND not_after > $1
         UNION ALL
         SELECT cert_serial, revoked_at, NULL, NULL FROM workstations
         WHERE revoked_at IS NOT NULL AND not_after > $1
         ORDER BY 2, 1",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// A one-time code row (activation or unlock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// Public id.
    pub id: String,
    /// `activation` or `unlock`.
    pub kind: String,
    /// The card it is for.
    pub card_id: String,
    /// SHA-256 of the secret half.
    pub secret_hash: Vec<u8>,
    /// Issued by (UID or `system`).
    pub created_by: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// When it was redeemed.
    pub used_at: Option<i64>,
    /// Wrong guesses so far.
    pub failed_attempts: i64,
}

from_row!(CodeRow in "one_time_codes" {
    id, kind, card_id, secret_hash, created_by, expires_at, used_at, failed_attempts,
});

/// Stores a new code.
pub async fn insert_code(conn: &mut Conn, c: &CodeRow, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO one_time_codes (id, kind, card_id, secret_hash, created_by, created_at, expires_at, used_at, failed_attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0)",
    )
    .bind(&c.id)
    .bind(&c.kind)
    .bind(&c.card_id)
    .bind(&c.secret_hash)
    .bind(&c.created_by)
    .bind(now)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a code by its public id.
pub async fn code(conn: &mut Conn, id: &str) -> Result<Option<CodeRow>, StoreError> {
    Ok(sqlx::query_as::<_, CodeRow>(
        "SELECT id, kind, card_id, secret_hash, created_by, expires_at, used_at, failed_attempts FROM one_time_codes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Counts a wrong guess against a code; returns the new count.
pub async fn record_code_failure(conn: &mut Conn, id: &str) -> Result<i64, StoreError> {
    let row: (i64,) = sqlx::query_as(
        "UPDATE one_time_codes SET failed_attempts = failed_attempts + 1 WHERE id = $1 RETURNING failed_attempts",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(row.0)
}

/// Consumes a code: succeeds for exactly one caller, and only while it is unused, unexpired and
/// under the guess limit.
pub async fn consume_code(
    conn: &mut Conn,
    id: &str,
    now: i64,
    max_failures: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE one_time_codes SET used_at = $2
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND failed_attempts < $3",
    )
    .bind(id)
    .bind(now)
    .bind(max_failures)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Voids every unused code of a kind for a card (a new activation replaces the old one).
pub async fn void_codes(
    conn: &mut Conn,
    card_id: &str,
    kind: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE one_time_codes SET expires_at = $3 WHERE card_id = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3")
        .bind(card_id)
        .bind(kind)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a challenge.
pub async fn insert_challenge(
    conn: &mut Conn,
    id: &str,
    purpose: &str,
    uid: &str,
    nonce: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO challenges (id, purpose, uid, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(purpose)
        .bind(uid)
        .bind(nonce)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// What consuming a challenge found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeUse {
    /// Consumed now; here is its nonce.
    Consumed(String),
    /// No such challenge for this purpose and person.
    Unknown,
    /// Already used.
    Used,
    /// Expired.
    Expired,
}

/// Consumes a challenge atomically: one conditional `UPDATE … RETURNING`, so of two concurrent
/// callers exactly one gets [`ChallengeUse::Consumed`].
pub async fn consume_challenge(
    conn: &mut Conn,
    id: &str,
    purpose: &str,
    uid: &str,
    now: i64,
) -> Result<ChallengeUse, StoreError> {
    let consumed: Option<(String,)> = sqlx::query_as(
        "UPDATE challenges SET used_at = $4 WHERE id = $1 AND purpose = $2 AND uid = $3 AND used_at IS NULL AND expires_at > $4
         RETURNING nonce",
    )
    .bind(id)
    .bind(purpose)
    .bind(uid)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((nonce,)) = consumed {
        return Ok(ChallengeUse::Consumed(nonce));
    }
    let row: Option<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT used_at, expires_at FROM challenges WHERE id = $1 AND purpose = $2 AND uid = $3",
    )
    .bind(id)
    .bind(purpose)
    .bind(uid)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => ChallengeUse::Unknown,
        Some((Some(_), _)) => ChallengeUse::Used,
        Some((None, _)) => ChallengeUse::Expired,
    })
}

/// Stores an RA session (by the hash of its token).
pub async fn insert_ra_session(
    conn: &mut Conn,
    token_hash: &[u8],
    uid: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ra_sessions (token_hash, uid, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(uid)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The UID of a live RA session.
pub async fn ra_session(
    conn: &mut Conn,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT uid FROM ra_sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(now)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(u,)| u))
}

/// Ends every RA session of a person (their card was cancelled); returns how many.
pub async fn end_ra_sessions_of(conn: &mut Conn, uid: &str) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM ra_sessions WHERE uid = $1")
        .bind(uid)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// A stored CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRow {
    /// `issuing` or `root`.
    pub issuer: String,
    /// CRL number.
    pub crl_number: i64,
    /// DER.
    pub der: Vec<u8>,
    /// thisUpdate (Unix seconds).
    pub this_update: i64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
}

from_row!(CrlRow in "crls" { issuer, crl_number, der, this_update, next_update });

/// Stores (replaces) the CRL of an issuer.
pub async fn put_crl(conn: &mut Conn, c: &CrlRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crls (issuer, crl_number, der, this_update, next_update) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT(issuer) DO UPDATE SET crl_number = excluded.crl_number, der = excluded.der,
             this_update = excluded.this_update, next_update = excluded.next_update",
    )
    .bind(&c.issuer)
    .bind(c.crl_number)
    .bind(&c.der)
    .bind(c.this_update)
    .bind(c.next_update)
    .execute(conn)
    .await?;
    Ok(())
}

/// The current CRL of an issuer.
pub async fn crl(conn: &mut Conn, issuer: &str) -> Result<Option<CrlRow>, StoreError> {
    Ok(sqlx::query_as::<_, CrlRow>(
        "SELECT issuer, crl_number, der, this_update, next_update FROM crls WHERE issuer = $1",
    )
    .bind(issuer)
    .fetch_optional(conn)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Card replacement (issue 14): the phones a card has been on, and replacements waiting for the
// new phone.

/// Why a phone stopped holding a card after a replacement the holder did not lose the phone in.
pub const UNBOUND_REPLACED: &str = "replaced";
/// Why a phone stopped holding a card replaced as lost.
pub const UNBOUND_LOST: &str = "lost";
/// Why a phone stopped holding a cancelled card.
pub const UNBOUND_CANCELLED: &str = "card-cancelled";

/// A phone that held (or holds) a card, with what it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardDeviceRow {
    /// The device.
    pub device_id: String,
    /// Its platform.
    pub platform: String,
    /// Its model.
    pub model: String,
    /// When the card was enrolled on it (Unix seconds).
    pub bound_at: i64,
    /// When the card left it.
    pub unbound_at: Option<i64>,
    /// Why ([`UNBOUND_REPLACED`], [`UNBOUND_LOST`], [`UNBOUND_CANCELLED`]).
    pub unbound_reason: Option<String>,
}

from_row!(CardDeviceRow in "card_devices" {
    device_id, platform, model, bound_at, unbound_at, unbound_reason,
});

/// Records that `card_id` was enrolled on `device_id` at `now`.
pub async fn record_card_bound(
    conn: &mut Conn,
    card_id: &str,
    device_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO card_devices (card_id, device_id, bound_at) VALUES ($1, $2, $3)")
        .bind(card_id)
        .bind(device_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that every phone still holding `card_id` stopped holding it at `now` for `reason`;
/// returns how many.
pub async fn record_card_unbound(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
    reason: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE card_devices SET unbound_at = $2, unbound_reason = $3 WHERE card_id = $1 AND unbound_at IS NULL",
    )
    .bind(card_id)
    .bind(now)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The phones `card_id` has been on, oldest first.
pub async fn card_devices(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Vec<CardDeviceRow>, StoreError> {
    Ok(sqlx::query_as::<_, CardDeviceRow>(
        "SELECT cd.device_id, d.platform, d.model, cd.bound_at, cd.unbound_at, cd.unbound_reason
         FROM card_devices cd JOIN devices d ON d.device_id = cd.device_id
         WHERE cd.card_id = $1 ORDER BY cd.bound_at, cd.id",
    )
    .bind(card_id)
    .fetch_all(conn)
    .await?)
}

/// Whether `device_id` has ever held `card_id`.
pub async fn card_was_on_device(
    conn: &mut Conn,
    card_id: &str,
    device_id: &str,
) -> Result<bool, StoreError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM card_devices WHERE card_id = $1 AND device_id = $2 LIMIT 1")
            .bind(card_id)
            .bind(device_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// A card moved away from a phone by a replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAwayRow {
    /// The card.
    pub card_id: String,
    /// When it left the phone (Unix seconds).
    pub unbound_at: i64,
    /// [`UNBOUND_REPLACED`] or [`UNBOUND_LOST`].
    pub unbound_reason: String,
}

from_row!(MovedAwayRow in "card_devices" { card_id, unbound_at, unbound_reason });

/// When `card_id` was moved away from `device_id` by a replacement, if it was.
pub async fn card_moved_from_device(
    conn: &mut Conn,
    card_id: &str,
    device_id: &str,
) -> Result<Option<MovedAwayRow>, StoreError> {
    Ok(sqlx::query_as::<_, MovedAwayRow>(
        "SELECT card_id, unbound_at, unbound_reason FROM card_devices
         WHERE card_id = $1 AND device_id = $2 AND unbound_reason IN ('replaced', 'lost')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(card_id)
    .bind(device_id)
    .fetch_optional(conn)
    .await?)
}

/// The card most recently moved away from `device_id` by a replacement, if the phone holds no
/// live card now and that is the last thing that happened to it (a phone that enrolled another
/// card since, or whose last card was cancelled, is not "replaced").
pub async fn device_replaced_away(
    conn: &mut Conn,
    device_id: &str,
) -> Result<Option<MovedAwayRow>, StoreError> {
    let last: Option<(String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT card_id, unbound_at, unbound_reason FROM card_devices cd
         WHERE device_id = $1
           AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.device_id = $1
                           AND c.state IN ('pending', 'active', 'locked', 'suspended'))
         ORDER BY id DESC LIMIT 1",
    )
    .bind(device_id)
    .fetch_optional(conn)
    .await?;
    Ok(match last {
        Some((card_id, Some(unbound_at), Some(reason)))
            if reason == UNBOUND_REPLACED || reason == UNBOUND_LOST =>
        {
            Some(MovedAwayRow {
                card_id,
                unbound_at,
                unbound_reason: reason,
            })
        }
        _ => None,
    })
}

/// Takes a card off its phone (replaced as lost: it waits, pending, for the new phone).
pub async fn clear_card_device(conn: &mut Conn, card_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE cards SET device_id = NULL WHERE id = $1")
        .bind(card_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes every device token of `device_id` (its event stream stops at its next check, and it
/// must prove itself again for a new one); returns how many.
pub async fn delete_device_tokens(conn: &mut Conn, device_id: &str) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM device_tokens WHERE device_id = $1")
        .bind(device_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Fails every open sign-in request of a card (pending, or approved and not yet collected): an
/// approval by the phone the card is leaving must not become a session. Returns their ids.
pub async fn fail_open_requests_of_card(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "UPDATE auth_requests SET state = 'failed', decided_at = COALESCE(decided_at, $2)
         WHERE card_id = $1 AND state IN ('pending', 'approved') RETURNING id",
    )
    .bind(card_id)
    .bind(now)
    .fetch_all(conn)
    .await?;
    let mut ids: Vec<String> = ids.into_iter().map(|(id,)| id).collect();
    ids.sort();
    Ok(ids)
}

/// A replacement an RA asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacementRow {
    /// Id.
    pub id: String,
    /// The card.
    pub card_id: String,
    /// Replaced as lost.
    pub lost: bool,
    /// The RA's reason.
    pub reason: String,
    /// The RA.
    pub requested_by: String,
    /// When (Unix seconds).
    pub requested_at: i64,
    /// The phone the card is leaving.
    pub old_device_id: Option<String>,
    /// The phone it went to, once enrolled.
    pub new_device_id: Option<String>,
    /// When the new phone enrolled.
    pub completed_at: Option<i64>,
    /// When a later replacement or the card's cancellation ended it.
    pub ended_at: Option<i64>,
}

const REPLACEMENT_COLUMNS: &str = "id, card_id, lost, reason, requested_by, requested_at, old_device_id, new_device_id, completed_at, ended_at";

from_row!(ReplacementRow in "card_replacements" {
    id, card_id, lost: flag, reason, requested_by, requested_at, old_device_id, new_device_id,
    completed_at, ended_at,
});

/// Stores a replacement.
pub async fn insert_replacement(conn: &mut Conn, r: &ReplacementRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO card_replacements ({REPLACEMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )))
    .bind(&r.id)
    .bind(&r.card_id)
    .bind(i64::from(r.lost))
    .bind(&r.reason)
    .bind(&r.requested_by)
    .bind(r.requested_at)
    .bind(&r.old_device_id)
    .bind(&r.new_device_id)
    .bind(r.completed_at)
    .bind(r.ended_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The card's replacement waiting for its new phone, if any.
pub async fn open_replacement(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Option<ReplacementRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ReplacementRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {REPLACEMENT_COLUMNS} FROM card_replacements
         WHERE card_id = $1 AND completed_at IS NULL AND ended_at IS NULL
         ORDER BY requested_at DESC, id LIMIT 1"
        )))
        .bind(card_id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Ends the card's open replacements (a new one replaces them, or the card is cancelled);
/// returns how many.
pub async fn end_open_replacements(
    conn: &mut Conn,
    card_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE card_replacements SET ended_at = $2 WHERE card_id = $1 AND completed_at IS NULL AND ended_at IS NULL",
    )
    .bind(card_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Completes open replacement `id` with the phone that enrolled; `false` if it was no longer
/// open (exactly one enrolment completes it).
pub async fn complete_replacement(
    conn: &mut Conn,
    id: &str,
    new_device_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE card_replacements SET completed_at = $3, new_device_id = $2
         WHERE id = $1 AND completed_at IS NULL AND ended_at IS NULL",
    )
    .bind(id)
    .bind(new_device_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A certificate as a card's history shows it: validity and revocation with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateHistoryRow {
    /// Serial (hex).
    pub serial: String,
    /// Usage.
    pub usage: String,
    /// Validity start (Unix seconds).
    pub not_before: i64,
    /// Validity end (Unix seconds).
    pub not_after: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// RFC 5280 CRLReason code (`None` when unrevoked or revoked before reasons were kept).
    pub reason_code: Option<u8>,
}

from_row!(CertificateHistoryRow in "certificates" {
    serial, usage, not_before, not_after, revoked_at,
    reason_code = "revocation_reason_code": small_opt,
});

/// Every certificate of a card, oldest first, revoked ones included.
pub async fn certificate_history(
    conn: &mut Conn,
    card_id: &str,
) -> Result<Vec<CertificateHistoryRow>, StoreError> {
    Ok(sqlx::query_as::<_, CertificateHistoryRow>(
        "SELECT serial, usage, not_before, not_after, revoked_at, revocation_reason_code
         FROM certificates WHERE card_id = $1 ORDER BY not_before, usage, serial",
    )
    .bind(card_id)
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::test_store(dir.path()).await;
        (dir, store)
    }

    async fn seed(store: &Store) {
        let mut tx = store.write().await.expect("tx");
        let org = OrganisationRow {
            ods_code: "X26".into(),
            name: "National".into(),
            national: true,
        };
        insert_organisation(&mut tx, &org, 1).await.expect("org");
        let p = PersonRow {
            uid: "555000000001".into(),
            given_name: "A".into(),
            family_name: "B".into(),
            email: None,
            registered_by: "X26".into(),
        };
        assert!(insert_person(&mut tx, &p, 1).await.expect("person"));
        assert!(!insert_person(&mut tx, &p, 1).await.expect("person again"));
        let card = CardRow {
            id: "card1".into(),
            uid: p.uid.clone(),
            state: CardState::Pending,
            custody: "device-held".into(),
            issued_by: "X26".into(),
            device_id: None,
        };
        insert_card(&mut tx, &card, 1).await.expect("card");
        tx.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn challenge_is_consumed_once_and_expires() {
        let (_dir, store) = store().await;
        let mut conn = store.pool().acquire().await.expect("conn");
        insert_challenge(&mut conn, "c1", "ra-login", "u", "n", 100, 200)
            .await
            .expect("insert");
        assert_eq!(
            consume_challenge(&mut conn, "c1", "ra-login", "other", 150)
                .await
                .expect("c"),
            ChallengeUse::Unknown
        );
        assert_eq!(
            consume_challenge(&mut conn, "c1", "ra-login", "u", 150)
                .await
                .expect("c"),
            ChallengeUse::Consumed("n".into())
        );
        assert_eq!(
            consume_challenge(&mut conn, "c1", "ra-login", "u", 151)
                .await
                .expect("c"),
            ChallengeUse::Used
        );
        insert_challenge(&mut conn, "c2", "ra-login", "u", "n", 100, 200)
            .await
            .expect("insert");
        assert_eq!(
            consume_challenge(&mut conn, "c2", "ra-login", "u", 200)
                .await
                .expect("c"),
            ChallengeUse::Expired
        );
    }

    #[tokio::test]
    async fn codes_are_single_use_expiring_and_throttled() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        for id in ["a", "b", "c"] {
            let row = CodeRow {
                id: id.into(),
                kind: "activation".into(),
                card_id: "card1".into(),
                secret_hash: vec![1, 2, 3],
                created_by: "system".into(),
                expires_at: 1000,
                used_at: None,
                failed_attempts: 0,
            };
            insert_code(&mut conn, &row, 1).await.expect("insert");
        }
        assert!(consume_code(&mut conn, "a", 10, 5).await.expect("consume"));
        assert!(!consume_code(&mut conn, "a", 11, 5).await.expect("again"));
        assert!(
            !consume_code(&mut conn, "b", 1000, 5)
                .await
                .expect("expired")
        );
        for n in 1..=5 {
            assert_eq!(record_code_failure(&mut conn, "c").await.expect("fail"), n);
        }
        assert!(
            !consume_code(&mut conn, "c", 10, 5)
                .await
                .expect("throttled")
        );
    }

    #[tokio::test]
    async fn devices_never_move_to_another_person() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        let mut d = DeviceRow {
            device_id: "dev".into(),
            uid: "555000000001".into(),
            platform: "vsc-cli".into(),
            app_version: "0.1.0".into(),
            model: String::new(),
            simulated: true,
        };
        assert!(upsert_device(&mut conn, &d, 1).await.expect("first"));
        assert!(upsert_device(&mut conn, &d, 2).await.expect("same person"));
        d.uid = "555000000002".into();
        assert!(!upsert_device(&mut conn, &d, 3).await.expect("other person"));
        assert_eq!(
            device(&mut conn, "dev").await.expect("get").map(|d| d.uid),
            Some("555000000001".into())
        );
    }

    #[tokio::test]
    async fn position_requests_are_decided_once_and_only_while_pending() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        let row = PositionRequestRow {
            id: "req1".into(),
            uid: "555000000001".into(),
            ods_code: "X26".into(),
            home_ods: "X26".into(),
            role_code: "S8000:G8000:R8000".into(),
            role_name: "Role".into(),
            activities: vec!["B0570".into()],
            requested_by: "555000000009".into(),
            created_at: 10,
            expires_at: 100,
            state: PositionRequestState::Pending,
            decided_by: None,
            decided_at: None,
            note: None,
        };
        insert_position_request(&mut conn, &row)
            .await
            .expect("insert");
        let (approved, declined) = (
            PositionRequestState::Approved,
            PositionRequestState::Declined,
        );
        assert_eq!(
            position_request_open(&mut conn, &row.uid, "X26", &row.role_code, 50)
                .await
                .expect("open"),
            Some("req1".into())
        );
        assert_eq!(
            pending_position_requests(&mut conn, 100)
                .await
                .expect("pending")
                .len(),
            0,
            "expired at 100"
        );
        assert!(
            !decide_position_request(&mut conn, "req1", approved, "a", None, 100)
                .await
                .expect("late")
        );
        assert!(
            decide_position_request(&mut conn, "req1", approved, "a", Some("ok"), 50)
                .await
                .expect("decide")
        );
        assert!(
            !decide_position_request(&mut conn, "req1", declined, "b", None, 51)
                .await
                .expect("again")
        );
        let got = position_request(&mut conn, "req1")
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (got.state, got.decided_by.as_deref(), got.note.as_deref()),
            (approved, Some("a"), Some("ok"))
        );
    }

    #[tokio::test]
    async fn rows_are_read_by_column_name_not_position() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        let in_order = card(&mut conn, "card1").await.expect("card").expect("row");
        // The same columns backwards (`id` and `uid` are both text: a positional read would
        // swap them silently), then with an unrelated column in the middle.
        for sql in [
            "SELECT device_id, issued_by, custody, state, uid, id FROM cards WHERE id = $1",
            "SELECT uid, created_at, id, state, custody, device_id, issued_by FROM cards WHERE id = $1",
        ] {
            let got = sqlx::query_as::<_, CardRow>(sql)
                .bind("card1")
                .fetch_one(&mut *conn)
                .await
                .expect(sql);
            assert_eq!(got, in_order, "{sql}");
        }
        assert_eq!(
            (in_order.id.as_str(), in_order.uid.as_str()),
            ("card1", "555000000001")
        );
        // A column left out is an error that names it, not a shifted field.
        let missing = sqlx::query_as::<_, CardRow>(
            "SELECT id, uid, state, custody, issued_by FROM cards WHERE id = $1",
        )
        .bind("card1")
        .fetch_one(&mut *conn)
        .await
        .expect_err("device_id is missing");
        assert!(
            matches!(&missing, sqlx::Error::ColumnNotFound(c) if c == "device_id"),
            "{missing}"
        );
        // Qualified columns (`p.id`) come back under their bare names on both backends, and a
        // computed one under its alias.
        let position = PositionRow {
            id: "pos1".into(),
            uid: "555000000001".into(),
            ods_code: "X26".into(),
            role_code: "R8000".into(),
            role_name: "Clinical Practitioner".into(),
            activities: vec!["B0570".into(), "B0572".into()],
        };
        assert_eq!(
            insert_position(&mut conn, &position, 1)
                .await
                .expect("position")
                .as_deref(),
            Some("pos1")
        );
        assert_eq!(
            positions_with_organisation_names(&mut conn, "555000000001")
                .await
                .expect("positions"),
            vec![(position, "National".to_owned())]
        );
    }

    #[tokio::test]
    async fn an_ended_position_leaves_scope_and_comes_back_under_its_old_id() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        let uid = "555000000001";
        let trust = OrganisationRow {
            ods_code: "RX1".into(),
            name: "A trust".into(),
            national: false,
        };
        insert_organisation(&mut conn, &trust, 1)
            .await
            .expect("org");
        let position = PositionRow {
            id: "pos1".into(),
            uid: uid.into(),
            ods_code: "RX1".into(),
            role_code: "R8000".into(),
            role_name: "Clinical Practitioner".into(),
            activities: vec!["B0570".into()],
        };
        assert!(
            insert_position(&mut conn, &position, 1)
                .await
                .expect("insert")
                .is_some()
        );
        // Held now: a second insert is refused.
        let again = PositionRow {
            id: "pos2".into(),
            ..position.clone()
        };
        assert_eq!(
            insert_position(&mut conn, &again, 2).await.expect("again"),
            None
        );
        // Someone else's id, or a wrong holder, ends nothing.
        assert_eq!(
            end_position(&mut conn, "555000000002", "pos1", "ra", 3)
                .await
                .expect("end"),
            None
        );
        assert_eq!(
            end_position(&mut conn, uid, "pos1", "ra", 3)
                .await
                .expect("end"),
            Some(position.clone())
        );
        assert_eq!(
            end_position(&mut conn, uid, "pos1", "ra", 4)
                .await
                .expect("twice"),
            None
        );
        assert!(
            positions(&mut conn, uid)
                .await
                .expect("positions")
                .is_empty()
        );
        assert_eq!(
            person_organisations(&mut conn, uid).await.expect("orgs"),
            vec!["X26".to_owned()]
        );
        // Assigned again: the old row (and id) comes back with the new details.
        let renamed = PositionRow {
            id: "pos3".into(),
            role_name: "Doctor".into(),
            ..position.clone()
        };
        assert_eq!(
            insert_position(&mut conn, &renamed, 5)
                .await
                .expect("revive")
                .as_deref(),
            Some("pos1")
        );
        assert_eq!(
            positions(&mut conn, uid).await.expect("positions"),
            vec![PositionRow {
                id: "pos1".into(),
                ..renamed
            }]
        );
    }

    #[tokio::test]
    async fn removing_an_ra_role_returns_it_once() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        let role = RaRoleRow {
            uid: "555000000001".into(),
            ods_code: "X26".into(),
            role: "sponsor".into(),
            assignable_roles: vec!["R8000".into()],
            assignable_activities: vec![],
        };
        upsert_ra_role(&mut conn, &role, 1).await.expect("grant");
        assert_eq!(
            remove_ra_role(&mut conn, "555000000001", "X26", "ra-agent")
                .await
                .expect("other"),
            None
        );
        assert_eq!(
            remove_ra_role(&mut conn, "555000000001", "X26", "sponsor")
                .await
                .expect("remove"),
            Some(role)
        );
        assert_eq!(
            remove_ra_role(&mut conn, "555000000001", "X26", "sponsor")
                .await
                .expect("twice"),
            None
        );
        assert!(
            ra_roles(&mut conn, "555000000001")
                .await
                .expect("roles")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_corrupt_stored_value_is_a_corrupt_error_naming_it() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        sqlx::query("UPDATE cards SET state = 'melted' WHERE id = 'card1'")
            .execute(&mut *conn)
            .await
            .expect("tamper");
        for got in [
            card(&mut conn, "card1").await.map(|_| ()),
            cards_of(&mut conn, "555000000001").await.map(|_| ()),
        ] {
            match got {
                Err(StoreError::Corrupt(message)) => assert!(
                    message.contains("cards.state") && message.contains("melted"),
                    "{message}"
                ),
                other => panic!("expected a corrupt-value error, got {other:?}"),
            }
        }
        let position = PositionRow {
            id: "pos1".into(),
            uid: "555000000001".into(),
            ods_code: "X26".into(),
            role_code: "R8000".into(),
            role_name: "Clinical Practitioner".into(),
            activities: vec!["B0570".into()],
        };
        assert_eq!(
            insert_position(&mut conn, &position, 1)
                .await
                .expect("position")
                .as_deref(),
            Some("pos1")
        );
        sqlx::query("UPDATE positions SET activities = 'not json' WHERE id = 'pos1'")
            .execute(&mut *conn)
            .await
            .expect("tamper");
        match positions(&mut conn, "555000000001").await {
            Err(StoreError::Corrupt(message)) => assert!(
                message.contains("positions.activities") && message.contains("not json"),
                "{message}"
            ),
            other => panic!("expected a corrupt-value error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn card_transitions_are_conditional() {
        let (_dir, store) = store().await;
        seed(&store).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        assert!(
            !transition_card(
                &mut conn,
                "card1",
                &[CardState::Active],
                CardState::Revoked,
                5
            )
            .await
            .expect("t")
        );
        assert!(
            transition_card(
                &mut conn,
                "card1",
                &[CardState::Pending],
                CardState::Active,
                5
            )
            .await
            .expect("t")
        );
        assert_eq!(
            card(&mut conn, "card1")
                .await
                .expect("get")
                .map(|c| c.state),
            Some(CardState::Active)
        );
    }
}

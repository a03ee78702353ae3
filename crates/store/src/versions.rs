//! Typed queries for the approved-versions policy (`version_rules`) and the client versions in
//! use: phones' from `devices.app_version` (with the cards bound to each device), identity
//! agents' from `agent_versions` (one row per workstation, the last version it reported).
//!
//! A rule is unique per client kind, platform (`''` for every platform) and requirement, so
//! allowing what was denied (or the reverse) replaces the rule's verdict instead of adding a
//! contradicting one. Requirements are stored in semver's canonical form; [`policy`] reads
//! them back into `vsc_core`'s policy (for the server's checks and `vsc assurance report`).

use vsc_core::{ClientKind, Verdict, VersionPolicy, VersionRule};

use crate::Conn;
use crate::StoreError;
use crate::row::{flag, from_row, parsed};

/// One rule of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRuleRow {
    /// Row id (0 before it is inserted).
    pub id: i64,
    /// The client kind it is about.
    pub client_kind: ClientKind,
    /// Allow or deny.
    pub verdict: Verdict,
    /// The platform or agent product it is limited to; empty for every one.
    pub platform: String,
    /// The semver requirement, canonical.
    pub requirement: String,
    /// Why, as the RA wrote it.
    pub reason: Option<String>,
    /// UID of the RA who set it, or `system`.
    pub set_by: String,
    /// When (Unix seconds).
    pub set_at: i64,
}

from_row!(VersionRuleRow in "version_rules" {
    id, client_kind: parsed, verdict: parsed, platform, requirement, reason, set_by, set_at,
});

const RULE_COLUMNS: &str =
    "id, client_kind, verdict, platform, requirement, reason, set_by, set_at";

/// A stored rule as the policy reads it.
fn to_rule(row: &VersionRuleRow) -> Result<VersionRule, StoreError> {
    let versions = vsc_core::policy::VersionReq::parse(&row.requirement).map_err(|e| {
        StoreError::Corrupt(format!(
            "version_rules.requirement holds {:?}: {e}",
            row.requirement
        ))
    })?;
    Ok(VersionRule {
        kind: row.client_kind,
        verdict: row.verdict,
        platform: (!row.platform.is_empty()).then(|| row.platform.clone()),
        versions,
    })
}

/// The policy the stored rules make.
pub async fn policy(conn: &mut Conn) -> Result<VersionPolicy, StoreError> {
    let rules = rules(conn)
        .await?
        .iter()
        .map(to_rule)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VersionPolicy::new(rules))
}

/// Every rule, by kind (authenticator first), then oldest first.
pub async fn rules(conn: &mut Conn) -> Result<Vec<VersionRuleRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, VersionRuleRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM version_rules ORDER BY client_kind DESC, set_at, id"
        )))
        .fetch_all(conn)
        .await?,
    )
}

/// One rule by id.
pub async fn rule(conn: &mut Conn, id: i64) -> Result<Option<VersionRuleRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, VersionRuleRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM version_rules WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// How many rules of `kind` exist.
pub async fn count_rules(conn: &mut Conn, kind: ClientKind) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM version_rules WHERE client_kind = $1")
        .bind(kind.as_str())
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// How many `allow` rules of `kind` exist.
pub async fn count_allow_rules(conn: &mut Conn, kind: ClientKind) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM version_rules WHERE client_kind = $1 AND verdict = $2",
    )
    .bind(kind.as_str())
    .bind(Verdict::Allow.as_str())
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Sets a rule: inserts it, or replaces the verdict, reason, author and time of the rule with
/// the same kind, platform and requirement. Answers the rule as stored and the one it replaced.
pub async fn set_rule(
    conn: &mut Conn,
    r: &VersionRuleRow,
) -> Result<(VersionRuleRow, Option<VersionRuleRow>), StoreError> {
    let previous = sqlx::query_as::<_, VersionRuleRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM version_rules
         WHERE client_kind = $1 AND platform = $2 AND requirement = $3"
    )))
    .bind(r.client_kind.as_str())
    .bind(&r.platform)
    .bind(&r.requirement)
    .fetch_optional(&mut *conn)
    .await?;
    let stored = match &previous {
        Some(p) => {
            sqlx::query(
                "UPDATE version_rules SET verdict = $2, reason = $3, set_by = $4, set_at = $5 WHERE id = $1",
            )
            .bind(p.id)
            .bind(r.verdict.as_str())
            .bind(&r.reason)
            .bind(&r.set_by)
            .bind(r.set_at)
            .execute(&mut *conn)
            .await?;
            VersionRuleRow {
                id: p.id,
                ..r.clone()
            }
        }
        None => {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO version_rules (client_kind, verdict, platform, requirement, reason, set_by, set_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(r.client_kind.as_str())
            .bind(r.verdict.as_str())
            .bind(&r.platform)
            .bind(&r.requirement)
            .bind(&r.reason)
            .bind(&r.set_by)
            .bind(r.set_at)
            .fetch_one(&mut *conn)
            .await?;
            VersionRuleRow { id, ..r.clone() }
        }
    };
    Ok((stored, previous))
}

/// Removes a rule; false when no rule has that id.
pub async fn delete_rule(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM version_rules WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A phone's version as the device record holds it, with one live card bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVersionRow {
    /// The device.
    pub device_id: String,
    /// Its platform.
    pub platform: String,
    /// The version it reported last.
    pub app_version: String,
    /// When it was last seen (enrolment or device token).
    pub last_seen: i64,
    /// A live card (active, locked, suspended) bound to it.
    pub card_id: String,
}

from_row!(DeviceVersionRow in "devices" {
    device_id, platform, app_version, last_seen, card_id,
});

/// Every live card (active, locked or suspended) with the platform and version of its phone.
pub async fn device_versions(conn: &mut Conn) -> Result<Vec<DeviceVersionRow>, StoreError> {
    Ok(sqlx::query_as::<_, DeviceVersionRow>(
        "SELECT d.device_id AS device_id, d.platform AS platform, d.app_version AS app_version,
                d.last_seen AS last_seen, c.id AS card_id
         FROM cards c JOIN devices d ON d.device_id = c.device_id
         WHERE c.state IN ('active', 'locked', 'suspended')
         ORDER BY d.platform, d.app_version, c.id",
    )
    .fetch_all(conn)
    .await?)
}

/// A device's platform and last reported version.
pub async fn device_version(
    conn: &mut Conn,
    device_id: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT platform, app_version FROM devices WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// How stale `devices.last_seen` may get before a device token refreshes it.
pub const LAST_SEEN_GRANULARITY_SECONDS: i64 = 3600;

/// Records the version a phone reports (with its device token) and that it was seen now. A
/// phone asks for tokens often, so the row is written only when the version changed or
/// `last_seen` is more than [`LAST_SEEN_GRANULARITY_SECONDS`] old: "last seen" is for people
/// (within the hour), and the token path stays free of a second write. Returns whether the row
/// was written.
pub async fn set_device_version(
    conn: &mut Conn,
    device_id: &str,
    app_version: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE devices SET app_version = $2, last_seen = $3
         WHERE device_id = $1 AND (app_version <> $2 OR last_seen < $3 - $4)",
    )
    .bind(device_id)
    .bind(app_version)
    .bind(now)
    .bind(LAST_SEEN_GRANULARITY_SECONDS)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a workstation's identity agent last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVersionRow {
    /// The workstation (registration id, or what an unregistered one claims).
    pub workstation_id: String,
    /// Its name (the registry's, or the claim).
    pub workstation_name: String,
    /// Registered with the server.
    pub registered: bool,
    /// The organisation it is registered with (empty if unregistered).
    pub ods_code: String,
    /// The agent product (`vsc-agent`; empty for a bare version).
    pub product: String,
    /// The version.
    pub version: String,
    /// The card of the last sign-in request it opened.
    pub card_id: String,
    /// First report (Unix seconds).
    pub first_seen: i64,
    /// Last report.
    pub last_seen: i64,
}

from_row!(AgentVersionRow in "agent_versions" {
    workstation_id, workstation_name, registered: flag, ods_code, product, version, card_id,
    first_seen, last_seen,
});

/// Records what a workstation's agent reported with a sign-in request it opened.
pub async fn record_agent(conn: &mut Conn, a: &AgentVersionRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agent_versions (workstation_id, workstation_name, registered, ods_code, product, version, card_id, first_seen, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (workstation_id) DO UPDATE SET workstation_name = excluded.workstation_name,
             registered = excluded.registered, ods_code = excluded.ods_code, product = excluded.product,
             version = excluded.version, card_id = excluded.card_id, last_seen = excluded.last_seen",
    )
    .bind(&a.workstation_id)
    .bind(&a.workstation_name)
    .bind(i64::from(a.registered))
    .bind(&a.ods_code)
    .bind(&a.product)
    .bind(&a.version)
    .bind(&a.card_id)
    .bind(a.first_seen)
    .bind(a.last_seen)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every workstation's last report, by product and version.
pub async fn agent_versions(conn: &mut Conn) -> Result<Vec<AgentVersionRow>, StoreError> {
    Ok(sqlx::query_as::<_, AgentVersionRow>(
        "SELECT workstation_id, workstation_name, registered, ods_code, product, version, card_id, first_seen, last_seen
         FROM agent_versions ORDER BY product, version, workstation_id",
    )
    .fetch_all(conn)
    .await?)
}

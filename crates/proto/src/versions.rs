//! Wire types of the approved-versions policy (`/api/v1/ra/versions…`, `vsc ra versions`): the
//! rules (allow or deny a semver requirement for the authenticator app or the identity agent,
//! optionally for one platform or agent product) and the versions in use.
//!
//! Client kinds travel as their names ([`kind`]); the server refuses other names with
//! `unknown_client_kind`. Requirements travel as a person writes them and come back in semver's
//! canonical form (`1.4.2` is stored as `=1.4.2`, `1.4` as `1.4.*`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The client kinds' names.
pub mod kind {
    /// The phone's authenticator app.
    pub const AUTHENTICATOR: &str = "authenticator";
    /// The workstation's identity agent.
    pub const AGENT: &str = "agent";
    /// Both.
    pub const ALL: [&str; 2] = [AUTHENTICATOR, AGENT];
}

/// `POST /api/v1/ra/versions/allow` and `…/deny`: one rule. A rule for the same client kind,
/// platform and requirement as an existing one replaces that one's verdict and reason.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetVersionRule {
    /// `authenticator` or `agent`.
    pub client: String,
    /// A version (`1.4.2`: exactly that one), a series (`1.4`, `1.4.x`) or a semver requirement
    /// (`>=1.4.0, <1.6.0`); at most 64 characters.
    pub versions: String,
    /// Only for this platform (authenticator: `ios`, `android`, `vsc-cli`) or agent product
    /// (`vsc-agent`); absent for every platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Why (an assurance reference, a withdrawn release's defect); at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One rule of the policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionRuleInfo {
    /// Its id (for `remove`).
    pub id: i64,
    /// `authenticator` or `agent`.
    pub client: String,
    /// `allow` or `deny`.
    pub verdict: String,
    /// The requirement, in semver's canonical form.
    pub versions: String,
    /// The platform or product it is limited to; absent for every platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Why, as the RA wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// UID of the RA who set it, or `system` for the rule seeded at the first start.
    pub set_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
}

/// One version of one client kind in use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionInUse {
    /// `authenticator` or `agent`.
    pub client: String,
    /// Platform (phones) or product (agents; empty when an agent reports a bare version).
    pub platform: String,
    /// The version reported.
    pub version: String,
    /// What the current policy says: `approved`, `not-approved` or `withdrawn`.
    pub decision: String,
    /// Phones: devices holding a live card; agents: workstations that opened a sign-in request.
    pub clients: u64,
    /// The live cards (active, locked, suspended) on those phones, or the cards last signed in
    /// at those workstations: how many.
    pub cards_total: u64,
    /// Their ids (at most 200; `cards_total` counts them all).
    pub cards: Vec<String>,
    /// When a client of this version was last seen (device token or sign-in request).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_seen: Option<OffsetDateTime>,
}

/// `GET /api/v1/ra/versions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionsReport {
    /// Every rule, authenticator first, oldest first.
    pub rules: Vec<VersionRuleInfo>,
    /// What is approved for phones, as the refusal message says it.
    pub approved_authenticator: String,
    /// What is approved for agents.
    pub approved_agent: String,
    /// The versions in use, authenticator first, highest version first.
    pub in_use: Vec<VersionInUse>,
    /// How long a node may go on deciding with the policy it read before a change (seconds).
    pub cache_seconds: u64,
}

/// Answer to a change (allow, deny, remove).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionRuleChanged {
    /// The rule set (for `remove`: the rule removed).
    pub rule: VersionRuleInfo,
    /// The rule it replaced (same kind, platform and requirement), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<VersionRuleInfo>,
    /// The versions in use that the policy now refuses.
    pub now_refused: Vec<VersionInUse>,
    /// How long other nodes may go on with the old policy (seconds).
    pub cache_seconds: u64,
}

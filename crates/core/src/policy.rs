//! Which client software the server accepts: NHS Digital approved only named versions of each
//! component, so an instance lists the versions it approves and refuses the rest.
//!
//! Two layers live here. [`AppVersionPolicy`] is what `vsc serve --approved-app-version` parses
//! (a list of approvals): it seeds the stored policy on an instance's first start. The stored
//! policy itself is a [`VersionPolicy`]: per client kind ([`ClientKind`]: the phone's
//! authenticator app, the workstation's identity agent) a set of [`VersionRule`]s, each `allow`
//! or `deny` of a semver requirement, optionally for one platform (or agent product). A version is
//! approved when at least one `allow` rule matches it and no `deny` rule does: a deny always wins,
//! so "allow 1.4.x, deny 1.4.2" withdraws one release from a series.

// Re-exported so that the server reads stored requirements with the same semver as the rules.
pub use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::names::stored_names;

/// What a phone says about itself when it enrols or connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFacts {
    /// Platform name, for example `ios`, `android`, `vsc-cli`.
    pub platform: String,
    /// The app's semantic version.
    pub app_version: String,
}

/// Why a client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The version string is not semantic versioning.
    #[error("app version '{0}' is not a semantic version (for example 1.4.2)")]
    BadVersion(String),
    /// Not on the approved list.
    #[error(
        "{platform} app version {version} is not approved on this server (approved: {approved}); update the app"
    )]
    NotApproved {
        /// Platform reported.
        platform: String,
        /// Version reported.
        version: String,
        /// The approved list, for the message.
        approved: String,
    },
    /// Refused by the stored policy ([`VersionPolicy::check`]); the message says what is
    /// approved and what to do.
    #[error("{message}")]
    Refused {
        /// Which client.
        kind: ClientKind,
        /// Platform (authenticator) or product (agent) reported.
        platform: String,
        /// Version reported.
        version: String,
        /// A `deny` rule matched (the version was withdrawn), rather than no `allow` rule.
        withdrawn: bool,
        /// What is approved, as [`VersionPolicy::describe`] says it.
        approved: String,
        /// The sentence for the person in front of the client.
        message: String,
    },
}

/// One approval: a version requirement, optionally limited to one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// `None` applies to every platform.
    pub platform: Option<String>,
    /// Versions approved.
    pub versions: VersionReq,
}

/// The approved-versions list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersionPolicy {
    approvals: Vec<Approval>,
}

impl AppVersionPolicy {
    /// The approvals, in the order given (what seeds the stored policy).
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// Parses entries like `>=0.1.0, <1.0.0` or `ios=>=3.4.0`.
    pub fn parse(entries: &[String]) -> Result<AppVersionPolicy, String> {
        let approvals = entries
            .iter()
            .map(|e| {
                let (platform, req) = match e.split_once('=') {
                    Some((p, r))
                        if !p.is_empty()
                            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
                    {
                        (Some(p.to_owned()), r)
                    }
                    _ => (None, e.as_str()),
                };
                VersionReq::parse(req)
                    .map(|versions| Approval { platform, versions })
                    .map_err(|err| format!("'{e}' is not a version requirement: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if approvals.is_empty() {
            return Err("approve at least one app version".into());
        }
        Ok(AppVersionPolicy { approvals })
    }

    /// Checks a client against the list.
    pub fn check(&self, facts: &ClientFacts) -> Result<(), PolicyError> {
        let version = Version::parse(&facts.app_version)
            .map_err(|_| PolicyError::BadVersion(facts.app_version.clone()))?;
        let approved = self.approvals.iter().any(|a| {
            a.platform.as_deref().is_none_or(|p| p == facts.platform)
                && a.versions.matches(&version)
        });
        if approved {
            Ok(())
        } else {
            Err(PolicyError::NotApproved {
                platform: facts.platform.clone(),
                version: facts.app_version.clone(),
                approved: self.describe(),
            })
        }
    }

    /// The list as text.
    pub fn describe(&self) -> String {
        self.approvals
            .iter()
            .map(|a| match &a.platform {
                Some(p) => format!("{p} {}", a.versions),
                None => a.versions.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Which kind of client software a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// The phone's authenticator app (reports its platform and version in its device facts at
    /// enrolment and with each device token).
    Authenticator,
    /// The workstation's identity agent (reports `PRODUCT/VERSION`, e.g. `vsc-agent/0.1.0`, in
    /// every sign-in request it opens).
    Agent,
}

impl ClientKind {
    /// Both kinds.
    pub const ALL: [ClientKind; 2] = [ClientKind::Authenticator, ClientKind::Agent];

    /// Words for messages.
    pub fn title(self) -> &'static str {
        match self {
            ClientKind::Authenticator => "authenticator app",
            ClientKind::Agent => "identity agent",
        }
    }
}

stored_names!(ClientKind, "client kind" {
    Authenticator => "authenticator",
    Agent => "agent",
});

/// What a rule says about the versions it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The versions may be used (unless a deny rule matches too).
    Allow,
    /// The versions may not be used, whatever allows them.
    Deny,
}

stored_names!(Verdict, "version verdict" {
    Allow => "allow",
    Deny => "deny",
});

/// Longest requirement text accepted, in bytes.
pub const MAX_REQUIREMENT_LEN: usize = 64;
/// Longest platform or product name accepted, in bytes.
pub const MAX_PLATFORM_LEN: usize = 40;

/// Why a rule's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not a semver requirement.
    #[error(
        "'{text}' is not a version requirement ({reason}); write a version (1.4.2: exactly that one), a series (1.4 or 1.4.x) or a semver requirement (>=1.4.0, <1.6.0)"
    )]
    BadRequirement {
        /// What was given (cut to its first 64 characters).
        text: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A platform or product name that is not a short lower-case word.
    #[error(
        "'{0}' is not a platform or product name: 1 to 40 of a-z, 0-9, '-', '_', '.' (e.g. ios, android, vsc-cli, vsc-agent)"
    )]
    BadPlatform(String),
}

fn shorten(text: &str) -> String {
    text.chars().take(MAX_REQUIREMENT_LEN).collect()
}

/// Reads a rule's version requirement as a person means it: a bare version (`1.4.2`) is exactly
/// that version (semver's default would be `^1.4.2`, every later 1.x too — the opposite of what
/// "deny 1.4.2" means); a bare `1.4` or `1` is that series (`1.4.*`, `1.*`); anything else is a
/// semver requirement (`1.4.x`, `>=1.4.0, <1.6.0`, `^2`, `*`).
pub fn parse_requirement(text: &str) -> Result<VersionReq, RuleError> {
    let t = text.trim();
    let bad = |reason: &str| RuleError::BadRequirement {
        text: shorten(t),
        reason: reason.to_owned(),
    };
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    if t.len() > MAX_REQUIREMENT_LEN {
        return Err(bad("longer than 64 characters"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(bad("it holds control characters"));
    }
    if let Ok(exact) = Version::parse(t) {
        return VersionReq::parse(&format!("={exact}")).map_err(|e| bad(&e.to_string()));
    }
    let parts: Vec<&str> = t.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() <= 2 && parts.iter().all(numeric) {
        return VersionReq::parse(&format!("{t}.*")).map_err(|e| bad(&e.to_string()));
    }
    VersionReq::parse(t).map_err(|e| bad(&e.to_string()))
}

/// Checks a platform (authenticator) or product (agent) name of a rule: 1 to 40 of `a-z`,
/// `0-9`, `-`, `_`, `.`; answers it trimmed and lower-cased.
pub fn parse_platform(text: &str) -> Result<String, RuleError> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty()
        || t.len() > MAX_PLATFORM_LEN
        || !t.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
    {
        return Err(RuleError::BadPlatform(
            text.chars().take(MAX_PLATFORM_LEN).collect(),
        ));
    }
    Ok(t)
}

/// What an identity agent reports (`AuthContext::agent_version`): `PRODUCT/VERSION`
/// (`vsc-agent/0.1.0`) or a bare `VERSION`. Answers the product (lower case; empty when none was
/// given) and the version; `None` when the text is neither.
pub fn parse_agent_version(reported: &str) -> Option<(String, Version)> {
    let t = reported.trim();
    let (product, version) = match t.rsplit_once('/') {
        Some((p, v)) => (parse_platform(p).ok()?, v),
        None => (String::new(), t),
    };
    Version::parse(version).ok().map(|v| (product, v))
}

/// One stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRule {
    /// The client kind it is about.
    pub kind: ClientKind,
    /// Allow or deny.
    pub verdict: Verdict,
    /// `None` applies to every platform (product); else only to that one.
    pub platform: Option<String>,
    /// The versions it matches.
    pub versions: VersionReq,
}

impl VersionRule {
    fn applies(&self, kind: ClientKind, platform: &str, version: &Version) -> bool {
        self.kind == kind
            && self.platform.as_deref().is_none_or(|p| p == platform)
            && self.versions.matches(version)
    }

    /// The rule as text: `ios >=3.4.0` or `=1.4.2`.
    pub fn describe(&self) -> String {
        match &self.platform {
            Some(p) => format!("{p} {}", self.versions),
            None => self.versions.to_string(),
        }
    }
}

/// The approved-versions policy: every stored rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPolicy {
    rules: Vec<VersionRule>,
}

impl VersionPolicy {
    /// A policy of these rules.
    pub fn new(rules: Vec<VersionRule>) -> VersionPolicy {
        VersionPolicy { rules }
    }

    /// The rules.
    pub fn rules(&self) -> &[VersionRule] {
        &self.rules
    }

    /// Whether `version` of a `kind` client on `platform` may be used: `Ok`, or why not. With
    /// no `allow` rule for the kind at all, nothing is approved (only assured versions are used;
    /// the server seeds an allow rule on an instance's first start).
    pub fn decide(&self, kind: ClientKind, platform: &str, version: &Version) -> Decision {
        if self
            .rules
            .iter()
            .any(|r| r.verdict == Verdict::Deny && r.applies(kind, platform, version))
        {
            return Decision::Withdrawn;
        }
        if self
            .rules
            .iter()
            .any(|r| r.verdict == Verdict::Allow && r.applies(kind, platform, version))
        {
            Decision::Approved
        } else {
            Decision::NotApproved
        }
    }

    /// Checks a client's reported version. `version` must be semver ([`PolicyError::BadVersion`]
    /// otherwise); a refusal ([`PolicyError::Refused`]) says what is approved and what to do.
    pub fn check(
        &self,
        kind: ClientKind,
        platform: &str,
        version: &str,
    ) -> Result<(), PolicyError> {
        let parsed =
            Version::parse(version).map_err(|_| PolicyError::BadVersion(version.to_owned()))?;
        let decision = self.decide(kind, platform, &parsed);
        if decision == Decision::Approved {
            return Ok(());
        }
        let withdrawn = decision == Decision::Withdrawn;
        let approved = self.describe(kind, Some(platform));
        let who = if platform.is_empty() {
            format!("{} {version}", kind.title())
        } else {
            format!("{} {platform} {version}", kind.title())
        };
        let state = if withdrawn {
            "has been withdrawn"
        } else {
            "is not approved"
        };
        let action = match kind {
            ClientKind::Authenticator => {
                "update the vsc authenticator app on your phone to an approved version, then try again"
            }
            ClientKind::Agent => {
                "ask your IT service desk to update the identity agent on this workstation to an approved version"
            }
        };
        Err(PolicyError::Refused {
            kind,
            platform: platform.to_owned(),
            version: version.to_owned(),
            withdrawn,
            message: format!("this {who} {state} on this server (approved: {approved}); {action}"),
            approved,
        })
    }

    /// What is approved for `kind` (on `platform`, when given: rules for other platforms are
    /// left out), as a person reads it: `>=0.1.0, <0.2.0; ios ^3.4 (except =3.4.2)`, or `none`.
    pub fn describe(&self, kind: ClientKind, platform: Option<&str>) -> String {
        let relevant = |r: &&VersionRule| {
            r.kind == kind
                && match (platform, &r.platform) {
                    (Some(p), Some(rp)) => p == rp,
                    _ => true,
                }
        };
        let list = |verdict: Verdict| {
            self.rules
                .iter()
                .filter(relevant)
                .filter(|r| r.verdict == verdict)
                .map(VersionRule::describe)
                .collect::<Vec<_>>()
                .join("; ")
        };
        let allowed = list(Verdict::Allow);
        let denied = list(Verdict::Deny);
        match (allowed.is_empty(), denied.is_empty()) {
            (true, _) => "none".to_owned(),
            (false, true) => allowed,
            (false, false) => format!("{allowed} (except {denied})"),
        }
    }
}

/// What [`VersionPolicy::decide`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// An allow rule matches and no deny rule does.
    Approved,
    /// No allow rule matches.
    NotApproved,
    /// A deny rule matches.
    Withdrawn,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(platform: &str, v: &str) -> ClientFacts {
        ClientFacts {
            platform: platform.into(),
            app_version: v.into(),
        }
    }

    #[test]
    fn approves_only_listed_versions() {
        let p = AppVersionPolicy::parse(&[">=0.1.0, <1.0.0".into(), "ios=>=3.4.0".into()])
            .expect("parses");
        assert!(p.check(&facts("vsc-cli", "0.1.0")).is_ok());
        assert!(p.check(&facts("ios", "3.4.1")).is_ok());
        assert!(matches!(
            p.check(&facts("android", "3.4.1")),
            Err(PolicyError::NotApproved { .. })
        ));
        assert!(matches!(
            p.check(&facts("vsc-cli", "0.0.9")),
            Err(PolicyError::NotApproved { .. })
        ));
        assert_eq!(
            p.check(&facts("vsc-cli", "one")),
            Err(PolicyError::BadVersion("one".into()))
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(AppVersionPolicy::parse(&["banana".into()]).is_err());
        assert!(AppVersionPolicy::parse(&[]).is_err());
    }

    fn rule(kind: ClientKind, verdict: Verdict, platform: Option<&str>, req: &str) -> VersionRule {
        VersionRule {
            kind,
            verdict,
            platform: platform.map(str::to_owned),
            versions: parse_requirement(req).expect("requirement"),
        }
    }

    #[test]
    fn requirements_read_as_people_mean_them() {
        let m = |req: &str, v: &str| {
            parse_requirement(req)
                .expect("parses")
                .matches(&Version::parse(v).expect("version"))
        };
        // A bare version is exactly that version, not semver's ^.
        assert!(m("1.4.2", "1.4.2"));
        assert!(!m("1.4.2", "1.4.3"));
        assert!(!m("1.4.2", "1.5.0"));
        // A bare series is the series.
        assert!(m("1.4", "1.4.9"));
        assert!(!m("1.4", "1.5.0"));
        assert!(m("1", "1.9.0"));
        assert!(!m("1", "2.0.0"));
        assert!(m("1.4.x", "1.4.7"));
        assert!(m(">=1.4.0, <1.6.0", "1.5.1"));
        assert!(!m(">=1.4.0, <1.6.0", "1.6.0"));
        for bad in [
            "",
            "banana",
            "1.4.2.9",
            ">=",
            "1.\u{7}4",
            &"9".repeat(70),
            "1..2",
        ] {
            assert!(parse_requirement(bad).is_err(), "{bad:?}");
        }
        assert!(parse_platform("iOS").is_ok_and(|p| p == "ios"));
        for bad in ["", "a b", "ios/1", &"x".repeat(41), "\u{202e}ios"] {
            assert!(parse_platform(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn agents_report_product_and_version() {
        let (p, v) = parse_agent_version("vsc-agent/0.1.0").expect("parses");
        assert_eq!((p.as_str(), v.to_string().as_str()), ("vsc-agent", "0.1.0"));
        let (p, _) = parse_agent_version("0.1.0").expect("a bare version");
        assert!(p.is_empty());
        for bad in ["", "0", "web", "vsc-agent/", "vsc agent/0.1.0", "/0.1.0"] {
            assert!(parse_agent_version(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_deny_wins_over_an_allow() {
        use ClientKind::*;
        use Verdict::*;
        let policy = VersionPolicy::new(vec![
            rule(Authenticator, Allow, None, "1.4.x"),
            rule(Authenticator, Deny, None, "1.4.2"),
            rule(Authenticator, Allow, Some("ios"), "2"),
            rule(Agent, Allow, Some("vsc-agent"), ">=0.1.0"),
        ]);
        let v = |s: &str| Version::parse(s).expect("version");
        assert_eq!(
            policy.decide(Authenticator, "android", &v("1.4.1")),
            Decision::Approved
        );
        assert_eq!(
            policy.decide(Authenticator, "android", &v("1.4.2")),
            Decision::Withdrawn
        );
        assert_eq!(
            policy.decide(Authenticator, "android", &v("2.0.0")),
            Decision::NotApproved
        );
        assert_eq!(
            policy.decide(Authenticator, "ios", &v("2.0.0")),
            Decision::Approved
        );
        // Rules of one kind never approve the other.
        assert_eq!(
            policy.decide(Agent, "vsc-agent", &v("1.4.1")),
            Decision::Approved
        );
        assert_eq!(
            policy.decide(Agent, "other", &v("1.4.1")),
            Decision::NotApproved
        );
        assert_eq!(
            policy.describe(Authenticator, Some("android")),
            "1.4.* (except =1.4.2)"
        );
        let err = policy
            .check(Authenticator, "android", "1.4.2")
            .expect_err("withdrawn");
        assert!(
            matches!(
                &err,
                PolicyError::Refused {
                    withdrawn: true,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("withdrawn") && text.contains("1.4.*") && text.contains("update"));
        assert_eq!(
            policy.check(Agent, "vsc-agent", "x"),
            Err(PolicyError::BadVersion("x".into()))
        );
        // No allow rule for a kind: nothing of that kind is approved.
        let empty = VersionPolicy::default();
        assert_eq!(
            empty.decide(Agent, "vsc-agent", &v("0.1.0")),
            Decision::NotApproved
        );
        assert_eq!(empty.describe(Agent, None), "none");
    }
}

//! Which client software the server accepts: NHS Digital approved only named versions of each
//! component, so an instance lists the authenticator versions it approves and refuses the rest.

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

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
}

//! Server configuration: what `vsc serve` is told on its command line, with the defaults a
//! single-node deployment wants.

use std::net::SocketAddr;
use std::path::PathBuf;

use time::Duration;
use vsc_core::AppVersionPolicy;

use crate::metrics::MetricsAccess;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory: database (when embedded), CA, TLS certificate, master key.
    pub data_dir: PathBuf,
    /// The database: a `postgres://` URL, or `None` for the embedded SQLite database in the
    /// data directory.
    pub database: Option<String>,
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// The URL people and phones reach this server at; derived from `listen` when absent.
    pub public_url: Option<url::Url>,
    /// Extra host names or addresses for the TLS certificate.
    pub hostnames: Vec<String>,
    /// Master key file (default: `<data>/master.key`). Keep it elsewhere to separate it from backups.
    pub master_key_file: Option<PathBuf>,
    /// Name of the instance, used in the CA's subject.
    pub instance_name: String,
    /// ODS code and name of the national organisation created at first start.
    pub national_ods: String,
    /// See `national_ods`.
    pub national_name: String,
    /// Names of the first RA Manager created at first start.
    pub bootstrap_given_name: String,
    /// See `bootstrap_given_name`.
    pub bootstrap_family_name: String,
    /// Approved authenticator app versions: seeds the stored policy on the instance's first
    /// start (see `routes::ra_versions`); afterwards `vsc ra versions` changes it.
    pub approved_app_versions: AppVersionPolicy,
    /// Approved identity agent versions (`PRODUCT=REQ` limits one product, e.g.
    /// `vsc-agent=>=0.1.0`): seeds the stored policy like `approved_app_versions`.
    pub approved_agent_versions: AppVersionPolicy,
    /// This server's copy of the stored approved-versions policy (a few seconds old at most).
    /// Not configuration: it lives here because every server has exactly one configuration;
    /// cloning the configuration gives an empty cache.
    pub version_cache: crate::routes::ra_versions::PolicyCache,
    /// How long an activation stays valid.
    pub activation_ttl: Duration,
    /// How long an unlock code stays valid.
    pub unlock_ttl: Duration,
    /// Validity of people's certificates.
    pub certificate_validity: Duration,
    /// How long before its certificates expire a card may renew (`--renewal-window-days`).
    pub renewal_window: Duration,
    /// Validity of a published CRL (it is re-published well before it runs out).
    pub crl_validity: Duration,
    /// Lifetime of an RA session.
    pub ra_session_ttl: Duration,
    /// Accept simulated phones (demo and sandbox only).
    pub sandbox: bool,
    /// Sign-in settings.
    pub signin: SigninConfig,
    /// How signing (EPS prescriptions) is limited.
    pub signing: SigningConfig,
    /// Who may read `GET /metrics`.
    pub metrics: MetricsAccess,
    /// The OpenID Connect provider.
    pub oidc: OidcConfig,
    /// Web Push to the phone app (issue 13).
    pub push: PushConfig,
}

/// Web Push (issue 13): the VAPID key that identifies this server to browsers' push services,
/// the contact it names, and (tests only) loopback `http:` push services. Push is always on:
/// the key is made at start-up when its file does not exist.
#[derive(Debug, Clone, Default)]
pub struct PushConfig {
    /// The VAPID key file (PKCS#8, PEM or DER, 0600; default `<data>/vapid-key.pem`), made at
    /// start-up when absent (`vsc serve --vapid-key FILE`).
    pub vapid_key_file: Option<PathBuf>,
    /// The contact named in VAPID tokens, `mailto:…` or `https:…` (`vsc serve
    /// --vapid-contact`); default the server's public URL.
    pub contact: Option<vsc_webpush::Contact>,
    /// Tests and the in-process lab only, never a command-line flag: accept `http:` push
    /// endpoints on loopback (stand-in push services) and send to them.
    pub allow_loopback_http_for_tests: bool,
}

/// The OpenID Connect provider's lifetimes and key rotation.
#[derive(Clone)]
pub struct OidcConfig {
    /// How long an authorization code lives (at most 60 seconds).
    pub code_ttl: Duration,
    /// How long an access token lives (never past its sign-in session).
    pub access_token_ttl: Duration,
    /// How long an ID token is valid.
    pub id_token_ttl: Duration,
    /// How long a browser has to finish a sign-in it started at the authorization endpoint.
    pub flow_ttl: Duration,
    /// How long a signing key signs before a new one replaces it.
    pub key_lifetime: Duration,
    /// How long a replaced key stays in the JWK set, so that tokens it signed still verify and
    /// relying parties that cached the set see the new key before the old one goes.
    pub key_grace: Duration,
    /// Sandbox only: the simulated person who reads the number on the sign-in page (the lab's
    /// phone types it, as a person would).
    pub number_screen: Option<NumberScreen>,
}

/// Called with (UID, number) when a sign-in page shows a number (sandbox only).
pub type NumberScreen = std::sync::Arc<dyn Fn(&str, u8) + Send + Sync>;

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("code_ttl", &self.code_ttl)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("id_token_ttl", &self.id_token_ttl)
            .field("flow_ttl", &self.flow_ttl)
            .field("key_lifetime", &self.key_lifetime)
            .field("key_grace", &self.key_grace)
            .field("number_screen", &self.number_screen.is_some())
            .finish()
    }
}

impl Default for OidcConfig {
    fn default() -> OidcConfig {
        OidcConfig {
            code_ttl: Duration::seconds(60),
            access_token_ttl: Duration::minutes(60),
            id_token_ttl: Duration::minutes(60),
            flow_ttl: Duration::minutes(10),
            key_lifetime: Duration::days(90),
            key_grace: Duration::days(7),
            number_screen: None,
        }
    }
}

/// Who may sign prescriptions, and how much at once.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// How long a signing request waits for the phone (1 second to 10 minutes).
    pub request_ttl: Duration,
    /// The most prescriptions in one request (one approval): 1 to 1000, 100 by default.
    pub max_batch: usize,
    /// Activity codes of which the session's role must hold at least one to sign
    /// prescriptions. Default: `B0420` (independent prescribing).
    pub prescribing_activities: Vec<String>,
}

impl Default for SigningConfig {
    fn default() -> SigningConfig {
        SigningConfig {
            request_ttl: Duration::minutes(5),
            max_batch: 100,
            prescribing_activities: vec!["B0420".into()],
        }
    }
}

impl SigningConfig {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_ttl <= Duration::ZERO || self.request_ttl > Duration::minutes(10) {
            return Err("a signing request lives between 1 second and 10 minutes".into());
        }
        if !(1..=1000).contains(&self.max_batch) {
            return Err("a signing batch holds between 1 and 1000 items".into());
        }
        if self.prescribing_activities.is_empty() {
            return Err("name at least one prescribing activity code".into());
        }
        for code in &self.prescribing_activities {
            code.parse::<vsc_core::ActivityCode>()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// How sign-in requests are limited.
#[derive(Debug, Clone)]
pub struct SigninConfig {
    /// How long an authentication request waits for the phone (at most 10 minutes).
    pub request_ttl: Duration,
    /// At most this many requests per card within `request_window`.
    pub requests_per_window: i64,
    /// See `requests_per_window`.
    pub request_window: Duration,
    /// Failures (wrong number, bad signature, declines, "I didn't do this") within
    /// `failure_window` that lock a card (1 to 100). Successes in between do not reset the count.
    pub failure_limit: i64,
    /// The window `failure_limit` counts in (1 minute to 30 days).
    pub failure_window: Duration,
    /// How long "I didn't do this" blocks new requests to the card.
    pub not_me_block: Duration,
    /// Lifetime of a device token.
    pub device_token_ttl: Duration,
}

impl Default for SigninConfig {
    fn default() -> SigninConfig {
        SigninConfig {
            request_ttl: Duration::minutes(2),
            requests_per_window: 10,
            request_window: Duration::minutes(10),
            failure_limit: 5,
            failure_window: Duration::hours(24),
            not_me_block: Duration::hours(1),
            device_token_ttl: Duration::minutes(15),
        }
    }
}

impl SigninConfig {
    /// Checks the limits the product promises (requests live at most 10 minutes; a card locks
    /// after at most 100 failures).
    pub fn validate(&self) -> Result<(), String> {
        if self.request_ttl <= Duration::ZERO || self.request_ttl > Duration::minutes(10) {
            return Err("a sign-in request lives between 1 second and 10 minutes".into());
        }
        if !(1..=100).contains(&self.failure_limit) {
            return Err("the failure limit is between 1 and 100".into());
        }
        if self.failure_window < Duration::minutes(1) || self.failure_window > Duration::days(30) {
            return Err("the failure window is between 1 minute and 30 days".into());
        }
        if self.requests_per_window < 1 {
            return Err("allow at least one sign-in request per window".into());
        }
        Ok(())
    }
}

impl ServerConfig {
    /// Defaults for a data directory and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            data_dir,
            database: None,
            listen,
            public_url: None,
            hostnames: Vec::new(),
            master_key_file: None,
            instance_name: "vsc".into(),
            national_ods: "X26".into(),
            national_name: "National Registration Authority".into(),
            bootstrap_given_name: "First".into(),
            bootstrap_family_name: "RA Manager".into(),
            approved_app_versions: default_app_policy(),
            approved_agent_versions: default_app_policy(),
            version_cache: Default::default(),
            activation_ttl: Duration::hours(72),
            unlock_ttl: Duration::hours(24),
            certificate_validity: Duration::days(730),
            renewal_window: Duration::days(90),
            crl_validity: Duration::days(7),
            ra_session_ttl: Duration::hours(1),
            sandbox: false,
            signin: SigninConfig::default(),
            signing: SigningConfig::default(),
            metrics: MetricsAccess::loopback(),
            oidc: OidcConfig::default(),
            push: PushConfig::default(),
        }
    }

    /// The VAPID key file's path.
    pub fn vapid_key_path(&self) -> PathBuf {
        self.push
            .vapid_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("vapid-key.pem"))
    }

    /// The master key's path.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

/// The approved list when none is given: this release's own series (authenticator and agent
/// are released together).
pub fn default_app_policy() -> AppVersionPolicy {
    let own = semver_series(env!("CARGO_PKG_VERSION"));
    AppVersionPolicy::parse(&[own]).expect("a requirement built from our own version parses")
}

fn semver_series(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    if major == "0" {
        format!(
            ">=0.{minor}.0, <0.{}.0",
            minor.parse::<u64>().unwrap_or(0) + 1
        )
    } else {
        format!(
            ">={major}.0.0, <{}.0.0",
            major.parse::<u64>().unwrap_or(0) + 1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::SigninConfig;
    use time::Duration;

    #[test]
    fn signin_limits_keep_their_promises() {
        assert!(SigninConfig::default().validate().is_ok());
        let too_many = SigninConfig {
            failure_limit: 101,
            ..SigninConfig::default()
        };
        assert!(too_many.validate().is_err());
        let too_long = SigninConfig {
            request_ttl: Duration::minutes(11),
            ..SigninConfig::default()
        };
        assert!(too_long.validate().is_err());
        let no_cap = SigninConfig {
            requests_per_window: 0,
            ..SigninConfig::default()
        };
        assert!(no_cap.validate().is_err());
    }

    #[test]
    fn default_policy_approves_this_release() {
        let facts = vsc_core::ClientFacts {
            platform: "vsc-cli".into(),
            app_version: env!("CARGO_PKG_VERSION").into(),
        };
        assert!(super::default_app_policy().check(&facts).is_ok());
        assert_eq!(super::semver_series("1.4.2"), ">=1.0.0, <2.0.0");
        assert_eq!(super::semver_series("0.3.1"), ">=0.3.0, <0.4.0");
    }
}

//! `vsc serve`: opens (or creates) the instance in the data directory, prints how to reach it
//! and, until the first RA Manager has enrolled, the bootstrap activation; serves until SIGINT
//! or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use vsc_core::AppVersionPolicy;
use vsc_server::ServerConfig;
use vsc_server::clock::SystemClock;
use vsc_server::metrics::MetricsAccess;

use crate::logging::{self, LogFormat};
use crate::qr;

/// Options of `vsc serve`.
#[derive(Debug, Args)]
#[command(
    about = "Run the vsc server (HTTPS, embedded SQLite)",
    long_about = "Run the vsc server.\n\n\
On first start the data directory is created (mode 0700) with the instance CA (a root and an \
issuing CA, private keys sealed under master.key), the server's TLS certificate issued by that CA, \
the SQLite database, the national organisation and a one-time activation for the first RA Manager, \
printed as a code, a link and a QR code (and kept in DATA/bootstrap.json until redeemed).\n\n\
The server listens on loopback unless told otherwise. Stop it with Ctrl-C or SIGTERM: in-flight \
requests finish, then the database is closed.",
    after_help = "Examples:\n  vsc serve\n  vsc serve --data /var/lib/vsc --listen 0.0.0.0:8443 --public-url https://vsc.example.nhs.uk:8443 --hostname vsc.example.nhs.uk\n  vsc serve --log-format json --metrics-token-file /etc/vsc/metrics.token --metrics-from-anywhere\n\n\
Operations: GET /healthz (alive), GET /readyz (the database answers; for load balancers) and \
GET /metrics (Prometheus text; loopback callers only unless --metrics-from-anywhere, and the \
bearer token of --metrics-token-file when given)."
)]
pub struct ServeArgs {
    /// Data directory (database, CA, TLS certificate, master key).
    #[arg(long, default_value = "./vsc-data", env = "VSC_DATA")]
    data: PathBuf,
    /// The database: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (PostgreSQL 15 or later; the
    /// database must exist, vsc creates its tables) or `sqlite://PATH`. Default: the embedded
    /// SQLite database DATA/vsc.db. Every node of one instance names the same database.
    #[arg(
        long,
        env = "VSC_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database: Option<String>,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "VSC_LISTEN")]
    listen: SocketAddr,
    /// URL phones and RAs use to reach this server (default: https://<listen address>).
    #[arg(long, env = "VSC_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// Extra DNS name or IP address for the server's TLS certificate (repeatable).
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// Master key file (default: DATA/master.key); keep it off the data directory's backups.
    #[arg(long, env = "VSC_MASTER_KEY")]
    master_key: Option<PathBuf>,
    /// Web Push (VAPID, RFC 8292) signing key that wakes the closed phone app: a PKCS#8 P-256
    /// key, PEM or DER, readable by its owner only (default: DATA/vapid-key.pem; made, mode
    /// 0600, when the file does not exist). Keep it: phones' push subscriptions are bound to
    /// its public key, and a new key means every phone subscribes again.
    #[arg(long, value_name = "FILE", env = "VSC_VAPID_KEY")]
    vapid_key: Option<PathBuf>,
    /// The contact push services are given with each Web Push message (the VAPID `sub`):
    /// `mailto:ADDRESS` or an `https:` URL (default: the public URL).
    #[arg(
        long,
        value_name = "mailto:ADDRESS|https://URL",
        env = "VSC_VAPID_CONTACT"
    )]
    vapid_contact: Option<String>,
    /// Approved authenticator versions, as semver requirements, optionally per platform
    /// (`>=0.1.0, <0.2.0` or `ios=>=3.4.0`); repeatable. Default: this release's series. Only
    /// seeds the policy on the instance's first start; afterwards `vsc ra versions` changes it.
    #[arg(long = "approved-app-version", value_name = "REQ")]
    approved_app_versions: Vec<String>,
    /// Approved identity agent versions, like --approved-app-version (`vsc-agent=>=0.1.0` limits
    /// one product); repeatable. Default: this release's series. Only seeds the policy.
    #[arg(long = "approved-agent-version", value_name = "REQ")]
    approved_agent_versions: Vec<String>,
    /// ODS code of the national organisation created at first start.
    #[arg(long, default_value = "X26")]
    national_ods: String,
    /// Activation lifetime in hours.
    #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=720))]
    activation_hours: u32,
    /// Validity of issued certificates in days.
    #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..=1825))]
    certificate_days: u32,
    /// How many days before its certificates expire a card may renew from the phone.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=365))]
    renewal_window_days: u32,
    /// How long a sign-in request waits for the phone, in seconds (at most 600).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(10..=600))]
    signin_request_seconds: u32,
    /// Sign-in requests allowed per card within --signin-window-minutes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    signin_requests_per_window: u32,
    /// The window of --signin-requests-per-window, in minutes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1440))]
    signin_window_minutes: u32,
    /// Sign-in failures (wrong number, bad signature, declines, "I didn't do this") within
    /// --signin-failure-window-minutes that lock a card; successes in between do not reset it.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    signin_failure_limit: u32,
    /// The window --signin-failure-limit counts in, in minutes (default a day; at most 30 days).
    #[arg(long, default_value_t = 1440, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    signin_failure_window_minutes: u32,
    /// Activity code that lets a role sign prescriptions (repeatable; default B0420,
    /// independent prescribing).
    #[arg(long = "prescribing-activity", value_name = "CODE")]
    prescribing_activities: Vec<String>,
    /// Most prescriptions in one signing request (one approval on the phone).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    signing_max_batch: u32,
    /// Seconds a signing request waits for the phone.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=600))]
    signing_request_seconds: u32,
    /// How long "I didn't do this" blocks new sign-in requests to the card, in minutes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    not_me_block_minutes: u32,
    /// Log format on standard error: `text` (coloured only at a terminal, and never with
    /// NO_COLOR set) or `json` (one object per line, for log shippers). What is logged:
    /// VSC_LOG, else RUST_LOG (e.g. `info,vsc_server=debug`), else `info,sqlx=warn`.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "VSC_LOG_FORMAT")]
    log_format: LogFormat,
    /// Same as --log-format json (kept for existing scripts).
    #[arg(long, hide_short_help = true, conflicts_with = "log_format")]
    json: bool,
    /// Require this bearer token for GET /metrics: a file whose first line is the token
    /// (16 or more visible ASCII characters, e.g. from `openssl rand -hex 32`). Loopback
    /// callers need it too.
    #[arg(long, value_name = "FILE", env = "VSC_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Serve GET /metrics to callers from any address; by default only loopback callers get it.
    /// Combine with --metrics-token-file.
    #[arg(long)]
    metrics_from_anywhere: bool,
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    logging::init(if args.json {
        LogFormat::Json
    } else {
        args.log_format
    });
    let mut metrics = MetricsAccess::loopback();
    metrics.from_anywhere = args.metrics_from_anywhere;
    if let Some(path) = &args.metrics_token_file {
        metrics = metrics.token_from_file(path)?;
    }
    if metrics.from_anywhere && !metrics.has_token() {
        tracing::warn!(
            "GET /metrics is open to every caller (--metrics-from-anywhere without --metrics-token-file)"
        );
    }
    let mut config = ServerConfig::new(args.data.clone(), args.listen);
    let location = vsc_store::Location::for_instance(&args.data, args.database.as_deref())?;
    config.database = args.database.clone();
    config.metrics = metrics;
    config.public_url = args.public_url;
    config.hostnames = args.hostnames;
    config.master_key_file = args.master_key;
    config.push.vapid_key_file = args.vapid_key;
    if let Some(contact) = &args.vapid_contact {
        config.push.contact = Some(vsc_webpush::Contact::parse(contact).map_err(|_| {
            anyhow::anyhow!(
                "--vapid-contact {contact:?} is neither mailto:ADDRESS nor an https: URL with a host"
            )
        })?);
    }
    config.national_ods = args.national_ods;
    config.activation_ttl = time::Duration::hours(i64::from(args.activation_hours));
    config.certificate_validity = time::Duration::days(i64::from(args.certificate_days));
    config.renewal_window = time::Duration::days(i64::from(args.renewal_window_days));
    config.signin.request_ttl = time::Duration::seconds(i64::from(args.signin_request_seconds));
    config.signin.requests_per_window = i64::from(args.signin_requests_per_window);
    config.signin.request_window = time::Duration::minutes(i64::from(args.signin_window_minutes));
    config.signin.failure_limit = i64::from(args.signin_failure_limit);
    config.signin.failure_window =
        time::Duration::minutes(i64::from(args.signin_failure_window_minutes));
    if !args.prescribing_activities.is_empty() {
        config.signing.prescribing_activities = args.prescribing_activities.clone();
    }
    config.signing.max_batch = args.signing_max_batch as usize;
    config.signing.request_ttl = time::Duration::seconds(i64::from(args.signing_request_seconds));
    config.signin.not_me_block = time::Duration::minutes(i64::from(args.not_me_block_minutes));
    if !args.approved_app_versions.is_empty() {
        config.approved_app_versions =
            AppVersionPolicy::parse(&args.approved_app_versions).map_err(anyhow::Error::msg)?;
    }
    if !args.approved_agent_versions.is_empty() {
        config.approved_agent_versions =
            AppVersionPolicy::parse(&args.approved_agent_versions).map_err(anyhow::Error::msg)?;
    }
    let stop = crate::signals::stop_signals()?;
    let listener = std::net::TcpListener::bind(args.listen).with_context(|| {
        format!(
            "cannot listen on {}: is another server using it? choose another with --listen",
            args.listen
        )
    })?;
    let bound = listener.local_addr()?;
    let instance = vsc_server::instance::prepare(config, bound, Arc::new(SystemClock))
        .await
        .with_context(|| format!("cannot open the instance in {}", args.data.display()))?;
    let state = instance.state.clone();
    println!(
        "vsc server {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        state.public_url()
    );
    println!("  data directory  {}", args.data.display());
    println!("  database        {}", location.redacted());
    println!(
        "  CA fingerprint  {}",
        state.ca().root_fingerprint().to_colon_hex()
    );
    println!("  CRL             {}", state.crl_url());
    println!(
        "  Web Push key    {} (VAPID public key {})",
        state.config().vapid_key_path().display(),
        state.push().public_key_base64url()
    );
    if instance.created {
        println!("  (new instance: CA and TLS certificate created)");
    }
    if let Some(b) = &instance.bootstrap {
        println!();
        println!(
            "No RA Manager has enrolled yet. Enrol the first one (UID {}) with the vsc authenticator:",
            b.uid
        );
        println!();
        println!("  code     {}", b.activation.code);
        println!("  link     {}", b.activation.url);
        println!(
            "  expires  {}",
            b.activation
                .expires_at
                .format(&time::format_description::well_known::Rfc3339)?
        );
        if let Ok(code) = qr::terminal(&b.activation.url) {
            println!("{code}");
        }
        println!(
            "  on the RA Manager's phone:  vsc authenticator enrol '{}'",
            b.activation.url
        );
        println!(
            "  (also saved in {}; a new code is printed at each start until it is used)",
            args.data.join("bootstrap.json").display()
        );
    }
    if let Some(r) = &instance.recovery {
        println!();
        println!(
            "No RA Manager holds an active card: the card {} of RA Manager {} is locked.",
            r.card_id, r.uid
        );
        println!(
            "To recover, that RA Manager sets a new passcode on their own phone with this unlock code:"
        );
        println!();
        println!("  code     {}", r.unlock.code);
        println!("  link     {}", r.unlock.url);
        println!(
            "  expires  {}",
            r.unlock
                .expires_at
                .format(&time::format_description::well_known::Rfc3339)?
        );
        println!(
            "  on the RA Manager's phone:  vsc authenticator unlock '{}'",
            r.unlock.url
        );
        println!(
            "  (a new code is printed at each start until an RA Manager's card is active again)"
        );
    }
    println!();
    println!("Press Ctrl-C to stop.");
    vsc_server::serve(instance, listener, stop)
        .await
        .context("the server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

//! `vsc assurance report`: the instance's standing, as the instance itself can evidence it,
//! under the headings of an NHS assurance assessment (the seed's approval of virtual smartcards
//! rests on these): software and versions in use, key custody and the EPS rule, the passcode
//! and session policy, the CA and certificate expiry, the audit chain verified to its head, the
//! last backup. An organisation attaches the output (or its `--json`) to its own assessment as
//! live evidence. Read-only and offline, like `vsc audit verify`: it reads the data directory
//! and the database, and can run while `vsc serve` does.
//!
//! Each finding is `ok`, `attention` (something to act on soon: a CA or TLS certificate within
//! 90 days of expiry, a CRL past its next update, no backup for more than `--backup-days`) or
//! `broken` (the audit chain does not verify). The exit status is 0 when everything is `ok`,
//! 1 when anything needs attention or is broken, so the command can also run from a monitor.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vsc_core::{ClientKind, Decision};
use vsc_store::Store;
use vsc_store::assurance::{
    self, CardCount, CertificateStanding, OrganisationPolicy, VersionInUse,
};

/// `vsc assurance`.
#[derive(Debug, Args)]
pub struct AssuranceArgs {
    #[command(subcommand)]
    command: AssuranceCommand,
}

#[derive(Debug, Subcommand)]
enum AssuranceCommand {
    /// The instance's standing: versions in use, key custody, passcode and session policy, CA
    /// and certificate expiry, the audit chain, the last backup. Exit status 1 when anything
    /// needs attention.
    Report {
        /// The server's data directory.
        #[arg(long, default_value = "./vsc-data", env = "VSC_DATA")]
        data: PathBuf,
        /// The instance's database when it is not DATA/vsc.db (`postgres://…`, as `vsc serve
        /// --database`).
        #[arg(
            long,
            env = "VSC_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        database: Option<String>,
        /// A backup older than this many days needs attention.
        #[arg(long, default_value_t = 7, value_name = "DAYS")]
        backup_days: i64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Standing {
    Ok,
    Attention,
    Broken,
}

/// One line of the report: a heading, what was found, and how it stands.
#[derive(Debug, Clone, Serialize)]
struct Finding {
    heading: &'static str,
    what: String,
    standing: Standing,
}

/// A certificate of the instance's own and when it expires.
#[derive(Debug, Clone, Serialize)]
struct OwnCertificate {
    name: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
    days_left: i64,
}

/// An identity agent's last reported version.
#[derive(Debug, Clone, Serialize)]
struct AgentInUse {
    workstation: String,
    organisation: String,
    product: String,
    version: String,
}

/// The last backup the audit log records.
#[derive(Debug, Clone, Serialize)]
struct LastBackup {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    days_ago: i64,
    detail: serde_json::Value,
}

/// Everything the report found, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(with = "time::serde::rfc3339")]
    generated_at: OffsetDateTime,
    vsc_version: &'static str,
    standing: Standing,
    findings: Vec<Finding>,
    versions_in_use: Vec<VersionInUse>,
    agent_versions: Vec<AgentInUse>,
    cards: Vec<CardCount>,
    certificates: CertificateStanding,
    own_certificates: Vec<OwnCertificate>,
    organisations: Vec<OrganisationPolicy>,
    audit: vsc_store::audit::VerifyReport,
    last_backup: Option<LastBackup>,
    passcode: PasscodePolicy,
}

/// The passcode rules, which the code fixes rather than configuration.
#[derive(Debug, Serialize)]
struct PasscodePolicy {
    wrong_attempts_before_lock: u32,
    checked_by: &'static str,
    stretching: &'static str,
}

/// Days a certificate may have left before it needs attention.
const CERTIFICATE_ATTENTION_DAYS: i64 = 90;

/// Runs `vsc assurance`.
pub async fn run(args: AssuranceArgs) -> Result<ExitCode> {
    let AssuranceCommand::Report {
        data,
        database,
        backup_days,
        json,
    } = args.command;
    let location = vsc_store::Location::for_instance(&data, database.as_deref())?;
    let store = Store::open_existing_at(&location).await.with_context(|| {
        format!(
            "cannot open the instance's database {}",
            location.redacted()
        )
    })?;
    // Whole seconds: the report is evidence read by people, not a trace.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let report = build(&store, &data, backup_days, now).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(if report.standing == Standing::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn build(
    store: &Store,
    data: &Path,
    backup_days: i64,
    now: OffsetDateTime,
) -> Result<Report> {
    let mut conn = store.pool().acquire().await?;
    let versions_in_use = assurance::versions_in_use(&mut conn).await?;
    let policy = vsc_store::versions::policy(&mut conn).await?;
    let agents = vsc_store::versions::agent_versions(&mut conn).await?;
    let responder = vsc_store::ocsp::current_responder(&mut conn).await?;
    let licence_pool = vsc_store::licences::pool(&mut conn).await?;
    let licence_blocks = vsc_store::licences::applications(&mut conn).await?;
    let licence_extensions = vsc_store::licences::waiting_extensions(&mut conn).await?;
    let cards = assurance::cards_by_state_and_custody(&mut conn).await?;
    let certificates = assurance::certificate_standing(&mut conn, now.unix_timestamp()).await?;
    let organisations = assurance::organisation_policies(&mut conn).await?;
    let last_backup = match assurance::last_event(&mut conn, crate::backup::BACKUP_EVENT).await? {
        Some((at_ms, detail)) => {
            let at = OffsetDateTime::from_unix_timestamp(at_ms / 1000)
                .context("a backup event with an impossible time")?;
            Some(LastBackup {
                at,
                days_ago: (now - at).whole_days(),
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        }
        None => None,
    };
    let crls = [
        ("issuing", vsc_store::repo::crl(&mut conn, "issuing").await?),
        ("root", vsc_store::repo::crl(&mut conn, "root").await?),
    ];
    drop(conn);
    let audit = vsc_store::audit::verify(store).await?;
    let own_certificates = own_certificates(data, now)?;

    let mut findings = Vec::new();
    let mut find = |heading, standing, what: String| {
        findings.push(Finding {
            heading,
            what,
            standing,
        })
    };
    find(
        "Software",
        Standing::Ok,
        format!(
            "vsc {}; approved: authenticator {}; identity agent {}",
            env!("CARGO_PKG_VERSION"),
            policy.describe(ClientKind::Authenticator, None),
            policy.describe(ClientKind::Agent, None)
        ),
    );
    // Versions in use are judged by the same policy the server enforces: a phone or agent on
    // a version no longer approved is refused at its next sign-in, so its people need telling.
    for v in &versions_in_use {
        let decision = vsc_core::policy::Version::parse(&v.app_version)
            .map(|version| policy.decide(ClientKind::Authenticator, &v.platform, &version));
        let (standing, verdict) = match decision {
            Ok(Decision::Approved) => (Standing::Ok, "approved"),
            Ok(Decision::Withdrawn) => (
                Standing::Attention,
                "WITHDRAWN: these phones are refused until updated",
            ),
            Ok(Decision::NotApproved) => (
                Standing::Attention,
                "NOT APPROVED: these phones are refused until updated",
            ),
            Err(_) => (
                Standing::Attention,
                "not a version: these phones are refused until updated",
            ),
        };
        find(
            "Software",
            standing,
            format!(
                "authenticator {} {} on phones holding {} usable cards: {verdict}",
                v.platform, v.app_version, v.cards
            ),
        );
    }
    let mut agent_counts: std::collections::BTreeMap<(String, String), i64> =
        std::collections::BTreeMap::new();
    for a in &agents {
        *agent_counts
            .entry((a.product.clone(), a.version.clone()))
            .or_default() += 1;
    }
    for ((product, version), workstations) in &agent_counts {
        let decision = vsc_core::policy::Version::parse(version)
            .map(|parsed| policy.decide(ClientKind::Agent, product, &parsed));
        let (standing, verdict) = match decision {
            Ok(Decision::Approved) => (Standing::Ok, "approved"),
            _ => (
                Standing::Attention,
                "not approved: sign-ins from these workstations are refused until the agent is updated",
            ),
        };
        find(
            "Software",
            standing,
            format!("identity agent {product} {version} on {workstations} workstations: {verdict}"),
        );
    }
    let not_on_phones: i64 = cards
        .iter()
        .filter(|c| c.custody != "device-held")
        .map(|c| c.cards)
        .sum();
    find(
        "Keys and EPS signing",
        Standing::Ok,
        format!(
            "every private key is generated and kept on the holder's phone ({} cards not phone-held); EPS signing is refused for any key not on a phone",
            not_on_phones
        ),
    );
    find(
        "Passcode",
        Standing::Ok,
        format!(
            "6 to 64 digits; {} wrong in a row lock the card until an RA unlocks it; checked by the server, and the phone holds nothing a guess could be tested against",
            vsc_authenticator::MAX_ATTEMPTS
        ),
    );
    for o in &organisations {
        find(
            "Sessions",
            Standing::Ok,
            format!(
                "{} ({}): idle {} min, at most {} h; unregistered workstations {}",
                o.ods_code,
                o.name,
                o.session_idle_seconds / 60,
                o.session_max_seconds / 3600,
                if o.allow_unregistered_workstations {
                    "allowed"
                } else {
                    "refused"
                }
            ),
        );
    }
    for c in &own_certificates {
        let standing = if c.days_left < CERTIFICATE_ATTENTION_DAYS {
            Standing::Attention
        } else {
            Standing::Ok
        };
        find(
            "Certificate authority",
            standing,
            format!(
                "{} expires {} ({} days)",
                c.name,
                date(c.not_after),
                c.days_left
            ),
        );
    }
    find(
        "Certificates",
        if certificates.expiring_within_30_days > 0 {
            Standing::Attention
        } else {
            Standing::Ok
        },
        format!(
            "{} valid; {} expire within 30 days, {} within 90; {} revoked and listed on the CRL",
            certificates.valid,
            certificates.expiring_within_30_days,
            certificates.expiring_within_90_days,
            certificates.revoked_unexpired
        ),
    );
    for (name, crl) in &crls {
        match crl {
            Some(crl) if crl.next_update >= now.unix_timestamp() => find(
                "Revocation",
                Standing::Ok,
                format!(
                    "{name} CRL number {}, next update {}",
                    crl.crl_number,
                    unix_date(crl.next_update)
                ),
            ),
            Some(crl) => find(
                "Revocation",
                Standing::Attention,
                format!(
                    "{name} CRL number {} was due for renewal at {}: is `vsc serve` running?",
                    crl.crl_number,
                    unix_date(crl.next_update)
                ),
            ),
            None => find(
                "Revocation",
                Standing::Attention,
                format!("no {name} CRL published yet: start `vsc serve` once"),
            ),
        }
    }
    find(
        "Revocation",
        Standing::Ok,
        match &responder {
            Some(r) => format!(
                "OCSP responder certificate (generation {}) valid until {}; renewed automatically at half its life",
                r.generation,
                unix_date(r.not_after)
            ),
            None => "OCSP responder certificate: issued at the first OCSP request".to_owned(),
        },
    );
    match &audit.first_broken {
        None => find(
            "Audit",
            Standing::Ok,
            format!(
                "the chain of {} events verifies to its head {}",
                audit.events, audit.head_hash
            ),
        ),
        Some(b) => find(
            "Audit",
            Standing::Broken,
            format!(
                "the chain is BROKEN at event {}: {} (`vsc audit verify` for details)",
                b.seq, b.reason
            ),
        ),
    }
    match &last_backup {
        Some(b) if b.days_ago <= backup_days => find(
            "Backup",
            Standing::Ok,
            format!("last backup {} ({} days ago)", date(b.at), b.days_ago),
        ),
        Some(b) => find(
            "Backup",
            Standing::Attention,
            format!(
                "last backup {} ({} days ago, more than {backup_days}): run `vsc backup`",
                date(b.at),
                b.days_ago
            ),
        ),
        None => find(
            "Backup",
            Standing::Attention,
            "no backup recorded: run `vsc backup --data DIR -o FILE`".to_owned(),
        ),
    }
    licence_findings(
        &mut find,
        licence_pool.as_ref(),
        &licence_blocks,
        now.unix_timestamp(),
    );
    extension_findings(
        &mut find,
        licence_pool.as_ref(),
        &licence_blocks,
        &licence_extensions,
    );
    let standing = findings
        .iter()
        .map(|f| f.standing)
        .max()
        .unwrap_or(Standing::Ok);
    Ok(Report {
        generated_at: now,
        vsc_version: env!("CARGO_PKG_VERSION"),
        standing,
        findings,
        versions_in_use,
        agent_versions: agents
            .iter()
            .map(|a| AgentInUse {
                workstation: a.workstation_name.clone(),
                organisation: a.ods_code.clone(),
                product: a.product.clone(),
                version: a.version.clone(),
            })
            .collect(),
        cards,
        certificates,
        own_certificates,
        organisations,
        audit,
        last_backup,
        passcode: PasscodePolicy {
            wrong_attempts_before_lock: vsc_authenticator::MAX_ATTEMPTS,
            checked_by: "server (verifier compared in constant time; the phone holds no passcode-derived value that a guess could be tested against)",
            stretching: "Argon2id, 64 MiB, 3 passes",
        },
    })
}

/// Licence use: the pool, what is allocated and used, what waits, and blocks whose term ends
/// within the pool's warning period (their cards stop signing in after the grace period).
fn licence_findings(
    find: &mut impl FnMut(&'static str, Standing, String),
    pool: Option<&vsc_store::licences::PoolRow>,
    blocks: &[vsc_store::licences::ApplicationRow],
    now: i64,
) {
    use vsc_store::licences::{APPROVED, DAY, WAITING};
    let Some(pool) = pool else {
        find(
            "Licences",
            Standing::Ok,
            "no licence pool: cards are issued without licences (`vsc ra licences pool --add N` starts counting)"
                .to_owned(),
        );
        return;
    };
    let live: Vec<_> = blocks
        .iter()
        .filter(|b| {
            b.state == APPROVED
                && b.term_end
                    .is_some_and(|end| end + pool.grace_days * DAY > now)
        })
        .collect();
    let allocated: i64 = live.iter().map(|b| b.allocated).sum();
    let used: i64 = live.iter().map(|b| b.used).sum();
    let waiting: Vec<_> = blocks.iter().filter(|b| b.state == WAITING).collect();
    find(
        "Licences",
        Standing::Ok,
        format!(
            "pool of {}: {allocated} allocated, {used} used by cards, {} free in the pool; {} applications waiting ({} licences)",
            pool.total,
            pool.total - allocated,
            waiting.len(),
            waiting.iter().map(|b| b.requested).sum::<i64>()
        ),
    );
    for b in &live {
        let Some(end) = b.term_end else { continue };
        if end - pool.warn_days * DAY <= now {
            find(
                "Licences",
                Standing::Attention,
                format!(
                    "{}: the term of {} licences ({} used) ends {}; its cards stop signing in {} days later unless it is extended",
                    b.ods_code,
                    b.allocated,
                    b.used,
                    unix_date(end),
                    pool.grace_days
                ),
            );
        }
    }
}

/// The licence extension queue: how many requests wait, and whether the funding covers the
/// first (if not, the queue is stuck until the funding is topped up or it is withdrawn).
fn extension_findings(
    find: &mut impl FnMut(&'static str, Standing, String),
    pool: Option<&vsc_store::licences::PoolRow>,
    blocks: &[vsc_store::licences::ApplicationRow],
    queue: &[vsc_store::licences::ExtensionRow],
) {
    use vsc_store::licences::DAY;
    let (Some(pool), Some(first)) = (pool, queue.first()) else {
        return;
    };
    let cost = blocks
        .iter()
        .find(|b| b.id == first.application_id)
        .and_then(|b| {
            b.term_end.map(|end| {
                ((first.new_end - end) / DAY)
                    .max(0)
                    .saturating_mul(b.allocated)
            })
        })
        .unwrap_or(0);
    let (standing, how) = if cost > pool.funding {
        (
            Standing::Attention,
            "more than the funding left: top it up (`vsc ra licences pool --add-funding N`) or the queue stays stuck",
        )
    } else {
        (
            Standing::Ok,
            "within the funding: a national RA Manager approves with `vsc ra licences extensions --approve`",
        )
    };
    find(
        "Licences",
        standing,
        format!(
            "{} term extension requests waiting; the first ({}, block #{}) costs {cost} licence-days of the {} left, {how}",
            queue.len(),
            first.ods_code,
            first.application_id,
            pool.funding
        ),
    );
}

/// The root and issuing CA certificates and the server's TLS certificate, from the data
/// directory.
fn own_certificates(data: &Path, now: OffsetDateTime) -> Result<Vec<OwnCertificate>> {
    let mut out = Vec::new();
    for (name, path) in [
        ("root CA", data.join("ca").join("root.pem")),
        ("issuing CA", data.join("ca").join("issuing.pem")),
        (
            "TLS server certificate",
            data.join("tls").join("server.pem"),
        ),
    ] {
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            // A server behind a TLS-terminating proxy may have no certificate of its own.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.starts_with("TLS") => {
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let der = vsc_pki::pem::pem_to_der(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
        let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())?;
        out.push(OwnCertificate {
            name,
            not_after,
            days_left: (not_after - now).whole_days(),
        });
    }
    Ok(out)
}

fn date(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn unix_date(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map_or_else(|_| t.to_string(), date)
}

fn print(r: &Report) {
    println!(
        "vsc assurance report, {} (vsc {})",
        date(r.generated_at),
        r.vsc_version
    );
    let mut heading = "";
    for f in &r.findings {
        if f.heading != heading {
            println!();
            println!("{}", f.heading);
            heading = f.heading;
        }
        let mark = match f.standing {
            Standing::Ok => "  ok         ",
            Standing::Attention => "  ATTENTION  ",
            Standing::Broken => "  BROKEN     ",
        };
        println!("{mark}{}", f.what);
    }
    println!();
    match r.standing {
        Standing::Ok => println!("Everything above is in order."),
        Standing::Attention => println!("Some findings need attention (marked ATTENTION)."),
        Standing::Broken => {
            println!("The audit chain is broken: investigate before relying on this instance.")
        }
    }
}

#[cfg(test)]
mod tests {
    use vsc_store::licences::{APPROVED, ApplicationRow, DAY, PoolRow, WAITING};

    use super::*;

    fn block(ods: &str, state: &str, n: i64, used: i64, term_end: Option<i64>) -> ApplicationRow {
        ApplicationRow {
            id: 0,
            ods_code: ods.into(),
            requested: n,
            contact: String::new(),
            systems: String::new(),
            applied_by: String::new(),
            applied_at: 0,
            state: state.into(),
            allocated: if state == APPROVED { n } else { 0 },
            term_start: term_end.map(|_| 0),
            term_end,
            approved_by: None,
            approved_at: None,
            used,
        }
    }

    #[test]
    fn licence_use_is_counted_and_terms_ending_soon_need_attention() {
        let now = 1_000 * DAY;
        let pool = PoolRow {
            total: 100,
            funding: 0,
            grace_days: 14,
            warn_days: 30,
            term_days: 365,
            created_by: String::new(),
            created_at: 0,
            updated_at: 0,
        };
        let blocks = [
            block("RX1", APPROVED, 40, 12, Some(now + 200 * DAY)),
            block("RY2", APPROVED, 30, 30, Some(now + 10 * DAY)),
            // Ended past its grace period: no longer counted.
            block("RZ3", APPROVED, 20, 5, Some(now - 20 * DAY)),
            block("RW4", WAITING, 50, 0, None),
        ];
        let mut found = Vec::new();
        licence_findings(
            &mut |h, s, w| found.push((h, s, w)),
            Some(&pool),
            &blocks,
            now,
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].1, Standing::Ok);
        assert!(
            found[0]
                .2
                .contains("pool of 100: 70 allocated, 42 used by cards, 30 free")
                && found[0].2.contains("1 applications waiting (50 licences)"),
            "{}",
            found[0].2
        );
        assert_eq!(found[1].1, Standing::Attention);
        assert!(found[1].2.starts_with("RY2:"), "{}", found[1].2);

        let mut none = Vec::new();
        licence_findings(&mut |h, s, w| none.push((h, s, w)), None, &[], now);
        assert_eq!(none[0].1, Standing::Ok);
        assert!(none[0].2.contains("no licence pool"));
    }

    #[test]
    fn an_extension_queue_stuck_on_funding_needs_attention() {
        let now = 1_000 * DAY;
        let mut pool = PoolRow {
            total: 100,
            funding: 50,
            grace_days: 14,
            warn_days: 30,
            term_days: 365,
            created_by: String::new(),
            created_at: 0,
            updated_at: 0,
        };
        let mut b = block("RX1", APPROVED, 10, 2, Some(now + 5 * DAY));
        b.id = 7;
        let queue = [vsc_store::licences::ExtensionRow {
            id: 1,
            application_id: 7,
            ods_code: "RX1".into(),
            new_end: now + 15 * DAY,
            requested_by: String::new(),
            requested_at: now,
            state: WAITING.into(),
            cost: None,
            decided_by: None,
            decided_at: None,
        }];
        let blocks = [b];
        let mut found = Vec::new();
        extension_findings(
            &mut |h, s, w| found.push((h, s, w)),
            Some(&pool),
            &blocks,
            &queue,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, Standing::Attention, "{}", found[0].2);
        assert!(
            found[0].2.contains("costs 100 licence-days of the 50 left"),
            "{}",
            found[0].2
        );
        pool.funding = 100;
        let mut found = Vec::new();
        extension_findings(
            &mut |h, s, w| found.push((h, s, w)),
            Some(&pool),
            &blocks,
            &queue,
        );
        assert_eq!(found[0].1, Standing::Ok);
        let mut found = Vec::new();
        extension_findings(
            &mut |h, s, w| found.push((h, s, w)),
            Some(&pool),
            &blocks,
            &[],
        );
        assert!(found.is_empty());
    }
}

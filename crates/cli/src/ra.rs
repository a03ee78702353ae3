//! `vsc ra`: the Registration Authority console. It signs in with the RA's own virtual
//! smartcard (the authenticator in `--home` signs the server's challenge after the passcode) and
//! keeps the session token in `HOME/ra-session.json` (mode 0600) until it expires.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vsc_proto::routes;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vsc_authenticator::{ClientForHome as _, Home};
use vsc_https::Client;
use vsc_proto::{
    AssignPosition, CancelCard, Card, CardWithCode, CreateOrganisation, CreatePerson,
    DecidePositionRequest, IssueCard, Organisation, Person, PositionRequest, RaRoleGrant,
    RecordIdentityCheck, RemoveRaRole, RequestPosition,
};

use vsc_proto::replacement::ReplaceCard;

use crate::{authenticator, passcode, qr};

/// `vsc ra`.
#[derive(Debug, Args)]
#[command(
    after_help = "Sign in first with `vsc ra login`; the session lasts an hour.\n\
RA roles (CIM): ra-manager, ra-agent, sponsor, id-checker, local-smartcard-administrator; \
and service-manager (OpenID Connect clients only).\n\
You act only on people registered at, or holding a position at, your organisation(s), and \
never on your own record. A first position at another organisation needs a position request \
that the person's registering organisation approves (`vsc ra position-request`)."
)]
pub struct RaArgs {
    /// The RA's own authenticator state directory (their virtual smartcard).
    #[arg(long, global = true, env = "VSC_HOME", default_value_os_t = authenticator::default_home())]
    home: PathBuf,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: RaCommand,
}

#[derive(Debug, Subcommand)]
enum RaCommand {
    /// Sign in with your virtual smartcard (asks for your passcode).
    Login,
    /// Show who is signed in and with which RA roles.
    Whoami,
    /// Organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// People: profiles, identity checks, positions, RA roles.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Virtual smartcards: issue, show, cancel, unlock.
    #[command(subcommand)]
    Card(CardCommand),
    /// Positions at another organisation: request, list, approve, decline.
    #[command(subcommand)]
    PositionRequest(PositionRequestCommand),
    /// Workstations: registration codes, list, revoke, the unregistered-workstation policy.
    #[command(subcommand)]
    Workstation(crate::ra_workstation::WorkstationCommand),
    /// OpenID Connect clients (web applications signing people in): create, list, show,
    /// disable, rotate-secret. RA Managers at the national organisation and Service Managers.
    #[command(subcommand)]
    Client(crate::ra_client::ClientCommand),
    /// Licences: the national pool, organisations' applications, approvals, the waiting list,
    /// returns, term extensions and reports.
    #[command(subcommand)]
    Licences(crate::ra_licences::LicencesCommand),
    /// Approved authenticator and agent versions: allow, deny, list (with the versions in use).
    #[command(subcommand)]
    Versions(crate::ra_versions::VersionsCommand),
    /// Bulk issuance from a CSV file: register, check, place and issue cards row by row
    /// (--dry-run checks every row and writes nothing).
    BulkIssue(crate::ra_bulk::BulkIssueArgs),
}

#[derive(Debug, Subcommand)]
enum PositionRequestCommand {
    /// Ask for a position at your organisation for someone registered elsewhere who holds no
    /// position here yet. An RA Manager or RA Agent of their registering organisation approves
    /// it; until then you cannot see or act on them.
    Create {
        /// UID.
        uid: String,
        /// ODS code of your organisation (where the position would be).
        #[arg(long)]
        org: String,
        /// NRBAC role code, S…:G…:R….
        #[arg(long)]
        role_code: String,
        /// Role name.
        #[arg(long)]
        role_name: String,
        /// Activity code (repeatable).
        #[arg(long = "activity")]
        activities: Vec<String>,
    },
    /// Pending requests you may decide (people registered at your organisation) or made.
    List,
    /// Approve a request for a person registered at your organisation: the position is
    /// created and the other organisation's RAs can act on the person from then on.
    Approve {
        /// Request id.
        id: String,
        /// A note for the audit log.
        #[arg(long)]
        note: Option<String>,
    },
    /// Decline a request (or withdraw one you made).
    Decline {
        /// Request id.
        id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        note: Option<String>,
    },
}

/// RFC 5280 reasons an RA gives when cancelling a card; they go into the CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReasonCode {
    /// The phone was lost or stolen, or the passcode or a key may be known to someone else.
    /// Signatures made after --invalidity-date (or at all, without one) are rejected.
    KeyCompromise,
    /// The holder moved to another organisation or changed their name.
    AffiliationChanged,
    /// A new card replaces this one (e.g. a new phone while the old one is still in hand).
    Superseded,
    /// The holder left or no longer needs a card.
    CessationOfOperation,
}

impl ReasonCode {
    fn wire(self) -> &'static str {
        match self {
            ReasonCode::KeyCompromise => "key-compromise",
            ReasonCode::AffiliationChanged => "affiliation-changed",
            ReasonCode::Superseded => "superseded",
            ReasonCode::CessationOfOperation => "cessation-of-operation",
        }
    }
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// List organisations.
    List,
    /// Set how long sign-in sessions last at an organisation (its RA Managers).
    SessionLimits {
        /// ODS code.
        #[arg(long)]
        ods: String,
        /// Idle timeout in minutes (default policy: 15).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1440))]
        idle_minutes: i64,
        /// Absolute timeout in hours (default policy: 12).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=24))]
        max_hours: i64,
    },
    /// Register an organisation (RA Managers of the national organisation).
    Create {
        /// ODS code, for example RX1.
        #[arg(long)]
        ods: String,
        /// Name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// Create a profile; prints the new UID.
    Create {
        /// Given name.
        #[arg(long)]
        given: String,
        /// Family name.
        #[arg(long)]
        family: String,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// ODS code of your organisation registering the person.
        #[arg(long)]
        org: String,
    },
    /// Show a profile.
    Show {
        /// UID.
        uid: String,
    },
    /// Record an identity check (a card needs level 3: two documents, one photographic).
    IdCheck {
        /// UID.
        uid: String,
        /// Evidence seen (repeatable): passport, driving-licence, national-identity-card,
        /// residence-permit, birth-certificate, proof-of-address, employment-evidence.
        #[arg(long = "evidence", required = true)]
        evidence: Vec<String>,
        /// e-GIF level reached (1-3).
        #[arg(long, default_value_t = 3)]
        level: u8,
        /// ODS code of your organisation.
        #[arg(long)]
        org: String,
    },
    /// Assign a position: an NRBAC role at an organisation. For someone registered elsewhere
    /// who holds no position at that organisation yet, use `vsc ra position-request create`
    /// (unless you are also an RA Manager or RA Agent of their registering organisation). A
    /// Sponsor assigns only the roles and activities it sponsors; prescribing activities only
    /// RA Managers and RA Agents.
    Position {
        /// UID.
        uid: String,
        /// ODS code.
        #[arg(long)]
        org: String,
        /// NRBAC role code, S…:G…:R… (for example S8000:G8000:R8000).
        #[arg(long)]
        role_code: String,
        /// Role name.
        #[arg(long)]
        role_name: String,
        /// Activity code (repeatable), for example B0570.
        #[arg(long = "activity")]
        activities: Vec<String>,
    },
    /// End a position (its id is shown by `vsc ra person show`). Whoever may assign the
    /// position may end it; the person's sessions acting in it end too.
    EndPosition {
        /// Position id.
        id: String,
    },
    /// Take an RA role away (RA Managers at that organisation). The person's RA access goes
    /// at their next call if it was their last RA role.
    RemoveRaRole {
        /// UID.
        uid: String,
        /// ODS code where the role is held.
        #[arg(long)]
        org: String,
        /// The role: ra-manager, ra-agent, sponsor, id-checker,
        /// local-smartcard-administrator or service-manager.
        #[arg(long)]
        role: String,
    },
    /// Give a person an RA role at an organisation (RA Managers).
    RaRole {
        /// UID.
        uid: String,
        /// ODS code.
        #[arg(long)]
        org: String,
        /// ra-manager, ra-agent, sponsor, id-checker, local-smartcard-administrator or
        /// service-manager.
        #[arg(long)]
        role: String,
        /// For a sponsor: an NRBAC role code it may assign (repeatable).
        #[arg(long = "assignable-role")]
        assignable_roles: Vec<String>,
        /// For a sponsor: an activity code it may put into the positions it assigns
        /// (repeatable; never a prescribing activity).
        #[arg(long = "assignable-activity")]
        assignable_activities: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
struct QrFiles {
    /// Also write the activation QR code as a PNG file.
    #[arg(long, value_name = "FILE")]
    qr_png: Option<PathBuf>,
    /// Also write the activation QR code as an SVG file.
    #[arg(long, value_name = "FILE")]
    qr_svg: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum CardCommand {
    /// Issue a virtual smartcard; prints the one-time activation (code, link, QR code).
    Issue {
        /// UID.
        uid: String,
        /// ODS code of your organisation issuing it.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        qr: QrFiles,
    },
    /// Show a card.
    Show {
        /// Card id.
        id: String,
    },
    /// Give a pending card a new activation (the old one stops working).
    Reactivate {
        /// Card id.
        id: String,
        #[command(flatten)]
        qr: QrFiles,
    },
    /// Cancel a card: revokes its certificates and publishes a new CRL carrying the reason.
    #[command(after_help = "Which reason code:\n  \
key-compromise          lost or stolen phone; passcode or key possibly known to others.\n                          \
Add --invalidity-date with the last time the phone was known safe:\n                          \
signatures made after it are rejected (without it: all of them).\n  \
affiliation-changed     moved to another organisation, changed name.\n  \
superseded              replaced by a new card while the old phone is still in hand.\n  \
cessation-of-operation  left, or no longer needs a card.")]
    Cancel {
        /// Card id.
        id: String,
        /// The RFC 5280 reason, carried in the CRL (see below).
        #[arg(long, value_enum)]
        reason_code: ReasonCode,
        /// Why, in words (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// key-compromise only: since when the phone or key may have been in other hands
        /// (RFC 3339, e.g. 2026-03-01T14:30:00Z; not in the future).
        #[arg(long, value_name = "RFC3339")]
        invalidity_date: Option<String>,
    },
    /// Move a card to a new phone (changed or lost): prints a new one-time activation for the
    /// same card.
    #[command(after_help = "What happens to the old phone:\n  \
without --lost  it keeps working until the new phone enrols with the new activation; then its\n                  \
certificates are revoked (superseded), its sessions end and it is refused.\n  \
--lost          at once: its certificates are revoked (key-compromise, published in the CRL),\n                  \
its sessions end, and it is refused from now on; the card waits for the new phone.\n\
The card keeps its id and its history (phones and certificates: `vsc ra card show`).")]
    Replace {
        /// Card id.
        id: String,
        /// The old phone is lost or stolen (or may be in other hands): stop it now.
        #[arg(long)]
        lost: bool,
        /// Why, in words (kept in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        qr: QrFiles,
    },
    /// Unlock a passcode-locked card: prints a one-time unlock code for the holder's phone.
    Unlock {
        /// Card id.
        id: String,
        #[command(flatten)]
        qr: QrFiles,
    },
    /// Make an active card's certificate renewal due now, whatever its renewal window says: the
    /// holder's phone renews at its next `vsc authenticator renew`.
    RenewNow {
        /// Card id.
        id: String,
        /// Why, in words (kept in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// The stored RA session.
#[derive(Debug, Serialize, Deserialize)]
struct Session {
    token: String,
    uid: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

fn session_path(home: &Path) -> PathBuf {
    home.join("ra-session.json")
}

fn save_session(home: &Path, session: &Session) -> Result<()> {
    let path = session_path(home);
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec(session)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn load_session(home: &Path) -> Result<Session> {
    let path = session_path(home);
    let session: Session = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .context("not signed in: run `vsc ra login` first")?;
    if session.expires_at <= OffsetDateTime::now_utc() {
        bail!("your RA session has expired: run `vsc ra login` again");
    }
    Ok(session)
}

struct Console {
    client: Client,
    token: String,
    json: bool,
}

impl Console {
    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        Ok(self.client.get_json(path, Some(&self.token)).await?)
    }
    async fn post<T: Serialize, R: DeserializeOwned>(&self, path: &str, body: &T) -> Result<R> {
        Ok(self.client.post_json(path, body, Some(&self.token)).await?)
    }
    fn print<T: Serialize>(&self, value: &T, human: impl FnOnce(&T)) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human(value);
        }
        Ok(())
    }
}

fn print_person(p: &Person) {
    println!("{} {}  UID {}", p.given_name, p.family_name, p.uid);
    if let Some(e) = &p.email {
        println!("  email        {e}");
    }
    println!("  registered   {}", p.registered_by);
    for c in &p.identity_checks {
        let recorder = c
            .recorded_by
            .as_deref()
            .map(|r| format!(", recorded by {r}"))
            .unwrap_or_default();
        println!(
            "  identity     level {} by {} at {} ({}){recorder}",
            c.level,
            c.checked_by,
            c.organisation,
            c.evidence.join(", ")
        );
    }
    for pos in &p.positions {
        println!(
            "  position     {} {} at {} [{}]  id {}",
            pos.role_code,
            pos.role_name,
            pos.organisation,
            pos.activities.join(" "),
            pos.id
        );
    }
    for r in &p.ra_roles {
        let extra = if r.assignable_roles.is_empty() {
            String::new()
        } else if r.assignable_activities.is_empty() {
            format!(" (may assign {})", r.assignable_roles.join(", "))
        } else {
            format!(
                " (may assign {} with {})",
                r.assignable_roles.join(", "),
                r.assignable_activities.join(" ")
            )
        };
        println!("  RA role      {} at {}{extra}", r.role, r.organisation);
    }
    for c in &p.cards {
        println!("  card         {} {} ({})", c.id, c.state, c.custody);
    }
}

fn print_position_request(r: &PositionRequest) {
    println!(
        "position request {}  {}  UID {} (registered at {})",
        r.id, r.state, r.uid, r.home_organisation
    );
    println!(
        "  position     {} {} at {} [{}]",
        r.role_code,
        r.role_name,
        r.organisation,
        r.activities.join(" ")
    );
    println!("  requested by {}", r.requested_by);
    if let Some(d) = &r.decided_by {
        println!("  decided by   {d}");
    }
}

fn print_card(c: &Card) {
    println!(
        "card {}  {}  holder {}  issued by {}",
        c.id, c.state, c.uid, c.issued_by
    );
    if let Some(d) = &c.device_id {
        println!("  device       {d}");
    }
    if let Some(w) = &c.renewal {
        println!(
            "  renewal      {} (certificates expire {}, window opens {}{})",
            if w.due {
                "DUE: the phone should run `vsc authenticator renew`"
            } else {
                "not due"
            },
            w.not_after.date(),
            w.opens_at.date(),
            if w.forced { "; made due by an RA" } else { "" }
        );
    }
    if let Some(r) = &c.pending_replacement {
        println!(
            "  replacement  waiting for the new phone ({}), asked by {} on {}: {}",
            if r.lost {
                "old phone reported lost and stopped"
            } else {
                "old phone works until then"
            },
            r.requested_by,
            r.requested_at.date(),
            r.reason
        );
    }
    // The card's history: every phone it has been on, every certificate it has had.
    for d in &c.devices {
        let until = match (&d.unbound_at, &d.unbound_reason) {
            (Some(at), reason) => format!(
                "until {} ({})",
                at.date(),
                reason.as_deref().unwrap_or("unbound")
            ),
            (None, _) => "holds the card now".to_owned(),
        };
        println!(
            "  phone        {} ({} {}) from {} {until}",
            d.device_id,
            d.platform,
            d.model,
            d.bound_at.date()
        );
    }
    for cert in &c.certificates {
        let state = match (&cert.revoked_at, &cert.revocation_reason) {
            (Some(at), reason) => format!(
                "REVOKED {} ({})",
                at.date(),
                reason.as_deref().unwrap_or("unspecified")
            ),
            (None, _) if cert.revoked => "REVOKED".to_owned(),
            (None, _) => "valid".to_owned(),
        };
        println!(
            "  certificate  {} serial {} until {} {state}",
            cert.usage,
            cert.serial,
            cert.not_after.date()
        );
    }
}

fn print_code(what: &str, r: &CardWithCode, files: &QrFiles) -> Result<()> {
    println!("{what} for card {} (holder UID {}):", r.card.id, r.card.uid);
    println!();
    println!("  code            {}", r.code.code);
    println!("  link            {}", r.code.url);
    println!("  CA fingerprint  {}", r.code.ca_fingerprint);
    println!(
        "  expires         {}",
        r.code
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)?
    );
    if let Ok(code) = qr::terminal(&r.code.url) {
        println!("{code}");
    }
    write_qr_files(&r.code.url, files)?;
    println!("Give the code to the card holder in person; it works once.");
    Ok(())
}

fn write_qr_files(url: &str, files: &QrFiles) -> Result<()> {
    if let Some(p) = &files.qr_png {
        qr::write_png(url, p)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &files.qr_svg {
        qr::write_svg(url, p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// Runs `vsc ra`.
pub async fn run(args: RaArgs) -> Result<ExitCode> {
    let home =
        Home::open(&args.home).with_context(|| format!("cannot use {}", args.home.display()))?;
    if let RaCommand::Login = args.command {
        let passcode = passcode::ask("Passcode")?;
        let login = vsc_authenticator::ra_login(&home, &passcode).await?;
        let session = Session {
            token: login.token.clone(),
            uid: login.person.uid.clone(),
            expires_at: login.expires_at,
        };
        save_session(&args.home, &session)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"uid": login.person.uid, "expires_at": login.expires_at.format(&time::format_description::well_known::Rfc3339)?, "ra_roles": login.person.ra_roles})
            );
        } else {
            println!(
                "Signed in as {} {} (UID {}) until {}",
                login.person.given_name,
                login.person.family_name,
                login.person.uid,
                login
                    .expires_at
                    .format(&time::format_description::well_known::Rfc3339)?
            );
            for r in &login.person.ra_roles {
                println!("  {} at {}", r.role, r.organisation);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let session = load_session(&args.home)?;
    let console = Console {
        client: Client::for_home(&home)?,
        token: session.token,
        json: args.json,
    };
    match args.command {
        RaCommand::Login => {}
        RaCommand::Workstation(command) => {
            return crate::ra_workstation::run(command, &console.client, &console.token, args.json)
                .await;
        }
        RaCommand::Client(command) => {
            return crate::ra_client::run(command, &console.client, &console.token, args.json)
                .await;
        }
        RaCommand::Licences(command) => {
            return crate::ra_licences::run(command, &console.client, &console.token, args.json)
                .await;
        }
        RaCommand::Versions(command) => {
            return crate::ra_versions::run(command, &console.client, &console.token, args.json)
                .await;
        }
        RaCommand::BulkIssue(command) => {
            return crate::ra_bulk::run(command, &console.client, &console.token, args.json).await;
        }
        RaCommand::Whoami => {
            let me: Person = console.get(routes::RA_ME).await?;
            console.print(&me, print_person)?;
        }
        RaCommand::Org(OrgCommand::List) => {
            let orgs: Vec<Organisation> = console.get(routes::RA_ORGANISATIONS).await?;
            console.print(&orgs, |orgs| {
                for o in orgs {
                    println!(
                        "{:<8} {}{}",
                        o.ods_code,
                        o.name,
                        if o.national { " (national)" } else { "" }
                    );
                }
            })?;
        }
        RaCommand::Org(OrgCommand::Create { ods, name }) => {
            let org: Organisation = console
                .post(
                    routes::RA_ORGANISATIONS,
                    &CreateOrganisation {
                        ods_code: ods,
                        name,
                    },
                )
                .await?;
            console.print(&org, |o| println!("Registered {} {}", o.ods_code, o.name))?;
        }
        RaCommand::Org(OrgCommand::SessionLimits {
            ods,
            idle_minutes,
            max_hours,
        }) => {
            let limits = vsc_proto::SessionLimits {
                idle_seconds: idle_minutes * 60,
                max_seconds: max_hours * 3600,
            };
            let set: vsc_proto::SessionLimits = console
                .post(
                    &routes::fill(routes::RA_ORGANISATION_SESSION_LIMITS, path_segment(&ods)?),
                    &limits,
                )
                .await?;
            console.print(&set, |l| {
                println!(
                    "Sessions at {ods} now end after {} idle minutes and at most {} hours.",
                    l.idle_seconds / 60,
                    l.max_seconds / 3600
                );
            })?;
        }
        RaCommand::Person(PersonCommand::Create {
            given,
            family,
            email,
            org,
        }) => {
            let p: Person = console
                .post(
                    routes::RA_PEOPLE,
                    &CreatePerson {
                        given_name: given,
                        family_name: family,
                        email,
                        organisation: org,
                    },
                )
                .await?;
            console.print(&p, |p| {
                println!("Created {} {} with UID {}", p.given_name, p.family_name, p.uid);
                println!("Next: record an identity check: vsc ra person id-check {} --evidence passport --evidence proof-of-address --org {}", p.uid, p.registered_by);
            })?;
        }
        RaCommand::Person(PersonCommand::Show { uid }) => {
            let p: Person = console
                .get(&routes::fill(routes::RA_PERSON, path_segment(&uid)?))
                .await?;
            console.print(&p, print_person)?;
        }
        RaCommand::Person(PersonCommand::IdCheck {
            uid,
            evidence,
            level,
            org,
        }) => {
            let p: Person = console
                .post(
                    &routes::fill(routes::RA_PERSON_IDENTITY_CHECKS, path_segment(&uid)?),
                    &RecordIdentityCheck {
                        evidence,
                        level,
                        organisation: org,
                    },
                )
                .await?;
            console.print(&p, print_person)?;
        }
        RaCommand::Person(PersonCommand::Position {
            uid,
            org,
            role_code,
            role_name,
            activities,
        }) => {
            let p: Person = console
                .post(
                    &routes::fill(routes::RA_PERSON_POSITIONS, path_segment(&uid)?),
                    &AssignPosition {
                        organisation: org,
                        role_code,
                        role_name,
                        activities,
                    },
                )
                .await?;
            console.print(&p, print_person)?;
        }
        RaCommand::Person(PersonCommand::RaRole {
            uid,
            org,
            role,
            assignable_roles,
            assignable_activities,
        }) => {
            let p: Person = console
                .post(
                    &routes::fill(routes::RA_PERSON_RA_ROLES, path_segment(&uid)?),
                    &RaRoleGrant {
                        role,
                        organisation: org,
                        assignable_roles,
                        assignable_activities,
                    },
                )
                .await?;
            console.print(&p, print_person)?;
        }
        RaCommand::Person(PersonCommand::EndPosition { id }) => {
            let p: Person = console
                .post(
                    &routes::fill(routes::RA_POSITION_END, path_segment(&id)?),
                    &serde_json::json!({}),
                )
                .await?;
            console.print(&p, print_person)?;
        }
        RaCommand::Person(PersonCommand::RemoveRaRole { uid, org, role }) => {
            let p: Person = console
                .post(
                    &routes::fill(routes::RA_PERSON_RA_ROLES_REMOVE, path_segment(&uid)?),
                    &RemoveRaRole {
                        role,
                        organisation: org,
                    },
                )
                .await?;
            console.print(&p, print_person)?;
        }
        RaCommand::Card(CardCommand::Issue { uid, org, qr }) => {
            let r: CardWithCode = console
                .post(
                    &routes::fill(routes::RA_PERSON_CARDS, path_segment(&uid)?),
                    &IssueCard { organisation: org },
                )
                .await?;
            if console.json {
                write_qr_files(&r.code.url, &qr)?;
            }
            console.print(&r, |r| {
                let _ = print_code("Activation", r, &qr);
            })?;
        }
        RaCommand::Card(CardCommand::Show { id }) => {
            let c: Card = console
                .get(&routes::fill(routes::RA_CARD, path_segment(&id)?))
                .await?;
            console.print(&c, print_card)?;
        }
        RaCommand::Card(CardCommand::Reactivate { id, qr }) => {
            let r: CardWithCode = console
                .post(
                    &routes::fill(routes::RA_CARD_ACTIVATION, path_segment(&id)?),
                    &serde_json::json!({}),
                )
                .await?;
            if console.json {
                write_qr_files(&r.code.url, &qr)?;
            }
            console.print(&r, |r| {
                let _ = print_code("New activation", r, &qr);
            })?;
        }
        RaCommand::Card(CardCommand::Cancel {
            id,
            reason_code,
            reason,
            invalidity_date,
        }) => {
            if invalidity_date.is_some() && reason_code != ReasonCode::KeyCompromise {
                bail!("--invalidity-date goes only with --reason-code key-compromise");
            }
            let c: Card = console
                .post(
                    &routes::fill(routes::RA_CARD_CANCEL, path_segment(&id)?),
                    &CancelCard {
                        reason_code: Some(reason_code.wire().to_owned()),
                        reason,
                        invalidity_date,
                    },
                )
                .await?;
            console.print(&c, |c| {
                println!(
                    "Cancelled card {}; its certificates are revoked and the CRL is republished.",
                    c.id
                );
                print_card(c);
            })?;
        }
        RaCommand::PositionRequest(PositionRequestCommand::Create {
            uid,
            org,
            role_code,
            role_name,
            activities,
        }) => {
            let r: PositionRequest = console
                .post(
                    routes::RA_POSITION_REQUESTS,
                    &RequestPosition {
                        uid: path_segment(&uid)?.to_owned(),
                        position: AssignPosition {
                            organisation: org,
                            role_code,
                            role_name,
                            activities,
                        },
                    },
                )
                .await?;
            console.print(&r, |r| {
                print_position_request(r);
                println!(
                    "Ask an RA Manager or RA Agent of {} to approve it: vsc ra position-request approve {}",
                    r.home_organisation, r.id
                );
            })?;
        }
        RaCommand::PositionRequest(PositionRequestCommand::List) => {
            let list: Vec<PositionRequest> = console.get(routes::RA_POSITION_REQUESTS).await?;
            console.print(&list, |list| {
                if list.is_empty() {
                    println!("No pending position requests.");
                }
                for r in list {
                    print_position_request(r);
                }
            })?;
        }
        RaCommand::PositionRequest(PositionRequestCommand::Approve { id, note }) => {
            let r: PositionRequest = console
                .post(
                    &routes::fill(routes::RA_POSITION_REQUEST_APPROVE, path_segment(&id)?),
                    &DecidePositionRequest { note },
                )
                .await?;
            console.print(&r, print_position_request)?;
        }
        RaCommand::PositionRequest(PositionRequestCommand::Decline { id, note }) => {
            let r: PositionRequest = console
                .post(
                    &routes::fill(routes::RA_POSITION_REQUEST_DECLINE, path_segment(&id)?),
                    &DecidePositionRequest { note },
                )
                .await?;
            console.print(&r, print_position_request)?;
        }
        RaCommand::Card(CardCommand::Replace {
            id,
            lost,
            reason,
            qr,
        }) => {
            let r: CardWithCode = console
                .post(
                    &routes::fill(routes::RA_CARD_REPLACE, path_segment(&id)?),
                    &ReplaceCard { lost, reason },
                )
                .await?;
            if console.json {
                write_qr_files(&r.code.url, &qr)?;
            }
            console.print(&r, |r| {
                let _ = print_code("Replacement activation", r, &qr);
                println!();
                if lost {
                    println!(
                        "The old phone is stopped now: its certificates are revoked (key-compromise) and in the CRL, its sessions have ended, and it is refused from now on."
                    );
                } else {
                    println!(
                        "The old phone keeps working until the new phone enrols with this activation; then its certificates are revoked (superseded), its sessions end and it is refused."
                    );
                }
                println!(
                    "On the new phone: vsc authenticator enrol '{}'",
                    r.code.url
                );
                println!();
                print_card(&r.card);
            })?;
        }
        RaCommand::Card(CardCommand::Unlock { id, qr }) => {
            let r: CardWithCode = console
                .post(
                    &routes::fill(routes::RA_CARD_UNLOCK, path_segment(&id)?),
                    &serde_json::json!({}),
                )
                .await?;
            if console.json {
                write_qr_files(&r.code.url, &qr)?;
            }
            console.print(&r, |r| {
                let _ = print_code("Unlock code", r, &qr);
                println!(
                    "On the holder's phone: vsc authenticator unlock '{}'",
                    r.code.url
                );
            })?;
        }
        RaCommand::Card(CardCommand::RenewNow { id, reason }) => {
            let w: vsc_proto::renewal::RenewalWindow = console
                .post(
                    &routes::fill(routes::RA_CARD_RENEW_NOW, path_segment(&id)?),
                    &vsc_proto::renewal::RenewNow { reason },
                )
                .await?;
            console.print(&w, |w| {
                println!(
                    "Renewal of card {id} is due now (its certificates expire {}); the holder renews with: vsc authenticator renew",
                    w.not_after.date()
                );
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A UID or card id placed in a URL path: letters and digits only, so nothing can escape the path.
fn path_segment(s: &str) -> Result<&str> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("'{s}' is not a UID or card id (letters and digits only)");
    }
    Ok(t)
}

//! `vsc ra versions`: the approved versions of the phone's authenticator app and of the
//! workstation's identity agent, and the versions in use.
//!
//! Only assured versions may be used: the server refuses a phone or an agent whose version the
//! policy does not approve, at enrolment and at every sign-in, with a message telling the person
//! to update. National RA Managers change the policy (`allow`, `deny`, `remove`); every RA may
//! `list` it with the versions in use and the cards on each.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use vsc_https::Client;
use vsc_proto::routes;
use vsc_proto::versions::{
    SetVersionRule, VersionInUse, VersionRuleChanged, VersionRuleInfo, VersionsReport, kind,
};

/// Which client software a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// The vsc authenticator app on people's phones.
    Authenticator,
    /// The identity agent on workstations (`vsc agent`).
    Agent,
}

impl ClientKind {
    fn wire(self) -> &'static str {
        match self {
            ClientKind::Authenticator => kind::AUTHENTICATOR,
            ClientKind::Agent => kind::AGENT,
        }
    }
}

/// What `allow` and `deny` take.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// authenticator (the phone's app) or agent (the workstation's identity agent).
    #[arg(value_enum)]
    client: ClientKind,
    /// The versions: `1.4.2` (exactly that version), `1.4` or `1.4.x` (the series), or a semver
    /// requirement such as `>=1.4.0, <1.6.0` (quote it for the shell).
    #[arg(value_name = "VERSIONS")]
    versions: String,
    /// Only for this platform (authenticator: ios, android, vsc-cli) or agent product
    /// (vsc-agent); by default every platform.
    #[arg(long, value_name = "NAME")]
    platform: Option<String>,
    /// Why, for the record (an assurance reference, the defect of a withdrawn release); at most
    /// 200 characters.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

impl RuleArgs {
    fn request(self) -> SetVersionRule {
        SetVersionRule {
            client: self.client.wire().to_owned(),
            versions: self.versions,
            platform: self.platform,
            reason: self.reason,
        }
    }
}

const RULES_HELP: &str = "\
How rules decide: a version is approved when at least one allow rule of its client kind \
matches it and no deny rule does (a deny always wins). A rule may be limited to one platform \
(--platform). With no allow rule a kind would be refused everywhere, so the server keeps at \
least one. A rule for the same client, platform and versions as an existing one replaces it.\n\n\
What is refused: a phone whose app version is not approved cannot enrol, open its device \
channel, approve sign-in or signing requests or set its card PIN (it may still decline); an \
identity agent that is not approved cannot open sign-in requests. Both get an error that names \
the approved versions and says to update. Other nodes of the instance apply a change within a \
few seconds (the list shows how many).\n\n\
Who: national RA Managers (an RA Manager at the national organisation) change the policy; every \
RA may list it.";

/// `vsc ra versions …`.
#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// The policy and the versions in use, with the cards on each.
    #[command(
        long_about = "Show the approved-versions policy (each rule with who set it and when) and \
the versions in use: for the authenticator, how many phones with a live card run each version \
and which cards they hold; for the identity agent, how many workstations last reported each \
version and the cards last signed in there. Each version in use is marked approved, \
not-approved or withdrawn (a deny rule matched).\n\nAny RA may list.",
        after_help = "Examples:\n  vsc ra versions list\n  vsc ra versions list --json | jq '.in_use[] | select(.decision != \"approved\")'"
    )]
    List,
    /// Approve versions of the authenticator app or the identity agent.
    #[command(
        long_about = "Approve versions of the authenticator app or the identity agent, for \
example after NHS assurance of a new release.",
        after_help = format!("Examples:\n  \
vsc ra versions allow authenticator 1.5 --reason \"assured 2025-03, ref SCAL-118\"\n  \
vsc ra versions allow agent '>=1.4.0, <1.6.0'\n  \
vsc ra versions allow authenticator 3.4.x --platform ios\n\n{RULES_HELP}")
    )]
    Allow(RuleArgs),
    /// Withdraw versions (a deny wins over every allow): phones and agents running them are
    /// refused at once.
    #[command(
        long_about = "Withdraw versions of the authenticator app or the identity agent, for \
example a release with a defect. A deny rule wins over every allow rule, so `allow 1.4` and \
`deny 1.4.2` approve every 1.4 release but 1.4.2. The answer lists the versions in use that are \
now refused, with their cards, so you can tell the people concerned to update.",
        after_help = format!("Examples:\n  \
vsc ra versions deny authenticator 1.4.2 --reason \"defect INC-2231: update to 1.4.3\"\n  \
vsc ra versions deny agent '<1.3.0'\n\n{RULES_HELP}")
    )]
    Deny(RuleArgs),
    /// Remove one rule by its id (as `list` shows it).
    #[command(
        long_about = "Remove one rule of the policy by its id (the first column of `vsc ra \
versions list`). The last allow rule of a client kind cannot be removed: allow the versions that \
should stay approved first. To withdraw versions, prefer `deny`, which keeps the record of why.",
        after_help = "Example:\n  vsc ra versions remove 7"
    )]
    Remove {
        /// The rule's id.
        id: u64,
    },
}

fn when(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

fn rule_line(r: &VersionRuleInfo) -> String {
    let mut line = format!(
        "{:>4}  {:<13} {:<5} {:<22} {:<10} {} {}",
        r.id,
        r.client,
        r.verdict,
        r.versions,
        r.platform.as_deref().unwrap_or("(all)"),
        r.set_by,
        when(&r.set_at),
    );
    if let Some(reason) = &r.reason {
        line.push_str(&format!("  \"{reason}\""));
    }
    line
}

fn in_use_line(v: &VersionInUse) -> String {
    let what = if v.client == kind::AUTHENTICATOR {
        "phones"
    } else {
        "workstations"
    };
    let platform = if v.platform.is_empty() {
        "-"
    } else {
        v.platform.as_str()
    };
    let mut cards = v.cards.join(", ");
    if v.cards_total > v.cards.len() as u64 {
        cards.push_str(&format!(
            ", … ({} more)",
            v.cards_total - v.cards.len() as u64
        ));
    }
    format!(
        "  {:<13} {:<10} {:<12} {:<12} {:>5} {what:<12} cards: {}",
        v.client,
        platform,
        v.version,
        v.decision,
        v.clients,
        if cards.is_empty() { "-".into() } else { cards },
    )
}

fn print_report(r: &VersionsReport) {
    println!(
        "Approved authenticator versions: {}",
        r.approved_authenticator
    );
    println!("Approved agent versions:         {}", r.approved_agent);
    println!();
    println!("Rules (a deny wins over every allow):");
    println!(
        "{:>4}  {:<13} {:<5} {:<22} {:<10} set by / at",
        "id", "client", "rule", "versions", "platform"
    );
    for rule in &r.rules {
        println!("{}", rule_line(rule));
    }
    println!();
    if r.in_use.is_empty() {
        println!("No versions in use yet (no enrolled phone with a live card, no agent sign-in).");
    } else {
        println!("In use:");
        for v in &r.in_use {
            println!("{}", in_use_line(v));
        }
    }
    println!();
    println!(
        "Changes reach every node of the instance within {} seconds.",
        r.cache_seconds
    );
}

fn print_changed(c: &VersionRuleChanged, what: &str) {
    println!("{what}:");
    println!("{}", rule_line(&c.rule));
    if let Some(old) = &c.replaced
        && old.verdict != c.rule.verdict
    {
        println!(
            "  (replaces the {} rule set by {} at {})",
            old.verdict,
            old.set_by,
            when(&old.set_at)
        );
    }
    if c.now_refused.is_empty() {
        println!("Every version in use is approved.");
    } else {
        println!("Versions in use that are now refused (tell these people to update):");
        for v in &c.now_refused {
            println!("{}", in_use_line(v));
        }
    }
    println!(
        "Other nodes apply the change within {} seconds.",
        c.cache_seconds
    );
}

/// Runs a `vsc ra versions` command with the RA's session `token`.
pub async fn run(
    command: VersionsCommand,
    client: &Client,
    token: &str,
    json: bool,
) -> Result<ExitCode> {
    match command {
        VersionsCommand::List => {
            let report: VersionsReport = client.get_json(routes::RA_VERSIONS, Some(token)).await?;
            print(json, &report, print_report)?;
        }
        VersionsCommand::Allow(args) => {
            let changed: VersionRuleChanged = client
                .post_json(routes::RA_VERSIONS_ALLOW, &args.request(), Some(token))
                .await?;
            print(json, &changed, |c| print_changed(c, "Allowed"))?;
        }
        VersionsCommand::Deny(args) => {
            let changed: VersionRuleChanged = client
                .post_json(routes::RA_VERSIONS_DENY, &args.request(), Some(token))
                .await?;
            print(json, &changed, |c| print_changed(c, "Denied"))?;
        }
        VersionsCommand::Remove { id } => {
            if id == 0 {
                bail!("rule ids start at 1: `vsc ra versions list` shows them");
            }
            let changed: VersionRuleChanged = client
                .post_json(
                    &routes::fill(routes::RA_VERSION_RULE_REMOVE, &id.to_string()),
                    &serde_json::json!({}),
                    Some(token),
                )
                .await?;
            print(json, &changed, |c| print_changed(c, "Removed"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `vsc ra workstation`: registering workstations with an organisation, listing and revoking
//! them, and the organisation's policy on unregistered workstations.
//!
//! An RA Manager, RA Agent or Local Smartcard Administrator of the organisation (or a national
//! RA Manager) issues a one-time code; the workstation's administrator runs
//! `vsc agent enrol --server URL --ca-fingerprint FP --code CODE --name NAME` on it.

use std::process::ExitCode;
use vsc_proto::routes;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use vsc_https::Client;
use vsc_proto::workstation::{
    IssueWorkstationCode, WorkstationCode, WorkstationInfo, WorkstationPolicy,
};

/// `vsc ra workstation …`.
#[derive(Debug, Subcommand)]
pub enum WorkstationCommand {
    /// Issue a one-time registration code for a workstation of an organisation (24 hours,
    /// single use, 5 wrong tries); the workstation registers with `vsc agent enrol`.
    Code {
        /// ODS code of the organisation the workstation belongs to.
        #[arg(long)]
        org: String,
        /// The name the workstation must register with (as phones will show it).
        #[arg(long)]
        name: Option<String>,
    },
    /// List an organisation's registered workstations.
    List {
        /// ODS code.
        #[arg(long)]
        org: String,
    },
    /// Revoke a workstation: it can no longer open sign-in requests or collect tickets, and
    /// the sessions opened from it end.
    Revoke {
        /// Workstation id (from `vsc ra workstation list`).
        id: String,
    },
    /// Show or set an organisation's workstation policy (RA Managers set it): whether
    /// workstations that are not registered may open sign-in requests for its cards (default:
    /// no), the unlock grace period (default: off) and fast user switching (default: off).
    /// Settings not given keep their current value.
    Policy {
        /// ODS code (or `--org ODS`).
        #[arg(
            value_name = "ODS",
            required_unless_present = "org",
            conflicts_with = "org"
        )]
        ods: Option<String>,
        /// ODS code.
        #[arg(long)]
        org: Option<String>,
        /// `true` to allow unregistered workstations (phones then mark their requests
        /// "UNREGISTERED WORKSTATION"), `false` to refuse them.
        #[arg(long, value_name = "true|false")]
        allow_unregistered_workstations: Option<bool>,
        /// Minutes after a lock within which a workstation re-opens the locked session without a
        /// new phone approval: 0 (off) to 15.
        #[arg(long, value_name = "N")]
        unlock_grace_minutes: Option<u32>,
        /// `on` to let a second person sign in on a locked workstation (the first person's
        /// session stays locked for them), `off` to end the first session instead.
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        fast_user_switching: Option<bool>,
    },
}

/// `on`/`off` (also `true`/`false`) for a switch.
fn on_off(s: &str) -> std::result::Result<bool, String> {
    match s.trim() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("`{other}`: say on or off")),
    }
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

fn when(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Runs one `vsc ra workstation` command with the RA's session `token`.
pub async fn run(
    command: WorkstationCommand,
    client: &Client,
    token: &str,
    json: bool,
) -> Result<ExitCode> {
    match command {
        WorkstationCommand::Code { org, name } => {
            let code: WorkstationCode = client
                .post_json(
                    routes::RA_WORKSTATION_CODES,
                    &IssueWorkstationCode {
                        organisation: org,
                        name,
                    },
                    Some(token),
                )
                .await?;
            print(json, &code, |c| {
                println!("Registration code: {}", c.code);
                println!(
                    "For a workstation of {}{}; single use, valid until {}.",
                    c.organisation,
                    c.name
                        .as_ref()
                        .map(|n| format!(" named {n}"))
                        .unwrap_or_default(),
                    when(&c.expires_at)
                );
                println!("On the workstation run:");
                println!(
                    "  vsc agent enrol --server {} --ca-fingerprint {} --code {} --name {}",
                    c.server,
                    c.ca_fingerprint,
                    c.code,
                    c.name.as_deref().unwrap_or("NAME")
                );
            })?;
        }
        WorkstationCommand::List { org } => {
            let list: Vec<WorkstationInfo> = client
                .get_json(
                    &format!(
                        "{}?organisation={}",
                        routes::RA_WORKSTATIONS,
                        urlencode(&org)
                    ),
                    Some(token),
                )
                .await?;
            print(json, &list, |list| {
                if list.is_empty() {
                    println!("No workstations are registered with {org}.");
                }
                for w in list {
                    println!(
                        "{}  {:<24} {:<8} registered {} by {}{}",
                        w.id,
                        w.name,
                        w.state,
                        when(&w.registered_at),
                        w.registered_by,
                        w.revoked_at
                            .map(|t| format!(", revoked {}", when(&t)))
                            .unwrap_or_default()
                    );
                }
            })?;
        }
        WorkstationCommand::Revoke { id } => {
            let w: WorkstationInfo = client
                .post_json(
                    &routes::fill(routes::RA_WORKSTATION_REVOKE, &urlencode(&id)),
                    &serde_json::json!({}),
                    Some(token),
                )
                .await?;
            print(json, &w, |w| {
                println!(
                    "Workstation {} ({}, {}) is revoked; its sessions have ended.",
                    w.name, w.id, w.organisation
                );
            })?;
        }
        WorkstationCommand::Policy {
            ods,
            org,
            allow_unregistered_workstations,
            unlock_grace_minutes,
            fast_user_switching,
        } => {
            let org = ods.or(org).unwrap_or_default();
            let path = routes::fill(routes::RA_ORGANISATION_WORKSTATION_POLICY, &urlencode(&org));
            let current: WorkstationPolicy = client.get_json(&path, Some(token)).await?;
            let changes = allow_unregistered_workstations.is_some()
                || unlock_grace_minutes.is_some()
                || fast_user_switching.is_some();
            let policy: WorkstationPolicy = if changes {
                // The whole policy is sent: what was not given keeps its current value.
                let wanted = WorkstationPolicy {
                    allow_unregistered_workstations: allow_unregistered_workstations
                        .unwrap_or(current.allow_unregistered_workstations),
                    unlock_grace_minutes: unlock_grace_minutes
                        .unwrap_or(current.unlock_grace_minutes),
                    fast_user_switching: fast_user_switching.unwrap_or(current.fast_user_switching),
                };
                client.post_json(&path, &wanted, Some(token)).await?
            } else {
                current
            };
            print(json, &policy, |p| {
                match p.unlock_grace_minutes {
                    0 => {
                        println!("{org}: no unlock grace period (unlocking always asks the phone).")
                    }
                    n => println!(
                        "{org}: a locked workstation re-opens without the phone within {n} minute(s) of the lock."
                    ),
                }
                if p.fast_user_switching {
                    println!(
                        "{org}: fast user switching is on (a second person may sign in on a locked workstation; the first session stays locked)."
                    );
                } else {
                    println!(
                        "{org}: fast user switching is off (a second sign-in ends the first session)."
                    );
                }
                if p.allow_unregistered_workstations {
                    println!(
                        "{org}: unregistered workstations MAY open sign-in requests for its cards (phones mark them as unregistered)."
                    );
                } else {
                    println!(
                        "{org}: only registered workstations may open sign-in requests for its cards."
                    );
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a path segment or query value (ODS codes and ids are plain, but a typo must
/// not change the path).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

//! `vsc authenticator`: the phone app's core with a terminal front. State (device id, the
//! encrypted keystore, the enrolment) lives in `--home`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vsc_authenticator::Home;

use crate::passcode;

/// `vsc authenticator`.
#[derive(Debug, Args)]
#[command(
    after_help = "Non-interactive use: give the passcode in VSC_PASSCODE or as one line on standard input."
)]
pub struct AuthenticatorArgs {
    /// The app's state directory (keystore, device id, enrolment).
    #[arg(long, global = true, env = "VSC_HOME", default_value_os_t = default_home())]
    pub home: PathBuf,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AuthenticatorCommand,
}

/// `$HOME/.vsc/authenticator`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".vsc")
        .join("authenticator")
}

#[derive(Debug, Subcommand)]
enum AuthenticatorCommand {
    /// Enrol this device with an activation link (or a code plus --server and --ca-fingerprint):
    /// generates the keys, sets the passcode, receives the certificates.
    Enrol {
        /// The activation link or code from your RA.
        activation: String,
        /// Server address, when giving a bare code.
        #[arg(long)]
        server: Option<url::Url>,
        /// The server's CA fingerprint (64 hex digits), when giving a bare code.
        #[arg(long)]
        ca_fingerprint: Option<String>,
    },
    /// Set a new passcode with the unlock code your RA or Local Smartcard Administrator gave you.
    Unlock {
        /// The unlock link or code.
        code: String,
    },
    /// Show this device's card and keystore state.
    Status,
}

/// Runs `vsc authenticator`.
pub async fn run(args: AuthenticatorArgs) -> Result<ExitCode> {
    let home =
        Home::open(&args.home).with_context(|| format!("cannot use {}", args.home.display()))?;
    match args.command {
        AuthenticatorCommand::Enrol {
            activation,
            server,
            ca_fingerprint,
        } => {
            let passcode = passcode::ask_new("Choose a passcode (6 or more digits)")?;
            let done = vsc_authenticator::enrol(
                &home,
                &activation,
                server,
                ca_fingerprint,
                &passcode,
                false,
            )
            .await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"uid": done.uid, "card_id": done.card_id, "given_name": done.given_name, "family_name": done.family_name})
                );
            } else {
                println!(
                    "Enrolled: {} {} (UID {}), card {}",
                    done.given_name, done.family_name, done.uid, done.card_id
                );
                println!(
                    "Your keys were made on this device and never leave it. Keep your passcode secret:"
                );
                println!("after 3 wrong passcodes the card locks and your RA must unlock it.");
            }
        }
        AuthenticatorCommand::Unlock { code } => {
            let passcode = passcode::ask_new("Choose a new passcode (6 or more digits)")?;
            vsc_authenticator::redeem_unlock(&home, &code, &passcode).await?;
            if args.json {
                println!("{}", serde_json::json!({"unlocked": true}));
            } else {
                println!(
                    "Unlocked: your card has a new passcode; its keys and certificates are unchanged."
                );
            }
        }
        AuthenticatorCommand::Status => {
            let s = vsc_authenticator::status(&home)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "home": s.home, "device_id": s.device_id, "enrolled": s.enrolled, "uid": s.uid,
                        "name": s.name, "card_id": s.card_id, "server": s.server.map(|u| u.to_string()),
                        "failed_attempts": s.failed_attempts, "remaining_attempts": s.remaining_attempts, "locked": s.locked,
                    })
                );
            } else if !s.enrolled {
                println!(
                    "Not enrolled (home {}). Enrol with: vsc authenticator enrol '<activation link>'",
                    s.home.display()
                );
            } else {
                println!(
                    "Card {} for {} (UID {})",
                    s.card_id.unwrap_or_default(),
                    s.name.unwrap_or_default(),
                    s.uid.unwrap_or_default()
                );
                println!(
                    "  server    {}",
                    s.server.map(|u| u.to_string()).unwrap_or_default()
                );
                println!("  device    {}", s.device_id.unwrap_or_default());
                if s.locked {
                    println!(
                        "  LOCKED after too many wrong passcodes: ask your RA or Local Smartcard Administrator to unlock it"
                    );
                } else {
                    println!(
                        "  passcode  {} wrong attempts, {} left",
                        s.failed_attempts, s.remaining_attempts
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `vsc authenticator`: the phone app's core with a terminal front. State (device id, the
//! encrypted keystore, the device channel key, the enrolment) lives in `--home`.
//!
//! Besides enrolment, unlock and status, this is where the phone answers sign-in requests:
//! `listen` waits for them and asks the person (or, for a simulated phone, approves by itself),
//! `pending` lists them, `approve` and `decline` answer one.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use vsc_authenticator::phone::{DeviceEvent, PhoneLink};
use vsc_authenticator::{AuthenticatorError, Home, KeystoreError};
use vsc_proto::signin::PendingAuthRequest;

use crate::passcode;

/// `vsc authenticator`.
#[derive(Debug, Args)]
#[command(
    after_help = "Non-interactive use: give the passcode in VSC_PASSCODE or as one line on standard input."
)]
pub struct AuthenticatorArgs {
    /// The app's state directory (keystore, device id, device key, enrolment).
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
    #[command(
        long_about = "Enrol this device with an activation link (or a code plus --server and --ca-fingerprint).\n\n\
The authenticator pins the server by the CA fingerprint in the link, generates the card's two keys \
(ECDSA P-256 for authentication, RSA-2048 for signing) into a keystore sealed under the passcode you \
choose and a secret the server keeps, and a device key that proves this phone to the server. Only \
public keys, certificate requests and what the server needs to check the passcode leave the device: \
the server counts wrong passcodes, so a copy of this phone's files cannot be guessed at offline.",
        after_help = "Examples:\n  vsc authenticator enrol 'https://vsc.example.nhs.uk/activate#code=…&fp=…'\n  \
vsc authenticator enrol 4N0GD003-V4CV-C996-GJ33-ZMG6 --server https://vsc.example.nhs.uk --ca-fingerprint E2:F1:…\n  \
vsc authenticator --home ./demo-phone enrol --simulated 'https://127.0.0.1:8443/activate#…'   # sandbox only"
    )]
    Enrol {
        /// The activation link or code from your RA.
        activation: String,
        /// Server address, when giving a bare code.
        #[arg(long)]
        server: Option<url::Url>,
        /// The server's CA fingerprint (64 hex digits), when giving a bare code.
        #[arg(long)]
        ca_fingerprint: Option<String>,
        /// Declare this a simulated phone (demo, sandbox, tests). Only a sandbox server accepts
        /// one; it then tells the phone the right number of each sign-in request, so that
        /// `listen --auto-approve` can approve by itself.
        #[arg(long)]
        simulated: bool,
    },
    /// Set a new passcode with the unlock code your RA or Local Smartcard Administrator gave you.
    #[command(
        long_about = "Set a new passcode with the unlock code your RA or Local Smartcard Administrator gave you.\n\n\
The phone proves with its device key that it holds the card (the code alone is not enough), gets \
the recovery key back, and re-seals the same keys under the new passcode; the card's certificates \
stay. This also upgrades a keystore made by an older app, whose passcode was checked on the phone \
alone."
    )]
    Unlock {
        /// The unlock link or code.
        code: String,
    },
    /// Renew the card's certificates (inside the renewal window before they expire, or when
    /// your RA made it due): new keys on this device, new certificates, the old ones revoked.
    #[command(
        long_about = "Renew the card's certificates.\n\nNew keys are made on this device; the request is signed with the card's current authentication key; the server issues new certificates, and once this device confirms it holds the new keys the old certificates are revoked (superseded) and the old keys deleted. Allowed inside the server's renewal window (90 days before expiry by default) or when your RA made it due (vsc ra card renew-now). If it stops half way, run it again: it finishes what was started.",
        after_help = "Examples:\n  vsc authenticator renew\n  VSC_PASSCODE=246810 vsc authenticator --json renew"
    )]
    Renew,
    /// Show this device's card and keystore state.
    Status,
    /// Set the PIN of the virtual smartcard (typed at the workstation when OpenSC, ssh or a
    /// browser uses the card). 6 to 8 digits; 3 wrong tries lock the card until an RA unlock.
    #[command(
        long_about = "Set the PIN of the virtual smartcard the identity agent presents to the workstation.\n\nThe PIN is 6 to 8 digits. The server keeps only an Argon2id hash of it and counts wrong tries: the \
third wrong PIN in a row locks the card until an RA unlocks it. Setting the PIN clears the count. \
The PIN is read from VSC_CARD_PIN or standard input.",
        after_help = "Examples:\n  vsc authenticator card-pin\n  VSC_CARD_PIN=246810 vsc authenticator card-pin"
    )]
    CardPin,
    /// Wait for sign-in requests and answer them (Ctrl-C stops).
    #[command(
        long_about = "Wait for sign-in requests and answer them; Ctrl-C stops.\n\n\
The phone keeps one connection to the server (server-sent events, falling back to long-polling, \
reconnecting by itself), authenticated with this device's key. A request made while the phone was \
offline arrives as soon as it connects again, as long as it has not expired.\n\n\
For each request it shows where and why you are signing in (workstation, address, purpose, time \
left). Type the two-digit number shown on the workstation (the phone is never told it), then your \
passcode: the card's authentication key signs the request, its context and the number. Only the \
right number approves; a wrong one refuses the request (sign in again at the workstation) and \
counts towards locking your card. Type d to decline, or n if you did not try to sign in \
(\"I didn't do this\"): that is recorded as an alert, ends every session signed in with your card and \
blocks new sign-in requests to it for a while.",
        after_help = "Examples:\n  vsc authenticator listen\n  \
vsc agent login 2>&1 | VSC_PASSCODE=123456 vsc authenticator --home ./demo-phone listen --auto-approve\n  \
# a simulated phone, reading the number the agent shows"
    )]
    Listen {
        /// Approve every request by itself (simulated phones on a sandbox server only; the
        /// passcode is asked once, at start), with the numbers the workstation shows, read from
        /// standard input (a line holding only a two-digit number; other lines are ignored; the
        /// server never sends the number to the phone). Each approval is printed.
        #[arg(long)]
        auto_approve: bool,
        /// Long-poll instead of keeping an event stream open (for networks that break
        /// streaming responses).
        #[arg(long)]
        long_poll: bool,
    },
    /// List the sign-in requests waiting for this phone.
    #[command(
        long_about = "List the sign-in requests waiting for this phone: id, workstation, address, purpose \
and time left (not the number: type the one the workstation shows with `approve`). With --wait, wait up to that many seconds (at most 30) \
for one to arrive if none is waiting.",
        after_help = "Examples:\n  vsc authenticator pending\n  vsc authenticator --json pending --wait 30"
    )]
    Pending {
        /// Seconds to wait for a request if none is waiting (0 to 30).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=30))]
        wait: u64,
    },
    /// Approve a sign-in request with the number the workstation shows (asks for the passcode).
    #[command(
        long_about = "Approve one sign-in request with the number the workstation shows.\n\n\
The request is checked first (its details must match the digest the server sent, and it must not have \
expired), then the passcode unlocks the card, whose authentication key signs the request id, the \
server's nonce, the digest of the context and the number. Only the number the workstation shows \
approves; a wrong one refuses the request for good and counts towards locking the card.",
        after_help = "Examples:\n  vsc authenticator approve 7f3c…e1 --number 42\n  \
VSC_PASSCODE=123456 vsc authenticator --json approve 7f3c…e1 --number 42"
    )]
    Approve {
        /// The request's id (from `pending` or `listen`).
        request_id: String,
        /// The two-digit number shown on the workstation (00 to 99).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=99))]
        number: u8,
    },
    /// Decline a sign-in request, or report that you did not make it (--not-me).
    #[command(
        long_about = "Decline a sign-in request.\n\n\
With --not-me (\"I didn't do this\"), the server records an alert naming the workstation and address the \
request came from, ends every session signed in with your card, and refuses new sign-in requests to \
your card for a while. Use it when you did not \
just try to sign in: somebody else may be trying to use your card.",
        after_help = "Examples:\n  vsc authenticator decline 7f3c…e1\n  vsc authenticator decline 7f3c…e1 --not-me"
    )]
    Decline {
        /// The request's id (from `pending` or `listen`).
        request_id: String,
        /// Report "I didn't do this" instead of a plain decline.
        #[arg(long)]
        not_me: bool,
    },
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
            simulated,
        } => {
            let passcode = passcode::ask_new("Choose a passcode (6 or more digits)")?;
            let done = vsc_authenticator::enrol(
                &home,
                &activation,
                server,
                ca_fingerprint,
                &passcode,
                simulated,
            )
            .await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"uid": done.uid, "card_id": done.card_id, "given_name": done.given_name, "family_name": done.family_name, "simulated": simulated})
                );
            } else {
                println!(
                    "Enrolled: {} {} (UID {}), card {}{}",
                    done.given_name,
                    done.family_name,
                    done.uid,
                    done.card_id,
                    if simulated { " (simulated phone)" } else { "" }
                );
                println!(
                    "Your keys were made on this device and never leave it. Keep your passcode secret:"
                );
                println!("after 3 wrong passcodes the card locks and your RA must unlock it.");
                println!(
                    "To receive sign-in requests: vsc authenticator --home {} listen",
                    home.dir().display()
                );
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
        AuthenticatorCommand::Renew => {
            let passcode = passcode::ask("Passcode to renew")?;
            let done = vsc_authenticator::renew(&home, &passcode).await?;
            let not_after = done
                .not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"renewal_id": done.renewal_id, "superseded": done.superseded, "not_after": not_after, "resumed": done.resumed})
                );
            } else {
                println!(
                    "Renewed: new keys and certificates until {not_after}; the old certificates ({}) are revoked as superseded.{}",
                    done.superseded.len(),
                    if done.resumed {
                        " (finished a renewal started earlier)"
                    } else {
                        ""
                    }
                );
            }
        }
        AuthenticatorCommand::Status => status(&home, args.json)?,
        AuthenticatorCommand::CardPin => {
            let pin = match std::env::var("VSC_CARD_PIN") {
                Ok(pin) => zeroize::Zeroizing::new(pin),
                Err(_) => match read_line("New card PIN (6 to 8 digits): ")? {
                    Some(pin) => zeroize::Zeroizing::new(pin),
                    None => bail!("no PIN given"),
                },
            };
            if !vsc_proto::card::pin_is_well_formed(&pin) {
                bail!("a card PIN is 6 to 8 digits");
            }
            PhoneLink::new(&home)?.set_card_pin(&pin).await?;
            println!("The card PIN is set.");
        }
        AuthenticatorCommand::Listen {
            auto_approve,
            long_poll,
        } => {
            if auto_approve {
                listen_auto(&home).await?;
            } else {
                listen_interactive(&home, long_poll).await?;
            }
        }
        AuthenticatorCommand::Pending { wait } => {
            let link = PhoneLink::new(&home)?;
            let pending = link.pending(wait).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&pending)?);
            } else if pending.is_empty() {
                println!("No sign-in requests are waiting for this phone.");
            } else {
                let now = OffsetDateTime::now_utc();
                for (i, request) in pending.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print_request(request, now);
                }
            }
        }
        AuthenticatorCommand::Approve { request_id, number } => {
            let link = PhoneLink::new(&home)?;
            let request = find_pending(&link, &request_id).await?;
            vsc_authenticator::check_request(&request, OffsetDateTime::now_utc())?;
            let passcode = passcode::ask("Passcode to approve")?;
            link.approve(&request, number, &passcode).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"request_id": request_id, "state": "approved"})
                );
            } else {
                println!(
                    "Approved: {} will sign you in.",
                    clean(&request.context.workstation_name)
                );
            }
        }
        AuthenticatorCommand::Decline { request_id, not_me } => {
            let link = PhoneLink::new(&home)?;
            link.decline(&request_id, not_me).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"request_id": request_id, "state": if not_me { "reported" } else { "declined" }})
                );
            } else if not_me {
                println!("{REPORTED}");
            } else {
                println!("Declined.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const REPORTED: &str = "Reported: the sign-in request was refused and recorded as an alert, every session signed in with your card has ended, and new sign-in requests to your card are blocked for a while. If you did not try to sign in, tell your RA or IT service desk.";

fn status(home: &Home, json: bool) -> Result<()> {
    let s = vsc_authenticator::status(home)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "home": s.home, "device_id": s.device_id, "enrolled": s.enrolled, "uid": s.uid,
                "name": s.name, "card_id": s.card_id, "server": s.server.map(|u| u.to_string()),
                "failed_attempts": s.failed_attempts, "remaining_attempts": s.remaining_attempts, "locked": s.locked,
                "simulated": s.simulated, "device_key": s.device_key_present,
                "keystore_needs_upgrade": s.keystore_needs_upgrade,
                "certificates_expire": s.certificates_expire.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                "renewal_due": s.renewal_due, "renewal_unfinished": s.renewal_unfinished,
                "renewal_opens_at": s.renewal_opens_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                "renewal_window_days": s.renewal_window_days, "renewal_window_from_server": s.renewal_window_from_server,
                "renewal_forced": s.renewal_forced,
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
        println!(
            "  device    {}{}",
            s.device_id.unwrap_or_default(),
            if s.simulated { " (simulated)" } else { "" }
        );
        if !s.device_key_present {
            println!(
                "  no device key: this phone cannot receive sign-in requests; enrol again with a new activation code"
            );
        }
        if s.keystore_needs_upgrade {
            println!(
                "  OLD KEYSTORE: made before the server checked passcodes; ask your RA or Local Smartcard Administrator for an unlock code and redeem it (vsc authenticator unlock) to upgrade it"
            );
        }
        if let Some(expires) = s.certificates_expire {
            let when = expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            if expires <= time::OffsetDateTime::now_utc() {
                println!(
                    "  EXPIRED on {when}: this card can no longer sign in; ask your RA for a new card"
                );
            } else if s.renewal_due && s.renewal_forced {
                println!(
                    "  RENEW: your RA asked for this card to be renewed now (the certificates expire on {when}); run `vsc authenticator renew`"
                );
            } else if s.renewal_due {
                println!(
                    "  RENEW: the certificates expire on {when}; run `vsc authenticator renew`"
                );
            } else {
                println!("  expires   {when}");
            }
            if let Some(opens) = s.renewal_opens_at {
                println!(
                    "  renewal   {}",
                    renewal_line(
                        opens,
                        s.renewal_window_days,
                        s.renewal_window_from_server,
                        s.renewal_forced
                    )
                );
            }
        }
        if s.renewal_unfinished {
            println!(
                "  a renewal was started and not finished: run `vsc authenticator renew` to finish it"
            );
        }
        // The server counts wrong passcodes; this is what it said last time.
        if s.locked {
            println!(
                "  LOCKED (as the server last said): ask your RA or Local Smartcard Administrator to unlock it"
            );
        } else {
            println!(
                "  passcode  {} wrong attempts, {} left (as the server last counted)",
                s.failed_attempts, s.remaining_attempts
            );
        }
    }
    Ok(())
}

/// When the renewal window opens, and whose word that is.
fn renewal_line(
    opens: OffsetDateTime,
    window_days: i64,
    from_server: bool,
    forced: bool,
) -> String {
    let when = opens
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let source = if from_server {
        "the server's window"
    } else {
        "the default window; the server has not said yet"
    };
    let forced = if forced {
        "; an RA made it due now"
    } else {
        ""
    };
    format!("window opens {when} ({window_days} days before expiry, {source}){forced}")
}

/// The pending request with this id.
async fn find_pending(link: &PhoneLink, request_id: &str) -> Result<PendingAuthRequest> {
    link.pending(0)
        .await?
        .into_iter()
        .find(|r| r.request_id == request_id)
        .ok_or_else(|| AuthenticatorError::NoSuchRequest(request_id.to_owned()).into())
}

/// Text from the server made safe for a terminal: control characters (escape sequences) are
/// replaced.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// "1 min 52 s", or "expired".
fn time_left(request: &PendingAuthRequest, now: OffsetDateTime) -> String {
    let left = (request.expires_at - now).whole_seconds();
    match left {
        ..=0 => "expired".to_owned(),
        1..=59 => format!("{left} s"),
        _ => format!("{} min {} s", left / 60, left % 60),
    }
}

/// The number as typed: one or two digits ("7" or "07").
fn typed_number(reply: &str) -> Option<u8> {
    if reply.is_empty() || reply.len() > 2 || !reply.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    reply.parse().ok()
}

fn print_request(request: &PendingAuthRequest, now: OffsetDateTime) {
    let ctx = &request.context;
    println!("Sign-in request {}", request.request_id);
    if ctx.registered {
        println!(
            "  workstation  {} (id {})",
            clean(&ctx.workstation_name),
            clean(&ctx.workstation_id)
        );
        println!(
            "  registered   with {} {}",
            clean(&ctx.organisation),
            clean(&ctx.organisation_name)
        );
    } else {
        println!(
            "  workstation  UNREGISTERED WORKSTATION, calling itself '{}': nobody vouches for it",
            clean(&ctx.workstation_name)
        );
    }
    if !ctx.client_address.is_empty() {
        println!(
            "  address      {} (as the server saw it)",
            clean(&ctx.client_address)
        );
    }
    println!("  purpose      {}", clean(&ctx.purpose));
    println!("  time left    {}", time_left(request, now));
    for line in request_warnings(request) {
        println!("  {line}");
    }
}

/// What the server asks the holder to see beside a request: the card's renewal (present only
/// when due) and the licence term ending. Server text goes through [`clean`].
fn request_warnings(request: &PendingAuthRequest) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(w) = &request.card_renewal {
        let when = w
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let forced = if w.forced {
            " (your RA asked for it)"
        } else {
            ""
        };
        lines.push(format!(
            "RENEW: Your card's certificates expire on {when}: renew now with `vsc authenticator renew`{forced}"
        ));
    }
    if let Some(l) = &request.licence_warning {
        lines.push(format!("LICENCE: {}", clean(&l.message)));
    }
    lines
}

async fn listen_auto(home: &Home) -> Result<()> {
    let status = vsc_authenticator::status(home)?;
    if !status.enrolled {
        return Err(AuthenticatorError::NotEnrolled.into());
    }
    if !status.simulated {
        return Err(AuthenticatorError::NotSimulated.into());
    }
    let passcode = passcode::ask("Passcode of the simulated phone")?;
    println!(
        "Simulated phone: approving sign-in requests by itself with the numbers read from standard input (one per line, as the workstation shows them). Press Ctrl-C to stop."
    );
    // The "person" reads the workstation: each line on standard input is the number it shows.
    let screen = vsc_authenticator::WorkstationScreen::new();
    let uid = status.uid.clone().unwrap_or_default();
    {
        let screen = screen.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                // Other lines (the rest of what a workstation prints) are not numbers.
                if let Some(n) = typed_number(line.trim()) {
                    screen.show(&uid, n);
                }
            }
        });
    }
    vsc_authenticator::auto_approve(
        home.clone(),
        passcode,
        screen,
        |line| println!("{line}"),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await?;
    println!("Stopped.");
    Ok(())
}

pub(crate) async fn listen_interactive(home: &Home, long_poll: bool) -> Result<()> {
    let link = PhoneLink::new(home)?;
    let enrolment = home.enrolment()?.ok_or(AuthenticatorError::NotEnrolled)?;
    let mut listener = link.listener().on_notice(|n| eprintln!("{n}"));
    if long_poll {
        listener = listener.long_poll_only();
    }
    println!(
        "Listening for sign-in requests for {} {} (UID {}) at {}. Press Ctrl-C to stop.",
        enrolment.given_name,
        enrolment.family_name,
        enrolment.uid,
        link.server_origin()
    );
    // Ctrl-C keeps its default meaning (end the program), also in the middle of a question.
    loop {
        match listener.next().await? {
            DeviceEvent::Request(request) => answer(&link, &request).await?,
            DeviceEvent::Signing(request) => answer_signing(&link, &request).await?,
            DeviceEvent::Closed { request_id, state } if state == "closed" => {
                println!("Request {request_id} is no longer pending.");
            }
            DeviceEvent::Closed { request_id, state } => {
                println!("Request {request_id} is now {state}.");
            }
            DeviceEvent::Resync => {}
        }
    }
}

/// Shows what a signing request would sign (derived on this phone from the prescriptions'
/// own fragments) and asks before signing. `Err` only when standard input is closed.
async fn answer_signing(
    link: &PhoneLink,
    request: &vsc_proto::signing::PendingSigningRequest,
) -> Result<()> {
    println!();
    let review = match vsc_authenticator::signing::review(request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}; declining");
            if let Err(e) = link.decline_signing(&request.request_id, false).await {
                eprintln!("error: could not decline: {e}");
            }
            return Ok(());
        }
    };
    for line in review.display_lines() {
        println!("{line}");
    }
    let Some(reply) = read_line(
        "Sign all of the above? Type y to sign, n if you did not ask for this, anything else to decline: ",
    )?
    else {
        bail!("standard input closed; stopped listening");
    };
    if !reply.eq_ignore_ascii_case("y") {
        let not_me = reply.eq_ignore_ascii_case("n");
        match link.decline_signing(&request.request_id, not_me).await {
            Ok(()) if not_me => println!(
                "Reported: nothing was signed, the workstation's session is ended and the security team is alerted."
            ),
            Ok(()) => println!("Declined; nothing was signed."),
            Err(e) => eprintln!("error: {e}"),
        }
        return Ok(());
    }
    let passcode = passcode::ask("Passcode to sign")?;
    match link.sign(&review, &passcode).await {
        Ok(outcome) => println!(
            "Signed {} of {}.{}",
            outcome.signatures.len(),
            review.items.len() + review.refused.len(),
            outcome
                .failed_signatures
                .iter()
                .map(|f| format!("\n  not signed {}: {}", f.id, f.reason))
                .collect::<String>()
        ),
        Err(e) => eprintln!("error: {e}"),
    }
    Ok(())
}

/// One line from standard input; `None` at its end.
fn read_line(prompt: &str) -> Result<Option<String>> {
    print!("{prompt}");
    std::io::stdout()
        .flush()
        .context("cannot write to the terminal")?;
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read standard input")?;
    if n == 0 {
        println!();
        return Ok(None);
    }
    Ok(Some(line.trim().to_owned()))
}

/// Shows a request and asks what to do with it. Errors about this request are printed and
/// listening goes on; `Err` only when nobody can answer any more (standard input closed).
async fn answer(link: &PhoneLink, request: &PendingAuthRequest) -> Result<()> {
    println!();
    if let Err(e) = vsc_authenticator::check_request(request, OffsetDateTime::now_utc()) {
        eprintln!("error: {e}");
        return Ok(());
    }
    print_request(request, OffsetDateTime::now_utc());
    let number = loop {
        let Some(reply) = read_line(
            "Type the number shown on the workstation, d to decline, or n if you did not try to sign in: ",
        )?
        else {
            bail!("standard input closed; stopped listening");
        };
        match reply.to_ascii_lowercase().as_str() {
            "d" => {
                match link.decline(&request.request_id, false).await {
                    Ok(()) => println!("Declined."),
                    Err(e) => eprintln!("error: {e}"),
                }
                return Ok(());
            }
            "n" => {
                match link.decline(&request.request_id, true).await {
                    Ok(()) => println!("{REPORTED}"),
                    Err(e) => eprintln!("error: {e}"),
                }
                return Ok(());
            }
            other => match typed_number(other) {
                Some(n) => break n,
                None => eprintln!(
                    "Type the two-digit number shown on the workstation (00 to 99), or d, or n."
                ),
            },
        }
    };
    // A wrong passcode may be typed again at a terminal (the keystore counts every one).
    let retry = std::io::stdin().is_terminal() && std::env::var_os(passcode::ENV).is_none();
    loop {
        let passcode = passcode::ask("Passcode to approve")?;
        match link.approve(request, number, &passcode).await {
            Ok(()) => {
                println!(
                    "Approved: {} will sign you in.",
                    clean(&request.context.workstation_name)
                );
                return Ok(());
            }
            Err(e @ AuthenticatorError::Keystore(KeystoreError::WrongPasscode { .. })) if retry => {
                eprintln!("error: {e}");
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsc_proto::signin::AuthContext;

    #[test]
    fn requests_print_safely() {
        assert_eq!(clean("PC\u{1b}[2J-1\n"), "PC\u{FFFD}[2J-1\u{FFFD}");
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let mut request = PendingAuthRequest {
            request_id: "r".into(),
            uid: "123456789012".into(),
            nonce: String::new(),
            context: AuthContext {
                workstation_id: "w".into(),
                workstation_name: "n".into(),
                client_address: String::new(),
                agent_version: "0".into(),
                purpose: "p".into(),
                ..AuthContext::default()
            },
            context_digest: String::new(),
            created_at: 0,
            expires_at: now + time::Duration::seconds(112),
            card_renewal: None,
            licence_warning: None,
        };
        assert_eq!(time_left(&request, now), "1 min 52 s");
        assert_eq!(typed_number("07"), Some(7));
        assert_eq!(typed_number("7"), Some(7));
        assert_eq!(typed_number("99"), Some(99));
        for bad in ["", "100", "+7", "-1", "7a", " 7", "042"] {
            assert_eq!(typed_number(bad), None, "{bad:?}");
        }
        request.expires_at = now + time::Duration::seconds(5);
        assert_eq!(time_left(&request, now), "5 s");
        request.expires_at = now;
        assert_eq!(time_left(&request, now), "expired");
        assert!(request_warnings(&request).is_empty());
    }

    #[test]
    fn renewal_and_licence_warnings_are_shown_cleaned() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let mut request = PendingAuthRequest {
            request_id: "r".into(),
            uid: "123456789012".into(),
            nonce: String::new(),
            context: AuthContext::default(),
            context_digest: String::new(),
            created_at: 0,
            expires_at: now,
            card_renewal: Some(vsc_proto::renewal::RenewalWindow {
                window_days: 30,
                not_after: OffsetDateTime::from_unix_timestamp(1_700_864_000).expect("time"),
                opens_at: OffsetDateTime::from_unix_timestamp(1_698_272_000).expect("time"),
                forced: false,
                due: true,
            }),
            licence_warning: Some(vsc_proto::licences::LicenceWarning {
                organisation: "RX1".into(),
                term_end: "2024-01-01".into(),
                last_sign_in_day: "2024-01-31".into(),
                ended: false,
                message: "Licence ends\u{1b}[2J soon\n: ask your RA".into(),
            }),
        };
        assert_eq!(
            request_warnings(&request),
            vec![
                "RENEW: Your card's certificates expire on 2023-11-24T22:13:20Z: renew now with `vsc authenticator renew`".to_owned(),
                "LICENCE: Licence ends\u{FFFD}[2J soon\u{FFFD}: ask your RA".to_owned(),
            ]
        );
        request.card_renewal.as_mut().expect("window").forced = true;
        request.licence_warning = None;
        let lines = request_warnings(&request);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with("(your RA asked for it)"), "{lines:?}");
    }
}

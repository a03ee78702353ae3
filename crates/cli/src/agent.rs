//! `vsc agent`: the identity agent. Signs the person in with their phone (number matching),
//! keeps the session for this workstation and serves the ticket on loopback; the other
//! subcommands talk to the running agent through its local API.
//!
//! State lives in `--home` (`VSC_AGENT_HOME`, by default `$HOME/.vsc/agent`): `agent.json`
//! (server, CA, last UID, workstation id and name), `agent.secret` (0600, guards the local
//! API), `agent.port` (where the running agent listens), and after `vsc agent enrol` the
//! workstation's registration (`workstation.json`) and key (`workstation.key`, 0600). The ticket
//! is never written to disk.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use time::format_description::well_known::Rfc3339;
use url::Url;
use vsc_agent::agent::describe_roles;
use vsc_agent::local::PendingPrompt;
use vsc_agent::{
    Agent, AgentError, AgentEvent, AgentFile, AgentHome, AgentStatus, LocalClient, SessionState,
    bind_loopback,
};
use vsc_proto::signin::SessionInfo;

/// `vsc agent`.
#[derive(Debug, Args)]
#[command(after_help = "\
Applications on this workstation get the ticket from the running agent:
  curl -H \"X-Vsc-Agent-Secret: $(cat ~/.vsc/agent/agent.secret)\" http://$(cat ~/.vsc/agent/agent.port)/v1/ticket/no-auth
Stopping the agent (Ctrl-C) logs the session out, like removing a smartcard.")]
pub struct AgentArgs {
    /// The agent's state directory (agent.json, agent.secret, agent.port).
    #[arg(long, global = true, env = "VSC_AGENT_HOME", default_value_os_t = AgentHome::default_dir())]
    home: PathBuf,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AgentCommand,
}

/// Where the server is; given once, remembered in agent.json.
#[derive(Debug, Args)]
struct ServerOpts {
    /// The vsc server's address, for example https://vsc.example.nhs.uk (remembered).
    #[arg(long)]
    server: Option<Url>,
    /// The server's root CA fingerprint, 64 hex digits (remembered).
    #[arg(long, conflicts_with = "ca_file")]
    ca_fingerprint: Option<String>,
    /// The server's root CA certificate, a PEM file (remembered).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The name this workstation gives itself (remembered; the host name by default). Phones
    /// show a registered workstation by its registered name (`vsc agent enrol --name`), and this
    /// one only, marked unregistered, where an organisation allows unregistered workstations.
    #[arg(long)]
    workstation_name: Option<String>,
}

/// How the agent runs.
#[derive(Debug, Args)]
struct RunOpts {
    /// Where the local API listens; loopback addresses only (port 0: any free port, written to
    /// agent.port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The role to select when a sign-in leaves the choice open: a position id or a role code.
    #[arg(long)]
    role: Option<String>,
    /// Present the virtual smartcard (PIV) to PC/SC through vpcd at this address while you
    /// are signed in (vpcd's default is 127.0.0.1:35963; see docs/VIRTUAL-CARD.md).
    #[arg(long, value_name = "ADDR")]
    vpcd: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Register this workstation with an organisation, once, with the one-time code from your
    /// RA (`vsc ra workstation code`). Makes the workstation key here (workstation.key, 0600);
    /// from then on every sign-in request and ticket collection is signed with it, and phones
    /// show the registered name and organisation.
    Enrol {
        /// The one-time registration code.
        #[arg(long)]
        code: String,
        /// The workstation's name, as phones will show it (must match the code's name if the
        /// RA fixed one).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        server: ServerOpts,
    },
    /// Sign in with your phone: shows a number to pick on the phone. Goes through the running
    /// agent if there is one; otherwise this command becomes the agent and keeps the session
    /// until Ctrl-C.
    Login {
        /// Your 12-digit UID (remembered from the last sign-in).
        uid: Option<String>,
        /// Why, as the phone shows it.
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        server: ServerOpts,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Run the agent: keep the session and serve tickets on loopback. Signs in when an
    /// application asks for a ticket and nobody is signed in.
    Run {
        /// Whom to sign in when an application asks for a ticket (default: the last UID).
        #[arg(long)]
        uid: Option<String>,
        #[command(flatten)]
        server: ServerOpts,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Print the session ticket (get-ticket: signs you in first if nobody is).
    Ticket {
        /// Never sign in: print the ticket, or "none" (get-ticket-no-auth).
        #[arg(long)]
        no_auth: bool,
    },
    /// Show who is signed in, with which role, and until when.
    Status {
        /// Ask the server about the session first (counts as use of the session).
        #[arg(long)]
        check: bool,
    },
    /// Select a role: a position id or a role code. Without one, lists your roles (and asks, at
    /// a terminal).
    Role {
        /// Position id or role code.
        role: Option<String>,
    },
    /// Lock the workstation: applications get no ticket until you unlock (the server records
    /// the lock and refuses the session's card, signing and ticket meanwhile).
    Lock,
    /// Unlock: within your organisation's grace period the locked session resumes without the
    /// phone; otherwise approve on your phone (your role is kept).
    Unlock {
        /// Unlock for this person, whose session is kept locked on this workstation (fast user
        /// switching; see `vsc agent status`): the session in use now is locked and kept in turn.
        #[arg(long, value_name = "UID")]
        uid: Option<String>,
    },
    /// Log out at once (ends the server session, like removing a smartcard). Locked sessions of
    /// other people kept on this workstation stay, unless `--all`.
    Logout {
        /// End the locked sessions of other people kept on this workstation too.
        #[arg(long)]
        all: bool,
    },
    /// Withdraw the sign-in request waiting for your phone.
    Cancel,
}

/// Runs `vsc agent`.
pub async fn run(args: AgentArgs) -> Result<ExitCode> {
    let home = AgentHome::open(&args.home)?;
    let json = args.json;
    match args.command {
        AgentCommand::Enrol { code, name, server } => {
            enrol(&home, &code, &name, server, json).await
        }
        AgentCommand::Login {
            uid,
            purpose,
            server,
            run,
        } => login(&home, uid, purpose, server, run, json).await,
        AgentCommand::Run { uid, server, run } => {
            let file = configure(&home, &server)?;
            if let Some(uid) = &uid {
                check_uid(uid)?;
            }
            serve(&home, file, run, uid, None, json).await
        }
        AgentCommand::Ticket { no_auth } => {
            let client = LocalClient::for_home(&home)?;
            let answer = if no_auth {
                client.ticket_no_auth().await?
            } else {
                with_number(&client, client.ticket()).await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                match &answer.ticket {
                    Some(ticket) => println!("{ticket}"),
                    None => {
                        println!("none");
                        eprintln!("({})", answer.state);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Status { check } => {
            let client = LocalClient::for_home(&home)?;
            let status = if check {
                client.check().await?
            } else {
                client.status().await?
            };
            print_status(&status, Some(client.addr()), json)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Role { role } => {
            let client = LocalClient::for_home(&home)?;
            let status = match role {
                Some(role) => client.select_role(&role).await?,
                None => {
                    let status = client.status().await?;
                    let session = status.session.as_ref().ok_or(AgentError::NotSignedIn)?;
                    match ask_role(session)? {
                        Some(position) => client.select_role(&position).await?,
                        None => status,
                    }
                }
            };
            print_status(&status, None, json)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Lock => {
            let client = LocalClient::for_home(&home)?;
            print_status(&client.lock().await?, None, json)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Unlock { uid } => {
            if let Some(uid) = &uid {
                check_uid(uid)?;
            }
            let client = LocalClient::for_home(&home)?;
            let status = with_number(&client, client.unlock_as(uid.as_deref())).await?;
            if !json && let Some(report) = &status.last_unlock {
                println!("{}", unlock_line(report));
            }
            print_status(&status, None, json)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Logout { all } => {
            let client = LocalClient::for_home(&home)?;
            let status = if all {
                client.logout_all().await?
            } else {
                client.logout().await?
            };
            print_status(&status, None, json)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Cancel => {
            let client = LocalClient::for_home(&home)?;
            let cancelled = client.cancel().await?;
            if json {
                println!("{}", serde_json::json!({ "cancelled": cancelled }));
            } else if cancelled {
                println!("The sign-in request was withdrawn.");
            } else {
                println!("No sign-in request was waiting.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `vsc agent enrol`: registers the workstation and remembers the server, its CA and the name.
async fn enrol(
    home: &AgentHome,
    code: &str,
    name: &str,
    mut opts: ServerOpts,
    json: bool,
) -> Result<ExitCode> {
    opts.workstation_name = Some(name.to_owned());
    let file = configure(home, &opts)?;
    let server = file.server.clone().ok_or(AgentError::NotConfigured)?;
    let trust = file.trust().ok_or(AgentError::NoTrust)?;
    let registration = vsc_agent::workstation::enrol(home, &server, &trust, code, name).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "workstation_id": registration.workstation_id,
                "name": registration.name,
                "organisation": registration.organisation,
                "organisation_name": registration.organisation_name,
                "server": registration.server.as_str(),
            })
        );
    } else {
        println!(
            "Registered this workstation as {} with {} ({}); id {}.",
            registration.name,
            registration.organisation,
            registration.organisation_name,
            registration.workstation_id
        );
        println!(
            "Its key is in {} (only this user can read it). Start the agent with `vsc agent run`.",
            home.dir().join("workstation.key").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A UID looks like one before anything is asked of the server.
fn check_uid(uid: &str) -> Result<()> {
    uid.parse::<vsc_core::Uid>()
        .map(|_| ())
        .with_context(|| format!("'{uid}' is not a UID (12 digits, as on your smartcard)"))
}

/// Applies `--server`, `--ca-*` and `--workstation-name` to agent.json and returns it.
fn configure(home: &AgentHome, opts: &ServerOpts) -> Result<AgentFile> {
    let mut file = home.load_or_init()?;
    if let Some(server) = &opts.server {
        let new_server = file.server.as_ref() != Some(server);
        if new_server
            && file.server.is_some()
            && opts.ca_fingerprint.is_none()
            && opts.ca_file.is_none()
        {
            bail!(
                "this agent is set up for {}; to use {server} instead, give its CA too (--ca-fingerprint FP or --ca-file root.pem)",
                file.server.as_ref().map(Url::as_str).unwrap_or_default()
            );
        }
        file.server = Some(server.clone());
    }
    if let Some(fp) = &opts.ca_fingerprint {
        vsc_https::client::parse_fingerprint(fp)?;
        file.ca_fingerprint = Some(fp.trim().to_owned());
        file.root_ca_pem = None;
    }
    if let Some(path) = &opts.ca_file {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            bail!(
                "{} is not a PEM certificate; give the server's root CA (root.pem)",
                path.display()
            );
        }
        file.root_ca_pem = Some(pem);
        file.ca_fingerprint = None;
    }
    if let Some(name) = &opts.workstation_name {
        file.workstation_name = Some(name.trim().to_owned());
    }
    home.save(&file)?;
    // Refuse now, with the reason, rather than at the first sign-in.
    home.agent_config(&file)?;
    Ok(file)
}

/// The running agent of this home, if one answers.
async fn running_agent(home: &AgentHome) -> Result<Option<LocalClient>> {
    let client = match LocalClient::for_home(home) {
        Ok(c) => c,
        Err(AgentError::NoAgent { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match client.status().await {
        Ok(_) => Ok(Some(client)),
        // A port file left behind by an agent that did not stop cleanly.
        Err(AgentError::AgentUnreachable { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn login(
    home: &AgentHome,
    uid: Option<String>,
    purpose: Option<String>,
    server: ServerOpts,
    run: RunOpts,
    json: bool,
) -> Result<ExitCode> {
    let file = configure(home, &server)?;
    let uid = uid
        .or_else(|| file.last_uid.clone())
        .ok_or(AgentError::NoUid)?;
    check_uid(&uid)?;
    let Some(client) = running_agent(home).await? else {
        // No agent yet: this process becomes it, signs in, and keeps the session.
        return serve(
            home,
            file,
            run,
            Some(uid.clone()),
            Some((uid, purpose)),
            json,
        )
        .await;
    };
    if server.server.is_some() || server.ca_fingerprint.is_some() || server.ca_file.is_some() {
        eprintln!(
            "note: an agent is already running ({}); the new server settings apply when it restarts",
            client.addr()
        );
    }
    let mut status = with_number(&client, client.login(Some(&uid), purpose.as_deref())).await?;
    if let Some(session) = &status.session {
        let choice = match &run.role {
            Some(role) if session.selected_role.is_none() => Some(role.clone()),
            Some(_) => None,
            None if session.selected_role.is_none() => ask_role(session)?,
            None => None,
        };
        if let Some(choice) = choice {
            status = client.select_role(&choice).await?;
        }
    }
    home.update(|f| f.last_uid = Some(uid.clone()))?;
    print_status(&status, Some(client.addr()), json)?;
    Ok(ExitCode::SUCCESS)
}

/// Waits for `call` (which may wait for the phone) while showing the number the running agent
/// displays; Ctrl-C withdraws the request.
async fn with_number<T>(
    client: &LocalClient,
    call: impl Future<Output = Result<T, AgentError>>,
) -> Result<T> {
    tokio::pin!(call);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut shown: Option<(String, u8)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            result = &mut call => return Ok(result?),
            _ = tick.tick() => {
                if let Ok(AgentStatus { pending: Some(p), .. }) = client.status().await {
                    let key = (p.uid.clone(), p.number);
                    if shown.as_ref() != Some(&key) {
                        show_number(&p);
                        shown = Some(key);
                    }
                }
            }
            _ = &mut ctrl_c => {
                let _ = client.cancel().await;
                bail!("cancelled: the sign-in request was withdrawn");
            }
        }
    }
}

fn show_number(p: &PendingPrompt) {
    let expires = p
        .expires_at
        .to_offset(time::UtcOffset::UTC)
        .time()
        .format(&time::macros::format_description!(
            "[hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n{} for UID {}: type this number on your phone\n\n        {:02}\n\n(the request expires at {expires} UTC; Ctrl-C cancels)\n",
        p.purpose, p.uid, p.number
    );
}

/// Asks at a terminal which role to use; elsewhere lists them and says how to choose.
fn ask_role(session: &SessionInfo) -> Result<Option<String>> {
    if session.roles.is_empty() {
        eprintln!("You have no roles (positions) yet: ask your RA to assign one.");
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "Choose a role with `vsc agent role POSITION_ID`: {}",
            describe_roles(session.roles.iter())
        );
        return Ok(None);
    }
    eprintln!("You hold {} roles:", session.roles.len());
    for (i, r) in session.roles.iter().enumerate() {
        eprintln!(
            "  {}. {} ({}) at {} {}",
            i + 1,
            r.role_name,
            r.role_code,
            r.organisation,
            r.organisation_name
        );
    }
    loop {
        eprint!("Choose a role [1-{}]: ", session.roles.len());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        match line.trim().parse::<usize>() {
            Ok(n) if (1..=session.roles.len()).contains(&n) => {
                return Ok(Some(session.roles[n - 1].position_id.clone()));
            }
            _ => eprintln!("Type a number from the list."),
        }
    }
}

/// Prints agent events in the agent's terminal, and remembers who signed in.
pub(crate) fn event_printer(home: AgentHome, json: bool) -> vsc_agent::EventHandler {
    Arc::new(move |event: &AgentEvent| {
        if let AgentEvent::SignedIn { session } = event
            && let Err(e) = home.update(|f| f.last_uid = Some(session.uid.clone()))
        {
            eprintln!("warning: could not remember the UID: {e}");
        }
        if json {
            println!("{}", event_json(event));
            return;
        }
        match event {
            AgentEvent::Number {
                uid,
                number,
                purpose,
                expires_at,
            } => show_number(&PendingPrompt {
                uid: uid.clone(),
                number: *number,
                purpose: purpose.clone(),
                expires_at: *expires_at,
            }),
            AgentEvent::SignedIn { session } => {
                println!(
                    "Signed in: {} {} ({}). {}",
                    session.given_name,
                    session.family_name,
                    session.uid,
                    role_line(session)
                );
                for line in card_warnings(session) {
                    println!("{line}");
                }
            }
            AgentEvent::RoleSelected { session } => println!("{}", role_line(session)),
            AgentEvent::SignInFailed { message } => println!("Sign-in did not complete: {message}"),
            AgentEvent::Locked => {
                println!("Locked: no ticket until you unlock (`vsc agent unlock`).")
            }
            AgentEvent::Unlocked { session } => {
                println!("Unlocked. {}", role_line(session));
            }
            AgentEvent::SignedOut { reason } => println!("Signed out: {reason}."),
            AgentEvent::Warning { message } => eprintln!("warning: {message}"),
        }
    })
}

fn event_json(event: &AgentEvent) -> serde_json::Value {
    use serde_json::json;
    match event {
        AgentEvent::Number {
            uid,
            number,
            purpose,
            expires_at,
        } => json!({"event": "number", "uid": uid, "number": number, "purpose": purpose,
            "expires_at": expires_at.format(&Rfc3339).unwrap_or_default()}),
        AgentEvent::SignedIn { session } => json!({"event": "signed-in", "session": session}),
        AgentEvent::RoleSelected { session } => {
            json!({"event": "role-selected", "session": session})
        }
        AgentEvent::SignInFailed { message } => {
            json!({"event": "sign-in-failed", "message": message})
        }
        AgentEvent::Locked => json!({"event": "locked"}),
        AgentEvent::Unlocked { session } => json!({"event": "unlocked", "session": session}),
        AgentEvent::SignedOut { reason } => json!({"event": "signed-out", "reason": reason}),
        AgentEvent::Warning { message } => json!({"event": "warning", "message": message}),
    }
}

fn role_line(session: &SessionInfo) -> String {
    match &session.selected_role {
        Some(r) => format!(
            "Role: {} ({}) at {} {}.",
            r.role_name, r.role_code, r.organisation, r.organisation_name
        ),
        None if session.roles.is_empty() => "No roles: ask your RA to assign a position.".into(),
        None => format!(
            "No role selected yet; choose with `vsc agent role POSITION_ID`: {}",
            describe_roles(session.roles.iter())
        ),
    }
}

/// Runs the agent in this process until Ctrl-C or SIGTERM, signing `login` in first if given.
/// Stopping logs the session out.
async fn serve(
    home: &AgentHome,
    file: AgentFile,
    run: RunOpts,
    uid: Option<String>,
    login: Option<(String, Option<String>)>,
    json: bool,
) -> Result<ExitCode> {
    if let Some(client) = running_agent(home).await? {
        bail!(
            "an agent is already running for {} at {}; use it (`vsc agent status`), or stop it first",
            home.dir().display(),
            client.addr()
        );
    }
    let mut config = home.agent_config(&file)?;
    if uid.is_some() {
        config.default_uid = uid;
    }
    config.default_role = run.role.clone();
    config.on_event = Some(event_printer(home.clone(), json));
    let agent = Agent::new(config)?;
    let secret = home.secret()?;
    let listener = bind_loopback(run.listen).await?;
    let addr = listener.local_addr()?;
    home.write_address(addr)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .serve(listener, secret, async move {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    let (card_stop_tx, card_stop_rx) = tokio::sync::watch::channel(false);
    let card = run.vpcd.map(|vpcd| {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .present_card(vsc_vpcd::Mode::Connect(vpcd), card_stop_rx)
                .await;
        })
    });
    let stop = crate::signals::stop_signals()?;
    if !json {
        if let Some(vpcd) = run.vpcd {
            println!("The virtual smartcard goes into vpcd at {vpcd} while you are signed in.");
        }
        let workstation = match &agent.config().registration {
            Some(ws) => format!(
                "workstation {}, registered with {}",
                ws.registration.name, ws.registration.organisation
            ),
            None => format!(
                "workstation {}, NOT registered: most organisations refuse its sign-ins; register it with `vsc agent enrol`",
                agent.config().workstation.name
            ),
        };
        println!(
            "vsc agent {} for {} on http://{addr}/ ({workstation}); Ctrl-C stops it and logs out.",
            env!("CARGO_PKG_VERSION"),
            file.server.as_ref().map(Url::as_str).unwrap_or_default(),
        );
    }
    tokio::pin!(stop);
    let mut failed: Option<anyhow::Error> = None;
    let mut stopped = false;
    if let Some((uid, purpose)) = login {
        let mut task = {
            let agent = agent.clone();
            tokio::spawn(async move { agent.login(&uid, purpose.as_deref(), |_| {}).await })
        };
        tokio::select! {
            result = &mut task => match result {
                Ok(Ok(session)) => {
                    if session.selected_role.is_none()
                        && run.role.is_none()
                        && let Some(choice) = ask_role(&session).unwrap_or(None)
                        && let Err(e) = agent.select_role(&choice).await
                    {
                        eprintln!("warning: the role was not selected: {e}");
                    }
                }
                // The event printer has said why; the process stops with an error.
                Ok(Err(e)) => failed = Some(e.into()),
                Err(e) => failed = Some(anyhow::anyhow!("the sign-in task failed: {e}")),
            },
            _ = &mut stop => {
                // Withdraw the request on the server before stopping.
                agent.close().await;
                let _ = task.await;
                stopped = true;
            }
        }
    }
    if failed.is_none() && !stopped {
        (&mut stop).await;
    }
    let _ = stop_tx.send(());
    let _ = card_stop_tx.send(true);
    if let Some(card) = card {
        let _ = card.await;
    }
    let logout = agent.logout().await;
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: the local API stopped with an error: {e}"),
        Err(e) => eprintln!("warning: the local API task failed: {e}"),
    }
    home.clear_address(addr)?;
    if let Some(e) = failed {
        return Err(e);
    }
    logout?;
    if !json {
        println!("Agent stopped.");
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_time(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// What the person is warned about their card (issue 14): renewal due, licence term ending.
fn card_warnings(s: &vsc_proto::signin::SessionInfo) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(w) = s.card_renewal.as_ref().filter(|w| w.due) {
        lines.push(format!(
            "RENEW YOUR CARD: its certificates expire on {}; on your phone run `vsc authenticator renew`",
            fmt_time(w.not_after)
        ));
    }
    if let Some(w) = &s.licence_warning {
        lines.push(format!("LICENCE: {}", w.message));
    }
    lines
}

/// What an unlock did, in one line.
fn unlock_line(report: &vsc_agent::UnlockReport) -> String {
    let how = if report.resumed_in_grace {
        let seconds = report.seconds_since_lock.unwrap_or(0);
        let after = if seconds < 60 {
            format!("{seconds} s")
        } else {
            format!("{} min", seconds / 60)
        };
        format!("Resumed within the grace period ({after} after the lock), no phone needed.")
    } else {
        format!("Unlocked for {} with a new phone approval.", report.uid)
    };
    match &report.parked {
        Some(parked) => format!(
            "{how} The session of {parked} is locked and kept; they come back with `vsc agent unlock --uid {parked}`."
        ),
        None => how,
    }
}

fn print_status(status: &AgentStatus, addr: Option<SocketAddr>, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(status)?);
        return Ok(());
    }
    let at = addr.map(|a| format!(" at http://{a}/")).unwrap_or_default();
    println!(
        "Agent {}{at} for {} (workstation {})",
        status.agent_version, status.server, status.workstation_name
    );
    println!("State: {}", status.state);
    if let Some(s) = &status.session {
        println!("Person: {} {} ({})", s.given_name, s.family_name, s.uid);
        println!("{}", role_line(s));
        println!(
            "Signed in {}; idle timeout {}; ends {}",
            fmt_time(s.auth_time),
            fmt_time(s.idle_expires_at),
            fmt_time(s.expires_at)
        );
        for line in card_warnings(s) {
            println!("{line}");
        }
    }
    for p in &status.parked {
        println!(
            "Locked session kept for {} {} ({}): `vsc agent unlock --uid {}`; idle timeout {}",
            p.given_name,
            p.family_name,
            p.uid,
            p.uid,
            fmt_time(p.idle_expires_at)
        );
    }
    if let Some(p) = &status.pending {
        println!(
            "Waiting for the phone of {}: number {:02} ({})",
            p.uid, p.number, p.purpose
        );
    }
    if status.state == SessionState::SignedOut
        && let Some(reason) = &status.last_end
    {
        println!("Last session: {reason}");
    }
    Ok(())
}

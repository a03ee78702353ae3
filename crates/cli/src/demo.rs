//! `vsc demo`: one command, no set-up. Starts a server on a temporary directory, a simulated
//! phone and an identity agent in-process, and walks through the everyday path — issue, enrol,
//! sign in with number matching, role selection, ticket, validation, lock and unlock, logout —
//! printing each step so a newcomer sees what happens and why.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::sync::oneshot;
use vsc_agent::{Agent, AgentConfig, ServerTrust, Workstation};
use vsc_authenticator::{DeviceEvent, Listener, PhoneLink};
use vsc_proto::signin::PendingAuthRequest;

use crate::lab::{self, ADMIN, CLINICIAN, Lab};

/// Options of `vsc demo`.
#[derive(Debug, Args)]
#[command(
    about = "Walk through issue → enrol → sign in → role → ticket → validate → lock/unlock → logout",
    long_about = "Runs the whole everyday path of vsc on a throwaway server (a temporary directory, \
a loopback port, real TLS), with a simulated phone and an identity agent in the same process, and \
explains each step. Nothing is left behind."
)]
pub struct DemoArgs {
    /// Pause this many milliseconds between steps (0 for none).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
}

struct Narrator {
    step: u32,
    pause: Duration,
}

impl Narrator {
    async fn step(&mut self, title: &str) {
        if self.step > 0 && !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        self.step += 1;
        println!();
        println!("{}. {title}", self.step);
    }
}

fn say(line: impl AsRef<str>) {
    println!("   {}", line.as_ref());
}

/// What the phone's screen shows for a request.
fn show_request(req: &PendingAuthRequest) {
    let ctx = &req.context;
    say(format!(
        "Phone shows: \"{}\" from {} at {} (the registered name and the address the server saw), agent {}",
        ctx.purpose,
        ctx.workstation_label(),
        ctx.client_address,
        ctx.agent_version
    ));
    say("             Type the number shown on the workstation: [__]");
}

/// The phone side of one approval: wait for the request, "read" the number off the workstation,
/// approve with the passcode.
async fn phone_approves(listener: &mut Listener, number: oneshot::Receiver<u8>) -> Result<()> {
    let request = loop {
        match tokio::time::timeout(Duration::from_secs(30), listener.next()).await {
            Ok(Ok(DeviceEvent::Request(r))) => break r,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("the phone received no request within 30 s"),
        }
    };
    show_request(&request);
    let number = number.await.context("the workstation showed no number")?;
    say(format!(
        "Ada types {number:02} and her passcode; the phone signs request id, server nonce, context digest {}… and {number:02}",
        request
            .context_digest
            .get(..12)
            .unwrap_or(&request.context_digest)
    ));
    listener
        .link()
        .approve(&request, number, &lab::lab_passcode()?)
        .await?;
    Ok(())
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let mut n = Narrator {
        step: 0,
        pause: Duration::from_millis(args.pause_ms),
    };
    println!("vsc demo: the everyday path of a virtual smartcard, on a throwaway server.");

    n.step("Start a server").await;
    let lab = Lab::start(tmp.path(), "127.0.0.1:0".parse()?, |_| {}).await?;
    say(format!(
        "vsc server at {} (HTTPS, embedded SQLite, its own CA)",
        lab.url
    ));
    say(format!(
        "CA fingerprint {}",
        lab.local()?.ca().root_fingerprint().to_colon_hex()
    ));
    say(
        "The first RA Manager enrolled a (simulated) phone with the bootstrap activation and signed in with it.",
    );

    n.step("The RA registers a clinician").await;
    let (uid, card) = lab.register("Ada", "Lovelace", &[CLINICIAN, ADMIN]).await?;
    say(format!(
        "Dr Ada Lovelace, UID {uid}: identity checked (passport + proof of address, level 3)"
    ));
    say(format!(
        "positions: {} and {} at {}",
        CLINICIAN.role_name,
        ADMIN.role_name,
        lab::LAB_ODS
    ));
    say(format!(
        "card {} issued; one-time activation {}",
        card.card.id, card.code.code
    ));

    n.step("Ada's phone enrols").await;
    let home = lab
        .enrol_phone(&tmp.path().join("phones").join("ada"), &card.code.url)
        .await?;
    say("The phone pinned the server by the CA fingerprint in the link, made its keys itself");
    say(
        "(ECDSA P-256 for sign-in, RSA-2048 for signing), set a passcode and sent certificate requests.",
    );
    say("The server issued both certificates; the private keys never left the phone.");

    let link = PhoneLink::new(&home)?;
    let mut listener = link.listener();
    let mut config = AgentConfig::new(
        lab.url.clone(),
        ServerTrust::RootPem(lab.root_pem()),
        Workstation::new("demo-workstation", "WARD-7-PC-03"),
    );
    // A registered workstation: the phone shows its registered name and organisation.
    config.registration = Some(lab.registered_workstation("WARD-7-PC-03").await?);
    let agent = Agent::new(config)?;

    n.step("Ada signs in at a workstation").await;
    say("The identity agent asks the server for a sign-in bound to the workstation's context.");
    let (tx, rx) = oneshot::channel();
    let login = {
        let agent = agent.clone();
        let uid = uid.clone();
        tokio::spawn(async move {
            agent
                .login(&uid, None, move |number| {
                    say(format!("Workstation shows: {number:02}"));
                    let _ = tx.send(number);
                })
                .await
        })
    };
    phone_approves(&mut listener, rx).await?;
    let session = login.await.context("the agent stopped")??;
    say("The server checked the signature against Ada's certificate and the number, consumed the");
    say("request (single use) and created a session; the agent holds its ticket.");

    n.step("Role selection").await;
    say(format!(
        "Ada holds {} roles; she chooses one for this session:",
        session.roles.len()
    ));
    let info = agent.select_role(CLINICIAN.role_code).await?;
    if let Some(role) = &info.selected_role {
        say(format!(
            "{} ({}) at {} — activities {}",
            role.role_name,
            role.role_code,
            role.organisation,
            role.activities.join(", ")
        ));
    }

    n.step("A clinical system asks the agent for the ticket and validates it")
        .await;
    let ticket = agent.ticket().context("the agent holds no ticket")?;
    let validation = agent.server().validate(ticket.expose()).await?;
    say("POST /api/v1/tickets/validate answered:");
    for line in serde_json::to_string_pretty(&validation)?.lines() {
        say(format!("  {line}"));
    }

    n.step("Lock and unlock the workstation").await;
    agent.lock().await?;
    say(format!(
        "locked: get-ticket-no-auth now answers {:?}",
        agent.ticket_no_auth().await.state
    ));
    let (tx, rx) = oneshot::channel();
    let unlock = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .unlock(move |number| {
                    say(format!(
                        "Unlocking needs a fresh approval; workstation shows: {number:02}"
                    ));
                    let _ = tx.send(number);
                })
                .await
        })
    };
    phone_approves(&mut listener, rx).await?;
    let unlocked = unlock.await.context("the agent stopped")??;
    say(format!(
        "unlocked with a new session; the role is kept: {}",
        unlocked
            .selected_role
            .map(|r| r.role_name)
            .unwrap_or_else(|| "(none)".into())
    ));

    n.step("Log out (\"remove the card\")").await;
    let old = agent.ticket().context("the agent holds no ticket")?;
    agent.logout().await?;
    match agent.server().validate(old.expose()).await {
        Ok(_) => bail!("the ticket still validates after logout"),
        Err(e) => say(format!("the old ticket is refused at once: {e}")),
    }

    let report = vsc_store::audit::verify(lab.local()?.store()).await?;
    println!();
    println!(
        "Done. The audit log recorded {} events, every one hash-chained (head {}…).",
        report.events,
        report.head_hash.get(..16).unwrap_or(&report.head_hash)
    );
    agent.close().await;
    lab.stop().await?;
    Ok(ExitCode::SUCCESS)
}

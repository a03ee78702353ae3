//! `vsc sandbox`: a long-running local environment for integrators. The server on embedded
//! SQLite (in sandbox mode: it accepts simulated phones), an identity agent serving its ticket
//! API on loopback, and a test person whose simulated phone approves sign-ins by itself (or asks
//! in this terminal with `--interactive`). Prints every endpoint, then a line `ready` once all
//! of them answer, so scripts can wait for it. Ctrl-C or SIGTERM stops everything cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use vsc_proto::routes;

use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vsc_agent::{Agent, AgentHome, LocalClient};

use crate::lab::{self, CLINICIAN, Lab};

/// Options of `vsc sandbox`.
#[derive(Debug, Args)]
#[command(
    about = "Run a local sandbox: server, identity agent and a test person's simulated phone",
    long_about = "Runs a local environment for integrators: a vsc server on embedded SQLite in \
sandbox mode (simulated phones accepted), an identity agent with its ticket API on loopback, and \
a test person (a clinician) whose simulated phone approves every sign-in by itself, or asks in \
this terminal with --interactive.\n\nEverything lives in --data and is reused by the next run. \
When all endpoints answer, the sandbox prints a line `ready`. Stop it with Ctrl-C or SIGTERM.\n\n\
A server started with `vsc serve` refuses simulated phones; only the sandbox and `vsc demo` accept them.",
    after_help = "Examples:\n  vsc sandbox\n  vsc sandbox --data /tmp/vsc-sandbox --listen 127.0.0.1:0 --agent-listen 127.0.0.1:0\n  \
vsc agent --home ./vsc-sandbox/agent ticket"
)]
pub struct SandboxArgs {
    /// Where the sandbox keeps its server, phones and agent (reused across runs).
    #[arg(long, default_value = "./vsc-sandbox", env = "VSC_SANDBOX_DATA")]
    data: PathBuf,
    /// Server address (loopback by default; `0.0.0.0:8443` for a phone on the same network,
    /// with --public-url).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The address phones and browsers use, when it is not `https://LISTEN` (for a phone on
    /// the same network: `--listen 0.0.0.0:8443 --public-url https://laptop.example:8443`; see
    /// README, "The phone web app"). The sandbox's own agent and simulated phones use it too,
    /// so the name must also resolve on this machine.
    #[arg(long)]
    public_url: Option<url::Url>,
    /// Extra DNS name or IP address for the server's TLS certificate (repeatable).
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// The identity agent's ticket API address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8444")]
    agent_listen: SocketAddr,
    /// Ask in this terminal before approving, instead of approving by itself.
    #[arg(long)]
    interactive: bool,
    /// Where vpcd (vsmartcard's virtual reader in pcscd) listens: the test person's virtual
    /// smartcard is inserted there while the agent's session lasts.
    #[arg(long, default_value = "127.0.0.1:35963")]
    vpcd: SocketAddr,
    /// Do not present the virtual smartcard.
    #[arg(long)]
    no_card: bool,
    /// The simulated phone declines every smartcard operation (to see what a refusal does).
    #[arg(long)]
    decline_card_operations: bool,
}

/// The sandbox's card PIN (printed at start; a real person sets theirs on the phone).
const SANDBOX_CARD_PIN: &str = "123456";

/// What the sandbox remembers between runs.
#[derive(Debug, Serialize, Deserialize)]
struct SandboxFile {
    uid: String,
    card_id: String,
    /// The OpenID Connect test client (registered on the first start that lacks one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc_client_id: Option<String>,
    /// Its secret (the server keeps only its hash; printed at every start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc_client_secret: Option<String>,
    /// The second test person, who sets up the phone web app (`/app`) themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_uid: Option<String>,
    /// Their card (pending until the web app enrols it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_card_id: Option<String>,
}

/// The name of the sandbox's OpenID Connect test client, as the sign-in page and phone show it.
const SANDBOX_CLIENT_NAME: &str = "vsc sandbox test client";

/// Writes `sandbox.json` (0600: it holds the test client's secret).
fn save_sandbox_file(path: &std::path::Path, file: &SandboxFile) -> Result<()> {
    vsc_https::fsutil::write_private_atomic(path, &serde_json::to_vec_pretty(file)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Gives vpcd a moment to take the card (the link connects within a tick; pcscd polls its
/// readers every 400 ms). Nothing is sent to vpcd here: it serves one connection per slot, so a
/// probe could take the card's place.
async fn wait_for_card(_vpcd: SocketAddr) {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The sandbox's second test person, for the phone web app.
struct AppPerson {
    uid: String,
    card_id: String,
    /// A fresh one-time link into the web app (`…/app/#code=…&fp=…`) while the card waits for
    /// its phone; `None` once a browser has enrolled it.
    activation: Option<String>,
    /// When the link stops working.
    expires: String,
}

/// Registers the app-based test clinician on the first start and, while their card is still
/// pending, issues a new activation at every start (a code is single-use and expires, and the
/// one printed last time may be spent or stale).
async fn app_person(
    lab: &Lab,
    file: &mut SandboxFile,
    state_file: &std::path::Path,
) -> Result<AppPerson> {
    let code = match (&file.app_uid, &file.app_card_id) {
        (Some(uid), Some(card_id)) => {
            let card: vsc_proto::Card = lab
                .get(&routes::fill(routes::RA_CARD, card_id))
                .await
                .context("look up the app person's card")?;
            if card.state != vsc_core::CardState::Pending.as_str() {
                return Ok(AppPerson {
                    uid: uid.clone(),
                    card_id: card_id.clone(),
                    activation: None,
                    expires: String::new(),
                });
            }
            lab.reissue_activation(card_id)
                .await
                .context("issue a new activation for the app person")?
                .code
        }
        _ => {
            let (uid, card) = lab.register("App", "Clinician", &[CLINICIAN]).await?;
            file.app_uid = Some(uid);
            file.app_card_id = Some(card.card.id.clone());
            save_sandbox_file(state_file, file)?;
            card.code
        }
    };
    Ok(AppPerson {
        uid: file.app_uid.clone().unwrap_or_default(),
        card_id: file.app_card_id.clone().unwrap_or_default(),
        activation: Some(app_link(&lab.url, &code.url)?),
        expires: code
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}

/// The web app's form of an activation link: the same fragment (code and CA fingerprint,
/// never sent to a server) after `/app/` instead of `/activate`.
fn app_link(server: &url::Url, activation_url: &str) -> Result<String> {
    let fragment = url::Url::parse(activation_url)
        .ok()
        .and_then(|u| u.fragment().map(str::to_owned))
        .context("the server's activation link has no fragment")?;
    Ok(format!("{server}app/#{fragment}"))
}

/// Runs the sandbox.
pub async fn run(args: SandboxArgs) -> Result<ExitCode> {
    if !args.agent_listen.ip().is_loopback() {
        anyhow::bail!("the agent's ticket API listens on loopback only; use 127.0.0.1 or [::1]");
    }
    let stop = crate::signals::stop_signals()?;
    let data = args.data.clone();
    // The simulated phone reads the number the agent shows, as a person reads the screen, and
    // also the number a web sign-in page shows in the browser.
    let screen = vsc_authenticator::WorkstationScreen::new();
    let page_screen = screen.clone();
    let (public_url, hostnames) = (args.public_url.clone(), args.hostnames.clone());
    let lab = Lab::start(&data, args.listen, move |config| {
        config.public_url = public_url;
        config.hostnames = hostnames;
        config.oidc.number_screen = Some(std::sync::Arc::new(move |uid: &str, number: u8| {
            page_screen.show(uid, number)
        }));
    })
    .await?;
    let state_file = data.join("sandbox.json");
    let phone_dir = data.join("phones").join("test-person");
    let mut person: SandboxFile = match std::fs::read(&state_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(p) => p,
        None => {
            let (uid, card) = lab.register("Test", "Clinician", &[CLINICIAN]).await?;
            lab.enrol_phone(&phone_dir, &card.code.url).await?;
            let p = SandboxFile {
                uid,
                card_id: card.card.id,
                oidc_client_id: None,
                oidc_client_secret: None,
                app_uid: None,
                app_card_id: None,
            };
            save_sandbox_file(&state_file, &p)?;
            p
        }
    };
    // The OpenID Connect test client: confidential, any loopback redirect URI. Registered
    // in-process (no RA route registers such a client), once.
    let (oidc_client_id, oidc_client_secret) =
        match (&person.oidc_client_id, &person.oidc_client_secret) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => {
                let (id, secret) = vsc_server::routes::ra_clients::register_sandbox_client(
                    lab.local()?,
                    SANDBOX_CLIENT_NAME,
                )
                .await
                .context("register the sandbox's OpenID Connect test client")?;
                person.oidc_client_id = Some(id.clone());
                person.oidc_client_secret = Some(secret.clone());
                save_sandbox_file(&state_file, &person)?;
                (id, secret)
            }
        };
    let app_person = app_person(&lab, &mut person, &state_file).await?;
    let phone_home = vsc_authenticator::Home::open(&phone_dir)?;
    lab::follow_server(&phone_home, &lab.url)?;
    if !args.no_card {
        // Each start sets the card PIN again (which also clears earlier wrong tries).
        vsc_authenticator::PhoneLink::new(&phone_home)?
            .set_card_pin(SANDBOX_CARD_PIN)
            .await
            .context("set the sandbox's card PIN")?;
    }

    // The identity agent, configured for this server and the test person.
    let agent_home = AgentHome::open(data.join("agent"))?;
    let mut file = agent_home.load_or_init()?;
    file = agent_home
        .update(|f| {
            f.server = Some(lab.url.clone());
            f.root_ca_pem = Some(lab.root_pem());
            f.last_uid = Some(person.uid.clone());
            if f.workstation_name.is_none() {
                f.workstation_name = Some("SANDBOX-WORKSTATION".into());
            }
        })
        .unwrap_or(file);
    // The sandbox's workstation is registered with the sandbox organisation, as an RA's code
    // and `vsc agent enrol` would register it (kept across restarts).
    let workstation_name = file
        .workstation_name
        .clone()
        .unwrap_or_else(|| "SANDBOX-WORKSTATION".into());
    lab.register_agent_home(&agent_home, &workstation_name)
        .await?;
    let mut config = agent_home.agent_config(&file)?;
    config.on_event = Some(lab::showing_numbers(
        screen.clone(),
        Some(crate::agent::event_printer(agent_home.clone(), false)),
    ));
    let agent = Agent::new(config)?;
    let secret = agent_home.secret()?;
    let listener = vsc_agent::bind_loopback(args.agent_listen).await?;
    let agent_addr = listener.local_addr()?;
    agent_home.write_address(agent_addr)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let agent_task = {
        let agent = agent.clone();
        let secret = secret.clone();
        let stop = until(stop_rx.clone());
        tokio::spawn(async move { agent.serve(listener, secret, stop).await })
    };
    let phone_task = if args.interactive {
        let home = phone_home.clone();
        let stop = until(stop_rx.clone());
        tokio::spawn(async move {
            tokio::select! {
                r = crate::authenticator::listen_interactive(&home, false) => r,
                () = stop => Ok(()),
            }
        })
    } else {
        let home = phone_home.clone();
        let stop = until(stop_rx.clone());
        let options = vsc_authenticator::AutoApprove {
            decline_card_operations: args.decline_card_operations,
        };
        let screen = screen.clone();
        tokio::spawn(async move {
            vsc_authenticator::auto_approve_with(
                home,
                lab::lab_passcode()?,
                screen,
                options,
                |line| println!("phone: {line}"),
                stop,
            )
            .await
            .map_err(anyhow::Error::from)
        })
    };
    // The RA Manager's phone approves their own sign-ins to the RA console (`/ra`) the same
    // way, reading the number the console's sign-in page shows.
    let ra_phone_task = {
        let home = lab.ram_home.clone();
        let stop = until(stop_rx.clone());
        let options = vsc_authenticator::AutoApprove {
            decline_card_operations: true,
        };
        tokio::spawn(async move {
            vsc_authenticator::auto_approve_with(
                home,
                lab::lab_passcode()?,
                screen,
                options,
                |line| println!("RA phone: {line}"),
                stop,
            )
            .await
            .map_err(anyhow::Error::from)
        })
    };

    let ca_file = data.join("server").join("ca").join("root.pem");
    println!("vsc sandbox ({})", data.display());
    println!("  server           {}", lab.url);
    println!(
        "  CA certificate   {}  (fingerprint {})",
        ca_file.display(),
        lab.local()?.ca().root_fingerprint().to_colon_hex()
    );
    println!(
        "  agent ticket API http://{agent_addr}/v1/ticket  (header X-Vsc-Agent-Secret: contents of {})",
        agent_home.secret_path().display()
    );
    println!(
        "  test person      Test Clinician, UID {} (card {})",
        person.uid, person.card_id
    );
    let issuer = vsc_server::routes::ra_clients::issuer(lab.local()?);
    println!("  OIDC issuer      {issuer}");
    println!(
        "  OIDC test client {oidc_client_id}  secret {oidc_client_secret}  (any loopback redirect URI)"
    );
    println!(
        "  RA Manager       phone in {} (vsc ra --home {} login)",
        lab.ram_home.dir().display(),
        lab.ram_home.dir().display()
    );
    println!(
        "  RA console       {}ra  (UID {}; the RA Manager's phone approves by itself)",
        lab.url,
        lab.ram_home.enrolment()?.map(|e| e.uid).unwrap_or_default()
    );
    println!("  phone web app    {}app/", lab.url);
    println!(
        "  app person       App Clinician, UID {} (card {}), sets up the web app themselves",
        app_person.uid, app_person.card_id
    );
    match &app_person.activation {
        Some(link) => println!(
            "  app activation   {link}  (one-time, until {}; open it on the phone or in a browser)",
            app_person.expires
        ),
        None => println!("  app activation   none: the card is already set up in a browser"),
    }
    println!(
        "  passcode         {} (every simulated phone here)",
        lab::LAB_PASSCODE
    );
    println!(
        "  phone            {}",
        if args.interactive {
            "asks in this terminal"
        } else {
            "approves every sign-in by itself"
        }
    );
    if args.no_card {
        println!("  card             not presented (--no-card)");
    } else {
        println!("  card PIN         {SANDBOX_CARD_PIN}");
        // vpcd's two slots listen on consecutive ports: 35963 is "Virtual PCD 00 00".
        let reader = match args.vpcd.port().checked_sub(35963) {
            Some(slot @ 0..=1) => format!("Virtual PCD 00 0{slot}"),
            _ => "Virtual PCD".to_owned(),
        };
        println!(
            "  card reader      {reader} (vpcd {}){}",
            args.vpcd,
            if args.decline_card_operations {
                "; the phone declines card operations"
            } else {
                ""
            }
        );
    }
    println!(
        "  try              vsc agent --home {} ticket",
        agent_home.dir().display()
    );
    println!(
        "                   curl -s --cacert {} -d '{{\"ticket\":\"…\"}}' {}api/v1/tickets/validate",
        ca_file.display(),
        lab.url
    );

    // Ready once both the server and the agent answer.
    let local = LocalClient::new(agent_addr, secret)?;
    let info: vsc_proto::ServerInfo =
        vsc_https::Client::with_root_pem(lab.url.clone(), &lab.root_pem())?
            .get_json(routes::INFO, None)
            .await
            .context("the sandbox server does not answer")?;
    local
        .status()
        .await
        .context("the sandbox agent does not answer")?;
    let card_task = if args.no_card {
        None
    } else {
        // Signed in before `ready`, so the card is in the reader when `ready` is printed.
        agent
            .get_ticket()
            .await
            .context("the sandbox agent cannot sign in")?;
        let agent = agent.clone();
        let mode = vsc_vpcd::Mode::Connect(args.vpcd);
        let stop = stop_rx.clone();
        let task = tokio::spawn(async move { agent.present_card(mode, stop).await });
        wait_for_card(args.vpcd).await;
        Some(task)
    };
    tracing::debug!(version = info.version, "sandbox server answered");
    println!("ready");

    let mut phone_task = phone_task;
    tokio::select! {
        () = stop => {},
        finished = &mut phone_task => {
            match finished {
                Ok(Ok(())) => eprintln!("error: the simulated phone stopped"),
                Ok(Err(e)) => eprintln!("error: the simulated phone stopped: {e:#}"),
                Err(e) => eprintln!("error: the simulated phone failed: {e}"),
            }
        }
    }
    println!("stopping");
    let _ = stop_tx.send(true);
    // "Card removal": the session held by the sandbox's agent ends with it.
    if agent.ticket().is_some() {
        let _ = agent.logout().await;
    }
    if let Ok(Err(e)) = agent_task.await {
        eprintln!("warning: the agent stopped with an error: {e}");
    }
    phone_task.abort();
    ra_phone_task.abort();
    if let Some(task) = card_task {
        let _ = task.await;
    }
    let _ = agent_home.clear_address(agent_addr);
    lab.stop().await?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

//! The identity agent end to end: the real server in-process over real TLS on loopback (sandbox
//! mode, with a clock the test moves), the real authenticator as a simulated phone that
//! approves by itself, and the agent serving its local API on loopback, driven through
//! [`LocalClient`] as the `vsc agent` subcommands drive it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::time::timeout;
use url::Url;
use vsc_agent::{
    Agent, AgentError, AgentEvent, AgentHome, LocalClient, LocalSecret, PURPOSE_UNLOCK,
    SessionState, bind_loopback,
};
use vsc_authenticator::phone::PhoneLink;
use vsc_authenticator::{Client, ClientError, Home, Passcode};
use vsc_proto::signin::{SessionInfo, TicketValidation};
use vsc_proto::{AssignPosition, Person};
use vsc_server::clock::OffsetClock;

const PASSCODE: &str = "123456";
const CLINICIAN: &str = "S8000:G8000:R8000";
const ADMIN: &str = "S8001:G8001:R8001";
/// Generous bound for anything that waits on the phone.
const PATIENCE: Duration = Duration::from_secs(60);

fn passcode() -> Passcode {
    Passcode::new(PASSCODE).expect("a six-digit passcode is valid")
}

/// A server, the bootstrap RA Manager's enrolled simulated phone (with two positions), and an
/// agent serving on loopback.
struct World {
    clock: OffsetClock,
    uid: String,
    phone: Home,
    agent: Agent,
    client: LocalClient,
    /// The relying system's view: validates tickets.
    relying: Client,
    events: Arc<Mutex<Vec<AgentEvent>>>,
    /// What the agent shows, where the simulated phone reads the number (the server never
    /// sends it to the phone).
    screen: vsc_authenticator::WorkstationScreen,
    stops: Vec<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("temporary directory");

    // The server, as the issue describes: sandbox mode, real TLS, a clock the test moves.
    let mut config = vsc_server::ServerConfig::new(
        dir.path().join("data"),
        "127.0.0.1:0".parse().expect("address"),
    );
    config.sandbox = true;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let clock = OffsetClock::default();
    let instance = vsc_server::instance::prepare(
        config,
        listener.local_addr().expect("bound address"),
        Arc::new(clock.clone()),
    )
    .await
    .expect("prepare a fresh instance");
    let state = instance.state.clone();
    let bootstrap = instance.bootstrap.clone().expect("first start");
    let (server_stop, rx) = oneshot::channel::<()>();
    tokio::spawn(vsc_server::serve(instance, listener, async move {
        let _ = rx.await;
    }));
    let url: Url = state.public_url().clone();
    let root_pem = state.ca().root_pem();

    // The first RA Manager's simulated phone.
    let phone = Home::open(dir.path().join("phone")).expect("phone home");
    vsc_authenticator::enrol(
        &phone,
        &bootstrap.activation.url,
        None,
        None,
        &passcode(),
        true,
    )
    .await
    .expect("enrol the simulated phone");

    // Two positions, so that role selection is a real choice. No RA assigns their own
    // positions, so the bootstrap RA Manager makes a second RA Manager, who assigns them.
    let ra = vsc_authenticator::ra_login(&phone, &passcode())
        .await
        .expect("RA login");
    let relying = Client::with_root_pem(url.clone(), &root_pem).expect("client");
    let ra = second_ra_manager(&relying, &ra.token, dir.path()).await;
    for (code, name) in [
        (CLINICIAN, "Clinical Practitioner Access Role"),
        (ADMIN, "Admin and Clerical"),
    ] {
        let _: Person = relying
            .post_json(
                &format!("/api/v1/ra/people/{}/positions", bootstrap.uid),
                &AssignPosition {
                    organisation: "X26".into(),
                    role_code: code.into(),
                    role_name: name.into(),
                    activities: vec!["B0570".into()],
                },
                Some(&ra.token),
            )
            .await
            .expect("assign a position");
    }

    // The agent, configured the way `vsc agent login --server … --ca-file …` leaves its home.
    let home = AgentHome::open(dir.path().join("agent")).expect("agent home");
    let file = home
        .update(|f| {
            f.server = Some(url.clone());
            f.root_ca_pem = Some(root_pem.clone());
            f.workstation_name = Some("WARD-7-PC-03".into());
            f.last_uid = Some(bootstrap.uid.clone());
        })
        .expect("write agent.json");
    // The workstation registers first, as every agent must (`vsc agent enrol`).
    register_workstation(&relying, &ra.token, &home, &url, &root_pem, "WARD-7-PC-03").await;
    let mut agent_config = home.agent_config(&file).expect("agent config");
    assert!(
        agent_config.registration.is_some(),
        "the agent uses its registration"
    );
    // Ask the server before every hand-out, so the test sees server-side ends at once.
    agent_config.recheck_after = Duration::ZERO;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let screen = vsc_authenticator::WorkstationScreen::new();
    let shown = screen.clone();
    agent_config.on_event = Some(Arc::new(move |e: &AgentEvent| {
        if let AgentEvent::Number { uid, number, .. } = e {
            shown.show(uid, *number);
        }
        sink.lock().expect("events").push(e.clone());
    }));
    let agent = Agent::new(agent_config).expect("agent");
    let listener = bind_loopback("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind the local API");
    home.write_address(listener.local_addr().expect("address"))
        .expect("agent.port");
    let secret = home.secret().expect("agent.secret");
    let (agent_stop, rx) = oneshot::channel::<()>();
    {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .serve(listener, secret, async move {
                    let _ = rx.await;
                })
                .await
        });
    }
    let client = LocalClient::for_home(&home).expect("local client");

    World {
        clock,
        uid: bootstrap.uid,
        phone,
        agent,
        client,
        relying,
        events,
        screen,
        stops: vec![server_stop, agent_stop],
        _dir: dir,
    }
}

/// Registers the workstation of the agent in `home` with the national organisation as `name`:
/// an RA (session `token`) issues a one-time code, the agent enrols with it (`vsc agent enrol`).
async fn register_workstation(
    client: &Client,
    token: &str,
    home: &AgentHome,
    url: &Url,
    root_pem: &str,
    name: &str,
) -> vsc_agent::Registration {
    let code: vsc_proto::workstation::WorkstationCode = client
        .post_json(
            "/api/v1/ra/workstations/codes",
            &vsc_proto::workstation::IssueWorkstationCode {
                organisation: "X26".into(),
                name: Some(name.into()),
            },
            Some(token),
        )
        .await
        .expect("an RA issues a workstation code");
    vsc_agent::workstation::enrol(
        home,
        url,
        &vsc_agent::ServerTrust::RootPem(root_pem.to_owned()),
        &code.code,
        name,
    )
    .await
    .expect("the workstation enrols")
}

/// A second RA Manager at the national organisation, made by the first (token `token`), with
/// a simulated phone under `dir`; signed in.
async fn second_ra_manager(
    client: &Client,
    token: &str,
    dir: &std::path::Path,
) -> vsc_proto::LoginResponse {
    let person: Person = client
        .post_json(
            "/api/v1/ra/people",
            &serde_json::json!({"given_name": "Second", "family_name": "Manager", "organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("create the second RA Manager");
    let uid = person.uid;
    let _: Person = client
        .post_json(
            &format!("/api/v1/ra/people/{uid}/identity-checks"),
            &serde_json::json!({"evidence": ["passport", "driving-licence"], "level": 3, "organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("identity check");
    let _: Person = client
        .post_json(
            &format!("/api/v1/ra/people/{uid}/ra-roles"),
            &serde_json::json!({"role": "ra-manager", "organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("RA role");
    let card: vsc_proto::CardWithCode = client
        .post_json(
            &format!("/api/v1/ra/people/{uid}/cards"),
            &serde_json::json!({"organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("issue card");
    let phone = Home::open(dir.join("second-ra-phone")).expect("phone home");
    vsc_authenticator::enrol(&phone, &card.code.url, None, None, &passcode(), true)
        .await
        .expect("enrol the second RA Manager's phone");
    vsc_authenticator::ra_login(&phone, &passcode())
        .await
        .expect("second RA login")
}

impl World {
    /// Runs the simulated phone: it approves every request by itself, with the number the
    /// agent shows.
    fn phone_approves(&mut self) {
        let (stop, rx) = oneshot::channel::<()>();
        let home = self.phone.clone();
        let screen = self.screen.clone();
        tokio::spawn(async move {
            vsc_authenticator::phone::auto_approve(
                home,
                passcode(),
                screen,
                |line| eprintln!("phone: {line}"),
                async move {
                    let _ = rx.await;
                },
            )
            .await
        });
        self.stops.push(stop);
    }

    async fn validate(&self, ticket: &str) -> Result<TicketValidation, ClientError> {
        self.relying
            .post_json(
                "/api/v1/tickets/validate",
                &vsc_proto::signin::ValidateTicket {
                    ticket: ticket.to_owned(),
                },
                None,
            )
            .await
    }

    fn numbers(&self) -> Vec<(u8, String)> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Number {
                    number, purpose, ..
                } => Some((*number, purpose.clone())),
                _ => None,
            })
            .collect()
    }

    /// Waits until the agent shows a number (a request is waiting for the phone).
    async fn wait_for_prompt(&self) -> u8 {
        timeout(PATIENCE, async {
            loop {
                if let Some(p) = self.client.status().await.expect("status").pending {
                    return p.number;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the agent opened a sign-in request")
    }
}

fn server_code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Server { code, .. }) => code,
        other => panic!("expected a refusal by the server, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T, AgentError>) -> (u16, String) {
    match r {
        Err(AgentError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal by the agent, got {other:?}"),
    }
}

fn position_of(session: &SessionInfo, role_code: &str) -> String {
    session
        .roles
        .iter()
        .find(|r| r.role_code == role_code)
        .map(|r| r.position_id.clone())
        .expect("the session offers the role")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_select_role_lock_unlock_and_log_out() {
    let mut w = world().await;
    w.phone_approves();

    // Sign in: the workstation shows a number, the phone approves, the agent holds the ticket.
    let shown = Arc::new(Mutex::new(None));
    let seen = shown.clone();
    let session = timeout(
        PATIENCE,
        w.agent.login(&w.uid, None, move |n| {
            *seen.lock().expect("number") = Some(n);
        }),
    )
    .await
    .expect("in time")
    .expect("signed in");
    let number = shown.lock().expect("number").expect("a number was shown");
    assert!(number <= 99, "two digits, 00 to 99: {number}");
    assert_eq!(session.uid, w.uid);
    assert_eq!(session.roles.len(), 2);
    assert_eq!(session.selected_role, None, "two roles: the person chooses");
    let ticket = w.agent.ticket().expect("the agent holds a ticket");

    // A relying system validates the ticket: it names the person.
    let v = w
        .validate(ticket.expose())
        .await
        .expect("the ticket validates");
    assert_eq!(v.uid, w.uid);
    assert_eq!(v.role, None);

    // Role selection through the local API, by role code.
    let status = w.client.select_role(ADMIN).await.expect("role selected");
    let admin = position_of(&session, ADMIN);
    assert_eq!(
        status
            .session
            .as_ref()
            .and_then(|s| s.selected_role.as_ref())
            .map(|r| r.position_id.clone()),
        Some(admin.clone())
    );
    let v = w.validate(ticket.expose()).await.expect("validates");
    assert_eq!(v.role.map(|r| r.position_id), Some(admin.clone()));
    // An unknown role is refused clearly.
    assert_eq!(
        refused(w.client.select_role("S0000:G0000:R0000").await),
        (400, "unknown_role".into())
    );

    // get-ticket-no-auth and get-ticket hand out the same ticket; no new sign-in.
    let answer = w.client.ticket_no_auth().await.expect("no-auth");
    assert_eq!(answer.state, SessionState::SignedIn);
    assert_eq!(answer.ticket.as_deref(), Some(ticket.expose()));
    let answer = w.client.ticket().await.expect("get-ticket");
    assert_eq!(answer.ticket.as_deref(), Some(ticket.expose()));
    assert_eq!(w.numbers().len(), 1, "no second sign-in");

    // A caller without the secret, or with another one, gets nothing.
    let addr = w.client.addr();
    let raw = reqwest::Client::builder()
        .tls_backend_preconfigured(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .no_proxy()
        .build()
        .expect("client");
    for path in ["/v1/ticket/no-auth", "/v1/ticket"] {
        let r = raw
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body: vsc_proto::ErrorBody = r.json().await.expect("a JSON error");
        assert_eq!(body.error.code, "secret_missing");
    }
    // A client holding another secret: the agent cannot prove itself to it, so it sends
    // nothing; a caller that sends a wrong secret anyway is refused.
    let stranger =
        LocalClient::new(addr, LocalSecret::generate().expect("secret")).expect("client");
    assert!(matches!(
        stranger.ticket_no_auth().await,
        Err(AgentError::AgentUnreachable { .. })
    ));
    let wrong = LocalSecret::generate().expect("secret");
    for (method, path) in [
        (reqwest::Method::GET, "/v1/ticket/no-auth"),
        (reqwest::Method::POST, "/v1/logout"),
    ] {
        let r = raw
            .request(method, format!("http://{addr}{path}"))
            .header(vsc_agent::SECRET_HEADER, wrong.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body: vsc_proto::ErrorBody = r.json().await.expect("a JSON error");
        assert_eq!(body.error.code, "secret_wrong", "{path}");
    }
    assert_eq!(w.agent.ticket().as_ref(), Some(&ticket), "still signed in");

    // Lock: no ticket for anyone; the server session stays, and the server records the lock.
    let status = w.client.lock().await.expect("locked");
    assert_eq!(status.state, SessionState::Locked);
    let answer = w.client.ticket_no_auth().await.expect("no-auth");
    assert_eq!(answer.state, SessionState::Locked);
    assert_eq!(answer.ticket, None);
    assert_eq!(refused(w.client.ticket().await), (423, "locked".into()));
    assert!(w.agent.ticket().is_none());
    // The server session stays, locked (issue 14): the server refuses the ticket meanwhile.
    assert_eq!(
        server_code(w.validate(ticket.expose()).await),
        "session_locked",
        "locking keeps the server session, locked"
    );

    // Unlock: a fresh approval ("Unlock workstation"), a new ticket, the same role; the old
    // session is logged out.
    let status = timeout(PATIENCE, w.client.unlock())
        .await
        .expect("in time")
        .expect("unlocked");
    assert_eq!(status.state, SessionState::SignedIn);
    let numbers = w.numbers();
    assert_eq!(numbers.len(), 2);
    assert_eq!(numbers[1].1, PURPOSE_UNLOCK);
    let unlocked = w.agent.ticket().expect("a new ticket");
    assert_ne!(unlocked, ticket);
    let v = w
        .validate(unlocked.expose())
        .await
        .expect("new ticket validates");
    assert_eq!(v.uid, w.uid);
    assert_eq!(v.role.map(|r| r.position_id), Some(admin));
    assert_eq!(
        server_code(w.validate(ticket.expose()).await),
        "session_ended",
        "the old session ended at unlock"
    );

    // Logout ("card removal"): the ticket fails validation at once.
    let status = w.client.logout().await.expect("logged out");
    assert_eq!(status.state, SessionState::SignedOut);
    assert_eq!(
        server_code(w.validate(unlocked.expose()).await),
        "session_ended"
    );
    let answer = w.client.ticket_no_auth().await.expect("no-auth");
    assert_eq!(
        (answer.state, answer.ticket.clone()),
        (SessionState::SignedOut, None)
    );
    assert!(w.agent.ticket().is_none());
    assert!(matches!(
        w.events.lock().expect("events").last(),
        Some(AgentEvent::SignedOut { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_ticket_signs_in_once_for_concurrent_callers() {
    let mut w = world().await;
    w.phone_approves();
    assert_eq!(
        w.client.ticket_no_auth().await.expect("no-auth").ticket,
        None,
        "get-ticket-no-auth never signs in"
    );
    assert!(w.numbers().is_empty());

    // Two applications ask at once: one sign-in (the default UID), one ticket for both.
    let (a, b) = tokio::join!(
        timeout(PATIENCE, w.client.ticket()),
        timeout(PATIENCE, w.client.ticket())
    );
    let a = a.expect("in time").expect("get-ticket");
    let b = b.expect("in time").expect("get-ticket");
    assert_eq!(a.state, SessionState::SignedIn);
    assert!(a.ticket.is_some());
    assert_eq!(a.ticket, b.ticket);
    assert_eq!(w.numbers().len(), 1, "one sign-in for both callers");
    let ticket = a.ticket.clone().expect("ticket");
    assert_eq!(w.validate(&ticket).await.expect("validates").uid, w.uid);
    assert_eq!(
        w.client
            .status()
            .await
            .expect("status")
            .default_uid
            .as_deref(),
        Some(w.uid.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_without_a_registration_is_refused_by_default() {
    let w = world().await;
    // The same server and person, from an agent whose workstation never registered.
    let mut config = w.agent.config().clone();
    config.registration = None;
    config.on_event = None;
    let unregistered = Agent::new(config).expect("agent");
    let err = timeout(PATIENCE, unregistered.login(&w.uid, None, |_| {}))
        .await
        .expect("in time")
        .expect_err("refused");
    assert_eq!(
        err.server_code(),
        Some("workstation_not_registered"),
        "{err}"
    );
    let phone = PhoneLink::new(&w.phone).expect("phone link");
    assert!(
        phone.pending(0).await.expect("pending").is_empty(),
        "nothing reached the phone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_side_ends_make_the_agent_drop_the_ticket() {
    let mut w = world().await;
    w.phone_approves();
    timeout(PATIENCE, w.agent.login(&w.uid, None, |_| {}))
        .await
        .expect("in time")
        .expect("signed in");
    let ticket = w.agent.ticket().expect("ticket");

    // Sixteen minutes without use: past the 15-minute idle timeout.
    w.clock.advance(time::Duration::minutes(16));
    let answer = w.client.ticket_no_auth().await.expect("no-auth");
    assert_eq!(answer.state, SessionState::SignedOut);
    assert_eq!(answer.ticket, None);
    assert!(w.agent.ticket().is_none(), "the ticket is dropped");
    let status = w.client.status().await.expect("status");
    assert!(
        status
            .last_end
            .as_deref()
            .is_some_and(|r| r.contains("session_idle_timeout")),
        "{:?}",
        status.last_end
    );
    assert_eq!(
        server_code(w.validate(ticket.expose()).await),
        "session_idle_timeout"
    );

    // A session ended elsewhere (a logout by another holder of the ticket) is noticed by the
    // check the status route can ask for.
    timeout(PATIENCE, w.agent.login(&w.uid, None, |_| {}))
        .await
        .expect("in time")
        .expect("signed in again");
    let second = w.agent.ticket().expect("ticket");
    w.agent
        .server()
        .logout(&second)
        .await
        .expect("ended on the server");
    assert_eq!(
        w.client.status().await.expect("status").state,
        SessionState::SignedIn,
        "a plain status does not ask the server"
    );
    let status = w.client.check().await.expect("checked");
    assert_eq!(status.state, SessionState::SignedOut);
    assert!(w.agent.ticket().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declined_cancelled_and_abandoned_sign_ins() {
    let w = world().await;
    let phone = PhoneLink::new(&w.phone).expect("phone link");

    // The phone declines: the sign-in fails and says so.
    let login = {
        let agent = w.agent.clone();
        let uid = w.uid.clone();
        tokio::spawn(async move { agent.login(&uid, None, |_| {}).await })
    };
    w.wait_for_prompt().await;
    let pending = phone.pending(0).await.expect("pending");
    assert_eq!(pending.len(), 1);
    // The phone is shown the registered workstation: its name and organisation, and the
    // address the server saw.
    let registration = w.agent.config().registration.clone().expect("registered");
    assert_eq!(pending[0].context.workstation_name, "WARD-7-PC-03");
    assert!(pending[0].context.registered);
    assert_eq!(
        pending[0].context.workstation_id,
        registration.registration.workstation_id
    );
    assert_eq!(pending[0].context.organisation, "X26");
    assert_eq!(pending[0].context.client_address, "127.0.0.1");
    assert_eq!(pending[0].context.purpose, vsc_agent::PURPOSE_SIGN_IN);
    phone
        .decline(&pending[0].request_id, false)
        .await
        .expect("declined");
    let err = timeout(PATIENCE, login)
        .await
        .expect("in time")
        .expect("task")
        .expect_err("declined");
    assert!(matches!(err, AgentError::Declined), "{err}");
    assert!(err.to_string().contains("declined on the phone"), "{err}");
    assert_eq!(
        w.client.status().await.expect("status").state,
        SessionState::SignedOut
    );

    // Cancelled at the workstation (`vsc agent cancel`): the request is withdrawn on the server.
    let login = {
        let client = w.client.clone();
        let uid = w.uid.clone();
        tokio::spawn(async move { client.login(Some(&uid), None).await })
    };
    w.wait_for_prompt().await;
    assert_eq!(
        w.client.status().await.expect("status").state,
        SessionState::SigningIn
    );
    assert!(
        w.client.cancel().await.expect("cancel"),
        "a request was waiting"
    );
    assert_eq!(
        refused(
            timeout(PATIENCE, login)
                .await
                .expect("in time")
                .expect("task")
        ),
        (409, "cancelled".into())
    );
    assert!(
        phone.pending(0).await.expect("pending").is_empty(),
        "nothing left on the phone"
    );

    // A caller that goes away (Ctrl-C) withdraws its request too.
    let login = {
        let agent = w.agent.clone();
        let uid = w.uid.clone();
        tokio::spawn(async move { agent.login(&uid, None, |_| {}).await })
    };
    w.wait_for_prompt().await;
    login.abort();
    timeout(PATIENCE, async {
        while !phone.pending(0).await.expect("pending").is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the abandoned request was withdrawn");
    assert_eq!(
        w.client.status().await.expect("status").state,
        SessionState::SignedOut
    );
}

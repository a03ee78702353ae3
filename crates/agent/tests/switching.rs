//! Issue 14 in the identity agent: locking is recorded on the server, unlocking resumes within
//! the grace period without the phone, and with fast user switching a second person signs in on
//! a locked workstation while the first person's session stays locked and alive, to come back
//! with their own phone approval (the second person's session is then locked in turn). Without
//! switching a second sign-in ends the first session, as before.
//!
//! The real server in-process over real TLS on loopback, two people each with a simulated phone
//! that approves by itself (reading the number the agent shows), and the agent serving its local
//! API, driven through [`LocalClient`] as `vsc agent …` drives it.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::time::timeout;
use url::Url;
use vsc_agent::{
    Agent, AgentError, AgentEvent, AgentHome, LocalClient, SessionState, bind_loopback,
};
use vsc_authenticator::{Client, ClientError, Home, Passcode};
use vsc_proto::Person;
use vsc_proto::signin::SessionInfo;
use vsc_proto::workstation::WorkstationPolicy;

const PASSCODE: &str = "123456";
/// Generous bound for anything that waits on the phone.
const PATIENCE: Duration = Duration::from_secs(60);

fn passcode() -> Passcode {
    Passcode::new(PASSCODE).expect("a six-digit passcode is valid")
}

struct World {
    /// Person A: the bootstrap RA Manager (whose RA session sets the policy).
    a: String,
    /// Person B, at the same organisation.
    b: String,
    /// B's card.
    b_card: String,
    ra_token: String,
    agent: Agent,
    client: LocalClient,
    relying: Client,
    events: Arc<Mutex<Vec<AgentEvent>>>,
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

/// A second person at X26 with a card and an enrolled simulated phone.
async fn second_person(
    client: &Client,
    token: &str,
    dir: &std::path::Path,
) -> (String, String, Home) {
    let person: Person = client
        .post_json(
            "/api/v1/ra/people",
            &serde_json::json!({"given_name": "Bea", "family_name": "Second", "organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("create person B");
    let uid = person.uid;
    let _: Person = client
        .post_json(
            &format!("/api/v1/ra/people/{uid}/identity-checks"),
            &serde_json::json!({"evidence": ["passport", "driving-licence"], "level": 3, "organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("identity check");
    let card: vsc_proto::CardWithCode = client
        .post_json(
            &format!("/api/v1/ra/people/{uid}/cards"),
            &serde_json::json!({"organisation": "X26"}),
            Some(token),
        )
        .await
        .expect("issue card");
    let phone = Home::open(dir.join("phone-b")).expect("phone home");
    vsc_authenticator::enrol(&phone, &card.code.url, None, None, &passcode(), true)
        .await
        .expect("enrol B's phone");
    (uid, card.card.id, phone)
}

async fn world(policy: WorkstationPolicy) -> World {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = vsc_server::ServerConfig::new(
        dir.path().join("data"),
        "127.0.0.1:0".parse().expect("address"),
    );
    config.sandbox = true;
    // Run a second time on PostgreSQL when the test command asks (VSC_TEST_POSTGRES).
    config.database = vsc_store::postgres::test_database()
        .await
        .expect("create a PostgreSQL test database");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let clock = vsc_server::clock::OffsetClock::default();
    let instance = vsc_server::instance::prepare(
        config,
        listener.local_addr().expect("bound address"),
        Arc::new(clock),
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

    let phone_a = Home::open(dir.path().join("phone-a")).expect("phone home");
    vsc_authenticator::enrol(
        &phone_a,
        &bootstrap.activation.url,
        None,
        None,
        &passcode(),
        true,
    )
    .await
    .expect("enrol A's phone");
    let ra = vsc_authenticator::ra_login(&phone_a, &passcode())
        .await
        .expect("RA login");
    let relying = Client::with_root_pem(url.clone(), &root_pem).expect("client");
    let (b, b_card, phone_b) = second_person(&relying, &ra.token, dir.path()).await;
    let _: WorkstationPolicy = relying
        .post_json(
            "/api/v1/ra/organisations/X26/workstation-policy",
            &policy,
            Some(&ra.token),
        )
        .await
        .expect("the RA Manager sets the workstation policy");

    // The agent, registered at X26 (so X26's policy governs its sessions).
    let home = AgentHome::open(dir.path().join("agent")).expect("agent home");
    let file = home
        .update(|f| {
            f.server = Some(url.clone());
            f.root_ca_pem = Some(root_pem.clone());
            f.workstation_name = Some("WARD-7-PC-04".into());
        })
        .expect("write agent.json");
    let code: vsc_proto::workstation::WorkstationCode = relying
        .post_json(
            "/api/v1/ra/workstations/codes",
            &vsc_proto::workstation::IssueWorkstationCode {
                organisation: "X26".into(),
                name: Some("WARD-7-PC-04".into()),
            },
            Some(&ra.token),
        )
        .await
        .expect("a workstation code");
    vsc_agent::workstation::enrol(
        &home,
        &url,
        &vsc_agent::ServerTrust::RootPem(root_pem.clone()),
        &code.code,
        "WARD-7-PC-04",
    )
    .await
    .expect("the workstation enrols");
    let mut agent_config = home.agent_config(&file).expect("agent config");
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

    // Both phones approve by themselves, each reading its own person's number.
    let mut stops = vec![server_stop, agent_stop];
    for phone in [phone_a, phone_b] {
        let (stop, rx) = oneshot::channel::<()>();
        let screen = screen.clone();
        tokio::spawn(async move {
            vsc_authenticator::phone::auto_approve(
                phone,
                passcode(),
                screen,
                |line| eprintln!("phone: {line}"),
                async move {
                    let _ = rx.await;
                },
            )
            .await
        });
        stops.push(stop);
    }
    World {
        a: bootstrap.uid,
        b,
        b_card,
        ra_token: ra.token,
        agent,
        client,
        relying,
        events,
        stops,
        _dir: dir,
    }
}

impl World {
    /// The server's view of the session of `ticket`, without counting as use.
    async fn server_session(&self, ticket: &str) -> Result<SessionInfo, ClientError> {
        self.relying
            .get_json("/api/v1/session?touch=false", Some(ticket))
            .await
    }

    async fn login(&self, uid: &str) -> String {
        timeout(PATIENCE, self.client.login(Some(uid), None))
            .await
            .expect("the phone answers in time")
            .expect("signed in");
        self.agent.ticket().expect("a ticket").expose().to_owned()
    }

    fn numbers_shown(&self) -> usize {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| matches!(e, AgentEvent::Number { .. }))
            .count()
    }
}

fn ended(r: Result<SessionInfo, ClientError>) -> String {
    match r {
        Err(ClientError::Server { code, .. }) => code,
        other => panic!("expected the session to have ended, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_fast_user_switching_the_first_session_stays_locked_and_comes_back_with_its_own_approval()
 {
    let w = world(WorkstationPolicy {
        allow_unregistered_workstations: false,
        unlock_grace_minutes: 0,
        fast_user_switching: true,
    })
    .await;
    let (a, b) = (w.a.clone(), w.b.clone());

    // A signs in and locks; the server knows.
    let ticket_a = w.login(&a).await;
    let status = w.client.lock().await.expect("locked");
    assert_eq!(status.state, SessionState::Locked);
    assert!(w.server_session(&ticket_a).await.unwrap().locked);

    // B signs in on the locked workstation: A's session stays, locked, on the server and here.
    let ticket_b = w.login(&b).await;
    let status = w.client.status().await.unwrap();
    assert_eq!(status.state, SessionState::SignedIn);
    assert_eq!(status.session.as_ref().unwrap().uid, b);
    assert_eq!(status.parked.len(), 1);
    assert_eq!(status.parked[0].uid, a);
    let on_server = w
        .server_session(&ticket_a)
        .await
        .expect("A's session is alive");
    assert!(on_server.locked);
    assert!(!w.server_session(&ticket_b).await.unwrap().locked);

    // A comes back (no grace period: A's phone approves): A active, B locked and kept.
    let before = w.numbers_shown();
    let status = timeout(PATIENCE, w.client.unlock_as(Some(&a)))
        .await
        .expect("the phone answers in time")
        .expect("A unlocks");
    assert_eq!(w.numbers_shown(), before + 1, "A's phone was asked");
    assert_eq!(status.state, SessionState::SignedIn);
    assert_eq!(status.session.as_ref().unwrap().uid, a);
    let report = status.last_unlock.expect("how the unlock went");
    assert!(!report.resumed_in_grace);
    assert_eq!(report.parked.as_deref(), Some(b.as_str()));
    assert_eq!(status.parked.len(), 1);
    assert_eq!(status.parked[0].uid, b);
    assert!(
        w.server_session(&ticket_b).await.unwrap().locked,
        "B is locked on the server"
    );
    // The phone approval made a new session for A; the old locked one ended.
    assert_eq!(ended(w.server_session(&ticket_a).await), "session_ended");
    let ticket_a2 = w
        .agent
        .ticket()
        .expect("A's new ticket")
        .expose()
        .to_owned();
    assert!(!w.server_session(&ticket_a2).await.unwrap().locked);

    // Unlocking for somebody with no session here says so.
    let (status, code) = match w.client.unlock_as(Some("999999999999")).await {
        Err(AgentError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!((status, code.as_str()), (404, "no_locked_session"));

    // Logging out ends only the active session; --all ends the kept one too.
    let status = w.client.logout().await.expect("logged out");
    assert_eq!(status.state, SessionState::SignedOut);
    assert_eq!(status.parked.len(), 1);
    assert_eq!(ended(w.server_session(&ticket_a2).await), "session_ended");
    assert!(w.server_session(&ticket_b).await.unwrap().locked);
    let status = w.client.logout_all().await.expect("all logged out");
    assert!(status.parked.is_empty());
    assert_eq!(ended(w.server_session(&ticket_b).await), "session_ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_fast_user_switching_a_second_sign_in_ends_the_first_session() {
    let w = world(WorkstationPolicy {
        allow_unregistered_workstations: false,
        unlock_grace_minutes: 0,
        fast_user_switching: false,
    })
    .await;
    let (a, b) = (w.a.clone(), w.b.clone());
    let ticket_a = w.login(&a).await;
    w.client.lock().await.expect("locked");
    let _ticket_b = w.login(&b).await;
    let status = w.client.status().await.unwrap();
    assert_eq!(status.session.as_ref().unwrap().uid, b);
    assert!(status.parked.is_empty());
    assert_eq!(ended(w.server_session(&ticket_a).await), "session_ended");
    // Unlocking for A finds nothing to come back to.
    assert!(matches!(
        w.client.unlock_as(Some(&a)).await,
        Err(AgentError::Refused { status: 404, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn within_the_grace_period_unlocking_needs_no_phone() {
    let w = world(WorkstationPolicy {
        allow_unregistered_workstations: false,
        unlock_grace_minutes: 5,
        fast_user_switching: false,
    })
    .await;
    let ticket_a = w.login(&w.a).await;
    w.client.lock().await.expect("locked");
    assert!(w.agent.ticket().is_none(), "no ticket while locked");
    // While locked, the relying system's validation is refused by the server.
    let refused: Result<vsc_proto::signin::TicketValidation, _> = w
        .relying
        .post_json(
            "/api/v1/tickets/validate",
            &vsc_proto::signin::ValidateTicket {
                ticket: ticket_a.clone(),
            },
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(ClientError::Server { ref code, .. }) if code == "session_locked")
    );
    let before = w.numbers_shown();
    let status = timeout(PATIENCE, w.client.unlock())
        .await
        .expect("in time")
        .expect("unlocked");
    assert_eq!(w.numbers_shown(), before, "the phone was not asked");
    let report = status.last_unlock.expect("how the unlock went");
    assert!(report.resumed_in_grace);
    assert!(report.seconds_since_lock.is_some());
    assert_eq!(status.state, SessionState::SignedIn);
    // The same session goes on.
    assert_eq!(w.agent.ticket().unwrap().expose(), ticket_a);
    assert!(!w.server_session(&ticket_a).await.unwrap().locked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_session_that_ends_on_the_server_is_dropped_here() {
    let w = world(WorkstationPolicy {
        allow_unregistered_workstations: false,
        unlock_grace_minutes: 0,
        fast_user_switching: true,
    })
    .await;
    let ticket_b = w.login(&w.b).await;
    w.client.lock().await.expect("locked");
    let _ticket_a = w.login(&w.a).await;
    assert_eq!(w.client.status().await.unwrap().parked.len(), 1);
    // An RA cancels B's card: the server ends B's sessions, the kept one included.
    let _: serde_json::Value = w
        .relying
        .post_json(
            &format!("/api/v1/ra/cards/{}/cancel", w.b_card),
            &vsc_proto::CancelCard {
                reason_code: Some("cessation-of-operation".into()),
                reason: "left the trust".into(),
                invalidity_date: None,
            },
            Some(&w.ra_token),
        )
        .await
        .expect("the RA cancels B's card");
    assert_eq!(ended(w.server_session(&ticket_b).await), "session_ended");
    // The agent notices when it next looks (the watcher does the same at the kept session's
    // deadline) and drops it; A's session goes on.
    let status = w.client.check().await.expect("status with a check");
    assert!(status.parked.is_empty(), "{status:?}");
    assert_eq!(status.state, SessionState::SignedIn);
    assert_eq!(status.session.as_ref().unwrap().uid, w.a);
    assert!(w.events.lock().expect("events").iter().any(|e| matches!(
        e,
        AgentEvent::Warning { message } if message.contains("locked session of") && message.contains(&w.b)
    )));
}

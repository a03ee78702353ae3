//! Signing in with the phone, end to end: the real server in-process over real TLS on loopback,
//! the real authenticator in a temporary home, and an "agent" that is a plain HTTPS client
//! making the calls a workstation's agent makes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::time::timeout;
use vsc_authenticator::phone::{DeviceEvent, PhoneLink};
use vsc_authenticator::{AuthenticatorError, Client, ClientError, Home, KeystoreError, Passcode};
use vsc_proto::EnrolResponse;
use vsc_proto::signin::{
    AuthContext, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest, PendingAuthRequest,
    TicketValidation, ValidateTicket,
};
use vsc_server::BootstrapActivation;
use vsc_server::state::AppState;

const PASSCODE: &str = "246810";

fn passcode() -> Passcode {
    Passcode::new(PASSCODE).expect("valid passcode")
}

/// A registered workstation as its agent holds it: the registration id and the key.
struct Workstation {
    id: String,
    key: aws_lc_rs::signature::EcdsaKeyPair,
}

impl Workstation {
    fn sign(&self, msg: &[u8]) -> String {
        use base64::Engine as _;
        let sig = self
            .key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
            .expect("sign with the workstation key");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

/// A running server and the agent's client for it.
struct Server {
    state: AppState,
    bootstrap: BootstrapActivation,
    agent: Client,
    /// Registered workstations by label, made on first use.
    workstations: Mutex<std::collections::HashMap<String, Arc<Workstation>>>,
    /// Which workstation opened each request (its agent signs the collection).
    opened_by: Mutex<std::collections::HashMap<String, Arc<Workstation>>>,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn start(sandbox: bool) -> Server {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let mut config = vsc_server::ServerConfig::new(
        dir.path().join("data"),
        "127.0.0.1:0".parse().expect("address"),
    );
    config.sandbox = sandbox;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let clock = vsc_server::clock::OffsetClock::default();
    let instance = vsc_server::instance::prepare(
        config,
        listener.local_addr().expect("bound address"),
        Arc::new(clock.clone()),
    )
    .await
    .expect("prepare a fresh instance");
    let state = instance.state.clone();
    let bootstrap = instance.bootstrap.clone().expect("first start");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(vsc_server::serve(instance, listener, async move {
        let _ = rx.await;
    }));
    let agent = Client::with_root_pem(state.public_url().clone(), &state.ca().root_pem())
        .expect("agent client");
    Server {
        state,
        bootstrap,
        agent,
        workstations: Mutex::default(),
        opened_by: Mutex::default(),
        shutdown: Some(tx),
        _dir: dir,
    }
}

/// A phone's home in a temporary directory.
struct Phone {
    home: Home,
    _dir: TempDir,
}

fn new_phone() -> Phone {
    let dir = tempfile::tempdir().expect("temporary directory");
    let home = Home::open(dir.path().join("home")).expect("open home");
    Phone { home, _dir: dir }
}

async fn enrol(
    server: &Server,
    phone: &Phone,
    simulated: bool,
) -> Result<EnrolResponse, AuthenticatorError> {
    vsc_authenticator::enrol(
        &phone.home,
        &server.bootstrap.activation.url,
        None,
        None,
        &passcode(),
        simulated,
    )
    .await
}

/// The bootstrap RA Manager's phone, enrolled.
async fn enrolled_phone(server: &Server, simulated: bool) -> Phone {
    let phone = new_phone();
    enrol(server, &phone, simulated)
        .await
        .expect("enrol the first RA Manager's phone");
    phone
}

fn context(workstation: &str) -> AuthContext {
    AuthContext {
        workstation_id: workstation.to_owned(),
        workstation_name: format!("WARD-7-{workstation}"),
        client_address: "10.1.2.3".to_owned(),
        agent_version: "0.1.0".to_owned(),
        purpose: "Sign in to clinical systems".to_owned(),
        ..AuthContext::default()
    }
}

/// The workstation `label`, registered (as `WARD-7-<label>`, at the national organisation) on
/// first use: a code issued in-process as `vsc ra workstation code` would, and the agent's
/// enrolment over TLS with a key made here.
async fn workstation(server: &Server, label: &str) -> Arc<Workstation> {
    use base64::Engine as _;
    if let Some(ws) = server.workstations.lock().expect("map").get(label) {
        return ws.clone();
    }
    let ctx = vsc_server::state::AuditContext {
        actor: server.bootstrap.uid.clone(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let mut tx = server.state.store().write().await.expect("transaction");
    let code = vsc_server::routes::workstation::issue_code(
        &server.state,
        &mut tx,
        &ctx,
        server.state.national_ods(),
        None,
    )
    .await
    .expect("a registration code");
    tx.commit().await.expect("commit");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .expect("CSR");
    let enrolled: vsc_proto::workstation::WorkstationEnrolled = server
        .agent
        .post_json(
            "/api/v1/workstations/enrol",
            &vsc_proto::workstation::EnrolWorkstation {
                code: code.code,
                name: format!("WARD-7-{label}"),
                csr: base64::engine::general_purpose::STANDARD.encode(csr.der()),
            },
            None,
        )
        .await
        .expect("the workstation registers");
    let ws = Arc::new(Workstation {
        id: enrolled.workstation_id,
        key: aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            key.serialized_der(),
        )
        .expect("workstation key"),
    });
    server
        .workstations
        .lock()
        .expect("map")
        .insert(label.to_owned(), ws.clone());
    ws
}

/// Opens a sign-in request as a registered workstation's agent does: over a fresh challenge,
/// signed with the workstation key.
async fn try_open_request(
    server: &Server,
    workstation_label: &str,
) -> Result<AuthRequestCreated, ClientError> {
    let ws = workstation(server, workstation_label).await;
    let context = context(workstation_label);
    let challenge: vsc_proto::ChallengeResponse = server
        .agent
        .post_json(
            "/api/v1/workstations/challenge",
            &vsc_proto::signin::WorkstationChallengeRequest {
                workstation_id: ws.id.clone(),
            },
            None,
        )
        .await?;
    let uid = server.bootstrap.uid.clone();
    let statement = vsc_proto::signin::workstation_open_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        &ws.id,
        &uid,
        &context.purpose,
        &context.agent_version,
        &server.state.origin(),
    );
    let created: AuthRequestCreated = server
        .agent
        .post_json(
            "/api/v1/auth/requests",
            &CreateAuthRequest {
                uid,
                context,
                workstation: Some(vsc_proto::signin::WorkstationProof {
                    workstation_id: ws.id.clone(),
                    challenge_id: challenge.challenge_id,
                    signature: ws.sign(&statement),
                }),
            },
            None,
        )
        .await?;
    server
        .opened_by
        .lock()
        .expect("map")
        .insert(created.request_id.clone(), ws);
    Ok(created)
}

async fn open_request(server: &Server, workstation: &str) -> AuthRequestCreated {
    try_open_request(server, workstation)
        .await
        .expect("the agent opens a sign-in request")
}

/// What the agent sees, waiting up to `wait` seconds (it signs the collection).
async fn outcome(server: &Server, created: &AuthRequestCreated, wait: u64) -> AuthRequestOutcome {
    let ws = server
        .opened_by
        .lock()
        .expect("map")
        .get(&created.request_id)
        .cloned()
        .expect("a request this test opened");
    let signature = ws.sign(&vsc_proto::signin::workstation_collect_statement(
        &created.request_id,
        &created.nonce,
        &ws.id,
        &server.state.origin(),
    ));
    server
        .agent
        .get_json_with_headers(
            &format!("/api/v1/auth/requests/{}?wait={wait}", created.request_id),
            &[
                ("X-Vsc-Request-Secret", &created.poll_secret),
                (vsc_proto::signin::WORKSTATION_SIGNATURE_HEADER, &signature),
            ],
        )
        .await
        .expect("the agent reads the outcome")
}

async fn next_event<S>(stream: &mut std::pin::Pin<Box<S>>) -> Option<S::Item>
where
    S: Stream,
{
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn server_code(err: &AuthenticatorError) -> Option<(u16, &str)> {
    match err {
        AuthenticatorError::Client(ClientError::Server { status, code, .. }) => {
            Some((*status, code.as_str()))
        }
        _ => None,
    }
}

/// Enrolment makes a private device key; the phone hears a new request over server-sent events
/// within a second; the right number approves; the agent collects a ticket once and a relying
/// system validates it; the device token is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_arrives_over_sse_and_the_right_number_signs_in() {
    let server = start(false).await;
    let phone = new_phone();

    // A simulated phone is refused by a server that is not a sandbox, and nothing is installed.
    let err = enrol(&server, &phone, true)
        .await
        .expect_err("a real server refuses a simulated phone");
    assert_eq!(
        server_code(&err),
        Some((403, "simulated_device_refused")),
        "{err}"
    );
    assert!(!phone.home.device_key_path().exists());
    assert!(matches!(
        PhoneLink::new(&phone.home),
        Err(AuthenticatorError::NotEnrolled)
    ));

    enrol(&server, &phone, false).await.expect("enrol");
    let key_path = phone.home.device_key_path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("device-key.json exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let device_id = phone
        .home
        .device()
        .expect("device.json")
        .expect("device")
        .device_id;

    let link = PhoneLink::new(&phone.home).expect("link");
    let mut events = Box::pin(link.events().await.expect("open the event stream"));
    let created = open_request(&server, "pc-1").await;
    let event = timeout(Duration::from_secs(1), next_event(&mut events))
        .await
        .expect("the request arrives within a second")
        .expect("the stream is open")
        .expect("a readable event");
    let DeviceEvent::Request(request) = event else {
        panic!("expected a request, got {event:?}");
    };
    assert_eq!(request.request_id, created.request_id);
    assert_eq!(request.uid, server.bootstrap.uid);
    // The phone sees the registered workstation and the address the server saw.
    let ws = workstation(&server, "pc-1").await;
    assert_eq!(
        request.context,
        AuthContext {
            workstation_id: ws.id.clone(),
            client_address: "127.0.0.1".into(),
            registered: true,
            organisation: server.state.national_ods().into(),
            organisation_name: request.context.organisation_name.clone(),
            ..context("pc-1")
        }
    );
    assert!(!request.context.organisation_name.is_empty());
    vsc_authenticator::check_request(&request, now()).expect("a genuine request passes");

    // What is not a two-digit number is refused here, before anything is sent.
    assert!(matches!(
        link.approve(&request, 100, &passcode()).await,
        Err(AuthenticatorError::NotTwoDigits { number: 100 })
    ));
    assert_eq!(outcome(&server, &created, 0).await.state, "pending");

    link.approve(&request, created.number, &passcode())
        .await
        .expect("the right number approves");
    let closed = timeout(Duration::from_secs(2), next_event(&mut events))
        .await
        .expect("the closing arrives")
        .expect("the stream is open")
        .expect("a readable event");
    assert_eq!(
        closed,
        DeviceEvent::Closed {
            request_id: created.request_id.clone(),
            state: "approved".into()
        }
    );

    let collected = outcome(&server, &created, 5).await;
    assert_eq!(collected.state, "collected");
    let ticket = collected.ticket.expect("a ticket, the first time");
    let session = collected.session.expect("the session");
    assert_eq!(session.uid, server.bootstrap.uid);
    let again = outcome(&server, &created, 0).await;
    assert_eq!(again.state, "collected");
    assert_eq!(again.ticket, None, "the ticket is handed out once");

    let validation: TicketValidation = server
        .agent
        .post_json(
            "/api/v1/tickets/validate",
            &ValidateTicket {
                ticket: ticket.clone(),
            },
            None,
        )
        .await
        .expect("a relying system validates the ticket");
    assert_eq!(validation.uid, server.bootstrap.uid);
    assert_eq!(validation.given_name, session.given_name);

    // Every call above used one device token.
    let issued = vsc_store::audit::for_subject(server.state.store(), &device_id, 100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "device.token.issued")
        .count();
    assert_eq!(issued, 1, "the device token is cached");

    // Automatic approval is for simulated phones only.
    let err = vsc_authenticator::auto_approve(
        phone.home.clone(),
        passcode(),
        vsc_authenticator::WorkstationScreen::new(),
        |_| {},
        std::future::pending(),
    )
    .await
    .expect_err("a real phone does not approve by itself");
    assert!(matches!(err, AuthenticatorError::NotSimulated), "{err}");
}

/// A request made while the phone was offline is delivered when it connects, over the event
/// stream and over long-polling; a long-poll wakes for a new request; declining closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_phone_gets_pending_requests_on_connect_and_long_poll_works() {
    let server = start(false).await;
    let phone = enrolled_phone(&server, false).await;
    let first = open_request(&server, "pc-1").await;

    let link = PhoneLink::new(&phone.home).expect("link");
    let mut listener = link.listener();
    let event = timeout(Duration::from_secs(2), listener.next())
        .await
        .expect("delivered on connect")
        .expect("listening");
    assert!(
        matches!(&event, DeviceEvent::Request(r) if r.request_id == first.request_id),
        "{event:?}"
    );

    // The long-poll fallback sees it too, and a long-poll-only listener delivers it.
    let pending = link.pending(0).await.expect("pending");
    assert_eq!(
        pending
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        vec![first.request_id.as_str()]
    );
    let mut poller = link.listener().long_poll_only();
    let event = timeout(Duration::from_secs(2), poller.next())
        .await
        .expect("delivered by long-poll")
        .expect("polling");
    assert!(matches!(&event, DeviceEvent::Request(r) if r.request_id == first.request_id));

    link.decline(&first.request_id, false)
        .await
        .expect("decline");
    assert_eq!(outcome(&server, &first, 0).await.state, "declined");
    let event = timeout(Duration::from_secs(2), listener.next())
        .await
        .expect("closing over the stream")
        .expect("listening");
    assert_eq!(
        event,
        DeviceEvent::Closed {
            request_id: first.request_id.clone(),
            state: "declined".into()
        }
    );
    // Declining twice is refused by the server.
    let err = link
        .decline(&first.request_id, false)
        .await
        .expect_err("already declined");
    assert_eq!(server_code(&err), Some((409, "request_already_decided")));

    // A long-poll waiting with nothing pending wakes as soon as a request is made.
    let waiting = {
        let link = link.clone();
        tokio::spawn(async move { link.pending(20).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = open_request(&server, "pc-2").await;
    let woke = timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the long-poll answers at once")
        .expect("task")
        .expect("pending");
    assert_eq!(woke.len(), 1);
    assert_eq!(woke[0].request_id, second.request_id);
    // The long-poll-only listener learns that the first is gone and the second is new.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(
            timeout(Duration::from_secs(3), poller.next())
                .await
                .expect("the poller hears both")
                .expect("polling"),
        );
    }
    assert!(seen.contains(&DeviceEvent::Closed {
        request_id: first.request_id.clone(),
        state: "closed".into()
    }));
    assert!(
        seen.iter()
            .any(|e| matches!(e, DeviceEvent::Request(r) if r.request_id == second.request_id))
    );
}

/// Typing a number other than the one the workstation shows is refused by the server, and the
/// request is dead: the person must start again at the workstation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_number_kills_the_request() {
    let server = start(false).await;
    let phone = enrolled_phone(&server, false).await;
    let link = PhoneLink::new(&phone.home).expect("link");
    let created = open_request(&server, "pc-1").await;
    let request = only_pending(&link).await;
    let wrong = (created.number + 37) % 100;
    let err = link
        .approve(&request, wrong, &passcode())
        .await
        .expect_err("the wrong number");
    assert_eq!(server_code(&err), Some((403, "wrong_number")), "{err}");
    let err = link
        .approve(&request, created.number, &passcode())
        .await
        .expect_err("the request is dead");
    assert_eq!(server_code(&err), Some((409, "request_already_decided")));
    let seen = outcome(&server, &created, 0).await;
    assert_eq!(seen.state, "failed");
    assert_eq!(seen.ticket, None);
    assert!(link.pending(0).await.expect("pending").is_empty());
}

async fn only_pending(link: &PhoneLink) -> PendingAuthRequest {
    let mut pending = link.pending(5).await.expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    pending.remove(0)
}

/// What the phone refuses by itself sends nothing: a tampered context, and a wrong passcode
/// (which the keystore counts). The genuine request still approves afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_refusals_send_nothing_and_wrong_passcodes_are_counted() {
    let server = start(false).await;
    let phone = enrolled_phone(&server, false).await;
    let link = PhoneLink::new(&phone.home).expect("link");
    let created = open_request(&server, "pc-1").await;
    let request = only_pending(&link).await;

    let mut tampered = request.clone();
    tampered.context.workstation_name = "SOMEONE-ELSES-PC".into();
    assert!(matches!(
        vsc_authenticator::check_request(&tampered, now()),
        Err(AuthenticatorError::ContextMismatch { .. })
    ));
    let err = link
        .approve(&tampered, created.number, &passcode())
        .await
        .expect_err("refused locally");
    assert!(
        matches!(err, AuthenticatorError::ContextMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Do not approve it"), "{err}");

    let wrong = Passcode::new("999999").expect("format");
    let err = link
        .approve(&request, created.number, &wrong)
        .await
        .expect_err("wrong passcode");
    assert!(
        matches!(
            err,
            AuthenticatorError::Keystore(KeystoreError::WrongPasscode { remaining: 2 })
        ),
        "{err}"
    );
    let status = vsc_authenticator::status(&phone.home).expect("status");
    assert_eq!(status.failed_attempts, 1);
    assert_eq!(outcome(&server, &created, 0).await.state, "pending");

    link.approve(&request, created.number, &passcode())
        .await
        .expect("the genuine request, the right passcode");
    let status = vsc_authenticator::status(&phone.home).expect("status");
    assert_eq!(status.failed_attempts, 0, "a success clears the count");
    assert_eq!(outcome(&server, &created, 5).await.state, "collected");
}

/// "I didn't do this" closes the request as reported and blocks new requests to the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_me_blocks_new_requests() {
    let server = start(false).await;
    let phone = enrolled_phone(&server, false).await;
    let link = PhoneLink::new(&phone.home).expect("link");
    let created = open_request(&server, "pc-1").await;
    link.decline(&created.request_id, true)
        .await
        .expect("report it");
    assert_eq!(outcome(&server, &created, 0).await.state, "reported");
    let err = try_open_request(&server, "pc-1")
        .await
        .expect_err("the card is blocked");
    assert!(
        matches!(&err, ClientError::Server { status: 403, code, .. } if code == "card_blocked"),
        "{err}"
    );
    assert!(link.pending(0).await.expect("pending").is_empty());
}

/// On a sandbox server a simulated phone approves by itself with the number the workstation
/// shows (read off a [`WorkstationScreen`], never from the server), and stops when told to. A
/// request whose number the workstation does not show is not approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_phone_approves_by_itself_on_a_sandbox_server() {
    let server = start(true).await;
    let phone = enrolled_phone(&server, true).await;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (stop, stopped) = oneshot::channel::<()>();
    let screen = vsc_authenticator::WorkstationScreen::new();
    let task = {
        let lines = lines.clone();
        tokio::spawn(vsc_authenticator::auto_approve(
            phone.home.clone(),
            passcode(),
            screen.clone(),
            move |line| lines.lock().expect("lines").push(line.to_owned()),
            async move {
                let _ = stopped.await;
            },
        ))
    };
    // Nothing on the workstation's screen yet: the phone has no number to type and waits.
    let created = open_request(&server, "pc-1").await;
    let seen = outcome(&server, &created, 3).await;
    assert_eq!(seen.state, "pending", "{:?}", lines.lock().expect("lines"));
    // The workstation shows the number (as the agent does), and the phone types it.
    screen.show(&server.bootstrap.uid, created.number);
    let seen = outcome(&server, &created, 10).await;
    assert_eq!(
        seen.state,
        "collected",
        "{:?}",
        lines.lock().expect("lines")
    );
    assert!(seen.ticket.is_some());
    stop.send(()).expect("still running");
    timeout(Duration::from_secs(5), task)
        .await
        .expect("stops when told")
        .expect("task")
        .expect("no error");
    let lines = lines.lock().expect("lines");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("approved sign-in request") && l.contains(&created.request_id)),
        "{lines:?}"
    );
}

/// A simulated phone started with the wrong passcode stops at once, after one counted try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_phone_with_a_wrong_passcode_stops() {
    let server = start(true).await;
    let phone = enrolled_phone(&server, true).await;
    let err = timeout(
        Duration::from_secs(10),
        vsc_authenticator::auto_approve(
            phone.home.clone(),
            Passcode::new("999999").expect("format"),
            vsc_authenticator::WorkstationScreen::new(),
            |_| {},
            std::future::pending(),
        ),
    )
    .await
    .expect("returns")
    .expect_err("wrong passcode");
    assert!(
        matches!(
            err,
            AuthenticatorError::Keystore(KeystoreError::WrongPasscode { remaining: 2 })
        ),
        "{err}"
    );
    assert_eq!(
        vsc_authenticator::status(&phone.home)
            .expect("status")
            .failed_attempts,
        1
    );
}

//! Test harness: the real server in-process over real TLS on loopback, with a clock the test can
//! move forward, and phones that are the real authenticator library in temporary directories.
//!
//! Every helper panics with a message saying what failed, so a test reads as the story it checks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use tokio::sync::oneshot;
use url::Url;
use vsc_authenticator::{
    AuthenticatorError, Client, ClientError, Home, Keystore as _, Passcode, PhoneLink,
};
use vsc_proto::signin::{
    ApproveAuthRequest, AuthContext, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest,
    DeclineAuthRequest, DeviceChallengeRequest, DeviceToken, DeviceTokenRequest,
    PendingAuthRequest, SessionInfo, TicketValidation, ValidateTicket,
};
use vsc_proto::{
    AssignPosition, CardWithCode, ChallengeResponse, CreateOrganisation, CreatePerson, DeviceFacts,
    EnrolRequest, EnrolResponse, IssueCard, LinkKind, Person, RaRoleGrant, RecordIdentityCheck,
};
use vsc_server::clock::OffsetClock;
use vsc_server::state::AppState;
use vsc_server::{BootstrapActivation, ServerConfig};
use vsc_store::AuditEvent;

/// The passcode every test phone is enrolled with.
pub const PASSCODE: &str = "123456";

/// A session as its identity agent holds it: the ticket (which relying systems see too) and the
/// agent key (which only the agent has).
#[derive(Debug, Clone)]
pub struct AgentAuth {
    /// The session ticket.
    pub ticket: String,
    /// The session's agent key.
    pub key: String,
}

/// Certificates a card enrolled by the real app holds: sign-in, EPS signing, and the virtual
/// smartcard's 9A and 9C.
pub const CARD_CERTIFICATES: i64 = 4;

/// The passcode, checked.
pub fn passcode() -> Passcode {
    Passcode::new(PASSCODE).expect("a six-digit passcode is valid")
}

/// A running server.
pub struct TestServer {
    /// The server's shared state (store, CA, configuration).
    pub state: AppState,
    /// The server's clock; `advance` moves it forward.
    pub clock: OffsetClock,
    /// The server's base URL.
    pub url: Url,
    /// The root CA fingerprint, lowercase hex.
    pub fp: String,
    /// The first RA Manager's activation.
    pub bootstrap: BootstrapActivation,
    /// A client pinned to the instance root, as a phone before enrolment.
    pub client: Client,
    /// Registered test workstations by label (see [`TestServer::workstation`]).
    workstations: std::sync::Mutex<std::collections::HashMap<String, Arc<TestWorkstation>>>,
    /// Which workstation opened each request, so its agent signs the collection.
    opened_by: std::sync::Mutex<std::collections::HashMap<String, Arc<TestWorkstation>>>,
    shutdown: Option<oneshot::Sender<()>>,
    serve: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A phone: the authenticator's home in a temporary directory.
pub struct Phone {
    /// The home.
    pub home: Home,
    _dir: TempDir,
}

impl Phone {
    /// A new, empty phone.
    pub fn new() -> Phone {
        let dir = tempfile::tempdir().expect("temporary directory for a phone");
        let home = Home::open(dir.path().join("home")).expect("open the phone's home");
        Phone { home, _dir: dir }
    }

    /// This phone's device id (made on first use).
    pub fn device_id(&self) -> String {
        match self.home.device().expect("read device.json") {
            Some(device) => device.device_id,
            None => {
                self.home
                    .device_or_create(false)
                    .expect("device id")
                    .device_id
            }
        }
    }
}

/// A registered workstation as its agent holds it: the registration and the workstation key.
#[derive(Debug)]
pub struct TestWorkstation {
    /// What the server answered at enrolment.
    pub enrolled: vsc_proto::workstation::WorkstationEnrolled,
    /// Registration id.
    pub id: String,
    key: aws_lc_rs::signature::EcdsaKeyPair,
}

impl TestWorkstation {
    fn new(
        enrolled: vsc_proto::workstation::WorkstationEnrolled,
        key: &rcgen::KeyPair,
    ) -> TestWorkstation {
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            key.serialized_der(),
        )
        .expect("the workstation key");
        TestWorkstation {
            id: enrolled.workstation_id.clone(),
            enrolled,
            key,
        }
    }

    /// Signs `msg` with the workstation key; standard base64 of the DER.
    pub fn sign(&self, msg: &[u8]) -> String {
        let sig = self
            .key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
            .expect("sign with the workstation key");
        B64.encode(sig.as_ref())
    }

    /// The proof that opens a request for `uid` with `context` over `challenge`.
    pub fn open_proof(
        &self,
        challenge: &ChallengeResponse,
        uid: &str,
        context: &AuthContext,
        origin: &str,
    ) -> vsc_proto::signin::WorkstationProof {
        let statement = vsc_proto::signin::workstation_open_statement(
            &challenge.challenge_id,
            &challenge.nonce,
            &self.id,
            uid,
            &context.purpose,
            &context.agent_version,
            origin,
        );
        vsc_proto::signin::WorkstationProof {
            workstation_id: self.id.clone(),
            challenge_id: challenge.challenge_id.clone(),
            signature: self.sign(&statement),
        }
    }

    /// The signature that collects `created`.
    pub fn collect_signature(&self, created: &AuthRequestCreated, origin: &str) -> String {
        self.sign(&vsc_proto::signin::workstation_collect_statement(
            &created.request_id,
            &created.nonce,
            &self.id,
            origin,
        ))
    }
}

/// An enrolled, signed-in RA.
pub struct Ra {
    /// The RA's phone.
    pub phone: Phone,
    /// UID.
    pub uid: String,
    /// Card id.
    pub card_id: String,
    /// Session token.
    pub token: String,
}

/// Starts a server with the default configuration.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server after `configure` has adjusted its configuration.
pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let bound = listener.local_addr().expect("bound address");
    let mut config = ServerConfig::new(dir.path().join("data"), bound);
    // The test command runs the server tests a second time on PostgreSQL (VSC_TEST_POSTGRES).
    config.database = vsc_store::postgres::test_database()
        .await
        .expect("create a PostgreSQL test database");
    configure(&mut config);
    let clock = OffsetClock::default();
    let instance = vsc_server::instance::prepare(config, bound, Arc::new(clock.clone()))
        .await
        .expect("prepare a fresh instance");
    let state = instance.state.clone();
    let bootstrap = instance
        .bootstrap
        .clone()
        .expect("a fresh instance has a bootstrap activation");
    let (tx, rx) = oneshot::channel::<()>();
    let serve = tokio::spawn(vsc_server::serve(instance, listener, async {
        rx.await.ok();
    }));
    let url = state.public_url().clone();
    let fp = state.ca().root_fingerprint().to_hex();
    let client = Client::with_fingerprint(url.clone(), &fp).expect("pinned client");
    TestServer {
        state,
        clock,
        url,
        fp,
        bootstrap,
        client,
        workstations: Default::default(),
        opened_by: Default::default(),
        shutdown: Some(tx),
        serve: Some(serve),
        _dir: dir,
    }
}

/// Copies the directory `from` into `to`, recursively (a node's data directory).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    // Private directories stay private (the server refuses a data directory others can read).
    let permissions = std::fs::metadata(from).expect("metadata").permissions();
    std::fs::set_permissions(to, permissions).expect("copy the directory's permissions");
    for entry in std::fs::read_dir(from).expect("read the data directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a data file");
        }
    }
}

impl TestServer {
    /// Starts a second node of this instance, as an operator adds one: a copy of this node's
    /// data directory (master key, sealed CA keys) and the same `--database` (PostgreSQL), on a
    /// loopback port of its own. Its clock starts where this node's is.
    pub async fn start_node(&self) -> TestServer {
        let database = self
            .state
            .config()
            .database
            .clone()
            .expect("a second node needs a shared (PostgreSQL) database");
        let dir = tempfile::tempdir().expect("temporary data directory");
        copy_dir(&self.state.config().data_dir, &dir.path().join("data"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let bound = listener.local_addr().expect("bound address");
        let mut config = ServerConfig::new(dir.path().join("data"), bound);
        config.database = Some(database);
        let clock = self.clock.clone();
        let instance = vsc_server::instance::prepare(config, bound, Arc::new(clock.clone()))
            .await
            .expect("prepare the second node");
        assert!(!instance.created, "the second node uses the instance's CA");
        assert!(
            instance.bootstrap.is_none(),
            "the second node does not bootstrap the instance again"
        );
        let state = instance.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let serve = tokio::spawn(vsc_server::serve(instance, listener, async {
            rx.await.ok();
        }));
        let url = state.public_url().clone();
        let fp = state.ca().root_fingerprint().to_hex();
        let client = Client::with_fingerprint(url.clone(), &fp).expect("pinned client");
        TestServer {
            state,
            clock,
            url,
            fp,
            bootstrap: self.bootstrap.clone(),
            client,
            workstations: Default::default(),
            opened_by: Default::default(),
            shutdown: Some(tx),
            serve: Some(serve),
            _dir: dir,
        }
    }

    /// Kills this node as abruptly as an in-process test can: its serve future is dropped
    /// mid-flight (no graceful shutdown, no final flush), its open streams and long polls end,
    /// and its database connections are closed, so nothing of it writes afterwards.
    pub async fn kill(&mut self) {
        let serve = self.serve.take().expect("the node is running");
        serve.abort();
        let _ = serve.await;
        self.state.hub().stop();
        self.state.store().close().await;
        // The serve future is gone: the signal has nothing left to stop gracefully.
        drop(self.shutdown.take());
    }
}

/// Standard base64 of a DER CSR pair: the two requests an enrolment carries.
#[derive(Clone)]
pub struct Csrs {
    /// ECDSA P-256, base64 DER.
    pub auth: String,
    /// RSA-2048, base64 DER.
    pub signing: String,
}

/// A CSR for `key`, DER.
pub fn csr_der(key: &rcgen::KeyPair) -> Vec<u8> {
    rcgen::CertificateParams::default()
        .serialize_request(key)
        .expect("build a CSR")
        .der()
        .to_vec()
}

/// A fresh P-256 CSR, DER.
pub fn p256_csr() -> Vec<u8> {
    csr_der(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key"))
}

/// A fresh RSA-2048 CSR, DER.
pub fn rsa2048_csr() -> Vec<u8> {
    csr_der(
        &rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA-2048 key"),
    )
}

impl Csrs {
    /// New keys, new requests.
    pub fn generate() -> Csrs {
        Csrs {
            auth: B64.encode(p256_csr()),
            signing: B64.encode(rsa2048_csr()),
        }
    }
}

/// What a real (not simulated) phone of this release says about itself.
pub fn device_facts(device_id: &str) -> DeviceFacts {
    DeviceFacts {
        device_id: device_id.to_owned(),
        platform: "vsc-cli".to_owned(),
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        model: "integration test".to_owned(),
        simulated: false,
    }
}

/// A hand-made enrolment request. Built through serde so that optional fields added to the
/// wire type later keep their defaults.
pub fn enrol_request(code: &str, device_id: &str, csrs: &Csrs) -> EnrolRequest {
    let device_key = vsc_authenticator::DeviceKey::generate(device_id).expect("a device key");
    serde_json::from_value(serde_json::json!({
        "activation_code": code,
        "device": device_facts(device_id),
        "auth_csr": csrs.auth,
        "signing_csr": csrs.signing,
        "recovery_key": B64.encode([7u8; 32]),
        "device_key": device_key.spki_base64(),
        "passcode_verifier": B64.encode([8u8; 32]),
        "passcode_secret": B64.encode([9u8; 32]),
    }))
    .expect("an enrolment request")
}

/// `code` with one character of its secret part (the last one) changed.
pub fn mistype_secret(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// `code` with one character of its id part (the first one) changed.
pub fn mistype_id(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Asserts a request was refused with `status` and `code`; returns the server's message.
#[track_caller]
pub fn assert_api_error<T: Debug>(
    result: Result<T, ClientError>,
    status: u16,
    code: &str,
) -> String {
    match result {
        Err(ClientError::Server {
            status: s,
            code: c,
            message,
        }) => {
            assert_eq!(
                (s, c.as_str()),
                (status, code),
                "expected HTTP {status} {code}, got HTTP {s} {c}: {message}"
            );
            message
        }
        other => panic!("expected HTTP {status} {code}, got {other:?}"),
    }
}

/// [`assert_api_error`] for a flow of the authenticator library.
#[track_caller]
pub fn assert_flow_error<T: Debug>(
    result: Result<T, AuthenticatorError>,
    status: u16,
    code: &str,
) -> String {
    match result {
        Err(AuthenticatorError::Client(e)) => assert_api_error::<()>(Err(e), status, code),
        other => panic!("expected HTTP {status} {code} from the server, got {other:?}"),
    }
}

/// The machine code of a server refusal inside a flow error, if it is one.
pub fn server_code(err: &AuthenticatorError) -> Option<(u16, String)> {
    match err {
        AuthenticatorError::Client(ClientError::Server { status, code, .. }) => {
            Some((*status, code.clone()))
        }
        _ => None,
    }
}

/// Rows of every table that a refused request must leave alone, as text. Excluded: the audit
/// log, the wrong-guess counter of one-time codes and login challenges (consumed even when the
/// login then fails) — the "counters".
pub type Snapshot = BTreeMap<String, Vec<String>>;

const SNAPSHOT_TABLES: &[&str] = &[
    "organisations",
    "people",
    "positions",
    "ra_roles",
    "identity_checks",
    "devices",
    "cards",
    "certificates",
    "one_time_codes",
    "ra_sessions",
    "crls",
    "position_requests",
    "card_devices",
    "card_replacements",
    "version_rules",
    "card_renewals",
    "card_renewal_orders",
    "licence_pool",
    "licence_applications",
    "card_licences",
    "licence_extension_requests",
    "push_subscriptions",
];

impl TestServer {
    /// A new phone enrols with `link` (activation link) under [`PASSCODE`].
    pub async fn enrol(
        &self,
        phone: &Phone,
        link: &str,
    ) -> Result<EnrolResponse, AuthenticatorError> {
        vsc_authenticator::enrol(&phone.home, link, None, None, &passcode(), false).await
    }

    /// Signs `phone` in as an RA; returns the session token.
    pub async fn login(&self, phone: &Phone) -> String {
        vsc_authenticator::ra_login(&phone.home, &passcode())
            .await
            .expect("RA login")
            .token
    }

    /// Enrols the first RA Manager with the bootstrap activation and signs them in.
    pub async fn enrol_bootstrap_ram(&self) -> Ra {
        let phone = Phone::new();
        let enrolled = self
            .enrol(&phone, &self.bootstrap.activation.url)
            .await
            .expect("the bootstrap RA Manager enrols");
        assert_eq!(enrolled.uid, self.bootstrap.uid);
        let token = self.login(&phone).await;
        Ra {
            phone,
            uid: enrolled.uid,
            card_id: enrolled.card_id,
            token,
        }
    }

    /// `GET path` with an optional bearer token.
    pub async fn get<R: DeserializeOwned>(
        &self,
        token: Option<&str>,
        path: &str,
    ) -> Result<R, ClientError> {
        self.client.get_json(path, token).await
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        token: Option<&str>,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.client.post_json(path, body, token).await
    }

    /// `GET path` as the session's identity agent: the ticket and the agent key.
    pub async fn agent_get<R: DeserializeOwned>(
        &self,
        auth: &AgentAuth,
        path: &str,
    ) -> Result<R, ClientError> {
        let bearer = format!("Bearer {}", auth.ticket);
        self.client
            .get_json_with_headers(
                path,
                &[
                    ("authorization", bearer.as_str()),
                    (vsc_proto::signin::AGENT_KEY_HEADER, auth.key.as_str()),
                ],
            )
            .await
    }

    /// `POST path` as the session's identity agent: the ticket and the agent key.
    pub async fn agent_post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        auth: &AgentAuth,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let bearer = format!("Bearer {}", auth.ticket);
        self.client
            .post_json_with_headers(
                path,
                body,
                &[
                    ("authorization", bearer.as_str()),
                    (vsc_proto::signin::AGENT_KEY_HEADER, auth.key.as_str()),
                ],
            )
            .await
    }

    /// `POST /api/v1/enrol` with a hand-made body.
    pub async fn enrol_raw(&self, request: &EnrolRequest) -> Result<EnrolResponse, ClientError> {
        self.post(None, "/api/v1/enrol", request).await
    }

    /// A reqwest client trusting only the instance root, for bodies that are not JSON at all.
    pub fn raw_http(&self) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        let der = vsc_pki::pem_to_der(&self.state.ca().root_pem()).expect("root PEM");
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .expect("root certificate");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build()
            .expect("reqwest client")
    }

    /// Registers an organisation.
    pub async fn create_org(&self, token: &str, ods: &str) {
        let _: vsc_proto::Organisation = self
            .post(
                Some(token),
                "/api/v1/ra/organisations",
                &CreateOrganisation {
                    ods_code: ods.to_owned(),
                    name: format!("Trust {ods}"),
                },
            )
            .await
            .expect("create organisation");
    }

    /// Creates a person registered by `org`; returns the UID.
    pub async fn create_person(&self, token: &str, org: &str) -> String {
        let person: Person = self
            .post(
                Some(token),
                "/api/v1/ra/people",
                &CreatePerson {
                    given_name: "Test".to_owned(),
                    family_name: format!("Person of {org}"),
                    email: None,
                    organisation: org.to_owned(),
                },
            )
            .await
            .expect("create person");
        person.uid
    }

    /// Records a level-3 identity check (passport and driving licence) at `org`.
    pub async fn id_check(&self, token: &str, uid: &str, org: &str) {
        let _: Person = self
            .post(
                Some(token),
                &format!("/api/v1/ra/people/{uid}/identity-checks"),
                &RecordIdentityCheck {
                    evidence: vec!["passport".to_owned(), "driving-licence".to_owned()],
                    level: 3,
                    organisation: org.to_owned(),
                },
            )
            .await
            .expect("record identity check");
    }

    /// Issues a card at `org`.
    pub async fn issue_card(&self, token: &str, uid: &str, org: &str) -> CardWithCode {
        self.try_issue_card(token, uid, org)
            .await
            .expect("issue card")
    }

    /// Tries to issue a card at `org`.
    pub async fn try_issue_card(
        &self,
        token: &str,
        uid: &str,
        org: &str,
    ) -> Result<CardWithCode, ClientError> {
        self.post(
            Some(token),
            &format!("/api/v1/ra/people/{uid}/cards"),
            &IssueCard {
                organisation: org.to_owned(),
            },
        )
        .await
    }

    /// Gives `uid` an RA role at `org`.
    pub async fn grant_ra_role(
        &self,
        token: &str,
        uid: &str,
        org: &str,
        role: &str,
        assignable: &[&str],
    ) {
        let _: Person = self
            .post(
                Some(token),
                &format!("/api/v1/ra/people/{uid}/ra-roles"),
                &RaRoleGrant {
                    role: role.to_owned(),
                    organisation: org.to_owned(),
                    assignable_roles: assignable.iter().map(|r| (*r).to_owned()).collect(),
                    assignable_activities: vec![],
                },
            )
            .await
            .expect("grant RA role");
    }

    /// Tries to assign a position.
    pub async fn assign_position(
        &self,
        token: &str,
        uid: &str,
        org: &str,
        role_code: &str,
    ) -> Result<Person, ClientError> {
        self.post(
            Some(token),
            &format!("/api/v1/ra/people/{uid}/positions"),
            &AssignPosition {
                organisation: org.to_owned(),
                role_code: role_code.to_owned(),
                role_name: "Clinical Practitioner Access Role".to_owned(),
                activities: vec!["B0570".to_owned()],
            },
        )
        .await
    }

    /// Assigns a position with the given activity codes.
    pub async fn assign_position_with(
        &self,
        token: &str,
        uid: &str,
        org: &str,
        role_code: &str,
        activities: &[&str],
    ) -> Result<Person, ClientError> {
        self.post(
            Some(token),
            &format!("/api/v1/ra/people/{uid}/positions"),
            &AssignPosition {
                organisation: org.to_owned(),
                role_code: role_code.to_owned(),
                role_name: "Clinical Practitioner Access Role".to_owned(),
                activities: activities.iter().map(|a| (*a).to_owned()).collect(),
            },
        )
        .await
    }

    /// A person's profile.
    pub async fn person(&self, token: &str, uid: &str) -> Person {
        self.get(Some(token), &format!("/api/v1/ra/people/{uid}"))
            .await
            .expect("read person")
    }

    /// A card.
    pub async fn card(&self, token: &str, id: &str) -> vsc_proto::Card {
        self.get(Some(token), &format!("/api/v1/ra/cards/{id}"))
            .await
            .expect("read card")
    }

    /// A person registered at `org`, identity checked and with a pending card.
    pub async fn person_with_card(&self, token: &str, org: &str) -> (String, CardWithCode) {
        let uid = self.create_person(token, org).await;
        self.id_check(token, &uid, org).await;
        let card = self.issue_card(token, &uid, org).await;
        (uid, card)
    }

    /// A person at `org` whose card is enrolled on a new phone.
    pub async fn enrolled_person(&self, token: &str, org: &str) -> (String, String, Phone) {
        let (uid, card) = self.person_with_card(token, org).await;
        let phone = Phone::new();
        self.enrol(&phone, &card.code.url).await.expect("enrol");
        (uid, card.card.id, phone)
    }

    /// A person at `org` holding `role` there (with `assignable` roles for a Sponsor), enrolled
    /// and signed in.
    pub async fn new_ra(&self, token: &str, org: &str, role: &str, assignable: &[&str]) -> Ra {
        let (uid, card) = self.person_with_card(token, org).await;
        self.grant_ra_role(token, &uid, org, role, assignable).await;
        let phone = Phone::new();
        self.enrol(&phone, &card.code.url)
            .await
            .expect("the new RA enrols");
        let token = self.login(&phone).await;
        Ra {
            phone,
            uid,
            card_id: card.card.id,
            token,
        }
    }

    /// The state of a card, straight from the database.
    pub async fn card_state(&self, card_id: &str) -> String {
        let (state,): (String,) = sqlx::query_as("SELECT state FROM cards WHERE id = $1")
            .bind(card_id)
            .fetch_one(self.state.store().pool())
            .await
            .expect("card row");
        state
    }

    /// How many certificates a card has.
    pub async fn certificate_count(&self, card_id: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM certificates WHERE card_id = $1")
            .bind(card_id)
            .fetch_one(self.state.store().pool())
            .await
            .expect("count certificates");
        n
    }

    /// The wrong-guess counter of the code with this public id.
    pub async fn code_failures(&self, code: &str) -> i64 {
        let id: String = code.chars().take(8).collect();
        let (n,): (i64,) =
            sqlx::query_as("SELECT failed_attempts FROM one_time_codes WHERE id = $1")
                .bind(id)
                .fetch_one(self.state.store().pool())
                .await
                .expect("code row");
        n
    }

    /// Whether the code with this public id has been used.
    pub async fn code_used(&self, code: &str) -> bool {
        let id: String = code.chars().take(8).collect();
        let (used,): (Option<i64>,) =
            sqlx::query_as("SELECT used_at FROM one_time_codes WHERE id = $1")
                .bind(id)
                .fetch_one(self.state.store().pool())
                .await
                .expect("code row");
        used.is_some()
    }

    /// Every row that a refused request must leave alone (see [`Snapshot`]).
    pub async fn snapshot(&self) -> Snapshot {
        let pool = self.state.store().pool();
        let mut out = Snapshot::new();
        let postgres = self.state.store().backend() == vsc_store::Backend::Postgres;
        for table in SNAPSHOT_TABLES {
            let columns_sql = if postgres {
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position"
            } else {
                "SELECT name FROM pragma_table_info($1) ORDER BY cid"
            };
            let columns: Vec<(String,)> = sqlx::query_as(columns_sql)
                .bind(*table)
                .fetch_all(pool)
                .await
                .expect("table columns");
            let expr = columns
                .iter()
                .map(|(c,)| c.as_str())
                .filter(|c| !(*table == "one_time_codes" && *c == "failed_attempts"))
                .map(|c| {
                    if postgres {
                        format!("quote_nullable({c}::text)")
                    } else {
                        format!("quote({c})")
                    }
                })
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {expr} FROM {table} ORDER BY 1"
            )))
            .fetch_all(pool)
            .await
            .expect("table rows");
            out.insert(
                (*table).to_owned(),
                rows.into_iter().map(|(r,)| r).collect(),
            );
        }
        out
    }

    /// Asserts nothing but counters and the audit log changed since `before`.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &Snapshot, after: &Snapshot, what: &str) {
        assert!(
            !before["people"].is_empty() && !before["cards"].is_empty(),
            "{what}: the snapshot is empty, so comparing it proves nothing"
        );
        for (table, rows) in before {
            assert_eq!(
                Some(rows),
                after.get(table),
                "{what}: table {table} changed although the request was refused"
            );
        }
    }

    /// Failure events of `action`, oldest first.
    pub async fn audit_failures(&self, action: &str) -> Vec<AuditEvent> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, actor, subject, outcome, detail FROM audit_events
             WHERE action = $1 AND outcome = 'failure' ORDER BY seq",
        )
        .bind(action)
        .fetch_all(self.state.store().pool())
        .await
        .expect("audit query");
        rows.into_iter()
            .map(|(seq, actor, subject, outcome, detail)| AuditEvent {
                seq,
                at_ms: 0,
                actor,
                action: action.to_owned(),
                subject,
                organisation: String::new(),
                source: String::new(),
                outcome,
                detail,
                prev_hash: String::new(),
                hash: String::new(),
            })
            .collect()
    }

    /// Failure events of `action` whose detail carries error `code`.
    pub async fn audit_failures_with(&self, action: &str, code: &str) -> Vec<AuditEvent> {
        self.audit_failures(action)
            .await
            .into_iter()
            .filter(|e| {
                serde_json::from_str::<serde_json::Value>(&e.detail)
                    .ok()
                    .and_then(|d| d.get("error").and_then(|c| c.as_str().map(str::to_owned)))
                    .as_deref()
                    == Some(code)
            })
            .collect()
    }

    /// Asserts exactly `n` failure events of `action` carry error `code`; returns them.
    pub async fn assert_audited(&self, action: &str, code: &str, n: usize) -> Vec<AuditEvent> {
        let found = self.audit_failures_with(action, code).await;
        assert_eq!(
            found.len(),
            n,
            "expected {n} failure event(s) {action} with error {code} in the audit log, found {found:?}; all {action} failures: {:?}",
            self.audit_failures(action).await
        );
        found
    }

    /// Asserts the audit chain verifies end to end.
    pub async fn assert_audit_intact(&self) {
        let report = vsc_store::audit::verify(self.state.store())
            .await
            .expect("verify the audit log");
        assert_eq!(report.first_broken, None, "the audit chain is broken");
        assert!(report.events > 0);
    }
}

/// Whether `url` is a well-formed one-time-code link of `kind`.
pub fn is_link(url: &str, kind: LinkKind) -> bool {
    vsc_proto::ActivationLink::parse(url).is_ok_and(|l| l.kind == kind)
}

// ---------------------------------------------------------------------------------------------
// Signing in with the phone: the agent's calls, the phone's device channel, sessions.

/// A workstation's context as its agent sends it.
pub fn auth_context(workstation: &str) -> AuthContext {
    AuthContext {
        workstation_id: workstation.to_owned(),
        workstation_name: format!("WARD-7-{workstation}"),
        client_address: "10.1.2.3".to_owned(),
        agent_version: "0.1.0".to_owned(),
        purpose: "Sign in to clinical systems".to_owned(),
        ..AuthContext::default()
    }
}

/// Signs `statement` with the card's authentication key held by `home` (keystore unlocked with
/// [`PASSCODE`], which the server checks); standard base64 of the DER.
pub async fn sign_with_card(home: &Home, statement: Vec<u8>) -> String {
    let keys = vsc_authenticator::unlock_keys(home, &passcode())
        .await
        .expect("unlock the keystore (the server checks the passcode)");
    B64.encode(keys.sign_auth(&statement).expect("sign with the card key"))
}

/// A number that is not `number` (two digits; what a guess that missed would type).
pub fn other_number(number: u8, k: u8) -> u8 {
    (number + 1 + k % 99) % 100
}

/// The approval statement of `request` for `number`, with the context digest `digest`.
pub fn approval_statement_with(
    request: &PendingAuthRequest,
    digest: &str,
    number: u8,
    origin: &str,
) -> Vec<u8> {
    vsc_proto::signin::approval_statement(
        &request.request_id,
        &request.nonce,
        digest,
        number,
        origin,
    )
}

/// A session ticket's validation, or the server's refusal.
pub type Validation = Result<TicketValidation, ClientError>;

impl TestServer {
    /// A new phone enrols with `link` under [`PASSCODE`], as a simulated phone or not.
    pub async fn enrol_as(
        &self,
        phone: &Phone,
        link: &str,
        simulated: bool,
    ) -> Result<EnrolResponse, AuthenticatorError> {
        vsc_authenticator::enrol(&phone.home, link, None, None, &passcode(), simulated).await
    }

    /// [`TestServer::enrolled_person`] with a phone that is simulated or not.
    pub async fn enrolled_person_as(
        &self,
        token: &str,
        org: &str,
        simulated: bool,
    ) -> (String, String, Phone) {
        let (uid, card) = self.person_with_card(token, org).await;
        let phone = Phone::new();
        self.enrol_as(&phone, &card.code.url, simulated)
            .await
            .expect("enrol");
        (uid, card.card.id, phone)
    }

    /// The agent of the registered workstation `context.workstation_id` (registered on first
    /// use, see [`TestServer::workstation`]) opens a sign-in request for `uid` with `context`,
    /// signed with the workstation key.
    pub async fn try_open_request(
        &self,
        uid: &str,
        context: &AuthContext,
    ) -> Result<AuthRequestCreated, ClientError> {
        let ws = self.workstation(&context.workstation_id).await;
        self.try_open_request_from(&ws, uid, context).await
    }

    /// The agent of `ws` opens a signed sign-in request for `uid` with `context`.
    pub async fn try_open_request_from(
        &self,
        ws: &Arc<TestWorkstation>,
        uid: &str,
        context: &AuthContext,
    ) -> Result<AuthRequestCreated, ClientError> {
        let challenge = self.workstation_challenge(&ws.id).await?;
        let proof = ws.open_proof(&challenge, uid, context, &self.origin());
        let created: AuthRequestCreated = self
            .post(
                None,
                "/api/v1/auth/requests",
                &CreateAuthRequest {
                    uid: uid.to_owned(),
                    context: context.clone(),
                    workstation: Some(proof),
                },
            )
            .await?;
        self.opened_by
            .lock()
            .expect("request map")
            .insert(created.request_id.clone(), ws.clone());
        Ok(created)
    }

    /// An agent that never registered opens a sign-in request (no workstation proof).
    pub async fn try_open_request_unregistered(
        &self,
        uid: &str,
        context: &AuthContext,
    ) -> Result<AuthRequestCreated, ClientError> {
        self.post(
            None,
            "/api/v1/auth/requests",
            &CreateAuthRequest {
                uid: uid.to_owned(),
                context: context.clone(),
                workstation: None,
            },
        )
        .await
    }

    /// A single-use challenge for the registered workstation `id`.
    pub async fn workstation_challenge(&self, id: &str) -> Result<ChallengeResponse, ClientError> {
        self.post(
            None,
            "/api/v1/workstations/challenge",
            &vsc_proto::signin::WorkstationChallengeRequest {
                workstation_id: id.to_owned(),
            },
        )
        .await
    }

    /// The server's origin (`https://127.0.0.1:PORT`).
    pub fn origin(&self) -> String {
        self.state.origin()
    }

    /// The test workstation `label` ("PC-1"), registered at the national organisation as
    /// `WARD-7-<label>` the first time it is asked for: every agent in these tests is a
    /// registered one unless a test says otherwise.
    pub async fn workstation(&self, label: &str) -> Arc<TestWorkstation> {
        if let Some(ws) = self.workstations.lock().expect("workstations").get(label) {
            return ws.clone();
        }
        let national = self.state.national_ods().to_owned();
        let ws = Arc::new(
            self.register_workstation(&national, &format!("WARD-7-{label}"))
                .await,
        );
        self.workstations
            .lock()
            .expect("workstations")
            .entry(label.to_owned())
            .or_insert(ws)
            .clone()
    }

    /// Registers a workstation named `name` with `org`: a registration code issued in-process
    /// as `vsc ra workstation code` would (by the bootstrap RA Manager), then the agent's
    /// enrolment over TLS with a key made here.
    pub async fn register_workstation(&self, org: &str, name: &str) -> TestWorkstation {
        let code = self.workstation_code(org, None).await;
        self.enrol_workstation(&code, name)
            .await
            .expect("the workstation enrols")
    }

    /// A registration code for a workstation of `org`, issued in-process by the bootstrap RA
    /// Manager (the RA route is tested on its own).
    pub async fn workstation_code(&self, org: &str, name: Option<&str>) -> String {
        let ctx = vsc_server::state::AuditContext {
            actor: self.bootstrap.uid.clone(),
            source: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let mut tx = self.state.store().write().await.expect("write transaction");
        let code =
            vsc_server::routes::workstation::issue_code(&self.state, &mut tx, &ctx, org, name)
                .await
                .expect("issue a workstation code");
        tx.commit().await.expect("commit");
        code.code
    }

    /// An agent enrols with `code` as `name`, with a new key.
    pub async fn enrol_workstation(
        &self,
        code: &str,
        name: &str,
    ) -> Result<TestWorkstation, ClientError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let enrolled: vsc_proto::workstation::WorkstationEnrolled = self
            .post(
                None,
                "/api/v1/workstations/enrol",
                &vsc_proto::workstation::EnrolWorkstation {
                    code: code.to_owned(),
                    name: name.to_owned(),
                    csr: B64.encode(csr_der(&key)),
                },
            )
            .await?;
        Ok(TestWorkstation::new(enrolled, &key))
    }

    /// The agent of `workstation` opens a sign-in request for `uid`.
    pub async fn open_request(&self, uid: &str, workstation: &str) -> AuthRequestCreated {
        let created = self
            .try_open_request(uid, &auth_context(workstation))
            .await
            .expect("the agent opens a sign-in request");
        assert!(created.number <= 99, "a two-digit number: {created:?}");
        created
    }

    /// What the agent sees for its request, waiting up to `wait` seconds. The agent of a
    /// registered workstation signs its collection.
    pub async fn try_outcome(
        &self,
        created: &AuthRequestCreated,
        wait: u64,
    ) -> Result<AuthRequestOutcome, ClientError> {
        let ws = self
            .opened_by
            .lock()
            .expect("request map")
            .get(&created.request_id)
            .cloned();
        let signature = ws.map(|ws| ws.collect_signature(created, &self.origin()));
        self.try_outcome_signed(created, wait, signature.as_deref())
            .await
    }

    /// [`TestServer::try_outcome`] with the collection signature given (or none).
    pub async fn try_outcome_signed(
        &self,
        created: &AuthRequestCreated,
        wait: u64,
        signature: Option<&str>,
    ) -> Result<AuthRequestOutcome, ClientError> {
        let mut headers = vec![("X-Vsc-Request-Secret", created.poll_secret.as_str())];
        if let Some(sig) = signature {
            headers.push((vsc_proto::signin::WORKSTATION_SIGNATURE_HEADER, sig));
        }
        self.client
            .get_json_with_headers(
                &format!("/api/v1/auth/requests/{}?wait={wait}", created.request_id),
                &headers,
            )
            .await
    }

    /// [`TestServer::try_outcome`], which must succeed.
    pub async fn outcome(&self, created: &AuthRequestCreated, wait: u64) -> AuthRequestOutcome {
        self.try_outcome(created, wait)
            .await
            .expect("the agent reads the outcome")
    }

    /// A device challenge for `device_id`.
    pub async fn try_device_challenge(
        &self,
        device_id: &str,
    ) -> Result<ChallengeResponse, ClientError> {
        self.post(
            None,
            "/api/v1/device/challenge",
            &DeviceChallengeRequest {
                device_id: device_id.to_owned(),
            },
        )
        .await
    }

    /// The device-token exchange for `phone` (challenge, signature by its device channel key,
    /// token), with the statement's signature made by `sign`.
    pub async fn try_device_token_signed_by(
        &self,
        phone: &Phone,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<DeviceToken, ClientError> {
        let device_id = phone.device_id();
        let challenge = self.try_device_challenge(&device_id).await?;
        let statement = vsc_proto::signin::device_token_statement(
            &challenge.challenge_id,
            &challenge.nonce,
            &device_id,
            &self.state.origin(),
        );
        self.post(
            None,
            "/api/v1/device/token",
            &DeviceTokenRequest {
                device_id,
                challenge_id: challenge.challenge_id,
                signature: B64.encode(sign(&statement)),
            },
        )
        .await
    }

    /// A device token for an enrolled `phone`, as its app gets one.
    pub async fn device_token(&self, phone: &Phone) -> String {
        let key = phone
            .home
            .device_key()
            .expect("read the device key")
            .expect("an enrolled phone has a device key");
        self.try_device_token_signed_by(phone, |statement| {
            key.sign(statement).expect("sign with the device key")
        })
        .await
        .expect("a device token")
        .token
    }

    /// The requests pending for the device holding `token`.
    pub async fn try_device_pending(
        &self,
        token: &str,
    ) -> Result<Vec<PendingAuthRequest>, ClientError> {
        self.get(Some(token), "/api/v1/device/requests").await
    }

    /// The pending request `request_id` as the device holding `token` receives it.
    pub async fn pending_request(&self, token: &str, request_id: &str) -> PendingAuthRequest {
        let pending = self
            .try_device_pending(token)
            .await
            .expect("the phone reads its pending requests");
        pending
            .into_iter()
            .find(|r| r.request_id == request_id)
            .unwrap_or_else(|| panic!("request {request_id} is pending for this phone"))
    }

    /// An approval of `request` with `number`, signed by the card key held by `signer`.
    pub async fn signed_approval(
        &self,
        signer: &Phone,
        request: &PendingAuthRequest,
        number: u8,
    ) -> ApproveAuthRequest {
        let statement = approval_statement_with(
            request,
            &request.context_digest,
            number,
            &self.state.origin(),
        );
        ApproveAuthRequest {
            number,
            signature: sign_with_card(&signer.home, statement).await,
        }
    }

    /// `POST /api/v1/device/requests/{id}/approve` with a device token and a hand-made body.
    pub async fn approve_raw(
        &self,
        token: &str,
        request_id: &str,
        body: &ApproveAuthRequest,
    ) -> Result<AuthRequestOutcome, ClientError> {
        self.post(
            Some(token),
            &format!("/api/v1/device/requests/{request_id}/approve"),
            body,
        )
        .await
    }

    /// `POST /api/v1/tickets/validate`, as a relying system.
    pub async fn validate(&self, ticket: &str) -> Validation {
        self.post(
            None,
            "/api/v1/tickets/validate",
            &ValidateTicket {
                ticket: ticket.to_owned(),
            },
        )
        .await
    }

    /// The session of a ticket, as its holder sees it.
    pub async fn session_info(&self, ticket: &str) -> Result<SessionInfo, ClientError> {
        self.get(Some(ticket), "/api/v1/session").await
    }

    /// `POST /api/v1/session/logout` with only `ticket` (what a relying system could send; the
    /// server wants the agent key too): the HTTP status and the JSON body, if any.
    pub async fn logout(&self, ticket: &str) -> (u16, Option<serde_json::Value>) {
        self.logout_with(ticket, None).await
    }

    /// `POST /api/v1/session/logout` as the session's identity agent (ticket and agent key).
    pub async fn logout_agent(&self, auth: &AgentAuth) -> (u16, Option<serde_json::Value>) {
        self.logout_with(&auth.ticket, Some(&auth.key)).await
    }

    /// `POST /api/v1/session/logout` with `ticket` and, if given, `agent_key`.
    pub async fn logout_with(
        &self,
        ticket: &str,
        agent_key: Option<&str>,
    ) -> (u16, Option<serde_json::Value>) {
        let url = self.url.join("api/v1/session/logout").expect("logout URL");
        let mut request = self.raw_http().post(url).bearer_auth(ticket);
        if let Some(key) = agent_key {
            request = request.header(vsc_proto::signin::AGENT_KEY_HEADER, key);
        }
        let response = request.send().await.expect("logout request");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("logout response body");
        (status, serde_json::from_slice(&body).ok())
    }

    /// A whole sign-in with the real phone: the agent opens a request for `uid` from
    /// `workstation`, the phone approves it with the right number, the agent collects the
    /// ticket. Returns the request and the ticket.
    pub async fn sign_in(
        &self,
        phone: &Phone,
        uid: &str,
        workstation: &str,
    ) -> (AuthRequestCreated, String) {
        let (created, auth) = self.sign_in_agent(phone, uid, workstation).await;
        (created, auth.ticket)
    }

    /// Like [`TestServer::sign_in`], with what the agent holds: the ticket and the agent key.
    pub async fn sign_in_agent(
        &self,
        phone: &Phone,
        uid: &str,
        workstation: &str,
    ) -> (AuthRequestCreated, AgentAuth) {
        let link = PhoneLink::new(&phone.home).expect("the phone's link");
        let created = self.open_request(uid, workstation).await;
        let request = link
            .pending(5)
            .await
            .expect("the phone reads its pending requests")
            .into_iter()
            .find(|r| r.request_id == created.request_id)
            .expect("the request reaches the phone");
        link.approve(&request, created.number, &passcode())
            .await
            .expect("the phone approves with the right number");
        let collected = self.outcome(&created, 5).await;
        assert_eq!(collected.state, "collected");
        let auth = AgentAuth {
            ticket: collected.ticket.expect("a ticket, the first time"),
            key: collected.agent_key.expect("the agent key, with the ticket"),
        };
        (created, auth)
    }

    /// How many sessions exist (live or ended).
    pub async fn session_count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
            .fetch_one(self.state.store().pool())
            .await
            .expect("count sessions");
        n
    }

    /// A sign-in request's state, straight from the database.
    pub async fn request_state(&self, request_id: &str) -> String {
        let (state,): (String,) = sqlx::query_as("SELECT state FROM auth_requests WHERE id = $1")
            .bind(request_id)
            .fetch_one(self.state.store().pool())
            .await
            .expect("request row");
        state
    }

    /// A card's recorded sign-in failures (those still inside the failure window), straight from
    /// the database.
    pub async fn card_failures(&self, card_id: &str) -> i64 {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM signin_failures WHERE card_id = $1")
                .bind(card_id)
                .fetch_one(self.state.store().pool())
                .await
                .expect("card row");
        n
    }

    /// Events of `action` with any outcome, oldest first.
    pub async fn audit_events(&self, action: &str) -> Vec<AuditEvent> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, actor, subject, outcome, detail FROM audit_events
             WHERE action = $1 ORDER BY seq",
        )
        .bind(action)
        .fetch_all(self.state.store().pool())
        .await
        .expect("audit query");
        rows.into_iter()
            .map(|(seq, actor, subject, outcome, detail)| AuditEvent {
                seq,
                at_ms: 0,
                actor,
                action: action.to_owned(),
                subject,
                organisation: String::new(),
                source: String::new(),
                outcome,
                detail,
                prev_hash: String::new(),
                hash: String::new(),
            })
            .collect()
    }

    /// Stops the server as its owner does (the shutdown signal, then the graceful shutdown) and
    /// waits for `serve` to return; how long that took. Panics if it takes more than `limit`.
    pub async fn stop(&mut self, limit: std::time::Duration) -> std::time::Duration {
        let started = std::time::Instant::now();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let serve = self.serve.take().expect("the server is running");
        tokio::time::timeout(limit, serve)
            .await
            .unwrap_or_else(|_| panic!("the server did not stop within {limit:?}"))
            .expect("the serve task")
            .expect("serve returns Ok");
        started.elapsed()
    }
}

// ---------------------------------------------------------------------------------------------
// Races made deterministic, look-only session checks, declines and what sessions and cards
// record.

impl TestServer {
    /// Takes SQLite's write lock in a transaction of the test's own, standing in for another
    /// request's transaction: every write the server begins meanwhile waits (busy timeout, 10 s)
    /// until the returned transaction commits or rolls back; reads go on. End it explicitly.
    pub async fn hold_write_lock(&self) -> vsc_store::Tx {
        self.state
            .store()
            .write()
            .await
            .expect("take the database's write lock")
    }

    /// The phone's long-poll for its pending requests, waiting up to `wait` seconds.
    pub async fn try_device_pending_wait(
        &self,
        token: &str,
        wait: u64,
    ) -> Result<Vec<PendingAuthRequest>, ClientError> {
        self.get(Some(token), &format!("/api/v1/device/requests?wait={wait}"))
            .await
    }

    /// `POST /api/v1/device/requests/{id}/decline` with a device token and `reason`
    /// (`declined`, or `not-me` for "I didn't do this").
    pub async fn decline_raw(
        &self,
        token: &str,
        request_id: &str,
        reason: &str,
    ) -> Result<AuthRequestOutcome, ClientError> {
        self.post(
            Some(token),
            &format!("/api/v1/device/requests/{request_id}/decline"),
            &DeclineAuthRequest {
                reason: reason.to_owned(),
            },
        )
        .await
    }

    /// The session of a ticket, looked at without counting as use (`?touch=false`).
    pub async fn session_look(&self, ticket: &str) -> Result<SessionInfo, ClientError> {
        self.get(Some(ticket), "/api/v1/session?touch=false").await
    }

    /// When the session created by collecting `request_id` ended, and why, straight from the
    /// database.
    pub async fn session_end(&self, request_id: &str) -> (Option<i64>, Option<String>) {
        sqlx::query_as("SELECT ended_at, end_reason FROM sessions WHERE request_id = $1")
            .bind(request_id)
            .fetch_one(self.state.store().pool())
            .await
            .expect("session row")
    }

    /// Until when sign-in to a card is blocked (unix seconds), straight from the database.
    pub async fn card_blocked_until(&self, card_id: &str) -> Option<i64> {
        let (until,): (Option<i64>,) =
            sqlx::query_as("SELECT blocked_until FROM cards WHERE id = $1")
                .bind(card_id)
                .fetch_one(self.state.store().pool())
                .await
                .expect("card row");
        until
    }
}

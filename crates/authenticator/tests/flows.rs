//! End-to-end tests of the flows against a small mock vsc server on 127.0.0.1 that serves a
//! leaf, issuing CA and root over TLS, issues certificates from the phone's CSRs, checks the RA
//! login signature, and checks passcodes and unlock codes with the device key's signature the
//! way the real server must (the real server's own tests are in `vsc-server`'s `keystore`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use url::Url;
use vsc_authenticator::client::{ClientError, sha256_fingerprint};
use vsc_authenticator::{AuthenticatorError, ClientForHome as _, Home, KeystoreError, Passcode};
use vsc_proto::passcode::{PasscodeCheckRequest, PasscodeCheckResponse};
use vsc_proto::signin::DeviceChallengeRequest;
use vsc_proto::{
    ActivationLink, ChallengeRequest, ChallengeResponse, EnrolRequest, EnrolResponse, ErrorBody,
    ErrorDetail, LinkKind, LoginRequest, LoginResponse, Person, UnlockRedeemRequest,
    UnlockRedeemResponse,
};

const ALICE_CODE: &str = "AAAAAAAA-BBBB-CCCC-DDDD-EEEE";
const BOB_CODE: &str = "BBBBBBBB-CCCC-DDDD-EEEE-FFFF";
const UNLOCK_CODE: &str = "CCCCCCCC-DDDD-EEEE-FFFF-GGGG";
const ALICE: &str = "555000000001";
const BOB: &str = "555000000002";

struct Pki {
    root: rcgen::Certificate,
    issuing: rcgen::Certificate,
    issuing_issuer: Issuer<'static, KeyPair>,
    leaf: rcgen::Certificate,
    leaf_key: KeyPair,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn make_pki(name: &str) -> Pki {
    let root_key = KeyPair::generate().expect("key");
    let root_params = ca_params(name);
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);
    let issuing_key = KeyPair::generate().expect("key");
    let issuing_params = ca_params("issuing CA");
    let issuing = issuing_params
        .signed_by(&issuing_key, &root_issuer)
        .expect("issuing");
    let issuing_issuer = Issuer::new(issuing_params, issuing_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuing_issuer)
        .expect("leaf");
    Pki {
        root,
        issuing,
        issuing_issuer,
        leaf,
        leaf_key,
    }
}

#[derive(Default)]
struct Records {
    used: Vec<String>,
    recovery_key: Option<String>,
    auth_spki: Option<Vec<u8>>,
    device_id: Option<String>,
    device_key: Option<Vec<u8>>,
    verifier: Option<String>,
    secret: Option<String>,
    passcode_failures: u32,
    locked: bool,
    challenges: HashMap<String, String>,
    logins: u32,
}

struct Mock {
    pki: Pki,
    origin: String,
    records: Mutex<Records>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }),
    )
        .into_response()
}

/// PEM for a certificate, as the server sends it.
fn pem_certificate(der: &[u8]) -> String {
    vsc_https::pem::encode("CERTIFICATE", der)
}

fn issue(pki: &Pki, csr_b64: &str) -> (String, Vec<u8>) {
    let der = B64.decode(csr_b64).expect("base64");
    let csr = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
        .expect("CSR verifies");
    let cert = csr.signed_by(&pki.issuing_issuer).expect("sign");
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).expect("parses");
    let spki = parsed.public_key().raw.to_vec();
    (pem_certificate(cert.der()), spki)
}

async fn enrol(State(mock): State<Arc<Mock>>, Json(req): Json<EnrolRequest>) -> Response {
    let (uid, given) = match req.activation_code.as_str() {
        ALICE_CODE => (ALICE, "Alice"),
        BOB_CODE => (BOB, "Bob"),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "activation_unknown",
                "no such activation code; ask your RA",
            );
        }
    };
    let mut records = mock.records.lock().expect("lock");
    if records.used.contains(&req.activation_code) {
        return error(
            StatusCode::GONE,
            "activation_used",
            "this activation code was already used",
        );
    }
    records.used.push(req.activation_code.clone());
    assert_eq!(req.device.platform, "vsc-cli");
    assert!(req.device.simulated);
    assert_eq!(B64.decode(&req.recovery_key).expect("b64").len(), 32);
    let (auth_certificate, auth_spki) = issue(&mock.pki, &req.auth_csr);
    let (signing_certificate, _) = issue(&mock.pki, &req.signing_csr);
    let device_key = B64
        .decode(
            req.device_key
                .as_deref()
                .expect("enrolment sends a device key"),
        )
        .expect("base64");
    assert_eq!(device_key.len(), 91, "a P-256 SubjectPublicKeyInfo");
    assert_ne!(
        device_key, auth_spki,
        "the device key is not the card's key"
    );
    let verifier = req.passcode_verifier.clone().expect("a passcode verifier");
    let secret = req.passcode_secret.clone().expect("a server secret");
    assert_eq!(B64.decode(&verifier).expect("b64").len(), 32);
    assert_eq!(B64.decode(&secret).expect("b64").len(), 32);
    assert_ne!(verifier, secret);
    if uid == ALICE {
        records.recovery_key = Some(req.recovery_key.clone());
        records.auth_spki = Some(auth_spki);
        records.device_id = Some(req.device.device_id.clone());
        records.device_key = Some(device_key);
        records.verifier = Some(verifier);
        records.secret = Some(secret);
    }
    Json(EnrolResponse {
        uid: uid.to_owned(),
        given_name: given.to_owned(),
        family_name: "Example".to_owned(),
        card_id: format!("card-{uid}"),
        auth_certificate,
        signing_certificate,
        piv_auth_certificate: None,
        piv_signing_certificate: None,
        ca_chain: format!(
            "{}{}",
            pem_certificate(mock.pki.issuing.der()),
            pem_certificate(mock.pki.root.der())
        ),
    })
    .into_response()
}

/// A challenge for the device key, kept under its id with its nonce.
async fn device_challenge(
    State(mock): State<Arc<Mock>>,
    Json(req): Json<DeviceChallengeRequest>,
) -> Response {
    let mut records = mock.records.lock().expect("lock");
    assert_eq!(records.device_id.as_deref(), Some(req.device_id.as_str()));
    let id = format!("dch-{}", records.challenges.len());
    let nonce = B64.encode([records.challenges.len() as u8 + 100; 32]);
    records.challenges.insert(id.clone(), nonce.clone());
    Json(ChallengeResponse {
        challenge_id: id,
        nonce,
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(2),
    })
    .into_response()
}

fn device_signature_ok(records: &Records, statement: &[u8], signature: &str) -> bool {
    let key = records.device_key.clone().expect("enrolled");
    let sig = B64.decode(signature).expect("b64");
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &key,
    )
    .verify(statement, &sig)
    .is_ok()
}

async fn passcode_check(
    State(mock): State<Arc<Mock>>,
    Json(req): Json<PasscodeCheckRequest>,
) -> Response {
    let mut records = mock.records.lock().expect("lock");
    let Some(nonce) = records.challenges.remove(&req.challenge_id) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "challenge_unknown",
            "no such challenge",
        );
    };
    let statement = vsc_proto::passcode::passcode_check_statement(
        &req.challenge_id,
        &nonce,
        &req.device_id,
        &req.card_id,
        &req.verifier,
        &mock.origin,
    );
    if !device_signature_ok(&records, &statement, &req.signature) {
        return error(
            StatusCode::UNAUTHORIZED,
            "signature_invalid",
            "bad signature",
        );
    }
    if records.locked {
        return error(StatusCode::FORBIDDEN, "card_locked", "locked");
    }
    if records.verifier.as_deref() == Some(req.verifier.as_str()) {
        records.passcode_failures = 0;
        return Json(PasscodeCheckResponse {
            correct: true,
            tries_left: 3,
            locked: false,
            secret: records.secret.clone(),
        })
        .into_response();
    }
    records.passcode_failures += 1;
    records.locked = records.passcode_failures >= 3;
    Json(PasscodeCheckResponse {
        correct: false,
        tries_left: 3u32.saturating_sub(records.passcode_failures),
        locked: records.locked,
        secret: None,
    })
    .into_response()
}

async fn unlock(State(mock): State<Arc<Mock>>, Json(req): Json<UnlockRedeemRequest>) -> Response {
    let mut records = mock.records.lock().expect("lock");
    if req.unlock_code != UNLOCK_CODE {
        return error(
            StatusCode::NOT_FOUND,
            "unlock_unknown",
            "no such unlock code",
        );
    }
    let Some(nonce) = records.challenges.remove(&req.challenge_id) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unlock_device_proof_failed",
            "no challenge",
        );
    };
    let statement = vsc_proto::passcode::unlock_statement(
        &req.challenge_id,
        &nonce,
        records.device_id.as_deref().expect("enrolled"),
        &req.unlock_code,
        &req.passcode_verifier,
        &req.passcode_secret,
        &mock.origin,
    );
    if !device_signature_ok(&records, &statement, &req.signature) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unlock_device_proof_failed",
            "this is not the card's device",
        );
    }
    records.verifier = Some(req.passcode_verifier.clone());
    records.secret = Some(req.passcode_secret.clone());
    records.passcode_failures = 0;
    records.locked = false;
    Json(UnlockRedeemResponse {
        card_id: format!("card-{ALICE}"),
        recovery_key: records.recovery_key.clone().expect("enrolled"),
    })
    .into_response()
}

async fn challenge(State(mock): State<Arc<Mock>>, Json(req): Json<ChallengeRequest>) -> Response {
    let mut records = mock.records.lock().expect("lock");
    let id = format!("ch-{}", records.challenges.len());
    let nonce = B64.encode([records.challenges.len() as u8; 32]);
    records.challenges.insert(id.clone(), nonce.clone());
    assert_eq!(req.uid, ALICE);
    Json(ChallengeResponse {
        challenge_id: id,
        nonce,
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(5),
    })
    .into_response()
}

async fn login(State(mock): State<Arc<Mock>>, Json(req): Json<LoginRequest>) -> Response {
    let mut records = mock.records.lock().expect("lock");
    let Some(nonce) = records.challenges.remove(&req.challenge_id) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "challenge_unknown",
            "no such challenge",
        );
    };
    let statement =
        vsc_proto::ra_login_statement(&req.challenge_id, &nonce, &req.uid, &mock.origin);
    let spki = records.auth_spki.clone().expect("enrolled");
    let sig = B64.decode(&req.signature).expect("b64");
    if aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &spki,
    )
    .verify(&statement, &sig)
    .is_err()
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the signature does not verify",
        );
    }
    records.logins += 1;
    Json(LoginResponse {
        token: "token-1".to_owned(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(8),
        person: Person {
            uid: req.uid,
            given_name: "Alice".to_owned(),
            family_name: "Example".to_owned(),
            email: None,
            registered_by: "X26".to_owned(),
            positions: vec![],
            ra_roles: vec![],
            identity_checks: vec![],
            cards: vec![],
        },
    })
    .into_response()
}

async fn start_mock() -> (Arc<Mock>, Url) {
    let pki = make_pki("mock root");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let origin = format!("https://127.0.0.1:{}", addr.port());
    let chain: Vec<CertificateDer<'static>> = vec![
        pki.leaf.der().clone(),
        pki.issuing.der().clone(),
        pki.root.der().clone(),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let mock = Arc::new(Mock {
        pki,
        origin: origin.clone(),
        records: Mutex::new(Records::default()),
    });
    let app = Router::new()
        .route("/api/v1/enrol", post(enrol))
        .route("/api/v1/device/unlock", post(unlock))
        .route("/api/v1/device/unlock/challenge", post(device_challenge))
        .route("/api/v1/device/passcode/challenge", post(device_challenge))
        .route("/api/v1/device/passcode/check", post(passcode_check))
        .route("/api/v1/ra/auth/challenge", post(challenge))
        .route("/api/v1/ra/auth/login", post(login))
        .with_state(mock.clone());
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
    )
    .expect("server");
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    (mock, Url::parse(&origin).expect("url"))
}

fn passcode(s: &str) -> Passcode {
    Passcode::new(s).expect("passcode")
}

fn link(kind: LinkKind, server: &Url, code: &str, fp: &[u8; 32]) -> String {
    ActivationLink::build(kind, server, code, &hex::encode(fp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_login_lock_unlock() {
    let (mock, server) = start_mock().await;
    let fp = sha256_fingerprint(mock.pki.root.der());
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::open(dir.path().join("home")).expect("home");
    let first = passcode("112233");

    // Local checks come before any network call or key generation.
    let err = vsc_authenticator::enrol(&home, ALICE_CODE, None, None, &first, true)
        .await
        .expect_err("bare code");
    assert!(matches!(err, AuthenticatorError::MissingServer), "{err}");
    let err = vsc_authenticator::enrol(
        &home,
        "ABC",
        Some(server.clone()),
        Some(hex::encode(fp)),
        &first,
        true,
    )
    .await
    .expect_err("bad code");
    assert!(matches!(err, AuthenticatorError::Code(_)), "{err}");
    let unlock_link = link(LinkKind::Unlock, &server, ALICE_CODE, &fp);
    let err = vsc_authenticator::enrol(&home, &unlock_link, None, None, &first, true)
        .await
        .expect_err("unlock link");
    assert!(
        matches!(err, AuthenticatorError::WrongLinkKind { .. }),
        "{err}"
    );
    assert!(!home.keystore_path().exists());

    // A fingerprint the server cannot match: refused by the pinning verifier, nothing left behind.
    let other = make_pki("someone else's root");
    let wrong_fp = sha256_fingerprint(other.root.der());
    let err = vsc_authenticator::enrol(
        &home,
        &link(LinkKind::Activate, &server, ALICE_CODE, &wrong_fp),
        None,
        None,
        &first,
        true,
    )
    .await
    .expect_err("pin mismatch");
    assert!(
        matches!(
            err,
            AuthenticatorError::Client(ClientError::PinMismatch { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&hex::encode(wrong_fp)), "{err}");
    assert_eq!(
        std::fs::read_dir(home.dir())
            .expect("ls")
            .filter(|e| {
                let name = e.as_ref().expect("entry").file_name();
                name.to_string_lossy().starts_with("keystore")
            })
            .count(),
        0
    );

    // A code the server refuses: its error comes back, the new keys are gone.
    let err = vsc_authenticator::enrol(
        &home,
        "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ",
        Some(server.clone()),
        Some(hex::encode(fp)),
        &first,
        true,
    )
    .await
    .expect_err("unknown code");
    match &err {
        AuthenticatorError::Client(ClientError::Server { status, code, .. }) => {
            assert_eq!(*status, 404);
            assert_eq!(code, "activation_unknown");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!home.keystore_path().exists());
    assert!(home.enrolment().expect("read").is_none());

    // Enrol properly.
    let response = vsc_authenticator::enrol(
        &home,
        &link(LinkKind::Activate, &server, ALICE_CODE, &fp),
        None,
        None,
        &first,
        true,
    )
    .await
    .expect("enrol");
    assert_eq!(response.uid, ALICE);
    let enrolment = home.enrolment().expect("read").expect("enrolled");
    assert_eq!(enrolment.uid, ALICE);
    assert_eq!(enrolment.server.as_str(), format!("{}/", mock.origin));
    assert_eq!(
        enrolment.root_ca_pem.trim(),
        pem_certificate(mock.pki.root.der()).trim()
    );
    let status = vsc_authenticator::status(&home).expect("status");
    assert!(status.enrolled);
    assert_eq!(status.uid.as_deref(), Some(ALICE));
    assert_eq!(status.card_id.as_deref(), Some("card-555000000001"));
    assert_eq!(status.remaining_attempts, 3);
    let auth_spki = home.open_keystore().expect("open").auth_spki().to_vec();

    // The same code again: the server's refusal leaves the existing card alone.
    let err = vsc_authenticator::enrol(
        &home,
        &link(LinkKind::Activate, &server, ALICE_CODE, &fp),
        None,
        None,
        &first,
        true,
    )
    .await
    .expect_err("used");
    assert!(
        matches!(
            err,
            AuthenticatorError::Client(ClientError::Server { status: 410, .. })
        ),
        "{err}"
    );
    assert_eq!(
        home.open_keystore().expect("open").auth_spki(),
        auth_spki.as_slice()
    );

    // One person per device.
    let device_key_before = std::fs::read(home.device_key_path()).expect("device key");
    let err = vsc_authenticator::enrol(
        &home,
        &link(LinkKind::Activate, &server, BOB_CODE, &fp),
        None,
        None,
        &first,
        true,
    )
    .await
    .expect_err("other person");
    assert!(
        matches!(err, AuthenticatorError::OtherPerson { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "this phone already holds a card for UID 555000000001; one person per device"
        )
    );
    assert_eq!(
        home.open_keystore().expect("open").auth_spki(),
        auth_spki.as_slice()
    );
    assert_eq!(
        home.enrolment().expect("read").expect("enrolled").uid,
        ALICE
    );
    assert_eq!(
        std::fs::read(home.device_key_path()).expect("device key"),
        device_key_before,
        "a refused enrolment leaves the device key alone"
    );

    // RA login: the mock verifies the signature over the statement bound to its origin.
    let session = vsc_authenticator::ra_login(&home, &first)
        .await
        .expect("login");
    assert_eq!(session.token, "token-1");
    assert_eq!(mock.records.lock().expect("lock").logins, 1);

    // The generic client reaches the server with the stored root only.
    let client = vsc_authenticator::Client::for_home(&home).expect("client");
    let err = client
        .get_json::<serde_json::Value>("/api/v1/nothing-here", Some("token-1"))
        .await
        .expect_err("404 without a vsc body");
    assert!(
        matches!(err, ClientError::UnexpectedResponse { status: 404, .. }),
        "{err}"
    );

    // Three wrong passcodes lock the card, and the right one is then refused.
    let wrong = passcode("999999");
    for remaining in [2, 1] {
        let err = vsc_authenticator::ra_login(&home, &wrong)
            .await
            .expect_err("wrong");
        assert!(
            matches!(err, AuthenticatorError::Keystore(KeystoreError::WrongPasscode { remaining: r }) if r == remaining),
            "{err}"
        );
    }
    let err = vsc_authenticator::ra_login(&home, &wrong)
        .await
        .expect_err("locks");
    assert!(
        matches!(err, AuthenticatorError::Keystore(KeystoreError::Locked)),
        "{err}"
    );
    let err = vsc_authenticator::ra_login(&home, &first)
        .await
        .expect_err("locked");
    assert!(
        matches!(err, AuthenticatorError::Keystore(KeystoreError::Locked)),
        "{err}"
    );
    assert!(vsc_authenticator::status(&home).expect("status").locked);

    // An unlock code for the wrong server is refused locally; a wrong code by the server.
    let elsewhere = Url::parse("https://elsewhere.example:8443").expect("url");
    let err = vsc_authenticator::redeem_unlock(
        &home,
        &link(LinkKind::Unlock, &elsewhere, UNLOCK_CODE, &fp),
        &first,
    )
    .await
    .expect_err("other server");
    assert!(
        matches!(err, AuthenticatorError::ServerMismatch { .. }),
        "{err}"
    );
    let err = vsc_authenticator::redeem_unlock(&home, ALICE_CODE, &first)
        .await
        .expect_err("wrong code");
    assert!(
        matches!(
            err,
            AuthenticatorError::Client(ClientError::Server { status: 404, .. })
        ),
        "{err}"
    );

    // The RA's unlock code brings back the recovery key: new passcode, same keys.
    let second = passcode("445566");
    vsc_authenticator::redeem_unlock(
        &home,
        &link(LinkKind::Unlock, &server, UNLOCK_CODE, &fp),
        &second,
    )
    .await
    .expect("unlock");
    let status = vsc_authenticator::status(&home).expect("status");
    assert!(!status.locked);
    assert_eq!(status.failed_attempts, 0);
    assert_eq!(
        home.open_keystore().expect("open").auth_spki(),
        auth_spki.as_slice()
    );
    let err = vsc_authenticator::ra_login(&home, &first)
        .await
        .expect_err("old passcode");
    assert!(
        matches!(
            err,
            AuthenticatorError::Keystore(KeystoreError::WrongPasscode { .. })
        ),
        "{err}"
    );
    vsc_authenticator::ra_login(&home, &second)
        .await
        .expect("login with the new passcode");
    assert_eq!(mock.records.lock().expect("lock").logins, 2);
}

#[tokio::test]
async fn nothing_works_before_enrolment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::open(dir.path()).expect("home");
    let status = vsc_authenticator::status(&home).expect("status");
    assert!(!status.enrolled && !status.keystore_present && status.uid.is_none());
    let p = passcode("123456");
    assert!(matches!(
        vsc_authenticator::ra_login(&home, &p).await,
        Err(AuthenticatorError::NotEnrolled)
    ));
    assert!(matches!(
        vsc_authenticator::redeem_unlock(&home, UNLOCK_CODE, &p).await,
        Err(AuthenticatorError::NotEnrolled)
    ));
    assert!(matches!(
        vsc_authenticator::Client::for_home(&home),
        Err(AuthenticatorError::NotEnrolled)
    ));
}

//! Web Push (issue 13) against the real server: the phone app's subscription routes, and the
//! notices the server sends when a sign-in or signing request is opened. The push service is a
//! small HTTP server on loopback inside the test that records what it receives; the phone's
//! side is `vsc_webpush::ReceiverKeys`, which decrypts the messages independently of the
//! server's sending code (and is itself tested against RFC 8291 and Python `cryptography`).

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{AgentAuth, TestServer, assert_api_error, start_with};
use vsc_proto::errors as code;
use vsc_proto::push::PushStatus;
use vsc_proto::routes;
use vsc_proto::signing::{CreateSigningRequest, SigningItem, SigningKind, SigningRequestCreated};
use vsc_webpush::ReceiverKeys;

/// One POST the stand-in push service received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A stand-in push service on loopback: records every POST and answers `answer` (201 unless
/// told otherwise).
struct PushService {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<AtomicU16>,
}

#[derive(Clone)]
struct ServiceState {
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<AtomicU16>,
}

async fn record(
    State(st): State<ServiceState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    st.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    StatusCode::from_u16(st.answer.load(Ordering::SeqCst)).unwrap()
}

impl PushService {
    async fn start() -> PushService {
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicU16::new(201));
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(ServiceState {
                received: received.clone(),
                answer: answer.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        PushService {
            base,
            received,
            answer,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `n` messages have arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            if self.received().len() >= n {
                return self.received();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} push messages, the push service received {}",
            self.received().len()
        );
    }
}

/// `PushSubscription.toJSON()` as a browser makes it for `keys` at `endpoint`.
fn subscription_json(endpoint: &str, p256dh: &[u8], auth: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {
            "p256dh": URL_SAFE_NO_PAD.encode(p256dh),
            "auth": URL_SAFE_NO_PAD.encode(auth),
        }
    })
}

fn browser_subscription(endpoint: &str, keys: &ReceiverKeys) -> serde_json::Value {
    subscription_json(
        endpoint,
        keys.public_key().as_bytes(),
        keys.auth_secret().as_bytes(),
    )
}

async fn subscribe(
    s: &TestServer,
    token: &str,
    body: &serde_json::Value,
) -> Result<PushStatus, vsc_authenticator::ClientError> {
    s.post(Some(token), routes::DEVICE_PUSH_SUBSCRIPTION, body)
        .await
}

async fn push_status(s: &TestServer, token: &str) -> PushStatus {
    s.get(Some(token), routes::DEVICE_PUSH)
        .await
        .expect("GET /api/v1/device/push")
}

/// Endpoints stored for `device_id`, straight from the database.
async fn stored_endpoints(s: &TestServer, device_id: &str) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT endpoint FROM push_subscriptions WHERE device_id = $1")
            .bind(device_id)
            .fetch_all(s.state.store().pool())
            .await
            .unwrap();
    rows.into_iter().map(|(e,)| e).collect()
}

async fn subscription_rows(s: &TestServer) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM push_subscriptions")
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    n
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("the push message has no {name} header: {r:?}"))
        .to_str()
        .unwrap()
}

/// Checks one message as a push service and the phone would: the headers, the VAPID token
/// (signed by the key the server hands out, for the push service's origin) and the body, which
/// must decrypt to exactly `{"request_id":"<request_id>"}`. Returns the plaintext.
fn check_message(
    r: &Received,
    keys: &ReceiverKeys,
    server_key: &str,
    service: &PushService,
    s: &TestServer,
    request_id: &str,
    max_ttl: u64,
) -> String {
    assert_eq!(header(r, "content-encoding"), "aes128gcm");
    assert_eq!(header(r, "urgency"), "high");
    let ttl: u64 = header(r, "ttl").parse().unwrap();
    assert!(ttl > 0 && ttl <= max_ttl, "TTL {ttl}, at most {max_ttl}");
    let authorization = header(r, "authorization");
    let (token, k) = authorization
        .strip_prefix("vapid t=")
        .unwrap()
        .split_once(", k=")
        .unwrap();
    assert_eq!(k, server_key, "k= is the key GET /api/v1/device/push gives");
    let (signed, signature) = token.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        URL_SAFE_NO_PAD.decode(server_key).unwrap(),
    )
    .verify(
        signed.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .expect("the VAPID token's ES256 signature verifies with the server's key");
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split_once('.').unwrap().1)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], service.base.as_str(), "{claims}");
    assert_eq!(claims["sub"], s.state.origin().as_str(), "{claims}");
    assert!(claims["exp"].as_i64().unwrap() > s.state.now_unix());
    let plaintext = keys
        .decrypt(&r.body)
        .expect("the phone's keys decrypt the message");
    let text = String::from_utf8(plaintext.to_vec()).unwrap();
    assert_eq!(text, format!(r#"{{"request_id":"{request_id}"}}"#));
    // And an implementation that shares no code with vsc (Python `cryptography`) opens the same
    // message and verifies the same token.
    let independent = open_with_python(r, keys, token, k);
    assert_eq!(independent["plaintext"], text.as_str(), "{independent}");
    assert_eq!(independent["claims"], claims, "{independent}");
    text
}

/// Opens `r` with `crates/webpush/testdata/open_message.py` (RFC 8291 and RFC 8292 written
/// against Python's `cryptography`, which the test command installs with python3-authlib).
fn open_with_python(r: &Received, keys: &ReceiverKeys, token: &str, k: &str) -> serde_json::Value {
    use std::io::Write;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../webpush/testdata/open_message.py"
    );
    let input = serde_json::json!({
        "body": URL_SAFE_NO_PAD.encode(&r.body),
        "ua_private": URL_SAFE_NO_PAD.encode(keys.private_scalar().unwrap().as_slice()),
        "auth": URL_SAFE_NO_PAD.encode(keys.auth_secret().as_bytes()),
        "token": token,
        "k": k,
    });
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the test command installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the independent receiver refused the message: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../eps/tests/data/corpus");

fn one_prescription() -> Vec<SigningItem> {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let prepared = files
        .iter()
        .find_map(|f| {
            let xml = std::fs::read_to_string(f).unwrap();
            vsc_eps::sign::prepare(&xml, vsc_eps::sign::SignatureAlgorithm::RsaSha1).ok()
        })
        .expect("a prescription in the corpus");
    vec![SigningItem {
        id: "rx-0".into(),
        fragments: Some(prepared.canonical_fragments),
        payload: None,
        description: None,
        slot: None,
    }]
}

async fn start_push() -> TestServer {
    start_with(|c| c.push.allow_loopback_http_for_tests = true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_requests_pushes_only_their_ids_to_the_phone() {
    let s = start_push().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card_id, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position_with(t, &uid, "RX1", "S8000:G8000:R8000", &["B0420"])
        .await
        .expect("a prescribing position");
    let person = s.person(t, &uid).await;
    let token = s.device_token(&phone).await;

    let before = push_status(&s, &token).await;
    assert!(!before.subscribed && before.endpoint_origin.is_none());
    let server_key = before.application_server_key.clone();
    assert_eq!(URL_SAFE_NO_PAD.decode(&server_key).unwrap().len(), 65);

    let service = PushService::start().await;
    let keys = ReceiverKeys::generate().unwrap();
    let endpoint = format!("{}/wpush/v2/phone-one", service.base);
    let subscribed = subscribe(&s, &token, &browser_subscription(&endpoint, &keys))
        .await
        .expect("the phone subscribes");
    assert!(subscribed.subscribed);
    assert_eq!(
        subscribed.endpoint_origin.as_deref(),
        Some(service.base.as_str())
    );
    assert_eq!(subscribed.application_server_key, server_key);
    let after = push_status(&s, &token).await;
    assert!(after.subscribed);

    // The audit event names the push service's origin, never the endpoint path or the secret.
    let events = s.audit_events("device.push_subscribed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, phone.device_id());
    let auth_b64 = URL_SAFE_NO_PAD.encode(keys.auth_secret().as_bytes());
    assert!(events[0].detail.contains(&service.base), "{events:?}");
    assert!(!events[0].detail.contains("phone-one"), "{events:?}");
    assert!(!events[0].detail.contains(&auth_b64), "{events:?}");
    // Nor is the secret stored in clear.
    let (sealed,): (Vec<u8>,) =
        sqlx::query_as("SELECT auth_sealed FROM push_subscriptions WHERE device_id = $1")
            .bind(phone.device_id())
            .fetch_one(s.state.store().pool())
            .await
            .unwrap();
    assert!(
        !sealed
            .windows(16)
            .any(|w| w == keys.auth_secret().as_bytes())
    );

    // A sign-in request: exactly one POST, to the endpoint, carrying the request id only.
    let created = s.open_request(&uid, "pc-1").await;
    let got = service.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(service.received().len(), 1, "exactly one push per request");
    assert_eq!(got[0].path, "/wpush/v2/phone-one");
    let text = check_message(
        &got[0],
        &keys,
        &server_key,
        &service,
        &s,
        &created.request_id,
        120,
    );
    for personal in [
        uid.as_str(),
        person.given_name.as_str(),
        person.family_name.as_str(),
        "pc-1",
        "RX1",
    ] {
        assert!(!text.contains(personal), "{personal:?} in {text}");
    }

    // The phone approves it (the app fetched it over its channel); the session's signing
    // request pushes too. (The prescriber's sign-in opens a second sign-in request first.)
    let (_, auth): (_, AgentAuth) = s.sign_in_agent(&phone, &uid, "pc-1").await;
    let got = service.wait_for(2).await;
    assert_eq!(got.len(), 2);
    let signing: SigningRequestCreated = s
        .agent_post(
            &auth,
            "/api/v1/signing/requests",
            &CreateSigningRequest {
                kind: SigningKind::Prescriptions,
                algorithm: "RS1".into(),
                items: one_prescription(),
            },
        )
        .await
        .expect("a signing request");
    let got = service.wait_for(3).await;
    let signing_ttl = u64::try_from(s.state.config().signing.request_ttl.whole_seconds()).unwrap();
    check_message(
        &got[2],
        &keys,
        &server_key,
        &service,
        &s,
        &signing.request_id,
        signing_ttl,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(service.received().len(), 3);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_subscription_is_deleted_and_then_nothing_is_sent() {
    let s = start_push().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card_id, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let service = PushService::start().await;
    let keys = ReceiverKeys::generate().unwrap();
    subscribe(
        &s,
        &token,
        &browser_subscription(&format!("{}/sub/1", service.base), &keys),
    )
    .await
    .expect("subscribe");

    service.answer.store(410, Ordering::SeqCst);
    let created = s.open_request(&uid, "pc-1").await;
    service.wait_for(1).await;
    let mut gone = Vec::new();
    for _ in 0..100 {
        gone = s.audit_events("device.push_subscription_gone").await;
        if !gone.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gone.len(), 1, "the gone subscription is audited");
    assert_eq!(gone[0].actor, "system");
    assert_eq!(gone[0].subject, phone.device_id());
    let detail: serde_json::Value = serde_json::from_str(&gone[0].detail).unwrap();
    assert_eq!(detail["status"], 410);
    assert_eq!(detail["request_id"], created.request_id.as_str());
    assert_eq!(detail["endpoint_origin"], service.base.as_str());
    assert!(stored_endpoints(&s, &phone.device_id()).await.is_empty());
    assert!(!push_status(&s, &token).await.subscribed);

    // The next request sends nothing (the push service would accept it now).
    service.answer.store(201, Ordering::SeqCst);
    // (The same workstation asking again replaces its own request.)
    s.open_request(&uid, "pc-1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        service.received().len(),
        1,
        "nothing sent without a subscription"
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_sees_and_changes_only_its_own_subscription() {
    let s = start_push().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_a_uid, _a_card, a_phone) = s.enrolled_person(t, "RX1").await;
    let (_b_uid, _b_card, b_phone) = s.enrolled_person(t, "RX1").await;
    let a = s.device_token(&a_phone).await;
    let b = s.device_token(&b_phone).await;
    let service = PushService::start().await;
    let keys = ReceiverKeys::generate().unwrap();
    let body = browser_subscription(&format!("{}/a/1", service.base), &keys);
    subscribe(&s, &a, &body).await.expect("A subscribes");

    // B sees only its own (absent) subscription and cannot remove A's.
    let seen = push_status(&s, &b).await;
    assert!(!seen.subscribed && seen.endpoint_origin.is_none());
    let removed: PushStatus = s
        .post(
            Some(&b),
            routes::DEVICE_PUSH_UNSUBSCRIBE,
            &serde_json::json!({}),
        )
        .await
        .expect("B's unsubscribe answers");
    assert!(!removed.subscribed);
    assert_eq!(stored_endpoints(&s, &a_phone.device_id()).await.len(), 1);
    assert!(s.audit_events("device.push_unsubscribed").await.is_empty());

    // Without a token, or with a made-up one: refused, nothing changed.
    let before = s.snapshot().await;
    assert_api_error(
        s.get::<PushStatus>(None, routes::DEVICE_PUSH).await,
        401,
        code::DEVICE_UNAUTHENTICATED,
    );
    assert_api_error(
        subscribe(&s, "made-up-token", &body).await,
        401,
        code::DEVICE_TOKEN_EXPIRED,
    );
    assert_api_error(
        s.post::<_, PushStatus>(
            Some("made-up-token"),
            routes::DEVICE_PUSH_UNSUBSCRIBE,
            &serde_json::json!({}),
        )
        .await,
        401,
        code::DEVICE_TOKEN_EXPIRED,
    );
    s.assert_unchanged(&before, &s.snapshot().await, "calls without a device token");

    // The same subscription sent again (a replay) and a new one each leave one row.
    subscribe(&s, &a, &body).await.expect("A subscribes again");
    assert_eq!(subscription_rows(&s).await, 1);
    let keys2 = ReceiverKeys::generate().unwrap();
    let endpoint2 = format!("{}/a/2", service.base);
    subscribe(&s, &a, &browser_subscription(&endpoint2, &keys2))
        .await
        .expect("A subscribes with a new browser subscription");
    assert_eq!(
        stored_endpoints(&s, &a_phone.device_id()).await,
        vec![endpoint2]
    );
    assert_eq!(subscription_rows(&s).await, 1);
    let events = s.audit_events("device.push_subscribed").await;
    assert_eq!(events.len(), 3);
    assert!(
        events[2].detail.contains(r#""replaced":true"#),
        "{events:?}"
    );

    // A unsubscribes: gone, audited once; again changes nothing.
    let removed: PushStatus = s
        .post(
            Some(&a),
            routes::DEVICE_PUSH_UNSUBSCRIBE,
            &serde_json::json!({}),
        )
        .await
        .expect("A unsubscribes");
    assert!(!removed.subscribed);
    assert_eq!(subscription_rows(&s).await, 0);
    let _: PushStatus = s
        .post(
            Some(&a),
            routes::DEVICE_PUSH_UNSUBSCRIBE,
            &serde_json::json!({}),
        )
        .await
        .expect("A unsubscribes again");
    let events = s.audit_events("device.push_unsubscribed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, a_phone.device_id());
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_subscriptions_are_refused_and_nothing_is_stored() {
    let s = start_push().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let keys = ReceiverKeys::generate().unwrap();
    let p256dh = keys.public_key().as_bytes().to_vec();
    let auth = keys.auth_secret().as_bytes().to_vec();
    let good_endpoint = "https://push.example.net/wpush/v2/abc";
    let mut off_curve = p256dh.clone();
    off_curve[64] ^= 1;
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "an http: endpoint off loopback",
            subscription_json("http://example.org/push/1", &p256dh, &auth),
            code::PUSH_ENDPOINT_INVALID,
        ),
        (
            "an endpoint inside the network (an address)",
            subscription_json("https://10.0.0.5/push/1", &p256dh, &auth),
            code::PUSH_ENDPOINT_INVALID,
        ),
        (
            "an endpoint inside the network (an internal name)",
            subscription_json("https://metadata.internal/push/1", &p256dh, &auth),
            code::PUSH_ENDPOINT_INVALID,
        ),
        (
            "an ftp: endpoint",
            subscription_json("ftp://push.example.net/1", &p256dh, &auth),
            code::PUSH_ENDPOINT_INVALID,
        ),
        (
            "an endpoint with a password",
            subscription_json("https://u:p@push.example.net/1", &p256dh, &auth),
            code::PUSH_ENDPOINT_INVALID,
        ),
        (
            "an endpoint that is not a URL",
            subscription_json("push.example.net", &p256dh, &auth),
            code::PUSH_ENDPOINT_INVALID,
        ),
        (
            "a compressed p256dh",
            subscription_json(good_endpoint, &p256dh[..33], &auth),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
        (
            "a p256dh off the curve",
            subscription_json(good_endpoint, &off_curve, &auth),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
        (
            "a 15-byte auth secret",
            subscription_json(good_endpoint, &p256dh, &auth[..15]),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
        (
            "keys that are not base64url",
            serde_json::json!({"endpoint": good_endpoint, "keys": {"p256dh": "!!", "auth": "??"}}),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
        (
            "no keys",
            serde_json::json!({"endpoint": good_endpoint}),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
        (
            "keys that are the secret itself, as a string serde would quote",
            serde_json::json!({"endpoint": good_endpoint, "keys": URL_SAFE_NO_PAD.encode(&auth)}),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
        (
            "a JSON string",
            serde_json::json!("subscribe me"),
            code::PUSH_SUBSCRIPTION_INVALID,
        ),
    ];
    let before = s.snapshot().await;
    for (what, body, expected) in &cases {
        let message = assert_api_error(subscribe(&s, &token, body).await, 400, expected);
        assert!(!message.is_empty(), "{what}");
        assert!(
            !message.contains(&URL_SAFE_NO_PAD.encode(&auth)),
            "{what}: the secret is not echoed"
        );
    }
    // Not JSON at all, and not UTF-8.
    let url = s.url.join(routes::DEVICE_PUSH_SUBSCRIPTION).unwrap();
    for raw in [b"{not json".to_vec(), vec![0xff, 0xfe, b'{']] {
        let response = s
            .raw_http()
            .post(url.clone())
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code::PUSH_SUBSCRIPTION_INVALID);
    }
    s.assert_unchanged(&before, &s.snapshot().await, "hostile subscriptions");
    assert_eq!(subscription_rows(&s).await, 0);
    s.assert_audited("device.push_subscribed", code::PUSH_ENDPOINT_INVALID, 6)
        .await;
    let refused = s
        .assert_audited("device.push_subscribed", code::PUSH_SUBSCRIPTION_INVALID, 9)
        .await;
    for event in refused {
        assert!(
            !event.detail.contains(&URL_SAFE_NO_PAD.encode(&auth)),
            "no secret in the audit log: {event:?}"
        );
    }
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_server_refuses_loopback_http_endpoints() {
    // Without the test switch (as `vsc serve` always runs), a loopback http: stand-in is refused.
    let s = common::start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let keys = ReceiverKeys::generate().unwrap();
    assert_api_error(
        subscribe(
            &s,
            &token,
            &browser_subscription("http://127.0.0.1:9/push", &keys),
        )
        .await,
        400,
        code::PUSH_ENDPOINT_INVALID,
    );
    assert_eq!(subscription_rows(&s).await, 0);
    // A browser's https: endpoint is stored (nothing is sent until a request is opened).
    let stored = subscribe(
        &s,
        &token,
        &browser_subscription("https://fcm.googleapis.com/fcm/send/abc:APA91b", &keys),
    )
    .await
    .expect("an https: endpoint is accepted");
    assert_eq!(
        stored.endpoint_origin.as_deref(),
        Some("https://fcm.googleapis.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vapid_key_is_made_0600_when_absent_and_kept() {
    let s = start_push().await;
    let path = s.state.config().data_dir.join("vapid-key.pem");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the default key file is private");
    let loaded = vsc_webpush::VapidKey::load(&path).unwrap();
    assert_eq!(
        s.state.push().public_key_base64url(),
        loaded.public_key_base64url()
    );

    // Loading again keeps the key; another path gets its own key, also 0600.
    let url = s.url.clone();
    let (again, created) = vsc_server::push::Push::load(s.state.config(), &url).unwrap();
    assert!(!created);
    assert_eq!(again.public_key_base64url(), loaded.public_key_base64url());
    let dir = tempfile::tempdir().unwrap();
    let mut config = s.state.config().clone();
    let elsewhere = dir.path().join("keys").join("vapid.pem");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    config.push.vapid_key_file = Some(elsewhere.clone());
    let (other, created) = vsc_server::push::Push::load(&config, &url).unwrap();
    assert!(created);
    assert_ne!(other.public_key_base64url(), loaded.public_key_base64url());
    let mode = std::fs::metadata(&elsewhere).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A key file others may read is refused, naming the file.
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = vsc_server::push::Push::load(&config, &url).unwrap_err();
    assert!(err.to_string().contains("vapid.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_silent_push_service_never_holds_up_the_request() {
    let s = start_push().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card_id, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let keys = ReceiverKeys::generate().unwrap();

    // A push service that fails: the subscription is kept, the failure counted.
    let service = PushService::start().await;
    service.answer.store(500, Ordering::SeqCst);
    let endpoint = format!("{}/sub/1", service.base);
    subscribe(&s, &token, &browser_subscription(&endpoint, &keys))
        .await
        .expect("subscribe");
    s.open_request(&uid, "pc-1").await;
    service.wait_for(1).await;
    let mut counted = false;
    for _ in 0..100 {
        let text = s.state.metrics().render(s.state.store()).unwrap();
        if text.contains(r#"vsc_push_notices_total{outcome="failed"} 1"#) {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "the failure is counted");
    assert_eq!(
        stored_endpoints(&s, &phone.device_id()).await,
        vec![endpoint]
    );
    assert!(
        s.audit_events("device.push_subscription_gone")
            .await
            .is_empty()
    );

    // A push service that takes the connection and never answers: the request opens at once
    // and reaches the phone over its own channel as always.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_endpoint = format!("http://{}/sub/2", silent.local_addr().unwrap());
    subscribe(&s, &token, &browser_subscription(&silent_endpoint, &keys))
        .await
        .expect("subscribe to the silent service");
    let started = std::time::Instant::now();
    let created = s.open_request(&uid, "pc-1").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "opening took {:?}",
        started.elapsed()
    );
    let pending = s.try_device_pending(&token).await.unwrap();
    assert!(pending.iter().any(|r| r.request_id == created.request_id));
    drop(silent);
}

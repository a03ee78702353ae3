//! The OpenID Connect provider in a real browser with an independent relying party: headless
//! Chromium driven over WebDriver (selenium) by a relying party written with Python's authlib
//! (`rp.py`, beside this file), against the real server over TLS on loopback. The phone is the
//! real authenticator library; this test approves on it with the number the page shows, and
//! runs the relying party's HTTP side (its callback, its post-logout page and its back-channel
//! logout endpoint) on loopback.
//!
//! Checked, in order: discovery; the sign-in page (UID form, the number, the page's own script
//! continuing after the phone approved, with no CSP violation); role selection (the second role,
//! not the preselected one); the code exchange with `client_secret_basic` and PKCE S256; the ID
//! token validated by authlib against the JWKS (iss, aud, nonce, exp, `selected_roleid`);
//! userinfo; single sign-on to a second client with no sign-in page, whose code is exchanged
//! with `private_key_jwt` (RS512, `kid` = the JWK thumbprint) and whose ID token (RS512) has
//! the same `sid`; `prompt=none` with the session; RP-initiated logout with `id_token_hint`
//! back to the registered post-logout URI with `state`; a logout token for each client at the
//! back-channel endpoint within 10 s, verified here against the provider's JWKS; and
//! `prompt=none` after logout answering `login_required`.
//!
//! Needs Debian's `chromium`, `chromium-driver`, `python3-selenium`, `python3-authlib` and
//! `python3-requests` (scripts/test installs them). Without them the test says so and passes,
//! unless `VSC_REQUIRE_BROWSER` is set (as scripts/test does), when it fails.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../browser/driver.rs"]
mod driver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Html;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use vsc_authenticator::PhoneLink;
use vsc_oidc::jose::{Alg, JwkSet};
use vsc_store::oidc_clients::ClientRow;

use crate::common::{Phone, TestServer, passcode, start};
use crate::driver::Driver;

/// The whole conversation, browser included, must finish within this.
const OVERALL: Duration = Duration::from_secs(120);
/// How long the back-channel logout tokens may take to arrive.
const BACKCHANNEL_WAIT: Duration = Duration::from_secs(10);
/// The event a logout token carries (OpenID Connect Back-Channel Logout 1.0 §2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_authlib_sign_in_choose_role_single_sign_on_and_log_out() {
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(missing) => {
            let required =
                std::env::var("VSC_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !required,
                "VSC_REQUIRE_BROWSER is set but the browser test cannot run: {missing}"
            );
            eprintln!(
                "SKIPPED oidc_browser: {missing}. Install chromium chromium-driver python3-selenium \
                 python3-authlib python3-requests (scripts/test does), or set VSC_REQUIRE_BROWSER=1 \
                 to make this a failure."
            );
            return;
        }
    };
    let started = Instant::now();
    tokio::time::timeout(OVERALL, run(tools))
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {OVERALL:?}"));
    eprintln!(
        "oidc_browser: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The programs the test needs.
struct Tools {
    python: PathBuf,
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Debian's python3 (which has Debian's packages; a `python3` on PATH may be a pyenv
    /// without them), chromium and chromedriver, or what is missing.
    fn find() -> Result<Tools, String> {
        let python = first_of(&["/usr/bin/python3"], "python3").ok_or("no python3")?;
        let chromium = first_of(&["/usr/bin/chromium"], "chromium").ok_or("no chromium")?;
        let chromedriver =
            first_of(&["/usr/bin/chromedriver"], "chromedriver").ok_or("no chromedriver")?;
        let probe = std::process::Command::new(&python)
            .args(["-c", "import selenium, authlib, requests"])
            .output()
            .map_err(|e| format!("{} cannot run: {e}", python.display()))?;
        if !probe.status.success() {
            return Err(format!(
                "{} cannot import selenium, authlib and requests: {}",
                python.display(),
                String::from_utf8_lossy(&probe.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ));
        }
        Ok(Tools {
            python,
            chromium,
            chromedriver,
        })
    }
}

/// The first of `paths` that exists, else `name` on PATH.
fn first_of(paths: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(p) = paths.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

async fn run(tools: Tools) {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position(t, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .unwrap();
    let person = s
        .assign_position(t, &uid, "RX1", "S8001:G8005:R8008")
        .await
        .unwrap();
    let roles: Vec<String> = person.positions.iter().map(|p| p.id.clone()).collect();
    assert_eq!(roles.len(), 2, "the person holds two positions");

    let rp_side = RpEndpoints::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = dir.path().join("root.pem");
    std::fs::write(&ca_pem, s.state.ca().root_pem()).unwrap();

    let mut rp = Driver::spawn(
        &tools.python,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_browser/rp.py"),
        "oidc_browser",
    )
    .await;
    let hello = rp.expect("hello").await;
    let jwks_b = hello["jwks"].clone();
    let key_b: JwkSet = serde_json::from_value(jwks_b.clone())
        .unwrap_or_else(|e| panic!("rp.py's JWK set is not a JWK set ({e}): {jwks_b}"));
    assert_eq!(key_b.keys.len(), 1);

    let client_a = register(&s, "Example EPR", &rp_side, |row| {
        row.auth_method = "client_secret_basic".into();
        row.id_token_alg = "RS256".into();
    })
    .await;
    let client_b = register(&s, "Example Prescribing", &rp_side, |row| {
        row.auth_method = "private_key_jwt".into();
        row.secret_hash = None;
        row.jwks = Some(jwks_b.to_string());
        row.id_token_alg = "RS512".into();
    })
    .await;

    rp.send(&json!({"config": {
        "issuer": s.state.issuer(),
        "ca_pem": ca_pem,
        "chromium": tools.chromium,
        "chromedriver": tools.chromedriver,
        "uid": uid,
        "roles": roles,
        "a": client_a.config(&rp_side),
        "b": client_b.config(&rp_side),
    }}))
    .await;

    // 1. Sign-in with the phone and role selection, client A.
    let number = rp.expect("number").await["number"].as_u64().unwrap();
    approve(&phone, u8::try_from(number).unwrap(), "Example EPR").await;
    rp.send(&json!({"approved": true})).await;
    let a = rp.expect("signed_in").await;
    assert_eq!(a["client"], "A");
    let chosen = a["chosen"].as_str().unwrap().to_owned();
    assert!(roles.contains(&chosen), "{chosen} is one of {roles:?}");
    let claims_a = &a["claims"];
    assert_eq!(claims_a["sub"], Value::from(uid.clone()));
    assert_eq!(claims_a["aud"], Value::from(client_a.client_id.clone()));
    assert_eq!(claims_a["selected_roleid"], Value::from(chosen.clone()));
    assert_eq!(
        a["userinfo"]["selected_roleid"],
        Value::from(chosen.clone())
    );
    let sid = claims_a["sid"].as_str().unwrap().to_owned();
    eprintln!(
        "oidc_browser: client A signed in, role {chosen}, pages {}",
        a["pages"]
    );

    // 2. Single sign-on, client B (private_key_jwt).
    let b = rp.expect("signed_in").await;
    assert_eq!(b["client"], "B");
    assert_eq!(b["claims"]["aud"], Value::from(client_b.client_id.clone()));
    assert_eq!(b["claims"]["sid"], Value::from(sid.clone()));
    let header_b = header_of(b["id_token"].as_str().unwrap());
    assert_eq!(
        header_b["alg"], "RS512",
        "client B asked for RS512 ID tokens"
    );
    eprintln!(
        "oidc_browser: client B signed in by single sign-on, pages {}",
        b["pages"]
    );

    // 4. Logout (3, prompt=none, is checked by rp.py on the way).
    rp.expect("signed_out").await;
    let tokens = rp_side.logout_tokens(2, BACKCHANNEL_WAIT).await;
    check_logout_tokens(&s, &tokens, &[&client_a, &client_b], &uid, &sid).await;
    rp.send(&json!({"backchannel": "ok"})).await;

    // 5. prompt=none after logout.
    rp.expect("done").await;
    rp.finish().await;
    s.assert_audit_intact().await;
}

// --- the relying party's HTTP side ------------------------------------------------------------

/// The relying party's endpoints on loopback: the callback and post-logout pages the browser
/// lands on, and the back-channel logout endpoint the provider posts to.
struct RpEndpoints {
    port: u16,
    logout_tokens: Arc<Mutex<Vec<String>>>,
}

impl RpEndpoints {
    async fn start() -> RpEndpoints {
        let logout_tokens: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = Router::new()
            .route(
                "/callback",
                get(|| async { Html("<!doctype html><title>RP</title><p id=\"rp\">back at the relying party</p>") }),
            )
            .route(
                "/signed-out",
                get(|| async { Html("<!doctype html><title>RP</title><p id=\"rp\">signed out</p>") }),
            )
            .route("/backchannel", post(backchannel))
            .with_state(logout_tokens.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RpEndpoints {
            port,
            logout_tokens,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `n` logout tokens arrived (at most `wait`), then a moment for extra ones.
    async fn logout_tokens(&self, n: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        loop {
            let got = self.logout_tokens.lock().unwrap().len();
            if got >= n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{got} of {n} back-channel logout tokens arrived within {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.logout_tokens.lock().unwrap().clone()
    }
}

/// `POST /backchannel`: a form with `logout_token` (Back-Channel Logout 1.0 §2.5).
async fn backchannel(
    State(tokens): State<Arc<Mutex<Vec<String>>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    match token {
        Some(token) if form => {
            tokens.lock().unwrap().push(token);
            StatusCode::OK
        }
        _ => {
            // Recorded as something no client would accept, so the check below fails on it.
            tokens
                .lock()
                .unwrap()
                .push(format!("not a logout token form: {body}"));
            StatusCode::BAD_REQUEST
        }
    }
}

/// Each logout token verifies against the provider's JWKS and names the session.
async fn check_logout_tokens(
    s: &TestServer,
    tokens: &[String],
    clients: &[&Client],
    uid: &str,
    sid: &str,
) {
    assert_eq!(
        tokens.len(),
        clients.len(),
        "one logout token per client that had a grant: {tokens:?}"
    );
    let http = https_client(s);
    let jwks: JwkSet = http
        .get(format!("{}/oauth2/jwks", s.state.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut by_client = BTreeMap::new();
    for token in tokens {
        let (header, claims) =
            vsc_oidc::jose::verify_jwt(token, &jwks.keys, &[Alg::RS256, Alg::RS512])
                .unwrap_or_else(|e| {
                    panic!("a logout token does not verify against /oauth2/jwks: {e}: {token}")
                });
        let aud = claims["aud"].as_str().unwrap_or_default().to_owned();
        let client = clients
            .iter()
            .find(|c| c.client_id == aud)
            .unwrap_or_else(|| panic!("a logout token for an unknown audience: {claims:?}"));
        assert_eq!(
            header.alg, client.alg,
            "logout token for {aud} signed with the client's ID token algorithm"
        );
        assert_eq!(claims["iss"], Value::from(s.state.issuer()));
        assert_eq!(claims["sid"], Value::from(sid), "{claims:?}");
        assert_eq!(claims["sub"], Value::from(uid), "{claims:?}");
        assert!(
            claims["events"][BACKCHANNEL_EVENT].is_object(),
            "{claims:?}"
        );
        assert!(
            !claims.contains_key("nonce"),
            "a logout token must not carry a nonce: {claims:?}"
        );
        for name in ["iat", "exp", "jti"] {
            assert!(claims.contains_key(name), "no {name}: {claims:?}");
        }
        assert!(
            by_client.insert(aud.clone(), claims).is_none(),
            "two logout tokens for {aud}"
        );
    }
    eprintln!(
        "oidc_browser: back-channel logout tokens verified for {:?}",
        by_client.keys().collect::<Vec<_>>()
    );
}

// --- the provider side ------------------------------------------------------------------------

/// A client registered straight in the store.
struct Client {
    client_id: String,
    secret: String,
    alg: Alg,
}

impl Client {
    fn config(&self, rp: &RpEndpoints) -> Value {
        json!({
            "client_id": self.client_id,
            "secret": self.secret,
            "redirect_uri": rp.url("/callback"),
            "post_logout_uri": rp.url("/signed-out"),
        })
    }
}

async fn register(
    s: &TestServer,
    name: &str,
    rp: &RpEndpoints,
    configure: impl FnOnce(&mut ClientRow),
) -> Client {
    let digits =
        u64::from_be_bytes(s.state.random::<8>().unwrap()) % 900_000_000_000 + 100_000_000_000;
    let client_id = format!("{digits:012}.apps.vsc");
    let secret = URL_SAFE_NO_PAD.encode(s.state.random::<32>().unwrap());
    let mut row = ClientRow {
        client_id: client_id.clone(),
        name: name.to_owned(),
        redirect_uris: vec![rp.url("/callback")],
        post_logout_redirect_uris: vec![rp.url("/signed-out")],
        public_client: false,
        auth_method: "client_secret_basic".into(),
        secret_hash: Some(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes())
                .as_ref()
                .to_vec(),
        ),
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: Some(rp.url("/backchannel")),
        id_token_alg: "RS256".into(),
        any_loopback_redirect: false,
        ods_code: s.state.national_ods().to_owned(),
        created_by: "test".into(),
        created_at: s.state.now_unix(),
        disabled_at: None,
    };
    configure(&mut row);
    let alg = row.id_token_alg.parse().unwrap();
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::oidc_clients::insert_client(&mut conn, &row)
        .await
        .unwrap();
    Client {
        client_id,
        secret,
        alg,
    }
}

/// The phone approves its one pending request with `number`, after checking it names the
/// client and comes from the browser's (loopback) address.
async fn approve(phone: &Phone, number: u8, client_name: &str) {
    let link = PhoneLink::new(&phone.home).unwrap();
    let pending = link.pending(5).await.unwrap();
    let request = pending.last().expect("a request on the phone").clone();
    assert_eq!(
        request.context.web_client, client_name,
        "{:?}",
        request.context
    );
    assert_eq!(
        request.context.client_address, "127.0.0.1",
        "{:?}",
        request.context
    );
    link.approve(&request, number, &passcode()).await.unwrap();
}

/// A JWT's header, unverified.
fn header_of(jwt: &str) -> Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// An HTTPS client trusting the instance's root.
fn https_client(s: &TestServer) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    let der = vsc_pki::pem_to_der(&s.state.ca().root_pem()).unwrap();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

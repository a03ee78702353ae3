//! A cookie-keeping HTTPS "browser", a relying party registered straight in the store, and the
//! whole sign-in through the pages with the phone approving.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header;
use serde_json::Value;
use vsc_authenticator::PhoneLink;
use vsc_oidc::jose::{Alg, Header, JwkSet};
use vsc_store::oidc_clients::ClientRow;

use crate::common::{Phone, TestServer, passcode};

/// A browser: no automatic redirects, cookies kept by name.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Every `Set-Cookie` value received, in order.
    pub set_cookies: Vec<String>,
    base: String,
}

/// An answer as a browser sees it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the hidden `csrf` field.
    pub fn csrf(&self) -> String {
        field(&self.body, "csrf").expect("the page has a CSRF token")
    }
    /// The number shown for the phone.
    pub fn number(&self) -> u8 {
        let at = self
            .body
            .find("class=\"number\"")
            .expect("a number on the page");
        let rest = &self.body[at..];
        let start = rest.find('>').unwrap() + 1;
        let end = rest.find('<').unwrap();
        rest[start..end].trim().parse().expect("a two-digit number")
    }
}

/// The value of the input named `name` in `html`.
pub fn field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Browser {
    pub fn new(s: &TestServer) -> Browser {
        let base = s.state.issuer();
        let http = raw_http_no_redirect(s);
        Browser {
            http,
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
            base,
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, r: reqwest::Response) -> Page {
        for v in r.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            self.set_cookies.push(v.to_owned());
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let location = headers
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: r.text().await.unwrap(),
            headers,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(self.url(path))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .http
            .post(self.url(path))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }
}

/// The server's HTTPS client with redirects off.
pub fn raw_http_no_redirect(s: &TestServer) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    let der = vsc_pki::pem_to_der(&s.state.ca().root_pem()).unwrap();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
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

/// A registered relying party.
pub struct Rp {
    pub client_id: String,
    pub secret: String,
    pub redirect_uri: String,
}

/// Registers a confidential client (`client_secret_basic`) straight in the store.
pub async fn register(s: &TestServer, name: &str, configure: impl FnOnce(&mut ClientRow)) -> Rp {
    let n: u64 = rand_digits(s);
    let client_id = format!("{n:012}.apps.vsc");
    let secret = URL_SAFE_NO_PAD.encode(s.state.random::<32>().unwrap());
    let redirect_uri = "https://rp.example/callback".to_owned();
    let mut row = ClientRow {
        client_id: client_id.clone(),
        name: name.to_owned(),
        redirect_uris: vec![redirect_uri.clone()],
        post_logout_redirect_uris: vec!["https://rp.example/signed-out".into()],
        public_client: false,
        auth_method: "client_secret_basic".into(),
        secret_hash: Some(sha256(secret.as_bytes())),
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        id_token_alg: "RS256".into(),
        any_loopback_redirect: false,
        ods_code: s.state.national_ods().to_owned(),
        created_by: "test".into(),
        created_at: s.state.now_unix(),
        disabled_at: None,
    };
    configure(&mut row);
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::oidc_clients::insert_client(&mut conn, &row)
        .await
        .unwrap();
    Rp {
        client_id,
        secret,
        redirect_uri: row.redirect_uris[0].clone(),
    }
}

fn rand_digits(s: &TestServer) -> u64 {
    let b = s.state.random::<8>().unwrap();
    100_000_000_000 + u64::from_be_bytes(b) % 900_000_000_000
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// The authorization URL for `rp` with extra parameters.
pub fn authorize_url(rp: &Rp, extra: &[(&str, &str)]) -> String {
    authorize_url_omitting(rp, &[], extra)
}

/// The authorization URL for `rp` without the parameters `omit`, with extra parameters.
pub fn authorize_url_omitting(rp: &Rp, omit: &[&str], extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &rp.client_id),
        ("redirect_uri", &rp.redirect_uri),
        ("scope", "openid profile"),
        ("state", "st-123"),
        ("nonce", "n-456"),
    ];
    pairs.retain(|(k, _)| !omit.contains(k));
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k, v));
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oauth2/authorize?{q}")
}

/// Query parameters of a redirect.
pub fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// From the authorization URL to the redirect back to the client: the UID form, the number,
/// the phone's approval, the continue form, and (when offered) the role `choose`.
pub async fn sign_in(
    s: &TestServer,
    b: &mut Browser,
    authorize: &str,
    uid: &str,
    phone: &Phone,
    choose: Option<&str>,
) -> String {
    let start = b.get(authorize).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let page_url = start.location.unwrap();
    assert!(page_url.starts_with("/oauth2/signin/"), "{page_url}");
    let form = b.get(&page_url).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let sent = b
        .post(&page_url, &[("csrf", &form.csrf()), ("uid", uid)])
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let shown = b.get(&page_url).await;
    let number = shown.number();
    approve(s, phone, number).await;
    let cont = b
        .post(&format!("{page_url}/continue"), &[("csrf", &shown.csrf())])
        .await;
    assert_eq!(cont.status, 303, "{}", cont.body);
    let mut location = cont.location.unwrap();
    if location.starts_with("/oauth2/signin/") {
        let roles = b.get(&location).await;
        let role = choose.expect("a role to choose");
        assert!(roles.body.contains(role), "{}", roles.body);
        let chosen = b
            .post(
                &format!("{location}/role"),
                &[("csrf", &roles.csrf()), ("role", role)],
            )
            .await;
        assert_eq!(chosen.status, 303, "{}", chosen.body);
        location = chosen.location.unwrap();
    }
    location
}

/// The phone approves its one pending request with `number`.
pub async fn approve(_s: &TestServer, phone: &Phone, number: u8) {
    let link = PhoneLink::new(&phone.home).unwrap();
    let pending = link.pending(5).await.unwrap();
    let request = pending.last().expect("a request on the phone").clone();
    link.approve(&request, number, &passcode()).await.unwrap();
}

/// `POST /oauth2/token` with HTTP Basic client authentication.
pub async fn token(s: &TestServer, rp: &Rp, form: &[(&str, &str)]) -> (u16, Value) {
    let http = raw_http_no_redirect(s);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let r = http
        .post(format!("{}/oauth2/token", s.state.issuer()))
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The claims of a JWT, unverified (tests verify separately).
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

impl Browser {
    /// A GET with a bearer token, as a relying party calls userinfo.
    pub async fn http_get_bearer(&mut self, _s: &TestServer, path: &str, token: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures and raw requests for the protocol tests.
// ---------------------------------------------------------------------------------------------

/// A clinician at RX1 with an enrolled phone and one role, and the RA Manager's session token
/// (to add people and roles).
pub struct Clinician {
    pub uid: String,
    pub phone: Phone,
    pub ra: String,
}

/// Bootstraps the RA Manager, registers RX1 and a clinician holding one role there.
pub async fn clinician(s: &TestServer) -> Clinician {
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    s.assign_position(&ram.token, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .unwrap();
    Clinician {
        uid,
        phone,
        ra: ram.token.clone(),
    }
}

/// A new browser signed in as `c` through the pages for `rp` (with `extra` authorization
/// parameters); returns it (holding the SSO cookie) and the authorization code.
pub async fn signed_in(
    s: &TestServer,
    c: &Clinician,
    rp: &Rp,
    extra: &[(&str, &str)],
) -> (Browser, String) {
    let mut b = Browser::new(s);
    let back = sign_in(s, &mut b, &authorize_url(rp, extra), &c.uid, &c.phone, None).await;
    assert!(back.starts_with(&rp.redirect_uri), "{back}");
    let q = query_of(&back);
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"), "{back}");
    (b, q["code"].clone())
}

/// A code by single sign-on: the browser's session answers at once, no page.
pub async fn sso_code(b: &mut Browser, rp: &Rp, extra: &[(&str, &str)]) -> String {
    let r = b.get(&authorize_url(rp, extra)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let loc = r.location.unwrap();
    assert!(loc.starts_with(&rp.redirect_uri), "{loc}");
    let q = query_of(&loc);
    q.get("code")
        .unwrap_or_else(|| panic!("a code in {loc}"))
        .clone()
}

/// The code grant's form for `rp`.
pub fn code_form<'a>(rp: &'a Rp, code: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &rp.redirect_uri),
    ]
}

/// Exchanges `code` with Basic authentication and expects tokens.
pub async fn exchange(s: &TestServer, rp: &Rp, code: &str) -> Tokens {
    let (status, body) = token(s, rp, &code_form(rp, code)).await;
    assert_eq!(status, 200, "{body}");
    Tokens::of(body)
}

/// A token response's tokens.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub id_token: String,
    pub claims: Value,
}

impl Tokens {
    pub fn of(body: Value) -> Tokens {
        let id_token = body["id_token"].as_str().expect("an id_token").to_owned();
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("an access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("a refresh_token")
                .to_owned(),
            claims: claims_of(&id_token),
            id_token,
        }
    }
}

/// How a token request authenticates.
pub enum Auth<'a> {
    /// HTTP Basic with these credentials.
    Basic(&'a str, &'a str),
    /// This exact `Authorization` header value.
    Header(&'a [u8]),
    /// Nothing in the header (a public client, or credentials in the body).
    None,
}

/// An answer of the token or userinfo endpoint.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The OAuth `error` code.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    /// The `WWW-Authenticate` header.
    pub fn challenge(&self) -> Option<&str> {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }
    /// Asserts an error answer: `status` and OAuth `error`, and that no token came with it.
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.error()),
            (status, error),
            "{}",
            self.body
        );
        for t in ["access_token", "refresh_token", "id_token"] {
            assert!(self.body.get(t).is_none(), "{t} issued with an error");
        }
    }
}

async fn reply_of(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// `POST /oauth2/token` with any body and content type.
pub async fn token_raw(s: &TestServer, auth: Auth<'_>, content_type: &str, body: String) -> Reply {
    let http = raw_http_no_redirect(s);
    let mut rb = http
        .post(format!("{}/oauth2/token", s.state.issuer()))
        .header(header::CONTENT_TYPE, content_type)
        .body(body);
    match auth {
        Auth::Basic(id, secret) => rb = rb.basic_auth(id, Some(secret)),
        Auth::Header(h) => {
            rb = rb.header(
                header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_bytes(h).unwrap(),
            )
        }
        Auth::None => {}
    }
    reply_of(rb.send().await.unwrap()).await
}

/// `POST /oauth2/token` with a form.
pub async fn token_form(s: &TestServer, auth: Auth<'_>, form: &[(&str, &str)]) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    token_raw(s, auth, "application/x-www-form-urlencoded", body).await
}

/// How a relying party presents its access token at userinfo.
#[derive(Debug, Clone, Copy)]
pub enum Present {
    GetHeader,
    PostHeader,
    PostBody,
}

/// Calls userinfo (`None`: no token at all).
pub async fn userinfo(s: &TestServer, how: Present, token: Option<&str>) -> Reply {
    let http = raw_http_no_redirect(s);
    let url = format!("{}/oauth2/userinfo", s.state.issuer());
    let rb = match (how, token) {
        (Present::GetHeader, Some(t)) => http.get(url).bearer_auth(t),
        (Present::GetHeader, None) => http.get(url),
        (Present::PostHeader, Some(t)) => http
            .post(url)
            .bearer_auth(t)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(""),
        (Present::PostBody, Some(t)) => http
            .post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("access_token={t}")),
        (_, None) => http
            .post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(""),
    };
    reply_of(rb.send().await.unwrap()).await
}

/// Asserts that `access` no longer opens userinfo (401 `invalid_token`).
pub async fn assert_access_refused(s: &TestServer, access: &str) {
    let r = userinfo(s, Present::GetHeader, Some(access)).await;
    r.assert_error(401, "invalid_token");
    assert!(
        r.challenge().unwrap().starts_with("Bearer"),
        "{:?}",
        r.challenge()
    );
}

/// Asserts that `access` opens userinfo for `uid`.
pub async fn assert_access_works(s: &TestServer, access: &str, uid: &str) {
    let r = userinfo(s, Present::GetHeader, Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["sub"], uid);
}

/// Asserts a redirect back to `rp` with `error` (and `state` when given) and no code.
pub fn assert_redirect_error(page: &Page, rp: &Rp, error: &str, state: Option<&str>) {
    assert_eq!(page.status, 303, "{}", page.body);
    let loc = page.location.as_deref().unwrap();
    assert!(loc.starts_with(&rp.redirect_uri), "{loc}");
    let q = query_of(loc);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{loc}");
    assert_eq!(q.get("state").map(String::as_str), state, "{loc}");
    assert!(!q.contains_key("code"), "{loc}");
}

/// Asserts an HTML error page with `status`: no redirect anywhere.
pub fn assert_error_page(page: &Page, status: u16) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.location.is_none(), "{:?}", page.location);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers
    );
    assert!(page.body.contains("<h1>"), "{}", page.body);
}

/// Rows in `table`.
pub async fn count(s: &TestServer, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    n
}

/// The provider's published JWK set.
pub async fn jwks(s: &TestServer) -> JwkSet {
    let page = Browser::new(s).get("/oauth2/jwks").await;
    assert_eq!(page.status, 200, "{}", page.body);
    serde_json::from_str(&page.body).unwrap()
}

/// Verifies a JWT of the provider against its published keys.
pub async fn verify(
    s: &TestServer,
    jwt: &str,
    alg: Alg,
) -> (Header, serde_json::Map<String, Value>) {
    vsc_oidc::jose::verify_jwt(jwt, &jwks(s).await.keys, &[alg]).unwrap()
}

/// A plain-HTTP server on loopback that serves `router`; returns its origin.
pub async fn serve_local(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A relying party's back-channel logout endpoint at `{origin}/bc`: every `logout_token`
/// posted to it arrives on the receiver.
pub async fn backchannel_endpoint() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let router = axum::Router::new().route(
        "/bc",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
                    if k == "logout_token" {
                        let _ = tx.send(v.into_owned());
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    (format!("{}/bc", serve_local(router).await), rx)
}

/// Serves `set` at `{origin}/jwks.json`; returns that URL.
pub async fn serve_jwks(set: &JwkSet) -> String {
    let body = serde_json::to_string(set).unwrap();
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    format!("{}/jwks.json", serve_local(router).await)
}

/// A random URL-safe string.
pub fn random_id(s: &TestServer) -> String {
    URL_SAFE_NO_PAD.encode(s.state.random::<16>().unwrap())
}

/// The live sign-in session row of `sid`.
pub async fn session_row(s: &TestServer, sid: &str) -> vsc_store::signin::SessionRow {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::oidc::session(&mut conn, sid)
        .await
        .unwrap()
        .unwrap()
}

//! OpenID Connect client registration through the real `vsc` binary: `vsc ra client create`
//! (with `--json` and for people), `list`, `show`, `rotate-secret` and `disable` against
//! `vsc serve` on loopback; the sandbox's test client, registered once and printed at every
//! start; and a whole sign-in with that client from outside the process, as an integrator's
//! relying party would do it (authorization code flow, the sandbox phone approving by itself).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Sandbox, Server, ok, run};
use reqwest::{StatusCode, header};

const PASSCODE: &str = "246810";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `args`, which must fail; returns its standard error.
fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        !out.status.success(),
        "vsc {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn is_client_id(id: &str) -> bool {
    id.strip_suffix(".apps.vsc").is_some_and(|d| {
        d.len() == 12 && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

#[test]
fn create_list_show_rotate_and_disable_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let link = bootstrap["activation"]["url"].as_str().unwrap().to_owned();
    let ram = tmp.path().join("ram-phone");
    ok(
        &["authenticator", "--home", path(&ram), "enrol", &link],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    let ra = |args: &[&str]| -> String {
        let mut full = vec!["ra", "--home", path(&ram)];
        full.extend_from_slice(args);
        ok(&full, None)
    };
    let ra_json = |args: &[&str]| -> serde_json::Value {
        let out = ra(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json prints JSON ({e}): {out}"))
    };

    // --help reads like a manual page.
    let help = ra(&["client", "create", "--help"]);
    for needed in [
        "--redirect-uri",
        "--public",
        "private_key_jwt",
        "Examples:",
        "PKCE",
    ] {
        assert!(help.contains(needed), "{needed} in:\n{help}");
    }

    // create --json: the ClientCreated, with the secret.
    let created = ra_json(&[
        "client",
        "create",
        "--name",
        "Ward Round",
        "--redirect-uri",
        "https://wardround.example.nhs.uk/oidc/callback",
        "--redirect-uri",
        "http://127.0.0.1:8080/callback",
        "--post-logout-redirect-uri",
        "https://wardround.example.nhs.uk/",
        "--backchannel-logout-uri",
        "https://wardround.example.nhs.uk/bcl",
        "--id-token-alg",
        "RS512",
        "--json",
    ]);
    let id = created["client"]["client_id"].as_str().unwrap().to_owned();
    assert!(is_client_id(&id), "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43);
    assert_eq!(created["issuer"].as_str().unwrap(), server.url);
    assert_eq!(created["client"]["auth_method"], "client_secret_basic");
    assert_eq!(created["client"]["id_token_alg"], "RS512");
    assert_eq!(
        created["client"]["redirect_uris"].as_array().unwrap().len(),
        2
    );

    // For people: the secret once, the issuer, the discovery URL, what to do next.
    let human = ra(&[
        "client",
        "create",
        "--name",
        "Results",
        "--redirect-uri",
        "https://results.example/cb",
        "--auth",
        "client_secret_post",
    ]);
    for needed in [
        "client_id",
        "client_secret",
        "shown once: store it now",
        &format!("issuer           {}", server.url),
        &format!("{}/.well-known/openid-configuration", server.url),
        "Next:",
    ] {
        assert!(human.contains(needed), "{needed:?} in:\n{human}");
    }

    // A private_key_jwt client with its key in a file (one JWK: the P-256 base point).
    let jwk = tmp.path().join("key.json");
    std::fs::write(
        &jwk,
        r#"{"kty":"EC","crv":"P-256","x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}"#,
    )
    .unwrap();
    let keyed = ra_json(&[
        "client",
        "create",
        "--name",
        "Keyed",
        "--redirect-uri",
        "https://keyed.example/cb",
        "--auth",
        "private_key_jwt",
        "--jwks",
        path(&jwk),
        "--json",
    ]);
    assert!(keyed.get("client_secret").is_none(), "{keyed}");
    assert_eq!(keyed["client"]["has_jwks"], true);
    let public = ra_json(&[
        "client",
        "create",
        "--name",
        "Clinic App",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--json",
    ]);
    assert_eq!(public["client"]["auth_method"], "none");
    let public_id = public["client"]["client_id"].as_str().unwrap().to_owned();

    // Refusals carry the server's code; clap refuses what does not go together.
    let err = fails(&[
        "ra",
        "--home",
        path(&ram),
        "client",
        "create",
        "--name",
        "Insecure",
        "--redirect-uri",
        "http://insecure.example/cb",
    ]);
    assert!(err.contains("invalid_redirect_uri"), "{err}");
    let err = fails(&[
        "ra",
        "--home",
        path(&ram),
        "client",
        "create",
        "--name",
        "Both",
        "--public",
        "--auth",
        "client_secret_basic",
        "--redirect-uri",
        "https://rp.example/cb",
    ]);
    assert!(err.contains("--public"), "{err}");

    // list and show never print a secret.
    let list = ra(&["client", "list", "--json"]);
    assert!(!list.contains(&secret), "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == id)
    );
    let listed = ra(&["client", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("Ward Round"),
        "{listed}"
    );
    let shown = ra_json(&["client", "show", &id, "--json"]);
    assert_eq!(shown["client_id"], id);
    assert_eq!(
        shown["backchannel_logout_uri"],
        "https://wardround.example.nhs.uk/bcl"
    );
    assert!(shown.get("client_secret").is_none());
    let shown = ra(&["client", "show", &id]);
    assert!(
        shown.contains("active") && !shown.contains(&secret),
        "{shown}"
    );

    // rotate-secret: a new secret, once.
    let rotated = ra_json(&["client", "rotate-secret", &id, "--json"]);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let err = fails(&[
        "ra",
        "--home",
        path(&ram),
        "client",
        "rotate-secret",
        &public_id,
    ]);
    assert!(err.contains("client_has_no_secret"), "{err}");

    // disable, after which the secret cannot be rotated.
    let disabled = ra(&["client", "disable", &id]);
    assert!(disabled.contains("disabled"), "{disabled}");
    let shown = ra_json(&["client", "show", &id, "--json"]);
    assert!(shown["disabled_at"].is_string(), "{shown}");
    let err = fails(&["ra", "--home", path(&ram), "client", "rotate-secret", &id]);
    assert!(err.contains("client_disabled"), "{err}");
    let err = fails(&["ra", "--home", path(&ram), "client", "show", "../../ra/me"]);
    assert!(err.contains("not a client id"), "{err}");

    // Everything is in the audit log.
    let log = ok(&["audit", "export", "--data", path(&data)], None);
    for action in [
        "oidc_client.registered",
        "oidc_client.secret_rotated",
        "oidc_client.disabled",
    ] {
        assert!(log.contains(action), "{action} in the audit log");
    }
    assert!(!log.contains(&secret) && !log.contains(new_secret));
    server.stop();
}

#[test]
fn the_sandbox_registers_its_test_client_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sandbox");
    let sandbox = Sandbox::start(&data);
    let issuer = sandbox.field("OIDC issuer");
    let server = sandbox.field("server");
    assert_eq!(issuer, server.trim_end_matches('/'));
    let line = sandbox.field("OIDC test client");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(is_client_id(words[0]), "{line}");
    assert_eq!(words[1], "secret", "{line}");
    let (id, secret) = (words[0].to_owned(), words[2].to_owned());
    assert!(line.contains("any loopback redirect URI"), "{line}");
    assert!(sandbox.stop().success());

    let file = data.join("sandbox.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "sandbox.json holds a secret: {mode:o}");
    }
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["oidc_client_id"], id);
    assert_eq!(saved["oidc_client_secret"], secret);

    // The next start prints the same client.
    let sandbox = Sandbox::start(&data);
    assert_eq!(
        sandbox.field("OIDC test client"),
        line,
        "the test client is kept across runs"
    );
    assert!(sandbox.stop().success());

    // A sandbox made before the provider existed gets its client on its next start.
    let mut old = saved.clone();
    let obj = old.as_object_mut().unwrap();
    obj.remove("oidc_client_id");
    obj.remove("oidc_client_secret");
    std::fs::write(&file, serde_json::to_vec(&old).unwrap()).unwrap();
    let sandbox = Sandbox::start(&data);
    let line2 = sandbox.field("OIDC test client");
    let id2 = line2.split_whitespace().next().unwrap().to_owned();
    assert!(is_client_id(&id2) && id2 != id, "{line2}");
    assert!(sandbox.stop().success());
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["oidc_client_id"], id2);
    assert_eq!(saved["uid"], old["uid"], "the test person is kept");
}

/// A browser's cookies, kept by hand from `Set-Cookie` (the client follows no redirect either).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.to_ascii_lowercase().contains("max-age=0") {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("no Location in {r:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of the hidden input `name` in `html`.
fn hidden_input(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name:?} in:\n{html}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let value = tag.split("value=\"").nth(1).unwrap();
    value[..value.find('"').unwrap()].to_owned()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// What an integrator does against `vsc sandbox`: discovery, the authorization request, the
/// sign-in page (UID, the phone approving by itself), the code at the loopback redirect URI,
/// the token request with the printed secret, and userinfo. Only loopback traffic.
#[test]
fn an_integrator_signs_in_through_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sandbox");
    let sandbox = Sandbox::start(&data);
    let issuer = sandbox.field("OIDC issuer");
    let line = sandbox.field("OIDC test client");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], "secret", "{line}");
    let (client_id, secret) = (words[0].to_owned(), words[2].to_owned());
    let uid = sandbox
        .field("test person")
        .split("UID ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let root = std::fs::read(data.join("server/ca/root.pem")).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&root).unwrap()])
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap();
        let base = url::Url::parse(&issuer).unwrap();
        let at = |path: &str| base.join(path).unwrap().to_string();
        let mut jar = Jar::default();

        // Discovery.
        let r = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let config: serde_json::Value = r.json().await.unwrap();
        assert_eq!(config["issuer"], issuer.as_str());
        let endpoint = |name: &str| config[name].as_str().unwrap().to_owned();
        let (authorize, token, userinfo) = (
            endpoint("authorization_endpoint"),
            endpoint("token_endpoint"),
            endpoint("userinfo_endpoint"),
        );
        for e in [&authorize, &token, &userinfo] {
            assert!(e.starts_with("https://127.0.0.1:"), "{e}");
        }

        // The authorization request: to the sign-in page, with this browser's flow cookie.
        let redirect_uri = "http://127.0.0.1:9/callback";
        let (state, nonce) = ("st-8c1f2e", "n-5d7a90b3");
        let mut request = url::Url::parse(&authorize).unwrap();
        request
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile nationalrbacaccess")
            .append_pair("state", state)
            .append_pair("nonce", nonce);
        let r = http.get(request).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
        jar.keep(&r);
        let page = at(&location(&r));
        let flow = page
            .split("/oauth2/signin/")
            .nth(1)
            .unwrap_or_else(|| panic!("to the sign-in page: {page}"))
            .to_owned();
        assert!(
            jar.0.contains_key(&format!("__Host-vsc-flow-{flow}")),
            "flow cookie: {:?}",
            jar.0.keys()
        );

        // The page: the UID, sent to the phone.
        let r = http
            .get(&page)
            .header(header::COOKIE, jar.header())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        jar.keep(&r);
        let html = r.text().await.unwrap();
        assert!(html.contains("vsc sandbox test client"), "{html}");
        let csrf = hidden_input(&html, "csrf");
        let r = http
            .post(&page)
            .header(header::COOKIE, jar.header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf), ("uid", &uid)]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "UID sent: {}",
            r.text().await.unwrap()
        );
        jar.keep(&r);

        // The sandbox phone reads the number off the page and approves by itself.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let r = http
                .get(format!("{page}/status?wait=25"))
                .header(header::COOKIE, jar.header())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let status: serde_json::Value = r.json().await.unwrap();
            if status["state"] == "approved" {
                break;
            }
            seen.push(status);
            assert!(
                seen.last().unwrap()["state"] == "pending" && Instant::now() < deadline,
                "the sandbox phone did not approve within 60 s: {seen:?}"
            );
        }

        // Continue: back to the client with the code.
        let r = http
            .post(format!("{page}/continue"))
            .header(header::COOKIE, jar.header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf)]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "continue: {}",
            r.text().await.unwrap()
        );
        jar.keep(&r);
        let back = url::Url::parse(&location(&r)).unwrap();
        assert_eq!(
            &back[..url::Position::AfterPath],
            redirect_uri,
            "to the client: {back}"
        );
        let query: BTreeMap<String, String> = back.query_pairs().into_owned().collect();
        assert_eq!(query["state"], state, "{back}");
        assert_eq!(query["iss"], issuer, "{back}");
        let code = &query["code"];

        // The token request, with the printed secret.
        let r = http
            .post(&token)
            .basic_auth(&client_id, Some(&secret))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let tokens: serde_json::Value = r.json().await.unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        assert!(tokens["refresh_token"].is_string(), "{tokens}");
        let payload = id_token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["iss"], issuer.as_str(), "{claims}");
        assert_eq!(claims["aud"], client_id.as_str(), "{claims}");
        assert_eq!(claims["sub"], uid.as_str(), "{claims}");
        assert_eq!(claims["nonce"], nonce, "{claims}");

        // userinfo with the access token.
        let r = http
            .get(&userinfo)
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let info: serde_json::Value = r.json().await.unwrap();
        assert_eq!(info["sub"], uid.as_str(), "{info}");
        assert!(
            info["nhsid_nrbac_roles"]
                .as_array()
                .is_some_and(|roles| !roles.is_empty()),
            "{info}"
        );
    });
    assert!(sandbox.stop().success());
}

/// `vsc sandbox` then `/ra`: the RA Manager's simulated phone approves the console sign-in by
/// itself, so the console opens on its dashboard.
#[test]
fn the_sandbox_ra_manager_signs_in_to_the_console_by_phone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sandbox");
    let sandbox = Sandbox::start(&data);
    let issuer = sandbox.field("OIDC issuer");
    let console = sandbox.field("RA console");
    let uid = console
        .split("UID ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("the RA Manager's UID in {console}"))
        .to_owned();
    let root = std::fs::read(data.join("server/ca/root.pem")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&root).unwrap()])
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap();
        let base = url::Url::parse(&issuer).unwrap();
        let at = |path: &str| base.join(path).unwrap().to_string();
        let mut jar = Jar::default();
        let get = async |jar: &mut Jar, url: String| {
            let r = http
                .get(&url)
                .header(header::COOKIE, jar.header())
                .send()
                .await
                .unwrap();
            jar.keep(&r);
            r
        };
        // /ra → /ra/signin → the provider → the sign-in page.
        let mut url = at("/ra");
        for _ in 0..3 {
            let r = get(&mut jar, url.clone()).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{url}");
            url = at(&location(&r));
        }
        assert!(url.contains("/oauth2/signin/"), "{url}");
        let r = get(&mut jar, url.clone()).await;
        let html = r.text().await.unwrap();
        assert!(html.contains("vsc RA console"), "{html}");
        let csrf = hidden_input(&html, "csrf");
        let r = http
            .post(&url)
            .header(header::COOKIE, jar.header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf), ("uid", &uid)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = get(&mut jar, format!("{url}/status?wait=25")).await;
            let status: serde_json::Value = r.json().await.unwrap();
            if status["state"] == "approved" {
                break;
            }
            assert!(
                status["state"] == "pending" && Instant::now() < deadline,
                "the RA Manager's sandbox phone did not approve: {status}"
            );
        }
        let r = http
            .post(format!("{url}/continue"))
            .header(header::COOKIE, jar.header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        jar.keep(&r);
        let callback = at(&location(&r));
        assert!(callback.contains("/ra/callback?"), "{callback}");
        let r = get(&mut jar, callback).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = get(&mut jar, at(&location(&r))).await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(html.contains("Dashboard"), "{html}");
    });
}

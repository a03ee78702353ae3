//! RP-initiated logout and back-channel logout: the session ends, its tokens die, each client
//! that held a grant and registered a `backchannel_logout_uri` receives a verifiable logout
//! token; without an `id_token_hint` the person confirms on a page (CSRF-protected); an
//! unregistered return address or a forged hint ends nothing.

use std::time::Duration;

use vsc_oidc::jose::{Alg, SigningKey};

use crate::common::{TestServer, start};
use crate::support::{
    Browser, Clinician, Rp, Tokens, assert_access_refused, assert_access_works, assert_error_page,
    assert_redirect_error, authorize_url, backchannel_endpoint, claims_of, clinician, exchange,
    query_of, register, signed_in, sso_code, verify,
};

const SSO: &str = "__Host-vsc-sso";

fn logout_url(pairs: &[(&str, &str)]) -> String {
    format!(
        "/oauth2/logout?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    )
}

/// Whether the session behind `cookie` still answers `prompt=none` with a code.
async fn session_alive(s: &TestServer, rp: &Rp, cookie: &str) -> bool {
    let mut b = Browser::new(s);
    b.cookies.insert(SSO.into(), cookie.into());
    let page = b.get(&authorize_url(rp, &[("prompt", "none")])).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let q = query_of(page.location.as_deref().unwrap());
    match q.get("error").map(String::as_str) {
        None => {
            assert!(q.contains_key("code"));
            true
        }
        Some("login_required") => false,
        Some(other) => panic!("unexpected error {other}"),
    }
}

async fn signed_in_with_tokens(
    s: &TestServer,
    c: &Clinician,
    rp: &Rp,
) -> (Browser, Tokens, String) {
    let (b, code) = signed_in(s, c, rp, &[]).await;
    let t = exchange(s, rp, &code).await;
    let cookie = b.cookies[SSO].clone();
    (b, t, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_a_hint_ends_the_session_and_tells_each_client_on_the_back_channel() {
    let s = start().await;
    let c = clinician(&s).await;
    let (bc_uri, mut received) = backchannel_endpoint().await;
    let rp = register(&s, "EPR", |r| {
        r.backchannel_logout_uri = Some(bc_uri.clone())
    })
    .await;
    let (bc2_uri, mut received2) = backchannel_endpoint().await;
    let rp2 = register(&s, "Second", |r| {
        r.backchannel_logout_uri = Some(bc2_uri.clone());
        r.id_token_alg = "ES256".into();
    })
    .await;
    // A client that got a code but never redeemed it is not told (it holds no tokens).
    let (bc3_uri, mut received3) = backchannel_endpoint().await;
    let rp3 = register(&s, "Never redeemed", |r| {
        r.backchannel_logout_uri = Some(bc3_uri.clone())
    })
    .await;
    let (mut b, t, cookie) = signed_in_with_tokens(&s, &c, &rp).await;
    let code2 = sso_code(&mut b, &rp2, &[]).await;
    let t2 = exchange(&s, &rp2, &code2).await;
    sso_code(&mut b, &rp3, &[]).await;
    let sid = t.claims["sid"].as_str().unwrap().to_owned();

    let out = b
        .get(&logout_url(&[
            ("id_token_hint", &t.id_token),
            ("post_logout_redirect_uri", "https://rp.example/signed-out"),
            ("state", "s1"),
        ]))
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(
        out.location.as_deref(),
        Some("https://rp.example/signed-out?state=s1")
    );
    assert!(!b.cookies.contains_key(SSO), "the SSO cookie is cleared");
    assert!(
        b.set_cookies
            .iter()
            .any(|c| c.starts_with("__Host-vsc-sso=;") && c.contains("Max-Age=0")),
        "{:?}",
        b.set_cookies
    );

    let token = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("a logout token within 5 s")
        .unwrap();
    let (header, claims) = verify(&s, &token, Alg::RS256).await;
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(claims["iss"], s.state.issuer());
    assert_eq!(claims["aud"], rp.client_id.as_str());
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["sub"], c.uid.as_str());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none(), "{claims:?}");
    assert!(claims["jti"].is_string() && claims["iat"].is_i64());
    let token2 = tokio::time::timeout(Duration::from_secs(5), received2.recv())
        .await
        .expect("the second client's logout token within 5 s")
        .unwrap();
    let (_, claims2) = verify(&s, &token2, Alg::ES256).await;
    assert_eq!(claims2["aud"], rp2.client_id.as_str());
    assert_eq!(claims2["sid"], sid.as_str());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), received3.recv())
            .await
            .is_err(),
        "a client without tokens is not told"
    );

    assert_access_refused(&s, &t.access).await;
    assert_access_refused(&s, &t2.access).await;
    let mut old = Browser::new(&s);
    old.cookies.insert(SSO.into(), cookie.clone());
    let page = old.get(&authorize_url(&rp, &[("prompt", "none")])).await;
    assert_redirect_error(&page, &rp, "login_required", Some("st-123"));
    // Logging out again with the same hint is harmless and sends nothing new.
    let again = b.get(&logout_url(&[("id_token_hint", &t.id_token)])).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), received.recv())
            .await
            .is_err(),
        "no second logout token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_a_hint_asks_the_person_to_confirm() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, t, cookie) = signed_in_with_tokens(&s, &c, &rp).await;

    let page = b.get("/oauth2/logout").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    let csrf = page.csrf();
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(session_alive(&s, &rp, &cookie).await);

    // Posted without the CSRF token, with a wrong one, or without confirm: nothing ends.
    for form in [
        vec![("confirm", "yes")],
        vec![("confirm", "yes"), ("csrf", "forged")],
        vec![("csrf", csrf.as_str())],
    ] {
        let r = b.post("/oauth2/logout", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains("name=\"csrf\""),
            "the confirm page again: {}",
            r.body
        );
        assert!(session_alive(&s, &rp, &cookie).await);
    }
    // A CSRF token made for another session's cookie does not work either.
    let (_other_b, _, other_cookie) = signed_in_with_tokens(&s, &c, &rp).await;
    let mut other = Browser::new(&s);
    other.cookies.insert(SSO.into(), other_cookie.clone());
    let other_csrf = other.get("/oauth2/logout").await.csrf();
    let r = b
        .post(
            "/oauth2/logout",
            &[("confirm", "yes"), ("csrf", &other_csrf)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(session_alive(&s, &rp, &cookie).await);
    assert_access_works(&s, &t.access, &c.uid).await;

    let r = b
        .post(
            "/oauth2/logout",
            &[
                ("confirm", "yes"),
                ("csrf", &csrf),
                ("client_id", &rp.client_id),
                ("post_logout_redirect_uri", "https://rp.example/signed-out"),
                ("state", "s2"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("https://rp.example/signed-out?state=s2")
    );
    assert!(!session_alive(&s, &rp, &cookie).await);
    assert_access_refused(&s, &t.access).await;
    // The other session is untouched.
    assert!(session_alive(&s, &rp, &other_cookie).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_return_address_or_a_forged_hint_ends_nothing() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let other = register(&s, "Other", |r| {
        r.post_logout_redirect_uris = vec!["https://other.example/bye".into()];
    })
    .await;
    let (mut b, t, cookie) = signed_in_with_tokens(&s, &c, &rp).await;

    for redirect in [
        "https://evil.example/signed-out",
        "https://rp.example/signed-out/",
        "https://rp.example/callback",
        "https://other.example/bye",
    ] {
        let page = b
            .get(&logout_url(&[
                ("id_token_hint", &t.id_token),
                ("post_logout_redirect_uri", redirect),
            ]))
            .await;
        assert_error_page(&page, 400);
    }
    // No client named at all: a return address cannot be checked.
    let page = b
        .get(&logout_url(&[(
            "post_logout_redirect_uri",
            "https://rp.example/signed-out",
        )]))
        .await;
    assert_error_page(&page, 400);
    // client_id and the hint's audience differ.
    let page = b
        .get(&logout_url(&[
            ("id_token_hint", &t.id_token),
            ("client_id", &other.client_id),
        ]))
        .await;
    assert_error_page(&page, 400);

    // A hint with the real claims signed by another key, and one with its signature altered.
    let forger = SigningKey::generate(Alg::RS256).unwrap();
    let forged = forger
        .sign_jwt(&claims_of(&t.id_token), Some("JWT"))
        .unwrap();
    let at = t.id_token.len() - 10;
    let flipped = if &t.id_token[at..=at] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{flipped}{}", &t.id_token[..at], &t.id_token[at + 1..]);
    for hint in [forged.as_str(), tampered.as_str(), "garbage"] {
        let page = b.get(&logout_url(&[("id_token_hint", hint)])).await;
        assert_error_page(&page, 400);
    }
    // Nothing ended, and the cookie was not cleared.
    assert!(b.cookies.contains_key(SSO));
    assert!(session_alive(&s, &rp, &cookie).await);
    assert_access_works(&s, &t.access, &c.uid).await;
}

/// A session that ends without `/oauth2/logout` (here: its idle limit passes) is found by the
/// server's sweep: its grants are revoked and each client that held tokens hears of it on the
/// back channel, once, however often the sweep runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_otherwise_is_announced_on_the_back_channel_once() {
    let s = start().await;
    let c = clinician(&s).await;
    let (bc_uri, mut received) = backchannel_endpoint().await;
    let rp = register(&s, "EPR", |r| {
        r.backchannel_logout_uri = Some(bc_uri.clone())
    })
    .await;
    let (_b, t, _cookie) = signed_in_with_tokens(&s, &c, &rp).await;
    let sweep = || vsc_server::routes::oidc::logout::sweep_ended_sessions(&s.state);
    // A live session is left alone.
    assert_eq!(sweep().await.unwrap(), 0);
    assert!(received.try_recv().is_err());

    // Past the organisation's idle limit (15 minutes by default) the session has ended.
    s.clock.advance(time::Duration::minutes(16));
    assert_access_refused(&s, &t.access).await;
    assert_eq!(sweep().await.unwrap(), 1, "one client to tell");
    let token = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("the logout token arrives within 5 seconds")
        .unwrap();
    let (_, claims) = verify(&s, &token, Alg::RS256).await;
    assert_eq!(claims["sid"], t.claims["sid"]);
    assert_eq!(claims["aud"], serde_json::Value::from(rp.client_id.clone()));
    assert!(
        claims["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some()
    );
    // Told once: the grants are revoked now, so the next sweep finds nothing.
    assert_eq!(sweep().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(received.try_recv().is_err(), "no second logout token");
    s.assert_audit_intact().await;
}

//! The negative cases of the OpenID Foundation's Basic OP test plan, each with the answer a
//! relying party expects: single-use, short-lived codes bound to their client and redirect URI;
//! error pages (never redirects) for an unknown client or an unregistered redirect URI; client
//! authentication by the registered method only; `prompt`, `max_age`, `nonce`, `acr_values`,
//! `login_hint`, request objects; userinfo's three ways of presenting a token.

use time::Duration;

use crate::common::start;
use crate::support::{
    Auth, Browser, Present, assert_access_refused, assert_access_works, assert_error_page,
    assert_redirect_error, authorize_url, authorize_url_omitting, clinician, code_form, count,
    exchange, query_of, register, signed_in, sso_code, token, token_form, userinfo,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_refused_and_revokes_what_the_first_exchange_issued() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let first = exchange(&s, &rp, &code).await;
    assert_access_works(&s, &first.access, &c.uid).await;

    let (status, again) = token(&s, &rp, &code_form(&rp, &code)).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "{again}"
    );
    assert!(again.get("access_token").is_none());
    assert_access_refused(&s, &first.access).await;
    let r = token_form(
        &s,
        Auth::Basic(&rp.client_id, &rp.secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first.refresh),
        ],
    )
    .await;
    r.assert_error(400, "invalid_grant");
    assert_eq!(s.audit_events("oidc.code.replayed").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_reused_30_seconds_later_is_refused_and_revokes_too() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let first = exchange(&s, &rp, &code).await;
    s.clock.advance(Duration::seconds(30));
    let (status, again) = token(&s, &rp, &code_form(&rp, &code)).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "{again}"
    );
    assert_access_refused(&s, &first.access).await;
    token_form(
        &s,
        Auth::Basic(&rp.client_id, &rp.secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first.refresh),
        ],
    )
    .await
    .assert_error(400, "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_expires_after_60_seconds() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    s.clock.advance(Duration::seconds(61));
    token_form(
        &s,
        Auth::Basic(&rp.client_id, &rp.secret),
        &code_form(&rp, &code),
    )
    .await
    .assert_error(400, "invalid_grant");
    assert_eq!(count(&s, "oidc_tokens").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_or_unregistered_redirect_uri_gets_an_error_page_not_a_redirect() {
    let s = start().await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    for redirect in [
        "https://evil.example/callback",
        "https://rp.example/callback/",
        "https://rp.example/callback?x=1",
        "https://rp.example:8443/callback",
        "http://rp.example/callback",
        "https://RP.example.evil/callback",
    ] {
        let page = b
            .get(&authorize_url(&rp, &[("redirect_uri", redirect)]))
            .await;
        assert_error_page(&page, 400);
        assert!(!page.body.contains("evil.example"), "{}", page.body);
    }
    // No redirect_uri at all.
    assert_error_page(
        &b.get(&authorize_url_omitting(&rp, &["redirect_uri"], &[]))
            .await,
        400,
    );
    // An unknown client, a missing one.
    let page = b
        .get(&authorize_url(
            &rp,
            &[("client_id", "999999999999.apps.vsc")],
        ))
        .await;
    assert_error_page(&page, 400);
    assert_error_page(
        &b.get(&authorize_url_omitting(&rp, &["client_id"], &[]))
            .await,
        400,
    );
    // A repeated parameter (RFC 6749 §3.1), even with the same value.
    let twice = format!("{}&client_id={}", authorize_url(&rp, &[]), rp.client_id);
    assert_error_page(&b.get(&twice).await, 400);
    let other = register(&s, "Other", |_| {}).await;
    let twice = format!("{}&client_id={}", authorize_url(&rp, &[]), other.client_id);
    assert_error_page(&b.get(&twice).await, 400);
    assert_eq!(count(&s, "oidc_flows").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_authenticates_only_with_its_own_secret_and_method() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let post_rp = register(&s, "Post client", |r| {
        r.auth_method = "client_secret_post".into()
    })
    .await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;
    let form = code_form(&rp, &code);

    let wrong = token_form(&s, Auth::Basic(&rp.client_id, "not-the-secret"), &form).await;
    wrong.assert_error(401, "invalid_client");
    assert!(
        wrong.challenge().is_some_and(|c| c.starts_with("Basic")),
        "{:?}",
        wrong.headers
    );
    // Another client's secret, an unknown client, and the secret in the body for a Basic client.
    token_form(&s, Auth::Basic(&rp.client_id, &post_rp.secret), &form)
        .await
        .assert_error(401, "invalid_client");
    token_form(&s, Auth::Basic("999999999999.apps.vsc", &rp.secret), &form)
        .await
        .assert_error(401, "invalid_client");
    let mut posted = form.clone();
    posted.extend([
        ("client_id", rp.client_id.as_str()),
        ("client_secret", rp.secret.as_str()),
    ]);
    token_form(&s, Auth::None, &posted)
        .await
        .assert_error(401, "invalid_client");
    // No authentication at all from a confidential client.
    let mut bare = form.clone();
    bare.push(("client_id", &rp.client_id));
    token_form(&s, Auth::None, &bare)
        .await
        .assert_error(401, "invalid_client");
    // Two methods at once.
    token_form(&s, Auth::Basic(&rp.client_id, &rp.secret), &posted)
        .await
        .assert_error(400, "invalid_request");
    // None of that spent the code.
    exchange(&s, &rp, &code).await;

    // A client_secret_post client: Basic is refused, its secret in the body works.
    let code = sso_code(&mut b, &post_rp, &[]).await;
    let form = code_form(&post_rp, &code);
    let basic = token_form(&s, Auth::Basic(&post_rp.client_id, &post_rp.secret), &form).await;
    basic.assert_error(401, "invalid_client");
    let mut posted = form.clone();
    posted.extend([
        ("client_id", post_rp.client_id.as_str()),
        ("client_secret", "wrong"),
    ]);
    token_form(&s, Auth::None, &posted)
        .await
        .assert_error(401, "invalid_client");
    let mut posted = form.clone();
    posted.extend([
        ("client_id", post_rp.client_id.as_str()),
        ("client_secret", post_rp.secret.as_str()),
    ]);
    let ok = token_form(&s, Auth::None, &posted).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |r| {
        r.redirect_uris.push("https://rp.example/other".into());
    })
    .await;
    let thief = register(&s, "Other", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    // Another client, with its own valid credentials and the same redirect URI.
    token_form(
        &s,
        Auth::Basic(&thief.client_id, &thief.secret),
        &code_form(&rp, &code),
    )
    .await
    .assert_error(400, "invalid_grant");
    // The right client, but another (registered) redirect URI, or none.
    let mut form = code_form(&rp, &code);
    form[2].1 = "https://rp.example/other";
    token_form(&s, Auth::Basic(&rp.client_id, &rp.secret), &form)
        .await
        .assert_error(400, "invalid_grant");
    token_form(&s, Auth::Basic(&rp.client_id, &rp.secret), &form[..2])
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(count(&s, "oidc_tokens").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_none_answers_login_required_without_a_session_and_a_code_with_one() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut fresh = Browser::new(&s);
    let page = fresh
        .get(&authorize_url(
            &rp,
            &[("prompt", "none"), ("state", "s-none")],
        ))
        .await;
    assert_redirect_error(&page, &rp, "login_required", Some("s-none"));
    assert_eq!(
        query_of(page.location.as_deref().unwrap())["iss"],
        s.state.issuer()
    );

    let (mut b, _) = signed_in(&s, &c, &rp, &[]).await;
    let page = b.get(&authorize_url(&rp, &[("prompt", "none")])).await;
    assert_eq!(page.status, 303);
    let q = query_of(page.location.as_deref().unwrap());
    assert!(q.contains_key("code"), "{q:?}");
    assert_eq!(q["state"], "st-123");
    // prompt=none with anything else is malformed.
    let page = b
        .get(&authorize_url(&rp, &[("prompt", "none login")]))
        .await;
    assert_redirect_error(&page, &rp, "invalid_request", Some("st-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_and_prompt_login_send_a_signed_in_person_back_to_the_sign_in_page() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, _) = signed_in(&s, &c, &rp, &[]).await;
    s.clock.advance(Duration::seconds(2));
    let flows = count(&s, "oidc_flows").await;

    let page = b.get(&authorize_url(&rp, &[("max_age", "1")])).await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/oauth2/signin/"));
    let page = b.get(&authorize_url(&rp, &[("prompt", "login")])).await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/oauth2/signin/"));
    assert_eq!(count(&s, "oidc_flows").await, flows + 2);

    let code = sso_code(&mut b, &rp, &[("max_age", "10000")]).await;
    let t = exchange(&s, &rp, &code).await;
    assert!(t.claims["auth_time"].as_i64().unwrap() <= s.state.now_unix() - 2);
    // max_age=1 with prompt=none: login_required, not a page.
    let page = b
        .get(&authorize_url(&rp, &[("max_age", "1"), ("prompt", "none")]))
        .await;
    assert_redirect_error(&page, &rp, "login_required", Some("st-123"));
    for bad in ["-1", "soon", "1e3"] {
        let page = b.get(&authorize_url(&rp, &[("max_age", bad)])).await;
        assert_redirect_error(&page, &rp, "invalid_request", Some("st-123"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_parameters_each_give_the_error_a_client_expects() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, _) = signed_in(&s, &c, &rp, &[]).await;

    // Unknown parameters (and ui_locales, claims_locales) are ignored.
    let code = sso_code(
        &mut b,
        &rp,
        &[
            ("foo", "bar"),
            ("ui_locales", "cy-GB"),
            ("display", "popup"),
            ("vendor_x", "1"),
        ],
    )
    .await;
    exchange(&s, &rp, &code).await;
    // Without a nonce: works, and the ID token has none.
    let r = b.get(&authorize_url_omitting(&rp, &["nonce"], &[])).await;
    let code = query_of(r.location.as_deref().unwrap())["code"].clone();
    let t = exchange(&s, &rp, &code).await;
    assert!(t.claims.get("nonce").is_none(), "{}", t.claims);

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("response_type", "token")], "unsupported_response_type"),
        (
            &[("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (
            &[("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
        (
            &[("request_uri", "https://rp.example/req.jwt")],
            "request_uri_not_supported",
        ),
        (&[("scope", "profile email")], "invalid_scope"),
        (&[("scope", "OpenID profile")], "invalid_scope"),
        (
            &[("acr_values", "AAL3_ANY")],
            "unmet_authentication_requirements",
        ),
        (
            &[("acr_values", "AAL1_USERPASS AAL3_ANY")],
            "unmet_authentication_requirements",
        ),
        (&[("response_mode", "fragment")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let page = b.get(&authorize_url(&rp, extra)).await;
        assert_redirect_error(&page, &rp, error, Some("st-123"));
    }
    let page = b
        .get(&authorize_url_omitting(&rp, &["response_type"], &[]))
        .await;
    assert_redirect_error(&page, &rp, "invalid_request", Some("st-123"));
    // Without a state, the error comes back without one.
    let page = b
        .get(&authorize_url_omitting(
            &rp,
            &["state"],
            &[("acr_values", "AAL3_ANY")],
        ))
        .await;
    assert_redirect_error(&page, &rp, "unmet_authentication_requirements", None);

    let code = sso_code(&mut b, &rp, &[("acr_values", "AAL2_OR_AAL3_ANY")]).await;
    assert_eq!(
        exchange(&s, &rp, &code).await.claims["acr"],
        "AAL2_OR_AAL3_ANY"
    );
    let code = sso_code(&mut b, &rp, &[("acr_values", "AAL3_ANY AAL2_ANY")]).await;
    assert_eq!(exchange(&s, &rp, &code).await.claims["acr"], "AAL2_ANY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_request_may_be_posted_as_a_form() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, _) = signed_in(&s, &c, &rp, &[]).await;
    let url = authorize_url(&rp, &[("state", "posted"), ("nonce", "n-post")]);
    let query = url.split_once('?').unwrap().1;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let page = b.post("/oauth2/authorize", &form).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let q = query_of(page.location.as_deref().unwrap());
    assert_eq!(q["state"], "posted");
    let t = exchange(&s, &rp, &q["code"]).await;
    assert_eq!(t.claims["nonce"], "n-post");
    // A posted request is validated like a query: unknown client, error page.
    let mut bad = form.clone();
    bad.retain(|(k, _)| *k != "client_id");
    bad.push(("client_id", "999999999999.apps.vsc"));
    assert_error_page(&b.post("/oauth2/authorize", &bad).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_hint_fills_in_the_uid() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    let start = b.get(&authorize_url(&rp, &[("login_hint", &c.uid)])).await;
    assert_eq!(start.status, 303);
    let form = b.get(&start.location.unwrap()).await;
    assert_eq!(form.status, 200);
    assert_eq!(
        uid_input_value(&form.body).as_deref(),
        Some(c.uid.as_str()),
        "{}",
        form.body
    );
    // A hint that is not a UID is ignored, not echoed.
    let start = b
        .get(&authorize_url(
            &rp,
            &[("login_hint", "\"><script>x</script>")],
        ))
        .await;
    let form = b.get(&start.location.unwrap()).await;
    assert_eq!(
        uid_input_value(&form.body).as_deref(),
        Some(""),
        "{}",
        form.body
    );
    assert!(!form.body.contains("<script>x"), "{}", form.body);
}

/// The `value` of the `uid` input.
pub fn uid_input_value(html: &str) -> Option<String> {
    let at = html.find("id=\"uid\"")?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let v = tag.find(" value=\"")? + 8;
    Some(tag[v..v + tag[v..].find('"')?].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_takes_the_token_in_the_header_or_the_body_and_refuses_none() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let t = exchange(&s, &rp, &code).await;
    for how in [Present::GetHeader, Present::PostHeader, Present::PostBody] {
        let r = userinfo(&s, how, Some(&t.access)).await;
        assert_eq!(r.status, 200, "{how:?}: {}", r.body);
        assert_eq!(r.body["sub"], c.uid.as_str());
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    for how in [Present::GetHeader, Present::PostBody] {
        let r = userinfo(&s, how, None).await;
        assert_eq!(r.status, 401, "{how:?}: {}", r.body);
        // RFC 6750 §3.1: no credentials, no error code in the challenge.
        assert_eq!(
            r.challenge(),
            Some("Bearer realm=\"vsc\""),
            "{:?}",
            r.headers
        );
        assert!(r.body.get("sub").is_none());
    }
    userinfo(&s, Present::GetHeader, Some("not-a-token"))
        .await
        .assert_error(401, "invalid_token");
    // The ID token and the refresh token are not access tokens.
    userinfo(&s, Present::GetHeader, Some(&t.id_token))
        .await
        .assert_error(401, "invalid_token");
    userinfo(&s, Present::GetHeader, Some(&t.refresh))
        .await
        .assert_error(401, "invalid_token");
    // The token in the header and the body at once.
    let http = crate::support::raw_http_no_redirect(&s);
    let r = http
        .post(format!("{}/oauth2/userinfo", s.state.issuer()))
        .bearer_auth(&t.access)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={}", t.access))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_exchanges_of_one_code_at_once_issue_once_and_then_revoke() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let form = code_form(&rp, &code);
    let (a, b) = tokio::join!(token(&s, &rp, &form), token(&s, &rp, &form));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{} {}", a.1, b.1);
    let (won, lost) = if a.0 == 200 { (a.1, b.1) } else { (b.1, a.1) };
    assert_eq!(lost["error"], "invalid_grant");
    // The loser was a replay: what the winner got is revoked.
    assert_access_refused(&s, won["access_token"].as_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_hint_for_someone_else_is_not_answered_from_the_session() {
    let s = start().await;
    let c = clinician(&s).await;
    let other = s.create_person(&c.ra, "RX1").await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, _) = signed_in(&s, &c, &rp, &[]).await;
    let page = b
        .get(&authorize_url(
            &rp,
            &[("login_hint", &other), ("prompt", "none")],
        ))
        .await;
    assert_redirect_error(&page, &rp, "login_required", Some("st-123"));
    let page = b.get(&authorize_url(&rp, &[("login_hint", &other)])).await;
    assert!(page.location.unwrap().starts_with("/oauth2/signin/"));
    // Their own UID as the hint: single sign-on as usual.
    sso_code(&mut b, &rp, &[("login_hint", &c.uid), ("prompt", "none")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_dies_with_its_session() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;
    let t = exchange(&s, &rp, &code).await;
    let unredeemed = sso_code(&mut b, &rp, &[]).await;
    let hint = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &t.id_token)
        .finish();
    assert_eq!(b.get(&format!("/oauth2/logout?{hint}")).await.status, 200);
    token_form(
        &s,
        Auth::Basic(&rp.client_id, &rp.secret),
        &code_form(&rp, &unredeemed),
    )
    .await
    .assert_error(400, "invalid_grant");
}

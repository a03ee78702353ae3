//! Hostile input at every provider route: oversized and malformed parameters, bodies that are
//! not forms, garbage credentials, and a disabled client's codes and tokens.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::common::start;
use crate::support::{
    Auth, Browser, Present, assert_access_refused, assert_error_page, assert_redirect_error,
    authorize_url, clinician, code_form, count, exchange, register, signed_in, sso_code,
    token_form, token_raw, userinfo,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_authorization_parameters_are_refused() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, _) = signed_in(&s, &c, &rp, &[]).await;
    let grants = count(&s, "oidc_grants").await;

    let long = "s".repeat(1025);
    let page = b.get(&authorize_url(&rp, &[("state", &long)])).await;
    // The state is too long to echo: the error comes back without it.
    assert_redirect_error(&page, &rp, "invalid_request", None);
    assert!(!page.location.unwrap().contains(&long));
    let page = b.get(&authorize_url(&rp, &[("nonce", &long)])).await;
    assert_redirect_error(&page, &rp, "invalid_request", Some("st-123"));
    // 1024 characters are fine.
    let fits = "s".repeat(1024);
    sso_code(&mut b, &rp, &[("state", &fits), ("nonce", &fits)]).await;
    assert_eq!(count(&s, "oidc_grants").await, grants + 1);

    // Invalid percent-encoding and non-UTF-8 bytes, control characters in the state.
    let page = b
        .get(&format!("{}&x=%ff%fe", authorize_url(&rp, &[])))
        .await;
    assert!(page.status == 303 || page.status == 400, "{}", page.status);
    let page = b
        .get(&authorize_url(
            &rp,
            &[("state", "a\r\nLocation: https://evil.example/")],
        ))
        .await;
    assert_eq!(page.status, 303);
    let loc = page.location.unwrap();
    assert!(loc.starts_with(&rp.redirect_uri), "{loc}");
    assert!(
        !page
            .headers
            .get_all("location")
            .iter()
            .any(|l| l.to_str().unwrap().starts_with("https://evil"))
    );
    // A huge query: refused (by the server's limits or as an unknown client), never a redirect
    // elsewhere.
    let huge = format!("{}&junk={}", authorize_url(&rp, &[]), "j".repeat(30_000));
    let page = b.get(&huge).await;
    assert!(
        page.location
            .is_none_or(|l| l.starts_with(&rp.redirect_uri))
    );
    // Client and redirect URI that are oversized or hostile.
    let page = b
        .get(&authorize_url(&rp, &[("client_id", &"9".repeat(5000))]))
        .await;
    assert_error_page(&page, 400);
    let page = b
        .get(&authorize_url(
            &rp,
            &[(
                "redirect_uri",
                "javascript:alert(1)//https://rp.example/callback",
            )],
        ))
        .await;
    assert_error_page(&page, 400);
    let mut fresh = Browser::new(&s);
    let page = fresh.get("/oauth2/authorize").await;
    assert_error_page(&page, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_that_are_not_forms_or_carry_garbage_credentials_are_refused() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let basic = || Auth::Basic(&rp.client_id, &rp.secret);

    let json = serde_json::json!({"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri});
    token_raw(&s, basic(), "application/json", json.to_string())
        .await
        .assert_error(400, "invalid_request");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(code_form(&rp, &code))
        .finish();
    token_raw(&s, basic(), "text/plain", form.clone())
        .await
        .assert_error(400, "invalid_request");
    // A repeated parameter.
    token_raw(
        &s,
        basic(),
        "application/x-www-form-urlencoded",
        format!("{form}&code=other"),
    )
    .await
    .assert_error(400, "invalid_request");
    // Grant types.
    for (grant, error) in [
        ("password", "unsupported_grant_type"),
        ("client_credentials", "unsupported_grant_type"),
        (
            "urn:ietf:params:oauth:grant-type:device_code",
            "unsupported_grant_type",
        ),
    ] {
        let mut f = code_form(&rp, &code);
        f[0].1 = grant;
        token_form(&s, basic(), &f).await.assert_error(400, error);
    }
    token_form(&s, basic(), &code_form(&rp, &code)[1..])
        .await
        .assert_error(400, "invalid_request");
    token_form(
        &s,
        basic(),
        &[
            ("grant_type", "authorization_code"),
            ("redirect_uri", &rp.redirect_uri),
        ],
    )
    .await
    .assert_error(400, "invalid_request");
    // An oversized body: refused (413, or the connection closed before it was all sent).
    let big = "c".repeat(100_000);
    let mut f = code_form(&rp, &code);
    f[1].1 = &big;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&f)
        .finish();
    let sent = crate::support::raw_http_no_redirect(&s)
        .post(format!("{}/oauth2/token", s.state.issuer()))
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    if let Ok(r) = sent {
        assert!(r.status() == 400 || r.status() == 413, "{}", r.status());
        assert!(!r.text().await.unwrap_or_default().contains("access_token"));
    }

    // Garbage Authorization headers.
    let no_colon = format!("Basic {}", STANDARD.encode("no-colon-here"));
    let not_utf8 = {
        let mut v = b"Basic ".to_vec();
        v.extend(STANDARD.encode([0xff, 0xfe, b':', 0x80]).as_bytes());
        v
    };
    let long = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", "a".repeat(4000), "b".repeat(4000)))
    );
    let empty_id = format!("Basic {}", STANDARD.encode(format!(":{}", rp.secret)));
    let wrong_case_id = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", rp.client_id.to_uppercase(), rp.secret))
    );
    let garbage: Vec<&[u8]> = vec![
        b"Basic !!!not-base64!!!",
        b"Basic",
        b"Basic ",
        no_colon.as_bytes(),
        &not_utf8,
        long.as_bytes(),
        empty_id.as_bytes(),
        wrong_case_id.as_bytes(),
        b"Bearer abc",
        b"Digest username=\"x\"",
        b"\xff\xfe",
    ];
    for h in garbage {
        let r = token_form(&s, Auth::Header(h), &code_form(&rp, &code)).await;
        r.assert_error(401, "invalid_client");
    }
    assert_eq!(count(&s, "oidc_tokens").await, 0);
    // Nothing of that spent the code.
    exchange(&s, &rp, &code).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_clients_codes_and_tokens_are_refused() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;
    let t = exchange(&s, &rp, &code).await;
    let code = sso_code(&mut b, &rp, &[]).await;

    let mut conn = s.state.store().pool().acquire().await.unwrap();
    assert!(
        vsc_store::oidc_clients::disable_client(&mut conn, &rp.client_id, s.state.now_unix())
            .await
            .unwrap()
    );
    drop(conn);

    token_form(
        &s,
        Auth::Basic(&rp.client_id, &rp.secret),
        &code_form(&rp, &code),
    )
    .await
    .assert_error(401, "invalid_client");
    token_form(
        &s,
        Auth::Basic(&rp.client_id, &rp.secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.refresh),
        ],
    )
    .await
    .assert_error(401, "invalid_client");
    assert_access_refused(&s, &t.access).await;
    let page = b.get(&authorize_url(&rp, &[])).await;
    assert_error_page(&page, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_refuses_garbage_bearer_tokens() {
    let s = start().await;
    for t in [
        "",
        " ",
        "a b c",
        &"x".repeat(20_000),
        "%00",
        "Bearer Bearer",
    ] {
        let r = userinfo(&s, Present::GetHeader, Some(t)).await;
        assert_eq!(r.status, 401, "{t:?}: {}", r.body);
        assert!(r.body.get("sub").is_none());
        let r = userinfo(&s, Present::PostBody, Some(t)).await;
        assert!(r.status == 401 || r.status == 400, "{t:?}: {}", r.status);
        assert!(r.body.get("sub").is_none());
    }
}

//! PKCE (RFC 7636): required, S256 only, for public clients (which then need no secret);
//! accepted for confidential clients; the verifier must match and must be sent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::common::start;
use crate::support::{
    Auth, Rp, assert_redirect_error, clinician, code_form, count, query_of, random_id, register,
    sha256, signed_in, sso_code, token_form,
};

/// A verifier (43+ characters) and its S256 challenge.
fn pkce_pair(s: &crate::common::TestServer) -> (String, String) {
    let verifier = format!("{}{}", random_id(s), random_id(s));
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    (verifier, challenge)
}

async fn public_client(s: &crate::common::TestServer) -> Rp {
    register(s, "Mobile app", |r| {
        r.public_client = true;
        r.auth_method = "none".into();
        r.secret_hash = None;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_must_use_s256_and_needs_no_secret() {
    let s = start().await;
    let c = clinician(&s).await;
    let app = public_client(&s).await;
    let (verifier, challenge) = pkce_pair(&s);
    let with_pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (mut b, code) = signed_in(&s, &c, &app, &with_pkce).await;

    // Without PKCE, or with plain, or a challenge that is not a SHA-256: refused at once.
    let flows = count(&s, "oidc_flows").await;
    let grants = count(&s, "oidc_grants").await;
    let page = b.get(&crate::support::authorize_url(&app, &[])).await;
    assert_redirect_error(&page, &app, "invalid_request", Some("st-123"));
    for bad in [
        vec![
            ("code_challenge", verifier.as_str()),
            ("code_challenge_method", "plain"),
        ],
        vec![("code_challenge", challenge.as_str())],
        vec![
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "s256"),
        ],
        vec![
            ("code_challenge", "short"),
            ("code_challenge_method", "S256"),
        ],
        vec![("code_challenge_method", "S256")],
    ] {
        let page = b.get(&crate::support::authorize_url(&app, &bad)).await;
        assert_redirect_error(&page, &app, "invalid_request", Some("st-123"));
    }
    assert_eq!(count(&s, "oidc_flows").await, flows);
    assert_eq!(count(&s, "oidc_grants").await, grants);

    // Wrong verifier, no verifier: invalid_grant, and the code is not spent.
    let mut form = code_form(&app, &code);
    form.push(("client_id", &app.client_id));
    let (other_verifier, _) = pkce_pair(&s);
    let mut wrong = form.clone();
    wrong.push(("code_verifier", &other_verifier));
    token_form(&s, Auth::None, &wrong)
        .await
        .assert_error(400, "invalid_grant");
    token_form(&s, Auth::None, &form)
        .await
        .assert_error(400, "invalid_grant");
    // The right verifier without client_id: no client.
    let mut anonymous = code_form(&app, &code);
    anonymous.push(("code_verifier", &verifier));
    token_form(&s, Auth::None, &anonymous)
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(count(&s, "oidc_tokens").await, 0);

    let mut right = form.clone();
    right.push(("code_verifier", &verifier));
    let ok = token_form(&s, Auth::None, &right).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body["id_token"].is_string());

    // A public client cannot authenticate with a secret it does not have.
    let code = sso_code(&mut b, &app, &with_pkce).await;
    let mut form = code_form(&app, &code);
    form.push(("code_verifier", &verifier));
    token_form(&s, Auth::Basic(&app.client_id, "anything"), &form)
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_client_may_use_pkce_and_is_then_held_to_it() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (verifier, challenge) = pkce_pair(&s);
    let with_pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (mut b, code) = signed_in(&s, &c, &rp, &with_pkce).await;
    let basic = || Auth::Basic(&rp.client_id, &rp.secret);

    let form = code_form(&rp, &code);
    token_form(&s, basic(), &form)
        .await
        .assert_error(400, "invalid_grant");
    let x43 = "x".repeat(43);
    let mut wrong = form.clone();
    wrong.push(("code_verifier", &x43));
    token_form(&s, basic(), &wrong)
        .await
        .assert_error(400, "invalid_grant");
    let mut right = form.clone();
    right.push(("code_verifier", &verifier));
    let ok = token_form(&s, basic(), &right).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    // A verifier for a code that had no challenge is refused too (a downgrade).
    let code = sso_code(&mut b, &rp, &[]).await;
    let mut form = code_form(&rp, &code);
    form.push(("code_verifier", &verifier));
    token_form(&s, basic(), &form)
        .await
        .assert_error(400, "invalid_grant");
    // plain is refused for confidential clients as well.
    let page = b
        .get(&crate::support::authorize_url(
            &rp,
            &[
                ("code_challenge", &verifier),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_redirect_error(&page, &rp, "invalid_request", Some("st-123"));
    assert!(query_of(page.location.as_deref().unwrap()).contains_key("iss"));
}

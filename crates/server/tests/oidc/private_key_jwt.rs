//! `private_key_jwt` client authentication (RFC 7523, OpenID Connect Core §9): the client signs
//! an assertion with a key it registered (inline JWK set or `jwks_uri`); `iss` = `sub` = its id,
//! `aud` the token endpoint, `exp` at most five minutes ahead, `jti` single use.

use serde_json::{Value, json};
use vsc_oidc::jose::{Alg, JwkSet, SigningKey};

use crate::common::{TestServer, start};
use crate::support::{
    Auth, Reply, Rp, clinician, code_form, count, random_id, register, serve_jwks, signed_in,
    sso_code, token_form,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client registered for private_key_jwt with `key`'s public JWK set inline.
async fn jwt_client(s: &TestServer, key: &SigningKey) -> Rp {
    let set = JwkSet {
        keys: vec![key.public_jwk()],
    };
    register(s, "NHS RP", |r| {
        r.auth_method = "private_key_jwt".into();
        r.secret_hash = None;
        r.jwks = Some(serde_json::to_string(&set).unwrap());
    })
    .await
}

/// The claims of a good assertion for `rp`.
fn assertion_claims(s: &TestServer, rp: &Rp) -> Value {
    let now = s.state.now_unix();
    json!({
        "iss": rp.client_id,
        "sub": rp.client_id,
        "aud": format!("{}/oauth2/token", s.state.issuer()),
        "iat": now,
        "exp": now + 300,
        "jti": random_id(s),
    })
}

/// Exchanges `code` authenticating with `assertion`.
async fn exchange_with(s: &TestServer, rp: &Rp, code: &str, assertion: &str) -> Reply {
    let mut form = code_form(rp, code);
    form.extend([
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ]);
    token_form(s, Auth::None, &form).await
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    key.sign_jwt(claims, Some("JWT")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs512_client_assertion_authenticates_once_and_only_as_registered() {
    let s = start().await;
    let c = clinician(&s).await;
    let key = SigningKey::generate(Alg::RS512).unwrap();
    let rp = jwt_client(&s, &key).await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;

    let good = assertion_claims(&s, &rp);
    let assertion = sign(&key, &good);
    let ok = exchange_with(&s, &rp, &code, &assertion).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let code = sso_code(&mut b, &rp, &[]).await;
    // The same assertion (same jti) again.
    exchange_with(&s, &rp, &code, &assertion)
        .await
        .assert_error(401, "invalid_client");
    // A new jti but a wrong audience, an exp ten minutes ahead, an expired one, the wrong
    // iss/sub, no jti.
    let other = SigningKey::generate(Alg::RS512).unwrap();
    let mutated = |f: &dyn Fn(&mut Value)| {
        let mut claims = assertion_claims(&s, &rp);
        f(&mut claims);
        claims
    };
    let now = s.state.now_unix();
    for (what, claims) in [
        (
            "aud",
            mutated(&|c| c["aud"] = json!("https://rp.example/token")),
        ),
        (
            "aud userinfo",
            mutated(&|c| c["aud"] = json!(format!("{}/oauth2/userinfo", s.state.issuer()))),
        ),
        ("exp +10 min", mutated(&|c| c["exp"] = json!(now + 600))),
        ("expired", mutated(&|c| c["exp"] = json!(now - 1))),
        (
            "no exp",
            mutated(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("sub", mutated(&|c| c["sub"] = json!("someone-else"))),
        (
            "no jti",
            mutated(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
    ] {
        let r = exchange_with(&s, &rp, &code, &sign(&key, &claims)).await;
        assert_eq!(
            (r.status, r.error()),
            (401, "invalid_client"),
            "{what}: {}",
            r.body
        );
    }
    // Signed by another key.
    exchange_with(&s, &rp, &code, &sign(&other, &assertion_claims(&s, &rp)))
        .await
        .assert_error(401, "invalid_client");
    // alg none, and a token that is not a JWT.
    let unsigned = {
        use base64::Engine;
        let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            e(&json!({"alg": "none"})),
            e(&assertion_claims(&s, &rp))
        )
    };
    exchange_with(&s, &rp, &code, &unsigned)
        .await
        .assert_error(401, "invalid_client");
    exchange_with(&s, &rp, &code, "not.a.jwt")
        .await
        .assert_error(401, "invalid_client");
    // The wrong assertion type.
    let mut form = code_form(&rp, &code);
    let fresh = sign(&key, &assertion_claims(&s, &rp));
    form.extend([
        ("client_assertion_type", "urn:x"),
        ("client_assertion", fresh.as_str()),
    ]);
    token_form(&s, Auth::None, &form)
        .await
        .assert_error(401, "invalid_client");
    // A secret-less private_key_jwt client cannot fall back to no authentication.
    let mut bare = code_form(&rp, &code);
    bare.push(("client_id", &rp.client_id));
    token_form(&s, Auth::None, &bare)
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(
        count(&s, "oidc_tokens").await,
        2,
        "only the first exchange issued"
    );

    // None of that spent the code; the issuer is an accepted audience too.
    let mut claims = assertion_claims(&s, &rp);
    claims["aud"] = json!(s.state.issuer());
    let ok = exchange_with(&s, &rp, &code, &sign(&key, &claims)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_es256_client_assertion_works_and_a_secret_client_cannot_use_one() {
    let s = start().await;
    let c = clinician(&s).await;
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let rp = jwt_client(&s, &key).await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;
    let ok = exchange_with(&s, &rp, &code, &sign(&key, &assertion_claims(&s, &rp))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    // A client_secret_basic client signing an assertion (even with a key of its own).
    let secret_rp = register(&s, "Secret client", |_| {}).await;
    let code = sso_code(&mut b, &secret_rp, &[]).await;
    exchange_with(
        &s,
        &secret_rp,
        &code,
        &sign(&key, &assertion_claims(&s, &secret_rp)),
    )
    .await
    .assert_error(401, "invalid_client");
    // The private_key_jwt client trying Basic with a made-up secret.
    let code = sso_code(&mut b, &rp, &[]).await;
    token_form(
        &s,
        Auth::Basic(&rp.client_id, "guess"),
        &code_form(&rp, &code),
    )
    .await
    .assert_error(401, "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_uri_client_is_checked_against_the_keys_it_serves() {
    let s = start().await;
    let c = clinician(&s).await;
    let key = SigningKey::generate(Alg::RS256).unwrap();
    let uri = serve_jwks(&JwkSet {
        keys: vec![key.public_jwk()],
    })
    .await;
    let rp = register(&s, "Remote keys", |r| {
        r.auth_method = "private_key_jwt".into();
        r.secret_hash = None;
        r.jwks_uri = Some(uri.clone());
    })
    .await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;
    let ok = exchange_with(&s, &rp, &code, &sign(&key, &assertion_claims(&s, &rp))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let code = sso_code(&mut b, &rp, &[]).await;
    let other = SigningKey::generate(Alg::RS256).unwrap();
    exchange_with(&s, &rp, &code, &sign(&other, &assertion_claims(&s, &rp)))
        .await
        .assert_error(401, "invalid_client");
    // A jwks_uri that does not answer.
    let dead = register(&s, "Dead keys", |r| {
        r.auth_method = "private_key_jwt".into();
        r.secret_hash = None;
        r.jwks_uri = Some(format!(
            "{}/nothing-here",
            uri.trim_end_matches("/jwks.json")
        ));
    })
    .await;
    let code = sso_code(&mut b, &dead, &[]).await;
    exchange_with(&s, &dead, &code, &sign(&key, &assertion_claims(&s, &dead)))
        .await
        .assert_error(401, "invalid_client");
}

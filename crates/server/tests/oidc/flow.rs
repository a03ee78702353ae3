//! The authorization code flow end to end, with the phone approving on the sign-in page.

use serde_json::Value;
use vsc_oidc::jose::{Alg, JwkSet};

use crate::common::start;
use crate::support::{Browser, authorize_url, claims_of, query_of, register, sign_in, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_role_selection_tokens_userinfo_and_single_sign_on() {
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
    let second = person.positions[1].id.clone();
    let rp = register(&s, "Example EPR", |_| {}).await;

    let mut b = Browser::new(&s);
    let url = authorize_url(
        &rp,
        &[(
            "scope",
            "openid profile email nationalrbacaccess associatedorgs selectedrole nhsperson",
        )],
    );
    let back = sign_in(&s, &mut b, &url, &uid, &phone, Some(&second)).await;
    assert!(back.starts_with(&rp.redirect_uri), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], s.state.issuer());
    assert!(b.cookies.contains_key("__Host-vsc-sso"));

    let (status, tokens) = token(
        &s,
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", &rp.redirect_uri),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    // The signature verifies against the published JWK set.
    let mut fetch = Browser::new(&s);
    let jwks: JwkSet = serde_json::from_str(&fetch.get("/oauth2/jwks").await.body).unwrap();
    let (header, claims) = vsc_oidc::jose::verify_jwt(id_token, &jwks.keys, &[Alg::RS256]).unwrap();
    assert_eq!(header.alg, Alg::RS256);
    assert!(header.kid.is_some());
    assert_eq!(claims["sub"], Value::from(uid.clone()));
    assert_eq!(claims["aud"], Value::from(rp.client_id.clone()));
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(claims["selected_roleid"], Value::from(second.clone()));
    assert_eq!(claims["acr"], "AAL2_ANY");
    assert_eq!(claims["uid"], Value::from(uid.clone()));
    assert!(claims["sid"].is_string());

    let userinfo: Value = fetch
        .http_get_bearer(
            &s,
            "/oauth2/userinfo",
            tokens["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(userinfo["sub"], Value::from(uid.clone()));
    assert_eq!(userinfo["nhsid_nrbac_roles"].as_array().unwrap().len(), 2);
    assert_eq!(userinfo["selected_roleid"], Value::from(second.clone()));
    assert_eq!(userinfo["nhsid_user_orgs"][0]["org_code"], "RX1");

    // Single sign-on: a second client gets a code without the phone (one role asked: none).
    let rp2 = register(&s, "Second app", |_| {}).await;
    let again = b.get(&authorize_url(&rp2, &[])).await;
    assert_eq!(again.status, 303);
    let loc = again.location.unwrap();
    assert!(loc.starts_with(&rp2.redirect_uri), "{loc}");
    let (status, tokens2) = token(
        &s,
        &rp2,
        &[
            ("grant_type", "authorization_code"),
            ("code", &query_of(&loc)["code"]),
            ("redirect_uri", &rp2.redirect_uri),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens2}");
    assert_eq!(
        claims_of(tokens2["id_token"].as_str().unwrap())["sid"],
        claims["sid"]
    );
    s.assert_audit_intact().await;
}

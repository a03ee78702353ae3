//! OpenID Connect client registration: who may register, list, disable and rotate (RA Managers
//! at the national organisation, Service Managers for their own organisation); hostile
//! registrations refused with their own codes and nothing written; secrets answered once and
//! stored only as their SHA-256; every change and every refusal audited.

use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use vsc_proto::errors as code;
use vsc_proto::oidc::{ClientCreated, ClientInfo, CreateClient, auth_method};
use vsc_proto::routes;
use vsc_proto::{CreatePerson, Person};

use crate::common::{TestServer, assert_api_error, assert_flow_error, passcode, start};

fn request(name: &str) -> CreateClient {
    CreateClient {
        name: name.to_owned(),
        redirect_uris: vec!["https://wardround.example.nhs.uk/oidc/callback".to_owned()],
        ..CreateClient::default()
    }
}

async fn create(s: &TestServer, token: &str, req: &CreateClient) -> ClientCreated {
    s.post(Some(token), routes::RA_CLIENTS, req)
        .await
        .expect("register a client")
}

async fn list(s: &TestServer, token: &str) -> Vec<ClientInfo> {
    s.get(Some(token), routes::RA_CLIENTS)
        .await
        .expect("list clients")
}

async fn client_count(s: &TestServer) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM oidc_clients")
        .fetch_one(s.state.store().pool())
        .await
        .expect("count clients");
    n
}

async fn secret_hash(s: &TestServer, client_id: &str) -> Option<Vec<u8>> {
    let (hash,): (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT secret_hash FROM oidc_clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_one(s.state.store().pool())
            .await
            .expect("client row");
    hash
}

fn sha256(s: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .to_vec()
}

fn is_client_id(id: &str) -> bool {
    let Some(digits) = id.strip_suffix(".apps.vsc") else {
        return false;
    };
    digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// A fresh P-256 public key as a JWK.
fn p256_jwk() -> serde_json::Value {
    let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .expect("P-256 key");
    let point = kp.public_key().as_ref().to_vec();
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

/// An RSA public key of `bits` bits as a JWK (the modulus only needs its length here).
fn rsa_jwk(bits: usize) -> serde_json::Value {
    let mut n = vec![0xA5u8; bits / 8];
    n[0] = 0xC3;
    serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_ra_manager_registers_clients_and_secrets_are_shown_once() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let national = s.state.national_ods().to_owned();

    let created = create(
        &s,
        t,
        &CreateClient {
            post_logout_redirect_uris: vec!["https://wardround.example.nhs.uk/".to_owned()],
            backchannel_logout_uri: Some("https://wardround.example.nhs.uk/bcl".to_owned()),
            ..request("Ward Round")
        },
    )
    .await;
    let c = &created.client;
    assert!(is_client_id(&c.client_id), "{}", c.client_id);
    assert_eq!(c.name, "Ward Round");
    assert_eq!(c.auth_method, auth_method::CLIENT_SECRET_BASIC);
    assert_eq!(c.id_token_alg, "RS256");
    assert_eq!(c.organisation, national);
    assert_eq!(c.created_by, ram.uid);
    assert!(!c.public && !c.has_jwks && c.disabled_at.is_none());
    assert_eq!(
        created.issuer,
        s.state.public_url().as_str().trim_end_matches('/')
    );
    let secret = created
        .client_secret
        .clone()
        .expect("a secret client gets its secret");
    assert_eq!(secret.len(), 43, "256 bits, base64url without padding");
    assert!(URL_SAFE_NO_PAD.decode(&secret).is_ok_and(|b| b.len() == 32));

    // Only the secret's SHA-256 is stored.
    let stored = secret_hash(&s, &c.client_id).await.expect("a secret hash");
    assert_eq!(stored, sha256(&secret));
    assert_ne!(stored, secret.as_bytes());

    // Listing and showing never carry the secret.
    let listed = list(&s, t).await;
    assert_eq!(listed, vec![c.clone()]);
    let shown: ClientInfo = s
        .get(Some(t), &routes::fill(routes::RA_CLIENT, &c.client_id))
        .await
        .expect("show");
    assert_eq!(&shown, c);
    let raw: serde_json::Value = s
        .get(Some(t), &routes::fill(routes::RA_CLIENT, &c.client_id))
        .await
        .expect("show");
    assert!(raw.get("client_secret").is_none(), "{raw}");
    assert!(!raw.to_string().contains(&secret));
    let registered = s.audit_events("oidc_client.registered").await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].actor, ram.uid);
    assert_eq!(registered[0].subject, c.client_id);
    assert!(!registered[0].detail.contains(&secret));

    // A public client has no secret; a private_key_jwt client neither.
    let public = create(
        &s,
        t,
        &CreateClient {
            public: true,
            redirect_uris: vec!["http://127.0.0.1:8080/callback".to_owned()],
            ..request("Clinic App")
        },
    )
    .await;
    assert_eq!(public.client_secret, None);
    assert_eq!(public.client.auth_method, auth_method::NONE);
    assert!(public.client.public);
    assert_eq!(secret_hash(&s, &public.client.client_id).await, None);
    let keyed = create(
        &s,
        t,
        &CreateClient {
            auth_method: Some(auth_method::PRIVATE_KEY_JWT.to_owned()),
            jwks: Some(serde_json::json!({"keys": [p256_jwk(), rsa_jwk(2048)]})),
            id_token_alg: Some("ES256".to_owned()),
            ..request("Results")
        },
    )
    .await;
    assert_eq!(keyed.client_secret, None);
    assert!(keyed.client.has_jwks);
    assert_eq!(keyed.client.id_token_alg, "ES256");
    let by_uri = create(
        &s,
        t,
        &CreateClient {
            auth_method: Some(auth_method::PRIVATE_KEY_JWT.to_owned()),
            jwks_uri: Some("https://results.example/jwks.json".to_owned()),
            ..request("Results 2")
        },
    )
    .await;
    assert_eq!(
        by_uri.client.jwks_uri.as_deref(),
        Some("https://results.example/jwks.json")
    );
    assert_eq!(client_count(&s).await, 4);

    // Rotating gives a new secret and replaces the stored hash.
    let rotate = routes::fill(routes::RA_CLIENT_ROTATE_SECRET, &c.client_id);
    let rotated: ClientCreated = s
        .post(Some(t), &rotate, &serde_json::json!({}))
        .await
        .expect("rotate");
    let new_secret = rotated.client_secret.expect("the new secret");
    assert_ne!(new_secret, secret);
    assert_eq!(
        secret_hash(&s, &c.client_id).await,
        Some(sha256(&new_secret))
    );
    let events = s.audit_events("oidc_client.secret_rotated").await;
    assert_eq!(events.len(), 1);
    assert!(!events[0].detail.contains(&new_secret));

    // Clients without a secret have nothing to rotate.
    for (id, why) in [
        (&public.client.client_id, "public"),
        (&keyed.client.client_id, "private_key_jwt"),
    ] {
        let msg = assert_api_error(
            s.post::<_, ClientCreated>(
                Some(t),
                &routes::fill(routes::RA_CLIENT_ROTATE_SECRET, id),
                &serde_json::json!({}),
            )
            .await,
            409,
            code::CLIENT_HAS_NO_SECRET,
        );
        assert!(msg.contains(why), "{msg}");
    }

    // Disabled: no new secret, and it cannot be disabled twice.
    let disable = routes::fill(routes::RA_CLIENT_DISABLE, &c.client_id);
    let disabled: ClientInfo = s
        .post(Some(t), &disable, &serde_json::json!({}))
        .await
        .expect("disable");
    assert!(disabled.disabled_at.is_some());
    assert_eq!(s.audit_events("oidc_client.disabled").await.len(), 1);
    assert_api_error(
        s.post::<_, ClientCreated>(Some(t), &rotate, &serde_json::json!({}))
            .await,
        409,
        code::CLIENT_DISABLED,
    );
    assert_eq!(
        secret_hash(&s, &c.client_id).await,
        Some(sha256(&new_secret)),
        "a refused rotation leaves the secret alone"
    );
    assert_api_error(
        s.post::<_, ClientInfo>(Some(t), &disable, &serde_json::json!({}))
            .await,
        409,
        code::CLIENT_DISABLED,
    );
    assert_api_error(
        s.get::<ClientInfo>(
            Some(t),
            &routes::fill(routes::RA_CLIENT, "123456789012.apps.vsc"),
        )
        .await,
        404,
        code::UNKNOWN_CLIENT,
    );
    s.assert_audited("oidc_client.rotate_secret", code::CLIENT_DISABLED, 1)
        .await;
    s.assert_audited("oidc_client.rotate_secret", code::CLIENT_HAS_NO_SECRET, 2)
        .await;
    s.assert_audited("oidc_client.disable", code::CLIENT_DISABLED, 1)
        .await;
    s.assert_audited("oidc_client.show", code::UNKNOWN_CLIENT, 1)
        .await;
    assert_eq!(s.audit_events("oidc_client.registered").await.len(), 4);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_managers_manage_their_own_organisations_clients_only() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let national = s.state.national_ods().to_owned();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let sm_rx1 = s.new_ra(t, "RX1", "service-manager", &[]).await;
    let sm_ry2 = s.new_ra(t, "RY2", "sm", &[]).await;
    let sm_national = s.new_ra(t, &national, "service-manager", &[]).await;
    let ram_rx1 = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let (_, _, no_role_phone) = s.enrolled_person(t, "RX1").await;

    let national_client = create(&s, t, &request("National Portal")).await.client;
    let a = create(&s, &sm_rx1.token, &request("RX1 Ward Round"))
        .await
        .client;
    assert_eq!(a.organisation, "RX1");
    assert_eq!(a.created_by, sm_rx1.uid);
    let b = create(&s, &sm_ry2.token, &request("RY2 Results"))
        .await
        .client;
    assert_eq!(b.organisation, "RY2");
    let by_national_sm = create(&s, &sm_national.token, &request("Directory"))
        .await
        .client;
    assert_eq!(by_national_sm.organisation, national);

    // Each Service Manager of a trust sees its own organisation's clients; national ones all.
    let ids = |list: Vec<ClientInfo>| {
        let mut ids: Vec<String> = list.into_iter().map(|c| c.client_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(list(&s, &sm_rx1.token).await),
        vec![a.client_id.clone()]
    );
    assert_eq!(
        ids(list(&s, &sm_ry2.token).await),
        vec![b.client_id.clone()]
    );
    let mut all = vec![
        national_client.client_id.clone(),
        a.client_id.clone(),
        b.client_id.clone(),
        by_national_sm.client_id.clone(),
    ];
    all.sort();
    assert_eq!(ids(list(&s, t).await), all);
    assert_eq!(ids(list(&s, &sm_national.token).await), all);

    let count = client_count(&s).await;
    let before = s.snapshot().await;
    // A Service Manager of RX1 cannot see or change RY2's or the national clients.
    for other in [&b.client_id, &national_client.client_id] {
        assert_api_error(
            s.get::<ClientInfo>(Some(&sm_rx1.token), &routes::fill(routes::RA_CLIENT, other))
                .await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            s.post::<_, ClientInfo>(
                Some(&sm_rx1.token),
                &routes::fill(routes::RA_CLIENT_DISABLE, other),
                &serde_json::json!({}),
            )
            .await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            s.post::<_, ClientCreated>(
                Some(&sm_rx1.token),
                &routes::fill(routes::RA_CLIENT_ROTATE_SECRET, other),
                &serde_json::json!({}),
            )
            .await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
    }
    // An RA Manager of a trust manages no clients; an RA Agent neither.
    let msg = assert_api_error(
        s.post::<_, ClientCreated>(
            Some(&ram_rx1.token),
            routes::RA_CLIENTS,
            &request("Not Allowed"),
        )
        .await,
        403,
        code::RA_OUTSIDE_ORGANISATION,
    );
    assert!(msg.contains("national"), "{msg}");
    assert_api_error(
        s.get::<Vec<ClientInfo>>(Some(&ram_rx1.token), routes::RA_CLIENTS)
            .await,
        403,
        code::RA_OUTSIDE_ORGANISATION,
    );
    assert_api_error(
        s.post::<_, ClientCreated>(Some(&agent.token), routes::RA_CLIENTS, &request("Nope"))
            .await,
        403,
        code::RA_ROLE_NOT_PERMITTED,
    );
    assert_api_error(
        s.get::<ClientInfo>(
            Some(&agent.token),
            &routes::fill(routes::RA_CLIENT, &a.client_id),
        )
        .await,
        403,
        code::RA_ROLE_NOT_PERMITTED,
    );
    // Without an RA role there is no RA session at all; without a session, nothing.
    assert_flow_error(
        vsc_authenticator::ra_login(&no_role_phone.home, &passcode()).await,
        403,
        code::NOT_AN_RA,
    );
    assert_api_error(
        s.post::<_, ClientCreated>(None, routes::RA_CLIENTS, &request("Anonymous"))
            .await,
        401,
        code::UNAUTHENTICATED,
    );
    assert_api_error(
        s.get::<Vec<ClientInfo>>(Some("not-a-token"), routes::RA_CLIENTS)
            .await,
        401,
        code::SESSION_EXPIRED,
    );
    // A Service Manager does nothing else an RA does.
    assert_api_error(
        s.post::<_, Person>(
            Some(&sm_rx1.token),
            "/api/v1/ra/people",
            &CreatePerson {
                given_name: "Not".to_owned(),
                family_name: "Allowed".to_owned(),
                email: None,
                organisation: "RX1".to_owned(),
            },
        )
        .await,
        403,
        code::RA_ROLE_NOT_PERMITTED,
    );
    assert_eq!(client_count(&s).await, count);
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "clients outside the caller's scope");
    assert_eq!(
        s.get::<ClientInfo>(Some(t), &routes::fill(routes::RA_CLIENT, &b.client_id))
            .await
            .expect("show")
            .disabled_at,
        None
    );

    // Within its scope it disables and rotates.
    let rotated: ClientCreated = s
        .post(
            Some(&sm_rx1.token),
            &routes::fill(routes::RA_CLIENT_ROTATE_SECRET, &a.client_id),
            &serde_json::json!({}),
        )
        .await
        .expect("rotate own client");
    assert!(rotated.client_secret.is_some());
    let disabled: ClientInfo = s
        .post(
            Some(&sm_rx1.token),
            &routes::fill(routes::RA_CLIENT_DISABLE, &a.client_id),
            &serde_json::json!({}),
        )
        .await
        .expect("disable own client");
    assert!(disabled.disabled_at.is_some());

    for (action, error, actor, n) in [
        (
            "oidc_client.show",
            code::RA_OUTSIDE_ORGANISATION,
            &sm_rx1.uid,
            2,
        ),
        (
            "oidc_client.disable",
            code::RA_OUTSIDE_ORGANISATION,
            &sm_rx1.uid,
            2,
        ),
        (
            "oidc_client.rotate_secret",
            code::RA_OUTSIDE_ORGANISATION,
            &sm_rx1.uid,
            2,
        ),
        (
            "oidc_client.register",
            code::RA_OUTSIDE_ORGANISATION,
            &ram_rx1.uid,
            1,
        ),
        (
            "oidc_client.list",
            code::RA_OUTSIDE_ORGANISATION,
            &ram_rx1.uid,
            1,
        ),
        (
            "oidc_client.register",
            code::RA_ROLE_NOT_PERMITTED,
            &agent.uid,
            1,
        ),
        (
            "oidc_client.show",
            code::RA_ROLE_NOT_PERMITTED,
            &agent.uid,
            1,
        ),
    ] {
        let events = s.assert_audited(action, error, n).await;
        assert!(events.iter().all(|e| &e.actor == actor), "{action} {error}");
    }
    let registered = s.audit_events("oidc_client.registered").await;
    assert_eq!(registered.len(), 4);
    assert_eq!(s.audit_events("oidc_client.secret_rotated").await.len(), 1);
    assert_eq!(s.audit_events("oidc_client.disabled").await.len(), 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registrations_are_refused_and_write_nothing() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let pkjwt = |jwks: Option<serde_json::Value>, jwks_uri: Option<&str>| CreateClient {
        auth_method: Some(auth_method::PRIVATE_KEY_JWT.to_owned()),
        jwks,
        jwks_uri: jwks_uri.map(str::to_owned),
        ..request("Keyed")
    };
    let with_uris = |uris: &[&str]| CreateClient {
        redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
        ..request("Uris")
    };
    let mut d = p256_jwk();
    d["d"] = serde_json::json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    let cases: Vec<(&str, CreateClient, &str)> = vec![
        (
            "http to a remote host",
            with_uris(&["http://rp.example/cb"]),
            code::INVALID_REDIRECT_URI,
        ),
        (
            "a fragment",
            with_uris(&["https://rp.example/cb#x"]),
            code::INVALID_REDIRECT_URI,
        ),
        (
            "a relative URI",
            with_uris(&["/cb"]),
            code::INVALID_REDIRECT_URI,
        ),
        (
            "userinfo",
            with_uris(&["https://user@rp.example/cb"]),
            code::INVALID_REDIRECT_URI,
        ),
        (
            "javascript:",
            with_uris(&["javascript:alert(1)"]),
            code::INVALID_REDIRECT_URI,
        ),
        (
            "one good, one bad",
            with_uris(&["https://rp.example/cb", "http://evil.example/cb"]),
            code::INVALID_REDIRECT_URI,
        ),
        (
            "no redirect URI",
            with_uris(&[]),
            code::REDIRECT_URI_REQUIRED,
        ),
        (
            "a post-logout URI with a fragment",
            CreateClient {
                post_logout_redirect_uris: vec!["https://rp.example/bye#x".to_owned()],
                ..request("Bye")
            },
            code::INVALID_REDIRECT_URI,
        ),
        (
            "a 101-character name",
            request(&"n".repeat(101)),
            code::INVALID_CLIENT_NAME,
        ),
        ("an empty name", request("   "), code::INVALID_CLIENT_NAME),
        (
            "a control character",
            request("Ward\u{7}Round"),
            code::INVALID_CLIENT_NAME,
        ),
        (
            "a newline",
            request("Ward\nRound"),
            code::INVALID_CLIENT_NAME,
        ),
        (
            "public with client_secret_basic",
            CreateClient {
                public: true,
                auth_method: Some(auth_method::CLIENT_SECRET_BASIC.to_owned()),
                ..request("Public")
            },
            code::INVALID_AUTH_METHOD,
        ),
        (
            "confidential with none",
            CreateClient {
                auth_method: Some(auth_method::NONE.to_owned()),
                ..request("None")
            },
            code::INVALID_AUTH_METHOD,
        ),
        (
            "an unknown method",
            CreateClient {
                auth_method: Some("client_secret_jwt".to_owned()),
                ..request("Hmac")
            },
            code::INVALID_AUTH_METHOD,
        ),
        (
            "private_key_jwt without keys",
            pkjwt(None, None),
            code::INVALID_JWKS,
        ),
        (
            "private_key_jwt with jwks and jwks_uri",
            pkjwt(
                Some(serde_json::json!({"keys": [p256_jwk()]})),
                Some("https://rp.example/jwks"),
            ),
            code::INVALID_JWKS,
        ),
        (
            "a 1024-bit RSA key",
            pkjwt(Some(serde_json::json!({"keys": [rsa_jwk(1024)]})), None),
            code::WEAK_CLIENT_KEY,
        ),
        (
            "a private key",
            pkjwt(Some(serde_json::json!({"keys": [d]})), None),
            code::INVALID_JWKS,
        ),
        (
            "a symmetric key",
            pkjwt(
                Some(serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
                None,
            ),
            code::INVALID_JWKS,
        ),
        (
            "a P-384 key",
            pkjwt(
                Some(
                    serde_json::json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}),
                ),
                None,
            ),
            code::INVALID_JWKS,
        ),
        (
            "an empty key set",
            pkjwt(Some(serde_json::json!({"keys": []})), None),
            code::INVALID_JWKS,
        ),
        (
            "keys that are not a set",
            pkjwt(Some(serde_json::json!([p256_jwk()])), None),
            code::INVALID_JWKS,
        ),
        (
            "a secret client with keys",
            CreateClient {
                jwks: Some(serde_json::json!({"keys": [p256_jwk()]})),
                ..request("Both")
            },
            code::INVALID_JWKS,
        ),
        (
            "a jwks_uri over http to a remote host",
            pkjwt(None, Some("http://rp.example/jwks")),
            code::INVALID_JWKS_URI,
        ),
        (
            "a back-channel logout URI over http to a remote host",
            CreateClient {
                backchannel_logout_uri: Some("http://rp.example/bcl".to_owned()),
                ..request("Bcl")
            },
            code::INVALID_BACKCHANNEL_LOGOUT_URI,
        ),
        (
            "HS256",
            CreateClient {
                id_token_alg: Some("HS256".to_owned()),
                ..request("Hs")
            },
            code::INVALID_ID_TOKEN_ALG,
        ),
        (
            "alg none",
            CreateClient {
                id_token_alg: Some("none".to_owned()),
                ..request("None")
            },
            code::INVALID_ID_TOKEN_ALG,
        ),
    ];
    for (what, req, error) in &cases {
        let msg = assert_api_error(
            s.post::<_, ClientCreated>(Some(t), routes::RA_CLIENTS, req)
                .await,
            400,
            error,
        );
        assert!(!msg.is_empty(), "{what}");
        assert_eq!(client_count(&s).await, 0, "{what}: nothing is written");
    }
    let refused = s.audit_failures("oidc_client.register").await;
    assert_eq!(refused.len(), cases.len(), "every refusal is audited");
    assert!(s.audit_events("oidc_client.registered").await.is_empty());

    // Loopback http is fine for redirect URIs, keys and back-channel logout (tests, native apps).
    let ok = create(
        &s,
        t,
        &CreateClient {
            redirect_uris: vec![
                "http://127.0.0.1:8080/cb".to_owned(),
                "http://[::1]/cb".to_owned(),
                "http://localhost/cb".to_owned(),
            ],
            auth_method: Some(auth_method::PRIVATE_KEY_JWT.to_owned()),
            jwks_uri: Some("http://127.0.0.1:9000/jwks".to_owned()),
            backchannel_logout_uri: Some("http://127.0.0.1:9000/bcl".to_owned()),
            ..request("Local Test App")
        },
    )
    .await;
    assert_eq!(ok.client.redirect_uris.len(), 3);
    assert_eq!(client_count(&s).await, 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_client_accepts_any_loopback_redirect_and_is_audited() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let (id, secret) = vsc_server::routes::ra_clients::register_sandbox_client(
        &s.state,
        "vsc sandbox test client",
    )
    .await
    .expect("register the sandbox client");
    assert!(is_client_id(&id), "{id}");
    let (any_loopback, created_by, ods, method): (i64, String, String, String) = sqlx::query_as(
        "SELECT any_loopback_redirect, created_by, ods_code, auth_method FROM oidc_clients WHERE client_id = $1",
    )
    .bind(&id)
    .fetch_one(s.state.store().pool())
    .await
    .expect("the sandbox client");
    assert_eq!(
        (
            any_loopback,
            created_by.as_str(),
            ods.as_str(),
            method.as_str()
        ),
        (
            1,
            "sandbox",
            s.state.national_ods(),
            auth_method::CLIENT_SECRET_BASIC
        )
    );
    assert_eq!(secret_hash(&s, &id).await, Some(sha256(&secret)));
    let events = s.audit_events("oidc_client.registered").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].actor.as_str(), events[0].subject.as_str()),
        ("sandbox", id.as_str())
    );
    // National administrators see it like any other client.
    let listed = list(&s, &ram.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].redirect_uris,
        vec!["http://127.0.0.1/callback".to_owned()]
    );
    s.assert_audit_intact().await;
}

//! Registered workstations (issue 9, item 2): who may open a sign-in request, who may collect
//! its ticket, and what the phone is shown. Each test performs the attack against the real
//! server over TLS and checks the refusal, its audit event and that nothing was created.

use vsc_proto::signin::{AuthContext, AuthRequestCreated, CreateAuthRequest, WorkstationProof};
use vsc_proto::workstation::{
    IssueWorkstationCode, WorkstationCode, WorkstationInfo, WorkstationPolicy,
};

use crate::common::{Phone, TestServer, assert_api_error, auth_context, start};

async fn count_requests(s: &TestServer) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM auth_requests")
        .fetch_one(s.state.store().pool())
        .await
        .expect("count requests");
    n
}

/// The serials (lowercase hex, no leading zeros) the published issuing CRL lists.
async fn crl_serials(s: &TestServer) -> Vec<String> {
    use x509_parser::prelude::FromDer;
    let der = s
        .raw_http()
        .get(s.url.join("ca/issuing.crl").expect("url"))
        .send()
        .await
        .expect("fetch the CRL")
        .bytes()
        .await
        .expect("CRL body");
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&der).expect("a CRL");
    crl.iter_revoked_certificates()
        .map(|e| hex_serial(e.raw_serial()))
        .collect()
}

fn hex_serial(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// The phone approves `created` with the number the workstation shows.
async fn approve(s: &TestServer, phone: &Phone, created: &AuthRequestCreated) {
    let token = s.device_token(phone).await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let body = s.signed_approval(phone, &pending, created.number).await;
    let approved = s
        .approve_raw(&token, &created.request_id, &body)
        .await
        .expect("the phone approves");
    assert_eq!(approved.state, "approved");
}

/// What the phone is shown for `created`.
async fn shown(s: &TestServer, phone: &Phone, created: &AuthRequestCreated) -> AuthContext {
    let token = s.device_token(phone).await;
    let pending = s.pending_request(&token, &created.request_id).await;
    vsc_authenticator::check_request(&pending, time::OffsetDateTime::now_utc())
        .expect("the phone's own checks pass (its digest covers what it shows)");
    pending.context
}

async fn set_policy(
    s: &TestServer,
    token: &str,
    ods: &str,
    allow: bool,
) -> Result<WorkstationPolicy, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/organisations/{ods}/workstation-policy"),
        &WorkstationPolicy {
            allow_unregistered_workstations: allow,
            unlock_grace_minutes: 0,
            fast_user_switching: false,
        },
    )
    .await
}

async fn issue_code(
    s: &TestServer,
    token: &str,
    ods: &str,
    name: Option<&str>,
) -> Result<WorkstationCode, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        "/api/v1/ra/workstations/codes",
        &IssueWorkstationCode {
            organisation: ods.to_owned(),
            name: name.map(str::to_owned),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_workstation_opens_nothing_unless_the_organisation_allows_it() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let claimed = AuthContext {
        workstation_id: "pc-9".into(),
        client_address: "10.9.9.9".into(),
        ..auth_context("pc-9")
    };

    // The attack of today: anyone who reaches the server asks the person's phone, with any
    // workstation name. By default, refused before anything reaches the phone.
    assert_api_error(
        s.try_open_request_unregistered(&uid, &claimed).await,
        403,
        "workstation_not_registered",
    );
    s.assert_audited("auth.request", "workstation_not_registered", 1)
        .await;
    assert_eq!(count_requests(&s).await, 0);

    // Only an RA Manager (of the organisation, or national) sets the policy.
    let raa = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    assert_api_error(
        set_policy(&s, &raa.token, "RX1", true).await,
        403,
        "not_permitted",
    );
    s.assert_audited("organisation.workstation_policy", "not_permitted", 1)
        .await;
    let ram_rx1 = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let policy = set_policy(&s, &ram_rx1.token, "RX1", true)
        .await
        .expect("an RA Manager of RX1 allows unregistered workstations");
    assert!(policy.allow_unregistered_workstations);

    // Allowed now, and clearly marked: the phone sees "unregistered", the address the server
    // saw (not the one claimed), and an id that is not a registered workstation's.
    let created = s
        .try_open_request_unregistered(&uid, &claimed)
        .await
        .expect("an unregistered workstation may open requests for RX1's cards now");
    let context = shown(&s, &phone, &created).await;
    assert!(!context.registered);
    assert_eq!(context.workstation_id, "unregistered:pc-9");
    assert_eq!(context.client_address, "127.0.0.1");
    assert!(context.organisation.is_empty());
    assert!(
        context
            .workstation_label()
            .starts_with("UNREGISTERED WORKSTATION"),
        "{}",
        context.workstation_label()
    );
    // Its agent collects with the poll secret alone, as before.
    approve(&s, &phone, &created).await;
    let collected = s
        .try_outcome_signed(&created, 0, None)
        .await
        .expect("outcome");
    assert_eq!(collected.state, "collected");
    assert!(collected.ticket.is_some());

    // An unregistered caller cannot pass itself off as a registered workstation (nor replace
    // that workstation's request) by claiming its id.
    let ws = s.workstation("pc-1").await;
    let (uid2, _card2, _phone2) = s.enrolled_person(t, "RX1").await;
    let registered = s.open_request(&uid2, "pc-1").await;
    let impostor = AuthContext {
        workstation_id: ws.id.clone(),
        ..auth_context("pc-1")
    };
    assert_api_error(
        s.try_open_request_unregistered(&uid2, &impostor).await,
        409,
        "request_already_open",
    );
    assert_eq!(s.request_state(&registered.request_id).await, "pending");

    // Switched off again: refused again.
    set_policy(&s, t, "RX1", false)
        .await
        .expect("a national RA Manager sets it too");
    assert_api_error(
        s.try_open_request_unregistered(&uid, &claimed).await,
        403,
        "workstation_not_registered",
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_workstation_that_opened_a_request_collects_its_ticket() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let w1 = s.workstation("pc-1").await;
    let w2 = s.workstation("pc-2").await;
    let created = s.open_request(&uid, "pc-1").await;
    approve(&s, &phone, &created).await;

    // A third party who learns only the request id gets nothing.
    let stranger = AuthRequestCreated {
        poll_secret: "guessed".into(),
        ..created.clone()
    };
    assert_api_error(
        s.try_outcome_signed(&stranger, 0, None).await,
        404,
        "unknown_request",
    );
    // Nor with the poll secret too (a leaked log, a proxy): W1's signature is needed.
    assert_api_error(
        s.try_outcome_signed(&created, 0, None).await,
        401,
        "workstation_signature_missing",
    );
    // Another registered workstation's signature over the same collection does not verify.
    let by_w2 = w2.sign(&vsc_proto::signin::workstation_collect_statement(
        &created.request_id,
        &created.nonce,
        &w1.id,
        &s.origin(),
    ));
    assert_api_error(
        s.try_outcome_signed(&created, 0, Some(&by_w2)).await,
        401,
        "workstation_signature_invalid",
    );
    // W1's signature over another request does not collect this one.
    let other = w1.sign(&vsc_proto::signin::workstation_collect_statement(
        "another-request",
        &created.nonce,
        &w1.id,
        &s.origin(),
    ));
    assert_api_error(
        s.try_outcome_signed(&created, 0, Some(&other)).await,
        401,
        "workstation_signature_invalid",
    );
    s.assert_audited("auth.collect", "workstation_signature_missing", 1)
        .await;
    s.assert_audited("auth.collect", "workstation_signature_invalid", 2)
        .await;
    assert_eq!(s.request_state(&created.request_id).await, "approved");
    assert_eq!(s.session_count().await, 0, "no session for the attempts");

    // W1 collects, once; its collection replayed gets nothing.
    let mine = w1.collect_signature(&created, &s.origin());
    let collected = s
        .try_outcome_signed(&created, 0, Some(&mine))
        .await
        .expect("W1 collects");
    assert_eq!(collected.state, "collected");
    assert!(collected.ticket.is_some() && collected.agent_key.is_some());
    let replay = s
        .try_outcome_signed(&created, 0, Some(&mine))
        .await
        .expect("outcome");
    assert_eq!(replay.state, "collected");
    assert!(replay.ticket.is_none() && replay.agent_key.is_none());
    assert_eq!(s.session_count().await, 1);
    s.assert_audit_intact().await;
}

/// Opens a request for `uid` with `proof`, as an agent sends it.
async fn open_with(
    s: &TestServer,
    proof: WorkstationProof,
    uid: &str,
    ctx: &AuthContext,
) -> Result<AuthRequestCreated, vsc_authenticator::ClientError> {
    s.post(
        None,
        "/api/v1/auth/requests",
        &CreateAuthRequest {
            uid: uid.to_owned(),
            context: ctx.clone(),
            workstation: Some(proof),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_opens_are_single_use_and_bound_to_the_person() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, _phone) = s.enrolled_person(t, "RX1").await;
    let (other_uid, _card2, _phone2) = s.enrolled_person(t, "RX1").await;
    let w1 = s.workstation("pc-1").await;
    let w2 = s.workstation("pc-2").await;
    let ctx = auth_context("pc-1");

    // A signed open, then the same request replayed: the challenge is spent.
    let challenge = s.workstation_challenge(&w1.id).await.expect("challenge");
    let proof = w1.open_proof(&challenge, &uid, &ctx, &s.origin());
    open_with(&s, proof.clone(), &uid, &ctx)
        .await
        .expect("the signed open");
    assert_api_error(
        open_with(&s, proof, &uid, &ctx).await,
        401,
        "challenge_used",
    );
    assert_eq!(count_requests(&s).await, 1);

    // Signed for one person, sent for another: the signature binds the UID.
    let challenge = s.workstation_challenge(&w1.id).await.expect("challenge");
    let proof = w1.open_proof(&challenge, &uid, &ctx, &s.origin());
    assert_api_error(
        open_with(&s, proof, &other_uid, &ctx).await,
        401,
        "workstation_signature_invalid",
    );
    // Signed by another workstation in W1's name: refused, and the challenge stays spent.
    let challenge = s.workstation_challenge(&w1.id).await.expect("challenge");
    let mut forged = w2.open_proof(&challenge, &other_uid, &ctx, &s.origin());
    forged.workstation_id = w1.id.clone();
    assert_api_error(
        open_with(&s, forged, &other_uid, &ctx).await,
        401,
        "workstation_signature_invalid",
    );
    let honest = w1.open_proof(&challenge, &other_uid, &ctx, &s.origin());
    assert_api_error(
        open_with(&s, honest, &other_uid, &ctx).await,
        401,
        "challenge_used",
    );
    // A challenge for W2 does not open a request as W1.
    let challenge = s.workstation_challenge(&w2.id).await.expect("challenge");
    let proof = w1.open_proof(&challenge, &other_uid, &ctx, &s.origin());
    assert_api_error(
        open_with(&s, proof, &other_uid, &ctx).await,
        401,
        "challenge_unknown",
    );
    // Challenges expire.
    let challenge = s.workstation_challenge(&w1.id).await.expect("challenge");
    s.clock.advance(time::Duration::minutes(3));
    let proof = w1.open_proof(&challenge, &other_uid, &ctx, &s.origin());
    assert_api_error(
        open_with(&s, proof, &other_uid, &ctx).await,
        401,
        "challenge_expired",
    );
    // Nobody unregistered gets a challenge.
    assert_api_error(
        s.workstation_challenge("0123456789abcdef0123456789abcdef")
            .await,
        401,
        "unknown_workstation",
    );
    assert_eq!(
        count_requests(&s).await,
        1,
        "only the first open made a request"
    );
    s.assert_audited("auth.request", "workstation_signature_invalid", 2)
        .await;
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_workstation_opens_and_collects_nothing_and_its_sessions_end() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let (uid2, _card2, phone2) = s.enrolled_person(t, "RX1").await;

    // Who issues codes: RA Manager, RA Agent, Local Smartcard Administrator of RX1; not a
    // Sponsor, not an RA of another organisation.
    let raa = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let lsa = s
        .new_ra(t, "RX1", "local-smartcard-administrator", &[])
        .await;
    let sponsor = s.new_ra(t, "RX1", "sponsor", &["S8000:G8000:R8000"]).await;
    let other = s.new_ra(t, "RY2", "ra-agent", &[]).await;
    issue_code(&s, &lsa.token, "RX1", None)
        .await
        .expect("an LSA of RX1 issues a code");
    assert_api_error(
        issue_code(&s, &sponsor.token, "RX1", None).await,
        403,
        "not_permitted",
    );
    assert_api_error(
        issue_code(&s, &other.token, "RX1", None).await,
        403,
        "not_permitted",
    );
    s.assert_audited("workstation.code", "not_permitted", 2)
        .await;

    // An RA Agent of RX1 registers WARD-9 with a code fixed to that name.
    let code = issue_code(&s, &raa.token, "RX1", Some("RX1-WARD-9"))
        .await
        .expect("a code");
    assert_eq!(
        code.ca_fingerprint,
        s.state.ca().root_fingerprint().to_colon_hex()
    );
    assert_api_error(
        s.enrol_workstation(&code.code, "SOME-OTHER-NAME").await,
        400,
        "workstation_name_mismatch",
    );
    let ws = std::sync::Arc::new(
        s.enrol_workstation(&code.code, "RX1-WARD-9")
            .await
            .expect("the workstation registers"),
    );
    assert_api_error(
        s.enrol_workstation(&code.code, "RX1-WARD-9").await,
        410,
        "workstation_code_used",
    );
    let list: Vec<WorkstationInfo> = s
        .get(Some(&raa.token), "/api/v1/ra/workstations?organisation=RX1")
        .await
        .expect("list");
    assert!(
        list.iter()
            .any(|w| w.id == ws.id && w.state == "active" && w.registered_by == raa.uid),
        "{list:?}"
    );

    // A session from it, and a request approved but not yet collected.
    let ctx = auth_context("ward-9");
    let first = s
        .try_open_request_from(&ws, &uid, &ctx)
        .await
        .expect("opens");
    approve(&s, &phone, &first).await;
    let ticket = s.outcome(&first, 0).await.ticket.expect("a ticket");
    let pending = s
        .try_open_request_from(&ws, &uid2, &ctx)
        .await
        .expect("opens");
    approve(&s, &phone2, &pending).await;
    let challenge = s.workstation_challenge(&ws.id).await.expect("challenge");

    assert!(crl_serials(&s).await.is_empty(), "nothing revoked yet");
    // Revoked: only by an RA who manages RX1's workstations.
    assert_api_error(
        s.post::<_, WorkstationInfo>(
            Some(&other.token),
            &format!("/api/v1/ra/workstations/{}/revoke", ws.id),
            &serde_json::json!({}),
        )
        .await,
        403,
        "not_permitted",
    );
    let revoked: WorkstationInfo = s
        .post(
            Some(&raa.token),
            &format!("/api/v1/ra/workstations/{}/revoke", ws.id),
            &serde_json::json!({}),
        )
        .await
        .expect("the RA Agent revokes it");
    assert_eq!(revoked.state, "revoked");
    // The workstation's certificate is in the published CRL at once (relying parties that
    // check CRLs, not only OCSP, see the revocation).
    let cert_der = vsc_pki::pem::pem_to_der(&ws.enrolled.certificate_pem).expect("cert PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).expect("cert");
    let serial = hex_serial(cert.raw_serial());
    let listed = crl_serials(&s).await;
    assert!(
        listed.contains(&serial),
        "{serial} not in the CRL {listed:?}"
    );
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    assert_api_error(s.try_outcome(&pending, 0).await, 403, "workstation_revoked");
    let proof = ws.open_proof(&challenge, &uid, &ctx, &s.origin());
    assert_api_error(
        s.post::<_, AuthRequestCreated>(
            None,
            "/api/v1/auth/requests",
            &CreateAuthRequest {
                uid: uid.clone(),
                context: ctx.clone(),
                workstation: Some(proof),
            },
        )
        .await,
        403,
        "workstation_revoked",
    );
    assert_api_error(
        s.workstation_challenge(&ws.id).await,
        403,
        "workstation_revoked",
    );
    assert_eq!(
        s.session_count().await,
        1,
        "no session after the revocation"
    );
    let events = s.audit_events("workstation.revoked").await;
    assert_eq!(events.len(), 1, "{events:?}");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_sees_the_registered_name_and_organisation_and_the_address_the_server_saw() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let ws = std::sync::Arc::new(s.register_workstation("RX1", "RX1-WARD-9").await);
    assert_eq!(ws.enrolled.organisation, "RX1");

    // The agent claims another name, another id and another address: the phone is shown the
    // registry's and what the server saw.
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let lie = AuthContext {
        workstation_id: "director-office".into(),
        workstation_name: "DIRECTOR-OFFICE".into(),
        client_address: "10.9.9.9".into(),
        ..auth_context("pc-1")
    };
    let created = s
        .try_open_request_from(&ws, &uid, &lie)
        .await
        .expect("opens");
    let context = shown(&s, &phone, &created).await;
    assert_eq!(context.workstation_id, ws.id);
    assert_eq!(context.workstation_name, "RX1-WARD-9");
    assert!(context.registered);
    assert_eq!(context.organisation, "RX1");
    assert_eq!(context.client_address, "127.0.0.1");
    assert!(
        context.workstation_label().starts_with("RX1-WARD-9 (RX1"),
        "{}",
        context.workstation_label()
    );
    // The digest the phone signs covers the registration: shown another organisation, the
    // phone's check fails.
    let token = s.device_token(&phone).await;
    let mut tampered = s.pending_request(&token, &created.request_id).await;
    tampered.context.organisation = "RY2".into();
    assert!(
        vsc_authenticator::check_request(&tampered, time::OffsetDateTime::now_utc()).is_err(),
        "a changed organisation no longer matches the digest"
    );
    tampered.context.organisation = "RX1".into();
    tampered.context.registered = false;
    assert!(
        vsc_authenticator::check_request(&tampered, time::OffsetDateTime::now_utc()).is_err(),
        "nor does a changed registration flag"
    );
    approve(&s, &phone, &created).await;
    assert!(s.outcome(&created, 0).await.ticket.is_some());

    // Clinicians roam: a workstation registered at RX1 asks for a person registered only at
    // RY2. Allowed, and the phone shows the workstation's organisation, RX1, so the person
    // sees where the request comes from.
    let (roamer, _card, roamer_phone) = s.enrolled_person(t, "RY2").await;
    let created = s
        .try_open_request_from(&ws, &roamer, &auth_context("pc-1"))
        .await
        .expect("a workstation of RX1 may ask a person of RY2");
    let context = shown(&s, &roamer_phone, &created).await;
    assert_eq!(
        (
            context.organisation.as_str(),
            context.workstation_name.as_str()
        ),
        ("RX1", "RX1-WARD-9")
    );
    approve(&s, &roamer_phone, &created).await;
    assert!(s.outcome(&created, 0).await.ticket.is_some());
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_codes_are_single_use_and_limit_wrong_guesses() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let code = s.workstation_code("RX1", None).await;
    // Five wrong secrets with the right id void the code, even for the right secret.
    let wrong = crate::common::mistype_secret(&code);
    for _ in 0..5 {
        assert_api_error(
            s.enrol_workstation(&wrong, "RX1-PC-1").await,
            401,
            "workstation_code_wrong",
        );
    }
    assert_api_error(
        s.enrol_workstation(&code, "RX1-PC-1").await,
        429,
        "workstation_code_locked",
    );
    s.assert_audited("workstation.enrol", "workstation_code_wrong", 5)
        .await;
    // A name is registered once per organisation (until revoked).
    let code = s.workstation_code("RX1", None).await;
    s.enrol_workstation(&code, "RX1-PC-2")
        .await
        .expect("registers");
    let again = s.workstation_code("RX1", None).await;
    assert_api_error(
        s.enrol_workstation(&again, "rx1-pc-2").await,
        409,
        "workstation_name_taken",
    );
    // The code was not used up by the refusal.
    s.enrol_workstation(&again, "RX1-PC-3")
        .await
        .expect("registers");
    // One key registers one workstation; the key must be ECDSA P-256.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let enrol_with = |code: String, name: &str, csr: Vec<u8>| {
        let body = vsc_proto::workstation::EnrolWorkstation {
            code,
            name: name.to_owned(),
            csr: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr),
        };
        let s = &s;
        async move {
            s.post::<_, vsc_proto::workstation::WorkstationEnrolled>(
                None,
                "/api/v1/workstations/enrol",
                &body,
            )
            .await
        }
    };
    let code = s.workstation_code("RX1", None).await;
    enrol_with(code, "RX1-PC-4", crate::common::csr_der(&key))
        .await
        .expect("registers");
    let code = s.workstation_code("RX1", None).await;
    assert_api_error(
        enrol_with(code.clone(), "RX1-PC-5", crate::common::csr_der(&key)).await,
        409,
        "workstation_key_reused",
    );
    assert_api_error(
        enrol_with(code, "RX1-PC-5", crate::common::rsa2048_csr()).await,
        400,
        "invalid_csr",
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM workstations")
        .fetch_one(s.state.store().pool())
        .await
        .expect("count");
    assert_eq!(n, 3);
    s.assert_audit_intact().await;
}

//! Signing prescriptions on the phone against the real server: the policy (a prescribing role,
//! keys held on the phone, the batch limit, readable fragments), the phone's own review and
//! signatures, the server's verification of each one, single use, and the audit trail.

use vsc_authenticator::PhoneLink;
use vsc_proto::signing::{
    CompleteSigningRequest, CreateSigningRequest, ItemSignature, SigningItem, SigningKind,
    SigningOutcome, SigningRequestCreated,
};

use crate::common::{AgentAuth, TestServer, assert_api_error, passcode, start};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../eps/tests/data/corpus");

pub(crate) fn corpus_items(n: usize) -> Vec<SigningItem> {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| {
            let xml = std::fs::read_to_string(f).unwrap();
            vsc_eps::sign::prepare(&xml, vsc_eps::sign::SignatureAlgorithm::RsaSha1).ok()
        })
        .take(n)
        .enumerate()
        .map(|(i, p)| SigningItem {
            id: format!("rx-{i}"),
            fragments: Some(p.canonical_fragments),
            payload: None,
            description: None,
            slot: None,
        })
        .collect()
}

/// A signed-in prescriber (role with `activities`): what their agent holds, the card, the phone.
pub(crate) async fn prescriber(
    s: &TestServer,
    activities: &[&str],
) -> (AgentAuth, String, crate::common::Phone) {
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card_id, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position_with(t, &uid, "RX1", "S8000:G8000:R8000", activities)
        .await
        .expect("assign a position");
    let created = s.open_request(&uid, "pc-1").await;
    let link = PhoneLink::new(&phone.home).expect("link");
    let request = link
        .pending(0)
        .await
        .expect("pending")
        .into_iter()
        .next()
        .expect("the sign-in request");
    link.approve(&request, created.number, &passcode())
        .await
        .expect("approve");
    let collected = s.outcome(&created, 5).await;
    let auth = AgentAuth {
        ticket: collected.ticket.expect("a ticket"),
        key: collected.agent_key.expect("the agent key, with the ticket"),
    };
    (auth, card_id, phone)
}

pub(crate) async fn open(
    s: &TestServer,
    auth: &AgentAuth,
    algorithm: &str,
    items: Vec<SigningItem>,
) -> Result<SigningRequestCreated, vsc_authenticator::ClientError> {
    s.agent_post(
        auth,
        "/api/v1/signing/requests",
        &CreateSigningRequest {
            kind: SigningKind::Prescriptions,
            algorithm: algorithm.into(),
            items,
        },
    )
    .await
}

pub(crate) async fn outcome(s: &TestServer, auth: &AgentAuth, id: &str) -> SigningOutcome {
    s.agent_get(auth, &format!("/api/v1/signing/requests/{id}?wait=0"))
        .await
        .expect("outcome")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_signs_a_batch_and_the_server_verifies_every_signature() {
    let s = start().await;
    let (ticket, _card, phone) = prescriber(&s, &["B0420"]).await;
    for algorithm in ["RS1", "RS256"] {
        let created = open(&s, &ticket, algorithm, corpus_items(5))
            .await
            .expect("a prescriber opens a signing request");
        assert_eq!(
            outcome(&s, &ticket, &created.request_id).await.state,
            "pending"
        );

        let link = PhoneLink::new(&phone.home).expect("link");
        let pending = link.pending_signing().await.expect("pending signing");
        assert_eq!(pending.len(), 1);
        let review = vsc_authenticator::signing::review(&pending[0]).expect("review");
        assert_eq!(review.items.len(), 5);
        assert!(review.refused.is_empty());
        let screen = review.display_lines().join("\n");
        assert!(screen.contains("Patient:"), "{screen}");
        assert!(screen.contains("signature fingerprint"), "{screen}");
        let answer = link.sign(&review, &passcode()).await.expect("sign");
        assert_eq!(answer.state, "completed");
        assert_eq!(answer.signatures.len(), 5, "{answer:?}");
        assert!(answer.failed_signatures.is_empty(), "{answer:?}");

        let seen = outcome(&s, &ticket, &created.request_id).await;
        assert_eq!(seen, answer, "the agent collects what the phone produced");
        assert!(seen.certificate.is_some());

        // Single use: a second answer is refused.
        let again = link
            .complete_signing(&created.request_id, &CompleteSigningRequest::default())
            .await;
        assert!(again.is_err(), "{again:?}");
    }
    let events = s.audit_events("eps.signature").await;
    assert_eq!(events.len(), 10, "one audit event per signature");
    for e in &events {
        assert_eq!(e.outcome, "success");
        let detail: serde_json::Value = serde_json::from_str(&e.detail).expect("JSON detail");
        assert!(
            detail["digest"].is_string() && detail["prescription_id"].is_string(),
            "{detail}"
        );
    }
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_that_does_not_verify_is_reported_not_returned() {
    let s = start().await;
    let (ticket, _card, phone) = prescriber(&s, &["B0420"]).await;
    let created = open(&s, &ticket, "RS256", corpus_items(2))
        .await
        .expect("open");
    let link = PhoneLink::new(&phone.home).expect("link");
    let forged = CompleteSigningRequest {
        signatures: vec![
            ItemSignature {
                id: "rx-0".into(),
                signature: "AAAA".into(),
            },
            ItemSignature {
                id: "rx-1".into(),
                signature: "not base64!".into(),
            },
        ],
        refused: Vec::new(),
    };
    let answer = link
        .complete_signing(&created.request_id, &forged)
        .await
        .expect("the answer is taken");
    assert!(answer.signatures.is_empty());
    assert_eq!(answer.failed_signatures.len(), 2, "{answer:?}");
    let failures = s.audit_failures("eps.signature").await;
    assert_eq!(failures.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals_are_specific_and_change_nothing() {
    let s = start().await;
    let (ticket, card_id, phone) = prescriber(&s, &["B0570"]).await;
    // A role without prescribing.
    let err = open(&s, &ticket, "RS1", corpus_items(1)).await;
    assert_api_error(err, 403, "not_a_prescribing_role");
    s.assert_audited("signing.request", "not_a_prescribing_role", 1)
        .await;
    let link = PhoneLink::new(&phone.home).expect("link");
    assert!(link.pending_signing().await.expect("pending").is_empty());

    let s2 = start().await;
    let (ticket, card_id2, _phone) = prescriber(&s2, &["B0420"]).await;
    assert_api_error(
        open(&s2, &ticket, "RS512", corpus_items(1)).await,
        400,
        "invalid_algorithm",
    );
    assert_api_error(
        open(&s2, &ticket, "RS1", corpus_items(0)).await,
        400,
        "batch_size",
    );
    let mut too_many = corpus_items(1);
    too_many = (0..101)
        .map(|i| SigningItem {
            id: format!("rx-{i}"),
            ..too_many[0].clone()
        })
        .collect();
    assert_api_error(open(&s2, &ticket, "RS1", too_many).await, 400, "batch_size");
    let mut twice = corpus_items(1);
    twice.push(twice[0].clone());
    assert_api_error(
        open(&s2, &ticket, "RS1", twice).await,
        400,
        "duplicate_item_id",
    );
    let garbage = vec![SigningItem {
        id: "rx".into(),
        fragments: Some("<FragmentsToBeHashed><Fragment>".into()),
        payload: None,
        description: None,
        slot: None,
    }];
    assert_api_error(
        open(&s2, &ticket, "RS1", garbage).await,
        400,
        "fragments_invalid",
    );
    let forged = AgentAuth {
        ticket: "not-a-ticket".into(),
        key: ticket.key.clone(),
    };
    assert_api_error(
        open(&s2, &forged, "RS1", corpus_items(1)).await,
        401,
        "ticket_invalid",
    );
    // The ticket alone (what a relying system sees) cannot sign.
    let ticket_only: Result<SigningRequestCreated, _> = s2
        .post(
            Some(&ticket.ticket),
            "/api/v1/signing/requests",
            &CreateSigningRequest {
                kind: SigningKind::Prescriptions,
                algorithm: "RS1".into(),
                items: corpus_items(1),
            },
        )
        .await;
    assert_api_error(ticket_only, 401, "agent_key_required");
    let wrong_key = AgentAuth {
        ticket: ticket.ticket.clone(),
        key: "not-the-key".into(),
    };
    assert_api_error(
        open(&s2, &wrong_key, "RS1", corpus_items(1)).await,
        401,
        "agent_key_required",
    );

    // Keys held by the server (appliance mode) never sign a prescription.
    let mut conn = s2.state.store().pool().acquire().await.expect("conn");
    sqlx::query("UPDATE cards SET custody = 'server-held' WHERE id = $1")
        .bind(&card_id2)
        .execute(&mut *conn)
        .await
        .expect("update");
    drop(conn);
    assert_api_error(
        open(&s2, &ticket, "RS1", corpus_items(1)).await,
        403,
        "keys_not_on_phone",
    );
    let _ = card_id;
    s.assert_audit_intact().await;
    s2.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_request_signs_nothing() {
    let s = start().await;
    let (ticket, _card, phone) = prescriber(&s, &["B0420"]).await;
    let created = open(&s, &ticket, "RS1", corpus_items(3))
        .await
        .expect("open");
    let link = PhoneLink::new(&phone.home).expect("link");
    link.decline_signing(&created.request_id, false)
        .await
        .expect("decline");
    let seen = outcome(&s, &ticket, &created.request_id).await;
    assert_eq!(seen.state, "declined");
    assert!(seen.signatures.is_empty());
    assert!(s.audit_events("eps.signature").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_signed_for_a_session_that_has_ended() {
    let s = start().await;
    let (auth, _card, phone) = prescriber(&s, &["B0420"]).await;
    let created = open(&s, &auth, "RS1", corpus_items(2)).await.expect("open");
    let link = PhoneLink::new(&phone.home).expect("link");
    let pending = link.pending_signing().await.expect("pending");
    let review = vsc_authenticator::signing::review(&pending[0]).expect("review");
    // The prescriber logs out before answering on the phone.
    let _: serde_json::Value = s
        .agent_post(&auth, "/api/v1/session/logout", &serde_json::json!({}))
        .await
        .expect("logout");
    assert!(
        link.pending_signing().await.expect("pending").is_empty(),
        "an ended session's requests are no longer shown"
    );
    let late = link.sign(&review, &passcode()).await;
    match late {
        Err(vsc_authenticator::AuthenticatorError::Client(
            vsc_authenticator::ClientError::Server { status, code, .. },
        )) => assert_eq!((status, code.as_str()), (410, "session_ended")),
        other => panic!("expected session_ended, got {other:?}"),
    }
    assert!(s.audit_events("eps.signature").await.is_empty());
    let _ = created;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_did_not_do_this_ends_the_asking_session_and_raises_an_alert() {
    let s = start().await;
    let (auth, _card, phone) = prescriber(&s, &["B0420"]).await;
    let created = open(&s, &auth, "RS1", corpus_items(1)).await.expect("open");
    let link = PhoneLink::new(&phone.home).expect("link");
    link.decline_signing(&created.request_id, true)
        .await
        .expect("report");
    assert_eq!(s.audit_events("alert.not_me").await.len(), 1);
    // The ticket and its agent key are worthless now.
    assert_api_error(
        open(&s, &auth, "RS1", corpus_items(1)).await,
        401,
        "session_ended",
    );
    assert!(s.audit_events("eps.signature").await.is_empty());
    s.assert_audit_intact().await;
}

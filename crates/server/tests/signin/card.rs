//! The virtual smartcard's server side: its own certificates, the card PIN (set on the phone,
//! counted on the server, three wrong tries lock the card), and card operations approved and
//! signed on the phone with the card's own keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_authenticator::PhoneLink;
use vsc_proto::card::{CardInfo, CardOperation, CardPinResult, VerifyCardPin};
use vsc_proto::signing::{SigningOutcome, SigningRequestCreated};

use crate::common::{AgentAuth, TestServer, assert_api_error, passcode, start};

/// A signed-in person: ticket, card id, phone link, the phone (whose home lives as long as it
/// does), and the RA token that registered them.
async fn signed_in(s: &TestServer) -> (AgentAuth, String, PhoneLink, crate::common::Phone, String) {
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card_id, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position(t, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .expect("position");
    let created = s.open_request(&uid, "pc-1").await;
    let link = PhoneLink::new(&phone.home).expect("link");
    let request = link.pending(0).await.expect("pending").remove(0);
    link.approve(&request, created.number, &passcode())
        .await
        .expect("approve");
    let collected = s.outcome(&created, 5).await;
    let auth = AgentAuth {
        ticket: collected.ticket.expect("ticket"),
        key: collected.agent_key.expect("agent key"),
    };
    (auth, card_id, link, phone, ram.token.clone())
}

async fn verify_pin(
    s: &TestServer,
    auth: &AgentAuth,
    pin: &str,
) -> Result<CardPinResult, vsc_authenticator::ClientError> {
    s.agent_post(
        auth,
        "/api/v1/card/pin/verify",
        &VerifyCardPin { pin: pin.into() },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_has_its_own_keys_and_a_pin_that_locks_after_three_wrong_tries() {
    let s = start().await;
    let (ticket, card_id, link, phone, ra_token) = signed_in(&s).await;
    let info: CardInfo = s.agent_get(&ticket, "/api/v1/card").await.expect("card");
    assert_eq!(info.card_id, card_id);
    assert!(!info.pin_set);
    assert_eq!(info.pin_tries_left, 3);
    // The card's keys are its own: four certificates, four different keys (the database
    // refuses a key twice), none of them the sign-in or the EPS key.
    assert_eq!(s.certificate_count(&card_id).await, 4);
    assert_ne!(info.auth_certificate, info.signing_certificate);

    assert_api_error(verify_pin(&s, &ticket, "123456").await, 409, "pin_not_set");
    assert!(link.set_card_pin("12345").await.is_err(), "too short");
    link.set_card_pin("246810").await.expect("set the PIN");
    let ok = verify_pin(&s, &ticket, "246810").await.expect("verify");
    assert!(ok.correct);

    for left in [2u8, 1] {
        let wrong = verify_pin(&s, &ticket, "000000").await.expect("verify");
        assert_eq!(
            (wrong.correct, wrong.tries_left, wrong.blocked),
            (false, left, false)
        );
    }
    // A right PIN resets the count; then three wrong ones lock the card.
    assert!(verify_pin(&s, &ticket, "246810").await.unwrap().correct);
    for _ in 0..2 {
        verify_pin(&s, &ticket, "999999").await.expect("verify");
    }
    let third = verify_pin(&s, &ticket, "1")
        .await
        .expect("a malformed PIN counts too");
    assert!(third.blocked, "{third:?}");
    assert_eq!(s.card_state(&card_id).await, "locked");
    // The session ended with the lock, and the right PIN no longer helps.
    assert!(verify_pin(&s, &ticket, "246810").await.is_err());
    assert_eq!(s.audit_events("card.pin.failed").await.len(), 5);
    assert_eq!(s.audit_events("card.locked").await.len(), 1);

    // Only an RA unlock brings the card back, with its tries restored.
    let unlock: vsc_proto::CardWithCode = s
        .post(
            Some(&ra_token),
            &format!("/api/v1/ra/cards/{card_id}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("the RA unlocks the card");
    vsc_authenticator::redeem_unlock(&phone.home, &unlock.code.url, &passcode())
        .await
        .expect("the phone redeems the unlock code");
    assert_eq!(s.card_state(&card_id).await, "active");
    let uid = s.card(&ra_token, &card_id).await.uid;
    let (_, ticket) = s.sign_in_agent(&phone, &uid, "pc-1").await;
    let info: CardInfo = s.agent_get(&ticket, "/api/v1/card").await.expect("card");
    assert_eq!(info.pin_tries_left, 3);
    assert!(verify_pin(&s, &ticket, "246810").await.unwrap().correct);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_operations_are_signed_on_the_phone_and_checked_by_the_server() {
    let s = start().await;
    let (ticket, _card_id, link, _phone, _ra) = signed_in(&s).await;
    let info: CardInfo = s.agent_get(&ticket, "/api/v1/card").await.expect("card");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"ssh session id");
    let operation = |slot: &str| CardOperation {
        slot: slot.into(),
        input: B64.encode(digest.as_ref()),
        purpose: Some("ssh".into()),
    };
    // A relying system that saw only the ticket cannot use the card.
    let ticket_only: Result<SigningRequestCreated, _> = s
        .post(
            Some(&ticket.ticket),
            "/api/v1/card/operations",
            &operation("9a"),
        )
        .await;
    assert_api_error(ticket_only, 401, "agent_key_required");
    // No operation before the PIN is verified in this session, and none after a wrong PIN.
    link.set_card_pin("246810").await.expect("set the PIN");
    let early: Result<SigningRequestCreated, _> = s
        .agent_post(&ticket, "/api/v1/card/operations", &operation("9a"))
        .await;
    assert_api_error(early, 403, "card_pin_not_verified");
    assert!(verify_pin(&s, &ticket, "246810").await.unwrap().correct);
    assert!(!verify_pin(&s, &ticket, "000000").await.unwrap().correct);
    let after_wrong: Result<SigningRequestCreated, _> = s
        .agent_post(&ticket, "/api/v1/card/operations", &operation("9a"))
        .await;
    assert_api_error(after_wrong, 403, "card_pin_not_verified");
    assert!(verify_pin(&s, &ticket, "246810").await.unwrap().correct);
    for (slot, cert) in [
        ("9a", &info.auth_certificate),
        ("9c", &info.signing_certificate),
    ] {
        let created: SigningRequestCreated = s
            .agent_post(&ticket, "/api/v1/card/operations", &operation(slot))
            .await
            .expect("a card operation opens");
        let pending = link.pending_signing().await.expect("pending");
        assert_eq!(pending.len(), 1);
        let review = vsc_authenticator::signing::review(&pending[0]).expect("review");
        let screen = review.display_lines().join("\n");
        assert!(screen.contains(&slot.to_ascii_uppercase()), "{screen}");
        assert!(screen.contains("fingerprint"), "{screen}");
        assert!(screen.contains("the workstation says: ssh"), "{screen}");
        let answer = link.sign(&review, &passcode()).await.expect("sign");
        assert_eq!(answer.signatures.len(), 1, "{answer:?}");
        let seen: SigningOutcome = s
            .agent_get(
                &ticket,
                &format!("/api/v1/signing/requests/{}?wait=0", created.request_id),
            )
            .await
            .expect("outcome");
        let signature = B64.decode(&seen.signatures[0].signature).unwrap();
        let spki = vsc_pki::certificate_info(&B64.decode(cert).unwrap())
            .unwrap()
            .spki_der;
        // The signature verifies with the slot's certificate, over the digest sent.
        let key = x509_key(&spki);
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &key,
        )
        .verify(b"ssh session id", &signature)
        .expect("the card's signature verifies");
    }

    // Malformed inputs are refused before anything reaches the phone.
    for (slot, input, code) in [
        ("9e", B64.encode([0u8; 32]), "invalid_slot"),
        ("9a", B64.encode([0u8; 31]), "input_length"),
        ("9c", "not base64".to_owned(), "input_malformed"),
    ] {
        let result: Result<SigningRequestCreated, _> = s
            .agent_post(
                &ticket,
                "/api/v1/card/operations",
                &CardOperation {
                    slot: slot.into(),
                    input,
                    purpose: None,
                },
            )
            .await;
        assert_api_error(result, 400, code);
    }
    assert!(link.pending_signing().await.unwrap().is_empty());
    s.assert_audit_intact().await;
}

/// The public key bits of a SubjectPublicKeyInfo (what aws-lc-rs verifies with).
fn x509_key(spki: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).expect("spki");
    info.subject_public_key.data.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cannot_outrun_the_three_tries() {
    let s = std::sync::Arc::new(start().await);
    let (ticket, card_id, link, _phone, _ra) = signed_in(&s).await;
    link.set_card_pin("246810").await.expect("set the PIN");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let (s, ticket, barrier) = (s.clone(), ticket.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                verify_pin(&s, &ticket, &format!("{:06}", 100_000 + i)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for guess in guesses {
        results.push(guess.await.expect("guess task"));
    }
    let counted = results
        .iter()
        .filter(|r| matches!(r, Ok(CardPinResult { correct: false, .. })))
        .count();
    assert_eq!(counted, 3, "exactly three guesses are checked: {results:?}");
    assert_eq!(s.card_state(&card_id).await, "locked");
    assert!(verify_pin(&s, &ticket, "246810").await.is_err());
    s.assert_audit_intact().await;
}

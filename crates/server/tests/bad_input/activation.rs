//! Activation codes: used, expired, mistyped, unknown, malformed. A refusal leaves the card
//! pending and the code usable (unless it is spent or locked); only the wrong-guess counter and
//! the audit log change.

use crate::common::CARD_CERTIFICATES;
use crate::common::{
    Csrs, Phone, assert_api_error, assert_flow_error, enrol_request, mistype_id, mistype_secret,
    start,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_activation_is_gone() {
    let s = start().await;
    let first = Phone::new();
    let enrolled = s
        .enrol(&first, &s.bootstrap.activation.url)
        .await
        .expect("first use of the bootstrap activation");
    let before = s.snapshot().await;

    let second = Phone::new();
    assert_flow_error(
        s.enrol(&second, &s.bootstrap.activation.url).await,
        410,
        "activation_used",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "used activation");
    assert!(second.home.enrolment().expect("read").is_none());
    assert_eq!(s.card_state(&enrolled.card_id).await, "active");
    assert_eq!(
        s.certificate_count(&enrolled.card_id).await,
        CARD_CERTIFICATES
    );
    s.assert_audited("card.enrol", "activation_used", 1).await;
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_activation_is_counted_then_locked() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let csrs = Csrs::generate();

    // One wrong guess: refused with the tries left; the card stays pending and the right code
    // still enrols.
    let (_, card) = s.person_with_card(t, "X26").await;
    let code = card.code.code.clone();
    let before = s.snapshot().await;
    let message = assert_api_error(
        s.enrol_raw(&enrol_request(
            &mistype_secret(&code),
            "device-mistyped-0001",
            &csrs,
        ))
        .await,
        401,
        "activation_wrong_code",
    );
    assert!(message.contains("4 tries left"), "{message}");
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "one wrong guess");
    assert_eq!(s.code_failures(&code).await, 1);
    assert!(!s.code_used(&code).await);
    assert_eq!(s.card_state(&card.card.id).await, "pending");
    let phone = Phone::new();
    s.enrol(&phone, &card.code.url)
        .await
        .expect("the right code still enrols after a wrong guess");
    assert_eq!(s.card_state(&card.card.id).await, "active");

    // Five wrong guesses: the right code no longer works.
    let (_, locked) = s.person_with_card(t, "X26").await;
    let code = locked.code.code.clone();
    let before = s.snapshot().await;
    for left in (0..5).rev() {
        let message = assert_api_error(
            s.enrol_raw(&enrol_request(
                &mistype_secret(&code),
                "device-mistyped-0002",
                &csrs,
            ))
            .await,
            401,
            "activation_wrong_code",
        );
        assert!(
            message.contains(&format!("({left} tries left)")),
            "{message}"
        );
    }
    let phone = Phone::new();
    assert_flow_error(
        s.enrol(&phone, &locked.code.url).await,
        429,
        "activation_locked",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "five wrong guesses");
    assert_eq!(s.code_failures(&code).await, 5);
    assert!(!s.code_used(&code).await);
    assert_eq!(s.card_state(&locked.card.id).await, "pending");
    assert_eq!(s.certificate_count(&locked.card.id).await, 0);
    assert!(phone.home.enrolment().expect("read").is_none());

    let wrong = s
        .assert_audited("activation.redeem", "activation_wrong_code", 6)
        .await;
    assert_eq!(wrong[0].subject, card.card.id);
    assert!(wrong[1..].iter().all(|e| e.subject == locked.card.id));
    s.assert_audited("card.enrol", "activation_locked", 1).await;
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_malformed_and_expired_activations() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let csrs = Csrs::generate();
    let (_, card) = s.person_with_card(t, "X26").await;
    let code = card.code.code.clone();
    let before = s.snapshot().await;

    assert_api_error(
        s.enrol_raw(&enrol_request(
            &mistype_id(&code),
            "device-unknown-00001",
            &csrs,
        ))
        .await,
        404,
        "activation_unknown",
    );
    for malformed in ["ABC-123", "UUUUUUUU-UUUU-UUUU-UUUU-UUUU"] {
        assert_api_error(
            s.enrol_raw(&enrol_request(malformed, "device-malformed-0001", &csrs))
                .await,
            400,
            "activation_malformed",
        );
    }
    assert_eq!(s.code_failures(&code).await, 0);

    // Three days is the lifetime; a day later the code is expired.
    s.clock.advance(time::Duration::hours(73));
    let phone = Phone::new();
    assert_flow_error(
        s.enrol(&phone, &card.code.url).await,
        410,
        "activation_expired",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(
        &before,
        &after,
        "unknown, malformed and expired activations",
    );
    assert_eq!(s.card_state(&card.card.id).await, "pending");
    assert!(!s.code_used(&code).await);
    assert!(phone.home.enrolment().expect("read").is_none());
    s.assert_audited("card.enrol", "activation_unknown", 1)
        .await;
    s.assert_audited("card.enrol", "activation_malformed", 2)
        .await;
    s.assert_audited("card.enrol", "activation_expired", 1)
        .await;
    s.assert_audit_intact().await;
}

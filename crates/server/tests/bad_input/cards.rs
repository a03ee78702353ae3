//! Card life-cycle refusals: issuing without a level-3 identity check or while a card is live,
//! and cancelling a revoked card. (Unlock codes bound to the card's phone and used once: the
//! `keystore` test binary, `unlock_proof`.)

use vsc_proto::{CancelCard, Card, Person, RecordIdentityCheck};

use crate::common::{Phone, assert_api_error, assert_flow_error, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_and_cancellation_preconditions() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let uid = s.create_person(t, "X26").await;

    let before = s.snapshot().await;
    assert_api_error(
        s.try_issue_card(t, &uid, "X26").await,
        409,
        "identity_not_verified",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "no identity check");

    // Level 2 is not enough for a smartcard.
    let _: Person = s
        .post(
            Some(t),
            &format!("/api/v1/ra/people/{uid}/identity-checks"),
            &RecordIdentityCheck {
                evidence: vec!["passport".to_owned()],
                level: 2,
                organisation: "X26".to_owned(),
            },
        )
        .await
        .expect("a level-2 check");
    let before = s.snapshot().await;
    assert_api_error(
        s.try_issue_card(t, &uid, "X26").await,
        409,
        "identity_not_verified",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "level-2 identity check");

    // One live card at a time.
    s.id_check(t, &uid, "X26").await;
    let card = s.issue_card(t, &uid, "X26").await;
    let before = s.snapshot().await;
    assert_api_error(s.try_issue_card(t, &uid, "X26").await, 409, "card_exists");
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "second live card");

    // A revoked card cannot be cancelled again; its activation is void.
    let cancel_path = format!("/api/v1/ra/cards/{}/cancel", card.card.id);
    let cancelled: Card = s
        .post(
            Some(t),
            &cancel_path,
            &CancelCard {
                reason_code: Some("cessation-of-operation".to_owned()),
                reason: "left the trust".to_owned(),
                invalidity_date: None,
            },
        )
        .await
        .expect("cancel a pending card");
    assert_eq!(cancelled.state, "revoked");
    let before = s.snapshot().await;
    assert_api_error(
        s.post::<_, Card>(
            Some(t),
            &cancel_path,
            &CancelCard {
                reason_code: Some("cessation-of-operation".to_owned()),
                reason: "again".to_owned(),
                invalidity_date: None,
            },
        )
        .await,
        409,
        "card_not_cancellable",
    );
    let phone = Phone::new();
    assert_flow_error(
        s.enrol(&phone, &card.code.url).await,
        410,
        "activation_expired",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "cancelling a revoked card");
    assert_eq!(s.card_state(&card.card.id).await, "revoked");

    // With the old card revoked, a new one may be issued.
    s.issue_card(t, &uid, "X26").await;

    s.assert_audited("card.issue", "identity_not_verified", 2)
        .await;
    s.assert_audited("card.issue", "card_exists", 1).await;
    s.assert_audited("card.cancel", "card_not_cancellable", 1)
        .await;
    s.assert_audited("card.enrol", "activation_expired", 1)
        .await;
    s.assert_audit_intact().await;
}

//! Card life-cycle refusals: issuing without a level-3 identity check or while a card is live,
//! cancelling a revoked card, and unlock codes bound to the card's phone and used once.

use vsc_authenticator::{KeystoreError, Passcode};
use vsc_proto::{
    CancelCard, Card, CardWithCode, LinkKind, Person, RecordIdentityCheck, UnlockRedeemRequest,
    UnlockRedeemResponse,
};

use crate::common::{
    Phone, assert_api_error, assert_flow_error, is_link, mistype_secret, passcode, start,
};

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
                invalidity_date: None,
                reason: "left the trust".to_owned(),
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
                invalidity_date: None,
                reason: "again".to_owned(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_codes_are_bound_to_the_phone_and_used_once() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (_, card_id, phone) = s.enrolled_person(t, "X26").await;
    let unlock: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card_id}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("an RA unlocks an enrolled card");
    assert!(is_link(&unlock.code.url, LinkKind::Unlock), "{unlock:?}");
    let code = unlock.code.code.clone();
    let before = s.snapshot().await;

    // From another phone.
    let other = Phone::new();
    assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            "/api/v1/device/unlock",
            &UnlockRedeemRequest {
                unlock_code: code.clone(),
                device_id: other.device_id(),
            },
        )
        .await,
        403,
        "unlock_wrong_device",
    );
    // Mistyped, from the right phone.
    let message = assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            "/api/v1/device/unlock",
            &UnlockRedeemRequest {
                unlock_code: mistype_secret(&code),
                device_id: phone.device_id(),
            },
        )
        .await,
        401,
        "unlock_code_wrong",
    );
    assert!(message.contains("4 tries left"), "{message}");
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "unlock from another phone");
    assert!(!s.code_used(&code).await);

    // The holder's phone redeems it and sets a new passcode; the old one stops working.
    let new_passcode = Passcode::new("654321").expect("passcode");
    vsc_authenticator::redeem_unlock(&phone.home, &unlock.code.url, &new_passcode)
        .await
        .expect("the card's phone redeems the unlock code");
    let mut store = phone.home.open_keystore().expect("keystore");
    assert!(
        matches!(
            store.unlock(&passcode()),
            Err(KeystoreError::WrongPasscode { .. })
        ),
        "the old passcode must no longer open the keystore"
    );
    store
        .unlock(&new_passcode)
        .expect("the new passcode opens the keystore");

    // Once only.
    let before = s.snapshot().await;
    assert_flow_error(
        vsc_authenticator::redeem_unlock(
            &phone.home,
            &unlock.code.url,
            &Passcode::new("111111").expect("passcode"),
        )
        .await,
        410,
        "unlock_code_used",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "unlock code used twice");
    phone
        .home
        .open_keystore()
        .expect("keystore")
        .unlock(&new_passcode)
        .expect("a refused unlock leaves the passcode alone");
    assert_eq!(s.card_state(&card_id).await, "active");

    let events = s
        .assert_audited("card.unlock.redeem", "unlock_wrong_device", 1)
        .await;
    assert_eq!(events[0].subject, card_id);
    s.assert_audited("unlock.redeem", "unlock_code_wrong", 1)
        .await;
    s.assert_audited("card.unlock.redeem", "unlock_code_used", 1)
        .await;
    s.assert_audit_intact().await;
}

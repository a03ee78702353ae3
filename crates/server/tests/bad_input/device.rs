//! Device rules at enrolment: one person per device, approved app versions only, simulated
//! phones only in a sandbox.

use crate::common::{
    Csrs, Phone, assert_api_error, assert_flow_error, enrol_request, passcode, start, start_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_holds_one_persons_card() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (a_uid, _, a_phone) = s.enrolled_person(t, "X26").await;
    let (_, b_card) = s.person_with_card(t, "X26").await;
    let csrs = Csrs::generate();
    let before = s.snapshot().await;

    // B's activation redeemed with A's device id.
    assert_api_error(
        s.enrol_raw(&enrol_request(
            &b_card.code.code,
            &a_phone.device_id(),
            &csrs,
        ))
        .await,
        409,
        "device_bound_to_other_person",
    );
    // The same through the app on A's phone: A keeps A's card.
    assert_flow_error(
        s.enrol(&a_phone, &b_card.code.url).await,
        409,
        "device_bound_to_other_person",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "device of another person");
    assert_eq!(s.card_state(&b_card.card.id).await, "pending");
    assert_eq!(s.certificate_count(&b_card.card.id).await, 0);
    assert!(!s.code_used(&b_card.code.code).await);
    let a_enrolment = a_phone
        .home
        .enrolment()
        .expect("read")
        .expect("A is still enrolled");
    assert_eq!(a_enrolment.uid, a_uid);
    vsc_authenticator::unlock_keys(&a_phone.home, &crate::common::passcode())
        .await
        .expect("A's keys are untouched");

    // B on B's own phone: the activation was not consumed.
    let b_phone = Phone::new();
    s.enrol(&b_phone, &b_card.code.url)
        .await
        .expect("B enrols on B's own phone");

    let events = s
        .assert_audited("card.enrol", "device_bound_to_other_person", 2)
        .await;
    assert!(events.iter().all(|e| e.subject == b_card.card.id));
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapproved_malformed_and_simulated_apps_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (_, card) = s.person_with_card(t, "X26").await;
    let code = card.code.code.clone();
    let csrs = Csrs::generate();
    let before = s.snapshot().await;

    let mut old = enrol_request(&code, "device-old-app-000001", &csrs);
    old.device.app_version = "0.0.1".to_owned();
    assert_api_error(s.enrol_raw(&old).await, 403, "app_version_not_approved");

    let mut garbled = enrol_request(&code, "device-bad-version-01", &csrs);
    garbled.device.app_version = "one.two".to_owned();
    assert_api_error(s.enrol_raw(&garbled).await, 400, "app_version_malformed");

    let short_id = enrol_request(&code, "short", &csrs);
    assert_api_error(s.enrol_raw(&short_id).await, 400, "device_id_malformed");

    let simulated = Phone::new();
    assert_flow_error(
        vsc_authenticator::enrol(
            &simulated.home,
            &card.code.url,
            None,
            None,
            &passcode(),
            true,
        )
        .await,
        403,
        "simulated_device_refused",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "refused apps");
    assert_eq!(s.card_state(&card.card.id).await, "pending");
    assert!(!s.code_used(&code).await);
    assert!(simulated.home.enrolment().expect("read").is_none());

    // A real phone with this release enrols with the same code.
    s.enrol(&Phone::new(), &card.code.url)
        .await
        .expect("an approved real phone enrols");

    for code in [
        "app_version_not_approved",
        "app_version_malformed",
        "device_id_malformed",
        "simulated_device_refused",
    ] {
        s.assert_audited("card.enrol", code, 1).await;
    }
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_accepts_simulated_phones() {
    let s = start_with(|config| config.sandbox = true).await;
    let phone = Phone::new();
    let enrolled = vsc_authenticator::enrol(
        &phone.home,
        &s.bootstrap.activation.url,
        None,
        None,
        &passcode(),
        true,
    )
    .await
    .expect("a sandbox accepts a simulated phone");
    let (simulated,): (i64,) = sqlx::query_as("SELECT simulated FROM devices WHERE device_id = $1")
        .bind(phone.device_id())
        .fetch_one(s.state.store().pool())
        .await
        .expect("device row");
    assert_eq!(simulated, 1, "stored as a simulated phone");
    assert_eq!(s.card_state(&enrolled.card_id).await, "active");
    s.assert_audit_intact().await;
}

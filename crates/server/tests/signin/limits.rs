//! Limits on a card: one open request at a time (the same workstation replaces its own), a cap
//! per window, a lock after repeated failures within a window (successes in between do not
//! reset the count) until an RA unlocks the card, and a block after the holder reports a
//! request they did not make.

use vsc_authenticator::PhoneLink;
use vsc_proto::CardWithCode;
use vsc_proto::signin::PendingAuthRequest;

use crate::common::{
    TestServer, assert_api_error, assert_flow_error, auth_context, other_number, passcode, start,
    start_with,
};

async fn only_pending(link: &PhoneLink) -> PendingAuthRequest {
    let mut pending = link.pending(5).await.expect("the phone reads its requests");
    assert_eq!(pending.len(), 1, "{pending:?}");
    pending.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_open_request_per_card_and_a_cap_per_window() {
    let s = start_with(|cfg| cfg.signin.requests_per_window = 3).await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;

    let first = s.open_request(&uid, "pc-1").await;
    // Another workstation cannot ask while the phone has a request on screen.
    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-2")).await,
        409,
        "request_already_open",
    );
    s.assert_audited("auth.request", "request_already_open", 1)
        .await;
    assert_eq!(s.outcome(&first, 0).await.state, "pending");

    // The same workstation asking again replaces its own request.
    let second = s.open_request(&uid, "pc-1").await;
    assert_eq!(s.outcome(&first, 0).await.state, "superseded");
    let pending = s.try_device_pending(&token).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        vec![second.request_id.as_str()]
    );
    let requested = s.audit_events("auth.requested").await;
    assert!(
        requested
            .last()
            .expect("audited")
            .detail
            .contains(&first.request_id),
        "the replacement names what it superseded: {requested:?}"
    );

    // Three requests per ten minutes.
    let _third = s.open_request(&uid, "pc-1").await;
    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-1")).await,
        429,
        "too_many_requests",
    );
    s.assert_audited("auth.request", "too_many_requests", 1)
        .await;
    s.clock.advance(time::Duration::minutes(11));
    s.open_request(&uid, "pc-2").await;
    assert_eq!(s.session_count().await, 0);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_card_until_an_ra_unlocks_it() {
    let s = start_with(|cfg| cfg.signin.failure_limit = 3).await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    let link = PhoneLink::new(&phone.home).expect("the phone's link");

    for n in 1..=3 {
        let created = s.open_request(&uid, "pc-1").await;
        let request = only_pending(&link).await;
        let wrong = other_number(created.number, n as u8);
        assert_flow_error(
            link.approve(&request, wrong, &passcode()).await,
            403,
            "wrong_number",
        );
        assert_eq!(s.card_failures(&card).await, n);
        assert_eq!(s.outcome(&created, 0).await.state, "failed");
    }
    let failed = s.assert_audited("auth.failed", "wrong_number", 3).await;
    assert!(
        failed[2].detail.contains("\"card_locked\":true"),
        "{failed:?}"
    );
    assert_eq!(s.card_state(&card).await, "locked");
    let locked = s.audit_events("card.locked").await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0].subject, card);

    // Locking ends the card's sessions and refuses new requests.
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-1")).await,
        403,
        "card_locked",
    );
    s.assert_audited("auth.request", "card_locked", 1).await;
    assert_eq!(s.session_count().await, 1);

    // An RA issues an unlock code; the phone redeems it; sign-in works again.
    let unlock: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("the RA unlocks the card");
    vsc_authenticator::redeem_unlock(&phone.home, &unlock.code.url, &passcode())
        .await
        .expect("the phone redeems the unlock code");
    assert_eq!(s.card_state(&card).await, "active");
    assert_eq!(s.card_failures(&card).await, 0);
    assert_eq!(s.audit_events("card.unlocked").await.len(), 1);
    let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    s.validate(&ticket).await.expect("a new session");
    assert_eq!(s.session_count().await, 2);
    s.assert_audit_intact().await;
}

/// One failed sign-in: a request answered with a wrong number.
async fn fail_once(s: &TestServer, link: &PhoneLink, uid: &str) {
    let created = s.open_request(uid, "pc-1").await;
    let request = only_pending(link).await;
    assert_flow_error(
        link.approve(&request, other_number(created.number, 3), &passcode())
            .await,
        403,
        "wrong_number",
    );
}

/// The attack: a guesser who also gets the person to approve now and then (or approves a
/// request of their own) used to reset the count of consecutive failures with every success,
/// so guessing never locked the card. Failures now count within a window, successes or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_between_successes_still_lock_the_card() {
    let s = start_with(|cfg| cfg.signin.failure_limit = 3).await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let link = PhoneLink::new(&phone.home).expect("the phone's link");

    // Fail, succeed, fail, succeed, fail: the third failure locks the card.
    for n in 1..=2 {
        fail_once(&s, &link, &uid).await;
        assert_eq!(s.card_failures(&card).await, n);
        let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
        s.validate(&ticket).await.expect("the success signs in");
        assert_eq!(
            s.card_failures(&card).await,
            n,
            "a success does not clear the failures"
        );
        assert_eq!(s.card_state(&card).await, "active");
    }
    fail_once(&s, &link, &uid).await;
    assert_eq!(s.card_state(&card).await, "locked");
    let failed = s.assert_audited("auth.failed", "wrong_number", 3).await;
    assert!(
        failed[2].detail.contains("\"failures_in_window\":3")
            && failed[2].detail.contains("\"card_locked\":true"),
        "{failed:?}"
    );
    assert_eq!(s.audit_events("card.locked").await.len(), 1);
    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-1")).await,
        403,
        "card_locked",
    );
    s.assert_audit_intact().await;
}

/// Failures older than the window no longer count; the window is configurable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_older_than_the_window_do_not_count() {
    let s = start_with(|cfg| {
        cfg.signin.failure_limit = 2;
        cfg.signin.failure_window = time::Duration::minutes(30);
    })
    .await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let link = PhoneLink::new(&phone.home).expect("the phone's link");

    fail_once(&s, &link, &uid).await;
    s.clock.advance(time::Duration::minutes(31));
    fail_once(&s, &link, &uid).await;
    assert_eq!(
        s.card_state(&card).await,
        "active",
        "one failure in the window"
    );
    assert_eq!(s.card_failures(&card).await, 1, "the old one is forgotten");
    s.clock.advance(time::Duration::minutes(29));
    fail_once(&s, &link, &uid).await;
    assert_eq!(s.card_state(&card).await, "locked", "two within 30 minutes");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_me_raises_an_alert_and_blocks_the_card_for_an_hour() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let link = PhoneLink::new(&phone.home).expect("the phone's link");

    // A plain decline blocks nothing.
    let declined = s.open_request(&uid, "pc-1").await;
    link.decline(&declined.request_id, false)
        .await
        .expect("decline");
    assert_eq!(s.outcome(&declined, 0).await.state, "declined");
    assert!(s.audit_events("alert.not_me").await.is_empty());

    // "I didn't do this".
    let reported = s.open_request(&uid, "pc-1").await;
    link.decline(&reported.request_id, true)
        .await
        .expect("report the request");
    let seen = s.outcome(&reported, 0).await;
    assert_eq!((seen.state.as_str(), seen.ticket), ("reported", None));
    let alerts = s.audit_events("alert.not_me").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].outcome, "failure");
    assert_eq!(alerts[0].subject, uid);
    assert!(alerts[0].detail.contains(&reported.request_id));
    assert_eq!(s.card_state(&card).await, "active");

    let message = assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-1")).await,
        403,
        "card_blocked",
    );
    assert!(message.contains("60 more minutes"), "{message}");
    s.clock.advance(time::Duration::minutes(59));
    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-2")).await,
        403,
        "card_blocked",
    );
    s.assert_audited("auth.request", "card_blocked", 2).await;
    assert_eq!(s.session_count().await, 0);

    s.clock.advance(time::Duration::minutes(2));
    let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    s.validate(&ticket)
        .await
        .expect("signed in after the block");
    assert_eq!(s.session_count().await, 1);
    s.assert_audit_intact().await;
}

//! Approvals the server must refuse: replayed, late, with the wrong number, signed by another
//! card's key or over another context, sent from another person's phone, or for a card that
//! was cancelled meanwhile. Each refusal is audited and creates no session. The phone is never
//! told the number: the person types what the workstation shows.

use vsc_proto::CancelCard;
use vsc_proto::signin::ApproveAuthRequest;

use crate::common::{
    approval_statement_with, assert_api_error, auth_context, other_number, sign_with_card, start,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_late_and_wrong_number_approvals_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;

    // The same signed approval posted twice: the second is a replay.
    let first = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &first.request_id).await;
    let body = s.signed_approval(&phone, &pending, first.number).await;
    let approved = s
        .approve_raw(&token, &first.request_id, &body)
        .await
        .expect("the genuine approval");
    assert_eq!(approved.state, "approved");
    assert_api_error(
        s.approve_raw(&token, &first.request_id, &body).await,
        409,
        "request_already_decided",
    );
    s.assert_audited("auth.approve", "request_already_decided", 1)
        .await;
    assert_eq!(s.session_count().await, 0, "approving creates no session");
    let collected = s.outcome(&first, 0).await;
    assert!(collected.ticket.is_some(), "the agent collects one ticket");
    assert_api_error(
        s.approve_raw(&token, &first.request_id, &body).await,
        409,
        "request_already_decided",
    );
    s.assert_audited("auth.approve", "request_already_decided", 2)
        .await;
    assert_eq!(s.session_count().await, 1);

    // Approved after the request expired (requests live 2 minutes).
    let late = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &late.request_id).await;
    let body = s.signed_approval(&phone, &pending, late.number).await;
    s.clock.advance(time::Duration::minutes(3));
    assert_api_error(
        s.approve_raw(&token, &late.request_id, &body).await,
        410,
        "request_expired",
    );
    s.assert_audited("auth.approve", "request_expired", 1).await;
    assert_eq!(s.outcome(&late, 0).await.state, "expired");
    assert!(
        s.try_device_pending(&token).await.unwrap().is_empty(),
        "an expired request is no longer offered to the phone"
    );
    assert_eq!(s.session_count().await, 1);

    // A wrong number: refused, and the request is dead.
    let wrong = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &wrong.request_id).await;
    let wrong_number = other_number(wrong.number, 0);
    let body = s.signed_approval(&phone, &pending, wrong_number).await;
    assert_api_error(
        s.approve_raw(&token, &wrong.request_id, &body).await,
        403,
        "wrong_number",
    );
    let events = s.assert_audited("auth.failed", "wrong_number", 1).await;
    assert_eq!(events[0].actor, uid);
    assert_eq!(s.request_state(&wrong.request_id).await, "failed");
    assert_eq!(s.card_failures(&card).await, 1);
    let right = s.signed_approval(&phone, &pending, wrong.number).await;
    assert_api_error(
        s.approve_raw(&token, &wrong.request_id, &right).await,
        409,
        "request_already_decided",
    );
    s.assert_audited("auth.approve", "request_already_decided", 3)
        .await;
    let seen = s.outcome(&wrong, 0).await;
    assert_eq!((seen.state.as_str(), seen.ticket), ("failed", None));
    assert_eq!(s.session_count().await, 1);
    assert_eq!(s.card_state(&card).await, "active");

    // Approved in time, but not collected within a minute of the request's expiry: no ticket.
    let uncollected = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &uncollected.request_id).await;
    let body = s
        .signed_approval(&phone, &pending, uncollected.number)
        .await;
    s.approve_raw(&token, &uncollected.request_id, &body)
        .await
        .expect("approved in time");
    s.clock.advance(time::Duration::minutes(4));
    let seen = s.outcome(&uncollected, 0).await;
    assert_eq!((seen.state.as_str(), seen.ticket), ("expired", None));
    assert_eq!(s.session_count().await, 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_with_the_wrong_key_device_or_context_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let (_other_uid, _other_card, other_phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let other_token = s.device_token(&other_phone).await;

    // Signed by another enrolled person's card key, sent from the right phone.
    let created = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let forged = s
        .signed_approval(&other_phone, &pending, created.number)
        .await;
    assert_api_error(
        s.approve_raw(&token, &created.request_id, &forged).await,
        401,
        "signature_invalid",
    );
    s.assert_audited("auth.failed", "signature_invalid", 1)
        .await;
    assert_eq!(s.request_state(&created.request_id).await, "failed");
    assert_eq!(s.outcome(&created, 0).await.state, "failed");
    assert_eq!(s.card_failures(&card).await, 1);

    // A genuine approval sent from another person's phone.
    let created = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let genuine = s.signed_approval(&phone, &pending, created.number).await;
    assert_api_error(
        s.approve_raw(&other_token, &created.request_id, &genuine)
            .await,
        403,
        "request_not_for_this_device",
    );
    let events = s
        .assert_audited("auth.approve", "request_not_for_this_device", 1)
        .await;
    assert_eq!(events[0].subject, created.request_id);
    assert!(
        s.try_device_pending(&other_token).await.unwrap().is_empty(),
        "another person's phone is not offered the request"
    );
    // That changed nothing: the request is still pending and its own phone approves it.
    assert_eq!(s.request_state(&created.request_id).await, "pending");
    assert_eq!(s.session_count().await, 0);
    s.approve_raw(&token, &created.request_id, &genuine)
        .await
        .expect("the card's own phone approves");
    assert_eq!(
        s.card_failures(&card).await,
        1,
        "a success does not clear earlier failures"
    );

    // Signed over a context other than the one the request carries.
    let created = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let mut shown = auth_context("pc-1");
    shown.workstation_name = "SOMEONE-ELSES-PC".to_owned();
    let tampered_digest = vsc_proto::signin::context_digest(&shown, pending.created_at);
    assert_ne!(tampered_digest, pending.context_digest);
    let statement = approval_statement_with(
        &pending,
        &tampered_digest,
        created.number,
        &s.state.origin(),
    );
    let tampered = ApproveAuthRequest {
        number: created.number,
        signature: sign_with_card(&phone.home, statement).await,
    };
    assert_api_error(
        s.approve_raw(&token, &created.request_id, &tampered).await,
        401,
        "signature_invalid",
    );
    s.assert_audited("auth.failed", "signature_invalid", 2)
        .await;
    assert_eq!(s.request_state(&created.request_id).await, "failed");

    // A signature that is not even base64.
    let created = s.open_request(&uid, "pc-1").await;
    assert_api_error(
        s.approve_raw(
            &token,
            &created.request_id,
            &ApproveAuthRequest {
                number: created.number,
                signature: "not base64!".to_owned(),
            },
        )
        .await,
        400,
        "signature_malformed",
    );
    s.assert_audited("auth.approve", "signature_malformed", 1)
        .await;
    assert_eq!(s.request_state(&created.request_id).await, "pending");
    assert_eq!(s.session_count().await, 0);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_card_gets_no_requests_and_cannot_approve_open_ones() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    let token = s.device_token(&phone).await;
    let opened_before = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &opened_before.request_id).await;
    let body = s
        .signed_approval(&phone, &pending, opened_before.number)
        .await;

    let _: vsc_proto::Card = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card}/cancel"),
            &CancelCard {
                reason_code: Some("cessation-of-operation".to_owned()),
                reason: "left the trust".to_owned(),
                invalidity_date: None,
            },
        )
        .await
        .expect("the RA cancels the card");
    assert_eq!(s.card_state(&card).await, "revoked");
    // Cancelling ends the card's sessions ("card removal").
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    s.assert_audited("ticket.validate", "session_ended", 1)
        .await;

    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-1")).await,
        404,
        "no_active_card",
    );
    let events = s.assert_audited("auth.request", "no_active_card", 1).await;
    assert_eq!(events[0].subject, uid);
    assert_api_error(
        s.approve_raw(&token, &opened_before.request_id, &body)
            .await,
        403,
        "card_not_active",
    );
    s.assert_audited("auth.approve", "card_not_active", 1).await;
    assert_ne!(s.outcome(&opened_before, 0).await.state, "collected");
    assert_eq!(s.session_count().await, 1, "no new session");
    s.assert_audit_intact().await;
}

/// The attack: a phone (or whoever holds its device token) that is shown a short list of numbers
/// guesses right 1 time in 3. Now nothing the server sends the phone carries the number: the
/// pending request (long-poll and event stream alike) has no number or choices, a blind guess
/// fails the request at once and counts against the card, and the right number afterwards is too
/// late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_is_never_told_the_number_and_a_guess_fails_the_request() {
    let s = crate::common::start_with(|cfg| cfg.sandbox = true).await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    for simulated in [false, true] {
        let (uid, card, phone) = s.enrolled_person_as(t, "RX1", simulated).await;
        let token = s.device_token(&phone).await;
        let created = s.open_request(&uid, "pc-1").await;
        // What the phone receives, as raw JSON: no number in any form.
        let raw: serde_json::Value = s
            .get(Some(&token), "/api/v1/device/requests")
            .await
            .expect("the phone reads its pending requests");
        let request = raw
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r.as_object())
            .expect("one pending request");
        for key in ["number", "choices", "hint_number"] {
            assert!(
                !request.contains_key(key),
                "the phone (simulated: {simulated}) is told '{key}': {raw}"
            );
        }
        // Nor under another name: no field holds the number, as a number or as text.
        let padded = format!("{:02}", created.number);
        assert!(
            !request
                .values()
                .any(|v| v.as_u64() == Some(u64::from(created.number))
                    || v.as_str() == Some(padded.as_str())
                    || v.as_str() == Some(created.number.to_string().as_str())),
            "no field carries the number: {raw}"
        );
        // A blind guess: refused, the request is dead, and it counts.
        let pending = s.pending_request(&token, &created.request_id).await;
        let guess = s
            .signed_approval(&phone, &pending, other_number(created.number, 7))
            .await;
        assert_api_error(
            s.approve_raw(&token, &created.request_id, &guess).await,
            403,
            "wrong_number",
        );
        assert_eq!(s.request_state(&created.request_id).await, "failed");
        assert_eq!(s.card_failures(&card).await, 1);
        let right = s.signed_approval(&phone, &pending, created.number).await;
        assert_api_error(
            s.approve_raw(&token, &created.request_id, &right).await,
            409,
            "request_already_decided",
        );
        let seen = s.outcome(&created, 0).await;
        assert_eq!((seen.state.as_str(), seen.ticket), ("failed", None));
    }
    assert_eq!(s.session_count().await, 0);
    s.assert_audited("auth.failed", "wrong_number", 2).await;
    s.assert_audit_intact().await;
}

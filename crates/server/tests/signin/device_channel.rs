//! The phone's channel: device tokens are given only for a signature by the enrolled device key
//! and expire; the number is hinted only to a simulated phone on a sandbox server; a request
//! made while the phone was offline reaches it when it connects.

use std::time::Duration;

use tokio::time::timeout;
use vsc_authenticator::{DeviceEvent, DeviceKey, PhoneLink};
use vsc_proto::signin::{ApproveAuthRequest, PendingAuthRequest};

use crate::common::{Phone, assert_api_error, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_need_the_device_key_and_expire() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;

    // A device the server does not know. (Not asserted: this refusal, and the refused device
    // tokens below, are not written to the audit log — reported.)
    let stranger = Phone::new();
    assert_api_error(
        s.try_device_challenge(&stranger.device_id()).await,
        404,
        "unknown_device",
    );

    // Signed by another key, or the right key over other bytes.
    let other_key = DeviceKey::generate(&phone.device_id()).expect("a key");
    assert_api_error(
        s.try_device_token_signed_by(&phone, |st| other_key.sign(st).unwrap())
            .await,
        401,
        "signature_invalid",
    );
    let key = phone.home.device_key().unwrap().expect("device key");
    assert_api_error(
        s.try_device_token_signed_by(&phone, |st| {
            let mut other = st.to_vec();
            other.extend_from_slice(b"extra");
            key.sign(&other).unwrap()
        })
        .await,
        401,
        "signature_invalid",
    );
    let events = s
        .assert_audited("device.token", "signature_invalid", 2)
        .await;
    assert_eq!(events[0].subject, phone.device_id());
    let issued = s.audit_events("device.token.issued").await;
    assert!(issued.is_empty(), "{issued:?}");

    // Without a token, and with a token past its 15 minutes.
    assert_api_error(
        s.get::<Vec<PendingAuthRequest>>(None, "/api/v1/device/requests")
            .await,
        401,
        "device_unauthenticated",
    );
    let token = s.device_token(&phone).await;
    let created = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let body = s.signed_approval(&phone, &pending, created.number).await;
    s.clock.advance(time::Duration::minutes(16));
    assert_api_error(
        s.try_device_pending(&token).await,
        401,
        "device_token_expired",
    );
    assert_api_error(
        s.approve_raw(&token, &created.request_id, &body).await,
        401,
        "device_token_expired",
    );
    assert_api_error(
        s.approve_raw(
            "not-a-token",
            &created.request_id,
            &ApproveAuthRequest {
                number: created.number,
                signature: body.signature.clone(),
            },
        )
        .await,
        401,
        "device_token_expired",
    );
    assert_eq!(s.session_count().await, 0);
    // A new token works.
    let token = s.device_token(&phone).await;
    s.try_device_pending(&token)
        .await
        .expect("a fresh token works");
    s.assert_audit_intact().await;
}

/// A sandbox server used to send a simulated phone the right number (`hint_number`); now no
/// phone, simulated or not, is told it, on the long-poll or the event stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phone_is_told_the_number_not_even_a_simulated_one() {
    let s = start_with(|cfg| cfg.sandbox = true).await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (sim_uid, _, sim_phone) = s.enrolled_person_as(t, "RX1", true).await;
    let (real_uid, _, real_phone) = s.enrolled_person_as(t, "RX1", false).await;

    for (uid, phone, workstation) in [
        (&sim_uid, &sim_phone, "pc-1"),
        (&real_uid, &real_phone, "pc-2"),
    ] {
        let created = s.open_request(uid, workstation).await;
        let token = s.device_token(phone).await;
        let raw: serde_json::Value = s
            .get(Some(&token), "/api/v1/device/requests")
            .await
            .expect("pending");
        let text = raw.to_string();
        for key in ["\"number\"", "\"hint_number\"", "\"choices\""] {
            assert!(!text.contains(key), "{key} sent to the phone: {text}");
        }
        // Not in the event stream either (read raw, as it comes over the wire).
        let url = s.url.join("api/v1/device/events").expect("events URL");
        let mut response = s
            .raw_http()
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("event stream");
        let mut seen = String::new();
        while !seen.contains(&created.request_id) {
            let chunk = timeout(Duration::from_secs(2), response.chunk())
                .await
                .expect("the pending request is sent on connect")
                .expect("stream open")
                .expect("a chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        for key in ["\"number\"", "\"hint_number\"", "\"choices\""] {
            assert!(!seen.contains(key), "{key} in the event stream: {seen}");
        }
    }
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_while_the_phone_was_offline_arrives_when_it_connects() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let created = s.open_request(&uid, "pc-1").await;

    let link = PhoneLink::new(&phone.home).expect("link");
    let mut listener = link.listener();
    let event = timeout(Duration::from_secs(2), listener.next())
        .await
        .expect("delivered on connect")
        .expect("listening");
    let DeviceEvent::Request(request) = event else {
        panic!("expected the request, got {event:?}");
    };
    assert_eq!(request.request_id, created.request_id);
    link.approve(&request, created.number, &crate::common::passcode())
        .await
        .expect("approve");
    let collected = s.outcome(&created, 5).await;
    assert!(collected.ticket.is_some());
    assert_eq!(s.session_count().await, 1);
    s.assert_audit_intact().await;
}

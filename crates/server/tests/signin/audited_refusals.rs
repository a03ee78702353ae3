//! Refusals before the caller is known are audited too: an agent's poll without the right
//! request secret, a phone's call with a bad device token, a session call with a bad ticket, a
//! device challenge for a device the server does not know. None of them changes anything.

use vsc_proto::signin::{AuthRequestOutcome, PendingAuthRequest, SessionInfo};

use crate::common::{Phone, assert_api_error, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_unknown_callers_are_audited() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let created = s.open_request(&ram.uid, "pc-1").await;
    let before = s.snapshot().await;

    // The agent's poll: a wrong secret, no secret, an id that does not exist.
    let mut guessed = created.clone();
    guessed.poll_secret = "not-the-secret".to_owned();
    assert_api_error(s.try_outcome(&guessed, 0).await, 404, "unknown_request");
    let events = s.assert_audited("auth.poll", "unknown_request", 1).await;
    assert_eq!(events[0].subject, created.request_id);
    let path = format!("/api/v1/auth/requests/{}?wait=0", created.request_id);
    assert_api_error(
        s.client
            .get_json_with_headers::<AuthRequestOutcome>(&path, &[])
            .await,
        401,
        "request_secret_missing",
    );
    s.assert_audited("auth.poll", "request_secret_missing", 1)
        .await;
    let mut unknown = created.clone();
    unknown.request_id = "no-such-request".to_owned();
    assert_api_error(s.try_outcome(&unknown, 0).await, 404, "unknown_request");
    s.assert_audited("auth.poll", "unknown_request", 2).await;
    assert_eq!(s.request_state(&created.request_id).await, "pending");

    // The phone's calls with a token the server never gave, and with none.
    assert_api_error(
        s.try_device_pending("garbage-device-token").await,
        401,
        "device_token_expired",
    );
    let events = s
        .assert_audited("device.session", "device_token_expired", 1)
        .await;
    assert_eq!(events[0].subject, "/api/v1/device/requests");
    assert_api_error(
        s.get::<Vec<PendingAuthRequest>>(None, "/api/v1/device/requests")
            .await,
        401,
        "device_unauthenticated",
    );
    s.assert_audited("device.session", "device_unauthenticated", 1)
        .await;

    // A session call with a ticket the server never gave, and with none.
    assert_api_error(
        s.session_info("garbage-ticket").await,
        401,
        "ticket_invalid",
    );
    let events = s
        .assert_audited("session.ticket", "ticket_invalid", 1)
        .await;
    assert_eq!(events[0].subject, "/api/v1/session");
    assert_api_error(
        s.get::<SessionInfo>(None, "/api/v1/session").await,
        401,
        "ticket_missing",
    );
    s.assert_audited("session.ticket", "ticket_missing", 1)
        .await;

    // Logout with a ticket the server never gave is refused. (Not asserted: that refusal is
    // not written to the audit log, unlike the other ticket refusals — reported.)
    let (status, body) = s.logout("garbage-ticket").await;
    assert_eq!(status, 401, "{body:?}");
    assert_eq!(
        body.expect("an error body")["error"]["code"],
        "ticket_invalid"
    );

    // A device challenge for a device that never enrolled.
    let stranger = Phone::new().device_id();
    assert_api_error(
        s.try_device_challenge(&stranger).await,
        404,
        "unknown_device",
    );
    let events = s
        .assert_audited("device.challenge", "unknown_device", 1)
        .await;
    assert_eq!(events[0].subject, stranger);

    s.assert_unchanged(&before, &s.snapshot().await, "refusals of unknown callers");
    assert_eq!(s.session_count().await, 0);
    // The genuine agent still reads its request.
    assert_eq!(s.outcome(&created, 0).await.state, "pending");
    s.assert_audit_intact().await;
}

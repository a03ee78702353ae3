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

/// The `refusals.aggregated` events, with their detail parsed.
async fn aggregated(s: &crate::common::TestServer) -> Vec<serde_json::Value> {
    s.audit_events("refusals.aggregated")
        .await
        .into_iter()
        .map(|e| serde_json::from_str(&e.detail).expect("JSON detail"))
        .collect()
}

/// A flood of bad requests from one address before authentication: a few are written one by one,
/// the rest are counted and written as one `refusals.aggregated` event whose count is the whole
/// flood; an attacker's long string ends in the log cut and marked. (On the old code each of the
/// N refusals was a row of its own, carrying the whole string.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_refusals_is_counted_not_written() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let created = s.open_request(&ram.uid, "pc-1").await;

    // The first refusal carries a 4,000-byte request id of the attacker's choosing.
    let mut long = created.clone();
    long.request_id = "z".repeat(4000);
    assert_api_error(s.try_outcome(&long, 0).await, 404, "unknown_request");
    let events = s.assert_audited("auth.poll", "unknown_request", 1).await;
    let marker = "…[truncated, 4000 bytes]";
    assert_eq!(events[0].subject, format!("{}{marker}", "z".repeat(256)));

    // Then the flood: N wrong poll secrets from the same address.
    const N: u64 = 300;
    let mut guessed = created.clone();
    guessed.poll_secret = "not-the-secret".to_owned();
    for _ in 1..N {
        assert_api_error(s.try_outcome(&guessed, 0).await, 404, "unknown_request");
    }
    let individual = s.audit_failures_with("auth.poll", "unknown_request").await;
    assert_eq!(
        individual.len(),
        10,
        "only the first ten are rows of their own"
    );
    assert!(aggregated(&s).await.is_empty(), "the interval is not over");

    // Once the interval is over, one event counts the whole flood.
    s.clock.advance(time::Duration::seconds(61));
    s.state.flush_refusals(false).await;
    let summary = aggregated(&s).await;
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0]["action"], "auth.poll");
    assert_eq!(summary[0]["error"], "unknown_request");
    assert_eq!(summary[0]["count"], N);
    assert_eq!(summary[0]["written_individually"], 10);
    assert!(summary[0]["first_at_ms"].as_i64() <= summary[0]["last_at_ms"].as_i64());

    // A second flood in a new interval, written at shutdown (flush of everything).
    for _ in 0..25 {
        assert_api_error(s.try_outcome(&guessed, 0).await, 404, "unknown_request");
    }
    assert_eq!(
        s.audit_failures_with("auth.poll", "unknown_request")
            .await
            .len(),
        20
    );
    s.state.flush_refusals(true).await;
    let summary = aggregated(&s).await;
    assert_eq!(summary.len(), 2);
    assert_eq!(summary[1]["count"], 25);

    // The honest agent is not affected.
    assert_eq!(s.outcome(&created, 0).await.state, "pending");
    s.assert_audit_intact().await;
}

/// Refusals of an authenticated caller are still written one by one, however many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_refusals_are_still_audited_individually() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let token = s.device_token(&ram.phone).await;
    for _ in 0..15 {
        let refused = s.decline_raw(&token, "no-such-request", "declined").await;
        assert!(refused.is_err(), "{refused:?}");
    }
    let events = s.audit_failures("auth.decline").await;
    assert_eq!(events.len(), 15, "{events:?}");
    assert!(events.iter().all(|e| e.actor == ram.uid));
    s.state.flush_refusals(true).await;
    assert!(aggregated(&s).await.is_empty());
    s.assert_audit_intact().await;
}

/// Three refusals that were answered but left out of the audit log: cancelling a request that is
/// already decided, choosing a role on a session that ended meanwhile, and asking for a signing
/// request the session does not have. Each is now a failure event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_once_left_out_of_the_log_are_audited() {
    use std::sync::Arc;
    use vsc_proto::signin::{SelectRole, SessionInfo};

    let s = Arc::new(start().await);
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position(t, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .expect("a position at RX1");
    let (created, auth) = s.sign_in_agent(&phone, &uid, "pc-1").await;

    // Cancelling the request after it was approved and collected.
    let path = format!("/api/v1/auth/requests/{}/cancel", created.request_id);
    assert_api_error(
        s.client
            .post_json_with_headers::<_, AuthRequestOutcome>(
                &path,
                &serde_json::json!({}),
                &[("X-Vsc-Request-Secret", &created.poll_secret)],
            )
            .await,
        409,
        "request_already_decided",
    );
    let events = s
        .assert_audited("auth.cancel", "request_already_decided", 1)
        .await;
    assert_eq!(events[0].subject, uid);

    // A signing request this session does not have.
    assert_api_error(
        s.agent_get::<vsc_proto::signing::SigningOutcome>(
            &auth,
            "/api/v1/signing/requests/no-such-request?wait=0",
        )
        .await,
        404,
        "unknown_signing_request",
    );
    let events = s
        .assert_audited("signing.outcome", "unknown_signing_request", 1)
        .await;
    assert_eq!(events[0].subject, "no-such-request");
    assert_eq!(events[0].actor, uid);

    // A role change that passes the ticket check, then finds the session ended (by a logout
    // committed while the change waited for the write lock).
    let info: SessionInfo = s
        .agent_get(&auth, "/api/v1/session")
        .await
        .expect("the session");
    let position = info.roles[0].position_id.clone();
    let mut lock = s.hold_write_lock().await;
    let change = {
        let (s, auth) = (s.clone(), auth.clone());
        tokio::spawn(async move {
            s.agent_post::<_, SessionInfo>(
                &auth,
                // `touch=false`: the ticket check only reads, so the request gets past it
                // while the lock is held and waits in the handler's own transaction.
                "/api/v1/session/role?touch=false",
                &SelectRole {
                    position_id: position,
                },
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query("UPDATE sessions SET ended_at = $1 WHERE ended_at IS NULL")
        .bind(s.state.now_unix())
        .execute(&mut *lock)
        .await
        .expect("end the session");
    lock.commit().await.expect("commit the logout");
    assert_api_error(change.await.expect("role task"), 401, "session_ended");
    s.assert_audited("session.role", "session_ended", 1).await;
    s.assert_audit_intact().await;
}

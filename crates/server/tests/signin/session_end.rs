//! Looking at a session without using it (`?touch=false`) does not keep it alive; logout
//! answers in JSON whether or not the session had already ended, and records its end even after
//! the session timed out.

use time::Duration;

use crate::common::{assert_api_error, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looking_without_touching_does_not_move_the_idle_deadline() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let (_, looked) = s.sign_in(&ram.phone, &ram.uid, "pc-1").await;
    let (_, used) = s.sign_in(&ram.phone, &ram.uid, "pc-2").await;
    let deadline = s
        .session_look(&looked)
        .await
        .expect("look at the session")
        .idle_expires_at;

    // Ten minutes on: a look keeps the deadline, a plain read moves it.
    s.clock.advance(Duration::minutes(10));
    let seen = s.session_look(&looked).await.expect("still live");
    assert_eq!(seen.idle_expires_at, deadline, "a look is not use");
    let before = s.session_info(&used).await.expect("still live");
    let now = s.state.now();
    assert!(
        (before.idle_expires_at - (now + Duration::minutes(15)))
            .whole_seconds()
            .abs()
            <= 5,
        "a plain read is use: {before:?}"
    );

    // Six more: fifteen minutes after its last use the looked-at session has timed out, the
    // used one has not.
    s.clock.advance(Duration::minutes(6));
    assert_api_error(s.session_look(&looked).await, 401, "session_idle_timeout");
    s.assert_audited("session.ticket", "session_idle_timeout", 1)
        .await;
    assert_api_error(s.validate(&looked).await, 401, "session_idle_timeout");
    s.session_look(&used)
        .await
        .expect("used six minutes ago: live");
    s.validate(&used)
        .await
        .expect("used six minutes ago: valid");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_answers_json_and_records_the_end_even_after_a_timeout() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;

    let (request, ticket) = s.sign_in(&ram.phone, &ram.uid, "pc-1").await;
    let (status, body) = s.logout(&ticket).await;
    assert_eq!(
        (status, body),
        (
            200,
            Some(serde_json::json!({"ended": true, "already_ended": false}))
        )
    );
    let ended_at = s.state.now_unix();
    let (at, reason) = s.session_end(&request.request_id).await;
    assert!(at.is_some_and(|at| (at - ended_at).abs() <= 5), "{at:?}");
    assert_eq!(reason.as_deref(), Some("logout"));
    let (status, body) = s.logout(&ticket).await;
    assert_eq!(
        (status, body),
        (
            200,
            Some(serde_json::json!({"ended": true, "already_ended": true}))
        )
    );
    assert_eq!(
        s.session_end(&request.request_id).await,
        (at, reason),
        "a second logout changes nothing"
    );
    assert_eq!(s.audit_events("session.ended").await.len(), 1);

    // Idle for sixteen minutes, then logged out: the end is still recorded, at the logout.
    let (request, ticket) = s.sign_in(&ram.phone, &ram.uid, "pc-2").await;
    s.clock.advance(Duration::minutes(16));
    assert_api_error(s.session_look(&ticket).await, 401, "session_idle_timeout");
    let (status, body) = s.logout(&ticket).await;
    assert_eq!(
        (status, body),
        (
            200,
            Some(serde_json::json!({"ended": true, "already_ended": false}))
        )
    );
    let logged_out = s.state.now_unix();
    let (at, reason) = s.session_end(&request.request_id).await;
    assert!(
        at.is_some_and(|at| (at - logged_out).abs() <= 5),
        "ended_at records the logout: {at:?}, logged out at {logged_out}"
    );
    assert_eq!(reason.as_deref(), Some("logout"));
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    assert_eq!(s.audit_events("session.ended").await.len(), 2);
    assert_eq!(s.session_count().await, 2);
    s.assert_audit_intact().await;
}

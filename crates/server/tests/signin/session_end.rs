//! Looking at a session without using it (`?touch=false`) does not keep it alive; logout
//! answers in JSON whether or not the session had already ended, and records its end even after
//! the session timed out; only the identity agent (ticket and agent key) may log out or change
//! the role, not a relying system that saw the ticket; "I didn't do this" ends every live
//! session of the card.

use time::Duration;
use vsc_authenticator::PhoneLink;
use vsc_proto::signin::{SelectRole, SessionInfo};

use crate::common::{AgentAuth, assert_api_error, start};

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

    let (request, auth) = s.sign_in_agent(&ram.phone, &ram.uid, "pc-1").await;
    let (status, body) = s.logout_agent(&auth).await;
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
    let (status, body) = s.logout_agent(&auth).await;
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
    let (request, auth) = s.sign_in_agent(&ram.phone, &ram.uid, "pc-2").await;
    let ticket = auth.ticket.clone();
    s.clock.advance(Duration::minutes(16));
    assert_api_error(s.session_look(&ticket).await, 401, "session_idle_timeout");
    let (status, body) = s.logout_agent(&auth).await;
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

/// The attack: a relying system (or anyone it leaks the ticket to) holds only the ticket; it
/// used to be able to switch the person's role (act as them in a role they did not choose) or
/// log them out. Both now need the session's agent key, which only the identity agent holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_alone_cannot_change_the_role_or_log_out() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position(t, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .expect("first position");
    let person = s
        .assign_position(t, &uid, "RX1", "S8000:G8000:R8001")
        .await
        .expect("second position");
    let (request, auth) = s.sign_in_agent(&phone, &uid, "pc-1").await;
    let position = person.positions[1].id.clone();
    let choose = SelectRole {
        position_id: position.clone(),
    };
    let wrong_key = AgentAuth {
        ticket: auth.ticket.clone(),
        key: "not-the-agent-key".to_owned(),
    };

    // The relying system: ticket only, or ticket with a made-up key.
    assert_api_error(
        s.post::<_, SessionInfo>(Some(&auth.ticket), "/api/v1/session/role", &choose)
            .await,
        401,
        "agent_key_required",
    );
    assert_api_error(
        s.agent_post::<_, SessionInfo>(&wrong_key, "/api/v1/session/role", &choose)
            .await,
        401,
        "agent_key_required",
    );
    s.assert_audited("session.agent_key", "agent_key_required", 2)
        .await;
    let (status, body) = s.logout(&auth.ticket).await;
    assert_eq!(status, 401, "{body:?}");
    assert_eq!(
        body.as_ref().and_then(|b| b["error"]["code"].as_str()),
        Some("agent_key_required"),
        "{body:?}"
    );
    let (status, body) = s.logout_with(&auth.ticket, Some("not-the-agent-key")).await;
    assert_eq!(
        (
            status,
            body.as_ref().and_then(|b| b["error"]["code"].as_str())
        ),
        (401, Some("agent_key_required")),
        "{body:?}"
    );
    s.assert_audited("session.logout", "agent_key_required", 2)
        .await;
    // Nothing changed: no role, the session live, no end recorded.
    let validation = s.validate(&auth.ticket).await.expect("still live");
    assert_eq!(validation.role, None);
    assert_eq!(s.session_end(&request.request_id).await, (None, None));
    assert!(s.audit_events("session.role_selected").await.is_empty());
    assert!(s.audit_events("session.ended").await.is_empty());

    // The identity agent still does both.
    let info: SessionInfo = s
        .agent_post(&auth, "/api/v1/session/role", &choose)
        .await
        .expect("the agent chooses the role");
    assert_eq!(
        info.selected_role.map(|r| r.position_id),
        Some(position.clone())
    );
    let (status, body) = s.logout_agent(&auth).await;
    assert_eq!(
        (status, body),
        (
            200,
            Some(serde_json::json!({"ended": true, "already_ended": false}))
        )
    );
    assert_api_error(s.validate(&auth.ticket).await, 401, "session_ended");
    s.assert_audit_intact().await;
}

/// The attack: someone signed in with the person's card (an approval given by mistake, or a
/// ticket taken) keeps working while the person reports the next request as "I didn't do this".
/// The report now ends every live session of the card, each end audited with the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_did_not_do_this_ends_every_live_session_of_the_card() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let (other_uid, _, other_phone) = s.enrolled_person(t, "RX1").await;
    let (first, one) = s.sign_in(&phone, &uid, "pc-1").await;
    let (second, two) = s.sign_in(&phone, &uid, "pc-2").await;
    // Another person's session is not touched.
    let (_, bystander) = s.sign_in(&other_phone, &other_uid, "pc-3").await;

    let reported = s.open_request(&uid, "pc-9").await;
    PhoneLink::new(&phone.home)
        .expect("link")
        .decline(&reported.request_id, true)
        .await
        .expect("report the request");

    for (request, ticket) in [(&first, &one), (&second, &two)] {
        assert_api_error(s.validate(ticket).await, 401, "session_ended");
        let (at, reason) = s.session_end(&request.request_id).await;
        assert!(at.is_some());
        assert_eq!(reason.as_deref(), Some("not-me-reported"));
    }
    s.validate(&bystander)
        .await
        .expect("another card's session goes on");
    let ended = s.audit_events("session.ended").await;
    assert_eq!(ended.len(), 2, "{ended:?}");
    let alert = s.audit_events("alert.not_me").await;
    assert_eq!(alert.len(), 1);
    // One transaction: the failure, the two ends and the alert are consecutive events.
    let failed = s.audit_failures("auth.failed").await;
    assert_eq!(failed.len(), 1);
    let mut seqs = vec![failed[0].seq, ended[0].seq, ended[1].seq, alert[0].seq];
    seqs.sort_unstable();
    assert_eq!(seqs[3] - seqs[0], 3, "written together: {seqs:?}");
    for e in &ended {
        assert!(e.detail.contains(&reported.request_id), "{e:?}");
        assert!(e.detail.contains("not-me-reported"), "{e:?}");
    }
    s.assert_audit_intact().await;
}

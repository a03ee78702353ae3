//! The whole sign-in: the agent opens a request, the phone hears it over server-sent events,
//! the person types the number the workstation shows, the agent collects the ticket once, relying systems
//! validate it, the role is chosen when there is a choice, and logout ends it.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::timeout;
use vsc_authenticator::{DeviceEvent, ListenNotice, PhoneLink, Transport};
use vsc_proto::signin::{SelectRole, SessionInfo, SessionRole};

use crate::common::{AgentAuth, assert_api_error, auth_context, passcode, start};

fn seconds_between(a: OffsetDateTime, b: OffsetDateTime) -> i64 {
    (a - b).whole_seconds().abs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_approves_over_sse_and_the_ticket_validates_until_logout() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let person = s
        .assign_position(t, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .expect("assign the person's one position");
    let position = person.positions[0].clone();

    // The phone listens over server-sent events; requests reach it through a channel.
    let link = PhoneLink::new(&phone.home).expect("the phone's link");
    let (connected_tx, mut connected) = tokio::sync::watch::channel(false);
    let mut listener = link.listener().on_notice(move |notice| {
        if *notice == ListenNotice::Connected(Transport::ServerSentEvents) {
            connected_tx.send_replace(true);
        }
    });
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let listening = tokio::spawn(async move {
        loop {
            let event = listener.next().await;
            let end = event.is_err();
            if events_tx.send(event).is_err() || end {
                break;
            }
        }
    });
    timeout(Duration::from_secs(5), connected.wait_for(|c| *c))
        .await
        .expect("the phone connects")
        .expect("the listener runs");

    let created = s.open_request(&uid, "pc-1").await;
    let event = timeout(Duration::from_secs(1), events.recv())
        .await
        .expect("the request reaches the phone within a second")
        .expect("the listener runs")
        .expect("a request");
    let DeviceEvent::Request(request) = event else {
        panic!("expected a request, got {event:?}");
    };
    assert_eq!(request.request_id, created.request_id);
    assert_eq!(request.uid, uid);
    // The phone sees the registered workstation (its id, name and organisation) and the
    // address the server saw, not what the agent's context claims.
    let ws = s.workstation("pc-1").await;
    assert_eq!(
        request.context,
        vsc_proto::signin::AuthContext {
            workstation_id: ws.id.clone(),
            client_address: "127.0.0.1".into(),
            registered: true,
            organisation: s.state.national_ods().into(),
            organisation_name: ws.enrolled.organisation_name.clone(),
            ..auth_context("pc-1")
        }
    );
    vsc_authenticator::check_request(&request, OffsetDateTime::now_utc())
        .expect("a genuine request passes the phone's checks");
    assert_eq!(s.outcome(&created, 0).await.state, "pending");

    // The agent long-polls while the person approves; the poll wakes with the ticket.
    let (approved, collected) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            link.approve(&request, created.number, &passcode()).await
        },
        s.outcome(&created, 10),
    );
    approved.expect("the right number approves");
    assert_eq!(collected.state, "collected");
    let ticket = collected.ticket.expect("a ticket, the first time");
    let auth = AgentAuth {
        ticket: ticket.clone(),
        key: collected
            .agent_key
            .clone()
            .expect("the agent key, with the ticket"),
    };
    let session = collected
        .session
        .expect("the session comes with the ticket");
    let expected_role = SessionRole {
        position_id: position.id.clone(),
        role_code: "S8000:G8000:R8000".to_owned(),
        role_name: position.role_name.clone(),
        organisation: "RX1".to_owned(),
        organisation_name: "Trust RX1".to_owned(),
        activities: vec!["B0570".to_owned()],
    };
    assert_eq!(session.uid, uid);
    assert_eq!(
        session.selected_role.as_ref(),
        Some(&expected_role),
        "one position: chosen by itself"
    );
    assert_eq!(session.roles, vec![expected_role.clone()]);
    let now = s.state.now();
    assert!(seconds_between(session.auth_time, now) <= 5, "{session:?}");
    assert!(seconds_between(session.idle_expires_at, now + time::Duration::minutes(15)) <= 5);
    assert!(seconds_between(session.expires_at, now + time::Duration::hours(12)) <= 5);

    // The ticket is handed out once.
    let again = s.outcome(&created, 0).await;
    assert_eq!((again.state.as_str(), again.ticket), ("collected", None));
    // The phone hears that the request closed.
    let closed = timeout(Duration::from_secs(2), events.recv())
        .await
        .expect("the closing reaches the phone")
        .expect("the listener runs")
        .expect("an event");
    assert_eq!(
        closed,
        DeviceEvent::Closed {
            request_id: created.request_id.clone(),
            state: "approved".to_owned()
        }
    );

    // A relying system validates the ticket.
    let validation = s.validate(&ticket).await.expect("the ticket validates");
    assert_eq!(validation.uid, uid);
    assert_eq!(validation.given_name, "Test");
    assert_eq!(validation.family_name, "Person of RX1");
    assert_eq!(validation.role, Some(expected_role.clone()));
    assert_eq!(validation.level_of_assurance, "AAL2");
    assert_eq!(validation.auth_time, session.auth_time);
    assert_eq!(validation.expires_at, session.expires_at);
    let info: SessionInfo = s
        .session_info(&ticket)
        .await
        .expect("the holder reads the session");
    assert_eq!(info.uid, uid);
    assert_eq!(info.selected_role, Some(expected_role));
    assert_eq!(s.session_count().await, 1);
    assert_eq!(s.audit_events("auth.approved").await.len(), 1);
    assert_eq!(s.audit_events("session.created").await.len(), 1);

    // Logout ends it at once.
    let (status, body) = s.logout_agent(&auth).await;
    assert!(
        matches!(status, 200 | 204),
        "logout: HTTP {status} {body:?}"
    );
    if let Some(body) = &body {
        assert_eq!(body["ended"], true, "{body}");
        assert_eq!(body["already_ended"], false, "{body}");
    }
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    assert_api_error(s.session_info(&ticket).await, 401, "session_ended");
    s.assert_audited("ticket.validate", "session_ended", 1)
        .await;
    // Logging out again ends nothing more.
    let (status, body) = s.logout_agent(&auth).await;
    match status {
        200 => assert_eq!(body.expect("a body")["already_ended"], true),
        _ => assert_eq!(status, 401, "{body:?}"),
    }
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    assert_eq!(s.audit_events("session.ended").await.len(), 1);
    assert_eq!(s.session_count().await, 1);
    listening.abort();
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_positions_the_role_is_chosen_after_sign_in() {
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
    assert_eq!(person.positions.len(), 2);
    let chosen = person
        .positions
        .iter()
        .find(|p| p.role_code == "S8000:G8000:R8001")
        .expect("the second position")
        .clone();

    let (_, auth) = s.sign_in_agent(&phone, &uid, "pc-1").await;
    let ticket = auth.ticket.clone();
    let validation = s.validate(&ticket).await.expect("the ticket validates");
    assert_eq!(validation.role, None, "no role until one is chosen");
    let info = s.session_info(&ticket).await.expect("session");
    assert_eq!(info.selected_role, None);
    assert_eq!(info.roles.len(), 2);

    // A position that is not the person's is refused.
    assert_api_error(
        s.agent_post::<_, SessionInfo>(
            &auth,
            "/api/v1/session/role",
            &SelectRole {
                position_id: "not-a-position".to_owned(),
            },
        )
        .await,
        400,
        "unknown_role",
    );
    s.assert_audited("session.role", "unknown_role", 1).await;
    assert_eq!(s.validate(&ticket).await.expect("validates").role, None);

    let info: SessionInfo = s
        .agent_post(
            &auth,
            "/api/v1/session/role",
            &SelectRole {
                position_id: chosen.id.clone(),
            },
        )
        .await
        .expect("the holder chooses a role");
    let selected = info.selected_role.expect("the chosen role");
    assert_eq!(selected.position_id, chosen.id);
    let validation = s.validate(&ticket).await.expect("the ticket validates");
    assert_eq!(validation.role, Some(selected));
    assert_eq!(s.audit_events("session.role_selected").await.len(), 1);
    assert_eq!(s.session_count().await, 1);
    s.assert_audit_intact().await;
}

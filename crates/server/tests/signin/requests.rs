//! Sign-in requests the agent cannot open: nobody with an active card, a malformed UID, a
//! malformed context; and guessing UIDs from one address is throttled.

use vsc_proto::signin::{AuthContext, AuthRequestOutcome};

use crate::common::{assert_api_error, auth_context, start};

async fn count_requests(s: &crate::common::TestServer) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM auth_requests")
        .fetch_one(s.state.store().pool())
        .await
        .expect("count requests");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_nobody_or_with_malformed_input_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, _phone) = s.enrolled_person(t, "RX1").await;
    let without_card = s.create_person(t, "RX1").await;
    let (pending_card, _) = s.person_with_card(t, "RX1").await;
    let ctx = auth_context("pc-1");
    // Both test workstations register before this address is throttled below.
    s.workstation("pc-1").await;
    s.workstation("pc-2").await;

    // Nobody to ask: no such person, no card, a card not yet enrolled.
    for who in ["999999999999", without_card.as_str(), pending_card.as_str()] {
        assert_api_error(s.try_open_request(who, &ctx).await, 404, "no_active_card");
        let events = s
            .audit_failures_with("auth.request", "no_active_card")
            .await;
        assert_eq!(
            events.iter().filter(|e| e.subject == who).count(),
            1,
            "{who}: {events:?}"
        );
    }

    // Malformed UIDs.
    for bad in ["12345", "12345678901a", "", "1234567890123"] {
        assert_api_error(s.try_open_request(bad, &ctx).await, 400, "invalid_uid");
    }
    s.assert_audited("auth.request", "invalid_uid", 4).await;

    // Malformed contexts.
    let malformed: Vec<(&str, AuthContext)> = vec![
        (
            "empty workstation id",
            AuthContext {
                workstation_id: String::new(),
                ..ctx.clone()
            },
        ),
        (
            "blank workstation id",
            AuthContext {
                workstation_id: "   ".to_owned(),
                ..ctx.clone()
            },
        ),
        (
            "control character in the name",
            AuthContext {
                workstation_name: "WARD-7\u{1b}[2J-PC".to_owned(),
                ..ctx.clone()
            },
        ),
        (
            "newline in the purpose",
            AuthContext {
                purpose: "Sign in\nApprove everything".to_owned(),
                ..ctx.clone()
            },
        ),
        (
            "empty agent version",
            AuthContext {
                agent_version: String::new(),
                ..ctx.clone()
            },
        ),
        (
            "over-long address",
            AuthContext {
                client_address: "1".repeat(201),
                ..ctx.clone()
            },
        ),
    ];
    // From a registered workstation, so that only the context is wrong. (Registered or not,
    // the context the agent sends is checked; a registered workstation's id, name and address
    // are then replaced by the registry's and the address the server sees.)
    let ws = s.workstation("pc-1").await;
    for (what, bad) in &malformed {
        let result = s.try_open_request_from(&ws, &uid, bad).await;
        assert!(result.is_err(), "{what}: accepted");
        assert_api_error(result, 400, "invalid_context");
    }
    s.assert_audited("auth.request", "invalid_context", malformed.len())
        .await;
    assert_eq!(count_requests(&s).await, 0, "no request was stored");
    assert_eq!(s.session_count().await, 0);

    // An empty client address is allowed (the agent may not know it).
    let created = s
        .try_open_request(
            &uid,
            &AuthContext {
                client_address: String::new(),
                ..ctx.clone()
            },
        )
        .await
        .expect("a context without a client address");
    assert_eq!(s.request_state(&created.request_id).await, "pending");
    let (shown,): (String,) = sqlx::query_as("SELECT context FROM auth_requests WHERE id = $1")
        .bind(&created.request_id)
        .fetch_one(s.state.store().pool())
        .await
        .expect("stored context");
    let shown: AuthContext = serde_json::from_str(&shown).expect("context JSON");
    assert_eq!(
        shown.client_address, "127.0.0.1",
        "the phone is shown the address the server saw"
    );

    // Only the agent holding the request's secret reads its outcome. (Not asserted: these
    // refusals are not written to the audit log — reported.)
    let path = format!("/api/v1/auth/requests/{}", created.request_id);
    assert_api_error(
        s.client
            .get_json_with_headers::<AuthRequestOutcome>(&path, &[])
            .await,
        401,
        "request_secret_missing",
    );
    assert_api_error(
        s.client
            .get_json_with_headers::<AuthRequestOutcome>(
                &path,
                &[("X-Vsc-Request-Secret", "not-the-secret")],
            )
            .await,
        404,
        "unknown_request",
    );

    // Seven wrong UIDs so far; the tenth from this address closes the door for 15 minutes,
    // even for a person who has a card.
    for n in 0..3 {
        assert_api_error(
            s.try_open_request(&format!("99999999990{n}"), &ctx).await,
            404,
            "no_active_card",
        );
    }
    assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-2")).await,
        429,
        "too_many_attempts",
    );
    // Not asserted: the throttled refusal is not written to the audit log (reported).
    s.clock.advance(time::Duration::minutes(16));
    s.try_open_request(&uid, &auth_context("pc-2"))
        .await
        .expect("allowed again after 15 minutes");
    assert_eq!(s.session_count().await, 0);
    s.assert_audit_intact().await;
}

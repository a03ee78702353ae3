//! Stopping the server with long-polls open (the agent waiting for its request's outcome, a
//! phone waiting for requests): each is answered at once with what is true now, and the graceful
//! shutdown does not wait out their 30 seconds or its own 10-second limit.

use std::time::Duration;

use vsc_proto::signin::{AuthRequestOutcome, PendingAuthRequest};

use crate::common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_long_polls_are_answered_and_do_not_hold_up_shutdown() {
    let mut s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    // The agent waits on a request for one person; another person's phone, with nothing
    // pending (so its long-poll waits), waits for requests.
    let (uid, _card, _phone) = s.enrolled_person(t, "RX1").await;
    let created = s.open_request(&uid, "pc-1").await;
    let idle_token = s.device_token(&ram.phone).await;
    assert!(s.try_device_pending(&idle_token).await.unwrap().is_empty());

    let agent = {
        let client = s.client.clone();
        let path = format!("/api/v1/auth/requests/{}?wait=30", created.request_id);
        let secret = created.poll_secret.clone();
        tokio::spawn(async move {
            client
                .get_json_with_headers::<AuthRequestOutcome>(
                    &path,
                    &[("X-Vsc-Request-Secret", &secret)],
                )
                .await
        })
    };
    let phone = {
        let client = s.client.clone();
        tokio::spawn(async move {
            client
                .get_json::<Vec<PendingAuthRequest>>(
                    "/api/v1/device/requests?wait=30",
                    Some(&idle_token),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !agent.is_finished() && !phone.is_finished(),
        "both long-polls are still waiting when the server stops"
    );
    // The store closes with the server: check the audit chain first.
    s.assert_audit_intact().await;

    let took = s.stop(Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(5),
        "the server took {took:?} to stop with two long-polls open"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(2), agent)
        .await
        .expect("the agent's poll has ended")
        .expect("agent task");
    let outcome = outcome.expect("the agent's poll is answered, not cut off");
    assert_eq!(
        (outcome.state.as_str(), outcome.ticket),
        ("pending", None),
        "the agent hears its request is still pending"
    );
    let pending = tokio::time::timeout(Duration::from_secs(2), phone)
        .await
        .expect("the phone's poll has ended")
        .expect("phone task")
        .expect("the phone's poll is answered, not cut off");
    assert!(pending.is_empty(), "{pending:?}");
}

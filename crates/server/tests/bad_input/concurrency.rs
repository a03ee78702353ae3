//! Races on one activation code: whatever the interleaving, exactly one enrolment wins and the
//! card gets exactly its two certificates.

use crate::common::CARD_CERTIFICATES;
use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;
use vsc_proto::EnrolResponse;

use crate::common::{Csrs, Phone, TestServer, enrol_request, passcode, server_code, start};

const RACERS: usize = 8;

async fn successes(s: &TestServer, card_id: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'card.enrolled' AND subject = $1 AND outcome = 'success'",
    )
    .bind(card_id)
    .fetch_one(s.state.store().pool())
    .await
    .expect("count enrolments");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_activation_code_enrols_exactly_once() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();

    // Eight phones running the real app on one link.
    let (_, card) = s.person_with_card(t, "X26").await;
    let mut racers = JoinSet::new();
    for _ in 0..RACERS {
        let link = card.code.url.clone();
        racers.spawn(async move {
            let phone = Phone::new();
            let result =
                vsc_authenticator::enrol(&phone.home, &link, None, None, &passcode(), false).await;
            (phone, result)
        });
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    while let Some(joined) = racers.join_next().await {
        let (phone, result) = joined.expect("racer task");
        match result {
            Ok(enrolled) => winners.push((phone, enrolled)),
            Err(e) => {
                let (status, code) = server_code(&e).unwrap_or_else(|| panic!("{e:?}"));
                assert!(
                    code.starts_with("activation_") && (400..500).contains(&status),
                    "HTTP {status} {code}"
                );
                assert!(phone.home.enrolment().expect("read").is_none());
                losers.push(code);
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one enrolment wins; losers: {losers:?}"
    );
    assert!(losers.iter().all(|c| c == "activation_used"), "{losers:?}");
    let (phone, enrolled) = &winners[0];
    assert_eq!(enrolled.card_id, card.card.id);
    assert_eq!(s.certificate_count(&card.card.id).await, CARD_CERTIFICATES);
    let stored = s.card(t, &card.card.id).await;
    assert_eq!(stored.state, "active");
    assert_eq!(
        stored.device_id.as_deref(),
        Some(phone.device_id().as_str())
    );
    assert_eq!(successes(&s, &card.card.id).await, 1);

    // Eight hand-made requests released together, each with its own fresh keys.
    let (_, card) = s.person_with_card(t, "X26").await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for i in 0..RACERS {
        let request = enrol_request(
            &card.code.code,
            &format!("device-racer-{i:08}"),
            &Csrs::generate(),
        );
        let client = s.client.clone();
        let barrier = barrier.clone();
        racers.spawn(async move {
            barrier.wait().await;
            client
                .post_json::<_, EnrolResponse>("/api/v1/enrol", &request, None)
                .await
        });
    }
    let mut won = 0;
    while let Some(joined) = racers.join_next().await {
        match joined.expect("racer task") {
            Ok(_) => won += 1,
            Err(vsc_authenticator::ClientError::Server { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (410, "activation_used"));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one hand-made enrolment wins");
    assert_eq!(s.certificate_count(&card.card.id).await, 2);
    assert_eq!(s.card_state(&card.card.id).await, "active");
    assert_eq!(successes(&s, &card.card.id).await, 1);

    // Refusals before authentication from one address: the first ten of a reason in a minute
    // are events of their own, and the aggregated event counts all of them.
    let refused = 2 * (RACERS - 1);
    s.assert_audited("card.enrol", "activation_used", refused.min(10))
        .await;
    s.state.flush_refusals(true).await;
    let counted: u64 = s
        .audit_events("refusals.aggregated")
        .await
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.detail).expect("JSON detail"))
        .filter(|d| d["action"] == "card.enrol" && d["error"] == "activation_used")
        .map(|d| d["count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(counted, if refused > 10 { refused as u64 } else { 0 });
    s.assert_audit_intact().await;
}

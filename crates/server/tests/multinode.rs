//! Two `vsc serve` nodes of one instance on one PostgreSQL database, in-process on loopback:
//! node B starts from a copy of node A's data directory and the same database URL, as an
//! operator adds a node. The phone is connected to one node and the agent to the other; events
//! cross between them (LISTEN/NOTIFY), throttles count across them, and killing a node in the
//! middle of a sign-in leaves nothing half-written.
//!
//! These tests need PostgreSQL: they run when `VSC_TEST_POSTGRES` names a server (the test
//! command's second run) and otherwise say why they are skipped and pass.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{TestServer, assert_api_error, auth_context, passcode, start};
use tokio::time::timeout;
use vsc_authenticator::PhoneLink;
use vsc_proto::signin::AuthRequestOutcome;

/// Whether the tests can run (a PostgreSQL server to make databases on).
fn postgres_available() -> bool {
    if std::env::var_os("VSC_TEST_POSTGRES").is_some() {
        return true;
    }
    eprintln!(
        "skipped: several nodes need a shared PostgreSQL database; set VSC_TEST_POSTGRES=postgres://USER@HOST:PORT/postgres to run this test"
    );
    false
}

/// The audit chain verifies with no gap, and every session has its `session.created` event.
async fn assert_consistent(node: &TestServer) {
    let report = vsc_store::audit::verify(node.state.store()).await.unwrap();
    assert_eq!(report.first_broken, None, "the audit chain is broken");
    let (max_seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
        .fetch_one(node.state.store().pool())
        .await
        .unwrap();
    assert_eq!(
        report.events,
        u64::try_from(max_seq).unwrap(),
        "one chain, no gaps"
    );
    let sessions: Vec<(String,)> = sqlx::query_as("SELECT request_id FROM sessions")
        .fetch_all(node.state.store().pool())
        .await
        .unwrap();
    let created = node.audit_events("session.created").await;
    assert_eq!(created.len(), sessions.len(), "a session without its event");
    for (request_id,) in sessions {
        assert!(
            created.iter().any(|e| e.detail.contains(&request_id)),
            "the session of request {request_id} has no session.created event"
        );
    }
}

/// The agent's poll of `created` on `node` (waiting up to `wait` seconds, with the
/// workstation's collect signature), in a task of its own, so the test can act meanwhile.
fn spawn_poll(
    node: &TestServer,
    ws: &common::TestWorkstation,
    created: &vsc_proto::signin::AuthRequestCreated,
    wait: u64,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let http = node.raw_http();
    let url = node
        .url
        .join(&format!(
            "api/v1/auth/requests/{}?wait={wait}",
            created.request_id
        ))
        .unwrap();
    let secret = created.poll_secret.clone();
    let signature = ws.collect_signature(created, &node.origin());
    tokio::spawn(async move {
        http.get(url)
            .header("X-Vsc-Request-Secret", secret)
            .header(vsc_proto::signin::WORKSTATION_SIGNATURE_HEADER, signature)
            .send()
            .await
    })
}

/// Reads the event stream `response` until `needle` arrives; how long that took.
async fn read_until(response: &mut reqwest::Response, needle: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains(needle) {
        let left = limit.saturating_sub(started.elapsed());
        let chunk = timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle} not received within {limit:?}; got {seen}"))
            .expect("the stream stays open")
            .expect("a chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_serve_one_instance_and_survive_losing_one() {
    if !postgres_available() {
        return;
    }
    let a = start().await;
    let ram = a.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    a.create_org(t, "RX1").await;
    let (uid, card_id, phone) = a.enrolled_person(t, "RX1").await;

    // Node B joins: same CA, no second bootstrap (start_node asserts both).
    let mut b = a.start_node().await;
    assert_eq!(b.fp, a.fp);
    assert_eq!(a.audit_events("instance.bootstrapped").await.len(), 1);
    assert_eq!(a.audit_events("organisation.created").await.len(), 2);

    // The phone listens on A's event stream; the stream is subscribed once the headers are in.
    let token = a.device_token(&phone).await;
    let mut stream = a
        .raw_http()
        .get(a.url.join("api/v1/device/events").unwrap())
        .bearer_auth(&token)
        .send()
        .await
        .expect("the event stream on A");
    assert!(stream.status().is_success());

    // The agent opens its request on B; the phone on A hears of it within a second.
    let created = b.open_request(&uid, "pc-b").await;
    let took = read_until(&mut stream, &created.request_id, Duration::from_secs(1)).await;
    eprintln!("request opened on B reached the phone on A in {took:?}");

    // The agent long-polls B while the phone approves on A: B hears of the decision at once.
    let link = PhoneLink::new(&phone.home).unwrap();
    let request = link
        .pending(0)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.request_id == created.request_id)
        .expect("pending on A");
    let (outcome, ()) = tokio::join!(
        async {
            let started = Instant::now();
            let outcome = b.outcome(&created, 20).await;
            (outcome, started.elapsed())
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            link.approve(&request, created.number, &passcode())
                .await
                .expect("the phone approves on A");
        }
    );
    let (outcome, waited) = outcome;
    assert_eq!(outcome.state, "collected");
    assert!(
        waited < Duration::from_secs(3),
        "B's long poll waited {waited:?} for a decision made on A"
    );
    // The ticket B issued validates on A.
    let ticket = outcome.ticket.expect("a ticket");
    let validated = a.validate(&ticket).await.expect("A validates B's ticket");
    assert_eq!(validated.uid, uid);
    drop(stream);

    // Both nodes write at once: sign-ins on A, requests and refusals on B. One chain.
    let (uid2, _card2, phone2) = a.enrolled_person(t, "RX1").await;
    let (uid3, _card3, _phone3) = a.enrolled_person(t, "RX1").await;
    tokio::join!(
        async {
            for _ in 0..4 {
                a.sign_in(&phone2, &uid2, "pc-a").await;
            }
        },
        async {
            for _ in 0..4 {
                b.open_request(&uid3, "pc-b").await;
                assert_api_error(
                    b.try_open_request_unregistered(&uid3, &auth_context("pc-x"))
                        .await,
                    403,
                    "workstation_not_registered",
                );
            }
        }
    );
    assert_consistent(&a).await;

    // Kill B in the middle of a sign-in: the agent opened its request on B and is waiting on B.
    let ws = b.workstation("pc-b").await;
    let created = b.open_request(&uid, "pc-b").await;
    let poll = spawn_poll(&b, &ws, &created, 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill().await;
    // The agent's wait on B ends without a ticket.
    // (Depending on where the kill caught it, the connection drops or answers "pending".)
    let ended = timeout(Duration::from_secs(15), poll)
        .await
        .expect("the long poll ends");
    if let Ok(Ok(response)) = ended {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        eprintln!("the agent's long poll on the killed node ended with {status} {body}");
        assert!(
            !body.contains("\"ticket\":\""),
            "a dead node issued a ticket: {status} {body}"
        );
    } else {
        eprintln!("the agent's long poll on the killed node ended with {ended:?}");
    }
    // Nothing half-written: the request is still pending, no session for it.
    assert_eq!(a.request_state(&created.request_id).await, "pending");
    assert_consistent(&a).await;

    // The phone (on A) approves; the agent retries against the surviving node and collects.
    let request = link
        .pending(0)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.request_id == created.request_id)
        .expect("still pending on A");
    link.approve(&request, created.number, &passcode())
        .await
        .expect("the phone approves on A");
    let signature = ws.collect_signature(&created, &a.origin());
    let outcome: AuthRequestOutcome = a
        .try_outcome_signed(&created, 5, Some(&signature))
        .await
        .expect("the agent collects from A");
    assert_eq!(outcome.state, "collected");
    assert!(a.validate(&outcome.ticket.unwrap()).await.is_ok());

    // Kill a node in the middle of a write: node C collects an approved request and dies after
    // its transaction has written the session but before its audit event is in (the test holds
    // it there with an uncommitted row at the next audit sequence number, on a connection that
    // takes no write lock); PostgreSQL then sees C's connection die, as when a process dies.
    let mut c = a.start_node().await;
    let ws_c = c.workstation("pc-c").await;
    let created = c.open_request(&uid, "pc-c").await;
    let request = link
        .pending(0)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.request_id == created.request_id)
        .expect("pending on A");
    link.approve(&request, created.number, &passcode())
        .await
        .expect("the phone approves on A");
    let mut blocker = a.state.store().pool().begin().await.unwrap();
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events")
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (seq, at_ms, actor, action, subject, organisation, source, outcome, detail, prev_hash, hash)
         VALUES ($1, 0, 'test', 'test.blocker', '', '', '', 'success', '{}', '', '')",
    )
    .bind(next)
    .execute(&mut *blocker)
    .await
    .unwrap();
    let collect = spawn_poll(&c, &ws_c, &created, 0);
    let stuck = Instant::now();
    let pid = loop {
        let waiting: Option<(i32,)> = sqlx::query_as(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event = 'transactionid' AND pid <> pg_backend_pid()",
        )
        .fetch_optional(a.state.store().pool())
        .await
        .unwrap();
        if let Some((pid,)) = waiting {
            break pid;
        }
        assert!(
            stuck.elapsed() < Duration::from_secs(5),
            "C's collection reaches its audit event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // C's session row is written but not committed; its connection dies now.
    let (terminated,): (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(a.state.store().pool())
        .await
        .unwrap();
    assert!(terminated);
    c.kill().await;
    blocker.rollback().await.unwrap();
    let answered = timeout(Duration::from_secs(15), collect)
        .await
        .expect("the collection on C ends");
    if let Ok(Ok(response)) = answered {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        eprintln!("the collection on the killed node ended with {status} {body}");
        assert!(
            !body.contains("\"ticket\":\""),
            "a dead node issued a ticket: {status} {body}"
        );
    }
    // Nothing of C's transaction remains: still approved, no session, one intact chain.
    assert_eq!(a.request_state(&created.request_id).await, "approved");
    let (sessions,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE request_id = $1")
        .bind(&created.request_id)
        .fetch_one(a.state.store().pool())
        .await
        .unwrap();
    assert_eq!(sessions, 0, "a session without its audit event");
    assert_consistent(&a).await;
    // The agent retries on the surviving node and gets its ticket.
    let signature = ws_c.collect_signature(&created, &a.origin());
    let outcome = a
        .try_outcome_signed(&created, 5, Some(&signature))
        .await
        .expect("the agent collects from A");
    assert_eq!(outcome.state, "collected");
    assert!(a.validate(&outcome.ticket.unwrap()).await.is_ok());

    // And the next sign-in runs on the surviving node alone.
    let (_, ticket) = a.sign_in(&phone, &uid, "pc-a").await;
    assert!(a.validate(&ticket).await.is_ok());
    assert_eq!(a.card_state(&card_id).await, "active");
    assert_consistent(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttles_count_across_nodes() {
    if !postgres_available() {
        return;
    }
    let a = start().await;
    let ram = a.enrol_bootstrap_ram().await;
    a.create_org(&ram.token, "RX1").await;
    let (uid, _card, _phone) = a.enrolled_person(&ram.token, "RX1").await;
    let b = a.start_node().await;
    // Register the workstations first: their codes are not guesses.
    a.workstation("pc-a").await;
    b.workstation("pc-b").await;
    let on = |node: &TestServer| {
        auth_context(if std::ptr::eq(node, &a) {
            "pc-a"
        } else {
            "pc-b"
        })
    };

    // Ten wrong UIDs from one address, five on each node: each node alone saw only five.
    for n in 0..5 {
        for node in [&a, &b] {
            assert_api_error(
                node.try_open_request(&format!("99999999990{n}"), &on(node))
                    .await,
                404,
                "no_active_card",
            );
        }
    }
    // The address is now shut out on both nodes, even for a person who has a card.
    for node in [&a, &b] {
        assert_api_error(
            node.try_open_request(&uid, &on(node)).await,
            429,
            "too_many_attempts",
        );
    }
    // Until the window has passed.
    a.clock.advance(time::Duration::minutes(16));
    b.try_open_request(&uid, &on(&b))
        .await
        .expect("allowed again after 15 minutes");
    assert_consistent(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_cross_again_after_the_listening_connection_drops() {
    if !postgres_available() {
        return;
    }
    let a = start().await;
    let ram = a.enrol_bootstrap_ram().await;
    a.create_org(&ram.token, "RX1").await;
    let (uid, _card, phone) = a.enrolled_person(&ram.token, "RX1").await;
    let b = a.start_node().await;
    let token = a.device_token(&phone).await;
    let mut stream = a
        .raw_http()
        .get(a.url.join("api/v1/device/events").unwrap())
        .bearer_auth(&token)
        .send()
        .await
        .expect("the event stream on A");

    // Both nodes listen (B may still be connecting: it was just started).
    let listening = || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(a.state.store().pool())
        .await
        .unwrap();
        n
    };
    let started = Instant::now();
    while listening().await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "both nodes listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The database drops both nodes' listening connections (as a failover or restart would).
    let (dropped,): (i64,) = sqlx::query_as(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(a.state.store().pool())
    .await
    .unwrap();
    assert_eq!(dropped, 2, "one listening connection per node");

    // A reconnects and tells its waiters to re-read what they may have missed.
    read_until(&mut stream, "event: resync", Duration::from_secs(5)).await;
    // B has reconnected too by now (same delay); its events reach the phone on A again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let created = b.open_request(&uid, "pc-b").await;
    read_until(&mut stream, &created.request_id, Duration::from_secs(1)).await;
    assert_consistent(&a).await;
}

//! Races: of eight concurrent approvals of one request exactly one wins, of eight concurrent
//! collections exactly one gets the ticket and exactly one session exists, and of eight
//! workstations asking at once exactly one opens a request.

use std::sync::Arc;

use crate::common::{assert_api_error, auth_context, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_approval_and_one_ticket_out_of_eight_racing() {
    let s = Arc::new(start().await);
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let created = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let body = s.signed_approval(&phone, &pending, created.number).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let approvals: Vec<_> = (0..8)
        .map(|_| {
            let (s, barrier, token, body) =
                (s.clone(), barrier.clone(), token.clone(), body.clone());
            let id = created.request_id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                s.approve_raw(&token, &id, &body).await
            })
        })
        .collect();
    let mut won = 0;
    for task in approvals {
        match task.await.expect("approval task") {
            Ok(outcome) => {
                assert_eq!(outcome.state, "approved");
                won += 1;
            }
            refused => {
                assert_api_error(refused, 409, "request_already_decided");
            }
        }
    }
    assert_eq!(won, 1, "exactly one approval wins");
    s.assert_audited("auth.approve", "request_already_decided", 7)
        .await;
    assert_eq!(s.audit_events("auth.approved").await.len(), 1);
    assert_eq!(s.session_count().await, 0);

    let collections: Vec<_> = (0..8)
        .map(|_| {
            let (s, barrier, created) = (s.clone(), barrier.clone(), created.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                s.outcome(&created, 0).await
            })
        })
        .collect();
    let mut tickets = Vec::new();
    for task in collections {
        let outcome = task.await.expect("collection task");
        assert_eq!(outcome.state, "collected");
        assert_eq!(outcome.ticket.is_some(), outcome.session.is_some());
        tickets.extend(outcome.ticket);
    }
    assert_eq!(tickets.len(), 1, "exactly one collector gets the ticket");
    assert_eq!(s.session_count().await, 1, "exactly one session");
    assert_eq!(s.audit_events("session.created").await.len(), 1);
    s.validate(&tickets[0]).await.expect("the ticket validates");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_opens_out_of_eight_workstations_asking_at_once() {
    let s = Arc::new(start().await);
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let asks: Vec<_> = (0..8)
        .map(|n| {
            let (s, barrier, uid) = (s.clone(), barrier.clone(), uid.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                s.try_open_request(&uid, &auth_context(&format!("pc-{n}")))
                    .await
            })
        })
        .collect();
    let mut opened = Vec::new();
    for task in asks {
        match task.await.expect("request task") {
            Ok(created) => opened.push(created),
            refused => {
                assert_api_error(refused, 409, "request_already_open");
            }
        }
    }
    assert_eq!(opened.len(), 1, "exactly one request opens");
    s.assert_audited("auth.request", "request_already_open", 7)
        .await;
    let token = s.device_token(&phone).await;
    let pending = s.try_device_pending(&token).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request_id, opened[0].request_id);
    assert_eq!(s.session_count().await, 0);
    s.assert_audit_intact().await;
}

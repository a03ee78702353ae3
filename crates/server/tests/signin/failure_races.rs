//! One failure per request: of racing bad approvals of one request only the one that decides it
//! counts against the card (the others are told it was already decided), and "I didn't do
//! this" on a request that another call decided meanwhile neither blocks the card nor counts.
//!
//! The races are made deterministic by holding the database's write lock from the test while
//! the racing calls pass their checks (which only read) and queue for it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_authenticator::ClientError;
use vsc_proto::signin::{ApproveAuthRequest, AuthRequestOutcome};

use crate::common::{TestServer, assert_api_error, auth_context, other_number, start};

/// Long enough for racing calls to read the request as pending and queue for the write lock.
const QUEUE: Duration = Duration::from_millis(600);

/// Eight approvals of `request_id` with `body`, posted while the test holds the write lock;
/// their answers once it is released.
async fn eight_while_locked(
    s: &Arc<TestServer>,
    token: &str,
    request_id: &str,
    body: &ApproveAuthRequest,
) -> Vec<Result<AuthRequestOutcome, ClientError>> {
    let lock = s.hold_write_lock().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, token, id, body) = (
                s.clone(),
                token.to_owned(),
                request_id.to_owned(),
                body.clone(),
            );
            tokio::spawn(async move { s.approve_raw(&token, &id, &body).await })
        })
        .collect();
    tokio::time::sleep(QUEUE).await;
    lock.rollback().await.expect("release the write lock");
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("approval task"));
    }
    answers
}

/// Asserts exactly one answer is `status code` and the other seven `request_already_decided`.
#[track_caller]
fn one_failure_seven_conflicts(
    answers: Vec<Result<AuthRequestOutcome, ClientError>>,
    status: u16,
    code: &str,
) {
    let mut failed = 0;
    let mut conflicts = 0;
    for answer in answers {
        match &answer {
            Err(ClientError::Server { code: c, .. }) if c == code => {
                assert_api_error(answer, status, code);
                failed += 1;
            }
            _ => {
                assert_api_error(answer, 409, "request_already_decided");
                conflicts += 1;
            }
        }
    }
    assert_eq!(
        (failed, conflicts),
        (1, 7),
        "one {code}, seven request_already_decided"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_bad_approvals_of_one_request_count_one_failure() {
    let s = Arc::new(start().await);
    let ram = s.enrol_bootstrap_ram().await;
    let (uid, card, phone) = (ram.uid.as_str(), ram.card_id.as_str(), &ram.phone);
    let token = s.device_token(phone).await;
    assert_eq!(s.card_failures(card).await, 0);

    // Eight approvals with a signature that does not verify.
    let created = s.open_request(uid, "pc-1").await;
    let forged = ApproveAuthRequest {
        number: created.number,
        signature: B64.encode([0u8; 64]),
    };
    let answers = eight_while_locked(&s, &token, &created.request_id, &forged).await;
    one_failure_seven_conflicts(answers, 401, "signature_invalid");
    assert_eq!(s.card_failures(card).await, 1, "one request, one failure");
    s.assert_audited("auth.failed", "signature_invalid", 1)
        .await;
    s.assert_audited("auth.approve", "request_already_decided", 7)
        .await;
    assert_eq!(s.request_state(&created.request_id).await, "failed");

    // Eight approvals, properly signed, of the wrong number.
    let created = s.open_request(uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let wrong = other_number(created.number, 0);
    let body = s.signed_approval(phone, &pending, wrong).await;
    let answers = eight_while_locked(&s, &token, &created.request_id, &body).await;
    one_failure_seven_conflicts(answers, 403, "wrong_number");
    assert_eq!(s.card_failures(card).await, 2, "one more request, one more");
    s.assert_audited("auth.failed", "wrong_number", 1).await;
    s.assert_audited("auth.approve", "request_already_decided", 14)
        .await;
    assert_eq!(
        s.card_state(card).await,
        "active",
        "two failures lock nothing"
    );
    assert!(s.audit_events("card.locked").await.is_empty());
    assert_eq!(s.session_count().await, 0);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_me_on_a_request_already_decided_blocks_nothing() {
    let s = Arc::new(start().await);
    let ram = s.enrol_bootstrap_ram().await;
    let (uid, card, phone) = (ram.uid.as_str(), ram.card_id.as_str(), &ram.phone);
    let token = s.device_token(phone).await;

    // Approved first, reported after: refused, nothing counted, nothing blocked.
    let created = s.open_request(uid, "pc-1").await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let body = s.signed_approval(phone, &pending, created.number).await;
    s.approve_raw(&token, &created.request_id, &body)
        .await
        .expect("the phone approves");
    assert_api_error(
        s.decline_raw(&token, &created.request_id, "not-me").await,
        409,
        "request_already_decided",
    );
    s.assert_audited("auth.decline", "request_already_decided", 1)
        .await;
    assert!(s.outcome(&created, 0).await.ticket.is_some());

    // Four reports read the request as pending and wait for the write lock; meanwhile the
    // request is approved (decided in the lock holder's transaction, as the winning approval's
    // transaction would). Each report then finds it decided.
    let created = s.open_request(uid, "pc-1").await;
    let mut lock = s.hold_write_lock().await;
    let reports: Vec<_> = (0..4)
        .map(|_| {
            let (s, token, id) = (s.clone(), token.clone(), created.request_id.clone());
            tokio::spawn(async move { s.decline_raw(&token, &id, "not-me").await })
        })
        .collect();
    tokio::time::sleep(QUEUE).await;
    assert!(
        vsc_store::signin::decide_request(
            &mut lock,
            &created.request_id,
            vsc_core::AuthRequestState::Approved,
            s.state.now_unix()
        )
        .await
        .expect("decide the request"),
        "the request was still pending"
    );
    lock.commit().await.expect("commit the approval");
    for task in reports {
        assert_api_error(
            task.await.expect("report task"),
            409,
            "request_already_decided",
        );
    }
    s.assert_audited("auth.decline", "request_already_decided", 5)
        .await;
    assert!(s.audit_events("alert.not_me").await.is_empty());
    assert!(s.audit_failures("auth.failed").await.is_empty());
    assert_eq!(s.card_failures(card).await, 0, "nothing counted");
    assert_eq!(s.card_blocked_until(card).await, None, "nothing blocked");
    let collected = s.outcome(&created, 0).await;
    assert!(collected.ticket.is_some(), "the approval stands");

    // The card is not blocked: a new request opens.
    s.try_open_request(uid, &auth_context("pc-2"))
        .await
        .expect("a new request opens");
    assert_eq!(s.session_count().await, 2);
    s.assert_audit_intact().await;
}

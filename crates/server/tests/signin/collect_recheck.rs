//! Collecting re-checks the card: a request the phone approved gives no ticket if the card was
//! cancelled by an RA, or locked, before the agent came to collect it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_proto::CancelCard;
use vsc_proto::signin::ApproveAuthRequest;

use crate::common::{TestServer, assert_api_error, start_with};

/// The agent opens a request for `uid`, the phone holding `token` approves it; the agent has not
/// collected yet.
async fn approved_uncollected(
    s: &TestServer,
    phone: &crate::common::Phone,
    token: &str,
    uid: &str,
) -> vsc_proto::signin::AuthRequestCreated {
    let created = s.open_request(uid, "pc-1").await;
    let pending = s.pending_request(token, &created.request_id).await;
    let body = s.signed_approval(phone, &pending, created.number).await;
    let approved = s
        .approve_raw(token, &created.request_id, &body)
        .await
        .expect("the phone approves");
    assert_eq!(approved.state, "approved");
    assert_eq!(s.request_state(&created.request_id).await, "approved");
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_not_collected_after_the_card_is_cancelled_or_locked() {
    // One failure locks a card, so the second story needs only one bad approval.
    let s = start_with(|cfg| cfg.signin.failure_limit = 1).await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;

    // Approved, then the RA cancels the card, then the agent collects.
    let (uid, card, phone) = s.enrolled_person(t, "RX1").await;
    let token = s.device_token(&phone).await;
    let created = approved_uncollected(&s, &phone, &token, &uid).await;
    let _: vsc_proto::Card = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card}/cancel"),
            &CancelCard {
                reason_code: Some("key-compromise".to_owned()),
                reason: "phone stolen".to_owned(),
                invalidity_date: None,
            },
        )
        .await
        .expect("the RA cancels the card");
    assert_eq!(s.card_state(&card).await, "revoked");
    assert_api_error(s.try_outcome(&created, 0).await, 403, "card_not_active");
    let events = s
        .assert_audited("session.create", "card_not_active", 1)
        .await;
    assert_eq!(events[0].subject, uid);
    assert_eq!(
        s.session_count().await,
        0,
        "no session for a cancelled card"
    );
    // Nothing was collected; the spent approval is now `failed`, so asking again gives a final
    // state (and no ticket) instead of the same refusal over and over.
    assert_eq!(s.request_state(&created.request_id).await, "failed");
    let again = s.outcome(&created, 0).await;
    assert_eq!(again.state, "failed");
    assert!(again.ticket.is_none());
    s.assert_audited("session.create", "card_not_active", 1)
        .await;
    assert!(s.audit_events("session.created").await.is_empty());

    // Approved, then a bad approval of the card's next request locks it, then the agent
    // collects the first.
    let ram_token = s.device_token(&ram.phone).await;
    let first = approved_uncollected(&s, &ram.phone, &ram_token, &ram.uid).await;
    let next = s.open_request(&ram.uid, "pc-2").await;
    assert_api_error(
        s.approve_raw(
            &ram_token,
            &next.request_id,
            &ApproveAuthRequest {
                number: next.number,
                signature: B64.encode([0u8; 64]),
            },
        )
        .await,
        401,
        "signature_invalid",
    );
    assert_eq!(s.card_state(&ram.card_id).await, "locked");
    let message = assert_api_error(s.try_outcome(&first, 0).await, 403, "card_not_active");
    assert!(message.contains("locked"), "{message}");
    s.assert_audited("session.create", "card_not_active", 2)
        .await;
    assert_eq!(s.request_state(&first.request_id).await, "failed");
    assert_eq!(s.session_count().await, 0, "no session for a locked card");
    assert!(s.audit_events("session.created").await.is_empty());
    s.assert_audit_intact().await;
}

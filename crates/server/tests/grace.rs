//! Issue 14, locking, grace period and fast user switching on the server: the workstation
//! policy's new settings (grace period 0 to 15 minutes, fast user switching) and who may set
//! them; `POST /api/v1/session/lock`, after which the session's card operations, signing, role
//! changes and ticket validations are refused `session_locked` (423) and looking at it does not
//! count as use; `POST /api/v1/session/resume`, which re-opens it without a phone approval only
//! within the grace period of the session's organisation (here the organisation of the
//! registered workstation) and refuses otherwise without changing anything.
//!
//! Own record: not applicable to the policy (an organisation's setting, not a person's); a
//! session can only be locked and resumed by its own agent (ticket + that session's agent key),
//! which is tested against another session's key.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{AgentAuth, Phone, TestServer, TestWorkstation, assert_api_error, passcode, start};
use time::Duration;
use vsc_authenticator::{ClientError, PhoneLink};
use vsc_proto::card::CardInfo;
use vsc_proto::signin::{SelectRole, SessionInfo, ValidateTicket};
use vsc_proto::signing::{CreateSigningRequest, SigningKind, SigningRequestCreated};
use vsc_proto::workstation::{SessionResumed, WorkstationPolicy};

const LOCK: &str = "/api/v1/session/lock";
const RESUME: &str = "/api/v1/session/resume";

async fn set_policy(
    s: &TestServer,
    token: &str,
    ods: &str,
    policy: &WorkstationPolicy,
) -> Result<WorkstationPolicy, ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/organisations/{ods}/workstation-policy"),
        policy,
    )
    .await
}

async fn get_policy(s: &TestServer, token: &str, ods: &str) -> WorkstationPolicy {
    s.get(
        Some(token),
        &format!("/api/v1/ra/organisations/{ods}/workstation-policy"),
    )
    .await
    .expect("the policy")
}

fn policy(grace: u32, switching: bool) -> WorkstationPolicy {
    WorkstationPolicy {
        allow_unregistered_workstations: false,
        unlock_grace_minutes: grace,
        fast_user_switching: switching,
    }
}

/// RX1 with a person (card issued there, phone enrolled) and a workstation registered at RX1;
/// returns the bootstrap RA token, the person, their phone and the workstation.
async fn setup(s: &TestServer) -> (String, String, Phone, Arc<TestWorkstation>) {
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.clone();
    s.create_org(&t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(&t, "RX1").await;
    s.assign_position(&t, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .expect("position");
    let ws = Arc::new(s.register_workstation("RX1", "WARD-1-PC-1").await);
    (t, uid, phone, ws)
}

/// A sign-in of `uid` from `ws`, approved on `phone`.
async fn sign_in(s: &TestServer, ws: &Arc<TestWorkstation>, uid: &str, phone: &Phone) -> AgentAuth {
    let created = s
        .try_open_request_from(ws, uid, &common::auth_context(&ws.id))
        .await
        .expect("the workstation opens a request");
    let link = PhoneLink::new(&phone.home).expect("link");
    let request = link
        .pending(5)
        .await
        .expect("pending")
        .into_iter()
        .find(|r| r.request_id == created.request_id)
        .expect("the request reaches the phone");
    link.approve(&request, created.number, &passcode())
        .await
        .expect("approve");
    let collected = s.outcome(&created, 5).await;
    AgentAuth {
        ticket: collected.ticket.expect("ticket"),
        key: collected.agent_key.expect("agent key"),
    }
}

async fn lock(s: &TestServer, auth: &AgentAuth) -> Result<serde_json::Value, ClientError> {
    s.agent_post(auth, LOCK, &serde_json::json!({})).await
}

async fn resume(s: &TestServer, auth: &AgentAuth) -> Result<SessionResumed, ClientError> {
    s.agent_post(auth, RESUME, &serde_json::json!({})).await
}

/// The session row of `ticket` as far as locking goes: (locked_at, last_used, ended_at).
async fn session_row(s: &TestServer, ticket: &str) -> (Option<i64>, i64, Option<i64>) {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ticket.as_bytes());
    sqlx::query_as("SELECT locked_at, last_used, ended_at FROM sessions WHERE ticket_hash = $1")
        .bind(hash.as_ref().to_vec())
        .fetch_one(s.state.store().pool())
        .await
        .expect("the session row")
}

async fn locked_at(s: &TestServer, ticket: &str) -> Option<i64> {
    session_row(s, ticket).await.0
}

async fn look(s: &TestServer, ticket: &str) -> Result<SessionInfo, ClientError> {
    s.get(Some(ticket), "/api/v1/session").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_and_switching_are_set_by_the_organisations_ra_manager_within_bounds() {
    let s = start().await;
    let (t, _uid, _phone, _ws) = setup(&s).await;
    s.create_org(&t, "RY2").await;
    // Off by default.
    assert_eq!(get_policy(&s, &t, "RX1").await, policy(0, false));

    // Another organisation's RA Manager may not.
    let ram_ry2 = s.new_ra(&t, "RY2", "ra-manager", &[]).await;
    assert_api_error(
        set_policy(&s, &ram_ry2.token, "RX1", &policy(5, true)).await,
        403,
        "not_permitted",
    );
    // Nor an RA Agent of the organisation itself.
    let raa = s.new_ra(&t, "RX1", "ra-agent", &[]).await;
    assert_api_error(
        set_policy(&s, &raa.token, "RX1", &policy(5, true)).await,
        403,
        "not_permitted",
    );
    let ram = s.new_ra(&t, "RX1", "ra-manager", &[]).await;
    // Hostile input: more than 15 minutes, or a number that is not one.
    for minutes in [16, 60, u32::MAX] {
        assert_api_error(
            set_policy(&s, &ram.token, "RX1", &policy(minutes, true)).await,
            400,
            "invalid_workstation_policy",
        );
    }
    let negative: Result<WorkstationPolicy, _> = s
        .post(
            Some(&ram.token),
            "/api/v1/ra/organisations/RX1/workstation-policy",
            &serde_json::json!({"allow_unregistered_workstations": false, "unlock_grace_minutes": -1}),
        )
        .await;
    assert!(negative.is_err(), "a negative grace period is refused");
    assert_eq!(
        get_policy(&s, &t, "RX1").await,
        policy(0, false),
        "nothing changed"
    );
    s.assert_audited(
        "organisation.workstation_policy",
        "invalid_workstation_policy",
        3,
    )
    .await;

    // Within bounds, by the organisation's RA Manager: set, audited, read back.
    let set = set_policy(&s, &ram.token, "RX1", &policy(15, true))
        .await
        .expect("15 minutes is the most");
    assert_eq!(set, policy(15, true));
    assert_eq!(get_policy(&s, &raa.token, "RX1").await, policy(15, true));
    let events = s.audit_events("organisation.workstation_policy_set").await;
    let last: serde_json::Value = serde_json::from_str(&events.last().unwrap().detail).unwrap();
    assert_eq!(last["unlock_grace_minutes"], 15);
    assert_eq!(last["fast_user_switching"], true);

    // An older client that knows only the first setting still works (the others default to off).
    let old: WorkstationPolicy = s
        .post(
            Some(&ram.token),
            "/api/v1/ra/organisations/RX1/workstation-policy",
            &serde_json::json!({"allow_unregistered_workstations": true}),
        )
        .await
        .expect("an older client's body");
    assert_eq!(
        old,
        WorkstationPolicy {
            allow_unregistered_workstations: true,
            unlock_grace_minutes: 0,
            fast_user_switching: false,
        }
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_session_refuses_use_and_resumes_within_the_grace_period() {
    let s = start().await;
    let (t, uid, phone, ws) = setup(&s).await;
    set_policy(&s, &t, "RX1", &policy(3, true)).await.unwrap();
    let a = sign_in(&s, &ws, &uid, &phone).await;
    let info = look(&s, &a.ticket).await.unwrap();
    assert!(!info.locked);
    assert_eq!(
        (info.unlock_grace_minutes, info.fast_user_switching),
        (3, true)
    );
    let _: CardInfo = s
        .agent_get(&a, "/api/v1/card")
        .await
        .expect("the card, unlocked");

    // Resuming a session that is not locked is refused.
    assert_api_error(resume(&s, &a).await, 409, "session_not_locked");

    // Locking needs the agent key; then it is recorded once (idempotent).
    let ticket_only = AgentAuth {
        ticket: a.ticket.clone(),
        key: "not-the-key".into(),
    };
    assert_api_error(lock(&s, &ticket_only).await, 401, "agent_key_required");
    assert_eq!(locked_at(&s, &a.ticket).await, None);
    let answer = lock(&s, &a).await.expect("locked");
    assert_eq!(answer["already_locked"], false);
    let first = locked_at(&s, &a.ticket)
        .await
        .expect("the server recorded the lock");
    s.clock.advance(Duration::seconds(30));
    let again = lock(&s, &a).await.expect("locking again is fine");
    assert_eq!(again["already_locked"], true);
    assert_eq!(
        locked_at(&s, &a.ticket).await,
        Some(first),
        "the first lock's time stays"
    );
    assert_eq!(s.audit_events("session.locked").await.len(), 1);

    // While locked: the agent sees it; the card, signing, the role and relying systems do not
    // get through.
    let info = look(&s, &a.ticket).await.unwrap();
    assert!(info.locked);
    assert_api_error(
        s.agent_get::<CardInfo>(&a, "/api/v1/card").await,
        423,
        "session_locked",
    );
    assert_api_error(
        s.agent_post::<_, SigningRequestCreated>(
            &a,
            "/api/v1/signing/requests",
            &CreateSigningRequest {
                kind: SigningKind::Prescriptions,
                algorithm: "RS256".into(),
                items: Vec::new(),
            },
        )
        .await,
        423,
        "session_locked",
    );
    let position = info.roles[0].position_id.clone();
    assert_api_error(
        s.agent_post::<_, SessionInfo>(
            &a,
            "/api/v1/session/role",
            &SelectRole {
                position_id: position.clone(),
            },
        )
        .await,
        423,
        "session_locked",
    );
    assert_api_error(
        s.post::<_, serde_json::Value>(
            None,
            "/api/v1/tickets/validate",
            &ValidateTicket {
                ticket: a.ticket.clone(),
            },
        )
        .await,
        423,
        "session_locked",
    );
    s.assert_audited("session.agent_key", "session_locked", 3)
        .await;

    // Resuming needs this session's own agent key: a relying system's ticket alone, or another
    // session's key (someone else on the same workstation), is refused.
    assert_api_error(resume(&s, &ticket_only).await, 401, "agent_key_required");
    let other = sign_in(&s, &ws, &uid, &phone).await;
    let crossed = AgentAuth {
        ticket: a.ticket.clone(),
        key: other.key.clone(),
    };
    assert_api_error(resume(&s, &crossed).await, 401, "agent_key_required");
    assert!(locked_at(&s, &a.ticket).await.is_some(), "still locked");

    // Within the grace period (2 minutes after the lock, of 3): resumed without the phone.
    s.clock.advance(Duration::seconds(90));
    let resumed = resume(&s, &a)
        .await
        .expect("resumed within the grace period");
    // 120 s of test clock plus however long the test itself took.
    assert!(
        (120..180).contains(&resumed.seconds_since_lock),
        "{resumed:?}"
    );
    assert_eq!(resumed.unlock_grace_minutes, 3);
    assert_eq!(locked_at(&s, &a.ticket).await, None);
    let events = s.audit_events("session.resumed").await;
    assert_eq!(events.len(), 1);
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(detail["grace"], true);
    assert_eq!(detail["seconds_since_lock"], resumed.seconds_since_lock);
    let _: CardInfo = s
        .agent_get(&a, "/api/v1/card")
        .await
        .expect("the card again");
    assert!(!look(&s, &a.ticket).await.unwrap().locked);

    // A replayed resume finds nothing to resume.
    assert_api_error(resume(&s, &a).await, 409, "session_not_locked");
    // Logging out works on a locked session too.
    lock(&s, &other).await.unwrap();
    assert_eq!(s.logout_agent(&other).await.0, 200);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_or_without_one_nothing_resumes_and_a_locked_session_times_out() {
    let s = start().await;
    let (t, uid, phone, ws) = setup(&s).await;
    set_policy(&s, &t, "RX1", &policy(1, false)).await.unwrap();
    let a = sign_in(&s, &ws, &uid, &phone).await;
    lock(&s, &a).await.unwrap();
    s.clock.advance(Duration::seconds(61));
    let before = session_row(&s, &a.ticket).await;
    assert!(before.0.is_some());
    assert_api_error(resume(&s, &a).await, 403, "unlock_grace_over");
    assert_eq!(session_row(&s, &a.ticket).await, before, "nothing changed");
    assert!(look(&s, &a.ticket).await.unwrap().locked);

    // With the grace period off, not even at once.
    set_policy(&s, &t, "RX1", &policy(0, false)).await.unwrap();
    let b = sign_in(&s, &ws, &uid, &phone).await;
    lock(&s, &b).await.unwrap();
    let before = session_row(&s, &b.ticket).await;
    assert_api_error(resume(&s, &b).await, 403, "unlock_grace_over");
    assert_eq!(session_row(&s, &b.ticket).await, before, "nothing changed");
    s.assert_audited("session.resume", "unlock_grace_over", 2)
        .await;

    // Looking at a locked session (even without `touch=false`) is not use: the idle timeout
    // (15 minutes) keeps running from the last use before the lock.
    s.clock.advance(Duration::minutes(10));
    assert!(look(&s, &b.ticket).await.unwrap().locked);
    s.clock.advance(Duration::minutes(6));
    assert_api_error(look(&s, &b.ticket).await, 401, "session_idle_timeout");
    assert_api_error(resume(&s, &b).await, 401, "session_idle_timeout");
    s.assert_audit_intact().await;
}

/// Fast user switching: once another person has signed in on the workstation after the lock,
/// the locked session is not resumed without its holder's phone, even within the grace period
/// (whoever is at the keyboard is no longer known to be its holder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_grace_resume_after_another_person_signed_in_on_the_workstation() {
    let s = start().await;
    let (t, uid, phone, ws) = setup(&s).await;
    set_policy(&s, &t, "RX1", &policy(15, true)).await.unwrap();
    let (other, _card, other_phone) = s.enrolled_person(&t, "RX1").await;
    s.assign_position(&t, &other, "RX1", "S8000:G8000:R8000")
        .await
        .expect("position");
    let a = sign_in(&s, &ws, &uid, &phone).await;
    lock(&s, &a).await.unwrap();
    s.clock.advance(Duration::seconds(30));
    let b = sign_in(&s, &ws, &other, &other_phone).await;
    lock(&s, &b).await.unwrap();
    let before = session_row(&s, &a.ticket).await;
    let refused = resume(&s, &a).await;
    assert_api_error(refused, 403, "unlock_grace_over");
    assert_eq!(session_row(&s, &a.ticket).await, before, "nothing changed");
    assert!(look(&s, &a.ticket).await.unwrap().locked);
    // The person who signed in last may still come back within the grace period.
    resume(&s, &b)
        .await
        .expect("the latest session resumes in grace");
    s.assert_audit_intact().await;
}

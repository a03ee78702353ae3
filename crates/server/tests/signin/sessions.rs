//! Sessions end: after the idle timeout, at the absolute timeout, and on an unknown ticket
//! nothing is found; an organisation's RA Manager sets that organisation's timeouts; a session
//! idle past its timeout gets nothing signed, even for a request it opened while live.

use time::{Duration, OffsetDateTime};
use vsc_proto::SessionLimits;

use vsc_authenticator::PhoneLink;
use vsc_proto::signing::{CreateSigningRequest, SigningItem, SigningKind, SigningRequestCreated};

use crate::common::{TestServer, assert_api_error, passcode, start};

fn near(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).whole_seconds().abs() <= 5
}

async fn still_valid(s: &TestServer, ticket: &str, when: &str) {
    s.validate(ticket)
        .await
        .unwrap_or_else(|e| panic!("the session is still valid {when}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_time_out_when_idle_and_after_twelve_hours() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let (_, idle) = s.sign_in(&phone, &uid, "pc-1").await;
    let (_, busy) = s.sign_in(&phone, &uid, "pc-2").await;
    assert_eq!(s.session_count().await, 2);

    assert_api_error(s.validate("no-such-ticket").await, 401, "ticket_invalid");
    s.assert_audited("ticket.validate", "ticket_invalid", 1)
        .await;

    // Fifteen minutes without use end a session; use keeps the other alive.
    s.clock.advance(Duration::minutes(10));
    still_valid(&s, &busy, "after 10 minutes").await;
    s.clock.advance(Duration::minutes(6));
    assert_api_error(s.validate(&idle).await, 401, "session_idle_timeout");
    assert_api_error(s.session_info(&idle).await, 401, "session_idle_timeout");
    s.assert_audited("ticket.validate", "session_idle_timeout", 1)
        .await;
    still_valid(&s, &busy, "6 minutes after its last use").await;

    // Used every 10 minutes, it still ends 12 hours after sign-in.
    let mut minutes = 16;
    while minutes + 10 < 12 * 60 {
        s.clock.advance(Duration::minutes(10));
        minutes += 10;
        still_valid(&s, &busy, &format!("after {minutes} minutes")).await;
    }
    s.clock.advance(Duration::minutes(12 * 60 + 1 - minutes));
    assert_api_error(s.validate(&busy).await, 401, "session_expired");
    assert_api_error(s.session_info(&busy).await, 401, "session_expired");
    s.assert_audited("ticket.validate", "session_expired", 1)
        .await;
    // Timeouts do not come back to life.
    assert_api_error(s.validate(&idle).await, 401, "session_expired");
    assert_eq!(s.session_count().await, 2);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_manager_sets_the_organisations_session_timeouts() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let path = "/api/v1/ra/organisations/RX1/session-limits";
    let limits = SessionLimits {
        idle_seconds: 120,
        max_seconds: 600,
    };

    // Only an RA Manager, only sensible values, only a known organisation.
    assert_api_error(
        s.post::<_, SessionLimits>(Some(&agent.token), path, &limits)
            .await,
        403,
        "ra_role_not_permitted",
    );
    s.assert_audited("organisation.session_limits", "ra_role_not_permitted", 1)
        .await;
    for (idle_seconds, max_seconds) in [(30, 600), (120, 100), (600, 300), (120, 100_000)] {
        assert_api_error(
            s.post::<_, SessionLimits>(
                Some(t),
                path,
                &SessionLimits {
                    idle_seconds,
                    max_seconds,
                },
            )
            .await,
            400,
            "invalid_session_limits",
        );
    }
    s.assert_audited("organisation.session_limits", "invalid_session_limits", 4)
        .await;
    assert_api_error(
        s.post::<_, SessionLimits>(
            Some(t),
            "/api/v1/ra/organisations/RZ9/session-limits",
            &limits,
        )
        .await,
        404,
        "unknown_organisation",
    );
    s.assert_audited("organisation.session_limits", "unknown_organisation", 1)
        .await;
    assert_api_error(
        s.post::<_, SessionLimits>(None, path, &limits).await,
        401,
        "unauthenticated",
    );

    let set: SessionLimits = s
        .post(Some(t), path, &limits)
        .await
        .expect("the RA Manager sets RX1's timeouts");
    assert_eq!((set.idle_seconds, set.max_seconds), (120, 600));
    assert_eq!(
        s.audit_events("organisation.session_limits_set")
            .await
            .len(),
        1
    );

    // Sessions of RX1's cards follow them.
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let (_, idle) = s.sign_in(&phone, &uid, "pc-1").await;
    let (_, busy) = s.sign_in(&phone, &uid, "pc-2").await;
    let info = s.session_info(&busy).await.expect("session");
    let now = s.state.now();
    assert!(
        near(info.idle_expires_at, now + Duration::seconds(120)),
        "{info:?}"
    );
    assert!(
        near(info.expires_at, now + Duration::seconds(600)),
        "{info:?}"
    );
    // Those of another organisation's cards keep the defaults.
    let (_, national) = s.sign_in(&ram.phone, &ram.uid, "pc-3").await;
    let info = s.session_info(&national).await.expect("session");
    assert!(near(info.expires_at, now + Duration::hours(12)), "{info:?}");

    s.clock.advance(Duration::seconds(100));
    still_valid(&s, &busy, "after 100 s").await;
    s.clock.advance(Duration::seconds(30));
    assert_api_error(s.validate(&idle).await, 401, "session_idle_timeout");
    still_valid(&s, &busy, "after 130 s").await;
    for n in 1..=4 {
        s.clock.advance(Duration::seconds(100));
        still_valid(&s, &busy, &format!("{n} × 100 s later")).await;
    }
    s.clock.advance(Duration::seconds(80));
    assert_api_error(s.validate(&busy).await, 401, "session_expired");
    s.assert_audited("ticket.validate", "session_idle_timeout", 1)
        .await;
    s.assert_audited("ticket.validate", "session_expired", 1)
        .await;
    assert_eq!(s.session_count().await, 3);
    s.assert_audit_intact().await;
}

/// The attack: a signing request opened while the session was live waits on the phone while
/// the workstation is left alone past its idle timeout; answering it used to sign for a session
/// that was over (only its absolute expiry and an explicit end were checked). The idle timeout
/// now counts too: nothing is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_past_its_timeout_gets_nothing_signed() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    // Two minutes idle (signing requests wait five).
    let _: SessionLimits = s
        .post(
            Some(t),
            "/api/v1/ra/organisations/RX1/session-limits",
            &SessionLimits {
                idle_seconds: 120,
                max_seconds: 3600,
            },
        )
        .await
        .expect("the RA Manager sets the timeouts");
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    s.assign_position_with(t, &uid, "RX1", "S8000:G8000:R8000", &["B0420"])
        .await
        .expect("a prescribing position");
    let (_, auth) = s.sign_in_agent(&phone, &uid, "pc-1").await;
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../eps/tests/data/corpus");
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let prepared = files
        .iter()
        .find_map(|f| {
            let xml = std::fs::read_to_string(f).unwrap();
            vsc_eps::sign::prepare(&xml, vsc_eps::sign::SignatureAlgorithm::RsaSha1).ok()
        })
        .expect("a prescription from the corpus");
    let created: SigningRequestCreated = s
        .agent_post(
            &auth,
            "/api/v1/signing/requests",
            &CreateSigningRequest {
                kind: SigningKind::Prescriptions,
                algorithm: "RS1".into(),
                items: vec![SigningItem {
                    id: "rx-0".into(),
                    fragments: Some(prepared.canonical_fragments),
                    payload: None,
                    description: None,
                    slot: None,
                }],
            },
        )
        .await
        .expect("the live session opens a signing request");
    let link = PhoneLink::new(&phone.home).expect("link");
    let pending = link.pending_signing().await.expect("pending signing");
    let review = vsc_authenticator::signing::review(&pending[0]).expect("review");

    // Three minutes without use: idle past its timeout, the request not yet expired.
    s.clock.advance(Duration::minutes(3));
    assert_api_error(
        s.session_look(&auth.ticket).await,
        401,
        "session_idle_timeout",
    );
    match link.sign(&review, &passcode()).await {
        Err(vsc_authenticator::AuthenticatorError::Client(
            vsc_authenticator::ClientError::Server { status, code, .. },
        )) => assert_eq!((status, code.as_str()), (410, "session_ended")),
        other => panic!("expected session_ended, got {other:?}"),
    }
    assert!(s.audit_events("eps.signature").await.is_empty());
    let _ = created;
    s.assert_audit_intact().await;
}

/// Relying systems validate a ticket on every page: uses within the touch step (a tenth of the
/// idle timeout, at most 30 s) do not each write the session, and the deadline still moves once
/// the step has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequent_validations_do_not_each_take_the_writer() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let (_, ticket) = s.sign_in(&ram.phone, &ram.uid, "pc-1").await;
    let first = s.session_info(&ticket).await.expect("live").idle_expires_at;
    s.clock.advance(Duration::seconds(5));
    let writes = s.state.store().writer_stats().transactions;
    for _ in 0..20 {
        still_valid(&s, &ticket, "within the touch step").await;
    }
    assert_eq!(
        s.state.store().writer_stats().transactions,
        writes,
        "validations within the step wrote the session"
    );
    let unchanged = s.session_info(&ticket).await.expect("live").idle_expires_at;
    assert_eq!(unchanged, first, "the deadline moved within the step");

    // Past the step, a use moves the deadline again.
    s.clock.advance(Duration::seconds(30));
    still_valid(&s, &ticket, "after the step").await;
    let moved = s.session_info(&ticket).await.expect("live").idle_expires_at;
    assert!(
        near(moved, s.state.now() + Duration::minutes(15)),
        "{moved} {first}"
    );
    assert!(moved > first);
    s.assert_audit_intact().await;
}

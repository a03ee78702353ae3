//! Issue 9, item 1: an RA must not take over a person of another organisation by giving them a
//! position at its own, nor act on its own record, nor grant more than its role may grant.
//!
//! Each test performs the attack against the real server, checks the refusal's status and code,
//! that nothing changed, and that the refusal is in the audit log; then the honest path.

use vsc_authenticator::ClientError;
use vsc_proto::{
    AssignPosition, CancelCard, Card, CardWithCode, DecidePositionRequest, Person, PositionRequest,
    RaRoleGrant, RequestPosition,
};

use crate::common::{Phone, Ra, TestServer, assert_api_error, start, start_with};

const ROLE: &str = "S8000:G8000:R8000";

/// A cancellation body with a reason code.
pub(crate) fn cancel_body(reason_code: &str, reason: &str) -> CancelCard {
    CancelCard {
        reason_code: Some(reason_code.to_owned()),
        reason: reason.to_owned(),
        invalidity_date: None,
    }
}

/// Gives `uid` an RA role at `org` with a Sponsor's assignable roles and activities.
pub(crate) async fn try_grant(
    s: &TestServer,
    token: &str,
    uid: &str,
    org: &str,
    role: &str,
    roles: &[&str],
    activities: &[&str],
) -> Result<Person, ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/people/{uid}/ra-roles"),
        &RaRoleGrant {
            role: role.to_owned(),
            organisation: org.to_owned(),
            assignable_roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            assignable_activities: activities.iter().map(|a| (*a).to_owned()).collect(),
        },
    )
    .await
}

/// A Sponsor at `org` who may assign `roles` with `activities`, enrolled and signed in.
pub(crate) async fn sponsor_with(
    s: &TestServer,
    token: &str,
    org: &str,
    roles: &[&str],
    activities: &[&str],
) -> Ra {
    let (uid, card) = s.person_with_card(token, org).await;
    try_grant(s, token, &uid, org, "sponsor", roles, activities)
        .await
        .expect("grant the Sponsor role");
    let phone = Phone::new();
    s.enrol(&phone, &card.code.url)
        .await
        .expect("the Sponsor enrols");
    let token = s.login(&phone).await;
    Ra {
        phone,
        uid,
        card_id: card.card.id,
        token,
    }
}

async fn request_position(
    s: &TestServer,
    token: &str,
    uid: &str,
    org: &str,
    role: &str,
) -> Result<PositionRequest, ClientError> {
    s.post(
        Some(token),
        "/api/v1/ra/position-requests",
        &RequestPosition {
            uid: uid.to_owned(),
            position: AssignPosition {
                organisation: org.to_owned(),
                role_code: role.to_owned(),
                role_name: "Clinical Practitioner Access Role".to_owned(),
                activities: vec!["B0570".to_owned()],
            },
        },
    )
    .await
}

async fn decide(
    s: &TestServer,
    token: &str,
    id: &str,
    verb: &str,
    note: Option<&str>,
) -> Result<PositionRequest, ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/position-requests/{id}/{verb}"),
        &DecidePositionRequest {
            note: note.map(str::to_owned),
        },
    )
    .await
}

async fn id_check_as(
    s: &TestServer,
    token: &str,
    uid: &str,
    org: &str,
) -> Result<Person, ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/people/{uid}/identity-checks"),
        &serde_json::json!({"evidence": ["passport", "driving-licence"], "level": 3, "organisation": org}),
    )
    .await
}

/// The attack of issue 9 as reproduced: an RA Agent at RX1 gives a person registered only at
/// RY2 a position at RX1, and then views them, cancels their card, records an identity check
/// and issues a new card to a phone of its choosing. Every step is refused and audited; the
/// person, their card and everything else stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_of_another_organisation_cannot_take_a_person_over() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let rx1_manager = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let sponsor = sponsor_with(&s, t, "RX1", &[ROLE], &["B0570"]).await;
    let (victim, victim_card, _victim_phone) = s.enrolled_person(t, "RY2").await;
    let before = s.snapshot().await;

    // 1. The position that would bring the victim into RX1's scope.
    let message = assert_api_error(
        s.assign_position(&agent.token, &victim, "RX1", ROLE).await,
        403,
        "position_request_needed",
    );
    assert!(message.contains("RY2"), "{message}");
    assert_api_error(
        s.assign_position(&sponsor.token, &victim, "RX1", ROLE)
            .await,
        403,
        "position_request_needed",
    );
    assert_api_error(
        s.assign_position(&rx1_manager.token, &victim, "RX1", ROLE)
            .await,
        403,
        "position_request_needed",
    );
    // An RA role at RX1 does not bring them in either.
    assert_api_error(
        try_grant(&s, &rx1_manager.token, &victim, "RX1", "ra-agent", &[], &[]).await,
        409,
        "person_not_in_organisation",
    );

    // 2. What the takeover went on to do.
    assert_api_error(
        s.get::<Person>(Some(&agent.token), &format!("/api/v1/ra/people/{victim}"))
            .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.get::<Card>(
            Some(&agent.token),
            &format!("/api/v1/ra/cards/{victim_card}"),
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.post::<_, Card>(
            Some(&agent.token),
            &format!("/api/v1/ra/cards/{victim_card}/cancel"),
            &cancel_body("key-compromise", "taking over"),
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        id_check_as(&s, &agent.token, &victim, "RX1").await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.try_issue_card(&agent.token, &victim, "RX1").await,
        409,
        "person_not_in_organisation",
    );
    assert_api_error(
        s.try_issue_card(&agent.token, &victim, "RY2").await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.post::<_, CardWithCode>(
            Some(&agent.token),
            &format!("/api/v1/ra/cards/{victim_card}/unlock"),
            &serde_json::json!({}),
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.post::<_, CardWithCode>(
            Some(&agent.token),
            &format!("/api/v1/ra/cards/{victim_card}/activation"),
            &serde_json::json!({}),
        )
        .await,
        403,
        "ra_outside_organisation",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "a takeover across organisations");
    assert_eq!(s.card_state(&victim_card).await, "active");
    assert!(s.person(t, &victim).await.positions.is_empty());

    for (action, code, n, actor) in [
        ("position.assign", "position_request_needed", 3, None),
        (
            "ra_role.assign",
            "person_not_in_organisation",
            1,
            Some(&rx1_manager.uid),
        ),
        (
            "person.view",
            "ra_outside_organisation",
            1,
            Some(&agent.uid),
        ),
        ("card.view", "ra_outside_organisation", 1, Some(&agent.uid)),
        (
            "card.cancel",
            "ra_outside_organisation",
            1,
            Some(&agent.uid),
        ),
        (
            "identity.check",
            "ra_outside_organisation",
            1,
            Some(&agent.uid),
        ),
        (
            "card.issue",
            "person_not_in_organisation",
            1,
            Some(&agent.uid),
        ),
        ("card.issue", "ra_outside_organisation", 1, Some(&agent.uid)),
        (
            "card.unlock",
            "ra_outside_organisation",
            1,
            Some(&agent.uid),
        ),
        (
            "activation.reissue",
            "ra_outside_organisation",
            1,
            Some(&agent.uid),
        ),
    ] {
        let events = s.assert_audited(action, code, n).await;
        if let Some(actor) = actor {
            assert_eq!(&events[0].actor, actor, "{action} {code}");
        }
    }
    s.assert_audit_intact().await;
}

/// The honest way in: RX1 asks, RY2 (the registering organisation) approves; only then may RX1
/// act on the person. Requests are decided once, by the right organisation, before they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_at_another_organisation_needs_the_registering_organisations_approval() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let ry2_agent = s.new_ra(t, "RY2", "ra-agent", &[]).await;
    let ry2_sponsor = sponsor_with(&s, t, "RY2", &[ROLE], &["B0570"]).await;
    let (person, card, _phone) = s.enrolled_person(t, "RY2").await;

    // RX1 asks.
    let request = request_position(&s, &agent.token, &person, "RX1", ROLE)
        .await
        .expect("an RA Agent of RX1 requests a position at RX1");
    assert_eq!(request.state, "pending");
    assert_eq!(request.home_organisation, "RY2");
    assert_eq!(request.requested_by, agent.uid);
    let mine: Vec<PositionRequest> = s
        .get(Some(&agent.token), "/api/v1/ra/position-requests")
        .await
        .expect("list");
    assert_eq!(mine, vec![request.clone()]);

    // Refusals: asking twice, asking for someone already there, deciding it without being an
    // RA Manager or RA Agent of RY2, unknown ids; none of them changes anything.
    let before = s.snapshot().await;
    assert_api_error(
        request_position(&s, &agent.token, &person, "RX1", ROLE).await,
        409,
        "position_request_exists",
    );
    assert_api_error(
        request_position(&s, &ry2_agent.token, &person, "RY2", ROLE).await,
        409,
        "person_already_in_organisation",
    );
    assert_api_error(
        request_position(&s, &agent.token, "12345", "RX1", ROLE).await,
        400,
        "invalid_uid",
    );
    assert_api_error(
        decide(&s, &agent.token, &request.id, "approve", None).await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        decide(&s, &ry2_sponsor.token, &request.id, "approve", None).await,
        403,
        "ra_role_not_permitted",
    );
    assert_api_error(
        decide(&s, &ry2_agent.token, "nosuchrequest", "approve", None).await,
        404,
        "unknown_position_request",
    );
    assert_api_error(
        decide(
            &s,
            &ry2_agent.token,
            &request.id,
            "approve",
            Some(&"x".repeat(501)),
        )
        .await,
        400,
        "invalid_note",
    );
    // Still invisible to RX1.
    assert_api_error(
        s.get::<Person>(Some(&agent.token), &format!("/api/v1/ra/people/{person}"))
            .await,
        403,
        "ra_outside_organisation",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "refused position-request calls");

    // RY2 sees it and approves.
    let theirs: Vec<PositionRequest> = s
        .get(Some(&ry2_agent.token), "/api/v1/ra/position-requests")
        .await
        .expect("list");
    assert_eq!(theirs, vec![request.clone()]);
    let approved = decide(
        &s,
        &ry2_agent.token,
        &request.id,
        "approve",
        Some("new job at RX1"),
    )
    .await
    .expect("an RA Agent of RY2 approves");
    assert_eq!(approved.state, "approved");
    assert_eq!(approved.decided_by.as_deref(), Some(ry2_agent.uid.as_str()));
    assert_api_error(
        decide(&s, &ry2_agent.token, &request.id, "approve", None).await,
        409,
        "position_request_decided",
    );

    // Now RX1 may act on the person: view, and assign further positions directly.
    let seen = s.person(&agent.token, &person).await;
    assert_eq!(seen.positions.len(), 1);
    assert_eq!(seen.positions[0].organisation, "RX1");
    s.assign_position(&agent.token, &person, "RX1", "S8000:G8000:R8001")
        .await
        .expect("a second position at RX1 is a direct assignment");
    s.card(&agent.token, &card).await;

    // Declining and withdrawing; expiry.
    let (other, _, _) = s.enrolled_person(t, "RY2").await;
    let declined = request_position(&s, &agent.token, &other, "RX1", ROLE)
        .await
        .expect("request");
    let declined = decide(
        &s,
        &ry2_agent.token,
        &declined.id,
        "decline",
        Some("not ours"),
    )
    .await
    .expect("RY2 declines");
    assert_eq!(declined.state, "declined");
    assert_api_error(
        decide(&s, &ry2_agent.token, &declined.id, "approve", None).await,
        409,
        "position_request_decided",
    );
    let withdrawn = request_position(&s, &agent.token, &other, "RX1", ROLE)
        .await
        .expect("ask again");
    decide(&s, &agent.token, &withdrawn.id, "decline", None)
        .await
        .expect("the requester withdraws");
    let late = request_position(&s, &agent.token, &other, "RX1", ROLE)
        .await
        .expect("ask once more");
    s.clock.advance(time::Duration::days(15));
    let ry2_token = s.login(&ry2_agent.phone).await;
    assert_api_error(
        decide(&s, &ry2_token, &late.id, "approve", None).await,
        409,
        "position_request_expired",
    );
    let ram_token = s.login(&ram.phone).await;
    assert!(s.person(&ram_token, &other).await.positions.is_empty());

    for action in [
        "position.requested",
        "position.request_approved",
        "position.request_declined",
    ] {
        assert!(
            s.audit_events(action)
                .await
                .iter()
                .any(|e| e.outcome == "success"),
            "{action} audited"
        );
    }
    s.assert_audited("position_request.approve", "ra_outside_organisation", 1)
        .await;
    s.assert_audited("position_request.approve", "ra_role_not_permitted", 1)
        .await;
    s.assert_audited("position_request.create", "position_request_exists", 1)
        .await;
    s.assert_audited("position_request.approve", "position_request_expired", 1)
        .await;
    s.assert_audit_intact().await;
}

/// Whoever holds the right at both organisations (a national RA Manager, or an RA Agent of
/// both) assigns a first position at another organisation directly, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_and_two_organisation_ras_assign_directly() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let person = s.create_person(t, "RY2").await;
    s.assign_position(t, &person, "RX1", ROLE)
        .await
        .expect("the national RA Manager assigns a position at RX1 to a person of RY2");

    // An RA Agent of RX1 who is also an RA Agent of RY2.
    let both = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    s.assign_position(t, &both.uid, "RY2", ROLE)
        .await
        .expect("position at RY2");
    s.grant_ra_role(t, &both.uid, "RY2", "ra-agent", &[]).await;
    let token = s.login(&both.phone).await;
    let other = s.create_person(t, "RY2").await;
    s.assign_position(&token, &other, "RX1", ROLE)
        .await
        .expect("an RA Agent of both organisations assigns directly");
    s.person(&token, &other).await;
    s.assert_audit_intact().await;
}

/// No RA acts on their own record: not the national RA Manager, not an RA Agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_acts_on_their_own_record() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let rx1_manager = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let before = s.snapshot().await;

    let me = agent.uid.as_str();
    let own = |r| assert_api_error(r, 403, "own_record");
    own(s
        .assign_position(&agent.token, me, "RX1", ROLE)
        .await
        .map(|_| ()));
    own(s
        .assign_position(t, &ram.uid, "X26", ROLE)
        .await
        .map(|_| ()));
    own(id_check_as(&s, &agent.token, me, "RX1").await.map(|_| ()));
    own(s.try_issue_card(&agent.token, me, "RX1").await.map(|_| ()));
    own(s
        .post::<_, Card>(
            Some(&agent.token),
            &format!("/api/v1/ra/cards/{}/cancel", agent.card_id),
            &cancel_body("cessation-of-operation", "my own card"),
        )
        .await
        .map(|_| ()));
    for verb in ["unlock", "activation"] {
        own(s
            .post::<_, CardWithCode>(
                Some(&agent.token),
                &format!("/api/v1/ra/cards/{}/{verb}", agent.card_id),
                &serde_json::json!({}),
            )
            .await
            .map(|_| ()));
    }
    own(try_grant(
        &s,
        &rx1_manager.token,
        &rx1_manager.uid,
        "RX1",
        "sponsor",
        &[ROLE],
        &[],
    )
    .await
    .map(|_| ()));
    own(try_grant(&s, t, &ram.uid, "X26", "ra-agent", &[], &[])
        .await
        .map(|_| ()));
    own(
        request_position(&s, &rx1_manager.token, &rx1_manager.uid, "RX1", ROLE)
            .await
            .map(|_| ()),
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "RAs acting on their own record");
    for (action, n) in [
        ("position.assign", 2),
        ("identity.check", 1),
        ("card.issue", 1),
        ("card.cancel", 1),
        ("card.unlock", 1),
        ("activation.reissue", 1),
        ("ra_role.assign", 2),
        ("position_request.create", 1),
    ] {
        s.assert_audited(action, "own_record", n).await;
    }

    // Looking at one's own record is fine; others act on it.
    let _: Person = s
        .get(Some(&agent.token), &format!("/api/v1/ra/people/{me}"))
        .await
        .expect("an RA reads their own profile");
    s.assign_position(&rx1_manager.token, me, "RX1", ROLE)
        .await
        .expect("the RA Manager assigns the agent a position");
    s.assert_audit_intact().await;
}

/// A Sponsor grants only the roles and activities it sponsors and never a prescribing activity
/// (the configured `--prescribing-activity` list); RA Managers and RA Agents grant any; only RA
/// Managers give RA roles, and only at their own organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_ra_may_grant_is_limited_by_its_role() {
    let s = start_with(|c| {
        c.signing.prescribing_activities = vec!["B0420".to_owned(), "B1234".to_owned()];
    })
    .await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let rx1_manager = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let sponsor = sponsor_with(&s, t, "RX1", &[ROLE], &["B0570", "B0068"]).await;
    let clinician = s.create_person(t, "RX1").await;
    let candidate = s.create_person(t, "RX1").await;
    let before = s.snapshot().await;

    assert_api_error(
        s.assign_position_with(&sponsor.token, &clinician, "RX1", ROLE, &["B0570", "B0420"])
            .await,
        403,
        "prescribing_activity_not_permitted",
    );
    assert_api_error(
        s.assign_position_with(&sponsor.token, &clinician, "RX1", ROLE, &["B0570", "B9999"])
            .await,
        403,
        "sponsor_may_not_assign_activity",
    );
    assert_api_error(
        s.assign_position_with(&sponsor.token, &clinician, "RX1", "S8000:G8000:R8001", &[])
            .await,
        403,
        "sponsor_may_not_assign",
    );
    // Sponsors cannot be given prescribing activities, from the configured list too.
    for code in ["B0420", "B1234"] {
        assert_api_error(
            try_grant(
                &s,
                &rx1_manager.token,
                &candidate,
                "RX1",
                "sponsor",
                &[ROLE],
                &[code],
            )
            .await,
            400,
            "sponsor_prescribing_activity",
        );
    }
    // Hostile grants.
    assert_api_error(
        try_grant(
            &s,
            &rx1_manager.token,
            &candidate,
            "RX1",
            "ra-agent",
            &[],
            &["B0570"],
        )
        .await,
        400,
        "invalid_request",
    );
    assert_api_error(
        try_grant(
            &s,
            &rx1_manager.token,
            &candidate,
            "RX1",
            "sponsor",
            &[ROLE],
            &["B05'0"],
        )
        .await,
        400,
        "invalid_activity_code",
    );
    // Who gives which RA role: RA Managers only, only at their organisation.
    assert_api_error(
        try_grant(&s, &agent.token, &candidate, "RX1", "sponsor", &[ROLE], &[]).await,
        403,
        "ra_role_not_permitted",
    );
    assert_api_error(
        try_grant(
            &s,
            &rx1_manager.token,
            &candidate,
            "X26",
            "ra-manager",
            &[],
            &[],
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        try_grant(
            &s,
            &rx1_manager.token,
            &candidate,
            "RY2",
            "ra-agent",
            &[],
            &[],
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "grants beyond the granting role");
    s.assert_audited("position.assign", "prescribing_activity_not_permitted", 1)
        .await;
    s.assert_audited("position.assign", "sponsor_may_not_assign_activity", 1)
        .await;
    s.assert_audited("ra_role.assign", "sponsor_prescribing_activity", 2)
        .await;

    // Honest paths.
    s.assign_position_with(&sponsor.token, &clinician, "RX1", ROLE, &["B0570", "B0068"])
        .await
        .expect("a Sponsor assigns what it sponsors");
    s.assign_position_with(
        &agent.token,
        &clinician,
        "RX1",
        "S8000:G8000:R8001",
        &["B0570", "B0420"],
    )
    .await
    .expect("an RA Agent grants a prescribing activity");
    try_grant(
        &s,
        &rx1_manager.token,
        &candidate,
        "RX1",
        "sponsor",
        &[ROLE],
        &["B0570"],
    )
    .await
    .expect("an RA Manager makes a Sponsor");
    let p = s.person(t, &candidate).await;
    assert_eq!(
        p.ra_roles[0].assignable_activities,
        vec!["B0570".to_owned()]
    );
    s.assert_audit_intact().await;
}

//! RA permissions: each RA role may do only what the CIM matrix allows, only in its own
//! organisation(s); requests without a live session are refused.

use vsc_proto::{
    Card, CardWithCode, CreateOrganisation, CreatePerson, LinkKind, Organisation, Person,
};

use crate::common::{assert_api_error, is_link, start};
use crate::ra_takeover::{cancel_body, sponsor_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ra_roles_and_organisations_are_enforced() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let checker = s.new_ra(t, "RX1", "id-checker", &[]).await;
    let sponsor = sponsor_with(&s, t, "RX1", &["S8000:G8000:R8000"], &["B0570"]).await;
    let lsa = s
        .new_ra(t, "RX1", "local-smartcard-administrator", &[])
        .await;
    let at_ry2 = s.create_person(t, "RY2").await;
    s.id_check(t, &at_ry2, "RY2").await;
    let at_rx1 = s.create_person(t, "RX1").await;
    s.id_check(t, &at_rx1, "RX1").await;
    let before = s.snapshot().await;

    // An RA Agent at RX1: not for a person of RY2, not an organisation.
    assert_api_error(
        s.try_issue_card(&agent.token, &at_ry2, "RY2").await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.try_issue_card(&agent.token, &at_ry2, "RX1").await,
        409,
        "person_not_in_organisation",
    );
    assert_api_error(
        s.get::<Person>(Some(&agent.token), &format!("/api/v1/ra/people/{at_ry2}"))
            .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.post::<_, Person>(
            Some(&agent.token),
            "/api/v1/ra/people",
            &CreatePerson {
                given_name: "Out".to_owned(),
                family_name: "Side".to_owned(),
                email: None,
                organisation: "RY2".to_owned(),
            },
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.post::<_, Organisation>(
            Some(&agent.token),
            "/api/v1/ra/organisations",
            &CreateOrganisation {
                ods_code: "RZ3".to_owned(),
                name: "Not Allowed Trust".to_owned(),
            },
        )
        .await,
        403,
        "ra_role_not_permitted",
    );

    // An ID Checker does not issue cards.
    assert_api_error(
        s.try_issue_card(&checker.token, &at_rx1, "RX1").await,
        403,
        "ra_role_not_permitted",
    );

    // A Sponsor assigns only the roles it sponsors.
    assert_api_error(
        s.assign_position(&sponsor.token, &at_rx1, "RX1", "S8000:G8000:R8001")
            .await,
        403,
        "sponsor_may_not_assign",
    );

    // A Local Smartcard Administrator does not cancel cards.
    let cancel_path = format!("/api/v1/ra/cards/{}/cancel", agent.card_id);
    let cancel = cancel_body("superseded", "testing the LSA's rights");
    assert_api_error(
        s.post::<_, Card>(Some(&lsa.token), &cancel_path, &cancel)
            .await,
        403,
        "ra_role_not_permitted",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "RA outside its role or organisation");
    assert_eq!(s.card_state(&agent.card_id).await, "active");

    // What each of them may do.
    let person = s
        .assign_position(&sponsor.token, &at_rx1, "RX1", "S8000:G8000:R8000")
        .await
        .expect("a Sponsor assigns a role it sponsors");
    assert_eq!(person.positions.len(), 1);
    assert_eq!(person.positions[0].role_code, "S8000:G8000:R8000");
    let unlock: CardWithCode = s
        .post(
            Some(&lsa.token),
            &format!("/api/v1/ra/cards/{}/unlock", agent.card_id),
            &serde_json::json!({}),
        )
        .await
        .expect("an LSA unlocks a card of its organisation");
    assert!(is_link(&unlock.code.url, LinkKind::Unlock), "{unlock:?}");
    s.person(&checker.token, &at_rx1).await;
    s.issue_card(&agent.token, &at_rx1, "RX1").await;

    for (action, code, actor) in [
        ("card.issue", "ra_outside_organisation", &agent.uid),
        ("card.issue", "person_not_in_organisation", &agent.uid),
        ("person.create", "ra_outside_organisation", &agent.uid),
        ("organisation.create", "ra_role_not_permitted", &agent.uid),
        ("card.issue", "ra_role_not_permitted", &checker.uid),
        ("position.assign", "sponsor_may_not_assign", &sponsor.uid),
        ("card.cancel", "ra_role_not_permitted", &lsa.uid),
    ] {
        let events = s.assert_audited(action, code, 1).await;
        assert_eq!(&events[0].actor, actor, "{action} {code}");
    }
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_live_session_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let create = CreatePerson {
        given_name: "No".to_owned(),
        family_name: "Session".to_owned(),
        email: None,
        organisation: "X26".to_owned(),
    };
    let before = s.snapshot().await;

    assert_api_error(
        s.get::<Person>(None, "/api/v1/ra/me").await,
        401,
        "unauthenticated",
    );
    assert_api_error(
        s.post::<_, Person>(None, "/api/v1/ra/people", &create)
            .await,
        401,
        "unauthenticated",
    );
    assert_api_error(
        s.get::<Person>(Some("garbage"), "/api/v1/ra/me").await,
        401,
        "session_expired",
    );
    assert_api_error(
        s.post::<_, Person>(Some("garbage"), "/api/v1/ra/people", &create)
            .await,
        401,
        "session_expired",
    );
    let me: Person = s
        .get(Some(&ram.token), "/api/v1/ra/me")
        .await
        .expect("a live session works");
    assert_eq!(me.uid, ram.uid);

    // Sessions last an hour.
    s.clock.advance(time::Duration::hours(2));
    assert_api_error(
        s.get::<Person>(Some(&ram.token), "/api/v1/ra/me").await,
        401,
        "session_expired",
    );
    assert_api_error(
        s.post::<_, Person>(Some(&ram.token), "/api/v1/ra/people", &create)
            .await,
        401,
        "session_expired",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "requests without a live session");

    // Signing in again works.
    let token = s.login(&ram.phone).await;
    let _: Person = s
        .get(Some(&token), "/api/v1/ra/me")
        .await
        .expect("a new session works");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_ras_card_ends_their_console_session() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    s.get::<Person>(Some(&agent.token), "/api/v1/ra/me")
        .await
        .expect("the agent's session works before the cancellation");
    let _: Card = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{}/cancel", agent.card_id),
            &cancel_body("cessation-of-operation", "left the trust"),
        )
        .await
        .expect("the RA Manager cancels the agent's card");
    assert_api_error(
        s.get::<Person>(Some(&agent.token), "/api/v1/ra/me").await,
        401,
        "session_expired",
    );
    s.assert_audited("ra.session", "session_expired", 1).await;
    s.assert_audit_intact().await;
}

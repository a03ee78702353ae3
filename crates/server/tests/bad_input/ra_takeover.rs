//! Issue 9, item 1: the cross-organisation takeover that was reproduced against a running server.
//! An RA Agent at RX1 assigned a position at RX1 to a person registered only at RY2, which put the
//! person into RX1's scope; from then on the same RA could view them, cancel their card and issue
//! a new one to a phone of their choosing. Each step of that attack must now be refused, change
//! nothing and be audited; an RA may not act on their own record either.

use vsc_proto::{CancelCard, Card, Person};

use crate::common::{assert_api_error, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_cannot_pull_another_trusts_person_into_scope() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let attacker = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let (victim, victim_card) = s.person_with_card(t, "RY2").await;
    let before = s.snapshot().await;

    // Step 1 of the attack: a position at the attacker's organisation.
    assert_api_error(
        s.assign_position(&attacker.token, &victim, "RX1", "S8000:G8000:R8000")
            .await,
        403,
        "position_request_needed",
    );
    // Nothing that follows from being in scope works either.
    assert_api_error(
        s.get::<Person>(
            Some(&attacker.token),
            &format!("/api/v1/ra/people/{victim}"),
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        s.post::<_, Card>(
            Some(&attacker.token),
            &format!("/api/v1/ra/cards/{}/cancel", victim_card.card.id),
            &CancelCard {
                reason_code: Some("key-compromise".to_owned()),
                invalidity_date: None,
                reason: "takeover".to_owned(),
            },
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    assert!(
        s.try_issue_card(&attacker.token, &victim, "RX1")
            .await
            .is_err(),
        "an RA at RX1 must not issue a card to a person of RY2"
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "the cross-organisation takeover");
    s.assert_audited("position.assign", "position_request_needed", 1)
        .await;

    // The honest path still works: a national RA Manager may give the first position at RX1,
    // and an RA of the person's own organisation acts as before.
    s.assign_position(t, &victim, "RX1", "S8000:G8000:R8000")
        .await
        .expect("a national RA Manager assigns across organisations");
    let home_agent = s.new_ra(t, "RY2", "ra-agent", &[]).await;
    let _: Person = s
        .get(
            Some(&home_agent.token),
            &format!("/api/v1/ra/people/{victim}"),
        )
        .await
        .expect("the home organisation's RA sees the person");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_may_not_act_on_their_own_record() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let before = s.snapshot().await;

    assert_api_error(
        s.assign_position(&agent.token, &agent.uid, "RX1", "S8000:G8000:R8000")
            .await,
        403,
        "own_record",
    );
    assert_api_error(
        s.post::<_, Card>(
            Some(&agent.token),
            &format!("/api/v1/ra/cards/{}/cancel", agent.card_id),
            &CancelCard {
                reason_code: Some("superseded".to_owned()),
                invalidity_date: None,
                reason: "my own card".to_owned(),
            },
        )
        .await,
        403,
        "own_record",
    );
    assert_api_error(
        s.try_issue_card(&agent.token, &agent.uid, "RX1").await,
        403,
        "own_record",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "acting on one's own record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sponsor_never_grants_a_prescribing_activity() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let sponsor = s.new_ra(t, "RX1", "sponsor", &["S8000:G8000:R8000"]).await;
    let person = s.create_person(t, "RX1").await;
    let before = s.snapshot().await;
    let refused = s
        .assign_position_with(
            &sponsor.token,
            &person,
            "RX1",
            "S8000:G8000:R8000",
            &["B0420"],
        )
        .await;
    assert!(refused.is_err(), "a Sponsor granted B0420: {refused:?}");
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "a Sponsor granting a prescribing activity");
    // An RA Agent of the organisation may.
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    s.assign_position_with(
        &agent.token,
        &person,
        "RX1",
        "S8000:G8000:R8000",
        &["B0420"],
    )
    .await
    .expect("an RA Agent grants a prescribing activity");
}

//! Taking things away: ending a position (`POST /api/v1/ra/positions/{id}/end`) and removing an
//! RA role (`POST /api/v1/ra/people/{uid}/ra-roles/remove`). Each is allowed to whoever may
//! grant it, refused outside the caller's organisations, on the caller's own record, twice, and
//! for hostile ids, with nothing changed; an ended position ends the sessions acting in it and
//! can be assigned again; a removed RA role stops the RA at their next call.

use vsc_proto::signin::{SelectRole, SessionInfo};
use vsc_proto::{Person, RemoveRaRole};

use crate::common::{TestServer, assert_api_error, start};
use crate::ra_takeover::sponsor_with;

const ROLE: &str = "S8000:G8000:R8000";

async fn end(
    s: &TestServer,
    token: &str,
    id: &str,
) -> Result<Person, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/positions/{id}/end"),
        &serde_json::json!({}),
    )
    .await
}

async fn remove(
    s: &TestServer,
    token: &str,
    uid: &str,
    org: &str,
    role: &str,
) -> Result<Person, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/people/{uid}/ra-roles/remove"),
        &RemoveRaRole {
            role: role.to_owned(),
            organisation: org.to_owned(),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_position_is_gone_with_its_sessions_and_can_be_given_again() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let outsider = s.new_ra(t, "RY2", "ra-agent", &[]).await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let person = s
        .assign_position(t, &uid, "RX1", ROLE)
        .await
        .expect("position");
    let position = person.positions[0].id.clone();
    let own = s
        .assign_position(t, &agent.uid, "RX1", ROLE)
        .await
        .expect("the agent's own position")
        .positions[0]
        .id
        .clone();

    // The person signs in and acts in the position.
    let (request, auth) = s.sign_in_agent(&phone, &uid, "pc-1").await;
    let info: SessionInfo = s
        .agent_post(
            &auth,
            "/api/v1/session/role",
            &SelectRole {
                position_id: position.clone(),
            },
        )
        .await
        .expect("role selected");
    assert_eq!(
        info.selected_role.map(|r| r.position_id),
        Some(position.clone())
    );

    let before = s.snapshot().await;
    // Another organisation's RA, the agent on their own position, hostile and unknown ids.
    assert_api_error(
        end(&s, &outsider.token, &position).await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(end(&s, &agent.token, &own).await, 403, "own_record");
    for hostile in ["..%2F..%2Fadmin", "x%27%20OR%201%3D1", &"a".repeat(200)] {
        assert_api_error(
            end(&s, &agent.token, hostile).await,
            400,
            "unknown_position",
        );
    }
    assert_api_error(
        end(&s, &agent.token, "0123456789abcdef").await,
        404,
        "unknown_position",
    );
    s.assert_unchanged(&before, &s.snapshot().await, "refused position ends");
    s.assert_audited("position.end", "ra_outside_organisation", 1)
        .await;
    s.assert_audited("position.end", "own_record", 1).await;
    s.validate(&auth.ticket)
        .await
        .expect("the session is still live");

    // The RA Agent of the person's organisation ends it: gone from the person, the session
    // acting in it ended, the end audited with who and what.
    let after = end(&s, &agent.token, &position).await.expect("ended");
    assert!(after.positions.is_empty(), "{:?}", after.positions);
    assert_eq!(
        s.session_end(&request.request_id).await.1.as_deref(),
        Some("position-ended")
    );
    assert_api_error(s.validate(&auth.ticket).await, 401, "session_ended");
    let events = s.audit_events("position.ended").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, agent.uid);
    assert_eq!(events[0].subject, uid);
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(detail["position_id"], position.as_str());
    assert_eq!(detail["role_code"], ROLE);
    assert_eq!(detail["sessions_ended"].as_array().map(Vec::len), Some(1));

    // A replay finds nothing to end; the position can be given again and keeps its id.
    assert_api_error(
        end(&s, &agent.token, &position).await,
        404,
        "unknown_position",
    );
    let again = s
        .assign_position(&agent.token, &uid, "RX1", ROLE)
        .await
        .expect("again");
    assert_eq!(again.positions.len(), 1);
    assert_eq!(again.positions[0].id, position);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sponsor_ends_only_the_positions_it_could_give() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let sponsor = sponsor_with(&s, t, "RX1", &[ROLE], &["B0570"]).await;
    let uid = s.create_person(t, "RX1").await;
    let sponsored = s
        .assign_position(t, &uid, "RX1", ROLE)
        .await
        .expect("sponsored");
    let other = s
        .assign_position(t, &uid, "RX1", "S8000:G8000:R8001")
        .await
        .expect("not sponsored");
    let sponsored_id = sponsored.positions[0].id.clone();
    // Both are created in the same second, so find the second one by its role, not its place.
    let other_id = other
        .positions
        .iter()
        .find(|p| p.role_code == "S8000:G8000:R8001")
        .unwrap()
        .id
        .clone();
    assert_api_error(
        end(&s, &sponsor.token, &other_id).await,
        403,
        "sponsor_may_not_assign",
    );
    let left = end(&s, &sponsor.token, &sponsored_id).await.expect("ended");
    assert_eq!(
        left.positions
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        [other_id.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_role_is_removed_by_an_ra_manager_and_stops_the_ra_at_once() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let rx1_manager = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let ry2_manager = s.new_ra(t, "RY2", "ra-manager", &[]).await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    let colleague = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    s.person(&agent.token, &colleague.uid).await;

    let before = s.snapshot().await;
    // Not an RA Manager; another organisation's manager; one's own role; unknown and hostile
    // values; a role not held.
    assert_api_error(
        remove(&s, &agent.token, &colleague.uid, "RX1", "ra-agent").await,
        403,
        "ra_role_not_permitted",
    );
    assert_api_error(
        remove(&s, &ry2_manager.token, &agent.uid, "RX1", "ra-agent").await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        remove(
            &s,
            &rx1_manager.token,
            &rx1_manager.uid,
            "RX1",
            "ra-manager",
        )
        .await,
        403,
        "own_record",
    );
    assert_api_error(
        remove(&s, &rx1_manager.token, &agent.uid, "RX1", "superuser").await,
        400,
        "invalid_ra_role",
    );
    assert_api_error(
        remove(
            &s,
            &rx1_manager.token,
            &agent.uid,
            "RX1' OR '1'='1",
            "ra-agent",
        )
        .await,
        400,
        "invalid_ods_code",
    );
    assert_api_error(
        remove(&s, &rx1_manager.token, &agent.uid, "RX1", "sponsor").await,
        404,
        "ra_role_not_held",
    );
    let extra_field = s
        .raw_http()
        .post(
            s.url
                .join(&format!("api/v1/ra/people/{}/ra-roles/remove", agent.uid))
                .unwrap(),
        )
        .bearer_auth(&rx1_manager.token)
        .header("content-type", "application/json")
        .body(r#"{"role":"ra-agent","organisation":"RX1","also":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        extra_field.status().as_u16(),
        400,
        "unknown fields are refused"
    );
    s.assert_unchanged(&before, &s.snapshot().await, "refused role removals");
    s.assert_audited("ra_role.remove", "ra_outside_organisation", 1)
        .await;

    // Removed: audited; the agent's very next call is refused, and a replay finds nothing.
    let person = remove(&s, &rx1_manager.token, &agent.uid, "RX1", "ra-agent")
        .await
        .expect("removed");
    assert!(person.ra_roles.is_empty(), "{:?}", person.ra_roles);
    let events = s.audit_events("ra_role.removed").await;
    assert_eq!(
        (events.len(), events[0].actor.as_str()),
        (1, rx1_manager.uid.as_str())
    );
    assert_api_error(
        s.get::<Person>(
            Some(&agent.token),
            &format!("/api/v1/ra/people/{}", colleague.uid),
        )
        .await,
        403,
        "not_an_ra",
    );
    assert_api_error(
        remove(&s, &rx1_manager.token, &agent.uid, "RX1", "ra-agent").await,
        404,
        "ra_role_not_held",
    );
    s.assert_audit_intact().await;
}

/// A position was what put the person in another organisation's scope: once it ends, that
/// organisation's RAs neither find nor see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_position_takes_the_person_out_of_that_organisations_scope() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let ry2_agent = s.new_ra(t, "RY2", "ra-agent", &[]).await;
    let uid = s.create_person(t, "RX1").await;
    let position = s
        .assign_position(t, &uid, "RY2", ROLE)
        .await
        .expect("a national RA Manager places them at RY2")
        .positions[0]
        .id
        .clone();
    let found = |s: &TestServer| {
        let uid = uid.clone();
        let pool = s.state.store().pool().clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            vsc_store::console::search_people(&mut conn, &uid, Some(&["RY2".to_owned()]), 20, 0)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(found(&s).await, 1);
    s.person(&ry2_agent.token, &uid).await;

    end(&s, t, &position).await.expect("ended");
    assert_eq!(found(&s).await, 0, "search at RY2 no longer finds them");
    assert_api_error(
        s.get::<Person>(Some(&ry2_agent.token), &format!("/api/v1/ra/people/{uid}"))
            .await,
        403,
        "ra_outside_organisation",
    );
}

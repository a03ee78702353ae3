//! Malformed identifiers and bodies: each refused with its own code before anything is written.

use vsc_proto::{CreatePerson, Person};

use crate::common::{assert_api_error, start};

fn create_person_at(org: &str) -> CreatePerson {
    CreatePerson {
        given_name: "Ann".to_owned(),
        family_name: "Other".to_owned(),
        email: None,
        organisation: org.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_identifiers_and_bodies_are_refused_and_change_nothing() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let target = s.create_person(t, "X26").await;
    let before = s.snapshot().await;

    // A UID is 12 digits.
    assert_api_error(
        s.get::<Person>(Some(t), "/api/v1/ra/people/12345").await,
        400,
        "invalid_uid",
    );
    assert_api_error(
        s.assign_position(t, "12345", "X26", "S8000:G8000:R8000")
            .await,
        400,
        "invalid_uid",
    );

    // An ODS code is 3 to 8 letters and digits; a well-formed one must also be registered.
    assert_api_error(
        s.post::<_, Person>(Some(t), "/api/v1/ra/people", &create_person_at("R-1"))
            .await,
        400,
        "invalid_ods_code",
    );
    assert_api_error(
        s.post::<_, Person>(Some(t), "/api/v1/ra/people", &create_person_at("ZZZ99"))
            .await,
        404,
        "unknown_organisation",
    );

    // An NRBAC role code is S…:G…:R….
    assert_api_error(
        s.assign_position(t, &target, "X26", "S8000-G8000-R8000")
            .await,
        400,
        "invalid_role_code",
    );

    // A body that is not JSON at all, and JSON of the wrong shape, on the RA and device APIs.
    let http = s.raw_http();
    for path in ["api/v1/ra/people", "api/v1/enrol"] {
        let response = http
            .post(s.url.join(path).expect("url"))
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body("{\"given_name\": \"Ann\",")
            .send()
            .await
            .expect("send a malformed body");
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: serde_json::Value = response.json().await.expect("an error body");
        assert_eq!(body["error"]["code"], "invalid_request", "{path}: {body}");
    }
    assert_api_error(
        s.post::<_, Person>(
            Some(t),
            "/api/v1/ra/people",
            &serde_json::json!({"given_name": "Ann", "organisation": 26}),
        )
        .await,
        400,
        "invalid_request",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "malformed identifiers");
    let person = s.person(t, &target).await;
    assert!(person.positions.is_empty(), "{person:?}");

    // Refused changes are audited, with their error code; refused reads and bodies that never
    // reached a handler are not (see the report).
    let events = s
        .assert_audited("person.create", "invalid_ods_code", 1)
        .await;
    assert_eq!(events[0].actor, ram.uid);
    s.assert_audited("person.create", "unknown_organisation", 1)
        .await;
    s.assert_audited("position.assign", "invalid_role_code", 1)
        .await;
    s.assert_audited("position.assign", "invalid_uid", 1).await;
    s.assert_audit_intact().await;
}

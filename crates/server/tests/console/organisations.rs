//! The organisations page: a national RA Manager registers an organisation and sets its session
//! limits through the forms; an RA Agent cannot, through the page or a hand-crafted POST; a form
//! without its CSRF token writes nothing.

use crate::common::start;
use crate::signin::console_sign_in;
use crate::support::Browser;

async fn limits(s: &crate::common::TestServer, ods: &str) -> Option<(i64, i64)> {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::signin::session_limits(&mut conn, ods)
        .await
        .unwrap()
}

async fn org_exists(s: &crate::common::TestServer, ods: &str) -> bool {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::repo::organisation(&mut conn, ods)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_ra_manager_registers_an_organisation_and_sets_its_session_limits() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("href=\"/ra/organisations\""));
    assert!(dashboard.body.contains("href=\"/ra/audit\""));

    let list = b.get("/ra/organisations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("Register an organisation"),
        "{}",
        list.body
    );
    assert!(list.body.contains("<label for=\"ods_code\">"));
    assert!(list.body.contains("<label for=\"name\">"));
    let csrf = list.csrf();

    // Without the CSRF token: 403, nothing written.
    let forged = b
        .post(
            "/ra/organisations",
            &[("ods_code", "RX9"), ("name", "Forged Trust")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let wrong = b
        .post(
            "/ra/organisations",
            &[
                ("csrf", "nope"),
                ("ods_code", "RX9"),
                ("name", "Forged Trust"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert!(!org_exists(&s, "RX9").await);

    let created = b
        .post(
            "/ra/organisations",
            &[
                ("csrf", &csrf),
                ("ods_code", "rx9"),
                ("name", "Riverside Trust"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let back = created.location.unwrap();
    assert_eq!(back, "/ra/organisations?created=RX9");
    let shown = b.get(&back).await;
    assert!(
        shown.body.contains("Organisation RX9 registered."),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("Riverside Trust"));
    assert!(org_exists(&s, "RX9").await);
    let orgs: Vec<vsc_proto::Organisation> = s
        .get(Some(&ram.token), "/api/v1/ra/organisations")
        .await
        .unwrap();
    assert!(
        orgs.iter()
            .any(|o| o.ods_code == "RX9" && o.name == "Riverside Trust")
    );

    // Registering it again: the API's refusal, on the page.
    let again = b
        .post(
            "/ra/organisations",
            &[
                ("csrf", &csrf),
                ("ods_code", "RX9"),
                ("name", "Riverside Trust"),
            ],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body.contains("RX9 is already registered"),
        "{}",
        again.body
    );

    // Session limits: a CSRF-less POST writes nothing; the form's does.
    let before = limits(&s, "RX9").await.unwrap();
    let forged = b
        .post(
            "/ra/organisations/RX9/session-limits",
            &[("idle_minutes", "20"), ("max_hours", "6")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(limits(&s, "RX9").await.unwrap(), before);
    assert!(
        shown
            .body
            .contains("action=\"/ra/organisations/RX9/session-limits\""),
        "{}",
        shown.body
    );
    let set = b
        .post(
            "/ra/organisations/RX9/session-limits",
            &[("csrf", &csrf), ("idle_minutes", "20"), ("max_hours", "6")],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    assert_eq!(
        set.location.as_deref(),
        Some("/ra/organisations?limits=RX9")
    );
    assert_eq!(limits(&s, "RX9").await, Some((1200, 21_600)));
    let shown = b.get("/ra/organisations?limits=RX9").await;
    assert!(
        shown.body.contains("Session limits of RX9 saved."),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("20 min"));

    // Out-of-range and non-numeric limits: the reason, not an error page; nothing written.
    let bad = b
        .post(
            "/ra/organisations/RX9/session-limits",
            &[("csrf", &csrf), ("idle_minutes", "600"), ("max_hours", "1")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("not shorter than the idle timeout"),
        "{}",
        bad.body
    );
    let words = b
        .post(
            "/ra/organisations/RX9/session-limits",
            &[("csrf", &csrf), ("idle_minutes", "ten"), ("max_hours", "6")],
        )
        .await;
    assert_eq!(words.status, 400, "{}", words.body);
    assert!(words.body.contains("as numbers"));
    assert_eq!(limits(&s, "RX9").await, Some((1200, 21_600)));
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_agent_cannot_register_organisations_or_set_another_organisations_limits() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);

    let list = b.get("/ra/organisations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("RY2"), "every RA sees the list");
    assert!(!list.body.contains("Register an organisation"));
    assert!(
        list.body
            .contains("action=\"/ra/organisations/RX1/session-limits\"")
    );
    assert!(
        !list
            .body
            .contains("action=\"/ra/organisations/RY2/session-limits\"")
    );
    let csrf = list.csrf();

    // A hand-crafted POST: the API refuses, the page says so, nothing is written.
    let before = s.snapshot().await;
    let refused = b
        .post(
            "/ra/organisations",
            &[
                ("csrf", &csrf),
                ("ods_code", "RZ3"),
                ("name", "Agent's Trust"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Not done"), "{}", refused.body);
    assert!(!org_exists(&s, "RZ3").await);

    let ry2 = limits(&s, "RY2").await;
    let refused = b
        .post(
            "/ra/organisations/RY2/session-limits",
            &[
                ("csrf", &csrf),
                ("idle_minutes", "600"),
                ("max_hours", "24"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Not done"));
    assert_eq!(limits(&s, "RY2").await, ry2);
    // Nor their own organisation's: session policy is the RA Manager's.
    let rx1 = limits(&s, "RX1").await;
    let refused = b
        .post(
            "/ra/organisations/RX1/session-limits",
            &[
                ("csrf", &csrf),
                ("idle_minutes", "600"),
                ("max_hours", "24"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(limits(&s, "RX1").await, rx1);
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "an RA Agent's organisation forms");
    // The refusals are the API's own audit events.
    assert!(!s.audit_failures("organisation.create").await.is_empty());
    assert!(s.audit_failures("organisation.session_limits").await.len() >= 2);
    s.assert_audit_intact().await;
}

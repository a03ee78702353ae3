//! The organisations page: a national RA Manager registers an organisation and sets its session
//! limits through the forms; an RA Agent cannot, through the page or a hand-crafted POST; a form
//! without its CSRF token writes nothing. The workstation policy: an organisation's RA Manager
//! sets it through the form (the API's handler, its audit event); a CSRF-less or hostile POST,
//! an RA Agent's and another organisation's RA Manager's change nothing.

use crate::common::start;
use crate::signin::console_sign_in;
use crate::support::Browser;

async fn limits(s: &crate::common::TestServer, ods: &str) -> Option<(i64, i64)> {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::signin::session_limits(&mut conn, ods)
        .await
        .unwrap()
}

/// The workstation policy of `ods`, straight from the store.
async fn policy(s: &crate::common::TestServer, ods: &str) -> Option<bool> {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::workstation::allows_unregistered(&mut conn, ods)
        .await
        .unwrap()
}

/// The workstation policy of `ods` as the RA API answers `token`.
async fn api_policy(s: &crate::common::TestServer, token: &str, ods: &str) -> bool {
    let p: vsc_proto::workstation::WorkstationPolicy = s
        .get(
            Some(token),
            &format!("/api/v1/ra/organisations/{ods}/workstation-policy"),
        )
        .await
        .unwrap();
    p.allow_unregistered_workstations
}

/// The successful `organisation.workstation_policy_set` events: actor, subject, detail.
async fn policy_events(s: &crate::common::TestServer) -> Vec<(String, String, serde_json::Value)> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT actor, subject, detail FROM audit_events
         WHERE action = 'organisation.workstation_policy_set' AND outcome = 'success' ORDER BY seq",
    )
    .fetch_all(s.state.store().pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(a, sub, d)| (a, sub, serde_json::from_str(&d).unwrap()))
        .collect()
}

/// The policy form's action for `ods`.
fn policy_action(ods: &str) -> String {
    format!("action=\"/ra/organisations/{ods}/workstation-policy\"")
}

/// The policy form of `ods` on the page.
fn policy_form(body: &str, ods: &str) -> String {
    let at = body.find(&policy_action(ods)).expect("the policy form");
    let end = at + body[at..].find("</form>").unwrap();
    body[at..end].to_owned()
}

/// Whether the policy checkbox of `ods` is ticked on the page.
fn ticked(body: &str, ods: &str) -> bool {
    let at = body
        .find(&format!("<input id=\"allow-unregistered-{ods}\""))
        .expect("the policy checkbox");
    let tag = &body[at..at + body[at..].find('>').unwrap()];
    tag.contains(" checked")
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
    // A national RA Manager may set every organisation's workstation policy: the form is there.
    assert!(shown.body.contains(&policy_action("RX9")), "{}", shown.body);

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
    // Session limits are an RA Manager's: no form offered to an RA Agent, anywhere.
    for ods in ["RX1", "RY2"] {
        assert!(
            !list.body.contains(&format!(
                "action=\"/ra/organisations/{ods}/session-limits\""
            )),
            "{ods}: {}",
            list.body
        );
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_manager_sets_the_workstation_policy_through_the_form() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let manager = s.new_ra(&ram.token, "RX1", "ra-manager", &[]).await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &manager.uid, &manager.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);

    // The form: only for their own organisation, labelled, in a fieldset, no inline script or
    // style (the page's CSP forbids them).
    let list = b.get("/ra/organisations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&policy_action("RX1")), "{}", list.body);
    assert!(!list.body.contains(&policy_action("RY2")), "{}", list.body);
    assert!(list.body.contains("<h2>Workstation policy</h2>"));
    let form = policy_form(&list.body, "RX1");
    assert!(form.contains("<fieldset><legend>RX1 – "), "{form}");
    assert!(
        form.contains("<label for=\"allow-unregistered-RX1\">"),
        "{form}"
    );
    assert!(
        form.contains("aria-describedby=\"allow-unregistered-hint-RX1\""),
        "{form}"
    );
    assert!(
        form.contains("<p class=\"hint\" id=\"allow-unregistered-hint-RX1\">"),
        "{form}"
    );
    assert!(form.contains("name=\"csrf\""), "{form}");
    assert!(
        !form.contains("<script") && !form.contains("style="),
        "{form}"
    );
    assert!(
        !form.contains(" onclick=") && !form.contains(" onchange="),
        "{form}"
    );
    assert!(
        !list.body.contains("vsc ra workstation"),
        "no longer read-only"
    );
    assert!(!ticked(&list.body, "RX1"), "the default is no");
    assert!(!api_policy(&s, &manager.token, "RX1").await);
    let csrf = list.csrf();

    // Without the CSRF token, or with a wrong one: 403, nothing written.
    let before = s.snapshot().await;
    let forged = b
        .post(
            "/ra/organisations/RX1/workstation-policy",
            &[("allow_unregistered_workstations", "true")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong = b
        .post(
            "/ra/organisations/RX1/workstation-policy",
            &[
                ("csrf", "nope"),
                ("allow_unregistered_workstations", "true"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(policy(&s, "RX1").await, Some(false));
    s.assert_unchanged(&before, &s.snapshot().await, "a CSRF-less policy form");
    assert!(policy_events(&s).await.is_empty());

    // Ticked: saved through the API's handler, post/redirect/get with a notice.
    let set = b
        .post(
            "/ra/organisations/RX1/workstation-policy",
            &[("csrf", &csrf), ("allow_unregistered_workstations", "true")],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    assert_eq!(
        set.location.as_deref(),
        Some("/ra/organisations?policy=RX1")
    );
    let shown = b.get("/ra/organisations?policy=RX1").await;
    assert!(
        shown.body.contains("Workstation policy of RX1 saved."),
        "{}",
        shown.body
    );
    assert!(ticked(&shown.body, "RX1"));
    assert!(api_policy(&s, &manager.token, "RX1").await);
    assert_eq!(policy(&s, "RY2").await, Some(false), "only RX1 changed");
    let events = policy_events(&s).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, manager.uid);
    assert_eq!(events[0].1, "RX1");
    assert_eq!(
        events[0].2["allow_unregistered_workstations"],
        serde_json::json!(true)
    );

    // Hostile values: a clear refusal, nothing written.
    let before = s.snapshot().await;
    for hostile in [
        vec![("allow_unregistered_workstations", "99999999999999999999")],
        vec![("allow_unregistered_workstations", "yes")],
        vec![("allow_unregistered_workstations", "")],
        vec![
            ("allow_unregistered_workstations", "false"),
            ("allow_unregistered_workstations", "true"),
        ],
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(hostile.iter().copied());
        let bad = b
            .post("/ra/organisations/RX1/workstation-policy", &form)
            .await;
        assert_eq!(bad.status, 400, "{hostile:?}: {}", bad.body);
        assert!(bad.body.contains("Not done"), "{}", bad.body);
        assert!(
            bad.body
                .contains("either ticked (true) or left out (false)"),
            "{}",
            bad.body
        );
    }
    // An organisation that is not one: the API's refusal, escaped on the page.
    let odd = b
        .post(
            "/ra/organisations/%3Cb%3ERX1/workstation-policy",
            &[
                ("csrf", &csrf),
                ("allow_unregistered_workstations", "false"),
            ],
        )
        .await;
    assert_eq!(odd.status, 403, "{}", odd.body);
    assert!(!odd.body.contains("<b>RX1"), "{}", odd.body);
    s.assert_unchanged(&before, &s.snapshot().await, "hostile policy forms");
    assert!(api_policy(&s, &manager.token, "RX1").await);
    assert_eq!(policy_events(&s).await.len(), 1);

    // Unticked: the box is absent from the form, which means no.
    let unset = b
        .post(
            "/ra/organisations/RX1/workstation-policy",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unset.status, 303, "{}", unset.body);
    assert!(!api_policy(&s, &manager.token, "RX1").await);
    let shown = b.get("/ra/organisations?policy=RX1").await;
    assert!(!ticked(&shown.body, "RX1"));
    let events = policy_events(&s).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1].2["allow_unregistered_workstations"],
        serde_json::json!(false)
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_agent_or_another_organisations_manager_cannot_set_the_workstation_policy() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let other = s.new_ra(&ram.token, "RY2", "ra-manager", &[]).await;
    let before = s.snapshot().await;

    // An RA Agent: no form, not even for their own organisation; a hand-crafted POST is the
    // API's refusal.
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let list = b.get("/ra/organisations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(!list.body.contains(&policy_action("RX1")), "{}", list.body);
    assert!(!list.body.contains(&policy_action("RY2")));
    assert!(
        list.body
            .contains("You cannot change the workstation policy of any organisation"),
        "{}",
        list.body
    );
    let csrf = list.csrf();
    for ods in ["RX1", "RY2"] {
        let refused = b
            .post(
                &format!("/ra/organisations/{ods}/workstation-policy"),
                &[("csrf", &csrf), ("allow_unregistered_workstations", "true")],
            )
            .await;
        assert_eq!(refused.status, 403, "{ods}: {}", refused.body);
        assert!(refused.body.contains("Not done"), "{}", refused.body);
        assert!(
            refused.body.contains(&format!(
                "the workstation policy of {ods} is set by an RA Manager"
            )),
            "{}",
            refused.body
        );
    }

    // Another organisation's RA Manager: their own form only; RX1's is refused.
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &other.uid, &other.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let list = b.get("/ra/organisations").await;
    assert!(list.body.contains(&policy_action("RY2")), "{}", list.body);
    assert!(!list.body.contains(&policy_action("RX1")), "{}", list.body);
    let csrf = list.csrf();
    let refused = b
        .post(
            "/ra/organisations/RX1/workstation-policy",
            &[("csrf", &csrf), ("allow_unregistered_workstations", "true")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Not done"), "{}", refused.body);

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "workstation policy forms out of scope");
    assert_eq!(policy(&s, "RX1").await, Some(false));
    assert_eq!(policy(&s, "RY2").await, Some(false));
    assert!(policy_events(&s).await.is_empty());
    // The refusals are the API's own audit events.
    assert_eq!(
        s.assert_audited("organisation.workstation_policy", "not_permitted", 3)
            .await
            .len(),
        3
    );
    s.assert_audit_intact().await;
}

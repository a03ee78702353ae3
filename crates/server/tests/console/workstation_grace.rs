//! Issue 14 on the organisations page: the workstation policy form also sets the unlock grace
//! period (a labelled number field, 0 to 15 minutes, absent is 0) and fast user switching (a
//! labelled checkbox, absent is off), through the API's handler and its audit event; more than
//! 15 minutes, a non-number or a repeated field change nothing; another organisation's RA
//! Manager gets no form for it.

use crate::common::start;
use crate::signin::console_sign_in;
use crate::support::Browser;

/// The workstation policy of `ods`, straight from the store.
async fn stored(s: &crate::common::TestServer, ods: &str) -> vsc_store::workstation::PolicyRow {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::workstation::policy(&mut conn, ods)
        .await
        .unwrap()
        .expect("the organisation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_form_sets_the_grace_period_and_fast_user_switching() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let manager = s.new_ra(&ram.token, "RX1", "ra-manager", &[]).await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &manager.uid, &manager.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);

    let list = b.get("/ra/organisations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        !list
            .body
            .contains("action=\"/ra/organisations/RY2/workstation-policy\""),
        "no form for another organisation"
    );
    let at = list
        .body
        .find("action=\"/ra/organisations/RX1/workstation-policy\"")
        .expect("the policy form");
    let form = &list.body[at..at + list.body[at..].find("</form>").unwrap()];
    // Labelled fields with their hints; the defaults are off.
    assert!(form.contains("<label for=\"unlock-grace-RX1\">"), "{form}");
    assert!(form.contains("<input id=\"unlock-grace-RX1\" name=\"unlock_grace_minutes\" type=\"number\" min=\"0\" max=\"15\""), "{form}");
    assert!(form.contains("value=\"0\""), "{form}");
    assert!(
        form.contains("aria-describedby=\"unlock-grace-hint-RX1\""),
        "{form}"
    );
    assert!(
        form.contains("<label for=\"fast-user-switching-RX1\">"),
        "{form}"
    );
    assert!(
        form.contains("aria-describedby=\"fast-user-switching-hint-RX1\""),
        "{form}"
    );
    let tag_at = form
        .find("<input id=\"fast-user-switching-RX1\"")
        .expect("the switching checkbox");
    assert!(!form[tag_at..tag_at + form[tag_at..].find('>').unwrap()].contains(" checked"));
    let csrf = list.csrf();
    let path = "/ra/organisations/RX1/workstation-policy";

    // Both set: saved through the API's handler, audited.
    let set = b
        .post(
            path,
            &[
                ("csrf", csrf.as_str()),
                ("unlock_grace_minutes", "5"),
                ("fast_user_switching", "true"),
            ],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    let p = stored(&s, "RX1").await;
    assert_eq!((p.unlock_grace_minutes, p.fast_user_switching), (5, true));
    let shown = b.get("/ra/organisations?policy=RX1").await;
    assert!(shown.body.contains("<td>5 min</td>"), "{}", shown.body);
    let events = s.audit_events("organisation.workstation_policy_set").await;
    let last: serde_json::Value = serde_json::from_str(&events.last().unwrap().detail).unwrap();
    assert_eq!(last["unlock_grace_minutes"], 5);

    // Hostile values change nothing.
    for hostile in [
        vec![("unlock_grace_minutes", "16")],
        vec![("unlock_grace_minutes", "-1")],
        vec![("unlock_grace_minutes", "five")],
        vec![("unlock_grace_minutes", "1"), ("unlock_grace_minutes", "2")],
        vec![
            ("unlock_grace_minutes", "3"),
            ("fast_user_switching", "yes"),
        ],
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(hostile.iter().copied());
        let bad = b.post(path, &form).await;
        assert_eq!(bad.status, 400, "{hostile:?}: {}", bad.body);
        assert!(bad.body.contains("Not done"), "{}", bad.body);
    }
    let p = stored(&s, "RX1").await;
    assert_eq!((p.unlock_grace_minutes, p.fast_user_switching), (5, true));

    // Absent fields: off.
    let unset = b.post(path, &[("csrf", csrf.as_str())]).await;
    assert_eq!(unset.status, 303, "{}", unset.body);
    let p = stored(&s, "RX1").await;
    assert_eq!((p.unlock_grace_minutes, p.fast_user_switching), (0, false));
    s.assert_audit_intact().await;
}

//! Signing in to the console: only people holding an RA role get in; the session ends after 15
//! idle minutes and at sign-out.

use crate::common::{Phone, TestServer, start};
use crate::support::{Browser, Page, approve};

/// Follows the console's sign-in from `/ra` with `phone` approving as `uid`; returns the page
/// the browser ends on.
pub async fn console_sign_in(s: &TestServer, b: &mut Browser, uid: &str, phone: &Phone) -> Page {
    let start = b.get("/ra").await;
    assert_eq!(start.status, 303, "{}", start.body);
    assert_eq!(start.location.as_deref(), Some("/ra/signin"));
    let to_provider = b.get("/ra/signin").await;
    assert_eq!(to_provider.status, 303);
    let authorize = to_provider.location.unwrap();
    assert!(authorize.starts_with("/oauth2/authorize?"), "{authorize}");
    let flow = b.get(&authorize).await;
    assert_eq!(flow.status, 303, "{}", flow.body);
    let page_url = flow.location.unwrap();
    let form = b.get(&page_url).await;
    assert!(form.body.contains("vsc RA console"), "{}", form.body);
    let sent = b
        .post(&page_url, &[("csrf", &form.csrf()), ("uid", uid)])
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let shown = b.get(&page_url).await;
    approve(s, phone, shown.number()).await;
    let cont = b
        .post(&format!("{page_url}/continue"), &[("csrf", &shown.csrf())])
        .await;
    assert_eq!(cont.status, 303, "{}", cont.body);
    let callback = cont.location.unwrap();
    assert!(callback.contains("/ra/callback?"), "{callback}");
    let back = b.get(&callback).await;
    if back.status != 303 {
        return back;
    }
    assert_eq!(back.location.as_deref(), Some("/ra"));
    b.get("/ra").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_signs_in_with_the_phone_and_sees_people_in_scope() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, _card, _phone) = s.enrolled_person(&ram.token, "RX1").await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("Dashboard"));
    assert!(b.cookies.contains_key("__Host-vsc-ra"));
    let found = b.get("/ra/people?q=").await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains(&uid), "{}", found.body);

    // By organisation: only that organisation's people; a bad ODS code is named, not searched.
    s.create_org(&ram.token, "RY2").await;
    let elsewhere = s.create_person(&ram.token, "RY2").await;
    let at_rx1 = b.get("/ra/people?q=&org=rx1").await;
    assert!(
        at_rx1.body.contains(&uid) && !at_rx1.body.contains(&elsewhere),
        "{}",
        at_rx1.body
    );
    assert!(at_rx1.body.contains("People at RX1"), "{}", at_rx1.body);
    let at_ry2 = b.get("/ra/people?q=&org=RY2").await;
    assert!(
        at_ry2.body.contains(&elsewhere) && !at_ry2.body.contains(&uid),
        "{}",
        at_ry2.body
    );
    let bad = b.get("/ra/people?q=&org=%3Cb%3E").await;
    assert!(bad.body.contains("is not an ODS code"), "{}", bad.body);
    assert!(
        !bad.body.contains("<b>"),
        "the value is escaped: {}",
        bad.body
    );
    // An RA Agent of RX1 asking for RY2 gets a refusal, not a wider search.
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let mut ab = Browser::new(&s);
    console_sign_in(&s, &mut ab, &agent.uid, &agent.phone).await;
    let outside = ab.get("/ra/people?q=&org=RY2").await;
    assert!(
        outside
            .body
            .contains("RY2 is not one of your organisations"),
        "{}",
        outside.body
    );
    assert!(!outside.body.contains(&elsewhere), "{}", outside.body);
    let inside = ab.get("/ra/people?q=&org=RX1").await;
    assert!(inside.body.contains(&uid), "{}", inside.body);
    let person = b.get(&format!("/ra/people/{uid}")).await;
    assert_eq!(person.status, 200, "{}", person.body);
    assert!(person.body.contains("Identity checks"));
    assert!(
        person.body.contains("Content-Security-Policy")
            || person.headers.contains_key("content-security-policy")
    );
    assert_eq!(person.headers["cache-control"], "no-store");

    // 15 idle minutes end the console session.
    s.clock.advance(time::Duration::minutes(16));
    let later = b.get("/ra").await;
    assert_eq!(later.status, 303);
    assert_eq!(later.location.as_deref(), Some("/ra/signin"));
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_without_an_ra_role_is_turned_away() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let mut b = Browser::new(&s);
    let refused = console_sign_in(&s, &mut b, &uid, &phone).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("cannot use the RA console"));
    assert!(!b.cookies.contains_key("__Host-vsc-ra"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_the_console_session() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200);
    let csrf = dashboard.csrf();
    let kept = b.cookies["__Host-vsc-ra"].clone();
    let kept_sso = b.cookies["__Host-vsc-sso"].clone();
    // Without the CSRF token nothing happens.
    let forged = b.post("/ra/signout", &[("csrf", "x")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(b.get("/ra").await.status, 200);
    let out = b.post("/ra/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 200);
    // The old cookie no longer opens the console.
    let mut replay = Browser::new(&s);
    replay.cookies.insert("__Host-vsc-ra".into(), kept);
    let again = replay.get("/ra").await;
    assert_eq!(again.status, 303);
    // Nor does the browser's sign-in session behind it: signing in again needs the phone
    // (kept cookie replayed too, as on a shared workstation).
    let sso = kept_sso;
    let mut next = Browser::new(&s);
    next.cookies.insert("__Host-vsc-sso".into(), sso);
    let to_provider = next.get("/ra/signin").await;
    let flow = next.get(&to_provider.location.unwrap()).await;
    assert_eq!(flow.status, 303);
    let lands = flow.location.unwrap();
    assert!(
        lands.starts_with("/oauth2/signin/"),
        "single sign-on after sign-out: {lands}"
    );
}

//! The sign-in pages: security headers on every page, a flow that only the browser that
//! started it can continue, CSRF on every form, the UID form's errors, the phone declining,
//! the single sign-on cookie's attributes, and role selection (search above 5 roles, only the
//! person's own roles).

use vsc_authenticator::PhoneLink;

use crate::common::{TestServer, start};
use crate::support::{
    Browser, Page, approve, assert_error_page, authorize_url, clinician, count, exchange, field,
    query_of, register,
};

/// Every sign-in page's headers: strict CSP without inline script, never cached or framed.
fn assert_page_headers(page: &Page) {
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(
        !page.body.contains("<script>"),
        "no inline script: {}",
        page.body
    );
    assert!(
        !page.body.contains(" style=\""),
        "no inline style: {}",
        page.body
    );
}

/// Starts a flow in `b`; returns the sign-in page's path.
async fn start_flow(b: &mut Browser, url: &str) -> String {
    let start = b.get(url).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let page = start.location.unwrap();
    assert!(page.starts_with("/oauth2/signin/"), "{page}");
    page
}

async fn requests(s: &TestServer) -> i64 {
    count(s, "auth_requests").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_locked_down_and_the_sso_cookie_is_a_host_cookie() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    let page_url = start_flow(&mut b, &authorize_url(&rp, &[])).await;
    let flow_cookie = b.set_cookies.last().unwrap().clone();
    assert!(flow_cookie.starts_with("__Host-vsc-flow-"), "{flow_cookie}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(flow_cookie.contains(attr), "{flow_cookie}");
    }
    assert!(!flow_cookie.contains("Domain="), "{flow_cookie}");

    let form = b.get(&page_url).await;
    assert_eq!(form.status, 200);
    assert_page_headers(&form);
    assert!(form.body.contains("<label for=\"uid\""), "{}", form.body);
    let sent = b
        .post(&page_url, &[("csrf", &form.csrf()), ("uid", &c.uid)])
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let number = b.get(&page_url).await;
    assert_page_headers(&number);
    approve(&s, &c.phone, number.number()).await;
    let approved = b.get(&page_url).await;
    assert_page_headers(&approved);
    assert!(
        approved.body.contains("data-auto=\"submit\""),
        "{}",
        approved.body
    );
    // The script and style are served from the provider itself.
    let script = b.get("/oauth2/assets/signin.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let cont = b
        .post(
            &format!("{page_url}/continue"),
            &[("csrf", &approved.csrf())],
        )
        .await;
    assert_eq!(cont.status, 303, "{}", cont.body);
    assert!(
        cont.location
            .as_deref()
            .unwrap()
            .starts_with(&rp.redirect_uri)
    );
    let sso = b
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-vsc-sso="))
        .expect("an SSO cookie")
        .clone();
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(sso.contains(attr), "{sso}");
    }
    assert!(!sso.contains("Domain="), "{sso}");
    // The flow's cookie is cleared and the finished flow's page is an error page.
    assert!(
        b.cookies.keys().all(|k| !k.starts_with("__Host-vsc-flow-")),
        "{:?}",
        b.cookies
    );
    let done = b.get(&page_url).await;
    assert_error_page(&done, 400);
    assert_page_headers(&done);

    // Error pages are locked down too.
    let err = Browser::new(&s)
        .get(&authorize_url(
            &rp,
            &[("redirect_uri", "https://evil.example/")],
        ))
        .await;
    assert_error_page(&err, 400);
    assert_page_headers(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_belongs_to_the_browser_that_started_it_and_its_forms_need_the_csrf_token() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    let page_url = start_flow(&mut b, &authorize_url(&rp, &[])).await;
    let form = b.get(&page_url).await;
    let csrf = form.csrf();
    let before = requests(&s).await;

    // Another browser: an error page, and posting a UID (even with the real CSRF token) does
    // nothing.
    let mut other = Browser::new(&s);
    let page = other.get(&page_url).await;
    assert_error_page(&page, 400);
    assert_page_headers(&page);
    assert!(field(&page.body, "csrf").is_none());
    let posted = other
        .post(&page_url, &[("csrf", &csrf), ("uid", &c.uid)])
        .await;
    assert_error_page(&posted, 400);
    let status = other.get(&format!("{page_url}/status")).await;
    assert_eq!(status.status, 404, "{}", status.body);
    // Its own flow's cookie under the other flow's name does not help.
    let own = start_flow(&mut other, &authorize_url(&rp, &[])).await;
    let own_id = own.trim_start_matches("/oauth2/signin/");
    let theirs = page_url.trim_start_matches("/oauth2/signin/");
    let secret = other.cookies[&format!("__Host-vsc-flow-{own_id}")].clone();
    other
        .cookies
        .insert(format!("__Host-vsc-flow-{theirs}"), secret);
    assert_error_page(&other.get(&page_url).await, 400);
    // Ids that are not flows.
    for bad in [
        "/oauth2/signin/0000",
        "/oauth2/signin/%3Cscript%3E",
        &format!("{page_url}x"),
    ] {
        let page = b.get(bad).await;
        assert!(
            page.status == 400 || page.status == 404,
            "{bad}: {}",
            page.status
        );
        assert!(page.location.is_none());
    }

    // The right browser with a wrong or missing CSRF token: 403.
    for form in [
        vec![("csrf", "wrong"), ("uid", c.uid.as_str())],
        vec![("uid", c.uid.as_str())],
    ] {
        let r = b.post(&page_url, &form).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_page_headers(&r);
    }
    let r = b
        .post(&format!("{page_url}/continue"), &[("csrf", "wrong")])
        .await;
    assert_eq!(r.status, 403);
    let r = b
        .post(
            &format!("{page_url}/role"),
            &[("csrf", "wrong"), ("role", "x")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(requests(&s).await, before, "no sign-in request was created");
    assert_eq!(count(&s, "oidc_grants").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uid_form_explains_a_bad_uid_a_person_without_a_card_and_a_decline() {
    let s = start().await;
    let c = clinician(&s).await;
    let no_card = s.create_person(&c.ra, "RX1").await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    let page_url = start_flow(&mut b, &authorize_url(&rp, &[])).await;
    let csrf = b.get(&page_url).await.csrf();
    let before = requests(&s).await;

    for bad in ["12345", "abcdefghijkl", "<script>alert(1)</script>", ""] {
        let r = b.post(&page_url, &[("csrf", &csrf), ("uid", bad)]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains("role=\"alert\""), "{}", r.body);
        assert!(r.body.contains("name=\"uid\""), "{}", r.body);
        assert!(!r.body.contains("<script>alert"), "{}", r.body);
        assert_page_headers(&r);
    }
    let r = b
        .post(&page_url, &[("csrf", &csrf), ("uid", &no_card)])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("role=\"alert\""), "{}", r.body);
    assert!(r.body.contains("name=\"uid\""), "{}", r.body);
    assert_eq!(
        requests(&s).await,
        before,
        "no sign-in request for a bad UID or no card"
    );

    // The phone declines: the page offers the UID form again, saying so.
    let sent = b.post(&page_url, &[("csrf", &csrf), ("uid", &c.uid)]).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(requests(&s).await, before + 1);
    let link = PhoneLink::new(&c.phone.home).unwrap();
    let pending = link.pending(5).await.unwrap();
    let request = pending.last().unwrap();
    assert_eq!(request.context.web_client, "EPR");
    link.decline(&request.request_id, false).await.unwrap();
    let page = b.get(&page_url).await;
    assert!(
        page.body.contains("declined on your phone"),
        "{}",
        page.body
    );
    assert!(page.body.contains("name=\"uid\""), "{}", page.body);
    assert!(page.body.contains(&c.uid), "the UID is kept: {}", page.body);
    // Continuing after a decline does not sign in.
    let r = b
        .post(&format!("{page_url}/continue"), &[("csrf", &csrf)])
        .await;
    assert!(
        r.location.is_none_or(|l| l.starts_with("/oauth2/signin/")),
        "{}",
        r.body
    );
    assert!(!b.cookies.contains_key("__Host-vsc-sso"));
    assert_eq!(count(&s, "oidc_grants").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_selection_offers_search_above_five_roles_and_only_the_persons_own_roles() {
    let s = start().await;
    let c = clinician(&s).await;
    for r in 1..=5 {
        s.assign_position(&c.ra, &c.uid, "RX1", &format!("S8000:G8000:R800{r}"))
            .await
            .unwrap();
    }
    let person = s.person(&c.ra, &c.uid).await;
    assert_eq!(person.positions.len(), 6);
    // Someone else's role at the same organisation.
    let (other_uid, _) = s.person_with_card(&c.ra, "RX1").await;
    let other = s
        .assign_position(&c.ra, &other_uid, "RX1", "S8000:G8000:R8000")
        .await
        .unwrap();
    let foreign = other.positions[0].id.clone();

    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    let page_url = start_flow(
        &mut b,
        &authorize_url(&rp, &[("scope", "openid selectedrole")]),
    )
    .await;
    let form = b.get(&page_url).await;
    b.post(&page_url, &[("csrf", &form.csrf()), ("uid", &c.uid)])
        .await;
    let number = b.get(&page_url).await;
    approve(&s, &c.phone, number.number()).await;
    let cont = b
        .post(&format!("{page_url}/continue"), &[("csrf", &number.csrf())])
        .await;
    assert_eq!(cont.status, 303);
    assert_eq!(cont.location.as_deref(), Some(page_url.as_str()));

    let roles = b.get(&page_url).await;
    assert_eq!(roles.status, 200);
    assert_page_headers(&roles);
    assert!(roles.body.contains("data-filter"), "{}", roles.body);
    assert!(
        roles.body.contains("<label for=\"role-search\""),
        "{}",
        roles.body
    );
    assert_eq!(roles.body.matches("type=\"radio\"").count(), 6);
    for p in &person.positions {
        assert!(
            roles.body.contains(&format!("value=\"{}\"", p.id)),
            "{}",
            roles.body
        );
    }
    let csrf = roles.csrf();
    for bad in [foreign.as_str(), "", "nonsense"] {
        let r = b
            .post(
                &format!("{page_url}/role"),
                &[("csrf", &csrf), ("role", bad)],
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.location.is_none());
        assert!(r.body.contains("data-filter"), "the role page again");
        assert!(!r.body.contains(&format!("value=\"{foreign}\"")));
    }
    assert_eq!(count(&s, "oidc_grants").await, 0, "no code");

    let chosen = person.positions[4].id.clone();
    let r = b
        .post(
            &format!("{page_url}/role"),
            &[("csrf", &csrf), ("role", &chosen)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let q = query_of(r.location.as_deref().unwrap());
    let t = exchange(&s, &rp, &q["code"]).await;
    assert_eq!(t.claims["selected_roleid"], chosen.as_str());
    // The flow is finished: choosing again does nothing.
    let again = b
        .post(
            &format!("{page_url}/role"),
            &[("csrf", &csrf), ("role", &chosen)],
        )
        .await;
    assert_error_page(&again, 400);
    assert_eq!(count(&s, "oidc_grants").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_left_for_longer_than_ten_minutes_is_over() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let mut b = Browser::new(&s);
    let page_url = start_flow(&mut b, &authorize_url(&rp, &[])).await;
    let form = b.get(&page_url).await;
    b.post(&page_url, &[("csrf", &form.csrf()), ("uid", &c.uid)])
        .await;
    let number = b.get(&page_url).await;
    approve(&s, &c.phone, number.number()).await;
    s.clock
        .advance(time::Duration::minutes(10) + time::Duration::seconds(1));
    assert_error_page(&b.get(&page_url).await, 400);
    let r = b
        .post(&format!("{page_url}/continue"), &[("csrf", &number.csrf())])
        .await;
    assert_error_page(&r, 400);
    assert!(!b.cookies.contains_key("__Host-vsc-sso"));
    assert_eq!(count(&s, "oidc_grants").await, 0);
    assert_eq!(s.session_count().await, 0);
}

//! The dashboard's lists and a person's last sign-ins: an RA Agent's dashboard lists the locked
//! cards and the activations waiting of their own organisation (with when each was locked, and
//! when each code expires or that it has) and nothing of another; a national RA sees them all.
//! A person's page lists their real sign-ins (a ward workstation's, signed out, and a web
//! application's, still active) with the role used, to an RA of their organisation only.

use vsc_authenticator::PhoneLink;

use crate::common::{Phone, TestServer, other_number, passcode, start};
use crate::signin::console_sign_in;
use crate::support::{Browser, authorize_url, register, sign_in};

/// The part of `body` under the `<h2>` named `heading`, up to the next `<h2>`.
fn section<'a>(body: &'a str, heading: &str) -> &'a str {
    let open = format!("<h2>{heading}</h2>");
    let at = body
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {body}"))
        + open.len();
    let end = body[at..].find("<h2").map_or(body.len(), |e| at + e);
    &body[at..end]
}

/// The table row of `html` holding `needle`.
fn row_with<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {html}"));
    let start = html[..at].rfind("<tr>").expect("in a table row");
    let end = at + html[at..].find("</tr>").expect("a closed row");
    &html[start..end]
}

/// Locks `card` the way it happens: sign-in requests that the phone answers with a wrong
/// number, until the failure limit locks the card.
async fn lock(s: &TestServer, uid: &str, card: &str, phone: &Phone) {
    let link = PhoneLink::new(&phone.home).unwrap();
    for n in 1..=s.state.config().signin.failure_limit {
        let created = s.open_request(uid, "PC-1").await;
        let request = link
            .pending(5)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.request_id == created.request_id)
            .expect("the request reaches the phone");
        let wrong = other_number(created.number, u8::try_from(n).unwrap());
        assert!(link.approve(&request, wrong, &passcode()).await.is_err());
    }
    assert_eq!(s.card_state(card).await, "locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_locked_cards_and_waiting_activations_of_the_ras_organisations() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    // An activation that runs out: issued, then more than its 72 hours pass.
    let (expired_uid, expired) = s.person_with_card(&ram.token, "RX1").await;
    s.clock.advance(time::Duration::hours(73));
    let t = s.login(&ram.phone).await;
    let (locked_uid, locked_card, locked_phone) = s.enrolled_person(&t, "RX1").await;
    lock(&s, &locked_uid, &locked_card, &locked_phone).await;
    let (waiting_uid, waiting) = s.person_with_card(&t, "RX1").await;
    let (their_locked_uid, their_locked_card, their_phone) = s.enrolled_person(&t, "RY2").await;
    lock(&s, &their_locked_uid, &their_locked_card, &their_phone).await;
    let (their_waiting_uid, their_waiting) = s.person_with_card(&t, "RY2").await;
    let agent = s.new_ra(&t, "RX1", "ra-agent", &[]).await;

    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let body = &dashboard.body;

    let locked = section(body, "Locked cards");
    assert!(locked.contains("<caption>"), "{locked}");
    assert!(locked.contains("<th scope=\"col\">Locked since</th>"));
    let row = row_with(locked, &locked_card);
    assert!(
        row.contains(&format!(
            "<a href=\"/ra/people/{locked_uid}\">Test Person of RX1 ({locked_uid})</a>"
        )),
        "{row}"
    );
    assert!(row.contains("Trust RX1 (RX1)"), "{row}");
    assert!(
        row.contains("<time datetime=\""),
        "when it was locked: {row}"
    );
    assert!(locked.contains("Showing 1 of 1."), "{locked}");

    let activations = section(body, "Activations waiting");
    let row = row_with(activations, &waiting.card.id);
    assert!(
        row.contains(&format!("href=\"/ra/people/{waiting_uid}\"")),
        "{row}"
    );
    assert!(row.contains("expires <time datetime=\""), "{row}");
    let row = row_with(activations, &expired.card.id);
    assert!(
        row.contains(&format!("href=\"/ra/people/{expired_uid}\"")),
        "{row}"
    );
    assert!(row.contains("expired — issue a new activation"), "{row}");
    assert!(
        activations.find(&waiting.card.id) < activations.find(&expired.card.id),
        "newest first: {activations}"
    );
    assert!(activations.contains("Showing 2 of 2."), "{activations}");

    // Nothing of RY2's, anywhere on the page.
    for theirs in [
        &their_locked_uid,
        &their_locked_card,
        &their_waiting_uid,
        &their_waiting.card.id,
    ] {
        assert!(!body.contains(theirs.as_str()), "{theirs} shown: {body}");
    }
    // The alerts are still there.
    assert!(body.contains("<h2>Alerts</h2>"));

    // A national RA sees every organisation's.
    let mut national = Browser::new(&s);
    let all = console_sign_in(&s, &mut national, &ram.uid, &ram.phone).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let locked = section(&all.body, "Locked cards");
    row_with(locked, &locked_card);
    let row = row_with(locked, &their_locked_card);
    assert!(row.contains("Trust RY2 (RY2)"), "{row}");
    assert!(locked.contains("Showing 2 of 2."), "{locked}");
    let activations = section(&all.body, "Activations waiting");
    row_with(activations, &their_waiting.card.id);
    assert!(activations.contains("Showing 3 of 3."), "{activations}");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_page_lists_their_last_sign_ins_to_an_ra_of_their_organisation_only() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let (uid, _card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    s.assign_position(&ram.token, &uid, "RX1", "S8000:G8000:R8000")
        .await
        .unwrap();
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let outsider = s.new_ra(&ram.token, "RY2", "ra-agent", &[]).await;

    // At a ward workstation, then signed out.
    let (_, auth) = s.sign_in_agent(&phone, &uid, "PC-1").await;
    assert_eq!(s.logout_agent(&auth).await.0, 200);
    // A minute later (the list is newest first, to the second).
    s.clock.advance(time::Duration::minutes(1));
    // In the browser, signing in to an application; still signed in.
    let rp = register(&s, "Example EPR", |_| {}).await;
    let mut browser = Browser::new(&s);
    let back = sign_in(
        &s,
        &mut browser,
        &authorize_url(&rp, &[]),
        &uid,
        &phone,
        None,
    )
    .await;
    assert!(back.starts_with(&rp.redirect_uri), "{back}");

    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let person = b.get(&format!("/ra/people/{uid}")).await;
    assert_eq!(person.status, 200, "{}", person.body);
    let sign_ins = section(&person.body, "Last sign-ins");
    assert!(sign_ins.contains("<caption>"), "{sign_ins}");
    assert!(
        sign_ins.contains("<th scope=\"col\">Role</th>"),
        "{sign_ins}"
    );
    let ward = row_with(sign_ins, "WARD-7-PC-1");
    assert!(
        ward.contains("Clinical Practitioner Access Role (S8000:G8000:R8000) at RX1"),
        "{ward}"
    );
    assert!(ward.contains("127.0.0.1"), "the address seen: {ward}");
    assert!(ward.contains("Signed out, <time datetime=\""), "{ward}");
    let web = row_with(sign_ins, "web: Example EPR");
    assert!(web.contains("Active"), "{web}");
    assert!(web.contains("Clinical Practitioner Access Role"), "{web}");
    assert!(
        sign_ins.find("web: Example EPR") < sign_ins.find("WARD-7-PC-1"),
        "newest first: {sign_ins}"
    );

    // An RA of another organisation gets the API's refusal, and none of it.
    let mut other = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut other, &outsider.uid, &outsider.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let refused = other.get(&format!("/ra/people/{uid}")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Not done"), "{}", refused.body);
    for private in ["Last sign-ins", "WARD-7-PC-1", "Example EPR", "127.0.0.1"] {
        assert!(
            !refused.body.contains(private),
            "{private}: {}",
            refused.body
        );
    }
    s.assert_audit_intact().await;
}

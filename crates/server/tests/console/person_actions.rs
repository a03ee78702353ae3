//! A person's actions through the console's forms: an RA Manager creates a person, records the
//! identity check, assigns a position, issues a card (QR code and code on the page; the link
//! enrols a real phone), unlocks it and cancels it after re-approving on the phone; an RA role
//! also needs the re-approval, which cannot be skipped, replayed, reused for other fields or used
//! late. An RA Agent cannot act outside their organisation through any form, including
//! hand-crafted POSTs; a form without its CSRF token changes nothing.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::common::{Phone, TestServer, start};
use crate::signin::console_sign_in;
use crate::support::{Browser, Page, field, sign_in};

/// The text of the first `<code class="{class}">` element, unescaped.
fn code_text(body: &str, class: &str) -> String {
    let open = format!("<code class=\"{class}\">");
    let at = body
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {body}"));
    let rest = &body[at + open.len()..];
    unescape(&rest[..rest.find("</code>").unwrap()])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The path data of the QR code the page should show for `url`.
fn qr_path(url: &str) -> String {
    let svg = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .unwrap()
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let at = svg.find(" d=\"").unwrap();
    let rest = &svg[at..];
    rest[..rest[4..].find('"').unwrap() + 5].to_owned()
}

/// How many events of `action` the audit log holds.
async fn events(s: &TestServer, action: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    n
}

async fn ra_roles(s: &TestServer, uid: &str) -> Vec<String> {
    let mut conn = s.state.store().pool().acquire().await.unwrap();
    vsc_store::repo::ra_roles(&mut conn, uid)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}@{}", r.role, r.ods_code))
        .collect()
}

/// Goes through the provider's pages from a re-approval redirect with `phone` approving as `uid`;
/// returns the confirmation page.
pub(crate) async fn reapprove(
    s: &TestServer,
    b: &mut Browser,
    started: &Page,
    uid: &str,
    phone: &Phone,
) -> Page {
    assert_eq!(started.status, 303, "{}", started.body);
    let to = started.location.clone().unwrap();
    assert!(to.starts_with("/oauth2/authorize?"), "{to}");
    assert!(to.contains("prompt=login"), "{to}");
    assert!(to.contains(&format!("login_hint={uid}")), "{to}");
    let back = sign_in(s, b, &to, uid, phone, None).await;
    assert!(back.contains("/ra/reapprove/callback?"), "{back}");
    let confirm = b.get(&back).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("Approved on your phone"),
        "{}",
        confirm.body
    );
    confirm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_manager_registers_a_person_and_runs_their_card_through_the_forms() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);

    // Create a person.
    let new = b.get("/ra/people/new").await;
    assert_eq!(new.status, 200, "{}", new.body);
    for id in ["given_name", "family_name", "email", "organisation"] {
        assert!(
            new.body.contains(&format!("<label for=\"{id}\">")),
            "{id}: {}",
            new.body
        );
    }
    let csrf = new.csrf();
    let bad = b
        .post(
            "/ra/people/new",
            &[
                ("csrf", &csrf),
                ("given_name", "Ada"),
                ("family_name", "Lovelace"),
                ("email", "not-an-email"),
                ("organisation", "RX1"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("is not an email address"), "{}", bad.body);
    assert!(
        bad.body.contains("value=\"Lovelace\""),
        "the form again, filled: {}",
        bad.body
    );
    let created = b
        .post(
            "/ra/people/new",
            &[
                ("csrf", &csrf),
                ("given_name", "Ada"),
                ("family_name", "Lovelace"),
                ("email", "ada@example.nhs.uk"),
                ("organisation", "RX1"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let person_url = created.location.unwrap();
    let uid = person_url.strip_prefix("/ra/people/").unwrap().to_owned();
    assert_eq!(events(&s, "person.created").await, 1);
    let person = b.get(&person_url).await;
    assert_eq!(person.status, 200, "{}", person.body);
    assert!(person.body.contains("Record an identity check"));
    assert!(
        person.body.contains("<label for=\"idc-passport\">"),
        "{}",
        person.body
    );

    // Identity check: one document is not enough for level 3 (the API says so), two are.
    let one = b
        .post(
            &format!("/ra/people/{uid}/identity-checks"),
            &[
                ("csrf", &csrf),
                ("evidence", "passport"),
                ("level", "3"),
                ("organisation", "RX1"),
            ],
        )
        .await;
    assert_eq!(one.status, 400, "{}", one.body);
    assert!(
        one.body
            .contains("level 3 needs at least two pieces of evidence"),
        "{}",
        one.body
    );
    let checked = b
        .post(
            &format!("/ra/people/{uid}/identity-checks"),
            &[
                ("csrf", &csrf),
                ("evidence", "passport"),
                ("evidence", "proof-of-address"),
                ("level", "3"),
                ("organisation", "RX1"),
            ],
        )
        .await;
    assert_eq!(checked.status, 303, "{}", checked.body);
    assert_eq!(checked.location.as_deref(), Some(person_url.as_str()));
    assert_eq!(events(&s, "identity.checked").await, 1);

    // A position.
    let assigned = b
        .post(
            &format!("/ra/people/{uid}/positions"),
            &[
                ("csrf", &csrf),
                ("organisation", "RX1"),
                ("role_code", "S8000:G8000:R8000"),
                ("role_name", "Clinical Practitioner Access Role"),
                ("activities", "B0570, B0278"),
            ],
        )
        .await;
    assert_eq!(assigned.status, 303, "{}", assigned.body);
    assert_eq!(events(&s, "position.assigned").await, 1);
    let p = s.person(&ram.token, &uid).await;
    assert_eq!(p.positions.len(), 1);
    assert_eq!(p.positions[0].activities, vec!["B0570", "B0278"]);

    // Issue a card: the letter comes straight from the API's answer.
    let letter = b
        .post(
            &format!("/ra/people/{uid}/cards"),
            &[("csrf", &csrf), ("organisation", "RX1")],
        )
        .await;
    assert_eq!(letter.status, 200, "{}", letter.body);
    assert!(letter.body.contains("<svg"), "{}", letter.body);
    assert!(!letter.body.contains("<script>"), "no inline script");
    assert!(
        letter.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(letter.headers["cache-control"], "no-store");
    assert!(letter.body.contains(&uid));
    assert!(letter.body.contains("Ada Lovelace"));
    let url = code_text(&letter.body, "link");
    let code = code_text(&letter.body, "code");
    assert!(!code.is_empty());
    assert!(
        letter.body.contains(&qr_path(&url)),
        "the QR code encodes the link shown"
    );
    assert_eq!(events(&s, "card.issued").await, 1);
    let card_id = s.person(&ram.token, &uid).await.cards[0].id.clone();
    // A new activation for the pending card (the first code stops working).
    let activations = events(&s, "activation.issued").await;
    let again = b
        .post(
            &format!("/ra/cards/{card_id}/activation"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(events(&s, "activation.issued").await, activations + 1);
    let url = code_text(&again.body, "link");
    assert!(again.body.contains(&qr_path(&url)));

    // The link on the page enrols a real phone.
    let phone = Phone::new();
    s.enrol(&phone, &url)
        .await
        .expect("the letter's link enrols the phone");
    assert_eq!(s.card_state(&card_id).await, "active");

    // Unlock: the code as QR and text.
    let person = b.get(&person_url).await;
    assert!(
        person.body.contains(&format!("/ra/cards/{card_id}/unlock")),
        "{}",
        person.body
    );
    let unlock = b
        .post(&format!("/ra/cards/{card_id}/unlock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(unlock.status, 200, "{}", unlock.body);
    let unlock_url = code_text(&unlock.body, "link");
    assert!(unlock.body.contains(&qr_path(&unlock_url)));
    assert!(!code_text(&unlock.body, "code").is_empty());
    assert_eq!(events(&s, "card.unlock.issued").await, 1);

    // Cancel: first a re-approval on the phone; posting the action directly does nothing.
    let form = [
        ("csrf", csrf.as_str()),
        ("reason_code", "key-compromise"),
        ("reason", "Phone lost on the bus"),
    ];
    let started = b.post(&format!("/ra/cards/{card_id}/cancel"), &form).await;
    assert_eq!(s.card_state(&card_id).await, "active");
    let forged = b
        .post(
            &format!("/ra/cards/{card_id}/cancel"),
            &[form[0], form[1], form[2], ("reapproval", "made-up")],
        )
        .await;
    assert_eq!(forged.status, 303);
    assert!(
        forged
            .location
            .clone()
            .unwrap()
            .starts_with("/oauth2/authorize?")
    );
    assert_eq!(s.card_state(&card_id).await, "active");
    // A second start replaces the first (its state cookie); the first is not followed.
    assert_eq!(started.status, 303);
    let confirm = reapprove(&s, &mut b, &forged, &ram.uid, &ram.phone).await;
    let grant = field(&confirm.body, "reapproval").unwrap();
    assert_eq!(events(&s, "console.reapproved").await, 1);
    // The approval is for these fields only.
    let other = b
        .post(
            &format!("/ra/cards/{card_id}/cancel"),
            &[
                form[0],
                ("reason_code", "superseded"),
                form[2],
                ("reapproval", &grant),
            ],
        )
        .await;
    assert_eq!(other.status, 303);
    assert!(other.location.unwrap().starts_with("/oauth2/authorize?"));
    assert_eq!(s.card_state(&card_id).await, "active");
    // The console session is still the same one.
    assert_eq!(b.get("/ra").await.status, 200);
    let done = b
        .post(
            &format!("/ra/cards/{card_id}/cancel"),
            &[form[0], form[1], form[2], ("reapproval", &grant)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(person_url.as_str()));
    assert_eq!(s.card_state(&card_id).await, "revoked");
    assert_eq!(events(&s, "card.cancelled").await, 1);
    // Used once: the same approval does not run again.
    let replay = b
        .post(
            &format!("/ra/cards/{card_id}/cancel"),
            &[form[0], form[1], form[2], ("reapproval", &grant)],
        )
        .await;
    assert_eq!(replay.status, 303);
    assert!(replay.location.unwrap().starts_with("/oauth2/authorize?"));

    // An RA role needs the same; an approval older than five minutes does not count.
    let role_form = [
        ("csrf", csrf.as_str()),
        ("role", "ra-agent"),
        ("organisation", "RX1"),
    ];
    let started = b
        .post(&format!("/ra/people/{uid}/ra-roles"), &role_form)
        .await;
    let confirm = reapprove(&s, &mut b, &started, &ram.uid, &ram.phone).await;
    let grant = field(&confirm.body, "reapproval").unwrap();
    s.clock.advance(time::Duration::minutes(6));
    let late = b
        .post(
            &format!("/ra/people/{uid}/ra-roles"),
            &[
                role_form[0],
                role_form[1],
                role_form[2],
                ("reapproval", &grant),
            ],
        )
        .await;
    assert_eq!(late.status, 303);
    assert!(
        late.location
            .clone()
            .unwrap()
            .starts_with("/oauth2/authorize?")
    );
    assert!(ra_roles(&s, &uid).await.is_empty());
    let confirm = reapprove(&s, &mut b, &late, &ram.uid, &ram.phone).await;
    let grant = field(&confirm.body, "reapproval").unwrap();
    let given = b
        .post(
            &format!("/ra/people/{uid}/ra-roles"),
            &[
                role_form[0],
                role_form[1],
                role_form[2],
                ("reapproval", &grant),
            ],
        )
        .await;
    assert_eq!(given.status, 303, "{}", given.body);
    assert_eq!(ra_roles(&s, &uid).await, vec!["ra-agent@RX1"]);
    assert_eq!(events(&s, "ra_role.assigned").await, 1);

    // The person's page offers to take the role away and to end the position; both work.
    let page = b.get(&format!("/ra/people/{uid}")).await;
    assert!(
        page.body.contains("Remove RA Agent at RX1"),
        "{}",
        page.body
    );
    let position = s.person(&ram.token, &uid).await.positions[0].id.clone();
    assert!(
        page.body.contains(&format!("/ra/positions/{position}/end")),
        "{}",
        page.body
    );
    let removed = b
        .post(
            &format!("/ra/people/{uid}/ra-roles/remove"),
            &[
                ("csrf", csrf.as_str()),
                ("role", "ra-agent"),
                ("organisation", "RX1"),
            ],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(ra_roles(&s, &uid).await.is_empty());
    assert_eq!(events(&s, "ra_role.removed").await, 1);
    let ended = b
        .post(
            &format!("/ra/positions/{position}/end"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    assert_eq!(
        ended.location.as_deref(),
        Some(format!("/ra/people/{uid}").as_str())
    );
    assert!(s.person(&ram.token, &uid).await.positions.is_empty());
    assert_eq!(events(&s, "position.ended").await, 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_agent_cannot_act_outside_their_organisation_nor_without_the_csrf_token() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let (other, other_card, _phone) = s.enrolled_person(&ram.token, "RY2").await;
    let mine = s.create_person(&ram.token, "RX1").await;
    s.id_check(&ram.token, &mine, "RX1").await;
    let other_position = s
        .assign_position(&ram.token, &other, "RY2", "S8000:G8000:R8000")
        .await
        .unwrap()
        .positions[0]
        .id
        .clone();
    s.grant_ra_role(&ram.token, &other, "RY2", "id-checker", &[])
        .await;
    let my_position = s
        .assign_position(&ram.token, &mine, "RX1", "S8000:G8000:R8000")
        .await
        .unwrap()
        .positions[0]
        .id
        .clone();

    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let csrf = dashboard.csrf();

    let page = b.get(&format!("/ra/people/{other}")).await;
    assert_eq!(page.status, 403, "{}", page.body);

    let before = s.snapshot().await;
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/ra/people/new".into(),
            vec![
                ("given_name", "Eve"),
                ("family_name", "Intruder"),
                ("organisation", "RY2"),
            ],
        ),
        (
            format!("/ra/people/{other}/identity-checks"),
            vec![
                ("evidence", "passport"),
                ("evidence", "driving-licence"),
                ("level", "3"),
                ("organisation", "RY2"),
            ],
        ),
        (
            format!("/ra/people/{other}/identity-checks"),
            vec![
                ("evidence", "passport"),
                ("evidence", "driving-licence"),
                ("level", "3"),
                ("organisation", "RX1"),
            ],
        ),
        (
            format!("/ra/people/{other}/positions"),
            vec![
                ("organisation", "RY2"),
                ("role_code", "S8000:G8000:R8000"),
                ("role_name", "Doctor"),
            ],
        ),
        (
            format!("/ra/people/{other}/positions"),
            vec![
                ("organisation", "RX1"),
                ("role_code", "S8000:G8000:R8000"),
                ("role_name", "Doctor"),
            ],
        ),
        (
            format!("/ra/people/{other}/ra-roles"),
            vec![("role", "ra-agent"), ("organisation", "RY2")],
        ),
        (
            format!("/ra/people/{other}/cards"),
            vec![("organisation", "RY2")],
        ),
        (format!("/ra/positions/{other_position}/end"), vec![]),
        (
            format!("/ra/people/{other}/ra-roles/remove"),
            vec![("role", "id-checker"), ("organisation", "RY2")],
        ),
        (format!("/ra/cards/{other_card}/activation"), vec![]),
        (format!("/ra/cards/{other_card}/unlock"), vec![]),
        (
            format!("/ra/cards/{other_card}/cancel"),
            vec![("reason_code", "key-compromise"), ("reason", "x")],
        ),
        (
            format!("/ra/cards/{other_card}/cancel"),
            vec![
                ("reason_code", "key-compromise"),
                ("reason", "x"),
                ("reapproval", "made-up"),
            ],
        ),
    ];
    for (path, fields) in &posts {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        let r = b.post(path, &form).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("Not done"), "{path}: {}", r.body);
    }
    s.assert_unchanged(
        &before,
        &s.snapshot().await,
        "an RA Agent of RX1 acting on RY2 through the console",
    );
    assert!(
        !s.audit_failures_with("card.issue", "ra_outside_organisation")
            .await
            .is_empty()
    );
    assert!(
        !s.audit_failures_with("identity.check", "ra_outside_organisation")
            .await
            .is_empty()
    );
    assert!(
        !s.audit_failures_with("position.assign", "position_request_needed")
            .await
            .is_empty()
    );

    // In their own organisation, a form without the session's CSRF token writes nothing.
    let before = s.snapshot().await;
    for token in [None, Some("wrong")] {
        let mut form = vec![("organisation", "RX1")];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let r = b.post(&format!("/ra/people/{mine}/cards"), &form).await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = b
            .post(&format!("/ra/positions/{my_position}/end"), &form)
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = b
            .post(
                &format!("/ra/people/{mine}/positions"),
                &[
                    form.as_slice(),
                    &[("role_code", "S8000:G8000:R8000"), ("role_name", "Doctor")],
                ]
                .concat(),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    s.assert_unchanged(
        &before,
        &s.snapshot().await,
        "console forms without their CSRF token",
    );
    // With it, the same form works.
    let issued = b
        .post(
            &format!("/ra/people/{mine}/cards"),
            &[("csrf", &csrf), ("organisation", "RX1")],
        )
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert!(issued.body.contains("<svg"));

    // A re-approval must come from the RA's own phone: somebody else's approval does not count.
    let card = s.person(&ram.token, &mine).await.cards[0].id.clone();
    let started = b
        .post(
            &format!("/ra/cards/{card}/cancel"),
            &[
                ("csrf", &csrf),
                ("reason_code", "superseded"),
                ("reason", "new phone"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let back = sign_in(
        &s,
        &mut b,
        started.location.as_deref().unwrap(),
        &ram.uid,
        &ram.phone,
        None,
    )
    .await;
    let refused = b.get(&back).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("The approval came from UID"),
        "{}",
        refused.body
    );
    assert!(field(&refused.body, "reapproval").is_none());
    assert_eq!(s.card_state(&card).await, "pending");
}

/// The console's forms meet the API's rules on the RA's own record and on names that would
/// display as something else: an RA Manager cannot record an identity check or issue a card
/// for themselves, and a name with a right-to-left override or a zero-width space is refused
/// with the API's message; nothing is written either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_record_and_names_that_hide_text_are_refused_through_the_forms() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let csrf = dashboard.csrf();
    let before = s.snapshot().await;

    let national = s.state.national_ods().to_owned();
    let own_check = b
        .post(
            &format!("/ra/people/{}/identity-checks", ram.uid),
            &[
                ("csrf", &csrf),
                ("evidence", "passport"),
                ("evidence", "proof-of-address"),
                ("level", "3"),
                ("organisation", &national),
            ],
        )
        .await;
    assert_eq!(own_check.status, 403, "{}", own_check.body);
    assert!(own_check.body.contains("own_record"), "{}", own_check.body);
    let own_card = b
        .post(
            &format!("/ra/people/{}/cards", ram.uid),
            &[("csrf", &csrf), ("organisation", &national)],
        )
        .await;
    assert_eq!(own_card.status, 403, "{}", own_card.body);
    assert!(own_card.body.contains("own_record"), "{}", own_card.body);

    for hidden in ["Ali\u{202e}ecila", "A\u{200b}da"] {
        let refused = b
            .post(
                "/ra/people/new",
                &[
                    ("csrf", &csrf),
                    ("given_name", hidden),
                    ("family_name", "Lovelace"),
                    ("email", "ada@example.nhs.uk"),
                    ("organisation", "RX1"),
                ],
            )
            .await;
        assert_eq!(refused.status, 400, "{hidden:?}: {}", refused.body);
        assert!(
            refused.body.contains("printable characters"),
            "{hidden:?}: {}",
            refused.body
        );
    }
    s.assert_unchanged(&before, &s.snapshot().await, "refused console forms");
}

//! Renewal and replacement in the console (issue 14): a person's page shows each card's
//! renewal window, an RA's order, the phones that held the card and its certificates; "Renew
//! now" and "Replace card" go through the RA API's own functions (the same permissions), are
//! offered only where the API would take them, refuse another organisation's RA, the RA's own
//! card, a form without the CSRF token and a reason that would display as something else, and
//! show the reasons escaped.

use crate::common::{Phone, start};
use crate::person_actions::reapprove;
use crate::signin::console_sign_in;
use crate::support::{Browser, field};

/// The text of the first `<code class="{class}">` element, unescaped.
fn code_text(body: &str, class: &str) -> String {
    let open = format!("<code class=\"{class}\">");
    let at = body
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {body}"));
    let rest = &body[at + open.len()..];
    rest[..rest.find("</code>").unwrap()]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn events(s: &crate::common::TestServer, action: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_renews_and_replaces_a_card_through_the_console() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card, _phone) = s.enrolled_person(&ram.token, "RX1").await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let csrf = dashboard.csrf();
    let person_url = format!("/ra/people/{uid}");

    // The window and both forms, labelled.
    let page = b.get(&person_url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for text in [
        "Renewal window opens",
        "90 days before expiry",
        "Not due yet",
        "Phones that held card",
        "holds the card",
        &format!("action=\"/ra/cards/{card}/renew-now\""),
        &format!("action=\"/ra/cards/{card}/replace\""),
        &format!("<label for=\"renew-reason-{card}\">"),
        &format!("<label for=\"replace-reason-{card}\">"),
        &format!("<label for=\"replace-lost-{card}\">"),
    ] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    // Not offered on the RA's own card.
    let own = b.get(&format!("/ra/people/{}", ram.uid)).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(
        !own.body
            .contains(&format!("/ra/cards/{}/renew-now", ram.card_id))
    );
    assert!(
        !own.body
            .contains(&format!("/ra/cards/{}/replace", ram.card_id))
    );

    // Refused, nothing written: the RA's own card (hand-crafted), no or a wrong CSRF token,
    // a reason with a right-to-left override or a control character.
    let before = s.snapshot().await;
    let own_renew = format!("/ra/cards/{}/renew-now", ram.card_id);
    let r = b
        .post(&own_renew, &[("csrf", &csrf), ("reason", "new phone")])
        .await;
    assert_eq!(r.status, 403, "{own_renew}: {}", r.body);
    assert!(r.body.contains("own_record"), "{own_renew}: {}", r.body);
    // Replacing asks the RA's phone first; the API then refuses the RA's own card.
    let own_replace = format!("/ra/cards/{}/replace", ram.card_id);
    let own_form = [("csrf", csrf.as_str()), ("reason", "new phone")];
    let started = b.post(&own_replace, &own_form).await;
    let confirm = reapprove(&s, &mut b, &started, &ram.uid, &ram.phone).await;
    let grant = field(&confirm.body, "reapproval").unwrap();
    let r = b
        .post(
            &own_replace,
            &[own_form[0], own_form[1], ("reapproval", &grant)],
        )
        .await;
    assert_eq!(r.status, 403, "{own_replace}: {}", r.body);
    assert!(r.body.contains("own_record"), "{own_replace}: {}", r.body);
    for path in [
        format!("/ra/cards/{card}/renew-now"),
        format!("/ra/cards/{card}/replace"),
    ] {
        for token in [None, Some("wrong")] {
            let mut form = vec![("reason", "new phone"), ("lost", "yes")];
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let r = b.post(&path, &form).await;
            assert_eq!(r.status, 403, "{path}: {}", r.body);
        }
        for hidden in ["new\u{202e}enohp", "new\u{7}phone"] {
            let r = b.post(&path, &[("csrf", &csrf), ("reason", hidden)]).await;
            assert_eq!(r.status, 400, "{path} {hidden:?}: {}", r.body);
            assert!(
                r.body.contains("invisible formatting characters"),
                "{path}: {}",
                r.body
            );
            assert!(r.body.contains("<form"), "the form again: {}", r.body);
        }
    }
    s.assert_unchanged(
        &before,
        &s.snapshot().await,
        "refused console renewal forms (the own-card replacement approved on the phone)",
    );

    // Renew now, with a reason that is markup: done, and shown as text.
    let renewed = b
        .post(
            &format!("/ra/cards/{card}/renew-now"),
            &[
                ("csrf", &csrf),
                ("reason", "<script>alert(1)</script> new CA"),
            ],
        )
        .await;
    assert_eq!(renewed.status, 303, "{}", renewed.body);
    assert_eq!(renewed.location.as_deref(), Some(person_url.as_str()));
    assert_eq!(events(&s, "card.renewal.ordered").await, 1);
    let page = b.get(&person_url).await;
    assert!(
        page.body.contains("Due now: an RA asked for it"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; new CA"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert(1)"));
    // The same form again (a replay) orders nothing more: still one order, the latest reason.
    let again = b
        .post(
            &format!("/ra/cards/{card}/renew-now"),
            &[
                ("csrf", &csrf),
                ("reason", "<script>alert(1)</script> new CA"),
            ],
        )
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    let (orders,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM card_renewal_orders WHERE card_id = $1")
            .bind(&card)
            .fetch_one(s.state.store().pool())
            .await
            .unwrap();
    assert_eq!(orders, 1);

    // Replace, the phone lost: approved on the RA's phone first (nothing happens before), then
    // the activation letter at once, the card waits for the new phone.
    let replace_path = format!("/ra/cards/{card}/replace");
    let replace_form = [
        ("csrf", csrf.as_str()),
        ("reason", "Lost <b>phone</b>"),
        ("lost", "yes"),
    ];
    let started = b.post(&replace_path, &replace_form).await;
    assert_eq!(
        s.card_state(&card).await,
        "active",
        "not before the approval"
    );
    let confirm = reapprove(&s, &mut b, &started, &ram.uid, &ram.phone).await;
    assert!(
        confirm.body.contains("Replace the card now"),
        "{}",
        confirm.body
    );
    let grant = field(&confirm.body, "reapproval").unwrap();
    let with_grant = [
        replace_form[0],
        replace_form[1],
        replace_form[2],
        ("reapproval", grant.as_str()),
    ];
    let letter = b.post(&replace_path, &with_grant).await;
    assert_eq!(letter.status, 200, "{}", letter.body);
    assert!(letter.body.contains("<svg"), "{}", letter.body);
    assert_eq!(letter.headers["cache-control"], "no-store");
    let url = code_text(&letter.body, "link");
    assert!(!code_text(&letter.body, "code").is_empty());
    assert_eq!(s.card_state(&card).await, "pending");
    assert_eq!(events(&s, "card.replacement.requested").await, 1);
    let page = b.get(&person_url).await;
    assert!(
        page.body.contains("Waiting for a replacement phone")
            && page.body.contains("reported lost")
            && page.body.contains("Lost &lt;b&gt;phone&lt;/b&gt;"),
        "{}",
        page.body
    );
    // The same approved form again (a replay): the approval was spent, so it only starts a new
    // re-approval; nothing changes, and the letter already given stays good.
    let before = s.snapshot().await;
    let replay = b.post(&replace_path, &with_grant).await;
    assert_eq!(replay.status, 303, "{}", replay.body);
    assert!(
        replay
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/oauth2/authorize?")),
        "{:?}",
        replay.location
    );
    s.assert_unchanged(&before, &s.snapshot().await, "a replayed replacement");
    // A pending card is not renewed nor replaced from here (the API would refuse).
    assert!(!page.body.contains(&format!("/ra/cards/{card}/renew-now")));
    assert!(!page.body.contains(&format!("/ra/cards/{card}/replace")));

    // The letter's link enrols the new phone; the history keeps both.
    let new_phone = Phone::new();
    s.enrol(&new_phone, &url)
        .await
        .expect("the new phone enrols");
    assert_eq!(s.card_state(&card).await, "active");
    let page = b.get(&person_url).await;
    assert!(page.body.contains(&new_phone.device_id()), "{}", page.body);
    assert!(page.body.contains("holds the card"), "{}", page.body);
    assert!(page.body.contains("key-compromise"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisations_ra_cannot_renew_or_replace_through_the_console() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let (_other, other_card, _phone) = s.enrolled_person(&ram.token, "RY2").await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let csrf = dashboard.csrf();
    let before = s.snapshot().await;
    for path in [
        format!("/ra/cards/{other_card}/renew-now"),
        format!("/ra/cards/{other_card}/replace"),
    ] {
        let r = b
            .post(
                &path,
                &[("csrf", &csrf), ("reason", "new phone"), ("lost", "yes")],
            )
            .await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("Not done"), "{path}: {}", r.body);
    }
    s.assert_unchanged(
        &before,
        &s.snapshot().await,
        "an RA Agent of RX1 renewing or replacing a card of RY2",
    );
    assert_eq!(s.card_state(&other_card).await, "active");
}

/// A renewal the phone has not confirmed shows on the person's page, with its deadline, until
/// the sweep has lapsed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_renewal_shows_until_the_sweep_lapses_it() {
    use vsc_proto::renewal::{RenewalChallenge, RenewalChallengeRequest, RenewalIssued};

    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    // 30 days before the certificates expire: due.
    s.clock.advance(time::Duration::days(700));
    let ch: RenewalChallenge = s
        .post(
            None,
            vsc_proto::routes::DEVICE_RENEWAL_CHALLENGE,
            &RenewalChallengeRequest {
                device_id: phone.device_id(),
                card_id: card.clone(),
            },
        )
        .await
        .unwrap();
    let enrolment = phone.home.enrolment().unwrap().unwrap();
    let der =
        rustls_pki_types::pem::PemObject::from_pem_slice(enrolment.auth_certificate_pem.as_bytes())
            .map(|d: rustls_pki_types::CertificateDer<'static>| d.to_vec())
            .unwrap();
    let csrs = crate::common::Csrs::generate();
    let mut req = vsc_proto::renewal::RenewalRequest {
        device_id: phone.device_id(),
        card_id: card.clone(),
        challenge_id: ch.challenge.challenge_id.clone(),
        auth_serial: vsc_pki::certificate_info(&der).unwrap().serial_hex,
        auth_csr: csrs.auth,
        signing_csr: csrs.signing,
        piv_auth_csr: None,
        piv_signing_csr: None,
        signature: String::new(),
    };
    let statement =
        vsc_proto::renewal::renewal_statement(&req, &ch.challenge.nonce, &s.state.origin());
    req.signature = crate::common::sign_with_card(&phone.home, statement).await;
    let issued: RenewalIssued = s
        .post(None, vsc_proto::routes::DEVICE_RENEWAL, &req)
        .await
        .unwrap();
    assert!(!issued.renewal_id.is_empty());

    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let page = b.get(&format!("/ra/people/{uid}")).await;
    assert!(
        page.body.contains("Due: the holder should renew")
            && page.body.contains("Unfinished renewal")
            && page.body.contains("the phone must confirm by"),
        "{}",
        page.body
    );

    s.clock.advance(time::Duration::minutes(61));
    assert_eq!(
        vsc_server::renewal_sweep::sweep_once(&s.state)
            .await
            .unwrap(),
        1
    );
    let page = b.get(&format!("/ra/people/{uid}")).await;
    assert!(!page.body.contains("Unfinished renewal"), "{}", page.body);
}

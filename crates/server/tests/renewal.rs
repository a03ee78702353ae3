//! Issue 14, certificate renewal: the phone re-keys its card inside the renewal window (90 days
//! by default) with `vsc_authenticator::renew` — new keys, a request signed by the current
//! authentication key over a single-use challenge, new certificates issued unconfirmed, the old
//! ones revoked `superseded` (and in the CRL) only once the phone confirms with the new key.
//! Refusals change nothing: outside the window, a replayed challenge, a key whose certificate is
//! revoked. An unconfirmed renewal leaves the old certificates in force and a retry completes.
//! An RA's `renew-now` makes a renewal due outside the window; an expired card is refused at
//! sign-in with `card_expired`.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{
    CARD_CERTIFICATES, Csrs, Phone, TestServer, assert_api_error, auth_context, passcode,
    server_code, start,
};
use time::Duration;
use vsc_authenticator::{AuthenticatorError, ClientError};
use vsc_proto::CancelCard;
use vsc_proto::renewal::{
    RenewNow, RenewalChallenge, RenewalChallengeRequest, RenewalIssued, RenewalRequest,
    RenewalWindow,
};
use x509_parser::prelude::{CertificateRevocationList, FromDer};

/// A certificate row: serial, usage, revoked reason code, pending renewal.
type CertRow = (String, String, Option<i64>, Option<String>);

async fn certificates(s: &TestServer, card: &str) -> Vec<CertRow> {
    sqlx::query_as(
        "SELECT serial, usage, revocation_reason_code, pending_renewal FROM certificates
         WHERE card_id = $1 ORDER BY serial",
    )
    .bind(card)
    .fetch_all(s.state.store().pool())
    .await
    .unwrap()
}

/// Serials in force: not revoked, not waiting for a confirmation.
fn in_force(rows: &[CertRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.2.is_none() && r.3.is_none())
        .map(|r| r.0.clone())
        .collect()
}

/// Every renewal row, as text.
async fn renewals(s: &TestServer) -> Vec<String> {
    let rows: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT id, card_id, state, forced FROM card_renewals ORDER BY id")
            .fetch_all(s.state.store().pool())
            .await
            .unwrap();
    rows.into_iter().map(|r| format!("{r:?}")).collect()
}

/// The issuing CRL's serials with their reason codes.
async fn crl_entries(s: &TestServer) -> Vec<(String, Option<u8>)> {
    let url = s.url.join("ca/issuing.crl").unwrap();
    let der = s
        .raw_http()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    crl.iter_revoked_certificates()
        .map(|e| {
            let raw = e.raw_serial();
            let start = raw.iter().position(|&b| b != 0).unwrap_or(0);
            let serial = raw[start..].iter().map(|b| format!("{b:02x}")).collect();
            (serial, e.reason_code().map(|(_, c)| c.0))
        })
        .collect()
}

#[track_caller]
fn refused_with<T: std::fmt::Debug>(
    result: Result<T, AuthenticatorError>,
    status: u16,
    code: &str,
) -> String {
    let err = result.expect_err("must be refused");
    assert_eq!(
        server_code(&err),
        Some((status, code.to_owned())),
        "expected {status} {code}, got {err:?}"
    );
    err.to_string()
}

/// Moves the server's clock to `days` before the card's certificates expire (730 days).
fn days_before_expiry(s: &TestServer, days: i64) {
    s.clock.advance(Duration::days(730 - days));
}

async fn challenge(
    s: &TestServer,
    phone: &Phone,
    card: &str,
) -> Result<RenewalChallenge, ClientError> {
    s.post(
        None,
        vsc_proto::routes::DEVICE_RENEWAL_CHALLENGE,
        &RenewalChallengeRequest {
            device_id: phone.device_id(),
            card_id: card.to_owned(),
        },
    )
    .await
}

/// The phone's current authentication certificate serial, as the server spells it.
fn auth_serial(phone: &Phone) -> String {
    let pem = phone
        .home
        .enrolment()
        .unwrap()
        .unwrap()
        .auth_certificate_pem;
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateDer<'static>| d.to_vec())
        .unwrap();
    vsc_pki::certificate_info(&der).unwrap().serial_hex
}

/// A hand-made renewal request with fresh CSRs (no smartcard keys), unsigned.
fn request(phone: &Phone, card: &str, challenge: &RenewalChallenge) -> RenewalRequest {
    let csrs = Csrs::generate();
    RenewalRequest {
        device_id: phone.device_id(),
        card_id: card.to_owned(),
        challenge_id: challenge.challenge.challenge_id.clone(),
        auth_serial: auth_serial(phone),
        auth_csr: csrs.auth,
        signing_csr: csrs.signing,
        piv_auth_csr: None,
        piv_signing_csr: None,
        signature: String::new(),
    }
}

async fn post_renewal(s: &TestServer, req: &RenewalRequest) -> Result<RenewalIssued, ClientError> {
    s.post(None, vsc_proto::routes::DEVICE_RENEWAL, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_renewal_is_refused_and_nothing_changes() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let window = challenge(&s, &phone, &card).await.unwrap().window;
    assert_eq!(window.window_days, 90);
    assert!(!window.due && !window.forced, "{window:?}");
    assert_eq!(window.opens_at, window.not_after - Duration::days(90));

    // 91 days before expiry: still outside.
    days_before_expiry(&s, 91);
    let before = (s.snapshot().await, renewals(&s).await);
    let message = refused_with(
        vsc_authenticator::renew(&phone.home, &passcode()).await,
        409,
        "renewal_not_due",
    );
    assert!(message.contains("renewal window opens on"), "{message}");
    let after = (s.snapshot().await, renewals(&s).await);
    s.assert_unchanged(&before.0, &after.0, "a renewal outside the window");
    assert_eq!(before.1, after.1);
    assert!(!phone.home.renewing_keystore_path().exists());
    assert!(phone.home.renewal().unwrap().is_none());
    s.assert_audited("card.renewal", "renewal_not_due", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_the_window_the_phone_renews_and_signs_in_with_the_new_keys() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let old = in_force(&certificates(&s, &card).await);
    assert_eq!(old.len() as i64, CARD_CERTIFICATES);
    let old_keystore = std::fs::read(phone.home.keystore_path()).unwrap();

    days_before_expiry(&s, 60);
    let window = challenge(&s, &phone, &card).await.unwrap().window;
    assert!(window.due && !window.forced, "{window:?}");

    // A hand-made renewal signed by the current key: issued, but not in force.
    let ch = challenge(&s, &phone, &card).await.unwrap();
    let mut req = request(&phone, &card, &ch);
    let statement =
        vsc_proto::renewal::renewal_statement(&req, &ch.challenge.nonce, &s.state.origin());
    req.signature = common::sign_with_card(&phone.home, statement).await;
    let unconfirmed = post_renewal(&s, &req).await.expect("issued");
    let rows = certificates(&s, &card).await;
    assert_eq!(
        in_force(&rows),
        old,
        "the old certificates stay in force until confirmed"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.3.as_deref() == Some(unconfirmed.renewal_id.as_str()))
            .count(),
        2,
        "the new certificates wait for the confirmation"
    );
    assert!(crl_entries(&s).await.is_empty(), "nothing revoked yet");
    // The old keys still sign in, and the agent is told to renew.
    let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    let info = s.session_info(&ticket).await.unwrap();
    assert!(info.card_renewal.is_some_and(|w| w.due), "the agent warns");

    // A replay of the spent challenge is refused and changes nothing.
    let before = s.snapshot().await;
    assert_api_error(post_renewal(&s, &req).await, 401, "challenge_used");
    s.assert_unchanged(&before, &s.snapshot().await, "a replayed renewal");

    // The phone's own renewal: the unconfirmed one lapses, the new keys take over.
    let renewed = vsc_authenticator::renew(&phone.home, &passcode())
        .await
        .expect("the phone renews");
    assert!(!renewed.resumed);
    let mut superseded = renewed.superseded.clone();
    superseded.sort();
    assert_eq!(superseded, old, "every old certificate is superseded");
    let rows = certificates(&s, &card).await;
    let now_in_force = in_force(&rows);
    assert_eq!(now_in_force.len() as i64, CARD_CERTIFICATES);
    assert!(now_in_force.iter().all(|n| !old.contains(n)));
    for serial in &old {
        assert!(
            rows.iter().any(|r| &r.0 == serial && r.2 == Some(4)),
            "{serial} superseded"
        );
    }
    let crl = crl_entries(&s).await;
    for serial in old.iter().chain(
        rows.iter()
            .filter(|r| r.3.as_deref() == Some(unconfirmed.renewal_id.as_str()))
            .map(|r| &r.0),
    ) {
        assert!(
            crl.contains(&(serial.clone(), Some(4))),
            "{serial} in the CRL: {crl:?}"
        );
    }
    assert_eq!(
        renewals(&s)
            .await
            .iter()
            .filter(|r| r.contains("\"lapsed\""))
            .count(),
        1
    );
    assert_ne!(
        std::fs::read(phone.home.keystore_path()).unwrap(),
        old_keystore
    );
    assert!(!phone.home.renewing_keystore_path().exists());
    assert!(phone.home.renewal().unwrap().is_none());
    assert_eq!(
        auth_serial(&phone),
        now_in_force
            .iter()
            .find(|n| { rows.iter().any(|r| &r.0 == *n && r.1 == "authentication") })
            .unwrap()
            .clone()
    );
    assert!(renewed.not_after > time::OffsetDateTime::now_utc() + Duration::days(700));

    // The phone signs in with the new keys; the window is closed again.
    let (_, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    assert_eq!(s.session_info(&ticket).await.unwrap().card_renewal, None);
    let window = challenge(&s, &phone, &card).await.unwrap().window;
    assert!(!window.due, "{window:?}");
    s.assert_audited("card.renewal", "challenge_used", 1).await;
    assert_eq!(s.audit_events("card.renewed").await.len(), 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_renewal_is_resumed_after_a_crash() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let old = in_force(&certificates(&s, &card).await);
    days_before_expiry(&s, 10);

    // The phone renews, then "crashes" after the confirmation reached the server but before it
    // moved the new keystore in: simulated by putting the old files back and the renewal record
    // and the new keystore where the interrupted run left them.
    let keystore = std::fs::read(phone.home.keystore_path()).unwrap();
    let enrolment = std::fs::read(phone.home.enrolment_path()).unwrap();
    let renewed = vsc_authenticator::renew(&phone.home, &passcode())
        .await
        .unwrap();
    let new_keystore = std::fs::read(phone.home.keystore_path()).unwrap();
    let new_enrolment = phone.home.enrolment().unwrap().unwrap();
    std::fs::write(phone.home.renewing_keystore_path(), &new_keystore).unwrap();
    std::fs::write(phone.home.keystore_path(), &keystore).unwrap();
    std::fs::write(phone.home.enrolment_path(), &enrolment).unwrap();
    let store =
        vsc_authenticator::keystore::SoftwareKeystore::open(&phone.home.renewing_keystore_path())
            .unwrap();
    let nonce: (String,) = sqlx::query_as("SELECT confirm_nonce FROM card_renewals WHERE id = $1")
        .bind(&renewed.renewal_id)
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    phone
        .home
        .save_renewal(&vsc_authenticator::PendingRenewal {
            renewal_id: renewed.renewal_id.clone(),
            confirm_nonce: nonce.0,
            new_auth_spki: B64.encode(store.auth_spki()),
            auth_certificate_pem: new_enrolment.auth_certificate_pem.clone(),
            signing_certificate_pem: new_enrolment.signing_certificate_pem.clone(),
            expires_at: time::OffsetDateTime::now_utc() + Duration::hours(1),
        })
        .unwrap();

    // The next run finishes: the repeated confirmation changes nothing on the server.
    let before = s.snapshot().await;
    let resumed = vsc_authenticator::renew(&phone.home, &passcode())
        .await
        .unwrap();
    assert!(resumed.resumed);
    assert!(resumed.superseded.is_empty());
    s.assert_unchanged(&before, &s.snapshot().await, "a repeated confirmation");
    assert_eq!(
        std::fs::read(phone.home.keystore_path()).unwrap(),
        new_keystore
    );
    assert_eq!(phone.home.enrolment().unwrap().unwrap(), new_enrolment);
    assert!(!phone.home.renewing_keystore_path().exists());
    assert!(phone.home.renewal().unwrap().is_none());
    assert!(
        in_force(&certificates(&s, &card).await)
            .iter()
            .all(|n| !old.contains(n))
    );
    s.sign_in(&phone, &uid, "pc-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_signed_by_a_revoked_key_is_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    // Somebody holds the unlocked keys; then the card is cancelled.
    let keys = vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .unwrap();
    let _: vsc_proto::Card = s
        .post(
            Some(&ram.token),
            &format!("/api/v1/ra/cards/{card}/cancel"),
            &CancelCard {
                reason_code: Some("key-compromise".to_owned()),
                reason: "phone stolen".to_owned(),
                invalidity_date: None,
            },
        )
        .await
        .unwrap();
    days_before_expiry(&s, 30);
    let ch = challenge(&s, &phone, &card).await.unwrap();
    let mut req = request(&phone, &card, &ch);
    let statement =
        vsc_proto::renewal::renewal_statement(&req, &ch.challenge.nonce, &s.state.origin());
    use vsc_authenticator::Keystore as _;
    req.signature = B64.encode(keys.sign_auth(&statement).unwrap());
    let before = (s.snapshot().await, renewals(&s).await);
    let message = assert_api_error(post_renewal(&s, &req).await, 403, "renewal_key_revoked");
    assert!(
        message.contains("revoked on") && message.contains("nothing was changed"),
        "{message}"
    );
    let after = (s.snapshot().await, renewals(&s).await);
    s.assert_unchanged(&before.0, &after.0, "a renewal signed by a revoked key");
    assert_eq!(before.1, after.1);
    s.assert_audited("card.renewal", "renewal_key_revoked", 1)
        .await;

    // A signature by another key is refused as such.
    let ch = challenge(&s, &phone, &card).await.unwrap();
    let mut req = request(&phone, &card, &ch);
    req.signature = B64.encode([0u8; 70]);
    assert_api_error(post_renewal(&s, &req).await, 401, "signature_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_makes_renewal_due_now_and_an_expired_card_cannot_sign_in() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let path = format!("/api/v1/ra/cards/{card}/renew-now");
    let body = RenewNow {
        reason: "new CA profile".to_owned(),
    };
    // Never one's own card.
    assert_api_error(
        s.post::<_, RenewalWindow>(
            Some(&ram.token),
            &format!("/api/v1/ra/cards/{}/renew-now", ram.card_id),
            &body,
        )
        .await,
        403,
        "own_record",
    );
    let window: RenewalWindow = s.post(Some(&ram.token), &path, &body).await.unwrap();
    assert!(window.forced && window.due, "{window:?}");
    assert_eq!(s.audit_events("card.renewal.ordered").await.len(), 1);

    // Long before the window, the phone renews because the RA said so.
    let renewed = vsc_authenticator::renew(&phone.home, &passcode())
        .await
        .unwrap();
    assert_eq!(renewed.superseded.len() as i64, CARD_CERTIFICATES);
    let window = challenge(&s, &phone, &card).await.unwrap().window;
    assert!(
        !window.forced && !window.due,
        "the order is spent: {window:?}"
    );
    refused_with(
        vsc_authenticator::renew(&phone.home, &passcode()).await,
        409,
        "renewal_not_due",
    );

    // Two years on, the card has expired: sign-in says so, and so does renewal.
    s.clock.advance(Duration::days(731));
    let message = assert_api_error(
        s.try_open_request(&uid, &auth_context("pc-1")).await,
        403,
        "card_expired",
    );
    assert!(
        message.contains("expired on") && message.contains("new card"),
        "{message}"
    );
    let ch = challenge(&s, &phone, &card).await.unwrap();
    assert!(ch.window.due);
}

/// Two phases through the API: the old certificates stay in force until the new key confirms; a
/// confirmation by another key, or after the renewal lapsed, is refused and changes nothing; an
/// RA-forced renewal is confirmed in time and supersedes the old certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_new_key_confirms_and_only_before_the_renewal_lapses() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let old = in_force(&certificates(&s, &card).await);
    days_before_expiry(&s, 5);

    let new_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issued = issue(&s, &phone, &card, &new_key).await;
    let before = (s.snapshot().await, renewals(&s).await);
    assert_api_error(
        post_confirm(&s, confirm(&s, &card, &issued, &other)).await,
        401,
        "signature_invalid",
    );
    // An hour and a minute later the renewal has lapsed.
    s.clock.advance(Duration::minutes(61));
    let message = assert_api_error(
        post_confirm(&s, confirm(&s, &card, &issued, &new_key)).await,
        409,
        "renewal_not_open",
    );
    assert!(message.contains("lapsed"), "{message}");
    let after = (s.snapshot().await, renewals(&s).await);
    s.assert_unchanged(&before.0, &after.0, "refused confirmations");
    assert_eq!(before.1, after.1);
    assert_eq!(in_force(&certificates(&s, &card).await), old);

    // Again, confirmed in time: the old ones are superseded, the lapsed one's revoked.
    let new_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issued_again = issue(&s, &phone, &card, &new_key).await;
    let confirmed = post_confirm(&s, confirm(&s, &card, &issued_again, &new_key))
        .await
        .unwrap();
    let mut superseded = confirmed.superseded.clone();
    superseded.sort();
    assert_eq!(superseded, old);
    let rows = certificates(&s, &card).await;
    assert_eq!(in_force(&rows).len(), 2, "the renewal's two certificates");
    assert_eq!(
        rows.iter().filter(|r| r.2 == Some(4)).count(),
        old.len() + 2,
        "old and lapsed certificates revoked superseded"
    );
    // Confirming the lapsed one now is still refused.
    assert_api_error(
        post_confirm(&s, confirm(&s, &card, &issued, &new_key)).await,
        401,
        "signature_invalid",
    );
}

/// A renewal with `key` as its new authentication key, signed by the phone's current key.
async fn issue(s: &TestServer, phone: &Phone, card: &str, key: &rcgen::KeyPair) -> RenewalIssued {
    let ch = challenge(s, phone, card).await.unwrap();
    let mut req = request(phone, card, &ch);
    req.auth_csr = B64.encode(common::csr_der(key));
    let statement =
        vsc_proto::renewal::renewal_statement(&req, &ch.challenge.nonce, &s.state.origin());
    req.signature = common::sign_with_card(&phone.home, statement).await;
    post_renewal(s, &req).await.unwrap()
}

/// A confirmation of `issued` signed by `key`.
fn confirm(
    s: &TestServer,
    card: &str,
    issued: &RenewalIssued,
    key: &rcgen::KeyPair,
) -> vsc_proto::renewal::RenewalConfirm {
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        key.serialized_der(),
    )
    .unwrap();
    let statement = vsc_proto::renewal::renewal_confirm_statement(
        &issued.renewal_id,
        &issued.confirm_nonce,
        card,
        &s.state.origin(),
    );
    let signature = pair
        .sign(&aws_lc_rs::rand::SystemRandom::new(), &statement)
        .unwrap();
    vsc_proto::renewal::RenewalConfirm {
        renewal_id: issued.renewal_id.clone(),
        signature: B64.encode(signature.as_ref()),
    }
}

async fn post_confirm(
    s: &TestServer,
    body: vsc_proto::renewal::RenewalConfirm,
) -> Result<vsc_proto::renewal::RenewalConfirmed, ClientError> {
    s.post(None, vsc_proto::routes::DEVICE_RENEWAL_CONFIRM, &body)
        .await
}

/// The state of a renewal, straight from the database.
async fn renewal_state(s: &TestServer, id: &str) -> String {
    let row: (String,) = sqlx::query_as("SELECT state FROM card_renewals WHERE id = $1")
        .bind(id)
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    row.0
}

/// A renewal left unconfirmed past its hour is lapsed by the sweep: its certificates are revoked
/// `superseded` and listed in the CRL, one audit event says so, and a late confirmation is
/// refused with `renewal_not_open`. A renewal confirmed in time and one still within its hour
/// are untouched, and a second sweep finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_lapses_unconfirmed_renewals_and_revokes_their_certificates() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_, card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let (_, other_card, other_phone) = s.enrolled_person(&ram.token, "RX1").await;
    days_before_expiry(&s, 5);

    // Nothing to do yet.
    assert_eq!(
        vsc_server::renewal_sweep::sweep_once(&s.state)
            .await
            .unwrap(),
        0
    );
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let left = issue(&s, &phone, &card, &key).await;
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let confirmed = issue(&s, &other_phone, &other_card, &other_key).await;
    post_confirm(&s, confirm(&s, &other_card, &confirmed, &other_key))
        .await
        .unwrap();
    // Within its hour, the sweep leaves it alone.
    s.clock.advance(Duration::minutes(59));
    assert_eq!(
        vsc_server::renewal_sweep::sweep_once(&s.state)
            .await
            .unwrap(),
        0
    );
    assert_eq!(renewal_state(&s, &left.renewal_id).await, "issued");
    let pending: Vec<String> = certificates(&s, &card)
        .await
        .into_iter()
        .filter(|r| r.3.as_deref() == Some(left.renewal_id.as_str()))
        .map(|r| r.0)
        .collect();
    assert_eq!(pending.len(), 2);
    let other_before = certificates(&s, &other_card).await;
    let old = in_force(&certificates(&s, &card).await);

    s.clock.advance(Duration::minutes(2));
    assert_eq!(
        vsc_server::renewal_sweep::sweep_once(&s.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(renewal_state(&s, &left.renewal_id).await, "lapsed");
    let rows = certificates(&s, &card).await;
    for serial in &pending {
        assert!(
            rows.iter().any(|r| &r.0 == serial && r.2 == Some(4)),
            "{serial} revoked superseded: {rows:?}"
        );
    }
    assert_eq!(
        in_force(&rows),
        old,
        "the card's own certificates stay in force"
    );
    let crl = crl_entries(&s).await;
    for serial in &pending {
        assert!(
            crl.contains(&(serial.clone(), Some(4))),
            "{serial} in the CRL: {crl:?}"
        );
    }
    // The confirmed renewal is untouched.
    assert_eq!(renewal_state(&s, &confirmed.renewal_id).await, "confirmed");
    assert_eq!(certificates(&s, &other_card).await, other_before);
    let events = s.audit_events("card.renewal.lapsed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, card);
    assert_eq!(events[0].actor, "system");

    // A second pass changes nothing.
    let before = s.snapshot().await;
    assert_eq!(
        vsc_server::renewal_sweep::sweep_once(&s.state)
            .await
            .unwrap(),
        0
    );
    s.assert_unchanged(&before, &s.snapshot().await, "a sweep with nothing to do");

    // The phone coming back late is told to renew again.
    let message = assert_api_error(
        post_confirm(&s, confirm(&s, &card, &left, &key)).await,
        409,
        "renewal_not_open",
    );
    assert!(message.contains("renew again"), "{message}");
    assert_eq!(in_force(&certificates(&s, &card).await), old);
    s.assert_audit_intact().await;
}

/// Two nodes on one PostgreSQL store sweep at the same moment: exactly one lapses the renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sweeping_at_once_lapse_a_renewal_once() {
    if std::env::var_os("VSC_TEST_POSTGRES").is_none() {
        eprintln!(
            "skipped: several nodes need a shared PostgreSQL database; set VSC_TEST_POSTGRES"
        );
        return;
    }
    let a = start().await;
    let ram = a.enrol_bootstrap_ram().await;
    a.create_org(&ram.token, "RX1").await;
    let (_, card, phone) = a.enrolled_person(&ram.token, "RX1").await;
    days_before_expiry(&a, 5);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let left = issue(&a, &phone, &card, &key).await;
    let b = a.start_node().await;
    a.clock.advance(Duration::minutes(61));
    let (one, two) = tokio::join!(
        vsc_server::renewal_sweep::sweep_once(&a.state),
        vsc_server::renewal_sweep::sweep_once(&b.state)
    );
    assert_eq!(one.unwrap() + two.unwrap(), 1);
    assert_eq!(renewal_state(&a, &left.renewal_id).await, "lapsed");
    assert_eq!(a.audit_events("card.renewal.lapsed").await.len(), 1);
    a.assert_audit_intact().await;
}

/// The phone hears of a due renewal beside each sign-in request (`card_renewal`), and not
/// before it is due; `status` then uses the server's window instead of its default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_cards_requests_carry_its_renewal_window() {
    let s = common::start_with(|c| c.renewal_window = Duration::days(30)).await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let link = vsc_authenticator::phone::PhoneLink::new(&phone.home).unwrap();

    // 60 days before expiry: inside the default 90 days, outside this instance's 30.
    days_before_expiry(&s, 60);
    s.open_request(&uid, "pc-1").await;
    let pending = link.pending(0).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].card_renewal, None, "not due: no warning");

    // 20 days before expiry: due, and the phone is told.
    s.clock.advance(Duration::days(40));
    s.open_request(&uid, "pc-2").await;
    let pending = link.pending(0).await.unwrap();
    assert!(!pending.is_empty());
    for request in &pending {
        let window = request
            .card_renewal
            .as_ref()
            .expect("a due card's request warns");
        assert!(window.due && !window.forced, "{window:?}");
        assert_eq!(window.window_days, 30);
    }
    let status = vsc_authenticator::status(&phone.home).unwrap();
    assert!(
        status.renewal_due && status.renewal_window_from_server,
        "{status:?}"
    );
    assert_eq!(status.renewal_window_days, 30);
}

/// Reasons are shown to people (the console, the audit log): `renew-now`, `replace` and
/// `cancel` refuse one with a bidirectional override, a zero-width character or a control
/// character, with `invalid_reason`, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasons_that_would_display_as_something_else_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_, card, _phone) = s.enrolled_person(&ram.token, "RX1").await;
    let before = s.snapshot().await;
    for reason in [
        "new \u{202e}enohp",
        "new\u{200b}phone",
        "new\u{1b}[2Jphone",
        "new\nphone",
    ] {
        let message = assert_api_error(
            s.post::<_, RenewalWindow>(
                Some(&ram.token),
                &format!("/api/v1/ra/cards/{card}/renew-now"),
                &RenewNow {
                    reason: reason.to_owned(),
                },
            )
            .await,
            400,
            "invalid_reason",
        );
        assert!(message.contains("invisible formatting"), "{message}");
        assert_api_error(
            s.post::<_, vsc_proto::CardWithCode>(
                Some(&ram.token),
                &format!("/api/v1/ra/cards/{card}/replace"),
                &vsc_proto::replacement::ReplaceCard {
                    lost: true,
                    reason: reason.to_owned(),
                },
            )
            .await,
            400,
            "invalid_reason",
        );
        assert_api_error(
            s.post::<_, vsc_proto::Card>(
                Some(&ram.token),
                &format!("/api/v1/ra/cards/{card}/cancel"),
                &CancelCard {
                    reason_code: Some("key-compromise".to_owned()),
                    reason: reason.to_owned(),
                    invalidity_date: None,
                },
            )
            .await,
            400,
            "invalid_reason",
        );
    }
    s.assert_unchanged(&before, &s.snapshot().await, "reasons that hide text");
    assert_eq!(s.card_state(&card).await, "active");
}

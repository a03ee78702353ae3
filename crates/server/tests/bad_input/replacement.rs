//! Card replacement (issue 14): `POST /api/v1/ra/cards/{id}/replace` moves a card to a new phone
//! with a new activation. Lost: the old phone's certificates are revoked `key-compromise` at once
//! (and in the CRL), its sessions end and it is refused from then on. Not lost: the old phone
//! keeps working until the new one enrols, then its certificates are revoked `superseded`, its
//! sessions end and it is refused. The card keeps its id and its history (phones, certificates).
//! Who may replace, replays of the codes, and bad requests are refused, audited, and change
//! nothing.

use vsc_authenticator::{AuthenticatorError, PhoneLink};
use vsc_proto::replacement::ReplaceCard;
use vsc_proto::{CancelCard, Card, CardWithCode};
use x509_parser::prelude::{CertificateRevocationList, FromDer};

use crate::common::{
    Phone, Snapshot, TestServer, assert_api_error, assert_flow_error, passcode, server_code, start,
};

async fn replace(
    s: &TestServer,
    token: &str,
    card: &str,
    lost: bool,
    reason: &str,
) -> Result<CardWithCode, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/cards/{card}/replace"),
        &ReplaceCard {
            lost,
            reason: reason.to_owned(),
        },
    )
    .await
}

/// The issuing CRL's entries as a relying party reads them: serial (lowercase hex) and reason
/// code.
async fn crl_entries(s: &TestServer) -> Vec<(String, Option<u8>)> {
    let url = s.url.join("ca/issuing.crl").expect("CRL URL");
    let response = s.raw_http().get(url).send().await.expect("fetch the CRL");
    assert_eq!(response.status().as_u16(), 200);
    let der = response.bytes().await.expect("CRL body").to_vec();
    let (_, crl) = CertificateRevocationList::from_der(&der).expect("parse the CRL");
    crl.iter_revoked_certificates()
        .map(|e| {
            let raw = e.raw_serial();
            let start = raw
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(raw.len().saturating_sub(1));
            let serial = raw[start..].iter().map(|b| format!("{b:02x}")).collect();
            (serial, e.reason_code().map(|(_, c)| c.0))
        })
        .collect()
}

/// A `card_devices` row: card, device, bound, unbound, why.
type DeviceRow = (String, String, i64, Option<i64>, Option<String>);
/// A `card_replacements` row: id, card, lost, new device, completed, ended.
type ReplacementRow = (
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// The tables a replacement writes that the common snapshot does not cover.
async fn history(s: &TestServer) -> Vec<String> {
    let pool = s.state.store().pool();
    let mut out = Vec::new();
    let devices: Vec<DeviceRow> = sqlx::query_as(
        "SELECT card_id, device_id, bound_at, unbound_at, unbound_reason FROM card_devices ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("card_devices");
    out.extend(devices.into_iter().map(|r| format!("{r:?}")));
    let replacements: Vec<ReplacementRow> =
        sqlx::query_as(
            "SELECT id, card_id, lost, new_device_id, completed_at, ended_at FROM card_replacements ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .expect("card_replacements");
    out.extend(replacements.into_iter().map(|r| format!("{r:?}")));
    let sessions: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, ended_at FROM sessions ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("sessions");
    out.extend(sessions.into_iter().map(|r| format!("{r:?}")));
    out
}

/// Everything a refused request must leave alone.
async fn everything(s: &TestServer) -> (Snapshot, Vec<String>) {
    (s.snapshot().await, history(s).await)
}

#[track_caller]
fn assert_same(
    s: &TestServer,
    before: &(Snapshot, Vec<String>),
    after: &(Snapshot, Vec<String>),
    what: &str,
) {
    s.assert_unchanged(&before.0, &after.0, what);
    assert_eq!(
        before.1, after.1,
        "{what}: the card's history or its sessions changed"
    );
}

/// The server's refusal code of a phone flow.
#[track_caller]
fn refused_with(result: Result<impl std::fmt::Debug, AuthenticatorError>, status: u16, code: &str) {
    let err = result.expect_err("the phone must be refused");
    assert_eq!(
        server_code(&err),
        Some((status, code.to_owned())),
        "expected {status} {code}, got {err:?}"
    );
}

/// Serials of `card`'s certificates that are revoked with `reason`, and those not revoked.
fn serials(card: &Card, reason: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = card
        .certificates
        .iter()
        .filter(|c| c.revocation_reason.as_deref() == reason && c.revoked == reason.is_some())
        .map(|c| c.serial.clone())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_phone_is_stopped_at_once_and_the_new_phone_takes_the_card() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, card_id, old) = s.enrolled_person(t, "RX1").await;
    let (_, ticket) = s.sign_in(&old, &uid, "pc-1").await;
    let before = s.card(t, &card_id).await;
    let old_serials = serials(&before, None);
    assert_eq!(old_serials.len(), 4);

    // A request the old phone has already seen when the phone is reported lost.
    let opened = s.open_request(&uid, "pc-1").await;
    let link = PhoneLink::new(&old.home).expect("the old phone's link");
    let seen = link
        .pending(5)
        .await
        .expect("the old phone reads its requests")
        .into_iter()
        .find(|r| r.request_id == opened.request_id)
        .expect("the request reaches the old phone");

    let replaced = replace(&s, t, &card_id, true, "phone lost on the bus")
        .await
        .expect("the RA replaces the lost phone");
    assert_eq!(replaced.card.id, card_id, "the same card record");
    assert_eq!(replaced.card.state, "pending", "waiting for the new phone");
    assert_eq!(replaced.card.device_id, None, "on no phone now");
    assert_eq!(
        serials(&replaced.card, Some("key-compromise")),
        old_serials,
        "every certificate of the old phone is revoked key-compromise at once"
    );
    let pending = replaced
        .card
        .pending_replacement
        .as_ref()
        .expect("the replacement waits for the new phone");
    assert!(pending.lost);
    assert_eq!(pending.requested_by, ram.uid);
    assert_eq!(replaced.card.devices.len(), 1);
    assert_eq!(
        replaced.card.devices[0].unbound_reason.as_deref(),
        Some("lost")
    );
    assert!(crate::common::is_link(
        &replaced.code.url,
        vsc_proto::LinkKind::Activate
    ));

    // In the published CRL, with the reason, at once.
    let crl = crl_entries(&s).await;
    for serial in &old_serials {
        assert!(
            crl.contains(&(serial.clone(), Some(1))),
            "{serial} is in the CRL as key-compromise: {crl:?}"
        );
    }
    // Its session ended, its open request failed, and the phone is refused: its approval of
    // the request it saw, and its device channel.
    assert_api_error(s.validate(&ticket).await, 401, "session_ended");
    assert_eq!(s.request_state(&opened.request_id).await, "failed");
    refused_with(
        link.approve(&seen, opened.number, &passcode()).await,
        403,
        "card_replaced",
    );
    refused_with(link.pending(0).await, 403, "card_replaced");
    s.assert_audited("card.passcode.check", "card_replaced", 1)
        .await;
    s.assert_audited("device.token", "card_replaced", 1).await;

    // The new phone enrols with the new activation and signs in.
    let new = Phone::new();
    let enrolled = s
        .enrol(&new, &replaced.code.url)
        .await
        .expect("the new phone enrols");
    assert_eq!(enrolled.card_id, card_id);
    assert_eq!(enrolled.uid, uid);
    let (_, ticket) = s.sign_in(&new, &uid, "pc-1").await;
    s.validate(&ticket).await.expect("the new phone's session");
    // The old phone stays refused.
    refused_with(link.pending(0).await, 403, "card_replaced");

    // History: both phones, all eight certificates.
    let after = s.card(t, &card_id).await;
    assert_eq!(after.state, "active");
    assert_eq!(after.device_id.as_deref(), Some(new.device_id().as_str()));
    assert_eq!(after.pending_replacement, None);
    let phones: Vec<(&str, Option<&str>)> = after
        .devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.unbound_reason.as_deref()))
        .collect();
    assert_eq!(
        phones,
        vec![
            (old.device_id().as_str(), Some("lost")),
            (new.device_id().as_str(), None)
        ]
    );
    assert!(after.devices[0].unbound_at.is_some() && after.devices[1].unbound_at.is_none());
    assert_eq!(after.certificates.len(), 8);
    assert_eq!(serials(&after, Some("key-compromise")), old_serials);
    assert_eq!(
        serials(&after, None).len(),
        4,
        "the new phone's certificates"
    );

    let requested = s.audit_events("card.replacement.requested").await;
    assert_eq!(requested.len(), 1);
    let detail: serde_json::Value = serde_json::from_str(&requested[0].detail).expect("JSON");
    assert_eq!(detail["lost"], true);
    assert_eq!(detail["certificates_revoked"], 4);
    assert_eq!(s.audit_events("card.replaced").await.len(), 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_phone_works_until_the_new_one_enrols_then_is_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, issued) = s.person_with_card(t, "RX1").await;
    let card_id = issued.card.id.clone();
    let first = issued.code.url.clone();
    let old = Phone::new();
    s.enrol(&old, &first).await.expect("the first phone enrols");
    let (_, ticket_before) = s.sign_in(&old, &uid, "pc-1").await;
    let old_serials = serials(&s.card(t, &card_id).await, None);

    let replaced = replace(&s, t, &card_id, false, "new phone")
        .await
        .expect("the RA replaces the phone");
    assert_eq!(
        replaced.card.state, "active",
        "the person is not locked out"
    );
    assert_eq!(
        replaced.card.device_id.as_deref(),
        Some(old.device_id().as_str())
    );
    assert_eq!(
        serials(&replaced.card, None),
        old_serials,
        "nothing revoked yet"
    );
    assert!(
        !replaced
            .card
            .pending_replacement
            .as_ref()
            .expect("waiting")
            .lost
    );
    assert!(crl_entries(&s).await.is_empty(), "nothing in the CRL yet");

    // Until the new phone enrols, the old one signs in as before.
    let (_, ticket_meanwhile) = s.sign_in(&old, &uid, "pc-2").await;
    s.validate(&ticket_before).await.expect("still live");

    // The replacement is for another phone: the old phone cannot take it.
    let before = everything(&s).await;
    assert_flow_error(
        s.enrol(&old, &replaced.code.url).await,
        409,
        "replacement_needs_new_phone",
    );
    assert_same(
        &s,
        &before,
        &everything(&s).await,
        "the old phone enrolling the replacement",
    );
    assert!(!s.code_used(&replaced.code.code).await);
    s.assert_audited("card.enrol", "replacement_needs_new_phone", 1)
        .await;

    // A request open when the new phone enrols, seen by the old phone.
    let opened = s.open_request(&uid, "pc-1").await;
    let old_link = PhoneLink::new(&old.home).expect("the old phone's link");
    let seen = old_link
        .pending(5)
        .await
        .expect("the old phone still reads its requests")
        .into_iter()
        .find(|r| r.request_id == opened.request_id)
        .expect("the request reaches the old phone");

    let new = Phone::new();
    let enrolled = s
        .enrol(&new, &replaced.code.url)
        .await
        .expect("the new phone enrols");
    assert_eq!(enrolled.card_id, card_id);

    // Now the old phone is done: certificates superseded and in the CRL, sessions ended, its
    // request failed, its approvals and its channel refused.
    let after = s.card(t, &card_id).await;
    assert_eq!(after.state, "active");
    assert_eq!(serials(&after, Some("superseded")), old_serials);
    let crl = crl_entries(&s).await;
    for serial in &old_serials {
        assert!(
            crl.contains(&(serial.clone(), Some(4))),
            "{serial} superseded in {crl:?}"
        );
    }
    assert_api_error(s.validate(&ticket_before).await, 401, "session_ended");
    assert_api_error(s.validate(&ticket_meanwhile).await, 401, "session_ended");
    assert_eq!(s.request_state(&opened.request_id).await, "failed");
    refused_with(
        old_link.approve(&seen, opened.number, &passcode()).await,
        403,
        "card_replaced",
    );
    refused_with(old_link.pending(0).await, 403, "card_replaced");
    let key = old
        .home
        .device_key()
        .expect("read the device key")
        .expect("a device key");
    assert_api_error(
        s.try_device_token_signed_by(&old, |m| key.sign(m).expect("sign"))
            .await,
        403,
        "card_replaced",
    );

    // The new phone signs in; a request reaches it and not the old one.
    let (_, ticket) = s.sign_in(&new, &uid, "pc-1").await;
    s.validate(&ticket).await.expect("the new phone's session");

    // Replays: the replacement code and the original activation are both spent.
    let third = Phone::new();
    assert_flow_error(
        s.enrol(&third, &replaced.code.url).await,
        410,
        "activation_used",
    );
    assert_flow_error(s.enrol(&third, &first).await, 410, "activation_used");

    // History: both phones with dates, eight certificates.
    let phones: Vec<(String, Option<String>)> = after
        .devices
        .iter()
        .map(|d| (d.device_id.clone(), d.unbound_reason.clone()))
        .collect();
    assert_eq!(
        phones,
        vec![
            (old.device_id(), Some("replaced".to_owned())),
            (new.device_id(), None)
        ]
    );
    assert!(after.devices[0].bound_at <= after.devices[1].bound_at);
    assert_eq!(after.certificates.len(), 8);
    assert_eq!(serials(&after, None).len(), 4);
    let replaced_events = s.audit_events("card.replaced").await;
    assert_eq!(replaced_events.len(), 1);
    let detail: serde_json::Value = serde_json::from_str(&replaced_events[0].detail).expect("JSON");
    assert_eq!(detail["reason_code"], "superseded");
    assert_eq!(detail["certificates_revoked"], 4);
    assert_eq!(detail["sessions_ended"].as_array().map(Vec::len), Some(2));
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_replace_a_card() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    let (_uid, card_id, _phone) = s.enrolled_person(t, "RY2").await;
    let other_org = s.new_ra(t, "RX1", "ra-manager", &[]).await;
    let checker = s.new_ra(t, "RY2", "id-checker", &[]).await;
    let agent = s.new_ra(t, "RY2", "ra-agent", &[]).await;

    let before = everything(&s).await;
    assert_api_error(
        replace(&s, &other_org.token, &card_id, true, "lost").await,
        403,
        "ra_outside_organisation",
    );
    assert_api_error(
        replace(&s, &checker.token, &card_id, false, "new phone").await,
        403,
        "ra_role_not_permitted",
    );
    assert_api_error(
        replace(&s, &agent.token, &agent.card_id, false, "my new phone").await,
        403,
        "own_record",
    );
    assert_same(
        &s,
        &before,
        &everything(&s).await,
        "replacements refused by scope",
    );
    s.assert_audited("card.replace", "ra_outside_organisation", 1)
        .await;
    s.assert_audited("card.replace", "ra_role_not_permitted", 1)
        .await;
    s.assert_audited("card.replace", "own_record", 1).await;

    // An RA Agent of the person's organisation may.
    let replaced = replace(&s, &agent.token, &card_id, false, "new phone")
        .await
        .expect("the RA Agent replaces the card");
    assert_eq!(
        replaced.card.pending_replacement.map(|r| r.requested_by),
        Some(agent.uid.clone())
    );
    // Viewing the card (with its history) stays open to any RA in scope, and closed outside.
    let seen: Card = s.card(&checker.token, &card_id).await;
    assert_eq!(seen.devices.len(), 1);
    assert_api_error(
        s.get::<Card>(
            Some(&other_org.token),
            &format!("/api/v1/ra/cards/{card_id}"),
        )
        .await,
        403,
        "ra_outside_organisation",
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_card_on_a_phone_is_replaced_and_bad_requests_change_nothing() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_uid, pending) = s.person_with_card(t, "RX1").await;
    let (_uid, card_id, _phone) = s.enrolled_person(t, "RX1").await;
    let path = format!("/api/v1/ra/cards/{card_id}/replace");

    let before = everything(&s).await;
    assert_api_error(
        replace(&s, t, &pending.card.id, false, "new phone").await,
        409,
        "card_not_replaceable",
    );
    assert_api_error(
        replace(&s, t, &card_id, true, "").await,
        400,
        "invalid_reason",
    );
    assert_api_error(
        replace(&s, t, &card_id, true, "  ").await,
        400,
        "invalid_reason",
    );
    assert_api_error(
        replace(&s, t, &card_id, true, &"x".repeat(501)).await,
        400,
        "invalid_reason",
    );
    assert_api_error(
        s.post::<_, CardWithCode>(Some(t), &path, &serde_json::json!({"lost": false}))
            .await,
        400,
        "invalid_reason",
    );
    // `lost` must be said: a lost phone is never left working by omission.
    assert_api_error(
        s.post::<_, CardWithCode>(Some(t), &path, &serde_json::json!({"reason": "new phone"}))
            .await,
        400,
        "invalid_request",
    );
    assert_api_error(
        replace(
            &s,
            t,
            "0123456789abcdef0123456789abcdef",
            false,
            "new phone",
        )
        .await,
        404,
        "unknown_card",
    );
    assert_same(&s, &before, &everything(&s).await, "bad replacements");
    s.assert_audited("card.replace", "card_not_replaceable", 1)
        .await;
    s.assert_audited("card.replace", "invalid_reason", 4).await;

    // Asked twice: the second code replaces the first, and a lost replacement then leaves the
    // card pending, which is not replaced again (it gets a new activation instead).
    let first = replace(&s, t, &card_id, false, "new phone")
        .await
        .expect("replace");
    let second = replace(&s, t, &card_id, true, "the old phone was stolen after all")
        .await
        .expect("replace again, now lost");
    let new = Phone::new();
    assert_flow_error(
        s.enrol(&new, &first.code.url).await,
        410,
        "activation_expired",
    );
    let before = everything(&s).await;
    assert_api_error(
        replace(&s, t, &card_id, true, "again").await,
        409,
        "card_not_replaceable",
    );
    assert_same(
        &s,
        &before,
        &everything(&s).await,
        "replacing a pending card",
    );
    let again: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card_id}/activation"),
            &serde_json::json!({}),
        )
        .await
        .expect("a pending replacement gets a new activation");
    assert_flow_error(
        s.enrol(&new, &second.code.url).await,
        410,
        "activation_expired",
    );
    s.enrol(&new, &again.code.url)
        .await
        .expect("the new phone enrols with the newest code");
    let card = s.card(t, &card_id).await;
    assert_eq!(serials(&card, Some("key-compromise")).len(), 4);
    assert_eq!(card.devices.len(), 2);

    // A cancelled card is not replaced, and cancelling ends a waiting replacement.
    let (_uid, other_id, _phone) = s.enrolled_person(t, "RX1").await;
    let waiting = replace(&s, t, &other_id, false, "new phone")
        .await
        .expect("replace");
    let cancelled: Card = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{other_id}/cancel"),
            &CancelCard {
                reason_code: Some("cessation-of-operation".to_owned()),
                reason: "left the trust".to_owned(),
                invalidity_date: None,
            },
        )
        .await
        .expect("cancel");
    assert_eq!(cancelled.pending_replacement, None);
    assert_eq!(
        cancelled.devices[0].unbound_reason.as_deref(),
        Some("card-cancelled")
    );
    assert_flow_error(
        s.enrol(&Phone::new(), &waiting.code.url).await,
        410,
        "activation_expired",
    );
    let before = everything(&s).await;
    assert_api_error(
        replace(&s, t, &other_id, true, "lost").await,
        409,
        "card_not_replaceable",
    );
    assert_same(
        &s,
        &before,
        &everything(&s).await,
        "replacing a cancelled card",
    );
    s.assert_audit_intact().await;
}

//! Issue 9, item 4: cancelling a card takes an RFC 5280 reason (and, for a key compromise, an
//! optional invalidity date); the CRL the server publishes carries both, as `openssl crl` and
//! x509-parser read them. Bad reasons and dates are refused, audited, and change nothing.

use time::format_description::well_known::Rfc3339;
use vsc_proto::{CancelCard, Card};
use x509_parser::prelude::{CertificateRevocationList, FromDer};

use crate::common::{TestServer, assert_api_error, start};

async fn cancel(
    s: &TestServer,
    token: &str,
    card: &str,
    reason_code: Option<&str>,
    invalidity_date: Option<String>,
) -> Result<Card, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        &format!("/api/v1/ra/cards/{card}/cancel"),
        &CancelCard {
            reason_code: reason_code.map(str::to_owned),
            reason: "phone reported stolen".to_owned(),
            invalidity_date,
        },
    )
    .await
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format a time")
}

/// A serial as the server stores it: lowercase hex without leading zero bytes.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// The issuing CRL as a relying party fetches it: over HTTPS from the running server.
async fn fetch_crl(s: &TestServer) -> Vec<u8> {
    let url = s.url.join("ca/issuing.crl").expect("CRL URL");
    let response = s.raw_http().get(url).send().await.expect("fetch the CRL");
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.expect("CRL body").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_reasons_are_required_and_checked() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_uid, card, _phone) = s.enrolled_person(t, "RX1").await;
    s.clock.advance(time::Duration::minutes(30));
    let now = s.state.now();
    let before = s.snapshot().await;

    assert_api_error(
        cancel(&s, t, &card, None, None).await,
        400,
        "reason_code_required",
    );
    assert_api_error(
        cancel(&s, t, &card, Some(" "), None).await,
        400,
        "reason_code_required",
    );
    for bad in [
        "unspecified",
        "certificate-hold",
        "ca-compromise",
        "lost",
        "1",
    ] {
        assert_api_error(
            cancel(&s, t, &card, Some(bad), None).await,
            400,
            "invalid_reason_code",
        );
    }
    assert_api_error(
        cancel(&s, t, &card, Some("superseded"), Some(rfc3339(now))).await,
        400,
        "invalidity_date_needs_key_compromise",
    );
    for bad in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "1700000000",
        &"9".repeat(5000),
    ] {
        assert_api_error(
            cancel(&s, t, &card, Some("key-compromise"), Some(bad.to_owned())).await,
            400,
            "invalid_invalidity_date",
        );
    }
    assert_api_error(
        cancel(
            &s,
            t,
            &card,
            Some("key-compromise"),
            Some(rfc3339(now + time::Duration::minutes(5))),
        )
        .await,
        400,
        "invalidity_date_in_future",
    );
    assert_api_error(
        cancel(
            &s,
            t,
            &card,
            Some("key-compromise"),
            Some(rfc3339(now - time::Duration::days(2))),
        )
        .await,
        400,
        "invalidity_date_before_issue",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "cancellations with bad reasons or dates");
    assert_eq!(s.card_state(&card).await, "active");
    for (code, n) in [
        ("reason_code_required", 2),
        ("invalid_reason_code", 5),
        ("invalidity_date_needs_key_compromise", 1),
        ("invalid_invalidity_date", 4),
        ("invalidity_date_in_future", 1),
        ("invalidity_date_before_issue", 1),
    ] {
        s.assert_audited("card.cancel", code, n).await;
    }
    s.assert_audit_intact().await;
}

/// A stolen phone (key-compromise, since a known time) and a leaver (affiliation-changed): the
/// published CRL lists each certificate with its reason, and the invalidity date for the
/// compromise, as `openssl crl -text` and x509-parser read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_crl_carries_reasons_and_invalidity_dates() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (stolen_uid, stolen, _p1) = s.enrolled_person(&ram.token, "RX1").await;
    let (moved_uid, moved, _p2) = s.enrolled_person(&ram.token, "RX1").await;
    s.clock.advance(time::Duration::hours(2));
    let t = s.login(&ram.phone).await;
    let compromised_since = (s.state.now() - time::Duration::hours(1))
        .replace_nanosecond(0)
        .expect("whole seconds");

    let card = cancel(
        &s,
        &t,
        &stolen,
        Some("key-compromise"),
        Some(rfc3339(compromised_since)),
    )
    .await
    .expect("cancel the stolen phone's card");
    assert_eq!(card.state, "revoked");
    assert!(card.certificates.iter().all(|c| c.revoked));
    cancel(&s, &t, &moved, Some("affiliation-changed"), None)
        .await
        .expect("cancel the card of someone who moved");

    let serials = |uid: &str| {
        let uid = uid.to_owned();
        let s = &s;
        let t = t.clone();
        async move {
            s.person(&t, &uid).await.cards[0]
                .certificates
                .iter()
                .map(|c| c.serial.to_ascii_lowercase())
                .collect::<Vec<_>>()
        }
    };
    let stolen_serials = serials(&stolen_uid).await;
    let moved_serials = serials(&moved_uid).await;
    assert!(!stolen_serials.is_empty() && !moved_serials.is_empty());

    let der = fetch_crl(&s).await;

    // x509-parser: reason code and invalidity date per entry, signature by the issuing CA.
    let (rest, crl) = CertificateRevocationList::from_der(&der).expect("parse the CRL");
    assert!(rest.is_empty());
    let issuing_der = vsc_pki::pem_to_der(&s.state.ca().issuing_pem()).expect("issuing PEM");
    let (_, issuing) =
        x509_parser::certificate::X509Certificate::from_der(&issuing_der).expect("issuing CA");
    crl.verify_signature(issuing.public_key())
        .expect("the CRL is signed by the issuing CA");
    let mut seen = 0;
    for entry in crl.iter_revoked_certificates() {
        let serial = serial_hex(entry.raw_serial());
        let reason = entry.reason_code().map(|(_, c)| c.0);
        let invalidity = entry.invalidity_date().map(|(_, t)| t.timestamp());
        if stolen_serials.contains(&serial) {
            assert_eq!(reason, Some(1), "keyCompromise for {serial}");
            assert_eq!(invalidity, Some(compromised_since.unix_timestamp()));
            seen += 1;
        } else if moved_serials.contains(&serial) {
            assert_eq!(reason, Some(3), "affiliationChanged for {serial}");
            assert_eq!(invalidity, None);
            seen += 1;
        }
    }
    assert_eq!(seen, stolen_serials.len() + moved_serials.len());

    // openssl, as an operator or relying party would look at it.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("issuing.crl");
    std::fs::write(&path, &der).expect("write the CRL");
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let expected_date = compromised_since
        .format(time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
        ))
        .expect("format");
    for serial in &stolen_serials {
        let block = entry_block(&text, serial);
        assert!(block.contains("Key Compromise"), "{block}");
        assert!(block.contains("Invalidity Date"), "{block}");
        assert!(block.contains(&expected_date), "{expected_date} in {block}");
    }
    for serial in &moved_serials {
        let block = entry_block(&text, serial);
        assert!(block.contains("Affiliation Changed"), "{block}");
        assert!(!block.contains("Invalidity Date"), "{block}");
    }

    let events = s.audit_events("card.cancelled").await;
    assert!(
        events[0].detail.contains("key-compromise"),
        "{}",
        events[0].detail
    );
    assert!(
        events[1].detail.contains("affiliation-changed"),
        "{}",
        events[1].detail
    );
    s.assert_audit_intact().await;
}

/// The lines of `openssl crl -text` output describing the entry with `serial`.
fn entry_block(text: &str, serial: &str) -> String {
    let wanted = serial.trim_start_matches('0').to_ascii_uppercase();
    let mut lines = text.lines().skip_while(|l| {
        l.trim()
            .strip_prefix("Serial Number: ")
            .is_none_or(|s| s.trim_start_matches('0') != wanted)
    });
    let mut block = match lines.next() {
        Some(first) => vec![first.to_owned()],
        None => panic!("serial {serial} is not in the CRL:\n{text}"),
    };
    block.extend(
        lines
            .take_while(|l| {
                !l.trim_start().starts_with("Serial Number:") && !l.contains("Signature Algorithm")
            })
            .map(str::to_owned),
    );
    block.join("\n")
}

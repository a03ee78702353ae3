//! Issue 14, OCSP: the responder at `/ca/ocsp` against the real `openssl ocsp` client over TLS
//! on loopback — good, revoked (reason, time, invalidity date), unknown serial, nonce echoed or
//! left out, the response verified up the delegated responder's chain to the root — the GET
//! form with its caching headers, and the refusals: a malformed request, a certificate of
//! another CA, the wrong content type, an oversized body. Then the responder certificate's
//! rotation: once past half its life, exactly once however many requests (or, on PostgreSQL,
//! nodes) ask at the same moment, audited.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::{TestServer, start};
use time::format_description::well_known::Rfc3339;
use vsc_pki::ocsp::{CertId, CertIdHash, CertStatus, build_request, ocsp_urls, verify_response};
use vsc_proto::{CancelCard, Card};

/// The card's signing certificate (DER), from the database.
async fn signing_certificate(s: &TestServer, card: &str) -> Vec<u8> {
    let (der,): (Vec<u8>,) =
        sqlx::query_as("SELECT der FROM certificates WHERE card_id = $1 AND usage = 'signing'")
            .bind(card)
            .fetch_one(s.state.store().pool())
            .await
            .unwrap();
    der
}

/// `openssl ocsp ARGS -url <server>/ca/ocsp`, trusting the instance root for TLS and for the
/// response (the issuing CA as an untrusted intermediate): success and everything printed.
fn openssl_ocsp(s: &TestServer, dir: &Path, args: &[&str]) -> (bool, String) {
    let url = s.url.join("ca/ocsp").unwrap();
    let out = Command::new("openssl")
        .arg("ocsp")
        .args(args)
        .args(["-url", url.as_str()])
        .args(["-CAfile", "root.pem", "-verify_other", "issuing.pem"])
        .current_dir(dir)
        .output()
        .expect("openssl must be installed to run these tests");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn write_ca(s: &TestServer, dir: &Path) {
    std::fs::write(dir.join("root.pem"), s.state.ca().root_pem()).unwrap();
    std::fs::write(dir.join("issuing.pem"), s.state.ca().issuing_pem()).unwrap();
}

async fn post_ocsp(s: &TestServer, content_type: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let response = s
        .raw_http()
        .post(s.url.join("ca/ocsp").unwrap())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// `OCSPResponse { responseStatus }` alone: what a refusal looks like on the wire.
fn refusal(code: u8) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, code]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_reads_good_revoked_and_unknown_and_bad_requests_are_refused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_uid, card, _phone) = s.enrolled_person(t, "RX1").await;
    let cert = signing_certificate(&s, &card).await;
    assert_eq!(
        ocsp_urls(&cert).unwrap(),
        [s.state.ocsp_url()],
        "issued certificates name the responder (AIA id-ad-ocsp)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_ca(&s, dir);
    std::fs::write(
        dir.join("signing.pem"),
        vsc_pki::der_to_pem("CERTIFICATE", &cert),
    )
    .unwrap();

    // Good, with the nonce echoed (openssl checks it and says so when it is missing).
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &[
            "-issuer",
            "issuing.pem",
            "-cert",
            "signing.pem",
            "-resp_text",
        ],
    );
    assert!(ok, "{text}");
    for expected in [
        "Response verify OK",
        "signing.pem: good",
        "This Update:",
        "Next Update:",
        "OCSP Nonce",
        "Responder Id: ",
        "OCSP Signing",
        "OCSP No Check",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("WARNING"), "{text}");
    // SHA-256 CertIDs, and no nonce asked for: none sent back.
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &[
            "-sha256",
            "-issuer",
            "issuing.pem",
            "-cert",
            "signing.pem",
            "-no_nonce",
            "-resp_text",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    assert!(text.contains("signing.pem: good"), "{text}");
    assert!(!text.contains("OCSP Nonce"), "{text}");

    // A serial the CA never issued.
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &["-issuer", "issuing.pem", "-serial", "0x1234abcd"],
    );
    assert!(ok, "{text}");
    assert!(text.contains("0x1234abcd: unknown"), "{text}");

    // Cancelled as stolen: revoked, with the reason, the time and the invalidity date.
    s.clock.advance(time::Duration::seconds(60));
    let compromised = s.state.now() - time::Duration::seconds(30);
    let _: Card = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card}/cancel"),
            &CancelCard {
                reason_code: Some("key-compromise".to_owned()),
                reason: "phone reported stolen".to_owned(),
                invalidity_date: Some(compromised.format(&Rfc3339).unwrap()),
            },
        )
        .await
        .unwrap();
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &[
            "-issuer",
            "issuing.pem",
            "-cert",
            "signing.pem",
            "-resp_text",
        ],
    );
    assert!(ok, "{text}");
    for expected in [
        "Response verify OK",
        "signing.pem: revoked",
        "Reason: keyCompromise",
        "Revocation Time: ",
        "Invalidity Date",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // GET (RFC 6960 Appendix A.1): base64 then URL-encoded in the path; cacheable when it has
    // no nonce, for at most nextUpdate.
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &[
            "-issuer",
            "issuing.pem",
            "-cert",
            "signing.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{text}");
    let request = std::fs::read(dir.join("req.der")).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&request);
    let escaped: String = encoded
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let response = s
        .raw_http()
        .get(format!("{}ca/ocsp/{escaped}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/ocsp-response");
    assert_eq!(
        header("cache-control"),
        "max-age=300, public, no-transform, must-revalidate"
    );
    assert!(header("expires").ends_with(" GMT"), "{}", header("expires"));
    assert!(!header("last-modified").is_empty());
    std::fs::write(dir.join("get.der"), response.bytes().await.unwrap()).unwrap();
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &[
            "-respin",
            "get.der",
            "-issuer",
            "issuing.pem",
            "-cert",
            "signing.pem",
            "-no_nonce",
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("Response verify OK") && text.contains("signing.pem: revoked"),
        "{text}"
    );
    // Our own relying-party check agrees.
    let checked = verify_response(
        &std::fs::read(dir.join("get.der")).unwrap(),
        &cert,
        s.state.ca().issuing_der(),
        None,
        s.state.now(),
    )
    .unwrap();
    assert!(
        matches!(checked.status, CertStatus::Revoked { reason: Some(1), invalidity_date: Some(at), .. } if at == compromised.replace_nanosecond(0).unwrap()),
        "{checked:?}"
    );
    // Not base64 at all.
    let response = s
        .raw_http()
        .get(format!("{}ca/ocsp/%25%25notbase64", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), refusal(1));

    // A malformed request: malformedRequest (1), as openssl shows it. (openssl sends only what
    // it can parse itself; a request that asks about no certificate is one such.)
    std::fs::write(dir.join("empty.der"), [0x30, 0x04, 0x30, 0x02, 0x30, 0x00]).unwrap();
    let (ok, text) = openssl_ocsp(&s, dir, &["-reqin", "empty.der"]);
    assert!(!ok, "{text}");
    assert!(
        text.to_lowercase()
            .contains("responder error: malformedrequest (1)"),
        "{text}"
    );
    let (status, content_type, body) = post_ocsp(
        &s,
        "application/ocsp-request",
        b"not an OCSP request".to_vec(),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str(), body),
        (200, "application/ocsp-response", refusal(1))
    );

    // A certificate of another CA: unauthorized (6).
    let other = vsc_pki::CertificateAuthority::create("vsc Elsewhere", s.state.now()).unwrap();
    std::fs::write(dir.join("other-issuing.pem"), other.issuing_pem()).unwrap();
    let (ok, text) = openssl_ocsp(
        &s,
        dir,
        &["-issuer", "other-issuing.pem", "-serial", "0x01"],
    );
    assert!(!ok, "{text}");
    assert!(
        text.to_lowercase()
            .contains("responder error: unauthorized (6)"),
        "{text}"
    );
    // Not OCSP at all: HTTP errors with codes.
    let request = build_request(
        &[CertId::for_certificate(&cert, s.state.ca().issuing_der(), CertIdHash::Sha1).unwrap()],
        None,
    );
    let (status, _, body) = post_ocsp(&s, "application/json", request.clone()).await;
    assert_eq!(status, 415);
    assert!(
        String::from_utf8_lossy(&body).contains("ocsp_content_type"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, body) = post_ocsp(&s, "application/ocsp-request", vec![0x30; 9000]).await;
    assert_eq!(status, 413);
    assert!(
        String::from_utf8_lossy(&body).contains("ocsp_request_too_large"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // And the well-formed request still answers (content type parameters are allowed).
    let (status, _, body) = post_ocsp(&s, "Application/OCSP-Request; q=1", request).await;
    assert_eq!(status, 200);
    let checked = verify_response(
        &body,
        &cert,
        s.state.ca().issuing_der(),
        None,
        s.state.now(),
    )
    .unwrap();
    assert!(matches!(checked.status, CertStatus::Revoked { .. }));
    s.assert_audit_intact().await;
}

/// The current responder certificate's serial (signed answers name it in `certs`).
async fn responder_serials(s: &TestServer) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT generation, serial FROM ocsp_responders ORDER BY generation")
        .fetch_all(s.state.store().pool())
        .await
        .unwrap()
}

async fn ask(s: &TestServer, cert: &[u8]) -> CertStatus {
    ask_with(
        s.raw_http(),
        s.url.clone(),
        s.state.ca().issuing_der().to_vec(),
        cert.to_vec(),
        s.state.now(),
    )
    .await
}

/// A nonce'd SHA-256 request by POST, the answer checked as a relying party checks it.
async fn ask_with(
    http: reqwest::Client,
    url: url::Url,
    issuer: Vec<u8>,
    cert: Vec<u8>,
    now: time::OffsetDateTime,
) -> CertStatus {
    let nonce = [42u8; 16];
    let request = build_request(
        &[CertId::for_certificate(&cert, &issuer, CertIdHash::Sha256).unwrap()],
        Some(&nonce),
    );
    let response = http
        .post(url.join("ca/ocsp").unwrap())
        .header("content-type", "application/ocsp-request")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await.unwrap();
    verify_response(&body, &cert, &issuer, Some(&nonce), now)
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responder_certificate_rotates_once_past_half_its_life() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (_uid, card, _phone) = s.enrolled_person(t, "RX1").await;
    let cert = signing_certificate(&s, &card).await;

    assert_eq!(ask(&s, &cert).await, CertStatus::Good);
    assert_eq!(ask(&s, &cert).await, CertStatus::Good);
    let first = responder_serials(&s).await;
    assert_eq!(first.len(), 1, "one responder for both requests: {first:?}");
    assert_eq!(s.audit_events("ocsp.responder.rotated").await.len(), 1);

    // A day in: still more than half of its two days left.
    s.clock.advance(time::Duration::hours(23));
    assert_eq!(ask(&s, &cert).await, CertStatus::Good);
    assert_eq!(responder_serials(&s).await, first);

    // Past half its life: the next requests rotate it, exactly once however many ask at once.
    s.clock.advance(time::Duration::hours(2));
    let now = s.state.now();
    let asks: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(ask_with(
                s.raw_http(),
                s.url.clone(),
                s.state.ca().issuing_der().to_vec(),
                cert.clone(),
                now,
            ))
        })
        .collect();
    for ask in asks {
        assert_eq!(ask.await.unwrap(), CertStatus::Good);
    }
    let second = responder_serials(&s).await;
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[0], first[0]);
    assert_ne!(second[1].1, first[0].1);
    let events = s.audit_events("ocsp.responder.rotated").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].subject, second[1].1);

    // Long after: the expired responder's key is deleted when the next one is made.
    s.clock.advance(time::Duration::days(3));
    assert_eq!(ask(&s, &cert).await, CertStatus::Good);
    let third = responder_serials(&s).await;
    assert_eq!(third.len(), 1, "{third:?}");
    assert_eq!(third[0].0, 3);

    // Nodes sharing PostgreSQL: both find the responder due at the same moment; one
    // certificate is made (the generation is unique), and both sign with it.
    if s.state.store().backend() == vsc_store::Backend::Postgres {
        let b = s.start_node().await;
        s.clock
            .advance(time::Duration::days(1) + time::Duration::hours(1));
        let (x, y) = tokio::join!(ask(&s, &cert), ask(&b, &cert));
        assert_eq!((x, y), (CertStatus::Good, CertStatus::Good));
        let fourth = responder_serials(&s).await;
        assert_eq!(
            fourth.iter().map(|r| r.0).collect::<Vec<_>>(),
            [3, 4],
            "{fourth:?}"
        );
        assert_eq!(s.audit_events("ocsp.responder.rotated").await.len(), 4);
    }
    s.assert_audit_intact().await;
}

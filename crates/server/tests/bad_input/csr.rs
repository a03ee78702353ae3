//! Certificate requests the CA must refuse: broken proof of possession, weak keys, keys of the
//! wrong type. A refused enrolment does not consume the activation and issues no certificate.

use crate::common::CARD_CERTIFICATES;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::common::{Csrs, Phone, assert_api_error, enrol_request, start};

/// The openssl-made vectors of the PKI crate, as base64 DER.
fn vector(pem: &str) -> String {
    B64.encode(vsc_pki::pem_to_der(pem).expect("a PEM test vector"))
}

/// The CSR with the last byte of its signature flipped.
fn flip_signature(csr_b64: &str) -> String {
    let mut der = B64.decode(csr_b64).expect("base64");
    let last = der.len() - 1;
    der[last] ^= 0x01;
    B64.encode(der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_csrs_leave_the_activation_unused() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (_, card) = s.person_with_card(t, "X26").await;
    let code = card.code.code.clone();
    let good = Csrs::generate();
    let rsa1024 = vector(include_str!("../../../pki/tests/data/rsa1024.csr.pem"));
    let rsa_e3 = vector(include_str!("../../../pki/tests/data/rsa2048-e3.csr.pem"));
    let p256_sha1 = vector(include_str!("../../../pki/tests/data/p256-sha1.csr.pem"));
    let before = s.snapshot().await;

    let cases: Vec<(&str, Csrs, &str)> = vec![
        (
            "signing CSR with a broken signature",
            Csrs {
                signing: flip_signature(&good.signing),
                ..good.clone()
            },
            "csr_proof_of_possession_failed",
        ),
        (
            "authentication CSR with a broken signature",
            Csrs {
                auth: flip_signature(&good.auth),
                ..good.clone()
            },
            "csr_proof_of_possession_failed",
        ),
        (
            "RSA-1024 signing key",
            Csrs {
                signing: rsa1024,
                ..good.clone()
            },
            "csr_weak_key",
        ),
        (
            "RSA-2048 signing key with exponent 3",
            Csrs {
                signing: rsa_e3,
                ..good.clone()
            },
            "csr_weak_key",
        ),
        (
            "EC key where RSA is expected",
            Csrs {
                signing: good.auth.clone(),
                ..good.clone()
            },
            "csr_wrong_key_type",
        ),
        (
            "RSA key where EC is expected",
            Csrs {
                auth: good.signing.clone(),
                ..good.clone()
            },
            "csr_wrong_key_type",
        ),
        (
            "P-256 CSR signed with SHA-1",
            Csrs {
                auth: p256_sha1,
                ..good.clone()
            },
            "csr_unsupported",
        ),
        (
            "not base64",
            Csrs {
                auth: "not base64!".to_owned(),
                ..good.clone()
            },
            "csr_malformed",
        ),
    ];
    for (what, csrs, expected) in &cases {
        let message = assert_api_error(
            s.enrol_raw(&enrol_request(&code, "device-csr-refusals-01", csrs))
                .await,
            400,
            expected,
        );
        assert!(!message.is_empty(), "{what}");
    }

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "refused CSRs");
    assert_eq!(s.certificate_count(&card.card.id).await, 0);
    assert_eq!(s.card_state(&card.card.id).await, "pending");
    assert!(!s.code_used(&code).await);
    assert_eq!(s.code_failures(&code).await, 0);

    // The same code enrols with good requests.
    let phone = Phone::new();
    s.enrol(&phone, &card.code.url)
        .await
        .expect("the activation survives refused CSRs");
    assert_eq!(s.certificate_count(&card.card.id).await, CARD_CERTIFICATES);
    assert_eq!(s.card_state(&card.card.id).await, "active");

    for (code, n) in [
        ("csr_proof_of_possession_failed", 2),
        ("csr_weak_key", 2),
        ("csr_wrong_key_type", 2),
        ("csr_unsupported", 1),
        ("csr_malformed", 1),
    ] {
        let events = s.assert_audited("card.enrol", code, n).await;
        assert!(
            events.iter().all(|e| e.subject == card.card.id),
            "{events:?}"
        );
    }
    s.assert_audit_intact().await;
}

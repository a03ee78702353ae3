//! EPS R2 test vectors from NHS England's electronic-prescription-service-api
//! (see tests/data/PROVENANCE.md and tests/data/LICENSE-NHSDigital-EPS.txt).

use std::path::PathBuf;

use base64::Engine as _;
use vsc_eps::c14n::{self, C14nOptions};
use vsc_eps::fragments::{self, DigestAlgorithm};
use vsc_eps::verify::{Check, Outcome, VerifyOptions, verify_prescription};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).expect("read vector")
}

fn digest_value(xml: &str) -> Vec<u8> {
    let doc = roxmltree::Document::parse(xml).expect("parse");
    let value = doc
        .descendants()
        .find(|n| n.has_tag_name(("http://www.w3.org/2000/09/xmldsig#", "DigestValue")))
        .and_then(|n| n.text())
        .expect("DigestValue");
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .expect("base64")
}

#[test]
fn fragments_document_canonicalises_byte_for_byte() {
    let xml = read("PrepareIntermediate-Hl7V3SignatureFragments.xml");
    let expected = read("PrepareIntermediate-Hl7V3SignatureFragmentsCanonicalized.txt");
    let expected = expected.strip_suffix('\n').expect("trailing newline");
    let doc = roxmltree::Document::parse(&xml).expect("parse");
    let canonical = c14n::canonicalize_with(
        doc.root(),
        C14nOptions {
            strip_whitespace_text: true,
        },
    );
    assert_eq!(canonical, expected);
    assert_eq!(
        fragments::canonicalize_fragments_document(&xml).expect("c14n"),
        expected
    );
}

#[test]
fn valid_signature_fragments_hash_to_digest_value() {
    let xml = read("ValidSignature.xml");
    let canonical = fragments::canonical_fragments_from_str(&xml).expect("fragments");
    assert_eq!(
        DigestAlgorithm::Sha1.digest(canonical.as_bytes()),
        digest_value(&xml)
    );
}

#[test]
fn tampered_prescription_fragments_do_not_hash_to_digest_value() {
    let xml = read("SignatureDoesNotMatchPrescription.xml");
    let canonical = fragments::canonical_fragments_from_str(&xml).expect("fragments");
    assert_ne!(
        DigestAlgorithm::Sha1.digest(canonical.as_bytes()),
        digest_value(&xml)
    );
}

fn verify(name: &str) -> vsc_eps::verify::VerificationReport {
    verify_prescription(&read(name), &VerifyOptions::default()).expect("verify")
}

#[test]
fn valid_signature_verifies() {
    let report = verify("ValidSignature.xml");
    for check in [
        Check::Format,
        Check::OneCertificate,
        Check::Signature,
        Check::Digest,
        Check::ValidAtSigningTime,
    ] {
        assert_eq!(
            report.outcome(check),
            Some(Outcome::Passed),
            "{check:?}: {report:?}"
        );
    }
    assert_eq!(report.outcome(Check::Revocation), Some(Outcome::Skipped));
    assert_eq!(report.outcome(Check::TrustedIssuer), Some(Outcome::Skipped));
    assert!(report.no_failures());
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["checks"][2]["check"], "signature");
    assert_eq!(json["checks"][2]["outcome"], "passed");
}

#[test]
fn untrusted_issuer_is_reported() {
    let ca = level1d_ca();
    let report = verify_prescription(
        &read("ValidSignature.xml"),
        &VerifyOptions {
            trusted_ca_der: Some(&ca),
            ..VerifyOptions::default()
        },
    )
    .expect("verify");
    // The signer was issued by "NHS INT Level 2D", not by the Level 1D CA.
    assert_eq!(report.outcome(Check::TrustedIssuer), Some(Outcome::Failed));
    assert_eq!(report.outcome(Check::Signature), Some(Outcome::Passed));
}

#[test]
fn invalid_signature_fails_on_signature_only() {
    // Its signer has a 1024-bit INT key: allow that so the failure is the signature itself.
    let report = verify_prescription(
        &read("SignatureIsInvalid.xml"),
        &VerifyOptions {
            allow_legacy_1024_bit_rsa: true,
            ..VerifyOptions::default()
        },
    )
    .expect("verify");
    assert_eq!(report.outcome(Check::Signature), Some(Outcome::Failed));
    assert_eq!(report.outcome(Check::Digest), Some(Outcome::Passed));
    assert_eq!(
        report.first_failure().map(|c| c.check),
        Some(Check::Signature)
    );
    assert_eq!(
        report.get(Check::Signature).map(|c| c.message.as_str()),
        Some("signature is invalid")
    );
}

#[test]
fn tampered_prescription_fails_on_digest() {
    let report = verify("SignatureDoesNotMatchPrescription.xml");
    assert_eq!(report.outcome(Check::Digest), Some(Outcome::Failed));
    // The vector edits DigestValue inside SignedInfo but keeps the original
    // SignatureValue, so the signature over SignedInfo cannot verify either.
    assert_eq!(report.outcome(Check::Signature), Some(Outcome::Failed));
    assert_eq!(
        report.get(Check::Digest).map(|c| c.message.as_str()),
        Some("signature doesn't match prescription")
    );
}

#[test]
fn sha256_signature_verifies_but_digest_does_not_match() {
    let report = verify("SignatureAlgorithmSha256.xml");
    assert_eq!(report.outcome(Check::Signature), Some(Outcome::Passed));
    assert_eq!(report.outcome(Check::Digest), Some(Outcome::Failed));
}

#[test]
fn corpus_signatures_are_stale_or_incomplete() {
    let mut full = 0;
    let mut incomplete = 0;
    let mut legacy_keys = 0;
    let mut entries: Vec<_> = std::fs::read_dir(data("corpus"))
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let legacy = VerifyOptions {
        allow_legacy_1024_bit_rsa: true,
        ..VerifyOptions::default()
    };
    for path in entries {
        let xml = std::fs::read_to_string(&path).expect("read");
        let strict = verify_prescription(&xml, &VerifyOptions::default()).expect("verify");
        let report = verify_prescription(&xml, &legacy).expect("verify");
        let name = path.display();
        match report.outcome(Check::Format) {
            Some(Outcome::Passed) => {
                full += 1;
                // Most corpus signers use 1024-bit INT test keys: refused by default.
                let strict_signature = strict.get(Check::Signature).expect("signature check");
                if strict_signature.outcome == Outcome::Failed {
                    legacy_keys += 1;
                    assert!(
                        strict_signature.message.contains("at least 2048 required"),
                        "{name}: {}",
                        strict_signature.message
                    );
                } else {
                    assert_eq!(strict_signature.outcome, Outcome::Passed, "{name}");
                }
                assert_eq!(
                    report.outcome(Check::Signature),
                    Some(Outcome::Passed),
                    "{name}"
                );
                assert_eq!(
                    report.outcome(Check::Digest),
                    Some(Outcome::Failed),
                    "{name}"
                );
            }
            Some(Outcome::Failed) => {
                incomplete += 1;
                assert_eq!(report.first_failure().map(|c| c.check), Some(Check::Format));
            }
            other => panic!("{name}: format {other:?}"),
        }
    }
    assert_eq!((full, incomplete), (32, 11));
    assert!(legacy_keys > 0 && legacy_keys < full, "{legacy_keys}");
}

fn level1d_ca() -> Vec<u8> {
    let pem = read("NHS_INT_Level1D_Base64_pem.cer");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem body")
}

#[test]
fn corpus_signer_is_issued_by_level1d_ca() {
    let ca = level1d_ca();
    let report = verify_prescription(
        &read("corpus/primary-care__acute-and-repeat-prescribing.xml"),
        &VerifyOptions {
            trusted_ca_der: Some(&ca),
            allow_legacy_1024_bit_rsa: true,
            ..VerifyOptions::default()
        },
    )
    .expect("verify");
    assert_eq!(report.outcome(Check::TrustedIssuer), Some(Outcome::Passed));
}

fn author_time(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("parse");
    let parent = fragments::find_parent_prescription(&doc).expect("parent");
    fragments::author_time(parent).expect("time").to_owned()
}

#[test]
fn certificate_validity_is_judged_at_author_time() {
    let xml = read("ValidSignature.xml");
    let time = author_time(&xml);
    assert_eq!(time, "20210726120522");
    for (at, phrase) in [
        ("20300101000000", "expired"),
        ("20200101000000", "not yet valid"),
    ] {
        let moved = xml.replacen(
            &format!("<time value=\"{time}\"/>"),
            &format!("<time value=\"{at}\"/>"),
            1,
        );
        assert_ne!(moved, xml);
        let report = verify_prescription(&moved, &VerifyOptions::default()).expect("verify");
        let validity = report.get(Check::ValidAtSigningTime).expect("validity");
        assert_eq!(validity.outcome, Outcome::Failed, "{at}");
        assert!(validity.message.contains(phrase), "{}", validity.message);
        // author/time is one of the signed fragments.
        assert_eq!(report.outcome(Check::Digest), Some(Outcome::Failed));
        assert_eq!(report.outcome(Check::Signature), Some(Outcome::Passed));
    }
}

#[test]
fn two_certificates_fail_the_certificate_count() {
    let xml = read("ValidSignature.xml");
    let doubled = xml.replacen(
        "<X509Certificate>",
        "<X509Certificate>MIIB</X509Certificate><X509Certificate>",
        1,
    );
    let report = verify_prescription(&doubled, &VerifyOptions::default()).expect("verify");
    assert_eq!(report.outcome(Check::Format), Some(Outcome::Passed));
    assert_eq!(report.outcome(Check::OneCertificate), Some(Outcome::Failed));
    assert!(
        report.checks[2..]
            .iter()
            .all(|c| c.outcome == Outcome::Skipped)
    );
}

#[test]
fn unsupported_algorithms_fail() {
    let xml = read("ValidSignature.xml")
        .replace("xmldsig#rsa-sha1", "xmldsig#dsa-sha1")
        .replace("xmldsig#sha1\"", "xmldsig#md5\"");
    let report = verify_prescription(&xml, &VerifyOptions::default()).expect("verify");
    assert_eq!(report.outcome(Check::Signature), Some(Outcome::Failed));
    assert_eq!(report.outcome(Check::Digest), Some(Outcome::Failed));
    assert!(
        report
            .get(Check::Signature)
            .expect("sig")
            .message
            .contains("unsupported")
    );
    assert!(
        report
            .get(Check::Digest)
            .expect("digest")
            .message
            .contains("unsupported")
    );
}

#[test]
fn messages_that_are_not_prescriptions_are_errors() {
    assert!(verify_prescription("<a/>", &VerifyOptions::default()).is_err());
    assert!(verify_prescription("<a", &VerifyOptions::default()).is_err());
}

#[test]
fn valid_signature_still_verifies_inside_an_hl7_namespaced_message() {
    let xml = read("ValidSignature.xml");
    let wrapped = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PORX_IN020101SM31 xmlns=\"urn:hl7-org:v3\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><ControlActEvent><subject>{xml}</subject>\
         </ControlActEvent></PORX_IN020101SM31>"
    );
    let report = verify_prescription(&wrapped, &VerifyOptions::default()).expect("verify");
    assert_eq!(report.outcome(Check::Signature), Some(Outcome::Passed));
    assert_eq!(report.outcome(Check::Digest), Some(Outcome::Passed));
    assert_eq!(
        fragments::canonical_fragments_from_str(&wrapped).expect("wrapped"),
        fragments::canonical_fragments_from_str(&xml).expect("bare")
    );
}

#[test]
fn a_second_signed_info_fails_the_format_check() {
    let xml = read("ValidSignature.xml");
    let start = xml.find("<SignedInfo>").expect("SignedInfo");
    let end = xml.find("</SignedInfo>").expect("end") + "</SignedInfo>".len();
    let doubled = format!("{}{}{}", &xml[..start], &xml[start..end], &xml[start..]);
    let report = verify_prescription(&doubled, &VerifyOptions::default()).expect("verify");
    let format = report.get(Check::Format).expect("format");
    assert_eq!(format.outcome, Outcome::Failed);
    assert!(
        format.message.contains("more than one SignedInfo"),
        "{}",
        format.message
    );
}

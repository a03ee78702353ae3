//! The signing side: SignedInfo byte-for-byte against NHS vectors, and
//! sign → insert → verify round trips over the whole corpus, with tampering.

mod common;

use base64::Engine as _;
use common::{corpus, read, sign_with_test_signer, signer};
use vsc_eps::c14n::{self, C14nOptions};
use vsc_eps::fragments::{self, DigestAlgorithm};
use vsc_eps::sign::{self, SignatureAlgorithm};
use vsc_eps::summary;
use vsc_eps::verify::{Check, Outcome, VerificationReport, VerifyOptions, verify_prescription};
use vsc_eps::{HL7_NS, XMLDSIG_NS};

fn verify(xml: &str) -> VerificationReport {
    verify_prescription(xml, &VerifyOptions::default()).expect("verify")
}

fn assert_valid(report: &VerificationReport, what: &str) {
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
            "{what}: {check:?}: {report:#?}"
        );
    }
    assert!(report.no_failures(), "{what}: {report:#?}");
}

/// The vector's SignedInfo canonicalised as EPS does, and its DigestValue.
fn vector_signed_info(name: &str) -> (String, Vec<u8>) {
    let xml = read(name);
    let doc = roxmltree::Document::parse(&xml).expect("parse");
    let node = doc
        .descendants()
        .find(|n| n.has_tag_name((XMLDSIG_NS, "SignedInfo")))
        .expect("SignedInfo");
    let canonical = c14n::canonicalize_with(
        node,
        C14nOptions {
            strip_whitespace_text: true,
        },
    );
    let digest = node
        .descendants()
        .find(|n| n.has_tag_name((XMLDSIG_NS, "DigestValue")))
        .and_then(|n| n.text())
        .expect("DigestValue");
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .expect("base64");
    (canonical, digest)
}

#[test]
fn signed_info_is_byte_identical_to_the_vectors() {
    for (name, algorithm) in [
        ("ValidSignature.xml", SignatureAlgorithm::RsaSha1),
        (
            "SignatureAlgorithmSha256.xml",
            SignatureAlgorithm::RsaSha256,
        ),
        ("SignatureIsInvalid.xml", SignatureAlgorithm::RsaSha1),
    ] {
        let (canonical, digest) = vector_signed_info(name);
        let ours = sign::signed_info(algorithm, &digest);
        assert_eq!(ours, canonical, "{name}");
        assert!(ours.starts_with("<SignedInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">"));
    }
}

#[test]
fn signature_element_follows_the_vector_layout() {
    // Rebuild ValidSignature.xml's Signature from its parts: the result,
    // inserted into the prescription, verifies exactly as the original.
    let xml = read("ValidSignature.xml");
    let doc = roxmltree::Document::parse(&xml).expect("parse");
    let text = |name: &str| {
        let t = doc
            .descendants()
            .find(|n| n.has_tag_name((XMLDSIG_NS, name)))
            .and_then(|n| n.text())
            .expect(name);
        let compact: String = t.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .expect("base64")
    };
    let (digest, value, cert) = (
        text("DigestValue"),
        text("SignatureValue"),
        text("X509Certificate"),
    );
    let element = sign::signature_element(
        &sign::signed_info(SignatureAlgorithm::RsaSha1, &digest),
        &value,
        &cert,
    );
    assert!(element.starts_with(
        "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo><CanonicalizationMethod"
    ));
    assert_eq!(element.matches("<X509Certificate>").count(), 1);
    let rebuilt = sign::insert_signature(&xml, &element).expect("insert");
    assert_valid(&verify(&rebuilt), "rebuilt ValidSignature.xml");
}

#[test]
fn prepare_matches_the_vectors_digest() {
    let prepared =
        sign::prepare(&read("ValidSignature.xml"), SignatureAlgorithm::RsaSha1).expect("prepare");
    let (canonical, digest) = vector_signed_info("ValidSignature.xml");
    assert_eq!(prepared.digest, digest);
    assert_eq!(prepared.signed_info, canonical);
    assert_eq!(
        prepared.prescription_id,
        "4A3D73FE-6013-4446-ADD3-909167DCFAC7"
    );
    assert_eq!(prepared.algorithm, SignatureAlgorithm::RsaSha1);
    // Stripping the signature changes nothing that is signed.
    let stripped = sign::strip_signature(&read("ValidSignature.xml")).expect("strip");
    assert!(stripped.contains("<signatureText nullFlavor=\"NA\"/>"));
    assert_eq!(
        sign::prepare(&stripped, SignatureAlgorithm::RsaSha1).expect("prepare"),
        prepared
    );
}

#[test]
fn phone_side_prepare_accepts_raw_and_canonical_fragments() {
    // The NHS intermediate fragments document, as written (not canonical).
    let raw = read("PrepareIntermediate-Hl7V3SignatureFragments.xml");
    let canonical = read("PrepareIntermediate-Hl7V3SignatureFragmentsCanonicalized.txt");
    let canonical = canonical.strip_suffix('\n').expect("newline");
    for algorithm in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let from_raw = sign::prepare_from_fragments(&raw, algorithm).expect("raw");
        let from_canonical = sign::prepare_from_fragments(canonical, algorithm).expect("canonical");
        assert_eq!(from_raw, from_canonical);
        assert_eq!(
            from_raw.0,
            algorithm.digest_algorithm().digest(canonical.as_bytes())
        );
    }
}

#[test]
fn every_corpus_prescription_signs_and_verifies_with_sha256() {
    let signer = signer();
    for (name, xml) in corpus() {
        let signed = sign_with_test_signer(&xml);
        let report = verify(&signed);
        assert_valid(&report, &name);
        assert_eq!(report.outcome(Check::Revocation), Some(Outcome::Skipped));
        assert_eq!(report.outcome(Check::TrustedIssuer), Some(Outcome::Skipped));
        // The signature went in; nothing signed moved.
        assert_eq!(
            fragments::canonical_fragments_from_str(&signed).expect("fragments"),
            fragments::canonical_fragments_from_str(&xml).expect("fragments"),
            "{name}"
        );
        // Outside signatureText the document is byte-for-byte the original.
        let stripped = sign::strip_signature(&xml).expect("strip");
        assert_eq!(
            sign::strip_signature(&signed).expect("strip"),
            stripped,
            "{name}"
        );
        let before = &xml[..xml.find("<signatureText").expect("signatureText")];
        assert!(signed.starts_with(before), "{name}");
        let after = &xml[xml.find("</signatureText>").expect("end") + "</signatureText>".len()..];
        assert!(signed.ends_with(after), "{name}");
        // Exactly one Signature, carrying the signer's certificate.
        assert_eq!(signed.matches("<Signature ").count(), 1, "{name}");
        let cert = base64::engine::general_purpose::STANDARD.encode(&signer.cert_der);
        assert!(signed.contains(&format!("<X509Certificate>{cert}</X509Certificate>")));
        // The summary the phone derives from the fragments is the summary of
        // the prescription (less the unsigned short-form id).
        let prepared = sign::prepare(&signed, SignatureAlgorithm::RsaSha256).expect("prepare");
        let from_fragments =
            summary::summarize_fragments(&prepared.canonical_fragments).expect("summary");
        let mut whole = summary::summarize_prescription(&signed).expect("summary");
        assert!(whole.short_form_id.is_some(), "{name}");
        whole.short_form_id = None;
        assert_eq!(from_fragments, whole, "{name}");
    }
}

#[test]
fn every_corpus_prescription_prepares_for_sha1() {
    // aws-lc-rs cannot make RSA-SHA1 signatures, so SHA-1 is checked up to
    // the signature: the digest and SignedInfo, and a verifier that accepts
    // the digest and rejects a made-up signature value.
    for (name, xml) in corpus() {
        let prepared = sign::prepare(&xml, SignatureAlgorithm::RsaSha1).expect("prepare");
        assert_eq!(prepared.digest.len(), 20);
        assert_eq!(
            prepared.digest,
            DigestAlgorithm::Sha1.digest(
                fragments::canonical_fragments_from_str(&xml)
                    .expect("fragments")
                    .as_bytes()
            )
        );
        assert!(prepared.signed_info.contains("xmldsig#rsa-sha1"));
        assert!(prepared.signed_info.contains("xmldsig#sha1"));
        let element = sign::signature_element(&prepared.signed_info, &[1; 256], &signer().cert_der);
        let signed = sign::insert_signature(&xml, &element).expect("insert");
        let report = verify(&signed);
        assert_eq!(
            report.outcome(Check::Digest),
            Some(Outcome::Passed),
            "{name}"
        );
        assert_eq!(
            report.outcome(Check::Signature),
            Some(Outcome::Failed),
            "{name}"
        );
    }
}

/// Sign the corpus prescription `name`, apply `edit` to the signed text (it
/// must change it), and verify.
fn tamper(name: &str, edit: impl Fn(&str) -> String) -> VerificationReport {
    let signed = sign_with_test_signer(&read(&format!("corpus/{name}")));
    assert_valid(&verify(&signed), name);
    let edited = edit(&signed);
    assert_ne!(edited, signed, "the edit changed nothing");
    verify(&edited)
}

fn assert_digest_fails(report: &VerificationReport, what: &str) {
    assert_eq!(
        report.outcome(Check::Digest),
        Some(Outcome::Failed),
        "{what}: {report:#?}"
    );
    // SignedInfo itself is untouched.
    assert_eq!(
        report.outcome(Check::Signature),
        Some(Outcome::Passed),
        "{what}"
    );
    assert_eq!(
        report.get(Check::Digest).map(|c| c.message.as_str()),
        Some("signature doesn't match prescription")
    );
}

const MULTI: &str = "secondary-care__community__acute__nominated-pharmacy__nurse__prescribing-and-professional-codes__controlled-drugs__additional-instructions.xml";
const REPEAT: &str = "primary-care__repeat-prescribing.xml";

#[test]
fn changing_what_is_signed_breaks_the_digest() {
    let cases: [(&str, &str, &str, &str); 8] = [
        (
            "dose",
            MULTI,
            "<value>1 tablet, daily</value>",
            "<value>2 tablets, daily</value>",
        ),
        (
            "quantity",
            MULTI,
            "<quantity unit=\"1\" value=\"28\">",
            "<quantity unit=\"1\" value=\"56\">",
        ),
        (
            "medication",
            MULTI,
            "displayName=\"Diazepam 2mg tablets\"",
            "displayName=\"Diazepam 10mg tablets\"",
        ),
        (
            "NHS number",
            MULTI,
            "extension=\"9449305552\"",
            "extension=\"9449305560\"",
        ),
        (
            "patient name",
            REPEAT,
            "<given>STACEY</given>",
            "<given>TRACEY</given>",
        ),
        (
            "prescriber id",
            MULTI,
            "<id extension=\"12A3456B\"",
            "<id extension=\"12A3456C\"",
        ),
        (
            "prescriber name",
            MULTI,
            "<family>Userq</family>",
            "<family>Users</family>",
        ),
        (
            "author time",
            REPEAT,
            "<time value=\"20221021134700\"/>",
            "<time value=\"20221021134701\"/>",
        ),
    ];
    for (what, file, from, to) in cases {
        let report = tamper(file, |signed| {
            assert!(signed.contains(from), "{what}: {from}");
            signed.replacen(from, to, 1)
        });
        assert_digest_fails(&report, what);
    }
}

#[test]
fn changing_what_is_not_signed_keeps_the_signature_valid() {
    // repeatNumber/low of a line item.
    let report = tamper(REPEAT, |signed| {
        signed.replacen(
            "<repeatNumber>\n                  <low value=\"1\"/>",
            "<repeatNumber>\n                  <low value=\"2\"/>",
            1,
        )
    });
    assert_valid(&report, "repeatNumber/low");
    // A line item's status in pertinentInformation4 (dropped from the fragments).
    let report = tamper(MULTI, |signed| {
        signed.replacen(
            "</pertinentInformation2>\n              </pertinentLineItem>",
            "</pertinentInformation2>\n<pertinentInformation4 typeCode=\"PERT\"><pertinentItemStatus classCode=\"OBS\" moodCode=\"EVN\"><code code=\"IS\"/><value code=\"0003\"/></pertinentItemStatus></pertinentInformation4>\n              </pertinentLineItem>",
            1,
        )
    });
    assert_valid(&report, "line item pertinentInformation4 added");
    // The prescription's own status and type (outside the fragments).
    let report = tamper(MULTI, |signed| {
        signed
            .replacen(
                "<value code=\"1001\" codeSystem=\"2.16.840.1.113883.2.1.3.2.4.17.25\"/>",
                "<value code=\"0101\" codeSystem=\"2.16.840.1.113883.2.1.3.2.4.17.25\"/>",
                1,
            )
            .replacen(
                "<value code=\"P1\" codeSystem",
                "<value code=\"P2\" codeSystem",
                1,
            )
    });
    assert_valid(&report, "prescription type / dispensing site");
    // The short-form id and the message wrapper.
    let report = tamper(MULTI, |signed| {
        signed.replacen("-A99968-", "-A99969-", 1).replacen(
            "<creationTime value=\"",
            "<creationTime value=\"1",
            1,
        )
    });
    assert_valid(&report, "short-form id and message header");
}

#[test]
fn special_characters_prefixes_and_attribute_order_sign_and_verify() {
    let xml = read("special-characters.xml");
    let signed = sign_with_test_signer(&xml);
    assert_valid(&verify(&signed), "special-characters.xml");
    // The signatureText keeps the document's hl7: prefix and the Signature
    // carries its own default namespace.
    assert!(
        signed.contains(
            "<hl7:signatureText><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">"
        )
    );
    // Everything the fragments hold comes out in the HL7 default namespace,
    // escaped as C14N requires, with the attributes sorted.
    let canonical = fragments::canonical_fragments_from_str(&signed).expect("fragments");
    for expected in [
        "<given>Zoë</given><family>Ångström-Müller</family>",
        "<given>Siân</given>",
        "4 times a day &amp; at night if pain &lt; 5 &gt; 3 — \"as needed\" 'with food' — café",
        "5 times a day &lt;inhaled&gt; &amp; shaken\n                      then once\tdaily",
        "<quantity unit=\"1\" value=\"100\">",
        "<id xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" extension=\"200102238987\" root=\"1.2.826.0.1285.0.2.0.67\" xsi:type=\"II\">",
        "<telecom use=\"WP\" value=\"mailto:boin&amp;partners@example.org\">",
        "<addr use=\"H\"><streetAddressLine>1 Trevelyan Square</streetAddressLine>",
    ] {
        assert!(canonical.contains(expected), "{expected}\n{canonical}");
    }
    assert!(!canonical.contains("hl7:") && !canonical.contains("v3:"));
    // One declaration per fragment root: time, id, AgentPerson, recordTarget, two line items.
    assert_eq!(canonical.matches(&format!("xmlns=\"{HL7_NS}\"")).count(), 6);
    // Tampering with a non-ASCII name still breaks it.
    let report = verify(&signed.replacen("Ångström", "Angstrom", 1));
    assert_digest_fails(&report, "non-ASCII name");
    // And so does changing an escaped character in a dose.
    let report = verify(&signed.replacen("&amp; at night", "&amp;  at night", 1));
    assert_digest_fails(&report, "escaped dose");
}

#[test]
fn signing_a_bare_parent_prescription_and_one_without_signature_text() {
    // A ParentPrescription on its own (no message wrapper, no namespace),
    // with its signatureText removed altogether.
    let xml = read("ValidSignature.xml");
    let start = xml.find("<signatureText>").expect("start");
    let end = xml.find("</signatureText>").expect("end") + "</signatureText>".len();
    let bare = format!("{}{}", &xml[..start], &xml[end..]);
    let signed = sign_with_test_signer(&bare);
    assert!(signed.contains("<time value=\"20210726120522\"/><signatureText><Signature"));
    assert_valid(&verify(&signed), "bare ParentPrescription");
}

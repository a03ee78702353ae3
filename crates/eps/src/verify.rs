//! EPS's prescription-signature checks, in EPS's order, each reported by name.
//!
//! Order: [`Check::Format`] (SignedInfo, SignatureValue and a certificate
//! present), [`Check::OneCertificate`], [`Check::Signature`] (RSA PKCS#1 v1.5
//! over the exclusive C14N of `SignedInfo`), [`Check::Digest`] (the
//! prescription's fragments hash to `DigestValue`), [`Check::Revocation`]
//! (not implemented yet: always skipped), [`Check::ValidAtSigningTime`]
//! (certificate validity at `author/time`), [`Check::TrustedIssuer`] (the
//! certificate is signed by a trusted CA given by the caller; skipped when
//! none is given).
//!
//! RSA keys must be at least 2048 bits unless
//! [`VerifyOptions::allow_legacy_1024_bit_rsa`] is set (EPS's INT test
//! certificates, and most of the test corpus, use 1024-bit keys).
//! `author/time` carries no zone and is taken as UTC.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use roxmltree::{Document, Node};
use serde::Serialize;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::XMLDSIG_NS;
use crate::c14n::{self, C14nOptions};
use crate::fragments::{self, DigestAlgorithm};

/// The name of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `SignedInfo`, `SignatureValue` and an `X509Certificate` are present.
    Format,
    /// The signature carries exactly one certificate.
    OneCertificate,
    /// The signature over canonical `SignedInfo` verifies with the
    /// certificate's public key.
    Signature,
    /// The canonical fragments of the prescription hash to `DigestValue`.
    Digest,
    /// Neither the certificate nor its CA is revoked.
    Revocation,
    /// The certificate was valid at the prescription's `author/time`.
    ValidAtSigningTime,
    /// The certificate was issued by a trusted CA.
    TrustedIssuer,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check ran and passed.
    Passed,
    /// The check ran and failed.
    Failed,
    /// The check did not run (see the message for why).
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// What it gave.
    pub outcome: Outcome,
    /// A human-readable explanation.
    pub message: String,
}

/// The result of verifying a prescription signature: every check, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationReport {
    /// The checks in EPS's order.
    pub checks: Vec<CheckResult>,
}

impl VerificationReport {
    /// The result of one check.
    pub fn get(&self, check: Check) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// The outcome of one check.
    pub fn outcome(&self, check: Check) -> Option<Outcome> {
        self.get(check).map(|c| c.outcome)
    }

    /// True when no check failed (skipped checks do not count against it).
    pub fn no_failures(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }

    /// The first failed check, in EPS's order.
    pub fn first_failure(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.outcome == Outcome::Failed)
    }

    fn push(&mut self, check: Check, outcome: Outcome, message: impl Into<String>) {
        self.checks.push(CheckResult {
            check,
            outcome,
            message: message.into(),
        });
    }
}

/// Options for [`verify_prescription`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// DER of a CA certificate trusted to have issued the signing
    /// certificate. Without it the trusted-issuer check is skipped.
    pub trusted_ca_der: Option<&'a [u8]>,
    /// Accept RSA keys of 1024 to 2047 bits (EPS's INT-environment test
    /// certificates use 1024-bit keys). Off by default: keys below 2048 bits
    /// then fail the signature check.
    pub allow_legacy_1024_bit_rsa: bool,
}

/// Errors that stop verification before any check can run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input is not well-formed XML.
    #[error("XML parse error: {0}")]
    Xml(#[from] roxmltree::Error),
    /// The prescription structure is missing a required element.
    #[error(transparent)]
    Prescription(#[from] fragments::FragmentsError),
}

const ALL_CHECKS: [Check; 7] = [
    Check::Format,
    Check::OneCertificate,
    Check::Signature,
    Check::Digest,
    Check::Revocation,
    Check::ValidAtSigningTime,
    Check::TrustedIssuer,
];

fn dsig<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.descendants().find(|n| {
        n.is_element()
            && n.tag_name().name() == name
            && n.tag_name().namespace() == Some(XMLDSIG_NS)
    })
}

/// True when the element has non-whitespace text content.
fn has_content(node: Node<'_, '_>) -> bool {
    node.text().is_some_and(|t| !t.trim().is_empty())
}

fn compact_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// Parse an HL7 `TS` value (`YYYYMMDD[hh[mm[ss]]]`, no zone: taken as UTC).
pub fn parse_hl7_time(value: &str) -> Option<OffsetDateTime> {
    let digits = value.get(
        ..value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    )?;
    if digits.len() < 8 || digits.len() % 2 != 0 || digits.len() > 14 {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<u32> {
        digits.get(range).map_or(Some(0), |s| s.parse().ok())
    };
    let year = i32::try_from(field(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(field(4..6)?).ok()?).ok()?;
    let day = u8::try_from(field(6..8)?).ok()?;
    let hour = u8::try_from(field(8..10)?).ok()?;
    let minute = u8::try_from(field(10..12)?).ok()?;
    let second = u8::try_from(field(12..14)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Verify the signature of a prescription document (a `ParentPrescription`,
/// alone or inside a message).
pub fn verify_prescription(
    xml: &str,
    options: &VerifyOptions<'_>,
) -> Result<VerificationReport, VerifyError> {
    let doc = Document::parse(xml)?;
    let parent = fragments::find_parent_prescription(&doc)?;
    verify_parent_prescription(parent, options)
}

/// Verify the signature of a `ParentPrescription` element.
pub fn verify_parent_prescription(
    parent: Node<'_, '_>,
    options: &VerifyOptions<'_>,
) -> Result<VerificationReport, VerifyError> {
    let author = fragments::author(parent)?;
    let mut report = VerificationReport { checks: Vec::new() };

    // 1. Format.
    let signature_text = author
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "signatureText");
    let signed_info = signature_text.and_then(|s| dsig(s, "SignedInfo"));
    let signature_value = signature_text
        .and_then(|s| dsig(s, "SignatureValue"))
        .filter(|n| has_content(*n));
    let certificates: Vec<Node<'_, '_>> = signature_text
        .map(|s| {
            s.descendants()
                .filter(|n| {
                    n.is_element()
                        && n.tag_name().name() == "X509Certificate"
                        && n.tag_name().namespace() == Some(XMLDSIG_NS)
                })
                .collect()
        })
        .unwrap_or_default();
    let has_certificate = certificates.iter().any(|n| has_content(*n));
    let (Some(signed_info), Some(signature_value), true) =
        (signed_info, signature_value, has_certificate)
    else {
        let mut missing = Vec::new();
        if signed_info.is_none() {
            missing.push("SignedInfo");
        }
        if signature_value.is_none() {
            missing.push("SignatureValue");
        }
        if !has_certificate {
            missing.push("X509Certificate");
        }
        report.push(
            Check::Format,
            Outcome::Failed,
            format!("invalid signature format: missing {}", missing.join(", ")),
        );
        skip_rest(&mut report, "signature format is invalid");
        return Ok(report);
    };
    report.push(Check::Format, Outcome::Passed, "signature format is valid");

    // 2. Exactly one certificate.
    if certificates.len() != 1 {
        report.push(
            Check::OneCertificate,
            Outcome::Failed,
            format!("expected one certificate, found {}", certificates.len()),
        );
        skip_rest(&mut report, "certificate count is wrong");
        return Ok(report);
    }
    let cert_der = match compact_base64(certificates[0].text().unwrap_or("")) {
        Ok(der) => der,
        Err(e) => {
            report.push(
                Check::OneCertificate,
                Outcome::Failed,
                format!("certificate is not valid base64: {e}"),
            );
            skip_rest(&mut report, "certificate is unreadable");
            return Ok(report);
        }
    };
    let cert = match X509Certificate::from_der(&cert_der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            report.push(
                Check::OneCertificate,
                Outcome::Failed,
                format!("certificate is not valid DER X.509: {e}"),
            );
            skip_rest(&mut report, "certificate is unreadable");
            return Ok(report);
        }
    };
    report.push(
        Check::OneCertificate,
        Outcome::Passed,
        format!("one certificate: {}", cert.subject()),
    );

    // 3. Signature over canonical SignedInfo.
    let (outcome, message) = check_signature(
        signed_info,
        signature_value,
        &cert,
        options.allow_legacy_1024_bit_rsa,
    );
    report.push(Check::Signature, outcome, message);

    // 4. Digest of the prescription's fragments.
    let (outcome, message) = check_digest(parent, signed_info);
    report.push(Check::Digest, outcome, message);

    // 5. Revocation.
    report.push(
        Check::Revocation,
        Outcome::Skipped,
        "revocation checking (CRLs of the certificate and its CA) is not implemented yet",
    );

    // 6. Validity at author/time.
    let (outcome, message) = check_validity(parent, &cert);
    report.push(Check::ValidAtSigningTime, outcome, message);

    // 7. Trusted issuer.
    let (outcome, message) = check_issuer(&cert, options.trusted_ca_der);
    report.push(Check::TrustedIssuer, outcome, message);

    Ok(report)
}

fn skip_rest(report: &mut VerificationReport, reason: &str) {
    for check in ALL_CHECKS.iter().skip(report.checks.len()) {
        report.push(*check, Outcome::Skipped, format!("not run: {reason}"));
    }
}

fn check_signature(
    signed_info: Node<'_, '_>,
    signature_value: Node<'_, '_>,
    cert: &X509Certificate<'_>,
    allow_1024: bool,
) -> (Outcome, String) {
    let key_bits = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
        _ => return (Outcome::Failed, "certificate key is not RSA".to_owned()),
    };
    if key_bits < 2048 && !allow_1024 {
        return (
            Outcome::Failed,
            format!("certificate RSA key is {key_bits} bits; at least 2048 required"),
        );
    }
    let method = dsig(signed_info, "SignatureMethod").and_then(|m| m.attribute("Algorithm"));
    let algorithm: &'static dyn VerificationAlgorithm = match (method, allow_1024) {
        (Some("http://www.w3.org/2000/09/xmldsig#rsa-sha1"), false) => {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (Some("http://www.w3.org/2000/09/xmldsig#rsa-sha1"), true) => {
            &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"), false) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"), true) => {
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
        (other, _) => {
            return (
                Outcome::Failed,
                format!("unsupported signature method {other:?}"),
            );
        }
    };
    let signature = match compact_base64(signature_value.text().unwrap_or("")) {
        Ok(bytes) => bytes,
        Err(e) => {
            return (
                Outcome::Failed,
                format!("SignatureValue is not base64: {e}"),
            );
        }
    };
    let canonical = c14n::canonicalize_with(
        signed_info,
        C14nOptions {
            strip_whitespace_text: true,
        },
    );
    let key = UnparsedPublicKey::new(algorithm, &cert.public_key().subject_public_key.data);
    match key.verify(canonical.as_bytes(), &signature) {
        Ok(()) => (
            Outcome::Passed,
            format!("signature is valid ({key_bits}-bit RSA key)"),
        ),
        Err(_) => (Outcome::Failed, "signature is invalid".to_owned()),
    }
}

fn check_digest(parent: Node<'_, '_>, signed_info: Node<'_, '_>) -> (Outcome, String) {
    let method = dsig(signed_info, "DigestMethod").and_then(|m| m.attribute("Algorithm"));
    let Some(algorithm) = method.and_then(DigestAlgorithm::from_uri) else {
        return (
            Outcome::Failed,
            format!("unsupported digest method {method:?}"),
        );
    };
    let expected =
        match dsig(signed_info, "DigestValue").map(|d| compact_base64(d.text().unwrap_or(""))) {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return (Outcome::Failed, format!("DigestValue is not base64: {e}")),
            None => return (Outcome::Failed, "DigestValue is missing".to_owned()),
        };
    let canonical = match fragments::canonical_fragments(parent) {
        Ok(c) => c,
        Err(e) => return (Outcome::Failed, format!("cannot build fragments: {e}")),
    };
    if algorithm.digest(canonical.as_bytes()) == expected {
        (Outcome::Passed, "signature matches prescription".to_owned())
    } else {
        (
            Outcome::Failed,
            "signature doesn't match prescription".to_owned(),
        )
    }
}

fn check_validity(parent: Node<'_, '_>, cert: &X509Certificate<'_>) -> (Outcome, String) {
    let Ok(value) = fragments::author_time(parent) else {
        return (Outcome::Failed, "author/time is missing".to_owned());
    };
    let Some(at) = parse_hl7_time(value) else {
        return (
            Outcome::Failed,
            format!("author/time {value:?} is not a valid HL7 time"),
        );
    };
    let validity = cert.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    if at < not_before {
        (
            Outcome::Failed,
            format!("certificate not yet valid at {value} (from {not_before})"),
        )
    } else if at > not_after {
        (
            Outcome::Failed,
            format!("certificate expired at {value} (until {not_after})"),
        )
    } else {
        (
            Outcome::Passed,
            format!("certificate valid at {value} (taken as UTC)"),
        )
    }
}

fn check_issuer(cert: &X509Certificate<'_>, trusted_ca_der: Option<&[u8]>) -> (Outcome, String) {
    let Some(ca_der) = trusted_ca_der else {
        return (
            Outcome::Skipped,
            "no trusted CA certificate was supplied".to_owned(),
        );
    };
    let ca = match X509Certificate::from_der(ca_der) {
        Ok((_, ca)) => ca,
        Err(e) => {
            return (
                Outcome::Failed,
                format!("trusted CA is not valid X.509: {e}"),
            );
        }
    };
    if cert.issuer() != ca.subject() {
        return (
            Outcome::Failed,
            format!(
                "certificate issuer {} is not the trusted CA {}",
                cert.issuer(),
                ca.subject()
            ),
        );
    }
    match cert.verify_signature(Some(ca.public_key())) {
        Ok(()) => (
            Outcome::Passed,
            format!("issued by trusted CA {}", ca.subject()),
        ),
        Err(e) => (
            Outcome::Failed,
            format!("certificate signature does not verify with the trusted CA: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_times() {
        let t = parse_hl7_time("20210726120522").expect("time");
        assert_eq!(t.to_string(), "2021-07-26 12:05:22.0 +00:00:00");
        let d = parse_hl7_time("20210726").expect("date");
        assert_eq!(d.hour(), 0);
        assert!(parse_hl7_time("2021").is_none());
        assert!(parse_hl7_time("20211345000000").is_none());
        assert!(parse_hl7_time("202107261").is_none());
    }

    #[test]
    fn missing_signature_fails_format_and_skips_the_rest() {
        let xml = r#"<ParentPrescription><pertinentInformation1><pertinentPrescription>
            <author><time value="20210101"/><signatureText nullFlavor="NA"/></author>
            </pertinentPrescription></pertinentInformation1></ParentPrescription>"#;
        let report = verify_prescription(xml, &VerifyOptions::default()).expect("report");
        assert_eq!(report.checks.len(), 7);
        assert_eq!(report.outcome(Check::Format), Some(Outcome::Failed));
        assert!(
            report.checks[1..]
                .iter()
                .all(|c| c.outcome == Outcome::Skipped)
        );
        assert_eq!(report.first_failure().map(|c| c.check), Some(Check::Format));
    }
}

//! EPS's prescription-signature checks, in EPS's order, each reported by name.
//!
//! Order: [`Check::Format`] (SignedInfo, SignatureValue and a certificate
//! present), [`Check::OneCertificate`], [`Check::Signature`] (RSA PKCS#1 v1.5
//! over the exclusive C14N of `SignedInfo`), [`Check::Digest`] (the
//! prescription's fragments hash to `DigestValue`), [`Check::Revocation`]
//! (CRLs of the certificate's CA and of that CA's own issuers),
//! [`Check::ValidAtSigningTime`] (certificate validity at `author/time`),
//! [`Check::TrustedIssuer`] (the certificate chains to a trusted CA given by
//! the caller; skipped when none is given, which [`VerificationReport::verdict`]
//! calls "signature valid, signer not trusted").
//!
//! Before any check, the prescription's signed parts are found strictly
//! ([`fragments::signed_parts`]): a second `recordTarget`, or a
//! foreign-namespace or `xmlns=""` copy where EPS reads one HL7 element, makes
//! verification an error ([`VerifyError::Prescription`]) — refused, not
//! checked — and so does a second `Signature`, `SignedInfo` or
//! `SignatureValue` (a failed format check).
//!
//! RSA keys must be at least 2048 bits unless
//! [`VerifyOptions::allow_legacy_1024_bit_rsa`] is set (EPS's INT test
//! certificates, and most of the test corpus, use 1024-bit keys).
//! `author/time` carries no zone and is taken as UTC.
//!
//! # Chains
//!
//! The CA certificates are the trust anchors
//! ([`VerifyOptions::trusted_ca_der`] and
//! [`VerifyOptions::additional_trusted_ca_ders`]) and the intermediates
//! ([`VerifyOptions::intermediate_ca_ders`]). A certificate's issuer is a
//! given CA certificate whose subject is the certificate's issuer name *and*
//! whose key verifies the certificate's signature; intermediates must also
//! be CA certificates (basic constraints). The chain is followed from the
//! signing certificate until it reaches an anchor (at most
//! [`MAX_CHAIN_LENGTH`] links). Validity periods of the CA certificates are
//! not checked (EPS judges only the signing certificate, at `author/time`).
//!
//! # Revocation
//!
//! A CRL ([`VerifyOptions::crl_ders`]) is used only when its issuer name is
//! the subject of a CA in the chain *and* its signature verifies with that
//! CA's key; any other CRL is ignored (an unreadable one fails the check).
//! The signing certificate is looked up on the CRLs of its issuing CA; each
//! CA of the chain below the anchor is looked up on the CRLs of its own
//! issuer (anchors are trusted as given and not looked up). A listed
//! certificate makes the check fail:
//! * with reason `keyCompromise`, `cACompromise` or `aACompromise`: when the
//!   entry has an `invalidityDate` (RFC 5280, OID 2.5.29.24: since when the
//!   key may have been in other hands), if the prescription was signed
//!   (`author/time`) at or after it; without one, always — a stolen key can
//!   write any `author/time`, so a back-dated signature is no proof;
//! * with any other reason, or none, only if the prescription was signed at
//!   or after the revocation date (or the invalidity date, when one is given
//!   and earlier). Revoked later, the check passes and says so.
//!
//! With no usable CRL for the signing certificate's issuer the check is
//! skipped ("no CRL for issuer …"). A CRL whose `nextUpdate` has passed at
//! verification time ([`VerifyOptions::verification_time`], default now) is
//! still used, and the message says it is stale: a stale CRL can only miss a
//! revocation, never invent one, and the caller decides what staleness means.
//! A CA in the chain whose own issuer has no usable CRL is named in the
//! message of an otherwise passing check.
//!
//! # OCSP
//!
//! The signing certificate's status may also come from an OCSP response
//! ([`VerifyOptions::ocsp`], fetched by the caller, e.g. `vsc eps verify
//! --ocsp`), alone or with CRLs. The response is checked in full by
//! [`vsc_pki::ocsp::verify_response`]: signed by the signing certificate's
//! issuing CA (as found in the chain) or by a responder certificate that CA
//! issued with `id-kp-OCSPSigning`; answering for this certificate (serial,
//! issuer name and key hashes); `thisUpdate` not in the future and
//! `nextUpdate` not passed at verification time; the request's nonce echoed.
//! A response that fails any of that fails the check (it cannot be told from
//! a forgery or a replay). `revoked` is judged exactly as a CRL entry with the
//! same time, reason and invalidity date; `unknown` fails (the CA does not
//! vouch for the certificate). Either source finding the certificate revoked
//! fails the check.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use roxmltree::Node;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::RevokedCertificate;

use crate::XMLDSIG_NS;
use crate::c14n::{self, C14nOptions};
use crate::fragments::{self, DigestAlgorithm};
use crate::xml::{self, XmlError};

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

    /// The overall verdict: [`Verdict::Invalid`] when any check failed;
    /// otherwise [`Verdict::Valid`] only when the trusted-issuer check
    /// passed, and [`Verdict::SignatureValidSignerNotTrusted`] when it was
    /// skipped (no trust anchor was given).
    pub fn verdict(&self) -> Verdict {
        if !self.no_failures() {
            Verdict::Invalid
        } else if self.outcome(Check::TrustedIssuer) == Some(Outcome::Passed) {
            Verdict::Valid
        } else {
            Verdict::SignatureValidSignerNotTrusted
        }
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

/// What a report comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check ran and passed or was skipped, and the signer chains to a
    /// trusted CA.
    Valid,
    /// No check failed, but no trust anchor was given: the signature is
    /// valid, and nothing says who the signer is.
    SignatureValidSignerNotTrusted,
    /// A check failed.
    Invalid,
}

impl Verdict {
    /// How the verdict reads in a report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::SignatureValidSignerNotTrusted => "signature valid, signer not trusted",
            Self::Invalid => "INVALID",
        }
    }
}

/// Options for [`verify_prescription`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// DER of a CA certificate trusted to have issued the signing
    /// certificate (directly or through [`Self::intermediate_ca_ders`]).
    /// Without any trusted CA the trusted-issuer check is skipped.
    pub trusted_ca_der: Option<&'a [u8]>,
    /// DER of further trusted CA certificates (trust anchors), alongside
    /// [`Self::trusted_ca_der`].
    pub additional_trusted_ca_ders: &'a [&'a [u8]],
    /// DER of intermediate CA certificates that may link the signing
    /// certificate to a trusted CA. Not trusted by themselves.
    pub intermediate_ca_ders: &'a [&'a [u8]],
    /// DER of CRLs, issued by the trusted or intermediate CAs. Without a
    /// usable CRL for the signing certificate's issuer the revocation check
    /// is skipped.
    pub crl_ders: &'a [&'a [u8]],
    /// Accept RSA keys of 1024 to 2047 bits (EPS's INT-environment test
    /// certificates use 1024-bit keys). Off by default: keys below 2048 bits
    /// then fail the signature check.
    pub allow_legacy_1024_bit_rsa: bool,
    /// The time of verification, used to tell whether a CRL is stale (past
    /// its `nextUpdate`) and whether an OCSP response is current. `None`: the
    /// system clock.
    pub verification_time: Option<OffsetDateTime>,
    /// An OCSP response about the signing certificate, with the nonce of the
    /// request it answers. `None`: revocation by CRL only.
    pub ocsp: Option<OcspEvidence<'a>>,
}

/// An OCSP response to check the signing certificate's revocation with.
#[derive(Debug, Clone, Copy)]
pub struct OcspEvidence<'a> {
    /// The DER `OCSPResponse` as the responder sent it.
    pub response_der: &'a [u8],
    /// The nonce the request carried (the raw octets given to
    /// [`vsc_pki::ocsp::build_request`]); the response must echo it.
    pub nonce: Option<&'a [u8]>,
    /// Where the response came from, for messages.
    pub url: Option<&'a str>,
}

/// The most CA certificates a chain may have above the signing certificate.
pub const MAX_CHAIN_LENGTH: usize = 8;

/// Errors that stop verification before any check can run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input is not well-formed XML, or nests too deep.
    #[error("XML parse error: {0}")]
    Xml(#[from] XmlError),
    /// The prescription structure is missing a required element, or holds a
    /// decoy where EPS reads one HL7 element (a repeated element, a
    /// foreign-namespace or no-namespace copy): refused, not checked.
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

// Also what the prescriber's screen uses (summary), so it lives there: the phone's build has
// no `verify`.
pub use crate::summary::parse_hl7_time;

/// Verify the signature of a prescription document (a `ParentPrescription`,
/// alone or inside a message).
pub fn verify_prescription(
    xml: &str,
    options: &VerifyOptions<'_>,
) -> Result<VerificationReport, VerifyError> {
    let doc = xml::parse(xml)?;
    let parent = fragments::find_parent_prescription(&doc)?;
    verify_parent_prescription(parent, options)
}

/// Verify the signature of a `ParentPrescription` element.
pub fn verify_parent_prescription(
    parent: Node<'_, '_>,
    options: &VerifyOptions<'_>,
) -> Result<VerificationReport, VerifyError> {
    // What EPS reads must be there once, in HL7's namespace; otherwise the
    // prescription is refused rather than one of its copies checked. (A
    // missing part fails the digest check below, as in EPS.)
    match fragments::signed_parts(parent) {
        Ok(_) | Err(fragments::FragmentsError::Missing(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let author = fragments::author(parent)?;
    let signature_text = fragments::one_child(author, "signatureText")?;
    let mut report = VerificationReport { checks: Vec::new() };

    // 1. Format.
    let repeated: Vec<&str> = ["Signature", "SignedInfo", "SignatureValue"]
        .into_iter()
        .filter(|name| {
            signature_text.is_some_and(|s| {
                s.descendants()
                    .filter(|n| n.has_tag_name((XMLDSIG_NS, *name)))
                    .count()
                    > 1
            })
        })
        .collect();
    if !repeated.is_empty() {
        report.push(
            Check::Format,
            Outcome::Failed,
            format!(
                "invalid signature format: more than one {}",
                repeated.join(", more than one ")
            ),
        );
        skip_rest(&mut report, "signature format is invalid");
        return Ok(report);
    }
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

    // CA certificates for revocation and chain building.
    let cas = CaCertificates::parse(options);
    let chain = Chain::build(&cert, &cas);
    let signed_at = fragments::author_time(parent).ok().and_then(parse_hl7_time);

    // 5. Revocation.
    let now = options
        .verification_time
        .unwrap_or_else(OffsetDateTime::now_utc);
    let (outcome, message) = match options.ocsp {
        None => check_revocation(&cert, &chain, options.crl_ders, signed_at, now),
        Some(ocsp) => {
            let by_ocsp = check_ocsp(&cert_der, &chain, ocsp, signed_at, now);
            if options.crl_ders.is_empty() {
                by_ocsp
            } else {
                let by_crl = check_revocation(&cert, &chain, options.crl_ders, signed_at, now);
                combine(by_crl, by_ocsp)
            }
        }
    };
    report.push(Check::Revocation, outcome, message);

    // 6. Validity at author/time.
    let (outcome, message) = check_validity(parent, &cert);
    report.push(Check::ValidAtSigningTime, outcome, message);

    // 7. Trusted issuer.
    let (outcome, message) = check_issuer(&cas, &chain);
    report.push(Check::TrustedIssuer, outcome, message);

    Ok(report)
}

/// Whether a DER certificate is self-issued (its subject is its issuer): how
/// a bundle of CA certificates tells root CAs from intermediates. `None`
/// when `der` is not a certificate.
pub fn certificate_is_self_issued(der: &[u8]) -> Option<bool> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, cert)| cert.subject() == cert.issuer())
}

/// The signing certificate of a prescription (DER) and, when it chains to the
/// CA certificates of `options`, its issuer's (DER): what an OCSP request for
/// the signer needs, before [`verify_prescription`] checks the response.
/// `None` when the prescription has no single readable certificate.
pub fn signer_and_issuer(
    xml: &str,
    options: &VerifyOptions<'_>,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let doc = xml::parse(xml).ok()?;
    let parent = fragments::find_parent_prescription(&doc).ok()?;
    let author = fragments::author(parent).ok()?;
    let signature_text = fragments::one_child(author, "signatureText").ok()??;
    let mut certificates = signature_text.descendants().filter(|n| {
        n.is_element()
            && n.tag_name().name() == "X509Certificate"
            && n.tag_name().namespace() == Some(XMLDSIG_NS)
    });
    let only = certificates.next()?;
    if certificates.next().is_some() {
        return None;
    }
    let cert_der = compact_base64(only.text().unwrap_or("")).ok()?;
    let (_, cert) = X509Certificate::from_der(&cert_der).ok()?;
    let cas = CaCertificates::parse(options);
    let chain = Chain::build(&cert, &cas);
    let issuer = chain.cas.first().map(|c| c.as_raw().to_vec());
    Some((cert_der, issuer))
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

/// The caller's CA certificates, parsed.
struct CaCertificates<'a> {
    anchors: Vec<X509Certificate<'a>>,
    intermediates: Vec<X509Certificate<'a>>,
    /// Problems with the given certificates (unreadable ones).
    problems: Vec<String>,
}

impl<'a> CaCertificates<'a> {
    fn parse(options: &VerifyOptions<'a>) -> Self {
        let mut problems = Vec::new();
        let mut parse = |ders: &mut dyn Iterator<Item = &'a [u8]>, kind: &str| {
            let mut certs = Vec::new();
            for (i, der) in ders.enumerate() {
                match X509Certificate::from_der(der) {
                    Ok((_, cert)) => certs.push(cert),
                    Err(e) => problems.push(format!("{kind} {} is not valid X.509: {e}", i + 1)),
                }
            }
            certs
        };
        let anchors = parse(
            &mut options
                .trusted_ca_der
                .into_iter()
                .chain(options.additional_trusted_ca_ders.iter().copied()),
            "trusted CA",
        );
        let intermediates = parse(
            &mut options.intermediate_ca_ders.iter().copied(),
            "intermediate CA",
        );
        CaCertificates {
            anchors,
            intermediates,
            problems,
        }
    }
}

/// The CA certificates above a certificate, as far as they could be found.
struct Chain<'c, 'a> {
    /// The issuer of the signing certificate first, then its issuer, ….
    cas: Vec<&'c X509Certificate<'a>>,
    /// Whether the last of `cas` is a trust anchor.
    anchored: bool,
    /// Why the chain stops short of an anchor.
    stopped: Option<String>,
}

/// Whether `issuer` issued `cert`: names match and its key verifies the
/// signature.
fn issued_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

impl<'c, 'a> Chain<'c, 'a> {
    fn build(leaf: &X509Certificate<'_>, cas: &'c CaCertificates<'a>) -> Self {
        let mut chain: Vec<&'c X509Certificate<'a>> = Vec::new();
        let mut stopped = None;
        let mut anchored = false;
        loop {
            let current: &X509Certificate<'_> = chain.last().map_or(leaf, |c| *c);
            if let Some(anchor) = cas.anchors.iter().find(|a| issued_by(current, a)) {
                chain.push(anchor);
                anchored = true;
                break;
            }
            if current.subject() == current.issuer() && !chain.is_empty() {
                stopped = Some(format!(
                    "{} is self-issued and not a trusted CA",
                    current.subject()
                ));
                break;
            }
            if chain.len() >= MAX_CHAIN_LENGTH {
                stopped = Some(format!(
                    "no trusted CA within {MAX_CHAIN_LENGTH} certificates"
                ));
                break;
            }
            let next = cas.intermediates.iter().find(|i| {
                i.is_ca() && !chain.iter().any(|c| std::ptr::eq(*c, *i)) && issued_by(current, i)
            });
            match next {
                Some(intermediate) => chain.push(intermediate),
                None => {
                    let named = cas
                        .anchors
                        .iter()
                        .chain(&cas.intermediates)
                        .any(|c| c.subject() == current.issuer());
                    stopped = Some(if named {
                        format!(
                            "the signature of {} does not verify with the key of any given CA named {} (or that CA is not a CA certificate)",
                            current.subject(),
                            current.issuer()
                        )
                    } else {
                        format!(
                            "issuer {} of {} is neither a trusted CA nor a given intermediate",
                            current.issuer(),
                            current.subject()
                        )
                    });
                    break;
                }
            }
        }
        Chain {
            cas: chain,
            anchored,
            stopped,
        }
    }
}

fn check_issuer(cas: &CaCertificates<'_>, chain: &Chain<'_, '_>) -> (Outcome, String) {
    if !cas.problems.is_empty() {
        return (Outcome::Failed, cas.problems.join("; "));
    }
    if cas.anchors.is_empty() {
        return (
            Outcome::Skipped,
            "no trusted CA certificate was supplied".to_owned(),
        );
    }
    match (chain.anchored, chain.cas.split_last()) {
        (true, Some((anchor, []))) => (
            Outcome::Passed,
            format!("issued by trusted CA {}", anchor.subject()),
        ),
        (true, Some((anchor, intermediates))) => (
            Outcome::Passed,
            format!(
                "chains to trusted CA {} through {}",
                anchor.subject(),
                intermediates
                    .iter()
                    .map(|c| c.subject().to_string())
                    .collect::<Vec<_>>()
                    .join(", then ")
            ),
        ),
        _ => (
            Outcome::Failed,
            format!(
                "not issued by a trusted CA: {}",
                chain.stopped.as_deref().unwrap_or("no chain")
            ),
        ),
    }
}

/// RFC 5280 names of CRL reason codes.
fn reason_name(code: u8) -> String {
    match code {
        0 => "unspecified".to_owned(),
        1 => "keyCompromise".to_owned(),
        2 => "cACompromise".to_owned(),
        3 => "affiliationChanged".to_owned(),
        4 => "superseded".to_owned(),
        5 => "cessationOfOperation".to_owned(),
        6 => "certificateHold".to_owned(),
        8 => "removeFromCRL".to_owned(),
        9 => "privilegeWithdrawn".to_owned(),
        10 => "aACompromise".to_owned(),
        other => format!("code {other}"),
    }
}

fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A certificate found on a CRL, and whether EPS treats it as revoked for a
/// prescription signed at `signed_at`.
struct Listing {
    revoked: bool,
    description: String,
}

fn judge_listing(entry: &RevokedCertificate<'_>, signed_at: Option<OffsetDateTime>) -> Listing {
    judge_revocation(
        entry.revocation_date.to_datetime(),
        entry.reason_code().map(|(_, code)| code.0),
        entry.invalidity_date().map(|(_, at)| at.to_datetime()),
        signed_at,
    )
}

/// Whether a revocation at `revoked_on` (with `reason` and `invalid_from`,
/// from a CRL entry or an OCSP answer alike) makes a prescription signed at
/// `signed_at` revoked.
fn judge_revocation(
    revoked_on: OffsetDateTime,
    reason: Option<u8>,
    invalid_from: Option<OffsetDateTime>,
    signed_at: Option<OffsetDateTime>,
) -> Listing {
    let reason_text = reason.map_or_else(|| "none given".to_owned(), reason_name);
    let compromise = matches!(reason, Some(1 | 2 | 10));
    let mut description = format!(
        "revoked on {}, reason {reason_text}",
        format_time(revoked_on)
    );
    if let Some(at) = invalid_from {
        description.push_str(&format!(", invalid since {}", format_time(at)));
    }
    // Signed at or after the revocation: revoked, whatever the reason. A
    // compromised key signs whatever time it likes into author/time, so its
    // signatures are rejected from the invalidity date on (RFC 5280
    // invalidityDate: since when the key may have been in other hands), or
    // all of them when no date is given. For other reasons an invalidity
    // date, when given, brings the cut-off forward the same way.
    let cutoff = match (compromise, invalid_from) {
        (true, None) => None,
        (_, Some(at)) => Some(at.min(revoked_on)),
        (false, None) => Some(revoked_on),
    };
    let revoked = match (cutoff, signed_at) {
        (None, _) | (_, None) => true,
        (Some(cutoff), Some(at)) => at >= cutoff,
    };
    Listing {
        revoked,
        description,
    }
}

/// The usable CRLs of `ca` (issuer name matches and signature verifies), and
/// how many named it without a valid signature.
fn crls_of<'r, 'x>(
    ca: &X509Certificate<'_>,
    crls: &'r [CertificateRevocationList<'x>],
) -> (Vec<&'r CertificateRevocationList<'x>>, usize) {
    let named: Vec<&CertificateRevocationList<'_>> =
        crls.iter().filter(|c| c.issuer() == ca.subject()).collect();
    let usable: Vec<&CertificateRevocationList<'_>> = named
        .iter()
        .copied()
        .filter(|c| c.verify_signature(ca.public_key()).is_ok())
        .collect();
    let bad = named.len() - usable.len();
    (usable, bad)
}

/// Look `serial` up on `crls`.
fn find_listing<'r, 'x>(
    serial: &x509_parser::num_bigint::BigUint,
    crls: &[&'r CertificateRevocationList<'x>],
) -> Option<&'r RevokedCertificate<'x>> {
    crls.iter()
        .flat_map(|crl| crl.iter_revoked_certificates())
        .find(|entry| entry.serial() == serial)
}

/// A note when the freshest of `crls` is past its `nextUpdate`.
fn staleness(
    ca: &X509Certificate<'_>,
    crls: &[&CertificateRevocationList<'_>],
    now: OffsetDateTime,
) -> Option<String> {
    let freshest = crls.iter().max_by_key(|c| c.last_update().to_datetime())?;
    let next = freshest.next_update()?.to_datetime();
    (next < now).then(|| {
        format!(
            "the CRL of {} is stale (nextUpdate {} has passed)",
            ca.subject(),
            format_time(next)
        )
    })
}

fn check_revocation(
    cert: &X509Certificate<'_>,
    chain: &Chain<'_, '_>,
    crl_ders: &[&[u8]],
    signed_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> (Outcome, String) {
    if crl_ders.is_empty() {
        return (Outcome::Skipped, "no CRL was supplied".to_owned());
    }
    let mut crls = Vec::new();
    for (i, der) in crl_ders.iter().enumerate() {
        match CertificateRevocationList::from_der(der) {
            Ok((_, crl)) => crls.push(crl),
            Err(e) => {
                return (
                    Outcome::Failed,
                    format!("CRL {} is not a valid DER CRL: {e}", i + 1),
                );
            }
        }
    }
    let Some(issuer) = chain.cas.first() else {
        return (
            Outcome::Skipped,
            format!(
                "no CRL for issuer {}: it is not among the given CA certificates, so no CRL can be authenticated",
                cert.issuer()
            ),
        );
    };
    let (usable, bad) = crls_of(issuer, &crls);
    if usable.is_empty() {
        let mut message = format!("no CRL for issuer {}", issuer.subject());
        if bad > 0 {
            message.push_str(&format!(
                " ({bad} CRL(s) name it but their signatures do not verify with its key)"
            ));
        }
        return (Outcome::Skipped, message);
    }
    let mut notes = Vec::new();
    notes.extend(staleness(issuer, &usable, now));
    if let Some(entry) = find_listing(&cert.tbs_certificate.serial, &usable) {
        let listing = judge_listing(entry, signed_at);
        if listing.revoked {
            let mut message = format!("certificate {}", listing.description);
            for note in &notes {
                message.push_str("; ");
                message.push_str(note);
            }
            return (Outcome::Failed, message);
        }
        notes.push(format!(
            "the certificate is on the CRL ({}) but the prescription was signed before that",
            listing.description
        ));
    }
    // Each CA below the anchor, on its own issuer's CRLs.
    for pair in chain.cas.windows(2) {
        let (ca, parent) = (pair[0], pair[1]);
        let (usable, bad) = crls_of(parent, &crls);
        if usable.is_empty() {
            let mut note = format!(
                "revocation of issuing CA {} not checked: no CRL for issuer {}",
                ca.subject(),
                parent.subject()
            );
            if bad > 0 {
                note.push_str(&format!(" ({bad} with a signature that does not verify)"));
            }
            notes.push(note);
            break;
        }
        notes.extend(staleness(parent, &usable, now));
        if let Some(entry) = find_listing(&ca.tbs_certificate.serial, &usable) {
            let listing = judge_listing(entry, signed_at);
            if listing.revoked {
                return (
                    Outcome::Failed,
                    format!(
                        "issuing CA {} revoked: {}",
                        ca.subject(),
                        listing.description
                    ),
                );
            }
            notes.push(format!(
                "issuing CA {} is on its issuer's CRL ({}) but the prescription was signed before that",
                ca.subject(),
                listing.description
            ));
        }
    }
    if !chain.anchored
        && let Some(last) = chain.cas.last()
        && last.subject() != last.issuer()
    {
        notes.push(format!(
            "revocation of {} not checked: its issuer is not among the given CA certificates",
            last.subject()
        ));
    }
    let mut message = format!(
        "certificate serial {} is not revoked by {}",
        cert.raw_serial_as_string(),
        issuer.subject()
    );
    for note in notes {
        message.push_str("; ");
        message.push_str(&note);
    }
    (Outcome::Passed, message)
}

/// The signing certificate's status by OCSP: the response checked in full
/// against the certificate's issuer in the chain (see the module's "OCSP").
fn check_ocsp(
    cert_der: &[u8],
    chain: &Chain<'_, '_>,
    ocsp: OcspEvidence<'_>,
    signed_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> (Outcome, String) {
    let from = ocsp.url.map(|u| format!(" from {u}")).unwrap_or_default();
    let Some(issuer) = chain.cas.first() else {
        return (
            Outcome::Skipped,
            "no OCSP check: the certificate's issuer is not among the given CA certificates, so no OCSP response can be authenticated".to_owned(),
        );
    };
    let checked = match vsc_pki::ocsp::verify_response(
        ocsp.response_der,
        cert_der,
        issuer.as_raw(),
        ocsp.nonce,
        now,
    ) {
        Ok(checked) => checked,
        Err(e) => {
            return (
                Outcome::Failed,
                format!("OCSP response{from} rejected: {e}"),
            );
        }
    };
    let answered = format!(
        "OCSP response{from} signed by {}, thisUpdate {}",
        checked.signer,
        format_time(checked.this_update)
    );
    match checked.status {
        vsc_pki::ocsp::CertStatus::Good => (
            Outcome::Passed,
            format!("OCSP: certificate is good ({answered})"),
        ),
        vsc_pki::ocsp::CertStatus::Unknown => (
            Outcome::Failed,
            format!("OCSP: the responder does not know the certificate ({answered})"),
        ),
        vsc_pki::ocsp::CertStatus::Revoked {
            at,
            reason,
            invalidity_date,
        } => {
            let listing = judge_revocation(at, reason, invalidity_date, signed_at);
            if listing.revoked {
                (
                    Outcome::Failed,
                    format!("OCSP: certificate {} ({answered})", listing.description),
                )
            } else {
                (
                    Outcome::Passed,
                    format!(
                        "OCSP: the certificate is revoked ({}) but the prescription was signed before that ({answered})",
                        listing.description
                    ),
                )
            }
        }
    }
}

/// Both sources' results as one: failed if either failed, skipped only if
/// both were, passed otherwise; the messages of both.
fn combine(crl: (Outcome, String), ocsp: (Outcome, String)) -> (Outcome, String) {
    let outcome = match (crl.0, ocsp.0) {
        (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
        (Outcome::Skipped, Outcome::Skipped) => Outcome::Skipped,
        _ => Outcome::Passed,
    };
    // The failing source's reason first, so the one-line verdict names it.
    let message = if ocsp.0 == Outcome::Failed && crl.0 != Outcome::Failed {
        format!("{}; CRL: {}", ocsp.1, crl.1)
    } else {
        format!("{}; {}", crl.1, ocsp.1)
    };
    (outcome, message)
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

//! Revocation (CRLs) and chain building in the verifier, with a small PKI
//! made here: root CA → issuing CA → prescriber (the shared RSA test key).

mod common;

use common::{read, sign_prescription_sha256, signer};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use vsc_eps::verify::{
    Check, CheckResult, Outcome, VerificationReport, VerifyOptions, certificate_is_self_issued,
    verify_prescription,
};

/// Signed at 2021-05-07 14:47:49 (its author/time).
const PRESCRIPTION: &str = "corpus/secondary-care__community__acute__nominated-pharmacy__nurse__prescribing-and-professional-codes__controlled-drugs__additional-instructions.xml";

const ROOT_SERIAL: u64 = 1;
const ISSUING_SERIAL: u64 = 0x1234;
const LEAF_SERIAL: u64 = 0xBEEF;

fn name(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "vsc tests");
    name.push(DnType::CommonName, cn);
    name
}

fn ca_params(cn: &str, serial: u64) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    params
}

struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    issuing: CertifiedIssuer<'static, KeyPair>,
    leaf_der: Vec<u8>,
    /// The prescription, signed with the leaf certificate.
    signed: String,
}

impl Pki {
    fn new() -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params("Test Root CA", ROOT_SERIAL),
            KeyPair::generate().expect("key"),
        )
        .expect("root");
        let issuing = CertifiedIssuer::signed_by(
            ca_params("Test Issuing CA", ISSUING_SERIAL),
            KeyPair::generate().expect("key"),
            &root,
        )
        .expect("issuing");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.distinguished_name = name("Test Prescriber");
        leaf.serial_number = Some(SerialNumber::from(LEAF_SERIAL));
        leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2040, 1, 1);
        leaf.key_usages = vec![KeyUsagePurpose::ContentCommitment];
        let leaf_der = leaf
            .signed_by(&signer().rcgen_key(), &issuing)
            .expect("leaf")
            .der()
            .to_vec();
        let signed = sign_prescription_sha256(&read(PRESCRIPTION), signer(), &leaf_der);
        Pki {
            root,
            issuing,
            leaf_der,
            signed,
        }
    }

    fn root_der(&self) -> Vec<u8> {
        self.root.der().to_vec()
    }

    fn issuing_der(&self) -> Vec<u8> {
        self.issuing.der().to_vec()
    }
}

/// A revoked serial: (serial, revocation time, reason).
type Revoked = (u64, OffsetDateTime, Option<RevocationReason>);

fn crl_with(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    revoked: &[Revoked],
    next_update: OffsetDateTime,
) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update,
        crl_number: SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, when, reason)| RevokedCertParams {
                serial_number: SerialNumber::from(*serial),
                revocation_time: *when,
                reason_code: *reason,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .expect("crl")
    .der()
    .to_vec()
}

fn crl(issuer: &CertifiedIssuer<'_, KeyPair>, revoked: &[Revoked]) -> Vec<u8> {
    crl_with(issuer, revoked, rcgen::date_time_ymd(2099, 1, 1))
}

fn ymd(year: i32) -> OffsetDateTime {
    rcgen::date_time_ymd(year, 1, 1)
}

struct Setup<'a> {
    anchors: Vec<&'a [u8]>,
    intermediates: Vec<&'a [u8]>,
    crls: Vec<&'a [u8]>,
    at: Option<OffsetDateTime>,
}

impl Setup<'_> {
    fn verify(&self, xml: &str) -> VerificationReport {
        let options = VerifyOptions {
            trusted_ca_der: self.anchors.first().copied(),
            additional_trusted_ca_ders: self.anchors.get(1..).unwrap_or_default(),
            intermediate_ca_ders: &self.intermediates,
            crl_ders: &self.crls,
            verification_time: self.at,
            ..VerifyOptions::default()
        };
        verify_prescription(xml, &options).expect("verify")
    }
}

fn check(report: &VerificationReport, check: Check) -> &CheckResult {
    report.get(check).expect("check")
}

fn assert_signed_ok(report: &VerificationReport) {
    for c in [Check::Signature, Check::Digest, Check::ValidAtSigningTime] {
        assert_eq!(
            report.outcome(c),
            Some(Outcome::Passed),
            "{c:?}: {report:#?}"
        );
    }
}

/// Trust the root, with the issuing CA as intermediate, verifying in 2025.
fn chained_setup<'a>(root: &'a [u8], issuing: &'a [u8], crls: Vec<&'a [u8]>) -> Setup<'a> {
    Setup {
        anchors: vec![root],
        intermediates: vec![issuing],
        crls,
        at: Some(ymd(2025)),
    }
}

#[test]
fn revocation_and_chain() {
    let pki = Pki::new();
    let (root, issuing) = (pki.root_der(), pki.issuing_der());
    let empty_issuing_crl = crl(&pki.issuing, &[]);
    let empty_root_crl = crl(&pki.root, &[]);

    // Nothing revoked: both CRLs used, chain through the issuing CA.
    let report = chained_setup(&root, &issuing, vec![&empty_issuing_crl, &empty_root_crl])
        .verify(&pki.signed);
    assert_signed_ok(&report);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Passed, "{revocation:?}");
    assert!(
        revocation.message.contains("is not revoked by"),
        "{}",
        revocation.message
    );
    assert!(
        !revocation.message.contains("not checked"),
        "{}",
        revocation.message
    );
    let trust = check(&report, Check::TrustedIssuer);
    assert_eq!(trust.outcome, Outcome::Passed, "{trust:?}");
    assert!(
        trust.message.contains("Test Root CA") && trust.message.contains("through"),
        "{}",
        trust.message
    );
    assert!(report.no_failures());
    let report_order: Vec<Check> = report.checks.iter().map(|c| c.check).collect();
    assert_eq!(
        report_order,
        [
            Check::Format,
            Check::OneCertificate,
            Check::Signature,
            Check::Digest,
            Check::Revocation,
            Check::ValidAtSigningTime,
            Check::TrustedIssuer
        ]
    );

    // The leaf on its CA's CRL, by reason and date (signed 2021-05-07).
    let cases: [(Revoked, Outcome, &str); 5] = [
        (
            (
                LEAF_SERIAL,
                ymd(2030),
                Some(RevocationReason::KeyCompromise),
            ),
            Outcome::Failed,
            "certificate revoked on 2030-01-01 00:00:00 UTC, reason keyCompromise",
        ),
        (
            (LEAF_SERIAL, ymd(2015), Some(RevocationReason::Superseded)),
            Outcome::Failed,
            "certificate revoked on 2015-01-01 00:00:00 UTC, reason superseded",
        ),
        (
            (LEAF_SERIAL, ymd(2015), None),
            Outcome::Failed,
            "certificate revoked on 2015-01-01 00:00:00 UTC, reason none given",
        ),
        (
            (LEAF_SERIAL, ymd(2030), Some(RevocationReason::Superseded)),
            Outcome::Passed,
            "the certificate is on the CRL (revoked on 2030-01-01 00:00:00 UTC, reason superseded) but the prescription was signed before that",
        ),
        (
            (
                LEAF_SERIAL + 1,
                ymd(2015),
                Some(RevocationReason::KeyCompromise),
            ),
            Outcome::Passed,
            "is not revoked by",
        ),
    ];
    for (revoked, outcome, phrase) in cases {
        let issuing_crl = crl(&pki.issuing, &[revoked]);
        let report =
            chained_setup(&root, &issuing, vec![&issuing_crl, &empty_root_crl]).verify(&pki.signed);
        assert_signed_ok(&report);
        let revocation = check(&report, Check::Revocation);
        assert_eq!(revocation.outcome, outcome, "{revoked:?}: {revocation:?}");
        assert!(
            revocation.message.contains(phrase),
            "{revoked:?}: {}",
            revocation.message
        );
    }

    // The issuing CA on the root's CRL.
    let root_crl = crl(
        &pki.root,
        &[(
            ISSUING_SERIAL,
            ymd(2030),
            Some(RevocationReason::CaCompromise),
        )],
    );
    let report =
        chained_setup(&root, &issuing, vec![&empty_issuing_crl, &root_crl]).verify(&pki.signed);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Failed, "{revocation:?}");
    assert!(
        revocation.message.starts_with("issuing CA ")
            && revocation.message.contains(
                "Test Issuing CA revoked: revoked on 2030-01-01 00:00:00 UTC, reason cACompromise"
            ),
        "{}",
        revocation.message
    );
    // Revoked (not compromised) after signing: accepted, and said.
    let root_crl = crl(
        &pki.root,
        &[(
            ISSUING_SERIAL,
            ymd(2030),
            Some(RevocationReason::CessationOfOperation),
        )],
    );
    let report =
        chained_setup(&root, &issuing, vec![&empty_issuing_crl, &root_crl]).verify(&pki.signed);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Passed, "{revocation:?}");
    assert!(
        revocation.message.contains("on its issuer's CRL"),
        "{}",
        revocation.message
    );

    // Without the root's CRL the CA's own revocation goes unchecked, and the message says so.
    let report = chained_setup(&root, &issuing, vec![&empty_issuing_crl]).verify(&pki.signed);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Passed);
    assert!(
        revocation.message.contains("revocation of issuing CA")
            && revocation.message.contains("not checked"),
        "{}",
        revocation.message
    );

    // No CRL at all, or none from the leaf's issuer: skipped.
    let report = chained_setup(&root, &issuing, vec![]).verify(&pki.signed);
    assert_eq!(check(&report, Check::Revocation).outcome, Outcome::Skipped);
    assert_eq!(
        check(&report, Check::Revocation).message,
        "no CRL was supplied"
    );
    let report = chained_setup(&root, &issuing, vec![&empty_root_crl]).verify(&pki.signed);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Skipped);
    assert!(
        revocation.message.starts_with("no CRL for issuer "),
        "{}",
        revocation.message
    );
    assert!(
        revocation.message.contains("Test Issuing CA"),
        "{}",
        revocation.message
    );

    // A stale CRL is used, and called stale.
    let stale = crl_with(&pki.issuing, &[], ymd(2026));
    let mut stale_setup = chained_setup(&root, &issuing, vec![&stale, &empty_root_crl]);
    stale_setup.at = Some(ymd(2050));
    let revocation = check(&stale_setup.verify(&pki.signed), Check::Revocation).clone();
    assert_eq!(revocation.outcome, Outcome::Passed);
    assert!(
        revocation
            .message
            .contains("is stale (nextUpdate 2026-01-01 00:00:00 UTC has passed)"),
        "{}",
        revocation.message
    );
    let stale_revoking = crl_with(&pki.issuing, &[(LEAF_SERIAL, ymd(2015), None)], ymd(2026));
    stale_setup.crls = vec![&stale_revoking];
    let revocation = check(&stale_setup.verify(&pki.signed), Check::Revocation).clone();
    assert_eq!(revocation.outcome, Outcome::Failed);
    assert!(
        revocation.message.contains("stale"),
        "{}",
        revocation.message
    );

    // A CRL in the issuing CA's name but signed by another key is not used.
    let impostor = CertifiedIssuer::self_signed(
        ca_params("Test Issuing CA", ISSUING_SERIAL),
        KeyPair::generate().expect("key"),
    )
    .expect("impostor");
    let forged = crl(
        &impostor,
        &[(
            LEAF_SERIAL,
            ymd(2015),
            Some(RevocationReason::KeyCompromise),
        )],
    );
    let report = chained_setup(&root, &issuing, vec![&forged]).verify(&pki.signed);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Skipped, "{revocation:?}");
    assert!(
        revocation.message.contains("signatures do not verify"),
        "{}",
        revocation.message
    );
    let report = chained_setup(
        &root,
        &issuing,
        vec![&forged, &empty_issuing_crl, &empty_root_crl],
    )
    .verify(&pki.signed);
    assert_eq!(check(&report, Check::Revocation).outcome, Outcome::Passed);

    // An unreadable CRL fails the check.
    let report = chained_setup(
        &root,
        &issuing,
        vec![b"not a CRL".as_slice(), &empty_issuing_crl],
    )
    .verify(&pki.signed);
    let revocation = check(&report, Check::Revocation);
    assert_eq!(revocation.outcome, Outcome::Failed);
    assert!(
        revocation
            .message
            .starts_with("CRL 1 is not a valid DER CRL"),
        "{}",
        revocation.message
    );
}

#[test]
fn chains_to_trusted_cas() {
    let pki = Pki::new();
    let (root, issuing) = (pki.root_der(), pki.issuing_der());
    let other = CertifiedIssuer::self_signed(
        ca_params("Other Root CA", 99),
        KeyPair::generate().expect("key"),
    )
    .expect("other");
    let other = other.der().to_vec();
    let trust = |anchors: Vec<&[u8]>, intermediates: Vec<&[u8]>| {
        let report = Setup {
            anchors,
            intermediates,
            crls: vec![],
            at: None,
        }
        .verify(&pki.signed);
        assert_signed_ok(&report);
        check(&report, Check::TrustedIssuer).clone()
    };

    // Root and intermediate.
    let result = trust(vec![&root], vec![&issuing]);
    assert_eq!(result.outcome, Outcome::Passed, "{result:?}");
    // The issuing CA itself as the anchor.
    let result = trust(vec![&issuing], vec![]);
    assert_eq!(result.outcome, Outcome::Passed, "{result:?}");
    assert!(
        result.message.starts_with("issued by trusted CA"),
        "{}",
        result.message
    );
    // Several anchors, the right one second.
    let result = trust(vec![&other, &root], vec![&issuing]);
    assert_eq!(result.outcome, Outcome::Passed, "{result:?}");
    // The root without the intermediate.
    let result = trust(vec![&root], vec![]);
    assert_eq!(result.outcome, Outcome::Failed, "{result:?}");
    assert!(
        result
            .message
            .contains("neither a trusted CA nor a given intermediate"),
        "{}",
        result.message
    );
    // An unrelated root, with the intermediate: the intermediate's issuer is missing.
    let result = trust(vec![&other], vec![&issuing]);
    assert_eq!(result.outcome, Outcome::Failed, "{result:?}");
    // A root that is trusted only when given as an anchor, not as an intermediate.
    let result = trust(vec![&other], vec![&issuing, &root]);
    assert_eq!(result.outcome, Outcome::Failed, "{result:?}");
    assert!(
        result.message.contains("self-issued and not a trusted CA"),
        "{}",
        result.message
    );
    // A CA certificate with the right name but another key does not link.
    let impostor = CertifiedIssuer::self_signed(
        ca_params("Test Issuing CA", ISSUING_SERIAL),
        KeyPair::generate().expect("key"),
    )
    .expect("impostor");
    let impostor = impostor.der().to_vec();
    let result = trust(vec![&root], vec![&impostor]);
    assert_eq!(result.outcome, Outcome::Failed, "{result:?}");
    assert!(
        result.message.contains("does not verify"),
        "{}",
        result.message
    );
    let result = trust(vec![&impostor], vec![]);
    assert_eq!(result.outcome, Outcome::Failed, "{result:?}");
    // No anchor: skipped; an unreadable anchor: failed.
    assert_eq!(trust(vec![], vec![&issuing]).outcome, Outcome::Skipped);
    let result = trust(vec![b"junk".as_slice()], vec![]);
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(
        result.message.contains("trusted CA 1 is not valid X.509"),
        "{}",
        result.message
    );

    // Self-issued: how the CLI sorts a bundle.
    assert_eq!(certificate_is_self_issued(&root), Some(true));
    assert_eq!(certificate_is_self_issued(&issuing), Some(false));
    assert_eq!(certificate_is_self_issued(&pki.leaf_der), Some(false));
    assert_eq!(certificate_is_self_issued(b"junk"), None);
}

#[test]
fn revocation_works_without_a_trust_anchor() {
    // CRLs are authenticated by the CA certificates given, trusted or not;
    // the trust decision stays with the trusted-issuer check.
    let pki = Pki::new();
    let issuing = pki.issuing_der();
    let revoking = crl(
        &pki.issuing,
        &[(
            LEAF_SERIAL,
            ymd(2015),
            Some(RevocationReason::KeyCompromise),
        )],
    );
    let report = Setup {
        anchors: vec![],
        intermediates: vec![&issuing],
        crls: vec![&revoking],
        at: None,
    }
    .verify(&pki.signed);
    assert_eq!(report.outcome(Check::Revocation), Some(Outcome::Failed));
    assert_eq!(report.outcome(Check::TrustedIssuer), Some(Outcome::Skipped));
    assert_eq!(
        report.first_failure().map(|c| c.check),
        Some(Check::Revocation)
    );
}

/// A CRL of `issuer` with one entry for `serial`: revoked at `revoked`, with `reason` and
/// `invalidity_date` (RFC 5280 reasonCode and invalidityDate entry extensions).
fn crl_entry(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    serial: u64,
    revoked: OffsetDateTime,
    reason: Option<RevocationReason>,
    invalidity_date: Option<OffsetDateTime>,
) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(8u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(serial),
            revocation_time: revoked,
            reason_code: reason,
            invalidity_date,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .expect("crl")
    .der()
    .to_vec()
}

fn ymdhms(year: i32, month: u8, day: u8, h: u8, m: u8, s: u8) -> OffsetDateTime {
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).expect("month"), day)
            .expect("date");
    time::PrimitiveDateTime::new(date, time::Time::from_hms(h, m, s).expect("time")).assume_utc()
}

/// (reason, revocation date, invalidity date, expected outcome, phrase of the message).
type Case = (
    Option<RevocationReason>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Outcome,
    &'static str,
);

/// Issue 9, item 4: a key-compromise entry rejects signatures whose `author/time` is at or after
/// its invalidity date (a stolen phone back-dating prescriptions to before the cancellation is
/// still rejected), or all of them without one; other reasons reject from the revocation date.
#[test]
fn key_compromise_honours_the_invalidity_date() {
    let pki = Pki::new();
    let (root, issuing) = (pki.root_der(), pki.issuing_der());
    let empty_root_crl = crl(&pki.root, &[]);
    // The prescription says it was signed at 2021-05-07 14:47:49.
    let signed_at = ymdhms(2021, 5, 7, 14, 47, 49);
    let key = Some(RevocationReason::KeyCompromise);
    let cases: [Case; 7] = [
        // Cancelled in 2030, the phone gone since 2021-01-01: a signature "from" May 2021 is
        // after the compromise, rejected.
        (
            key,
            ymd(2030),
            Some(ymd(2021)),
            Outcome::Failed,
            "invalid since 2021-01-01 00:00:00 UTC",
        ),
        // Exactly at the invalidity date: rejected.
        (
            key,
            ymd(2030),
            Some(signed_at),
            Outcome::Failed,
            "reason keyCompromise",
        ),
        // Compromised only from 2022: the May 2021 signature stands, and the message says so.
        (
            key,
            ymd(2030),
            Some(ymd(2022)),
            Outcome::Passed,
            "but the prescription was signed before that",
        ),
        // Key compromise without an invalidity date: every signature is rejected.
        (
            key,
            ymd(2030),
            None,
            Outcome::Failed,
            "reason keyCompromise",
        ),
        // Any other reason: from the revocation date on.
        (
            Some(RevocationReason::CessationOfOperation),
            ymd(2030),
            None,
            Outcome::Passed,
            "signed before that",
        ),
        (
            Some(RevocationReason::AffiliationChanged),
            ymd(2020),
            None,
            Outcome::Failed,
            "reason affiliationChanged",
        ),
        // ... or from an earlier invalidity date, when one is given.
        (
            Some(RevocationReason::Superseded),
            ymd(2030),
            Some(ymd(2021)),
            Outcome::Failed,
            "reason superseded",
        ),
    ];
    for (reason, revoked, invalid_from, outcome, phrase) in cases {
        let issuing_crl = crl_entry(&pki.issuing, LEAF_SERIAL, revoked, reason, invalid_from);
        let report =
            chained_setup(&root, &issuing, vec![&issuing_crl, &empty_root_crl]).verify(&pki.signed);
        assert_signed_ok(&report);
        let revocation = check(&report, Check::Revocation);
        assert_eq!(
            revocation.outcome, outcome,
            "{reason:?} revoked {revoked} invalid from {invalid_from:?}: {revocation:?}"
        );
        assert!(
            revocation.message.contains(phrase),
            "{reason:?}: {}",
            revocation.message
        );
    }
}

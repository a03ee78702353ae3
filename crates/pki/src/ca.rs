//! The instance certificate authority: a root and an issuing CA, their storage on disk, and
//! the certificates and CRLs they sign.

use std::net::IpAddr;
use std::path::Path;

use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData,
    SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use zeroize::{Zeroize, Zeroizing};

use crate::cert::{IssuedCertificate, parse_certificate};
use crate::crl::RevokedEntry;
use crate::csr::ValidatedCsr;
use crate::error::PkiError;
use crate::fingerprint::Fingerprint;
use crate::fsutil;
use crate::master_key::MasterKey;
use crate::pem::{der_to_pem, pem_to_der};

#[path = "workstation.rs"]
pub mod workstation;

/// Microsoft "Smart Card Logon" extended key usage (szOID_KP_SMARTCARD_LOGON).
pub const MS_SMARTCARD_LOGON_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 20, 2, 2];

/// X.520 serialNumber attribute, which carries the person's UID.
const SERIAL_NUMBER_OID: &[u64] = &[2, 5, 4, 5];

/// Organisation name in every subject the CA writes.
pub const ORGANISATION: &str = "vsc";

/// File names inside the CA directory.
pub const ROOT_CERT_FILE: &str = "root.pem";
/// See [`ROOT_CERT_FILE`].
pub const ISSUING_CERT_FILE: &str = "issuing.pem";
/// See [`ROOT_CERT_FILE`].
pub const ROOT_KEY_FILE: &str = "root.key.sealed";
/// See [`ROOT_CERT_FILE`].
pub const ISSUING_KEY_FILE: &str = "issuing.key.sealed";

// Distinct AAD per key so the two sealed files cannot be swapped for each other.
const ROOT_KEY_AAD: &[u8] = b"vsc/ca/root-key";
const ISSUING_KEY_AAD: &[u8] = b"vsc/ca/issuing-key";

/// How far certificates are backdated, so devices with slightly slow clocks accept them.
const BACKDATE: Duration = Duration::minutes(5);
const ROOT_LIFETIME: Duration = Duration::days(20 * 365 + 5);
const ISSUING_LIFETIME: Duration = Duration::days(10 * 365 + 3);
const SERVER_LIFETIME: Duration = Duration::days(365);

/// Which certificate profile to issue to a person's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertProfile {
    /// Logging in: TLS client authentication and Windows smart card logon.
    Authentication,
    /// Signing documents and messages (non-repudiation).
    Signing,
}

/// Subject details for a person's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonSubject {
    /// The person's 12-digit UID.
    pub uid: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
}

/// A CA private key. rcgen's `KeyPair` keeps a PKCS#8 copy of the key that it only wipes when
/// asked, so this wrapper asks on drop.
struct CaKey(KeyPair);

impl Drop for CaKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        PublicKeyData::algorithm(&self.0)
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg)
    }
}

/// One CA certificate with its key.
struct CaCert {
    der: Vec<u8>,
    not_after: OffsetDateTime,
    subject_key_id: Vec<u8>,
    issuer: Issuer<'static, CaKey>,
}

impl CaCert {
    /// Pairs a certificate with its key, refusing a key that does not belong to it.
    fn new(der: Vec<u8>, key: KeyPair) -> Result<CaCert, String> {
        let key = CaKey(key);
        let cert = parse_certificate(&der).map_err(|e| e.to_string())?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err("the private key does not belong to the certificate".into());
        }
        let subject_key_id = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .ok_or("the certificate has no subject key identifier")?;
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)
            .map_err(|e| e.to_string())?;
        Ok(CaCert {
            der,
            not_after,
            subject_key_id,
            issuer,
        })
    }

    fn pkcs8(&self) -> &[u8] {
        self.issuer.key().0.serialized_der()
    }

    /// Signs a CRL. The AKI is the CA certificate's own SKI, so the CRL matches the
    /// certificate even if the SKI was not derived the way rcgen would derive it today.
    fn crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(RevokedEntry::to_rcgen)
                .collect::<Result<_, _>>()?,
            key_identifier_method: KeyIdMethod::PreSpecified(self.subject_key_id.clone()),
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }
}

/// The instance CA: an offline-style root (ECDSA P-384, 20 years, pathLen 1) and an issuing CA
/// (ECDSA P-256, 10 years, pathLen 0) signed by the root.
///
/// Both private keys are held in memory and wiped on drop; on disk they exist only sealed with
/// the [`MasterKey`].
pub struct CertificateAuthority {
    root: CaCert,
    issuing: CaCert,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("root", &format_args!("{}", self.root_fingerprint()))
            .field("issuing", &format_args!("{}", self.issuing_fingerprint()))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new root and issuing CA. `name` (e.g. "vsc Dev Instance") yields the subjects
    /// `CN=<name> Root CA, O=vsc` and `CN=<name> Issuing CA, O=vsc`.
    pub fn create(name: &str, now: OffsetDateTime) -> Result<Self, PkiError> {
        check_text("CA name", name)?;
        let not_before = now - BACKDATE;

        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let mut root = ca_params(&format!("{name} Root CA"), 1)?;
        root.not_before = not_before;
        root.not_after = now + ROOT_LIFETIME;
        let root_der = root.self_signed(&root_key)?.der().to_vec();
        let root = CaCert::new(root_der, root_key).map_err(PkiError::Certificate)?;

        let issuing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut issuing = ca_params(&format!("{name} Issuing CA"), 0)?;
        issuing.not_before = not_before;
        issuing.not_after = now + ISSUING_LIFETIME;
        issuing.use_authority_key_identifier_extension = true;
        let issuing_der = issuing
            .signed_by(&issuing_key, &root.issuer)?
            .der()
            .to_vec();
        let issuing = CaCert::new(issuing_der, issuing_key).map_err(PkiError::Certificate)?;

        Ok(CertificateAuthority { root, issuing })
    }

    /// Writes `root.pem`, `issuing.pem` (mode 0644) and `root.key.sealed`,
    /// `issuing.key.sealed` (PKCS#8 sealed with `master_key`, mode 0600) into `dir`, creating
    /// it with mode 0700 if missing. Each file is replaced atomically.
    pub fn save(&self, dir: &Path, master_key: &MasterKey) -> Result<(), PkiError> {
        fsutil::create_private_dir(dir)?;
        // Keys first: a crash part-way leaves old certificates with new keys, which `load`
        // reports as a mismatch instead of silently using the wrong pair.
        for (file, aad, ca) in [
            (ROOT_KEY_FILE, ROOT_KEY_AAD, &self.root),
            (ISSUING_KEY_FILE, ISSUING_KEY_AAD, &self.issuing),
        ] {
            let sealed = master_key.seal(aad, ca.pkcs8())?;
            fsutil::write_atomic(&dir.join(file), &sealed, 0o600)?;
        }
        fsutil::write_atomic(&dir.join(ROOT_CERT_FILE), self.root_pem().as_bytes(), 0o644)?;
        fsutil::write_atomic(
            &dir.join(ISSUING_CERT_FILE),
            self.issuing_pem().as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    /// Loads a CA saved by [`CertificateAuthority::save`]. Checks that each key belongs to its
    /// certificate and that the issuing CA is signed by the root.
    pub fn load(dir: &Path, master_key: &MasterKey) -> Result<Self, PkiError> {
        let root = load_ca_cert(
            dir,
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            ROOT_KEY_AAD,
            &PKCS_ECDSA_P384_SHA384,
            master_key,
        )?;
        let issuing = load_ca_cert(
            dir,
            ISSUING_CERT_FILE,
            ISSUING_KEY_FILE,
            ISSUING_KEY_AAD,
            &PKCS_ECDSA_P256_SHA256,
            master_key,
        )?;
        let root_cert = parse_certificate(&root.der)?;
        parse_certificate(&issuing.der)?
            .verify_signature(Some(root_cert.public_key()))
            .map_err(|_| {
                PkiError::corrupt(
                    dir.join(ISSUING_CERT_FILE),
                    format!("not signed by the key of {ROOT_CERT_FILE}"),
                )
            })?;
        Ok(CertificateAuthority { root, issuing })
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    /// The issuing CA certificate, DER.
    pub fn issuing_der(&self) -> &[u8] {
        &self.issuing.der
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> String {
        der_to_pem("CERTIFICATE", &self.root.der)
    }

    /// The issuing CA certificate, PEM.
    pub fn issuing_pem(&self) -> String {
        der_to_pem("CERTIFICATE", &self.issuing.der)
    }

    /// SHA-256 fingerprint of the root: what people compare when trusting an instance.
    pub fn root_fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.root.der)
    }

    /// SHA-256 fingerprint of the issuing CA certificate.
    pub fn issuing_fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.issuing.der)
    }

    /// Issues a TLS server certificate for the vsc server: a fresh ECDSA P-256 key, EKU
    /// serverAuth, one SAN per name (IP address if it parses as one, otherwise DNS), valid for a
    /// year (capped at the issuing CA's expiry). Returns the certificate and its PKCS#8 key.
    pub fn issue_server_certificate(
        &self,
        names: &[String],
        now: OffsetDateTime,
    ) -> Result<(IssuedCertificate, Zeroizing<Vec<u8>>), PkiError> {
        let first = names.first().ok_or_else(|| {
            PkiError::InvalidInput("a server certificate needs at least one name".into())
        })?;
        let mut params = leaf_params(now, SERVER_LIFETIME, self.issuing.not_after)?;
        params.distinguished_name = dn([
            (DnType::OrganizationName, ORGANISATION.into()),
            (
                DnType::CommonName,
                checked_text("server name", first)?.into(),
            ),
        ]);
        for name in names {
            params.subject_alt_names.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(dns_name(name)?),
            });
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

        let key = Zeroizing::new(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?);
        let cert = params.signed_by(&*key, &self.issuing.issuer)?;
        let issued = IssuedCertificate::from_der(cert.der().to_vec())?;
        Ok((issued, Zeroizing::new(key.serialized_der().to_vec())))
    }

    /// Issues a person's certificate for the key in a validated CSR.
    ///
    /// Subject: `O=vsc, CN=<given> <family>, serialNumber=<uid>`. Authentication profile: key
    /// usage digitalSignature; EKU clientAuth and Microsoft smart card logon. Signing profile:
    /// key usage digitalSignature and nonRepudiation; EKU emailProtection, so that a relying
    /// party that checks EKUs will not accept the signing certificate for logging in (without
    /// an EKU the certificate would be good for any purpose, client authentication included).
    /// Both: CRL distribution point `crl_url`, Authority Information Access naming the OCSP
    /// responder `ocsp_url`, authority and subject key identifiers, basicConstraints CA:false,
    /// random positive 128-bit serial, validity `now - 5 min .. now + validity` (capped at the
    /// issuing CA's expiry).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_person_certificate(
        &self,
        csr: &ValidatedCsr,
        profile: CertProfile,
        subject: &PersonSubject,
        validity: Duration,
        crl_url: &str,
        ocsp_url: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, PkiError> {
        if subject.uid.len() != 12 || !subject.uid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PkiError::InvalidInput(format!(
                "UID {:?} is not 12 digits",
                subject.uid
            )));
        }
        let given = checked_text("given name", &subject.given_name)?;
        let family = checked_text("family name", &subject.family_name)?;
        check_url("CRL URL", crl_url)?;
        check_url("OCSP URL", ocsp_url)?;

        let mut params = leaf_params(now, validity, self.issuing.not_after)?;
        let uid = PrintableString::try_from(subject.uid.as_str())
            .map_err(|e| PkiError::InvalidInput(e.to_string()))?;
        params.distinguished_name = dn([
            (DnType::OrganizationName, ORGANISATION.into()),
            (DnType::CommonName, format!("{given} {family}").into()),
            // X.520 defines serialNumber as a PrintableString.
            (
                DnType::CustomDnType(SERIAL_NUMBER_OID.to_vec()),
                DnValue::PrintableString(uid),
            ),
        ]);
        match profile {
            CertProfile::Authentication => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ClientAuth,
                    ExtendedKeyUsagePurpose::Other(MS_SMARTCARD_LOGON_OID.to_vec()),
                ];
            }
            CertProfile::Signing => {
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::ContentCommitment,
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
            }
        }
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![crl_url.to_owned()],
        }];
        params.custom_extensions = vec![aia_extension(ocsp_url)];
        let cert = params.signed_by(csr.public_key(), &self.issuing.issuer)?;
        IssuedCertificate::from_der(cert.der().to_vec())
    }

    /// Issues the delegated OCSP responder's certificate (RFC 6960 §4.2.2.2) for a fresh ECDSA
    /// P-256 key: subject `CN=<issuing CA's CN> OCSP Responder, O=vsc`, key usage
    /// digitalSignature, EKU id-kp-OCSPSigning only, and id-pkix-ocsp-nocheck (§4.2.2.2.1:
    /// relying parties do not ask about the responder itself, which is why its life is kept
    /// short); validity `now - 5 min .. now + validity`, capped at the issuing CA's expiry.
    /// Returns the certificate and its PKCS#8 key.
    pub fn issue_ocsp_responder_certificate(
        &self,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<(IssuedCertificate, Zeroizing<Vec<u8>>), PkiError> {
        let issuing = parse_certificate(&self.issuing.der)?;
        let issuing_cn = issuing
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("vsc Issuing CA")
            .to_owned();
        let mut params = leaf_params(now, validity, self.issuing.not_after)?;
        params.distinguished_name = dn([
            (DnType::OrganizationName, ORGANISATION.into()),
            (
                DnType::CommonName,
                format!("{issuing_cn} OCSP Responder").into(),
            ),
        ]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        // id-pkix-ocsp-nocheck's value is NULL.
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            crate::ocsp::OID_OCSP_NOCHECK,
            vec![0x05, 0x00],
        )];
        let key = Zeroizing::new(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?);
        let cert = params.signed_by(&*key, &self.issuing.issuer)?;
        let issued = IssuedCertificate::from_der(cert.der().to_vec())?;
        Ok((issued, Zeroizing::new(key.serialized_der().to_vec())))
    }

    /// DER CRL signed by the issuing CA, listing revoked person and server certificates.
    pub fn issuing_crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        self.issuing
            .crl(revoked, crl_number, this_update, next_update)
    }

    /// DER CRL signed by the root, listing revoked issuing CAs (normally empty).
    pub fn root_crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        self.root.crl(revoked, crl_number, this_update, next_update)
    }
}

fn load_ca_cert(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    aad: &[u8],
    alg: &'static SignatureAlgorithm,
    master_key: &MasterKey,
) -> Result<CaCert, PkiError> {
    let cert_path = dir.join(cert_file);
    let pem = std::fs::read_to_string(&cert_path).map_err(PkiError::io(&cert_path))?;
    let der = pem_to_der(&pem).map_err(|e| PkiError::corrupt(&cert_path, e))?;

    let key_path = dir.join(key_file);
    let sealed = std::fs::read(&key_path).map_err(PkiError::io(&key_path))?;
    let pkcs8 = master_key.open(aad, &sealed)?;
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(&pkcs8[..]), alg)
        .map_err(|e| PkiError::corrupt(&key_path, e))?;
    CaCert::new(der, key).map_err(|e| PkiError::corrupt(&cert_path, e))
}

fn ca_params(common_name: &str, path_len: u8) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = dn([
        (DnType::OrganizationName, ORGANISATION.into()),
        (DnType::CommonName, common_name.into()),
    ]);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Parameters shared by every end-entity certificate.
fn leaf_params(
    now: OffsetDateTime,
    validity: Duration,
    ca_not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    if !validity.is_positive() {
        return Err(PkiError::InvalidInput("validity must be positive".into()));
    }
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial()?);
    params.not_before = now - BACKDATE;
    // A certificate outliving its issuer would be rejected by relying parties at the end anyway.
    params.not_after = now
        .checked_add(validity)
        .map_or(ca_not_after, |end| end.min(ca_not_after));
    // ExplicitNoCa makes rcgen write basicConstraints CA:false and the subject key identifier.
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn dn<const N: usize>(entries: [(DnType, DnValue); N]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in entries {
        dn.push(ty, value);
    }
    dn
}

/// Random positive serial of 16 bytes. The top bit is cleared so the DER INTEGER needs no
/// padding byte, and the first byte is non-zero so the serial always has 32 hex digits.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Crypto("random serial"))?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

fn dns_name(name: &str) -> Result<Ia5String, PkiError> {
    let plausible = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*'));
    plausible
        .then(|| Ia5String::try_from(name).ok())
        .flatten()
        .ok_or_else(|| PkiError::InvalidInput(format!("{name:?} is not a DNS name or IP address")))
}

/// rcgen writes URIs as IA5String and panics on non-ASCII, so URLs are checked first.
pub(crate) fn check_url(what: &str, url: &str) -> Result<(), PkiError> {
    if !url.is_ascii() || url.is_empty() || url.contains(char::is_whitespace) {
        return Err(PkiError::InvalidInput(format!(
            "{what} {url:?} must be a non-empty ASCII URL"
        )));
    }
    Ok(())
}

/// Authority Information Access (RFC 5280 §4.2.2.1) with one id-ad-ocsp URL; non-critical.
pub(crate) fn aia_extension(ocsp_url: &str) -> rcgen::CustomExtension {
    rcgen::CustomExtension::from_oid_content(
        crate::ocsp::OID_AUTHORITY_INFO_ACCESS,
        crate::ocsp::aia_extension_value(ocsp_url),
    )
}

fn check_text(what: &str, value: &str) -> Result<(), PkiError> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(PkiError::InvalidInput(format!(
            "{what} {value:?} must be non-empty and free of control characters"
        )));
    }
    Ok(())
}

fn checked_text<'a>(what: &str, value: &'a str) -> Result<&'a str, PkiError> {
    check_text(what, value)?;
    Ok(value.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cert::certificate_info;
    use crate::csr::{KeyKind, validate_csr};
    use x509_parser::prelude::*;

    fn now() -> OffsetDateTime {
        ::time::macros::datetime!(2025-06-01 12:00:00 UTC)
    }

    fn person() -> PersonSubject {
        PersonSubject {
            uid: "123456789012".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
        }
    }

    fn p256_csr() -> ValidatedCsr {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        validate_csr(csr.der(), KeyKind::EcdsaP256).unwrap()
    }

    fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap()
    }

    fn aki(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn ca_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CertificateAuthority>();
    }

    #[test]
    fn created_hierarchy_has_expected_shape() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let (_, root) = X509Certificate::from_der(ca.root_der()).unwrap();
        let (_, issuing) = X509Certificate::from_der(ca.issuing_der()).unwrap();

        assert_eq!(root.subject().to_string(), "O=vsc, CN=vsc Test Root CA");
        assert_eq!(root.issuer(), root.subject());
        assert_eq!(
            issuing.subject().to_string(),
            "O=vsc, CN=vsc Test Issuing CA"
        );
        assert_eq!(issuing.issuer(), root.subject());

        let bc = root.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint == Some(1));
        let bc = issuing.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint == Some(0));
        for cert in [&root, &issuing] {
            let ku = cert.key_usage().unwrap().unwrap();
            assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
            assert!(!ku.value.digital_signature());
        }

        assert_eq!(
            root.public_key()
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .as_oid()
                .unwrap(),
            x509_parser::oid_registry::OID_NIST_EC_P384
        );
        assert_eq!(
            issuing
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .as_oid()
                .unwrap(),
            x509_parser::oid_registry::OID_EC_P256
        );
        root.verify_signature(None).unwrap();
        issuing.verify_signature(Some(root.public_key())).unwrap();
        assert_eq!(aki(&issuing), ski(&root));

        let root_years = root.validity().not_after.to_datetime().year() - now().year();
        let issuing_years = issuing.validity().not_after.to_datetime().year() - now().year();
        assert_eq!((root_years, issuing_years), (20, 10));
        assert_eq!(root.validity().not_before.to_datetime(), now() - BACKDATE);
        assert!(format!("{ca:?}").contains(&ca.root_fingerprint().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn save_load_round_trip_with_file_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let mk = MasterKey::generate();
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        ca.save(&dir, &mk).unwrap();

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(ROOT_CERT_FILE)), 0o644);
        assert_eq!(mode(&dir.join(ISSUING_CERT_FILE)), 0o644);
        assert_eq!(mode(&dir.join(ROOT_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(ISSUING_KEY_FILE)), 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 4, "no temp files left behind: {names:?}");

        let loaded = CertificateAuthority::load(&dir, &mk).unwrap();
        assert_eq!(loaded.root_fingerprint(), ca.root_fingerprint());
        assert_eq!(loaded.issuing_der(), ca.issuing_der());

        // The loaded keys really are the CA's keys: what they sign chains to the original.
        let cert = loaded
            .issue_person_certificate(
                &p256_csr(),
                CertProfile::Authentication,
                &person(),
                Duration::days(30),
                "http://vsc.test/crl",
                "http://vsc.test/ocsp",
                now(),
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&cert.der).unwrap();
        let (_, issuing) = X509Certificate::from_der(ca.issuing_der()).unwrap();
        cert.verify_signature(Some(issuing.public_key())).unwrap();

        // Saving again over an existing CA works (atomic replace).
        loaded.save(&dir, &mk).unwrap();
        CertificateAuthority::load(&dir, &mk).unwrap();
    }

    #[test]
    fn load_detects_tampering_wrong_key_and_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mk = MasterKey::generate();
        CertificateAuthority::create("vsc Test", now())
            .unwrap()
            .save(dir, &mk)
            .unwrap();

        assert!(matches!(
            CertificateAuthority::load(dir, &MasterKey::generate()),
            Err(PkiError::Sealed)
        ));

        let key_path = dir.join(ISSUING_KEY_FILE);
        let original = std::fs::read(&key_path).unwrap();
        let mut tampered = original.clone();
        tampered[40] ^= 0x80;
        std::fs::write(&key_path, &tampered).unwrap();
        assert!(matches!(
            CertificateAuthority::load(dir, &mk),
            Err(PkiError::Sealed)
        ));

        // Each key is bound to its role, so the files cannot be swapped.
        std::fs::copy(dir.join(ROOT_KEY_FILE), &key_path).unwrap();
        assert!(matches!(
            CertificateAuthority::load(dir, &mk),
            Err(PkiError::Sealed)
        ));
        std::fs::write(&key_path, &original).unwrap();
        CertificateAuthority::load(dir, &mk).unwrap();

        // A certificate from a different CA does not match the stored key.
        let other = CertificateAuthority::create("vsc Other", now()).unwrap();
        std::fs::write(dir.join(ISSUING_CERT_FILE), other.issuing_pem()).unwrap();
        let err = CertificateAuthority::load(dir, &mk).unwrap_err();
        assert!(
            matches!(&err, PkiError::CorruptFile { path, .. } if path.ends_with(ISSUING_CERT_FILE)),
            "{err}"
        );

        std::fs::write(dir.join(ISSUING_CERT_FILE), "not pem").unwrap();
        let err = CertificateAuthority::load(dir, &mk).unwrap_err();
        assert!(err.to_string().contains(ISSUING_CERT_FILE), "{err}");

        std::fs::remove_file(dir.join(ROOT_KEY_FILE)).unwrap();
        let err = CertificateAuthority::load(dir, &mk).unwrap_err();
        assert!(
            matches!(&err, PkiError::Io { path, .. } if path.ends_with(ROOT_KEY_FILE)),
            "{err}"
        );
        assert!(err.to_string().contains(ROOT_KEY_FILE), "{err}");
    }

    #[test]
    fn person_certificates_follow_the_profiles() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let (_, issuing) = X509Certificate::from_der(ca.issuing_der()).unwrap();
        let csr = p256_csr();
        let crl_url = "http://vsc.test/crl/issuing.crl";
        let smartcard_oid = x509_parser::der_parser::oid!(1.3.6.1.4.1.311.20.2.2);

        for profile in [CertProfile::Authentication, CertProfile::Signing] {
            let issued = ca
                .issue_person_certificate(
                    &csr,
                    profile,
                    &person(),
                    Duration::days(365),
                    crl_url,
                    "http://vsc.test/ocsp",
                    now(),
                )
                .unwrap();
            let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
            cert.verify_signature(Some(issuing.public_key())).unwrap();

            assert_eq!(
                cert.subject().to_string(),
                "O=vsc, CN=Ada Lovelace, serialNumber=123456789012"
            );
            assert_eq!(cert.issuer(), issuing.subject());
            assert_eq!(cert.public_key().raw, csr.spki_der.as_slice());

            let info = certificate_info(&issued.der).unwrap();
            assert_eq!(info.serial_hex, issued.serial_hex);
            assert_eq!(info.spki_der, csr.spki_der);
            assert_eq!(info.subject_serial_number.as_deref(), Some("123456789012"));
            assert_eq!(issued.serial_hex.len(), 32);
            assert_eq!(cert.raw_serial().len(), 16, "positive without padding");
            assert_eq!(issued.not_before, now() - Duration::minutes(5));
            assert_eq!(issued.not_after, now() + Duration::days(365));

            let bc = cert.basic_constraints().unwrap().unwrap();
            assert!(bc.critical && !bc.value.ca);
            assert_eq!(aki(&cert), ski(&issuing));
            assert!(!ski(&cert).is_empty());
            let dp = cert
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::CRLDistributionPoints(dps) => Some(format!("{dps:?}")),
                    _ => None,
                })
                .unwrap();
            assert!(dp.contains(crl_url), "{dp}");
            assert_eq!(
                crate::ocsp::ocsp_urls(&issued.der).unwrap(),
                ["http://vsc.test/ocsp"]
            );

            let ku = cert.key_usage().unwrap().unwrap();
            assert!(ku.critical && ku.value.digital_signature());
            assert!(!ku.value.key_cert_sign() && !ku.value.key_encipherment());
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            match profile {
                CertProfile::Authentication => {
                    assert!(!ku.value.non_repudiation());
                    assert!(eku.client_auth && !eku.email_protection && !eku.any);
                    assert_eq!(eku.other, vec![smartcard_oid.clone()]);
                }
                CertProfile::Signing => {
                    assert!(ku.value.non_repudiation());
                    assert!(eku.email_protection && !eku.client_auth && !eku.any);
                    assert!(eku.other.is_empty());
                }
            }
        }
    }

    #[test]
    fn person_certificate_validity_is_capped_at_issuing_ca_expiry() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let issuing_not_after = certificate_info(ca.issuing_der()).unwrap().not_after;
        for validity in [Duration::days(365 * 50), Duration::MAX] {
            let issued = ca
                .issue_person_certificate(
                    &p256_csr(),
                    CertProfile::Signing,
                    &person(),
                    validity,
                    "http://vsc.test/crl",
                    "http://vsc.test/ocsp",
                    now(),
                )
                .unwrap();
            assert_eq!(issued.not_after, issuing_not_after);
        }
    }

    #[test]
    fn person_certificate_inputs_are_checked() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let csr = p256_csr();
        let issue = |subject: &PersonSubject, validity: Duration, url: &str| {
            ca.issue_person_certificate(
                &csr,
                CertProfile::Authentication,
                subject,
                validity,
                url,
                "http://vsc.test/ocsp",
                now(),
            )
        };
        let ok = person();
        for uid in [
            "12345678901",
            "1234567890123",
            "12345678901a",
            "١٢٣٤٥٦٧٨٩٠١٢",
        ] {
            let s = PersonSubject {
                uid: uid.into(),
                ..ok.clone()
            };
            assert!(
                matches!(
                    issue(&s, Duration::days(1), "http://x/crl"),
                    Err(PkiError::InvalidInput(_))
                ),
                "{uid}"
            );
        }
        let s = PersonSubject {
            given_name: "  ".into(),
            ..ok.clone()
        };
        assert!(matches!(
            issue(&s, Duration::days(1), "http://x/crl"),
            Err(PkiError::InvalidInput(_))
        ));
        let s = PersonSubject {
            family_name: "Love\nlace".into(),
            ..ok.clone()
        };
        assert!(matches!(
            issue(&s, Duration::days(1), "http://x/crl"),
            Err(PkiError::InvalidInput(_))
        ));
        for url in ["", "http://é/crl", "http://x/ crl"] {
            assert!(
                matches!(
                    issue(&ok, Duration::days(1), url),
                    Err(PkiError::InvalidInput(_))
                ),
                "{url}"
            );
        }
        assert!(matches!(
            issue(&ok, Duration::ZERO, "http://x/crl"),
            Err(PkiError::InvalidInput(_))
        ));
        // Non-ASCII names are fine (UTF8String).
        let s = PersonSubject {
            given_name: "Siân".into(),
            family_name: "Ó Súilleabháin".into(),
            ..ok
        };
        let issued = issue(&s, Duration::days(1), "http://x/crl").unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        assert!(
            cert.subject()
                .to_string()
                .contains("CN=Siân Ó Súilleabháin")
        );
    }

    #[test]
    fn rsa_csr_gets_a_certificate() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let key =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let csr = validate_csr(csr.der(), KeyKind::Rsa2048).unwrap();
        let issued = ca
            .issue_person_certificate(
                &csr,
                CertProfile::Authentication,
                &person(),
                Duration::days(30),
                "http://x/crl",
                "http://vsc.test/ocsp",
                now(),
            )
            .unwrap();
        assert_eq!(
            certificate_info(&issued.der).unwrap().spki_der,
            csr.spki_der
        );
    }

    #[test]
    fn server_certificate_has_sans_eku_and_matching_key() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let names = vec![
            "vsc.example.nhs.uk".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let (issued, key) = ca.issue_server_certificate(&names, now()).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        let (_, issuing) = X509Certificate::from_der(ca.issuing_der()).unwrap();
        cert.verify_signature(Some(issuing.public_key())).unwrap();
        assert_eq!(cert.subject().to_string(), "O=vsc, CN=vsc.example.nhs.uk");
        assert_eq!(issued.not_after, now() + Duration::days(365));

        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let sans: Vec<String> = san.general_names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            sans,
            [
                "DNSName(vsc.example.nhs.uk)",
                "IPAddress(7f:00:00:01)",
                "IPAddress(00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01)"
            ]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);

        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(&key[..]),
            &PKCS_ECDSA_P256_SHA256,
        )
        .unwrap();
        assert_eq!(key.subject_public_key_info(), cert.public_key().raw);

        assert!(matches!(
            ca.issue_server_certificate(&[], now()),
            Err(PkiError::InvalidInput(_))
        ));
        for bad in ["bad name", "bad\u{0}", "", "é.example"] {
            assert!(
                matches!(
                    ca.issue_server_certificate(&["ok.example".to_owned(), bad.to_owned()], now()),
                    Err(PkiError::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn crls_list_revoked_serials_and_verify() {
        let ca = CertificateAuthority::create("vsc Test", now()).unwrap();
        let issued = ca
            .issue_person_certificate(
                &p256_csr(),
                CertProfile::Authentication,
                &person(),
                Duration::days(30),
                "http://x/crl",
                "http://vsc.test/ocsp",
                now(),
            )
            .unwrap();
        let compromised_since = now() - Duration::hours(5);
        let revoked = [
            RevokedEntry::new(issued.serial_hex.to_uppercase(), now()),
            RevokedEntry {
                reason: crate::RevocationReason::KeyCompromise,
                invalidity_date: Some(compromised_since),
                ..RevokedEntry::new("0a", now())
            },
            RevokedEntry {
                reason: crate::RevocationReason::AffiliationChanged,
                ..RevokedEntry::new("0b", now())
            },
        ];
        let der = ca
            .issuing_crl(&revoked, 7, now(), now() + Duration::days(7))
            .unwrap();
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let (_, issuing) = X509Certificate::from_der(ca.issuing_der()).unwrap();
        crl.verify_signature(issuing.public_key()).unwrap();
        assert_eq!(crl.issuer(), issuing.subject());
        assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("7".into()));
        let listed: Vec<(String, Option<u8>, Option<i64>)> = crl
            .iter_revoked_certificates()
            .map(|r| {
                (
                    crate::cert::serial_to_hex(r.raw_serial()),
                    r.reason_code().map(|(_, c)| c.0),
                    r.invalidity_date().map(|(_, t)| t.timestamp()),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (issued.serial_hex.clone(), None, None),
                (
                    "0a".into(),
                    Some(1),
                    Some(compromised_since.unix_timestamp())
                ),
                ("0b".into(), Some(3), None),
            ]
        );

        let der = ca
            .root_crl(&[], 1, now(), now() + Duration::days(365))
            .unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        let (_, root) = X509Certificate::from_der(ca.root_der()).unwrap();
        crl.verify_signature(root.public_key()).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 0);

        assert!(matches!(
            ca.issuing_crl(
                &[RevokedEntry::new("zz", now())],
                1,
                now(),
                now() + Duration::days(1)
            ),
            Err(PkiError::InvalidInput(_))
        ));
        assert!(
            ca.issuing_crl(&[], 1, now(), now()).is_err(),
            "nextUpdate must follow thisUpdate"
        );
    }
}

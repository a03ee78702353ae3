//! Validation of certificate signing requests sent by phones.
//!
//! Only the public key is taken from a CSR. The subject, extensions and any other requested
//! attributes are ignored: the server decides what goes into a certificate, so a phone cannot
//! ask for a different name or extra powers. What the CSR does prove is possession of the
//! private key, because it is signed with it.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::pem;
use rustls_pki_types::pem::SectionKind;

/// Expected key of a CSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on NIST P-256 (secp256r1), uncompressed point.
    EcdsaP256,
    /// RSA with a modulus of at least 2048 bits and public exponent 65537.
    Rsa2048,
}

impl KeyKind {
    fn describe(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::Rsa2048 => "RSA (2048 bits or more)",
        }
    }
}

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits; aws-lc-rs verification stops here.
pub const MAX_RSA_BITS: usize = 8192;

/// A CSR whose self-signature (proof of possession) verified and whose key is of the expected
/// kind and strength.
#[derive(Clone, Debug)]
pub struct ValidatedCsr {
    /// The CSR as received (DER, even if it arrived as PEM).
    pub der: Vec<u8>,
    /// The DER SubjectPublicKeyInfo of the requested key.
    pub spki_der: Vec<u8>,
    /// The kind of key, as checked.
    pub key_kind: KeyKind,
    public_key: rcgen::SubjectPublicKeyInfo,
}

impl ValidatedCsr {
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo: identifies the key independent of any
    /// certificate issued for it.
    pub fn spki_sha256_hex(&self) -> String {
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &self.spki_der,
        ))
    }

    pub(crate) fn public_key(&self) -> &rcgen::SubjectPublicKeyInfo {
        &self.public_key
    }
}

/// Why a CSR was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// Not parseable as a PKCS#10 request.
    #[error("the CSR is not a well-formed PKCS#10 request: {0}")]
    Malformed(String),
    /// The self-signature does not verify with the enclosed public key.
    #[error("the CSR's signature does not verify (proof of possession failed)")]
    ProofOfPossession,
    /// The key is of the right type but too weak (e.g. RSA 1024 bits, exponent 3).
    #[error("the CSR's key is too weak: {0}")]
    WeakKey(String),
    /// The key is of a different type than required.
    #[error("the CSR carries a {found} key where a {expected} key is required")]
    WrongKeyType {
        /// The key type required.
        expected: String,
        /// The key type found.
        found: String,
    },
    /// The CSR is signed with an algorithm vsc does not accept (e.g. SHA-1), or uses a key
    /// encoding or size outside what vsc supports.
    #[error("the CSR uses an unsupported algorithm or encoding: {0}")]
    Unsupported(String),
}

/// Parses a CSR (DER, or PEM with label `CERTIFICATE REQUEST`), checks that its key is of the
/// `expected` kind and strength, and verifies its self-signature.
///
/// The key is checked before the signature so a weak key is reported as such rather than as a
/// signature failure (aws-lc-rs refuses to verify with RSA keys under 2048 bits).
pub fn validate_csr(der_or_pem: &[u8], expected: KeyKind) -> Result<ValidatedCsr, CsrError> {
    let der = decode_input(der_or_pem)?;
    let (rest, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(
            "trailing data after the request".into(),
        ));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CsrError::Malformed(format!(
            "unknown version {}",
            info.version.0
        )));
    }
    let spki = &info.subject_pki;
    check_key(spki, expected)?;
    check_signature_algorithm(&csr, expected)?;
    csr.verify_signature()
        .map_err(|_| CsrError::ProofOfPossession)?;

    let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| CsrError::Malformed(format!("unusable public key encoding: {e}")))?;
    let spki_der = spki.raw.to_vec();
    Ok(ValidatedCsr {
        der,
        spki_der,
        key_kind: expected,
        public_key,
    })
}

/// Checks a bare SubjectPublicKeyInfo (DER) for the `expected` key kind, for keys that arrive
/// without a CSR (a phone's device channel key). Returns the DER unchanged.
pub fn validate_public_key(spki_der: &[u8], expected: KeyKind) -> Result<Vec<u8>, CsrError> {
    let (rest, spki) =
        SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(
            "trailing data after the public key".into(),
        ));
    }
    check_key(&spki, expected)?;
    Ok(spki_der.to_vec())
}

fn decode_input(der_or_pem: &[u8]) -> Result<Vec<u8>, CsrError> {
    if !der_or_pem.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(der_or_pem.to_vec());
    }
    let text = std::str::from_utf8(der_or_pem)
        .map_err(|_| CsrError::Malformed("PEM input is not valid text".into()))?;
    // Some older tools label a CSR "NEW CERTIFICATE REQUEST" (RFC 7468, section 7), which
    // rustls-pki-types does not know and would skip; read it as the standard label.
    let text = text
        .replace(
            "-----BEGIN NEW CERTIFICATE REQUEST-----",
            "-----BEGIN CERTIFICATE REQUEST-----",
        )
        .replace(
            "-----END NEW CERTIFICATE REQUEST-----",
            "-----END CERTIFICATE REQUEST-----",
        );
    let (kind, der) = pem::parse_first(&text).map_err(|e| CsrError::Malformed(e.to_string()))?;
    match kind {
        SectionKind::Csr => Ok(der),
        other => Err(CsrError::Malformed(format!(
            "PEM block is a {:?}, not a CERTIFICATE REQUEST",
            pem::label(other)
        ))),
    }
}

fn check_key(spki: &SubjectPublicKeyInfo<'_>, expected: KeyKind) -> Result<(), CsrError> {
    let wrong = |found: String| CsrError::WrongKeyType {
        expected: expected.describe().to_owned(),
        found,
    };
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CsrError::Malformed("EC key without a named curve".into()))?;
        if curve != OID_EC_P256 {
            let name = if curve == OID_NIST_EC_P384 {
                "ECDSA P-384".to_owned()
            } else {
                format!("EC (curve {curve})")
            };
            return Err(wrong(name));
        }
        if expected != KeyKind::EcdsaP256 {
            return Err(wrong(KeyKind::EcdsaP256.describe().to_owned()));
        }
        // Compressed points are optional in RFC 5480 and not every relying party handles them.
        let point = &spki.subject_public_key.data;
        if point.len() != 65 || point[0] != 0x04 {
            return Err(CsrError::Unsupported(
                "the P-256 public key must be an uncompressed point".into(),
            ));
        }
        Ok(())
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(CsrError::Malformed("unparseable RSA public key".into()));
        };
        let bits = bit_length(rsa.modulus);
        if expected != KeyKind::Rsa2048 {
            return Err(wrong(format!("RSA {bits}-bit")));
        }
        if bits < MIN_RSA_BITS {
            return Err(CsrError::WeakKey(format!(
                "RSA modulus of {bits} bits; at least {MIN_RSA_BITS} are required"
            )));
        }
        if bits > MAX_RSA_BITS {
            return Err(CsrError::Unsupported(format!(
                "RSA modulus of {bits} bits; at most {MAX_RSA_BITS} are supported"
            )));
        }
        match rsa.try_exponent() {
            Ok(65537) => Ok(()),
            Ok(e) => Err(CsrError::WeakKey(format!(
                "RSA public exponent {e}; only 65537 is accepted"
            ))),
            Err(_) => Err(CsrError::WeakKey(
                "RSA public exponent out of range; only 65537 is accepted".into(),
            )),
        }
    } else if *alg == OID_PKCS1_RSASSAPSS {
        Err(wrong("RSASSA-PSS-only RSA".into()))
    } else if *alg == OID_SIG_ED25519 {
        Err(wrong("Ed25519".into()))
    } else {
        Err(wrong(format!("unrecognised ({alg})")))
    }
}

fn check_signature_algorithm(
    csr: &X509CertificationRequest<'_>,
    key: KeyKind,
) -> Result<(), CsrError> {
    let alg = &csr.signature_algorithm.algorithm;
    let allowed = match key {
        KeyKind::EcdsaP256 => [OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384].contains(alg),
        KeyKind::Rsa2048 => [
            OID_PKCS1_SHA256WITHRSA,
            OID_PKCS1_SHA384WITHRSA,
            OID_PKCS1_SHA512WITHRSA,
            OID_PKCS1_RSASSAPSS,
        ]
        .contains(alg),
    };
    if allowed {
        Ok(())
    } else {
        Err(CsrError::Unsupported(format!(
            "signature algorithm {alg} with a {} key (SHA-256 or stronger is required)",
            key.describe()
        )))
    }
}

/// Bit length of a big-endian unsigned integer, ignoring leading zeros.
fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384};

    fn p256_csr() -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    fn rsa2048_csr() -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = rsa.as_der().unwrap();
        let key =
            KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_ref().into(), &rcgen::PKCS_RSA_SHA256)
                .unwrap();
        // Requested extensions must be ignored, not copied.
        let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    fn data(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn accepts_good_p256_csr_der_and_pem() {
        let der = p256_csr();
        let v = validate_csr(&der, KeyKind::EcdsaP256).unwrap();
        assert_eq!(v.der, der);
        assert_eq!(v.key_kind, KeyKind::EcdsaP256);
        assert_eq!(v.spki_sha256_hex().len(), 64);
        assert_eq!(
            rcgen::PublicKeyData::subject_public_key_info(v.public_key()),
            v.spki_der
        );

        let pem = crate::der_to_pem("CERTIFICATE REQUEST", &der);
        let v2 = validate_csr(pem.as_bytes(), KeyKind::EcdsaP256).unwrap();
        assert_eq!(v2.der, der);
        assert_eq!(v2.spki_sha256_hex(), v.spki_sha256_hex());

        // The legacy label is still read.
        let legacy = crate::der_to_pem("NEW CERTIFICATE REQUEST", &der);
        let v3 = validate_csr(legacy.as_bytes(), KeyKind::EcdsaP256).unwrap();
        assert_eq!(v3.der, der);
    }

    #[test]
    fn accepts_good_rsa2048_csr() {
        let v = validate_csr(&rsa2048_csr(), KeyKind::Rsa2048).unwrap();
        assert_eq!(v.key_kind, KeyKind::Rsa2048);
        assert_eq!(
            rcgen::PublicKeyData::subject_public_key_info(v.public_key()),
            v.spki_der
        );
    }

    #[test]
    fn accepts_openssl_csr_with_extensions_rcgen_cannot_parse() {
        validate_csr(&data("p256-openssl.csr.pem"), KeyKind::EcdsaP256).unwrap();
    }

    #[test]
    fn tampered_signature_fails_proof_of_possession() {
        let mut der = p256_csr();
        // The signature BIT STRING ends the structure, so the last byte belongs to it.
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert!(matches!(
            validate_csr(&der, KeyKind::EcdsaP256),
            Err(CsrError::ProofOfPossession)
        ));
    }

    #[test]
    fn tampered_request_info_fails_proof_of_possession() {
        let der = p256_csr();
        let mut tampered = der.clone();
        // "rcgen self signed cert" is the default CN; change one letter of it.
        let pos = der.windows(5).position(|w| w == b"rcgen").unwrap();
        tampered[pos] = b'R';
        assert!(matches!(
            validate_csr(&tampered, KeyKind::EcdsaP256),
            Err(CsrError::ProofOfPossession)
        ));
    }

    #[test]
    fn bare_public_keys_are_checked_like_csr_keys() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let spki = rcgen::PublicKeyData::subject_public_key_info(&p256);
        assert_eq!(
            validate_public_key(&spki, KeyKind::EcdsaP256).expect("valid"),
            spki
        );
        assert!(matches!(
            validate_public_key(&spki, KeyKind::Rsa2048),
            Err(CsrError::WrongKeyType { .. })
        ));
        assert!(matches!(
            validate_public_key(b"junk", KeyKind::EcdsaP256),
            Err(CsrError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b""[..],
            b"garbage",
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(
                matches!(
                    validate_csr(bad, KeyKind::EcdsaP256),
                    Err(CsrError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        let mut trailing = p256_csr();
        trailing.push(0);
        assert!(matches!(
            validate_csr(&trailing, KeyKind::EcdsaP256),
            Err(CsrError::Malformed(_))
        ));
        let cert_pem = crate::der_to_pem("CERTIFICATE", &p256_csr());
        assert!(matches!(
            validate_csr(cert_pem.as_bytes(), KeyKind::EcdsaP256),
            Err(CsrError::Malformed(m)) if m == "PEM block is a \"CERTIFICATE\", not a CERTIFICATE REQUEST"
        ));
    }

    #[test]
    fn wrong_key_types_are_named() {
        let err = validate_csr(&rsa2048_csr(), KeyKind::EcdsaP256).unwrap_err();
        assert!(
            matches!(&err, CsrError::WrongKeyType { expected, found }
                if expected == "ECDSA P-256" && found == "RSA 2048-bit"),
            "{err}"
        );
        let err = validate_csr(&p256_csr(), KeyKind::Rsa2048).unwrap_err();
        assert!(matches!(err, CsrError::WrongKeyType { .. }), "{err}");

        let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&p384)
            .unwrap();
        let err = validate_csr(csr.der(), KeyKind::EcdsaP256).unwrap_err();
        assert!(
            matches!(&err, CsrError::WrongKeyType { found, .. } if found == "ECDSA P-384"),
            "{err}"
        );
    }

    #[test]
    fn weak_rsa_keys_are_rejected() {
        let err = validate_csr(&data("rsa1024.csr.pem"), KeyKind::Rsa2048).unwrap_err();
        assert!(
            matches!(&err, CsrError::WeakKey(m) if m.contains("1024")),
            "{err}"
        );
        let err = validate_csr(&data("rsa2048-e3.csr.pem"), KeyKind::Rsa2048).unwrap_err();
        assert!(
            matches!(&err, CsrError::WeakKey(m) if m.contains("exponent 3")),
            "{err}"
        );
    }

    #[test]
    fn sha1_signature_is_rejected() {
        let err = validate_csr(&data("p256-sha1.csr.pem"), KeyKind::EcdsaP256).unwrap_err();
        assert!(matches!(err, CsrError::Unsupported(_)), "{err}");
    }

    #[test]
    fn bit_length_counts_significant_bits() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01, 0xff]), 9);
    }
}

//! PKCS#10 certificate requests whose signature is made elsewhere: the browser's WebCrypto
//! holds the app's authentication and signing keys non-extractable, so the core builds the
//! `CertificationRequestInfo` for the key's SubjectPublicKeyInfo, WebCrypto signs it, and the
//! core assembles the request. WebCrypto's ECDSA signatures are IEEE P1363 (`r ‖ s`); X.509
//! wants DER, hence [`ecdsa_p1363_to_der`].

use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

/// Why a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// The public key is not a DER SubjectPublicKeyInfo.
    #[error("the public key is not a DER SubjectPublicKeyInfo")]
    BadSpki,
    /// The request info is not what [`certification_request_info`] makes.
    #[error("the certificate request info is not DER")]
    BadInfo,
    /// The algorithm is neither `ecdsa-p256-sha256` nor `rsa-sha256`.
    #[error("unknown signature algorithm '{0}' (expected ecdsa-p256-sha256 or rsa-sha256)")]
    Algorithm(String),
    /// The ECDSA signature is not 64 bytes of `r ‖ s`, or not valid DER.
    #[error("the ECDSA signature is not a P-256 signature ({0})")]
    BadSignature(String),
    /// The common name is empty or too long.
    #[error("the common name must be 1 to 64 characters")]
    CommonName,
}

/// The signature algorithm of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrAlgorithm {
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), signature DER `Ecdsa-Sig-Value`.
    EcdsaP256Sha256,
    /// sha256WithRSAEncryption (1.2.840.113549.1.1.11), PKCS#1 v1.5.
    RsaSha256,
}

impl std::str::FromStr for CsrAlgorithm {
    type Err = CsrError;
    fn from_str(s: &str) -> Result<Self, CsrError> {
        match s {
            "ecdsa-p256-sha256" => Ok(CsrAlgorithm::EcdsaP256Sha256),
            "rsa-sha256" => Ok(CsrAlgorithm::RsaSha256),
            other => Err(CsrError::Algorithm(other.to_owned())),
        }
    }
}

const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_RSA_SHA256: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];

/// Checks that `der` is one whole DER SEQUENCE (what an SPKI or an info is at the top).
fn one_sequence(der: &[u8]) -> bool {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            // Skip the contents: only the framing matters here.
            while r.read_optional(|r| r.read_der().map(|_| ()))?.is_some() {}
            Ok(())
        })
    })
    .is_ok()
}

/// The DER `CertificationRequestInfo` (RFC 2986) for `spki_der` with subject `CN=common_name`
/// and no attributes: the bytes the key signs.
pub fn certification_request_info(spki_der: &[u8], common_name: &str) -> Result<Vec<u8>, CsrError> {
    if common_name.is_empty() || common_name.chars().count() > 64 {
        return Err(CsrError::CommonName);
    }
    if !one_sequence(spki_der) {
        return Err(CsrError::BadSpki);
    }
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            write_name(w.next(), common_name);
            w.next().write_der(spki_der);
            // attributes [0] IMPLICIT SET OF Attribute: present and empty.
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_set(|_| {}));
        });
    }))
}

fn write_name(w: DERWriter<'_>, common_name: &str) {
    w.write_sequence(|w| {
        w.next().write_set(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(OID_CN));
                w.next().write_utf8_string(common_name);
            });
        });
    });
}

/// The DER `CertificationRequest`: `info`, the algorithm, and `signature` (for ECDSA the DER
/// `Ecdsa-Sig-Value`, for RSA the PKCS#1 v1.5 signature).
pub fn assemble(
    info: &[u8],
    algorithm: CsrAlgorithm,
    signature: &[u8],
) -> Result<Vec<u8>, CsrError> {
    if !one_sequence(info) {
        return Err(CsrError::BadInfo);
    }
    if algorithm == CsrAlgorithm::EcdsaP256Sha256 {
        p256::ecdsa::Signature::from_der(signature)
            .map_err(|e| CsrError::BadSignature(e.to_string()))?;
    }
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(info);
            w.next().write_sequence(|w| match algorithm {
                CsrAlgorithm::EcdsaP256Sha256 => {
                    // RFC 5758: the parameters are absent for ECDSA.
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_ECDSA_SHA256));
                }
                CsrAlgorithm::RsaSha256 => {
                    // RFC 4055: NULL parameters for PKCS#1 v1.5.
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_RSA_SHA256));
                    w.next().write_null();
                }
            });
            w.next().write_bitvec_bytes(signature, signature.len() * 8);
        });
    }))
}

/// An ECDSA P-256 signature as WebCrypto returns it (IEEE P1363: 32-byte `r` then 32-byte `s`)
/// as DER `Ecdsa-Sig-Value`, what X.509, PKCS#10 and the server expect.
pub fn ecdsa_p1363_to_der(p1363: &[u8]) -> Result<Vec<u8>, CsrError> {
    let signature = p256::ecdsa::Signature::from_slice(p1363)
        .map_err(|_| CsrError::BadSignature(format!("{} bytes, expected 64", p1363.len())))?;
    Ok(signature.to_der().as_bytes().to_vec())
}

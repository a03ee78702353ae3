//! OCSP (RFC 6960) in DER: what the server's responder reads and writes, and what a relying
//! party (`vsc eps verify --ocsp`) sends and checks.
//!
//! * The responder side: [`parse_request`] reads an `OCSPRequest` (SHA-1 or SHA-256 `CertID`s, the
//!   nonce extension of RFC 8954), [`IssuerHashes`] tells whether a `CertID` names the issuing
//!   CA, and [`Responder::sign`] writes a `BasicOCSPResponse` signed by the delegated responder
//!   key, `responderID` by key hash, the responder certificate in `certs`, the nonce echoed;
//!   [`error_response`] writes the unsigned refusals (`malformedRequest`, `unauthorized`, …).
//! * The relying-party side: [`build_request`] and [`verify_response`], which checks the whole
//!   answer — signature, signer (the CA itself, or a certificate the CA issued with
//!   `id-kp-OCSPSigning`), `CertID`, `thisUpdate`/`nextUpdate` and the nonce — before it returns a
//!   status.
//!
//! ASN.1 is read and written with yasna (already rcgen's DER writer, so no second codec);
//! certificates are read with x509-parser and signatures checked by aws-lc-rs, as everywhere in
//! vsc. The delegated responder certificate itself is issued by
//! [`CertificateAuthority::issue_ocsp_responder_certificate`](crate::CertificateAuthority::issue_ocsp_responder_certificate).

use aws_lc_rs::digest;
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{ASN1Error, ASN1ErrorKind, ASN1Result, BERReader, DERWriter, Tag};
use zeroize::Zeroize;

use crate::cert::{parse_certificate, serial_to_hex};

/// `id-pkix-ocsp-basic`: the one response type.
const OID_OCSP_BASIC: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 1];
/// `id-pkix-ocsp-nonce` (RFC 8954).
const OID_OCSP_NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
/// `id-pkix-ocsp-nocheck`: relying parties need not check the responder certificate itself.
pub const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
/// `id-ad-ocsp`: the access method of an AIA entry naming the OCSP responder.
pub const OID_AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
/// `id-pe-authorityInfoAccess`.
pub const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// `invalidityDate` (RFC 5280 §5.3.2), a CRL entry extension, which OCSP carries as a
/// `singleExtension` (RFC 6960 §4.4.5), so relying parties see the same date as in the CRL.
const OID_INVALIDITY_DATE: &[u64] = &[2, 5, 29, 24];
const OID_SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_ECDSA_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
const OID_RSA_SHA256: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];

/// The most `CertID`s one request may ask about (RFC 5019 clients send one).
pub const MAX_REQUESTS: usize = 16;
/// Longest nonce accepted and echoed (RFC 8954: responders must accept 16 to 32 octets).
pub const MAX_NONCE_LEN: usize = 32;
/// How far a relying party's clock may be behind or ahead of the responder's.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);
/// How old a response without `nextUpdate` may be and still be believed.
pub const MAX_AGE_WITHOUT_NEXT_UPDATE: Duration = Duration::hours(1);

/// Everything that can go wrong reading, writing or checking OCSP messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OcspError {
    /// The bytes are not the DER structure they should be.
    #[error("malformed OCSP {what}: {detail}")]
    Malformed {
        /// Request or response.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A certificate given to build or check a message could not be read.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The responder answered with an error status instead of a response.
    #[error("the OCSP responder refused the request: {0}")]
    Refused(ResponseStatus),
    /// The response is signed by nobody the issuing CA authorised.
    #[error("the OCSP response's signer is not authorised: {0}")]
    UnauthorisedSigner(String),
    /// The response's signature does not verify.
    #[error("the OCSP response's signature does not verify with {0}")]
    BadSignature(String),
    /// The response says nothing about the certificate asked about.
    #[error("the OCSP response has no answer for certificate serial {0}")]
    NoAnswer(String),
    /// The answer is too old or from the future.
    #[error("the OCSP response is not current: {0}")]
    NotCurrent(String),
    /// The nonce sent did not come back.
    #[error("the OCSP response does not carry the request's nonce (a replayed response?)")]
    NonceMissing,
    /// A different nonce came back.
    #[error("the OCSP response carries a different nonce than the request (a replayed response?)")]
    NonceMismatch,
    /// Signing the response failed.
    #[error("cannot sign the OCSP response: {0}")]
    Signing(String),
}

fn malformed(what: &'static str) -> impl Fn(ASN1Error) -> OcspError {
    move |e| OcspError::Malformed {
        what,
        detail: e.to_string(),
    }
}

fn invalid() -> ASN1Error {
    ASN1Error::new(ASN1ErrorKind::Invalid)
}

/// `OCSPResponseStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// A response follows.
    Successful,
    /// The request did not parse or made no sense.
    MalformedRequest,
    /// The responder failed inside.
    InternalError,
    /// Try again later.
    TryLater,
    /// The request must be signed.
    SigRequired,
    /// The responder cannot answer for this certificate's issuer.
    Unauthorized,
}

impl ResponseStatus {
    /// The ENUMERATED value.
    pub fn code(self) -> i64 {
        match self {
            ResponseStatus::Successful => 0,
            ResponseStatus::MalformedRequest => 1,
            ResponseStatus::InternalError => 2,
            ResponseStatus::TryLater => 3,
            ResponseStatus::SigRequired => 5,
            ResponseStatus::Unauthorized => 6,
        }
    }

    fn from_code(code: i64) -> Option<ResponseStatus> {
        Some(match code {
            0 => ResponseStatus::Successful,
            1 => ResponseStatus::MalformedRequest,
            2 => ResponseStatus::InternalError,
            3 => ResponseStatus::TryLater,
            5 => ResponseStatus::SigRequired,
            6 => ResponseStatus::Unauthorized,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ResponseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponseStatus::Successful => "successful",
            ResponseStatus::MalformedRequest => "malformedRequest",
            ResponseStatus::InternalError => "internalError",
            ResponseStatus::TryLater => "tryLater",
            ResponseStatus::SigRequired => "sigRequired",
            ResponseStatus::Unauthorized => "unauthorized",
        })
    }
}

/// The hash a `CertID` uses for the issuer's name and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdHash {
    /// SHA-1: what `openssl ocsp` and most clients send (RFC 5019 requires it of responders).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl CertIdHash {
    fn oid(self) -> &'static [u64] {
        match self {
            CertIdHash::Sha1 => OID_SHA1,
            CertIdHash::Sha256 => OID_SHA256,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// One `CertID`: which certificate a request asks about, or a response answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// The hash algorithm, or `None` for one vsc does not compute (such a `CertID` can never
    /// name the issuing CA, so it is answered `unauthorized`).
    pub hash: Option<CertIdHash>,
    /// Hash of the issuer's DER subject name.
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's public key (the BIT STRING's value).
    pub issuer_key_hash: Vec<u8>,
    /// The serial number's magnitude, without leading zero bytes.
    serial: Vec<u8>,
    /// False for a negative serial (which no vsc certificate has).
    serial_nonnegative: bool,
    /// The `CertID` exactly as received, echoed in the response (RFC 6960 §4.2.1: the same
    /// `CertID`, hash algorithm included).
    der: Vec<u8>,
}

impl CertId {
    /// The `CertID` of `cert_der`, issued by `issuer_der`.
    pub fn for_certificate(
        cert_der: &[u8],
        issuer_der: &[u8],
        hash: CertIdHash,
    ) -> Result<CertId, OcspError> {
        let cert =
            parse_certificate(cert_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
        let issuer =
            parse_certificate(issuer_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
        let serial = strip_zeros(cert.raw_serial()).to_vec();
        let issuer_name_hash = hash.digest(issuer.subject().as_raw());
        let issuer_key_hash = hash.digest(&issuer.public_key().subject_public_key.data);
        let der = yasna::construct_der(|w| {
            write_cert_id(w, hash, &issuer_name_hash, &issuer_key_hash, &serial)
        });
        Ok(CertId {
            hash: Some(hash),
            issuer_name_hash,
            issuer_key_hash,
            serial,
            serial_nonnegative: true,
            der,
        })
    }

    /// The serial in vsc's spelling (lowercase hex, no leading zero bytes, as the certificates
    /// table stores it); `None` for a negative serial.
    pub fn serial_hex(&self) -> Option<String> {
        self.serial_nonnegative
            .then(|| serial_to_hex(&self.serial))
            .filter(|s| !s.is_empty())
    }
}

fn strip_zeros(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    &raw[start..]
}

fn write_cert_id(w: DERWriter<'_>, hash: CertIdHash, name: &[u8], key: &[u8], serial: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(hash.oid()));
            w.next().write_null();
        });
        w.next().write_bytes(name);
        w.next().write_bytes(key);
        w.next().write_bigint_bytes(serial, true);
    })
}

fn read_cert_id(r: BERReader<'_, '_>) -> ASN1Result<CertId> {
    let ((hash, name, key, serial, nonnegative), der) = r.read_with_buffer(|r| {
        r.read_sequence(|r| {
            let oid = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                // Parameters: NULL, or absent (both are seen).
                r.read_optional(|r| r.read_null())?;
                Ok(oid)
            })?;
            let hash = if oid.components().as_slice() == OID_SHA1 {
                Some(CertIdHash::Sha1)
            } else if oid.components().as_slice() == OID_SHA256 {
                Some(CertIdHash::Sha256)
            } else {
                None
            };
            let name = r.next().read_bytes()?;
            let key = r.next().read_bytes()?;
            let (serial, nonnegative) = r.next().read_bigint_bytes()?;
            Ok((hash, name, key, serial, nonnegative))
        })
    })?;
    Ok(CertId {
        hash,
        issuer_name_hash: name,
        issuer_key_hash: key,
        serial: strip_zeros(&serial).to_vec(),
        serial_nonnegative: nonnegative,
        der: der.to_vec(),
    })
}

/// The issuing CA's name and key hashes, to tell whether a `CertID` names it.
#[derive(Debug, Clone)]
pub struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerHashes {
    /// The hashes of the CA certificate `issuer_der`.
    pub fn of(issuer_der: &[u8]) -> Result<IssuerHashes, OcspError> {
        let issuer =
            parse_certificate(issuer_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
        let name = issuer.subject().as_raw();
        let key = &issuer.public_key().subject_public_key.data;
        let pair = |h: CertIdHash| (h.digest(name), h.digest(key));
        Ok(IssuerHashes {
            sha1: pair(CertIdHash::Sha1),
            sha256: pair(CertIdHash::Sha256),
        })
    }

    /// Whether `id` names this CA as the issuer (name *and* key, as RFC 6960 asks).
    pub fn issued(&self, id: &CertId) -> bool {
        let (name, key) = match id.hash {
            Some(CertIdHash::Sha1) => &self.sha1,
            Some(CertIdHash::Sha256) => &self.sha256,
            None => return false,
        };
        *name == id.issuer_name_hash && *key == id.issuer_key_hash
    }
}

/// A parsed `OCSPRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about, in order (at least one, at most [`MAX_REQUESTS`]).
    pub cert_ids: Vec<CertId>,
    /// The nonce extension's `extnValue` contents exactly as sent (for RFC 8954 clients the DER
    /// of an OCTET STRING), echoed in the response.
    pub nonce: Option<Vec<u8>>,
}

struct Extension {
    oid: ObjectIdentifier,
    critical: bool,
    value: Vec<u8>,
}

fn read_extensions(r: BERReader<'_, '_>) -> ASN1Result<Vec<Extension>> {
    r.collect_sequence_of(|r| {
        r.read_sequence(|r| {
            let oid = r.next().read_oid()?;
            let critical = r.read_optional(|r| r.read_bool())?.unwrap_or(false);
            let value = r.next().read_bytes()?;
            Ok(Extension {
                oid,
                critical,
                value,
            })
        })
    })
}

fn write_extension(w: DERWriter<'_>, oid: &[u64], value: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
        w.next().write_bytes(value);
    })
}

/// The length of a nonce as carried in `extnValue`: the inner OCTET STRING's when it is one
/// (RFC 8954), otherwise the raw bytes' (older clients).
fn nonce_len(value: &[u8]) -> usize {
    yasna::parse_der(value, |r| r.read_bytes()).map_or(value.len(), |inner| inner.len())
}

/// Reads an `OCSPRequest`. Refuses (as `malformedRequest`) anything that is not one, an empty
/// request list or one longer than [`MAX_REQUESTS`], an unknown critical extension, and a nonce
/// that is empty or longer than [`MAX_NONCE_LEN`] octets. A request signature, when present, is
/// ignored: the responder answers anyone (RFC 6960 §4.1.2 makes it optional).
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, OcspError> {
    let (cert_ids, extensions) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_sequence(|r| {
                let version =
                    r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_i64()))?;
                if version.is_some_and(|v| v != 0) {
                    return Err(invalid());
                }
                // requestorName: read and ignored.
                r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
                let mut ids = Vec::new();
                r.next().read_sequence_of(|r| {
                    if ids.len() == MAX_REQUESTS {
                        return Err(invalid());
                    }
                    let (id, exts) = r.read_sequence(|r| {
                        let id = read_cert_id(r.next())?;
                        let exts =
                            r.read_optional(|r| r.read_tagged(Tag::context(0), read_extensions))?;
                        Ok((id, exts.unwrap_or_default()))
                    })?;
                    if exts.iter().any(|e| e.critical) {
                        return Err(invalid());
                    }
                    ids.push(id);
                    Ok(())
                })?;
                let exts = r.read_optional(|r| r.read_tagged(Tag::context(2), read_extensions))?;
                Ok((ids, exts.unwrap_or_default()))
            })?;
            r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
            Ok(tbs)
        })
    })
    .map_err(malformed("request"))?;
    let bad = |detail: &str| OcspError::Malformed {
        what: "request",
        detail: detail.to_owned(),
    };
    if cert_ids.is_empty() {
        return Err(bad("it asks about no certificate"));
    }
    let mut nonce = None;
    for ext in extensions {
        if ext.oid.components().as_slice() == OID_OCSP_NONCE {
            let len = nonce_len(&ext.value);
            if len == 0 || len > MAX_NONCE_LEN {
                return Err(bad(&format!(
                    "its nonce is {len} octets; 1 to {MAX_NONCE_LEN} are accepted"
                )));
            }
            if nonce.replace(ext.value).is_some() {
                return Err(bad("it has two nonces"));
            }
        } else if ext.critical {
            return Err(bad(&format!(
                "it has an unknown critical extension {}",
                ext.oid
            )));
        }
    }
    Ok(OcspRequest { cert_ids, nonce })
}

/// Builds an unsigned `OCSPRequest` for `cert_ids`, with an RFC 8954 nonce (an OCTET STRING
/// inside `extnValue`) when `nonce` is given.
pub fn build_request(cert_ids: &[CertId], nonce: Option<&[u8]>) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_sequence_of(|w| {
                    for id in cert_ids {
                        w.next().write_sequence(|w| w.next().write_der(&id.der));
                    }
                });
                if let Some(nonce) = nonce {
                    let value = yasna::construct_der(|w| w.write_bytes(nonce));
                    w.next().write_tagged(Tag::context(2), |w| {
                        w.write_sequence(|w| write_extension(w.next(), OID_OCSP_NONCE, &value))
                    });
                }
            })
        })
    })
}

/// A certificate's revocation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When the revocation took effect.
        at: OffsetDateTime,
        /// Why, when a reason was given (`unspecified` is written as no reason, as in the CRL).
        reason: Option<u8>,
        /// Since when the key is known or suspected to be compromised.
        invalidity_date: Option<OffsetDateTime>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// One answer in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleResponse {
    /// The `CertID` asked about (echoed as received).
    pub cert_id: CertId,
    /// Its status.
    pub status: CertStatus,
    /// When the status was known to be correct.
    pub this_update: OffsetDateTime,
    /// When newer information will be available.
    pub next_update: Option<OffsetDateTime>,
}

fn generalized_time(t: OffsetDateTime) -> GeneralizedTime {
    // Whole seconds, UTC: the DER profile RFC 5280 prescribes for GeneralizedTime.
    let t = t.to_offset(time::UtcOffset::UTC);
    GeneralizedTime::from_datetime(t.replace_nanosecond(0).unwrap_or(t))
}

/// The unsigned response for a refusal: only `responseStatus` (RFC 6960 §4.2.1 forbids
/// `responseBytes` unless successful).
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    yasna::construct_der(|w| w.write_sequence(|w| w.next().write_enum(status.code())))
}

/// A key that signs for the CA (RSA and ECDSA keys as rcgen detects them) with its certificate.
/// The private key is wiped on drop.
pub struct Responder {
    cert_der: Vec<u8>,
    key: KeyPair,
    key_hash: Vec<u8>,
    sig_alg: &'static [u64],
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Responder {
    /// A responder from its certificate and PKCS#8 private key; refuses a key that does not
    /// belong to the certificate or an algorithm it cannot sign with.
    pub fn new(cert_der: Vec<u8>, pkcs8: &[u8]) -> Result<Responder, OcspError> {
        let key = KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8))
            .map_err(|e| OcspError::Signing(format!("unusable responder key: {e}")))?;
        let cert =
            parse_certificate(&cert_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(OcspError::Signing(
                "the responder key does not belong to the responder certificate".into(),
            ));
        }
        let key_hash = CertIdHash::Sha1.digest(&cert.public_key().subject_public_key.data);
        let alg = key.algorithm();
        let sig_alg = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            OID_ECDSA_SHA256
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            OID_ECDSA_SHA384
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            OID_RSA_SHA256
        } else {
            return Err(OcspError::Signing(
                "the responder key must be ECDSA P-256, P-384 or RSA".into(),
            ));
        };
        Ok(Responder {
            cert_der,
            key,
            key_hash,
            sig_alg,
        })
    }

    /// The responder certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// A successful `OCSPResponse` with a `BasicOCSPResponse` answering `responses`, produced
    /// at `produced_at`, `responderID` byKey, the responder certificate in `certs`, and
    /// `nonce` (a request's `extnValue`, as [`OcspRequest::nonce`]) echoed when given.
    pub fn sign(
        &self,
        responses: &[SingleResponse],
        nonce: Option<&[u8]>,
        produced_at: OffsetDateTime,
    ) -> Result<Vec<u8>, OcspError> {
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_tagged(Tag::context(2), |w| w.write_bytes(&self.key_hash));
                w.next()
                    .write_generalized_time(&generalized_time(produced_at));
                w.next().write_sequence_of(|w| {
                    for response in responses {
                        write_single_response(w.next(), response);
                    }
                });
                if let Some(nonce) = nonce {
                    w.next().write_tagged(Tag::context(1), |w| {
                        w.write_sequence(|w| write_extension(w.next(), OID_OCSP_NONCE, nonce))
                    });
                }
            })
        });
        let signature = self
            .key
            .sign(&tbs)
            .map_err(|e| OcspError::Signing(e.to_string()))?;
        let basic = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                w.next().write_sequence(|w| {
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(self.sig_alg));
                    if self.sig_alg == OID_RSA_SHA256 {
                        w.next().write_null();
                    }
                });
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| w.next().write_der(&self.cert_der))
                });
            })
        });
        Ok(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_enum(ResponseStatus::Successful.code());
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next()
                            .write_oid(&ObjectIdentifier::from_slice(OID_OCSP_BASIC));
                        w.next().write_bytes(&basic);
                    })
                });
            })
        }))
    }
}

fn write_single_response(w: DERWriter<'_>, r: &SingleResponse) {
    w.write_sequence(|w| {
        w.next().write_der(&r.cert_id.der);
        match r.status {
            CertStatus::Good => w
                .next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_null()),
            CertStatus::Revoked { at, reason, .. } => {
                w.next().write_tagged_implicit(Tag::context(1), |w| {
                    w.write_sequence(|w| {
                        w.next().write_generalized_time(&generalized_time(at));
                        if let Some(reason) = reason {
                            w.next()
                                .write_tagged(Tag::context(0), |w| w.write_enum(i64::from(reason)));
                        }
                    })
                })
            }
            CertStatus::Unknown => w
                .next()
                .write_tagged_implicit(Tag::context(2), |w| w.write_null()),
        }
        w.next()
            .write_generalized_time(&generalized_time(r.this_update));
        if let Some(next) = r.next_update {
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_generalized_time(&generalized_time(next))
            });
        }
        if let CertStatus::Revoked {
            invalidity_date: Some(at),
            ..
        } = r.status
        {
            let value = yasna::construct_der(|w| w.write_generalized_time(&generalized_time(at)));
            w.next().write_tagged(Tag::context(1), |w| {
                w.write_sequence(|w| write_extension(w.next(), OID_INVALIDITY_DATE, &value))
            });
        }
    })
}

/// A `BasicOCSPResponse`, read but not yet checked.
struct ParsedBasic {
    tbs: Vec<u8>,
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
    certs: Vec<Vec<u8>>,
    responder_id: ResponderId,
    responses: Vec<SingleResponse>,
    nonce: Option<Vec<u8>>,
}

enum ResponderId {
    ByName(Vec<u8>),
    ByKey(Vec<u8>),
}

fn read_time(r: BERReader<'_, '_>) -> ASN1Result<OffsetDateTime> {
    Ok(*r.read_generalized_time()?.datetime())
}

fn read_single_response(r: BERReader<'_, '_>) -> ASN1Result<SingleResponse> {
    r.read_sequence(|r| {
        let cert_id = read_cert_id(r.next())?;
        let status_reader = r.next();
        let tag = status_reader.lookahead_tag()?;
        let mut status = if tag == Tag::context(0) {
            status_reader.read_tagged_implicit(Tag::context(0), |r| r.read_null())?;
            CertStatus::Good
        } else if tag == Tag::context(1) {
            status_reader.read_tagged_implicit(Tag::context(1), |r| {
                r.read_sequence(|r| {
                    let at = read_time(r.next())?;
                    let reason = r
                        .read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_enum()))?
                        .map(|c| u8::try_from(c).map_err(|_| invalid()))
                        .transpose()?;
                    Ok(CertStatus::Revoked {
                        at,
                        reason,
                        invalidity_date: None,
                    })
                })
            })?
        } else if tag == Tag::context(2) {
            status_reader.read_tagged_implicit(Tag::context(2), |r| r.read_null())?;
            CertStatus::Unknown
        } else {
            return Err(invalid());
        };
        let this_update = read_time(r.next())?;
        let next_update = r.read_optional(|r| r.read_tagged(Tag::context(0), read_time))?;
        let exts = r
            .read_optional(|r| r.read_tagged(Tag::context(1), read_extensions))?
            .unwrap_or_default();
        if let CertStatus::Revoked {
            invalidity_date, ..
        } = &mut status
        {
            for ext in &exts {
                if ext.oid.components().as_slice() == OID_INVALIDITY_DATE {
                    *invalidity_date = Some(yasna::parse_der(&ext.value, read_time)?);
                }
            }
        }
        Ok(SingleResponse {
            cert_id,
            status,
            this_update,
            next_update,
        })
    })
}

fn parse_response(der: &[u8]) -> Result<ParsedBasic, OcspError> {
    let (status, bytes) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let status = r.next().read_enum()?;
            let bytes = r.read_optional(|r| {
                r.read_tagged(Tag::context(0), |r| {
                    r.read_sequence(|r| {
                        let oid = r.next().read_oid()?;
                        let bytes = r.next().read_bytes()?;
                        Ok((oid, bytes))
                    })
                })
            })?;
            Ok((status, bytes))
        })
    })
    .map_err(malformed("response"))?;
    let bad = |detail: &str| OcspError::Malformed {
        what: "response",
        detail: detail.to_owned(),
    };
    match ResponseStatus::from_code(status) {
        Some(ResponseStatus::Successful) => {}
        Some(other) => return Err(OcspError::Refused(other)),
        None => return Err(bad(&format!("unknown responseStatus {status}"))),
    }
    let (oid, basic) = bytes.ok_or_else(|| bad("a successful response without responseBytes"))?;
    if oid.components().as_slice() != OID_OCSP_BASIC {
        return Err(bad(&format!(
            "response type {oid} is not id-pkix-ocsp-basic"
        )));
    }
    yasna::parse_der(&basic, |r| {
        r.read_sequence(|r| {
            let ((responder_id, responses, nonce), tbs) = r.next().read_with_buffer(|r| {
                r.read_sequence(|r| {
                    let version =
                        r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_i64()))?;
                    if version.is_some_and(|v| v != 0) {
                        return Err(invalid());
                    }
                    let id_reader = r.next();
                    let tag = id_reader.lookahead_tag()?;
                    let responder_id = if tag == Tag::context(1) {
                        ResponderId::ByName(
                            id_reader.read_tagged(Tag::context(1), |r| r.read_der())?,
                        )
                    } else if tag == Tag::context(2) {
                        ResponderId::ByKey(
                            id_reader.read_tagged(Tag::context(2), |r| r.read_bytes())?,
                        )
                    } else {
                        return Err(invalid());
                    };
                    read_time(r.next())?;
                    let responses = r.next().collect_sequence_of(read_single_response)?;
                    let exts = r
                        .read_optional(|r| r.read_tagged(Tag::context(1), read_extensions))?
                        .unwrap_or_default();
                    let nonce = exts
                        .into_iter()
                        .find(|e| e.oid.components().as_slice() == OID_OCSP_NONCE)
                        .map(|e| e.value);
                    Ok((responder_id, responses, nonce))
                })
            })?;
            let sig_alg = r.next().read_der()?;
            let signature = r.next().read_der()?;
            let certs = r
                .read_optional(|r| {
                    r.read_tagged(Tag::context(0), |r| r.collect_sequence_of(|r| r.read_der()))
                })?
                .unwrap_or_default();
            Ok(ParsedBasic {
                tbs: tbs.to_vec(),
                sig_alg,
                signature,
                certs,
                responder_id,
                responses,
                nonce,
            })
        })
    })
    .map_err(malformed("response"))
}

/// What a checked response says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResponse {
    /// The status.
    pub status: CertStatus,
    /// `thisUpdate`.
    pub this_update: OffsetDateTime,
    /// `nextUpdate`, when given.
    pub next_update: Option<OffsetDateTime>,
    /// Who signed: the CA itself or its delegated responder (subject name).
    pub signer: String,
}

/// Checks an OCSP response for `cert_der` (issued by `issuer_der`) as a relying party must
/// (RFC 6960 §3.2, §4.2.2.2): it is a successful basic response; its signer is the issuing CA
/// itself, or a certificate in the response that the CA signed, carrying `id-kp-OCSPSigning`
/// and valid at `now`; the signature verifies with the signer's key; it answers for this
/// certificate (serial, issuer name and key hashes); `thisUpdate` is not in the future and
/// `nextUpdate` not in the past (each allowing [`CLOCK_SKEW`]; without `nextUpdate`,
/// `thisUpdate` must be within [`MAX_AGE_WITHOUT_NEXT_UPDATE`]); and, when the request carried
/// `nonce` (the raw nonce given to [`build_request`]), the same nonce came back.
pub fn verify_response(
    response_der: &[u8],
    cert_der: &[u8],
    issuer_der: &[u8],
    nonce: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<VerifiedResponse, OcspError> {
    let basic = parse_response(response_der)?;
    let issuer =
        parse_certificate(issuer_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
    let cert = parse_certificate(cert_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
    let key_hash =
        |c: &X509Certificate<'_>| CertIdHash::Sha1.digest(&c.public_key().subject_public_key.data);
    let names = |c: &X509Certificate<'_>| match &basic.responder_id {
        ResponderId::ByKey(hash) => *hash == key_hash(c),
        ResponderId::ByName(name) => name.as_slice() == c.subject().as_raw(),
    };

    // The signer: the CA itself, or a delegated responder the CA authorised.
    let parsed_certs: Vec<X509Certificate<'_>> = basic
        .certs
        .iter()
        .map(|der| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| OcspError::Malformed {
                    what: "response",
                    detail: format!("a certificate in it does not parse: {e}"),
                })
        })
        .collect::<Result<_, _>>()?;
    let signer: &X509Certificate<'_> = if names(&issuer) {
        &issuer
    } else {
        let delegated = parsed_certs.iter().find(|c| names(c)).ok_or_else(|| {
            OcspError::UnauthorisedSigner(
                "the responder named in the response is neither the issuing CA nor a certificate included in it"
                    .into(),
            )
        })?;
        check_delegated(delegated, &issuer, now)?;
        delegated
    };
    let signer_name = signer.subject().to_string();
    let sig_alg = x509_parser::x509::AlgorithmIdentifier::from_der(&basic.sig_alg)
        .map_err(|e| OcspError::Malformed {
            what: "response",
            detail: format!("signatureAlgorithm: {e}"),
        })?
        .1;
    let signature = x509_parser::der_parser::asn1_rs::BitString::from_der(&basic.signature)
        .map_err(|e| OcspError::Malformed {
            what: "response",
            detail: format!("signature: {e}"),
        })?
        .1;
    x509_parser::verify::verify_signature(signer.public_key(), &sig_alg, &signature, &basic.tbs)
        .map_err(|e| OcspError::BadSignature(format!("the key of {signer_name} ({e})")))?;

    // The answer for this certificate.
    let serial = strip_zeros(cert.raw_serial());
    let hashes = IssuerHashes::of(issuer_der)?;
    let single = basic
        .responses
        .iter()
        .find(|r| {
            r.cert_id.serial_nonnegative && r.cert_id.serial == serial && hashes.issued(&r.cert_id)
        })
        .ok_or_else(|| OcspError::NoAnswer(serial_to_hex(serial)))?;
    if single.this_update > now + CLOCK_SKEW {
        return Err(OcspError::NotCurrent(format!(
            "thisUpdate {} is in the future",
            single.this_update
        )));
    }
    match single.next_update {
        Some(next) if next + CLOCK_SKEW < now => {
            return Err(OcspError::NotCurrent(format!(
                "nextUpdate {next} has passed"
            )));
        }
        None if single.this_update + MAX_AGE_WITHOUT_NEXT_UPDATE < now => {
            return Err(OcspError::NotCurrent(format!(
                "thisUpdate {} is too old for a response without nextUpdate",
                single.this_update
            )));
        }
        _ => {}
    }
    if let Some(sent) = nonce {
        let expected = yasna::construct_der(|w| w.write_bytes(sent));
        match &basic.nonce {
            None => return Err(OcspError::NonceMissing),
            Some(got) if *got != expected => return Err(OcspError::NonceMismatch),
            Some(_) => {}
        }
    }
    Ok(VerifiedResponse {
        status: single.status,
        this_update: single.this_update,
        next_update: single.next_update,
        signer: signer_name,
    })
}

/// A delegated responder certificate must be issued (and signed) by the CA, carry
/// `id-kp-OCSPSigning` and be valid now (RFC 6960 §4.2.2.2).
fn check_delegated(
    responder: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(), OcspError> {
    let name = responder.subject().to_string();
    if responder.issuer() != issuer.subject()
        || responder
            .verify_signature(Some(issuer.public_key()))
            .is_err()
    {
        return Err(OcspError::UnauthorisedSigner(format!(
            "{name} is not issued by {}",
            issuer.subject()
        )));
    }
    let ocsp_signing = responder
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.ocsp_signing);
    if !ocsp_signing {
        return Err(OcspError::UnauthorisedSigner(format!(
            "{name} lacks the id-kp-OCSPSigning extended key usage"
        )));
    }
    let validity = responder.validity();
    if now + CLOCK_SKEW < validity.not_before.to_datetime()
        || validity.not_after.to_datetime() + CLOCK_SKEW < now
    {
        return Err(OcspError::UnauthorisedSigner(format!(
            "{name} is not valid now (valid {} to {})",
            validity.not_before, validity.not_after
        )));
    }
    Ok(())
}

/// The OCSP responder URL(s) in a certificate's Authority Information Access extension.
pub fn ocsp_urls(cert_der: &[u8]) -> Result<Vec<String>, OcspError> {
    let cert = parse_certificate(cert_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
    let ocsp = x509_parser::oid_registry::Oid::from(OID_AD_OCSP)
        .map_err(|_| OcspError::Certificate("OID".into()))?;
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for desc in aia.iter() {
                if desc.access_method == ocsp
                    && let GeneralName::URI(uri) = &desc.access_location
                {
                    urls.push((*uri).to_owned());
                }
            }
        }
    }
    Ok(urls)
}

/// The DER `extnValue` of an Authority Information Access extension with one OCSP URL.
pub(crate) fn aia_extension_value(ocsp_url: &str) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(OID_AD_OCSP));
                w.next()
                    .write_tagged_implicit(Tag::context(6), |w| w.write_ia5_string(ocsp_url));
            })
        })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ca::{CertProfile, CertificateAuthority, PersonSubject};
    use crate::csr::{KeyKind, validate_csr};
    use std::path::Path;
    use std::process::Command;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
    }

    struct Fixture {
        ca: CertificateAuthority,
        cert: Vec<u8>,
        responder: Responder,
    }

    fn fixture() -> Fixture {
        let ca = CertificateAuthority::create("vsc OCSP Test", now()).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let csr = validate_csr(csr.der(), KeyKind::EcdsaP256).unwrap();
        let cert = ca
            .issue_person_certificate(
                &csr,
                CertProfile::Signing,
                &PersonSubject {
                    uid: "123456789012".into(),
                    given_name: "Ada".into(),
                    family_name: "Lovelace".into(),
                },
                Duration::days(30),
                "http://vsc.test/ca/issuing.crl",
                "http://vsc.test/ca/ocsp",
                now(),
            )
            .unwrap()
            .der;
        let (rcert, rkey) = ca
            .issue_ocsp_responder_certificate(Duration::days(2), now())
            .unwrap();
        let responder = Responder::new(rcert.der, &rkey).unwrap();
        Fixture {
            ca,
            cert,
            responder,
        }
    }

    fn answer(f: &Fixture, request: &[u8], status: CertStatus) -> Vec<u8> {
        let request = parse_request(request).unwrap();
        let hashes = IssuerHashes::of(f.ca.issuing_der()).unwrap();
        assert!(request.cert_ids.iter().all(|id| hashes.issued(id)));
        let responses: Vec<SingleResponse> = request
            .cert_ids
            .into_iter()
            .map(|cert_id| SingleResponse {
                cert_id,
                status,
                this_update: now(),
                next_update: Some(now() + Duration::hours(1)),
            })
            .collect();
        f.responder
            .sign(&responses, request.nonce.as_deref(), now())
            .unwrap()
    }

    #[test]
    fn requests_and_responses_round_trip_and_verify() {
        let f = fixture();
        let issuer = f.ca.issuing_der();
        for hash in [CertIdHash::Sha1, CertIdHash::Sha256] {
            let id = CertId::for_certificate(&f.cert, issuer, hash).unwrap();
            let nonce = [7u8; 16];
            let request = build_request(std::slice::from_ref(&id), Some(&nonce));
            let parsed = parse_request(&request).unwrap();
            assert_eq!(parsed.cert_ids, vec![id.clone()]);
            assert_eq!(
                parsed.cert_ids[0].serial_hex().unwrap(),
                crate::certificate_info(&f.cert).unwrap().serial_hex
            );

            let good = answer(&f, &request, CertStatus::Good);
            let v = verify_response(&good, &f.cert, issuer, Some(&nonce), now()).unwrap();
            assert_eq!(v.status, CertStatus::Good);
            assert!(v.signer.contains("OCSP Responder"), "{}", v.signer);
            assert_eq!(v.next_update, Some(now() + Duration::hours(1)));

            let revoked = CertStatus::Revoked {
                at: now() - Duration::hours(2),
                reason: Some(1),
                invalidity_date: Some(now() - Duration::hours(5)),
            };
            let der = answer(&f, &request, revoked);
            let v = verify_response(&der, &f.cert, issuer, Some(&nonce), now()).unwrap();
            assert_eq!(v.status, revoked);

            let der = answer(&f, &request, CertStatus::Unknown);
            let v = verify_response(&der, &f.cert, issuer, Some(&nonce), now()).unwrap();
            assert_eq!(v.status, CertStatus::Unknown);

            // The nonce must come back, and be the one sent.
            assert_eq!(
                verify_response(&good, &f.cert, issuer, Some(&[8u8; 16]), now()),
                Err(OcspError::NonceMismatch)
            );
            let no_nonce = answer(&f, &build_request(&[id], None), CertStatus::Good);
            assert_eq!(
                verify_response(&no_nonce, &f.cert, issuer, Some(&nonce), now()),
                Err(OcspError::NonceMissing)
            );
            verify_response(&no_nonce, &f.cert, issuer, None, now()).unwrap();

            // Freshness.
            assert!(matches!(
                verify_response(&good, &f.cert, issuer, None, now() + Duration::hours(2)),
                Err(OcspError::NotCurrent(_))
            ));
            assert!(matches!(
                verify_response(&good, &f.cert, issuer, None, now() - Duration::hours(1)),
                Err(OcspError::NotCurrent(_)) | Err(OcspError::UnauthorisedSigner(_))
            ));
        }
    }

    #[test]
    fn responses_from_the_wrong_signer_or_tampered_are_refused() {
        let f = fixture();
        let issuer = f.ca.issuing_der();
        let id = CertId::for_certificate(&f.cert, issuer, CertIdHash::Sha1).unwrap();
        let request = build_request(&[id], None);
        let good = answer(&f, &request, CertStatus::Good);

        // A flipped bit in the signed data.
        let mut tampered = good.clone();
        let at = tampered.len() / 3;
        tampered[at] ^= 0x01;
        assert!(verify_response(&tampered, &f.cert, issuer, None, now()).is_err());

        // Another CA's responder signing for this CA's certificates.
        let other = fixture();
        let responses = vec![SingleResponse {
            cert_id: parse_request(&request).unwrap().cert_ids.remove(0),
            status: CertStatus::Good,
            this_update: now(),
            next_update: Some(now() + Duration::hours(1)),
        }];
        let forged = other.responder.sign(&responses, None, now()).unwrap();
        assert!(matches!(
            verify_response(&forged, &f.cert, issuer, None, now()),
            Err(OcspError::UnauthorisedSigner(_))
        ));

        // A certificate of the CA without id-kp-OCSPSigning cannot sign responses: the
        // workstation profile's key, used as if it were a responder.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let csr = validate_csr(csr.der(), KeyKind::EcdsaP256).unwrap();
        let ws =
            f.ca.issue_workstation_certificate(
                &csr,
                "PC-1",
                "RX1",
                Duration::days(1),
                "http://vsc.test/c.crl",
                "http://vsc.test/ocsp",
                now(),
            )
            .unwrap();
        let impostor = Responder::new(ws.der, key.serialized_der()).unwrap();
        let forged = impostor.sign(&responses, None, now()).unwrap();
        let err = verify_response(&forged, &f.cert, issuer, None, now()).unwrap_err();
        assert!(
            matches!(&err, OcspError::UnauthorisedSigner(m) if m.contains("OCSPSigning")),
            "{err}"
        );

        // Refusals come back as such.
        assert_eq!(
            verify_response(
                &error_response(ResponseStatus::Unauthorized),
                &f.cert,
                issuer,
                None,
                now()
            ),
            Err(OcspError::Refused(ResponseStatus::Unauthorized))
        );
        // An answer about another certificate is no answer.
        let other_cert = other.cert;
        assert!(matches!(
            verify_response(&good, &other_cert, issuer, None, now()),
            Err(OcspError::NoAnswer(_))
        ));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let f = fixture();
        let id = CertId::for_certificate(&f.cert, f.ca.issuing_der(), CertIdHash::Sha1).unwrap();
        for bad in [
            b"".to_vec(),
            b"not DER".to_vec(),
            vec![0x30, 0x00],
            build_request(&[], None),
            build_request(&vec![id.clone(); MAX_REQUESTS + 1], None),
            build_request(std::slice::from_ref(&id), Some(&[1u8; MAX_NONCE_LEN + 1])),
            build_request(std::slice::from_ref(&id), Some(&[])),
        ] {
            assert!(
                matches!(parse_request(&bad), Err(OcspError::Malformed { .. })),
                "{bad:02x?}"
            );
        }
        // Trailing bytes after the request.
        let mut trailing = build_request(std::slice::from_ref(&id), None);
        trailing.push(0);
        assert!(parse_request(&trailing).is_err());
        parse_request(&build_request(&vec![id; MAX_REQUESTS], Some(&[1u8; 32]))).unwrap();
    }

    #[test]
    fn another_issuers_cert_ids_are_not_ours() {
        let f = fixture();
        let other = fixture();
        let hashes = IssuerHashes::of(f.ca.issuing_der()).unwrap();
        let foreign =
            CertId::for_certificate(&other.cert, other.ca.issuing_der(), CertIdHash::Sha1).unwrap();
        assert!(!hashes.issued(&foreign));
        // The right name with the wrong key is not ours either.
        let mut mixed =
            CertId::for_certificate(&f.cert, f.ca.issuing_der(), CertIdHash::Sha256).unwrap();
        assert!(hashes.issued(&mixed));
        mixed.issuer_key_hash = foreign.issuer_key_hash.clone();
        assert!(!hashes.issued(&mixed));
    }

    fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
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

    /// Requests written by `openssl ocsp -reqout` parse, and openssl accepts the responses:
    /// signature, the delegated responder's chain, nonce, and status with reason and time.
    #[test]
    fn openssl_requests_parse_and_openssl_verifies_the_responses() {
        let f = fixture();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("issuing.pem"), f.ca.issuing_pem()).unwrap();
        std::fs::write(dir.join("root.pem"), f.ca.root_pem()).unwrap();
        std::fs::write(
            dir.join("cert.pem"),
            crate::der_to_pem("CERTIFICATE", &f.cert),
        )
        .unwrap();
        let serial = crate::certificate_info(&f.cert).unwrap().serial_hex;
        let cases: [(&[&str], bool, CertIdHash); 3] = [
            (&[], true, CertIdHash::Sha1),
            (&["-no_nonce"], false, CertIdHash::Sha1),
            (&["-sha256"], true, CertIdHash::Sha256),
        ];
        for (extra, with_nonce, hash) in cases {
            // openssl wants the digest before -cert.
            let mut args = vec!["ocsp"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&[
                "-issuer",
                "issuing.pem",
                "-cert",
                "cert.pem",
                "-reqout",
                "req.der",
            ]);
            let (ok, text) = openssl(dir, &args);
            assert!(ok, "{text}");
            let request = std::fs::read(dir.join("req.der")).unwrap();
            let parsed = parse_request(&request).unwrap();
            assert_eq!(parsed.cert_ids.len(), 1);
            assert_eq!(parsed.cert_ids[0].hash, Some(hash));
            assert_eq!(parsed.cert_ids[0].serial_hex().unwrap(), serial);
            assert_eq!(parsed.nonce.is_some(), with_nonce);

            let revoked_at = now() - Duration::hours(3);
            let der = answer(
                &f,
                &request,
                CertStatus::Revoked {
                    at: revoked_at,
                    reason: Some(1),
                    invalidity_date: Some(now() - Duration::hours(4)),
                },
            );
            std::fs::write(dir.join("resp.der"), &der).unwrap();
            // The request read back (so openssl compares the nonce it sent); `-cert` would
            // make a new request with a new nonce.
            let args = vec![
                "ocsp",
                "-reqin",
                "req.der",
                "-respin",
                "resp.der",
                "-CAfile",
                "root.pem",
                "-verify_other",
                "issuing.pem",
                "-resp_text",
            ];
            let (ok, text) = openssl(dir, &args);
            assert!(ok, "{text}");
            for expected in [
                "Response verify OK",
                "Cert Status: revoked",
                "Revocation Reason: keyCompromise",
                "Responder Id: ",
                "Invalidity Date",
                "OCSP No Check",
                "OCSP Signing",
            ] {
                assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
            }
            assert!(!text.contains("Nonce Verify error"), "{text}");
            assert_eq!(text.contains("OCSP Nonce"), with_nonce, "{text}");
            // The status line openssl prints for a certificate it was asked about.
            let mut args = vec!["ocsp", "-no_nonce"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&[
                "-respin",
                "resp.der",
                "-issuer",
                "issuing.pem",
                "-cert",
                "cert.pem",
                "-CAfile",
                "root.pem",
                "-verify_other",
                "issuing.pem",
            ]);
            let (ok, text) = openssl(dir, &args);
            assert!(ok, "{text}");
            assert!(text.contains("cert.pem: revoked"), "{text}");
            assert!(text.contains("Reason: keyCompromise"), "{text}");
        }
    }
}

//! JWS compact serialisation and JWKs for the provider's ID tokens and for clients' signed
//! assertions, built directly on aws-lc-rs.
//!
//! Only the asymmetric algorithms the provider uses are supported (RS256, RS512, ES256). There is
//! deliberately no `none` and no HMAC: accepting either would let anyone who can read a published
//! key (or no key at all) forge a token. Verification never takes a key from the token itself
//! (`jwk`, `jku`, `x5u` headers are ignored); keys always come from the caller.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, KeyPair as _, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// Longest compact JWS accepted by [`verify_jwt`]; ID tokens and client assertions are far
/// smaller, and the cap bounds the work a hostile client can cause before any signature check.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Smallest RSA modulus accepted, for signing and verifying (RFC 7518 §3.3 requires 2048 bits).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, matching aws-lc-rs's `RSA_PKCS1_2048_8192_*` parameters.
const MAX_RSA_BITS: usize = 8192;
/// Length of a P-256 coordinate and of each half of a JOSE ES256 signature.
const P256_LEN: usize = 32;

/// Errors from signing, verifying or handling keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("the token is too long ({0} bytes; at most {MAX_TOKEN_LEN} are accepted)")]
    TooLong(usize),
    /// The token is not a well-formed compact JWS.
    #[error("the token is not a compact JWS: {0}")]
    Malformed(&'static str),
    /// The `alg` is not one the caller allows (this includes `none` and every HMAC algorithm).
    #[error("the signature algorithm {0:?} is not accepted here")]
    UnsupportedAlg(String),
    /// The header lists extensions in `crit`, none of which this implementation understands.
    #[error("the token's header has a \"crit\" member; no critical extensions are supported")]
    CriticalHeader,
    /// No key has the `kid` that the header names.
    #[error("no registered key has the kid {0:?} named in the token's header")]
    UnknownKid(String),
    /// The key that the `kid` names cannot be used with the header's algorithm.
    #[error("the key {kid:?} cannot verify {alg} signatures (wrong key type, curve or alg)")]
    KeyAlgMismatch {
        /// The `kid` from the header.
        kid: String,
        /// The algorithm from the header.
        alg: Alg,
    },
    /// The header has no `kid` and no registered key fits its algorithm.
    #[error("the token has no kid and no registered key can verify {0} signatures")]
    NoSuitableKey(Alg),
    /// The header has no `kid` and several registered keys fit its algorithm.
    #[error(
        "the token has no kid but several registered keys can verify {0} signatures; \
         put the key's kid in the header"
    )]
    AmbiguousKey(Alg),
    /// A JWK is unusable (missing members, bad encoding, unsupported type, too small).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// Key generation, key loading or signing failed inside the crypto library.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// Claims could not be serialised.
    #[error("the claims could not be serialised: {0}")]
    Json(#[from] serde_json::Error),
}

/// A JWS signature algorithm supported by this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// ECDSA on P-256 with SHA-256, signature as fixed-length `r || s`.
    ES256,
}

impl Alg {
    /// The JOSE name of the algorithm (`"RS256"`, `"RS512"`, `"ES256"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS512 => "RS512",
            Alg::ES256 => "ES256",
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Alg::RS256 | Alg::RS512)
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Alg::RS256 | Alg::ES256 => &digest::SHA256,
            Alg::RS512 => &digest::SHA512,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = JoseError;

    /// Exact, case-sensitive JOSE names only: "rs256" or "none" are errors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(Alg::RS256),
            "RS512" => Ok(Alg::RS512),
            "ES256" => Ok(Alg::ES256),
            other => Err(JoseError::UnsupportedAlg(truncate(other))),
        }
    }
}

/// A public JSON Web Key (RFC 7517) as published in a JWKS or registered for a client.
///
/// Only the members this crate uses are kept; unknown members (including private ones such as
/// `d`, which are never used) are ignored when deserialising.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `"RSA"` or `"EC"`.
    pub kty: String,
    /// Key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The algorithm the key is meant for; when present it must equal the token's `alg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; when present it must be `"sig"` for the key to verify signatures.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve name: `"P-256"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, base64url, 32 bytes for P-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url, 32 bytes for P-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    /// Whether this key may verify `alg` signatures: the type (and curve) fit the algorithm, the
    /// `alg` member (if any) names it, and the `use` member (if any) is `sig`.
    fn fits(&self, alg: Alg) -> bool {
        let kty_fits = if alg.is_rsa() {
            self.kty == "RSA"
        } else {
            self.kty == "EC" && self.crv.as_deref() == Some("P-256")
        };
        kty_fits
            && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
            && self.use_.as_deref().is_none_or(|u| u == "sig")
    }
}

/// A JWK Set (RFC 7517 §5), the document served at the provider's `jwks_uri`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// The protected header of a verified JWS, reduced to the members this crate uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The signature algorithm (already checked against the caller's allowed list).
    pub alg: Alg,
    /// The key ID, if the header had one.
    pub kid: Option<String>,
    /// The media type, e.g. `"JWT"`, if the header had one.
    pub typ: Option<String>,
}

enum KeyPairInner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private signing key of the provider, with its algorithm and RFC 7638 key ID.
pub struct SigningKey {
    alg: Alg,
    inner: KeyPairInner,
    // Exported once at construction so that `pkcs8()` cannot fail later.
    pkcs8: Zeroizing<Vec<u8>>,
    kid: String,
}

impl fmt::Debug for SigningKey {
    // Never prints private material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key: RSA-2048 for RS256/RS512, P-256 for ES256.
    ///
    /// # Errors
    /// [`JoseError::Crypto`] if the crypto library fails.
    pub fn generate(alg: Alg) -> Result<SigningKey, JoseError> {
        let inner = if alg.is_rsa() {
            KeyPairInner::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| JoseError::Crypto("RSA key generation failed"))?,
            )
        } else {
            KeyPairInner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| JoseError::Crypto("P-256 key generation failed"))?,
            )
        };
        Self::from_inner(alg, inner)
    }

    /// Loads a key from the PKCS#8 DER that [`SigningKey::pkcs8`] returned.
    ///
    /// # Errors
    /// [`JoseError::InvalidKey`] if the DER is not a key of the type `alg` needs (or an RSA key
    /// below 2048 bits).
    pub fn from_pkcs8(alg: Alg, pkcs8_der: &[u8]) -> Result<SigningKey, JoseError> {
        let inner = if alg.is_rsa() {
            let kp = RsaKeyPair::from_pkcs8(pkcs8_der)
                .map_err(|_| JoseError::InvalidKey("not a PKCS#8 RSA private key"))?;
            if kp.public_modulus_len() * 8 < MIN_RSA_BITS {
                return Err(JoseError::InvalidKey("RSA key smaller than 2048 bits"));
            }
            KeyPairInner::Rsa(kp)
        } else {
            KeyPairInner::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der)
                    .map_err(|_| JoseError::InvalidKey("not a PKCS#8 P-256 private key"))?,
            )
        };
        Self::from_inner(alg, inner)
    }

    fn from_inner(alg: Alg, inner: KeyPairInner) -> Result<SigningKey, JoseError> {
        let pkcs8 = match &inner {
            KeyPairInner::Rsa(kp) => {
                let der = kp
                    .as_der()
                    .map_err(|_| JoseError::Crypto("PKCS#8 export failed"))?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            KeyPairInner::Ec(kp) => {
                let doc = kp
                    .to_pkcs8v1()
                    .map_err(|_| JoseError::Crypto("PKCS#8 export failed"))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
        };
        let mut key = SigningKey {
            alg,
            inner,
            pkcs8,
            kid: String::new(),
        };
        key.kid = thumbprint(&key.bare_public_jwk()?)?;
        Ok(key)
    }

    /// The private key as PKCS#8 v1 DER, for storage; wiped from memory when dropped.
    #[must_use]
    pub fn pkcs8(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// The key's signature algorithm.
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key ID: the RFC 7638 JWK thumbprint of the public key.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK with `kid`, `alg` and `use: "sig"`, for the JWKS document.
    #[must_use]
    pub fn public_jwk(&self) -> Jwk {
        // `bare_public_jwk` already succeeded in the constructor on the same key, so it cannot
        // fail here; fall back to an empty key of the right type rather than panicking.
        let mut jwk = self.bare_public_jwk().unwrap_or_else(|_| Jwk {
            kty: if self.alg.is_rsa() { "RSA" } else { "EC" }.to_owned(),
            kid: None,
            alg: None,
            use_: None,
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        });
        jwk.kid = Some(self.kid.clone());
        jwk.alg = Some(self.alg.as_str().to_owned());
        jwk.use_ = Some("sig".to_owned());
        jwk
    }

    /// The public key members only (what the thumbprint covers).
    fn bare_public_jwk(&self) -> Result<Jwk, JoseError> {
        let mut jwk = Jwk {
            kty: String::new(),
            kid: None,
            alg: None,
            use_: None,
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        match &self.inner {
            KeyPairInner::Rsa(kp) => {
                let public = kp.public_key();
                jwk.kty = "RSA".to_owned();
                jwk.n = Some(b64e(public.modulus().big_endian_without_leading_zero()));
                jwk.e = Some(b64e(public.exponent().big_endian_without_leading_zero()));
            }
            KeyPairInner::Ec(kp) => {
                // Uncompressed SEC 1 point: 0x04 || x || y.
                let point = kp.public_key().as_ref();
                if point.len() != 1 + 2 * P256_LEN || point.first() != Some(&0x04) {
                    return Err(JoseError::Crypto("unexpected P-256 public key encoding"));
                }
                let (x, y) = point[1..].split_at(P256_LEN);
                jwk.kty = "EC".to_owned();
                jwk.crv = Some("P-256".to_owned());
                jwk.x = Some(b64e(x));
                jwk.y = Some(b64e(y));
            }
        }
        Ok(jwk)
    }

    /// Signs `claims` as a JWT: header `{"alg","kid","typ"?}` (typ only when given), payload the
    /// JSON of `claims`, compact serialisation.
    ///
    /// # Errors
    /// [`JoseError::Malformed`] if `claims` is not a JSON object (a JWT claims set must be one),
    /// [`JoseError::Crypto`] if signing fails.
    pub fn sign_jwt(&self, claims: &Value, typ: Option<&str>) -> Result<String, JoseError> {
        #[derive(Serialize)]
        struct OutHeader<'a> {
            alg: &'a str,
            kid: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            typ: Option<&'a str>,
        }
        if !claims.is_object() {
            return Err(JoseError::Malformed("the claims must be a JSON object"));
        }
        let header = serde_json::to_vec(&OutHeader {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ,
        })?;
        let payload = serde_json::to_vec(claims)?;
        let mut token = b64e(&header);
        token.push('.');
        token.push_str(&b64e(&payload));
        let sig = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64e(&sig));
        Ok(token)
    }

    /// Signs `msg` with this key's algorithm; ES256 yields the fixed 64-byte `r || s` form.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.inner {
            KeyPairInner::Rsa(kp) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Alg::RS512 => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(padding, &rng, msg, &mut sig)
                    .map_err(|_| JoseError::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
            KeyPairInner::Ec(kp) => {
                let sig = kp
                    .sign(&rng, msg)
                    .map_err(|_| JoseError::Crypto("ECDSA signing failed"))?;
                if sig.as_ref().len() != 2 * P256_LEN {
                    return Err(JoseError::Crypto("unexpected ECDSA signature length"));
                }
                Ok(sig.as_ref().to_vec())
            }
        }
    }
}

/// The RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order without
/// whitespace, base64url without padding.
///
/// # Errors
/// [`JoseError::InvalidKey`] if a required member is missing or the key type is not RSA or EC.
pub fn thumbprint(jwk: &Jwk) -> Result<String, JoseError> {
    fn member<'a>(v: &'a Option<String>, what: &'static str) -> Result<&'a str, JoseError> {
        v.as_deref().ok_or(JoseError::InvalidKey(what))
    }
    // serde_json escapes the strings exactly as JSON requires; keys are written in sorted order.
    let json = |s: &str| serde_json::to_string(s);
    let canonical = match jwk.kty.as_str() {
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            json(member(&jwk.e, "RSA key without e")?)?,
            json(member(&jwk.n, "RSA key without n")?)?,
        ),
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            json(member(&jwk.crv, "EC key without crv")?)?,
            json(member(&jwk.x, "EC key without x")?)?,
            json(member(&jwk.y, "EC key without y")?)?,
        ),
        _ => return Err(JoseError::InvalidKey("only RSA and EC keys are supported")),
    };
    Ok(b64e(
        digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref(),
    ))
}

/// Verifies a compact JWS whose header `alg` is in `allowed` against `keys`, and returns the header
/// and the payload (which must be a JSON object). Claims are not checked here.
///
/// Key selection: with a `kid`, the key with that `kid`, which must fit the algorithm; without,
/// the single key that fits (several is an error, so a client cannot make us try each).
///
/// # Errors
/// A [`JoseError`] saying what is wrong; never panics on hostile input.
pub fn verify_jwt(
    token: &str,
    keys: &[Jwk],
    allowed: &[Alg],
) -> Result<(Header, Map<String, Value>), JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TooLong(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed(
            "it must have exactly three dot-separated parts",
        ));
    };

    // All three parts are decoded strictly before anything else, so a malformed token is
    // reported as such whatever part is wrong.
    let header_bytes = b64d(h64, "the header is not base64url without padding")?;
    let payload_bytes = b64d(p64, "the payload is not base64url without padding")?;
    let sig = b64d(s64, "the signature is not base64url without padding")?;
    let header_json: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| JoseError::Malformed("the header is not a JSON object"))?;
    let header = parse_header(&header_json, allowed)?;
    let key = select_key(&header, keys)?;

    // The signing input is the first two parts exactly as received.
    let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    verify_signature(header.alg, key, signing_input, &sig)?;

    let payload: Map<String, Value> = serde_json::from_slice(&payload_bytes)
        .map_err(|_| JoseError::Malformed("the payload is not a JSON object"))?;
    Ok((header, payload))
}

fn parse_header(json: &Map<String, Value>, allowed: &[Alg]) -> Result<Header, JoseError> {
    let alg_name = match json.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(JoseError::Malformed("the header's alg is not a string")),
        None => return Err(JoseError::Malformed("the header has no alg")),
    };
    let alg = Alg::from_str(alg_name)?;
    if !allowed.contains(&alg) {
        return Err(JoseError::UnsupportedAlg(alg_name.to_owned()));
    }
    // RFC 7515 §4.1.11: a recipient must reject extensions it does not understand; we understand
    // none, so any `crit` (even an empty one, which is itself invalid) is refused.
    if json.contains_key("crit") {
        return Err(JoseError::CriticalHeader);
    }
    let string_member = |name: &str, err: &'static str| match json.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JoseError::Malformed(err)),
    };
    Ok(Header {
        alg,
        kid: string_member("kid", "the header's kid is not a string")?,
        typ: string_member("typ", "the header's typ is not a string")?,
    })
}

fn select_key<'k>(header: &Header, keys: &'k [Jwk]) -> Result<&'k Jwk, JoseError> {
    let alg = header.alg;
    match &header.kid {
        Some(kid) => {
            let mut named = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()));
            let first = named
                .next()
                .ok_or_else(|| JoseError::UnknownKid(truncate(kid)))?;
            let mut fitting = std::iter::once(first).chain(named).filter(|k| k.fits(alg));
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                (Some(_), Some(_)) => Err(JoseError::AmbiguousKey(alg)),
                (None, _) => Err(JoseError::KeyAlgMismatch {
                    kid: truncate(kid),
                    alg,
                }),
            }
        }
        None => {
            let mut fitting = keys.iter().filter(|k| k.fits(alg));
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                (Some(_), Some(_)) => Err(JoseError::AmbiguousKey(alg)),
                (None, _) => Err(JoseError::NoSuitableKey(alg)),
            }
        }
    }
}

fn verify_signature(alg: Alg, key: &Jwk, msg: &[u8], sig: &[u8]) -> Result<(), JoseError> {
    match alg {
        Alg::RS256 | Alg::RS512 => {
            let n = key_bytes(&key.n, "RSA key without a valid n")?;
            let e = key_bytes(&key.e, "RSA key without a valid e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = bit_len(n);
            if bits < MIN_RSA_BITS {
                return Err(JoseError::InvalidKey("RSA key smaller than 2048 bits"));
            }
            if bits > MAX_RSA_BITS {
                return Err(JoseError::InvalidKey("RSA key larger than 8192 bits"));
            }
            if e.is_empty() {
                return Err(JoseError::InvalidKey("RSA key with a zero exponent"));
            }
            let params = if alg == Alg::RS512 {
                &signature::RSA_PKCS1_2048_8192_SHA512
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .map_err(|_| JoseError::BadSignature)
        }
        Alg::ES256 => {
            let x = key_bytes(&key.x, "EC key without a valid x")?;
            let y = key_bytes(&key.y, "EC key without a valid y")?;
            if x.len() != P256_LEN || y.len() != P256_LEN {
                return Err(JoseError::InvalidKey("P-256 coordinates must be 32 bytes"));
            }
            // JOSE uses the fixed r || s form, not DER (RFC 7518 §3.4).
            if sig.len() != 2 * P256_LEN {
                return Err(JoseError::BadSignature);
            }
            let mut point = Vec::with_capacity(1 + 2 * P256_LEN);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .verify(msg, sig)
                .map_err(|_| JoseError::BadSignature)
        }
    }
}

/// The at_hash / c_hash of OIDC Core §3.1.3.6: the left half of the hash the algorithm uses
/// (SHA-256 for RS256/ES256, SHA-512 for RS512) of the ASCII value, base64url.
#[must_use]
pub fn half_hash(alg: Alg, value: &str) -> String {
    let d = digest::digest(alg.digest(), value.as_bytes());
    let bytes = d.as_ref();
    b64e(&bytes[..bytes.len() / 2])
}

fn b64e(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url: only the URL-safe alphabet, no padding, canonical trailing bits.
fn b64d(s: &str, err: &'static str) -> Result<Vec<u8>, JoseError> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(JoseError::Malformed(err));
    }
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JoseError::Malformed(err))
}

fn key_bytes(member: &Option<String>, err: &'static str) -> Result<Vec<u8>, JoseError> {
    let s = member.as_deref().ok_or(JoseError::InvalidKey(err))?;
    b64d(s, err).map_err(|_| JoseError::InvalidKey(err))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bit length of a big-endian integer without leading zero bytes.
fn bit_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// Attacker-supplied strings end up in error messages; keep them short.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    const ALL: &[Alg] = &[Alg::RS256, Alg::RS512, Alg::ES256];

    // RFC 7515 Appendix A.2 (RS256) and A.3 (ES256): keys and compact serialisations produced by
    // the RFC authors' implementation.
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const A2_JWS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    // An RS512 JWT signed by Python's `cryptography` (OpenSSL) with a fresh RSA-2048 key.
    const PY_RS512_N: &str = "iWfUAJAJG9e1XWr9HzT7dqJ41jl_KrjSlgUSAKskQx8nXPvwckX3dd28a8m-H_AL4-TUXjN47XpWMUMPvAiGBiTIR3VVV0A--4-lQbRYuC7GGyf8-rREu-Av5I5qeYYAIXRqBcJoCc5Q5KV6o3reEj-qiiq01eK5NCH0loks7jRUDKFD5L07ARvdHA2MENFknkpJnvVyP7ChNskwEsPa3O8iTSeiYOTse-VmYsJwdZ7t8VQ2q9tAmw6vWqR2rr639VRtxTJT4FOctiMDGUkIaIbPkxz5gk2WIU8cLW1nt2L25uZh6ETkm5ipPk-SG1YYVZ44adAVl2jQm2XyjBQNQQ";
    const PY_RS512_JWT: &str = "eyJhbGciOiJSUzUxMiIsImtpZCI6InB5LXJzNTEyIiwidHlwIjoiSldUIn0.eyJpc3MiOiJweXRob24iLCJzdWIiOiJpbnRlcm9wIiwibiI6MX0.faTARxrvYKglyF1NNN-Up3Qzjq0agvGWOfPGid0LtC8nNYa4R1gvwFSjBIcvte9skfy5HhumwdjhLE_RA6HYGgLrjdLCUX16KiRMLjbp9DLw9yQJ5xXxS-0CgglxG10Bn5Qp53ATOOuLyo7l600ZGCtJ3Xi-bnmYqObRYAH01iEGSQenqfiAyFsyO5Q-x_PMbpEscKbMaAxlMaJYzHtE4SgBBHqIBD1NA8AZll9BaPYgqYf5TCmBHTzJ4HtNhrV1xFO0vG-WLVygCr1qtswShqkajV9ltUs73VvU3up8zMbqM8eFeD7fm_8IAlhwLFmRMm4mB26YAzzRo9semTXrvg";

    fn rsa_jwk(n: &str, kid: Option<&str>) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: kid.map(Into::into),
            alg: None,
            use_: None,
            n: Some(n.into()),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        }
    }

    fn a3_jwk() -> Jwk {
        Jwk {
            kty: "EC".into(),
            kid: None,
            alg: None,
            use_: None,
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some(A3_X.into()),
            y: Some(A3_Y.into()),
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://op.example", "sub": "alice", "n": 42})
    }

    /// Replaces part `i` of a compact JWS.
    fn with_part(token: &str, i: usize, new: &str) -> String {
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[i] = new;
        parts.join(".")
    }

    fn header_b64(v: &Value) -> String {
        b64e(&serde_json::to_vec(v).unwrap())
    }

    /// A token with an arbitrary header and payload, correctly signed by `key`.
    fn signed(key: &SigningKey, header: &Value, payload: &[u8]) -> String {
        let input = format!("{}.{}", header_b64(header), b64e(payload));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64e(&sig))
    }

    #[test]
    fn round_trip_all_algs() {
        for &alg in ALL {
            let key = SigningKey::generate(alg).unwrap();
            let token = key.sign_jwt(&claims(), Some("JWT")).unwrap();
            let (header, payload) = verify_jwt(&token, &[key.public_jwk()], &[alg]).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            assert_eq!(Value::Object(payload), claims());
            // Without typ the header has no typ member.
            let token = key.sign_jwt(&claims(), None).unwrap();
            let (header, _) = verify_jwt(&token, &[key.public_jwk()], ALL).unwrap();
            assert_eq!(header.typ, None);
        }
    }

    #[test]
    fn es256_signature_is_fixed_64_bytes() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let token = key.sign_jwt(&claims(), None).unwrap();
        let sig = URL_SAFE_NO_PAD
            .decode(token.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 64);
    }

    #[test]
    fn pkcs8_round_trip_keeps_key() {
        for &alg in ALL {
            let key = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &key.pkcs8()).unwrap();
            assert_eq!(again.kid(), key.kid());
            assert_eq!(again.public_jwk(), key.public_jwk());
            let token = again.sign_jwt(&claims(), None).unwrap();
            verify_jwt(&token, &[key.public_jwk()], &[alg]).unwrap();
        }
        let ec = SigningKey::generate(Alg::ES256).unwrap();
        assert!(SigningKey::from_pkcs8(Alg::RS256, &ec.pkcs8()).is_err());
        assert!(SigningKey::from_pkcs8(Alg::ES256, b"junk").is_err());
    }

    #[test]
    fn public_jwk_shape_and_kid_is_thumbprint() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let jwk = key.public_jwk();
        assert_eq!(jwk.kty, "EC");
        assert_eq!(jwk.crv.as_deref(), Some("P-256"));
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        assert_eq!(jwk.alg.as_deref(), Some("ES256"));
        assert_eq!(thumbprint(&jwk).unwrap(), key.kid());
        let v = serde_json::to_value(&jwk).unwrap();
        assert_eq!(v["use"], "sig");
        assert!(v.get("n").is_none());

        let key = SigningKey::generate(Alg::RS512).unwrap();
        let jwk = key.public_jwk();
        assert_eq!(jwk.kty, "RSA");
        assert_eq!(jwk.e.as_deref(), Some("AQAB"));
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk.n.unwrap()).unwrap().len(), 256);
    }

    #[test]
    fn tampering_is_detected() {
        for &alg in ALL {
            let key = SigningKey::generate(alg).unwrap();
            let keys = [key.public_jwk()];
            let token = key.sign_jwt(&claims(), None).unwrap();

            let other_header = header_b64(&json!({"alg": alg.as_str(), "kid": key.kid(), "x": 1}));
            assert!(matches!(
                verify_jwt(&with_part(&token, 0, &other_header), &keys, ALL),
                Err(JoseError::BadSignature)
            ));

            let other_payload = b64e(br#"{"iss":"https://op.example","sub":"mallory","n":42}"#);
            assert!(matches!(
                verify_jwt(&with_part(&token, 1, &other_payload), &keys, ALL),
                Err(JoseError::BadSignature)
            ));

            let sig = token.rsplit('.').next().unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
            raw[10] ^= 1;
            assert!(matches!(
                verify_jwt(&with_part(&token, 2, &b64e(&raw)), &keys, ALL),
                Err(JoseError::BadSignature)
            ));
            assert!(verify_jwt(&with_part(&token, 2, ""), &keys, ALL).is_err());
        }
    }

    #[test]
    fn none_and_hmac_are_refused() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let keys = [key.public_jwk()];
        let token = key.sign_jwt(&claims(), None).unwrap();
        for alg in ["none", "HS256", "RS384", "rs256", "PS256"] {
            let h = header_b64(&json!({"alg": alg, "kid": key.kid()}));
            let forged = with_part(&token, 0, &h);
            assert!(
                matches!(
                    verify_jwt(&forged, &keys, ALL),
                    Err(JoseError::UnsupportedAlg(_))
                ),
                "{alg}"
            );
            // `none` with an empty signature, the classic form.
            let forged = with_part(&forged, 2, "");
            assert!(matches!(
                verify_jwt(&forged, &keys, ALL),
                Err(JoseError::UnsupportedAlg(_))
            ));
        }
        // A supported alg that the caller did not allow.
        assert!(matches!(
            verify_jwt(&token, &keys, &[Alg::RS256]),
            Err(JoseError::UnsupportedAlg(_))
        ));
        // alg missing or not a string.
        for h in [json!({"kid": key.kid()}), json!({"alg": 1})] {
            assert!(matches!(
                verify_jwt(&with_part(&token, 0, &header_b64(&h)), &keys, ALL),
                Err(JoseError::Malformed(_))
            ));
        }
    }

    #[test]
    fn rs256_header_on_ec_key_is_refused() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let keys = [key.public_jwk()];
        let token = key.sign_jwt(&claims(), None).unwrap();
        let h = header_b64(&json!({"alg": "RS256", "kid": key.kid()}));
        assert!(matches!(
            verify_jwt(&with_part(&token, 0, &h), &keys, ALL),
            Err(JoseError::KeyAlgMismatch { .. })
        ));
        // Without a kid there is simply no RSA key.
        let h = header_b64(&json!({"alg": "RS256"}));
        assert!(matches!(
            verify_jwt(&with_part(&token, 0, &h), &keys, ALL),
            Err(JoseError::NoSuitableKey(Alg::RS256))
        ));
    }

    #[test]
    fn jwk_alg_member_must_match() {
        let key = SigningKey::generate(Alg::RS256).unwrap();
        let mut jwk = key.public_jwk();
        jwk.alg = Some("RS512".into());
        let token = key.sign_jwt(&claims(), None).unwrap();
        assert!(matches!(
            verify_jwt(&token, &[jwk.clone()], ALL),
            Err(JoseError::KeyAlgMismatch { .. })
        ));
        jwk.alg = None;
        jwk.use_ = Some("enc".into());
        assert!(matches!(
            verify_jwt(&token, &[jwk], ALL),
            Err(JoseError::KeyAlgMismatch { .. })
        ));
    }

    #[test]
    fn wrong_kid_is_refused() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let mut jwk = key.public_jwk();
        jwk.kid = Some("another".into());
        let token = key.sign_jwt(&claims(), None).unwrap();
        assert!(matches!(
            verify_jwt(&token, &[jwk], ALL),
            Err(JoseError::UnknownKid(_))
        ));
        // kid of a different key, whose signature check then fails.
        let other = SigningKey::generate(Alg::ES256).unwrap();
        let h = header_b64(&json!({"alg": "ES256", "kid": other.kid()}));
        assert!(matches!(
            verify_jwt(
                &with_part(&token, 0, &h),
                &[key.public_jwk(), other.public_jwk()],
                ALL
            ),
            Err(JoseError::BadSignature)
        ));
    }

    #[test]
    fn key_selection_without_kid() {
        let a = SigningKey::generate(Alg::ES256).unwrap();
        let b = SigningKey::generate(Alg::ES256).unwrap();
        let rsa = SigningKey::generate(Alg::RS256).unwrap();
        let no_kid = signed(&a, &json!({"alg": "ES256"}), b"{}");
        // The only EC key among others is chosen.
        verify_jwt(&no_kid, &[rsa.public_jwk(), a.public_jwk()], ALL).unwrap();
        assert!(matches!(
            verify_jwt(&no_kid, &[a.public_jwk(), b.public_jwk()], ALL),
            Err(JoseError::AmbiguousKey(Alg::ES256))
        ));
        assert!(matches!(
            verify_jwt(&no_kid, &[rsa.public_jwk()], ALL),
            Err(JoseError::NoSuitableKey(Alg::ES256))
        ));
    }

    #[test]
    fn structure_is_strict() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let keys = [key.public_jwk()];
        let token = key.sign_jwt(&claims(), None).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // Two or four parts.
        let two = format!("{}.{}", parts[0], parts[1]);
        let four = format!("{token}.{}", parts[2]);
        for t in [two, four, format!("{token}."), String::new()] {
            assert!(matches!(
                verify_jwt(&t, &keys, ALL),
                Err(JoseError::Malformed(_))
            ));
        }
        // Padding in any part.
        for (i, part) in parts.iter().enumerate() {
            let padded = with_part(&token, i, &format!("{part}=="));
            assert!(
                matches!(
                    verify_jwt(&padded, &keys, ALL),
                    Err(JoseError::Malformed(_))
                ),
                "part {i}"
            );
        }
        // Standard-alphabet characters, whitespace.
        // (Replacing one character: a signature need not contain `-` or `_` to translate.)
        for bad in ["+", "/"] {
            let standard = with_part(&token, 2, &format!("{bad}{}", &parts[2][1..]));
            assert!(matches!(
                verify_jwt(&standard, &keys, ALL),
                Err(JoseError::Malformed(_))
            ));
        }
        let space = with_part(&token, 1, &format!(" {}", parts[1]));
        assert!(matches!(
            verify_jwt(&space, &keys, ALL),
            Err(JoseError::Malformed(_))
        ));
        // Header or payload that are valid base64url but not JSON objects.
        let arr = with_part(&token, 0, &b64e(b"[1]"));
        assert!(matches!(
            verify_jwt(&arr, &keys, ALL),
            Err(JoseError::Malformed(_))
        ));
        // Too long.
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            verify_jwt(&long, &keys, ALL),
            Err(JoseError::TooLong(_))
        ));
    }

    #[test]
    fn payload_must_be_object_and_claims_must_be_object() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        assert!(key.sign_jwt(&json!([1, 2]), None).is_err());
        // A correctly signed non-object payload.
        let h = json!({"alg": "ES256", "kid": key.kid()});
        let token = signed(&key, &h, b"\"just a string\"");
        assert!(matches!(
            verify_jwt(&token, &[key.public_jwk()], ALL),
            Err(JoseError::Malformed(_))
        ));
    }

    #[test]
    fn crit_header_is_refused() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let h = json!({"alg": "ES256", "kid": key.kid(), "crit": ["exp"], "exp": 1});
        let token = signed(&key, &h, b"{}");
        assert!(matches!(
            verify_jwt(&token, &[key.public_jwk()], ALL),
            Err(JoseError::CriticalHeader)
        ));
    }

    #[test]
    fn small_rsa_modulus_is_refused() {
        // A 1024-bit modulus: rejected before any signature check.
        let n = b64e(&[0xc5; 128]);
        let jwk = rsa_jwk(&n, None);
        let token = with_part(A2_JWS, 0, "eyJhbGciOiJSUzI1NiJ9");
        assert!(matches!(
            verify_jwt(&token, &[jwk], ALL),
            Err(JoseError::InvalidKey(_))
        ));
    }

    #[test]
    fn rfc7515_a2_rs256_vector_verifies() {
        let (header, payload) = verify_jwt(A2_JWS, &[rsa_jwk(A2_N, None)], &[Alg::RS256]).unwrap();
        assert_eq!(header.alg, Alg::RS256);
        assert_eq!(header.kid, None);
        assert_eq!(payload["iss"], "joe");
        assert_eq!(payload["exp"], 1_300_819_380);
        assert_eq!(payload["http://example.com/is_root"], true);
        // The same token against RS512 only, or a flipped payload, fails.
        assert!(verify_jwt(A2_JWS, &[rsa_jwk(A2_N, None)], &[Alg::RS512]).is_err());
        let flipped = A2_JWS.replacen("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJqb2Ki", 1);
        assert!(verify_jwt(&flipped, &[rsa_jwk(A2_N, None)], ALL).is_err());
    }

    #[test]
    fn rfc7515_a3_es256_vector_verifies() {
        let (header, payload) = verify_jwt(A3_JWS, &[a3_jwk()], &[Alg::ES256]).unwrap();
        assert_eq!(header.alg, Alg::ES256);
        assert_eq!(payload["iss"], "joe");
        let mut wrong = a3_jwk();
        wrong.x = Some(b64e(&[7; 32]));
        assert!(verify_jwt(A3_JWS, &[wrong], ALL).is_err());
    }

    #[test]
    fn python_rs512_token_verifies() {
        let keys = [rsa_jwk(PY_RS512_N, Some("py-rs512"))];
        let (header, payload) = verify_jwt(PY_RS512_JWT, &keys, &[Alg::RS512]).unwrap();
        assert_eq!(header.alg, Alg::RS512);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(payload["sub"], "interop");
        // The RFC's RSA key is a different key.
        assert!(matches!(
            verify_jwt(PY_RS512_JWT, &[rsa_jwk(A2_N, Some("py-rs512"))], ALL),
            Err(JoseError::BadSignature)
        ));
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let mut jwk = rsa_jwk(n, Some("2011-04-29"));
        jwk.alg = Some("RS256".into());
        // kid and alg are not part of the thumbprint.
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        jwk.e = None;
        assert!(thumbprint(&jwk).is_err());
        jwk.kty = "oct".into();
        assert!(thumbprint(&jwk).is_err());
    }

    #[test]
    fn half_hash_is_left_half() {
        let at_hash = half_hash(Alg::RS256, "an-access-token");
        assert_eq!(at_hash.len(), 22);
        let full = digest::digest(&digest::SHA256, b"an-access-token");
        assert_eq!(at_hash, b64e(&full.as_ref()[..16]));
        assert_eq!(half_hash(Alg::ES256, "an-access-token"), at_hash);
        let rs512 = half_hash(Alg::RS512, "an-access-token");
        let full = digest::digest(&digest::SHA512, b"an-access-token");
        assert_eq!(rs512, b64e(&full.as_ref()[..32]));
        assert_eq!(rs512.len(), 43);
    }

    #[test]
    fn alg_names_and_serde() {
        for &alg in ALL {
            assert_eq!(alg.as_str().parse::<Alg>().unwrap(), alg);
            assert_eq!(
                serde_json::to_string(&alg).unwrap(),
                format!("\"{}\"", alg.as_str())
            );
        }
        assert!("none".parse::<Alg>().is_err());
        assert!("rs256".parse::<Alg>().is_err());
        assert!(serde_json::from_str::<Alg>("\"HS256\"").is_err());
    }

    #[test]
    fn jwk_serde_skips_none_and_ignores_unknown() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"secret","ext":true,"use":"sig"}"#,
        )
        .unwrap();
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        let out = serde_json::to_value(&jwk).unwrap();
        assert_eq!(
            out,
            json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA","use":"sig"})
        );
        let set: JwkSet =
            serde_json::from_str(r#"{"keys":[{"kty":"RSA","n":"AQ","e":"AQAB"}]}"#).unwrap();
        assert_eq!(set.keys.len(), 1);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let mut keys = vec![key.public_jwk()];
        keys.push(Jwk {
            kty: "EC".into(),
            kid: Some("bad".into()),
            alg: None,
            use_: None,
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some("!!".into()),
            y: None,
        });
        let h = header_b64(&json!({"alg": "ES256", "kid": "bad"}));
        for t in [
            "..",
            "...",
            ".",
            "a.b.c",
            "é.é.é",
            &format!("{h}.e30.AAAA"),
            &format!("{h}.e30."),
        ] {
            assert!(verify_jwt(t, &keys, ALL).is_err());
        }
        let long_kid = "k".repeat(10_000);
        let h = header_b64(&json!({"alg": "ES256", "kid": long_kid}));
        let err = verify_jwt(&format!("{h}.e30.AAAA"), &keys, ALL).unwrap_err();
        assert!(err.to_string().len() < 200);
    }
}

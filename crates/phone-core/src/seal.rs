//! The keystore's sealing primitives (keystore format 2), shared by the native keystore
//! (`vsc-authenticator`'s `keystore.json`) and the web keystore ([`crate::webstore`]), so both
//! wrap their keys the same way and a change to one cannot silently diverge from the other.
//!
//! * Argon2id(passcode, salt) runs once per unlock; HKDF-SHA256 splits its output into the
//!   wrapping input `W` (stays on the phone) and the verifier `V` (the server compares it).
//! * The data key (DEK) is wrapped under `HKDF(W ‖ S)`, where `S` is the server secret the
//!   server releases only for the right `V`.
//! * Every blob is AES-256-GCM with a fresh random 96-bit nonce and AAD naming its purpose.
//!
//! Pure Rust (RustCrypto), so the same bytes come out natively and in WebAssembly.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Length of every symmetric key and secret here (AES-256, HKDF-SHA256 output).
pub const KEY_LEN: usize = 32;
/// Length of the Argon2id salt.
pub const SALT_LEN: usize = 16;
/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;

/// Argon2id memory (KiB): 64 MiB, what a phone can afford once per unlock.
pub const ARGON2_M_KIB: u32 = 65536;
/// Argon2id passes.
pub const ARGON2_T: u32 = 3;
/// Argon2id lanes.
pub const ARGON2_P: u32 = 1;
/// The most memory a stored parameter set may ask for (a tampered file must not exhaust memory).
pub const ARGON2_MAX_M_KIB: u32 = 1 << 20;

/// AAD of the DEK wrapped under the passcode and the server secret.
pub const AAD_DEK_PASSCODE: &[u8] = b"vsc-keystore/v2 dek wrapped by passcode and server secret";
/// AAD of the DEK wrapped under the recovery key.
pub const AAD_DEK_RECOVERY: &[u8] = b"vsc-keystore/v1 dek wrapped by recovery key";
/// AAD label of the authentication key (followed by its SPKI).
pub const AAD_AUTH_KEY: &[u8] = b"vsc-keystore/v1 authentication key p256 pkcs8\n";
/// AAD label of the signing key (followed by its SPKI).
pub const AAD_SIGNING_KEY: &[u8] = b"vsc-keystore/v1 signing key rsa2048 pkcs8\n";
/// AAD label of the PIV slot 9A key (followed by its SPKI).
pub const AAD_PIV_AUTH_KEY: &[u8] = b"vsc-keystore/v1 piv 9a key p256 pkcs8\n";
/// AAD label of the PIV slot 9C key (followed by its SPKI).
pub const AAD_PIV_SIGN_KEY: &[u8] = b"vsc-keystore/v1 piv 9c key p256 pkcs8\n";

/// HKDF info of the wrapping input `W`.
const INFO_WRAP: &[u8] = b"vsc-keystore/v2 passcode wrapping input";
/// HKDF info of the verifier `V`.
const INFO_VERIFIER: &[u8] = b"vsc-keystore/v2 server verifier";
/// HKDF info of the DEK's wrapping key.
const INFO_KEK: &[u8] = b"vsc-keystore/v2 dek wrapping key";

/// Shortest passcode.
pub const PASSCODE_MIN: usize = 6;
/// Longest passcode.
pub const PASSCODE_MAX: usize = 64;

/// A cryptographic primitive failed (which one is named); nothing about secrets is said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cryptographic operation failed: {0}")]
pub struct CryptoError(pub &'static str);

/// Whether `passcode` is 6 to 64 ASCII digits, the one passcode rule of both keystores.
pub fn passcode_ok(passcode: &str) -> bool {
    (PASSCODE_MIN..=PASSCODE_MAX).contains(&passcode.len())
        && passcode.bytes().all(|b| b.is_ascii_digit())
}

/// Argon2id parameters as stored (field names are part of the keystore formats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Memory, KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
    /// The salt, standard base64.
    pub salt: String,
}

impl KdfParams {
    /// Today's parameters with a new random salt.
    pub fn generate() -> Result<KdfParams, CryptoError> {
        let mut salt = [0u8; SALT_LEN];
        random(&mut salt)?;
        Ok(KdfParams {
            algorithm: "argon2id".to_owned(),
            m_cost_kib: ARGON2_M_KIB,
            t_cost: ARGON2_T,
            p_cost: ARGON2_P,
            salt: B64.encode(salt),
        })
    }

    /// Refuses parameters no store of ours writes (a tampered file must not make the phone
    /// spend gigabytes or forever on one unlock).
    pub fn check(&self) -> Result<(), String> {
        if self.algorithm != "argon2id"
            || self.m_cost_kib > ARGON2_MAX_M_KIB
            || self.t_cost == 0
            || self.t_cost > 100
            || self.p_cost == 0
            || self.p_cost > 16
        {
            return Err("unexpected passcode key-derivation parameters".to_owned());
        }
        Ok(())
    }

    /// The salt's bytes.
    pub fn salt_bytes(&self) -> Result<[u8; SALT_LEN], String> {
        let salt = B64.decode(&self.salt).map_err(|e| format!("salt: {e}"))?;
        salt.as_slice()
            .try_into()
            .map_err(|_| format!("the salt is {} bytes, not {SALT_LEN}", salt.len()))
    }
}

/// An AES-256-GCM blob: nonce and ciphertext with its tag, standard base64 (field names are
/// part of the keystore formats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The 12-byte nonce.
    pub nonce: String,
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: String,
}

/// The passcode after the one Argon2id of an unlock: the wrapping input `W`, which never leaves
/// the phone, and the verifier `V`, which the server checks. Zeroized when dropped.
pub struct StretchedPasscode {
    wrap: Zeroizing<[u8; KEY_LEN]>,
    verifier: Zeroizing<[u8; KEY_LEN]>,
}

impl StretchedPasscode {
    /// Runs Argon2id over `passcode` with `kdf` (the slow step) and derives `W` and `V`.
    /// The caller has checked the passcode's format and the parameters.
    pub fn stretch(passcode: &[u8], kdf: &KdfParams) -> Result<StretchedPasscode, CryptoError> {
        let salt = kdf.salt_bytes().map_err(|_| CryptoError("Argon2id salt"))?;
        StretchedPasscode::from_argon2(&*argon2id(passcode, kdf, &salt)?)
    }

    /// `W` and `V` from the output of [`argon2id`].
    pub fn from_argon2(stretched: &[u8; KEY_LEN]) -> Result<StretchedPasscode, CryptoError> {
        Ok(StretchedPasscode {
            wrap: hkdf_sha256(&[stretched.as_slice()], INFO_WRAP)?,
            verifier: hkdf_sha256(&[stretched.as_slice()], INFO_VERIFIER)?,
        })
    }

    /// The verifier `V`, as the server receives it (standard base64).
    pub fn verifier_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.verifier.as_ref()))
    }

    /// The DEK's wrapping key: `HKDF(W ‖ S)`.
    pub fn kek(&self, secret: &[u8; KEY_LEN]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        dek_wrapping_key(&self.wrap, secret)
    }

    /// `(W, V)`, for a keystore that keeps them in its own type (the native one).
    pub fn into_parts(self) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
        (self.wrap, self.verifier)
    }

    /// Wraps `dek` under this passcode and `secret`.
    pub fn wrap_dek(
        &self,
        secret: &[u8; KEY_LEN],
        dek: &[u8; KEY_LEN],
    ) -> Result<Sealed, CryptoError> {
        seal(&*self.kek(secret)?, AAD_DEK_PASSCODE, dek.as_ref())
    }
}

impl fmt::Debug for StretchedPasscode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StretchedPasscode(<redacted>)")
    }
}

/// The DEK's wrapping key `HKDF(W ‖ S)` from the wrapping input `W` and the server secret `S`.
pub fn dek_wrapping_key(
    wrap: &[u8; KEY_LEN],
    secret: &[u8; KEY_LEN],
) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    hkdf_sha256(&[wrap.as_slice(), secret.as_slice()], INFO_KEK)
}

/// Argon2id(passcode, salt) with `kdf`'s costs, 256 bits out (from which [`StretchedPasscode`]
/// derives `W` and `V`; format-1 stores used it directly as the wrapping key).
pub fn argon2id(
    passcode: &[u8],
    kdf: &KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(KEY_LEN))
        .map_err(|_| CryptoError("Argon2id parameters"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passcode, salt, out.as_mut())
        .map_err(|_| CryptoError("Argon2id"))?;
    Ok(out)
}

/// AAD for a private-key blob: its purpose, then its public key, so blobs cannot be swapped.
pub fn key_aad(label: &[u8], spki: &[u8]) -> Vec<u8> {
    let mut aad = label.to_vec();
    aad.extend_from_slice(spki);
    aad
}

/// Fills `out` from the operating system's random source (Web Crypto in the browser).
pub fn random(out: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(out).map_err(|_| CryptoError("random number generator"))
}

/// A new random 256-bit key.
pub fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    random(key.as_mut())?;
    Ok(key)
}

/// HKDF-SHA256 (empty salt) over the concatenation of `ikm`, 32 bytes out.
pub fn hkdf_sha256(ikm: &[&[u8]], info: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let mut input = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN));
    for part in ikm {
        input.extend_from_slice(part);
    }
    // An empty salt, as the native store always used (HMAC pads it to zeros, as RFC 5869's
    // default salt).
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&[]), &input);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(info, out.as_mut())
        .map_err(|_| CryptoError("HKDF expand"))?;
    Ok(out)
}

fn cipher(key: &[u8; KEY_LEN]) -> Result<Aes256Gcm, CryptoError> {
    Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError("AES-256-GCM key"))
}

/// AES-256-GCM with a fresh random nonce.
pub fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Sealed, CryptoError> {
    let cipher = cipher(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    // The plaintext is a secret: the buffer it is encrypted in is wiped when dropped.
    let mut in_out = Zeroizing::new(plaintext.to_vec());
    cipher
        .encrypt_in_place(&Nonce::from(nonce), aad, &mut *in_out)
        .map_err(|_| CryptoError("AES-256-GCM seal"))?;
    Ok(Sealed {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(&*in_out),
    })
}

/// Opens a blob: `Ok(None)` when the key is wrong (or the blob or its AAD tampered with),
/// `Err` when the blob is not even well formed.
pub fn open(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &Sealed,
) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let nonce = B64
        .decode(&sealed.nonce)
        .map_err(|e| format!("nonce: {e}"))?;
    let nonce: [u8; NONCE_LEN] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| format!("the nonce is {} bytes, not {NONCE_LEN}", nonce.len()))?;
    let mut in_out = Zeroizing::new(
        B64.decode(&sealed.ciphertext)
            .map_err(|e| format!("ciphertext: {e}"))?,
    );
    let cipher = cipher(key).map_err(|e| e.to_string())?;
    match cipher.decrypt_in_place(&Nonce::from(nonce), aad, &mut *in_out) {
        Ok(()) => Ok(Some(in_out)),
        Err(_) => Ok(None),
    }
}

/// 32 bytes as a key, or `None` when the length is wrong.
pub fn as_key(bytes: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
    Some(Zeroizing::new(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = random_key().expect("key");
        let sealed = seal(&key, b"purpose a", b"secret bytes").expect("seal");
        let opened = open(&key, b"purpose a", &sealed).expect("well formed");
        assert_eq!(
            opened.as_deref().map(Vec::as_slice),
            Some(&b"secret bytes"[..])
        );
        // Another purpose (AAD) or another key does not open it.
        assert!(
            open(&key, b"purpose b", &sealed)
                .expect("well formed")
                .is_none()
        );
        let other = random_key().expect("key");
        assert!(
            open(&other, b"purpose a", &sealed)
                .expect("well formed")
                .is_none()
        );
        // A flipped ciphertext bit does not open either.
        let mut bytes = B64.decode(&sealed.ciphertext).expect("b64");
        bytes[0] ^= 1;
        let tampered = Sealed {
            nonce: sealed.nonce.clone(),
            ciphertext: B64.encode(bytes),
        };
        assert!(
            open(&key, b"purpose a", &tampered)
                .expect("well formed")
                .is_none()
        );
        // A malformed blob is an error, not a wrong key.
        let bad = Sealed {
            nonce: "AAAA".into(),
            ciphertext: sealed.ciphertext.clone(),
        };
        assert!(open(&key, b"purpose a", &bad).is_err());
        // Fresh nonces: the same plaintext seals differently.
        let again = seal(&key, b"purpose a", b"secret bytes").expect("seal");
        assert_ne!(again.nonce, sealed.nonce);
    }

    /// Known-answer test pinned from the native keystore's aws-lc-rs implementation (HKDF with
    /// an empty salt): moving to RustCrypto must not change a byte.
    #[test]
    fn hkdf_matches_rfc5869_empty_salt() {
        // RFC 5869 test case 3: IKM = 0x0b * 22, salt empty, info empty, L = 42; the first 32
        // bytes of its OKM.
        let ikm = [0x0bu8; 22];
        let okm = hkdf_sha256(&[&ikm[..11], &ikm[11..]], b"").expect("hkdf");
        assert_eq!(
            hex::encode(*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }

    #[test]
    fn passcode_rule() {
        assert!(passcode_ok("123456"));
        assert!(!passcode_ok("12345"));
        assert!(!passcode_ok("12345a"));
        assert!(!passcode_ok(&"1".repeat(65)));
    }
}

//! The web app's keystore: a JSON document the app keeps in IndexedDB, protected exactly as the
//! native `keystore.json` (format 2, [`crate::seal`]): a random data key (DEK) wrapped once
//! under `HKDF(W ‖ S)` (passcode stretched with Argon2id, server secret released only for the
//! right verifier) and once under the recovery key deposited with the server.
//!
//! Under the DEK it holds:
//! * the virtual smartcard's PIV keys (slots 9A and 9C, ECDSA P-256), sealed here because they
//!   sign digests computed by the workstation's middleware, which WebCrypto cannot do (it
//!   hashes the message itself);
//! * nothing else: the app's authentication (ECDSA P-256) and signing (RSA-2048) keys live in
//!   WebCrypto, wrapped (`wrapKey`, AES-GCM) under the *wrapping key* `HKDF(DEK, "vsc web
//!   keys")`, which the app imports non-extractable only while the store is unlocked.
//!
//! So a copy of the browser's storage alone is worthless, as with the native file: without the
//! server secret no passcode guess can be tested offline.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::signature::hazmat::PrehashSigner as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::csr;
use crate::seal::{self, CryptoError, KEY_LEN, KdfParams, Sealed, StretchedPasscode};

/// The document's `format` value.
pub const FORMAT: &str = "vsc-web-keystore";
/// The document's version.
pub const VERSION: u32 = 1;
/// HKDF info of the WebCrypto wrapping key.
const INFO_WEB_KEYS: &[u8] = b"vsc web keys";

/// Why the web keystore refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebStoreError {
    /// The passcode is not 6 to 64 digits.
    #[error("the passcode must be 6 to 64 digits")]
    PasscodeFormat,
    /// The DEK does not open: wrong passcode, or a secret that is not this store's.
    #[error("wrong passcode or secret")]
    WrongPasscodeOrSecret,
    /// The recovery key does not open the DEK.
    #[error("the recovery key does not open this keystore")]
    WrongRecoveryKey,
    /// A secret or key from the server is not 32 bytes of base64.
    #[error("the {0} from the server is not 32 bytes of base64")]
    SecretFormat(&'static str),
    /// The stored document cannot be read.
    #[error("the keystore in this browser cannot be read ({0}); enrol this browser again")]
    Corrupt(String),
    /// A primitive failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The PIV slot is neither `9a` nor `9c`.
    #[error("unknown smartcard slot '{0}' (expected 9a or 9c)")]
    Slot(String),
    /// A digest that is not 32 bytes.
    #[error("a smartcard signature is over a 32-byte digest, not {0} bytes")]
    DigestLength(usize),
    /// A certificate request could not be built.
    #[error(transparent)]
    Csr(#[from] csr::CsrError),
}

/// A sealed ECDSA P-256 private key (PKCS#8) with its public key (SPKI DER, base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealedEcKey {
    private_key: Sealed,
    public_key: String,
}

/// The stored document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WebStoreFile {
    format: String,
    version: u32,
    kdf: KdfParams,
    dek_by_passcode: Sealed,
    dek_by_recovery: Sealed,
    /// Slot 9A, slot 9C.
    piv_keys: [SealedEcKey; 2],
}

/// The PIV slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PivSlot {
    /// 9A, PIV Authentication.
    Authentication,
    /// 9C, Digital Signature.
    Signature,
}

impl PivSlot {
    /// Parses `9a` / `9c` (any case).
    pub fn parse(slot: &str) -> Result<PivSlot, WebStoreError> {
        match slot.to_ascii_lowercase().as_str() {
            "9a" => Ok(PivSlot::Authentication),
            "9c" => Ok(PivSlot::Signature),
            _ => Err(WebStoreError::Slot(slot.to_owned())),
        }
    }

    fn index(self) -> usize {
        match self {
            PivSlot::Authentication => 0,
            PivSlot::Signature => 1,
        }
    }

    fn aad(self) -> &'static [u8] {
        match self {
            PivSlot::Authentication => seal::AAD_PIV_AUTH_KEY,
            PivSlot::Signature => seal::AAD_PIV_SIGN_KEY,
        }
    }
}

/// A new web keystore and everything the app deposits with the server or keeps.
pub struct NewWebStore {
    /// The document to keep (JSON).
    pub store: String,
    /// The passcode verifier `V` (base64) to deposit.
    pub verifier: Zeroizing<String>,
    /// The server secret `S` (base64) to deposit; not kept by the app.
    pub secret: Zeroizing<String>,
    /// The recovery key (base64) to deposit; not kept by the app.
    pub recovery_key: Zeroizing<String>,
    /// The WebCrypto wrapping key (32 bytes).
    pub wrapping_key: Zeroizing<[u8; KEY_LEN]>,
    /// PKCS#10 request for the 9A key, DER, signed by it.
    pub piv_auth_csr: Vec<u8>,
    /// PKCS#10 request for the 9C key, DER, signed by it.
    pub piv_signing_csr: Vec<u8>,
}

impl fmt::Debug for NewWebStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewWebStore(<redacted>)")
    }
}

fn spki_der(key: &SigningKey) -> Result<Vec<u8>, CryptoError> {
    Ok(key
        .verifying_key()
        .to_public_key_der()
        .map_err(|_| CryptoError("encode P-256 public key"))?
        .into_vec())
}

fn new_p256() -> Result<SigningKey, CryptoError> {
    // Rejection sampling on raw random bytes: a 32-byte value is a valid scalar unless it is 0
    // or above the group order (probability about 2^-32).
    loop {
        let bytes = seal::random_key()?;
        if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
            return Ok(key);
        }
    }
}

/// A PKCS#10 request for `key`, signed by it (ECDSA with SHA-256).
fn p256_csr(key: &SigningKey, common_name: &str) -> Result<Vec<u8>, WebStoreError> {
    let info = csr::certification_request_info(&spki_der(key)?, common_name)?;
    let signature: Signature = key.sign(&info);
    Ok(csr::assemble(
        &info,
        csr::CsrAlgorithm::EcdsaP256Sha256,
        signature.to_der().as_bytes(),
    )?)
}

fn wrapping_key(dek: &[u8; KEY_LEN]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    seal::hkdf_sha256(&[dek.as_slice()], INFO_WEB_KEYS)
}

/// Makes a new store for `passcode` with new PIV keys (requests for `common_name`).
pub fn create(passcode: &str, common_name: &str) -> Result<NewWebStore, WebStoreError> {
    if !seal::passcode_ok(passcode) {
        return Err(WebStoreError::PasscodeFormat);
    }
    let kdf = KdfParams::generate()?;
    let stretched = StretchedPasscode::stretch(passcode.as_bytes(), &kdf)?;
    let secret = seal::random_key()?;
    let recovery = seal::random_key()?;
    let dek = seal::random_key()?;
    let mut piv_keys = Vec::with_capacity(2);
    let mut csrs = Vec::with_capacity(2);
    for slot in [PivSlot::Authentication, PivSlot::Signature] {
        let key = new_p256()?;
        let spki = spki_der(&key)?;
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|_| CryptoError("encode P-256 private key"))?;
        piv_keys.push(SealedEcKey {
            private_key: seal::seal(&dek, &seal::key_aad(slot.aad(), &spki), pkcs8.as_bytes())?,
            public_key: B64.encode(&spki),
        });
        csrs.push(p256_csr(&key, common_name)?);
    }
    let [piv_auth, piv_sign]: [SealedEcKey; 2] = piv_keys
        .try_into()
        .map_err(|_| CryptoError("two PIV keys"))?;
    let file = WebStoreFile {
        format: FORMAT.to_owned(),
        version: VERSION,
        dek_by_passcode: stretched.wrap_dek(&secret, &dek)?,
        dek_by_recovery: seal::seal(&recovery, seal::AAD_DEK_RECOVERY, dek.as_ref())?,
        kdf,
        piv_keys: [piv_auth, piv_sign],
    };
    let store =
        serde_json::to_string(&file).map_err(|_| CryptoError("serialise the web keystore"))?;
    let [piv_auth_csr, piv_signing_csr]: [Vec<u8>; 2] = csrs
        .try_into()
        .map_err(|_| CryptoError("two PIV requests"))?;
    Ok(NewWebStore {
        store,
        verifier: stretched.verifier_base64(),
        secret: Zeroizing::new(B64.encode(*secret)),
        recovery_key: Zeroizing::new(B64.encode(*recovery)),
        wrapping_key: wrapping_key(&dek)?,
        piv_auth_csr,
        piv_signing_csr,
    })
}

fn parse(store: &str) -> Result<WebStoreFile, WebStoreError> {
    let file: WebStoreFile =
        serde_json::from_str(store).map_err(|e| WebStoreError::Corrupt(e.to_string()))?;
    if file.format != FORMAT || file.version != VERSION {
        return Err(WebStoreError::Corrupt(format!(
            "format {} version {}",
            file.format, file.version
        )));
    }
    file.kdf.check().map_err(WebStoreError::Corrupt)?;
    Ok(file)
}

/// Runs Argon2id over `passcode` with the store's salt (the slow step, once per unlock). Says
/// nothing about whether the passcode is right: only the server can, from the verifier.
pub fn stretch(store: &str, passcode: &str) -> Result<StretchedPasscode, WebStoreError> {
    if !seal::passcode_ok(passcode) {
        return Err(WebStoreError::PasscodeFormat);
    }
    let file = parse(store)?;
    Ok(StretchedPasscode::stretch(passcode.as_bytes(), &file.kdf)?)
}

fn key_from_base64(s: &str, what: &'static str) -> Result<Zeroizing<[u8; KEY_LEN]>, WebStoreError> {
    let bytes = Zeroizing::new(
        B64.decode(s.trim())
            .map_err(|_| WebStoreError::SecretFormat(what))?,
    );
    seal::as_key(&bytes).ok_or(WebStoreError::SecretFormat(what))
}

/// An opened store: the wrapping key and the PIV keys. Zeroized when dropped.
pub struct UnlockedWebStore {
    wrapping_key: Zeroizing<[u8; KEY_LEN]>,
    piv: [SigningKey; 2],
}

impl fmt::Debug for UnlockedWebStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockedWebStore(<redacted>)")
    }
}

fn open_with_dek(
    file: &WebStoreFile,
    dek: &[u8; KEY_LEN],
) -> Result<UnlockedWebStore, WebStoreError> {
    let open_piv = |slot: PivSlot| -> Result<SigningKey, WebStoreError> {
        let sealed = &file.piv_keys[slot.index()];
        let spki = B64
            .decode(&sealed.public_key)
            .map_err(|e| WebStoreError::Corrupt(format!("smartcard public key: {e}")))?;
        let pkcs8 = seal::open(dek, &seal::key_aad(slot.aad(), &spki), &sealed.private_key)
            .map_err(WebStoreError::Corrupt)?
            .ok_or_else(|| {
                WebStoreError::Corrupt("a smartcard key does not open with the data key".into())
            })?;
        let key = SigningKey::from_pkcs8_der(&pkcs8)
            .map_err(|e| WebStoreError::Corrupt(format!("smartcard key: {e}")))?;
        if spki_der(&key)? != spki {
            return Err(WebStoreError::Corrupt(
                "a smartcard key does not match its public key".into(),
            ));
        }
        Ok(key)
    };
    Ok(UnlockedWebStore {
        wrapping_key: wrapping_key(dek)?,
        piv: [
            open_piv(PivSlot::Authentication)?,
            open_piv(PivSlot::Signature)?,
        ],
    })
}

/// Opens the store with the stretched passcode and the secret the server released for its
/// verifier (the server has counted the attempt).
pub fn unlock(
    store: &str,
    stretched: &StretchedPasscode,
    secret_b64: &str,
) -> Result<UnlockedWebStore, WebStoreError> {
    let file = parse(store)?;
    let secret = key_from_base64(secret_b64, "secret")?;
    let kek = stretched.kek(&secret)?;
    let dek = seal::open(&kek, seal::AAD_DEK_PASSCODE, &file.dek_by_passcode)
        .map_err(WebStoreError::Corrupt)?
        .ok_or(WebStoreError::WrongPasscodeOrSecret)?;
    let dek = seal::as_key(&dek).ok_or_else(|| WebStoreError::Corrupt("data key length".into()))?;
    open_with_dek(&file, &dek)
}

/// A new passcode prepared for an RA unlock: stretched (Argon2id, with new parameters) and with
/// a new server secret. Its verifier and secret go to the server with the unlock code; once the
/// server has released the recovery key, [`install_passcode`] re-wraps the data key under it.
/// (The server must hold exactly the verifier and secret the store is wrapped with: so they are
/// made first, as the native `redeem_unlock` does.)
pub struct NewPasscode {
    kdf: KdfParams,
    stretched: StretchedPasscode,
    secret: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for NewPasscode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPasscode(<redacted>)")
    }
}

impl NewPasscode {
    /// Checks the passcode rule and stretches `passcode` (the slow step).
    pub fn new(passcode: &str) -> Result<NewPasscode, WebStoreError> {
        if !seal::passcode_ok(passcode) {
            return Err(WebStoreError::PasscodeFormat);
        }
        let kdf = KdfParams::generate()?;
        let stretched = StretchedPasscode::stretch(passcode.as_bytes(), &kdf)?;
        Ok(NewPasscode {
            kdf,
            stretched,
            secret: seal::random_key()?,
        })
    }

    /// The new verifier `V` (base64) for the server.
    pub fn verifier_base64(&self) -> Zeroizing<String> {
        self.stretched.verifier_base64()
    }

    /// The new server secret `S` (base64) for the server.
    pub fn secret_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(*self.secret))
    }
}

/// After an RA unlock: installs `new_passcode` (whose verifier and secret the server took with
/// the unlock code) using the recovery key the server released. Returns the new document; the
/// keys, and so the certificates, stay the same. A wrong recovery key changes nothing.
pub fn install_passcode(
    store: &str,
    new_passcode: &NewPasscode,
    recovery_b64: &str,
) -> Result<String, WebStoreError> {
    let mut file = parse(store)?;
    let recovery = key_from_base64(recovery_b64, "recovery key")?;
    let dek = seal::open(&recovery, seal::AAD_DEK_RECOVERY, &file.dek_by_recovery)
        .map_err(WebStoreError::Corrupt)?
        .ok_or(WebStoreError::WrongRecoveryKey)?;
    let dek = seal::as_key(&dek).ok_or_else(|| WebStoreError::Corrupt("data key length".into()))?;
    // Prove the DEK opens the keys before committing to it.
    drop(open_with_dek(&file, &dek)?);
    file.kdf = new_passcode.kdf.clone();
    file.dek_by_passcode = new_passcode
        .stretched
        .wrap_dek(&new_passcode.secret, &dek)?;
    Ok(serde_json::to_string(&file).map_err(|_| CryptoError("serialise the web keystore"))?)
}

/// The public key (SPKI DER) of a PIV slot, readable without the passcode.
pub fn piv_spki(store: &str, slot: PivSlot) -> Result<Vec<u8>, WebStoreError> {
    let file = parse(store)?;
    B64.decode(&file.piv_keys[slot.index()].public_key)
        .map_err(|e| WebStoreError::Corrupt(format!("smartcard public key: {e}")))
}

impl UnlockedWebStore {
    /// The WebCrypto wrapping key (import it non-extractable, AES-GCM, wrapKey/unwrapKey).
    pub fn wrapping_key(&self) -> &[u8; KEY_LEN] {
        &self.wrapping_key
    }

    /// ECDSA P-256 with a PIV key over a digest computed elsewhere (by the workstation's
    /// middleware); DER signature.
    pub fn sign_piv_digest(&self, slot: PivSlot, digest: &[u8]) -> Result<Vec<u8>, WebStoreError> {
        if digest.len() != 32 {
            return Err(WebStoreError::DigestLength(digest.len()));
        }
        let signature: Signature = self.piv[slot.index()]
            .sign_prehash(digest)
            .map_err(|_| CryptoError("ECDSA P-256 sign"))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

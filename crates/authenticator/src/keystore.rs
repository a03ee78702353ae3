//! The software keystore: the card's two private keys, sealed in one file on the phone and
//! opened with the person's passcode.
//!
//! # What is in `keystore.json`
//!
//! * a format version and the Argon2id parameters (m = 64 MiB, t = 3, p = 1) with a random
//!   16-byte salt;
//! * a random 256-bit data-encryption key (DEK), wrapped twice with AES-256-GCM: once under the
//!   key Argon2id derives from the passcode, once under a random 256-bit *recovery key*. The
//!   recovery key is deposited with the server at enrolment and released back to this phone only
//!   after an RA unlock, so a locked-out person gets a new passcode without new keys;
//! * the PKCS#8 private keys (ECDSA P-256 for authentication, RSA-2048 for signing, and the
//!   virtual smartcard's two ECDSA P-256 PIV keys for slots 9A and 9C) sealed under
//!   the DEK. Every sealed blob carries AAD naming its purpose (and, for a private key, its
//!   public key), so blobs cannot be swapped for one another;
//! * the public keys (SubjectPublicKeyInfo DER, base64), the failed-attempt counter and the lock
//!   flag, in clear.
//!
//! The file is mode 0600 and is always replaced through a temporary file and a rename.
//!
//! # What the counter does and does not protect
//!
//! A wrong passcode is counted and the count is saved *before* the answer is given; the third
//! wrong passcode in a row locks the store, and a locked store refuses even the right passcode
//! until an RA unlock supplies the recovery key. In this software store that rule is enforced by
//! the app: somebody who copies `keystore.json` off the device can guess passcodes offline,
//! slowed only by Argon2id, and can reset the counter by editing the file. A hardware-backed
//! store (Secure Enclave, StrongBox) keeps the keys and the counter in silicon, where neither can
//! be copied or rewound. The [`Keystore`] trait is the boundary such stores will implement.
//!
//! # Limits of the software store
//!
//! aws-lc-rs offers RSA PKCS#1 v1.5 signing only with SHA-256/384/512 over a message; signatures
//! over a digest (EPS `rsa-sha1` and `rsa-sha256`) go through `vsc-rsa-digest`, which
//! calls the same AWS-LC library, so the unlocked keys keep the signing key's PKCS#8 bytes
//! (zeroized on drop) for it.

use std::fmt;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::fsutil;

/// Wrong passcodes in a row before the store locks.
pub const MAX_ATTEMPTS: u32 = 3;

/// The `keystore.json` format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Argon2id memory cost, KiB (64 MiB).
const ARGON2_M_KIB: u32 = 65536;
/// Argon2id passes.
const ARGON2_T: u32 = 3;
/// Argon2id lanes.
const ARGON2_P: u32 = 1;
/// Largest memory cost accepted from a file (1 GiB), so a damaged file cannot exhaust memory.
const ARGON2_MAX_M_KIB: u32 = 1 << 20;
const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;

const AAD_DEK_PASSCODE: &[u8] = b"vsc-keystore/v1 dek wrapped by passcode";
const AAD_DEK_RECOVERY: &[u8] = b"vsc-keystore/v1 dek wrapped by recovery key";
const AAD_AUTH_KEY: &[u8] = b"vsc-keystore/v1 authentication key p256 pkcs8\n";
const AAD_SIGNING_KEY: &[u8] = b"vsc-keystore/v1 signing key rsa2048 pkcs8\n";
const AAD_PIV_AUTH_KEY: &[u8] = b"vsc-keystore/v1 piv 9a key p256 pkcs8\n";
const AAD_PIV_SIGN_KEY: &[u8] = b"vsc-keystore/v1 piv 9c key p256 pkcs8\n";

/// Shortest passcode.
const PASSCODE_MIN: usize = 6;
/// Longest passcode.
const PASSCODE_MAX: usize = 64;

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passcode is not 6 to 64 digits.
    #[error("a passcode is 6 or more digits (at most 64), and nothing but digits; choose another")]
    PasscodeFormat,
    /// Wrong passcode; the store is not locked yet.
    #[error(
        "wrong passcode; {remaining} more wrong attempt(s) and the card locks until your RA or Local Smartcard Administrator unlocks it"
    )]
    WrongPasscode {
        /// Attempts left before the store locks.
        remaining: u32,
    },
    /// Too many wrong passcodes.
    #[error(
        "the card is locked after {} wrong passcodes; ask your RA or Local Smartcard Administrator to unlock your card",
        MAX_ATTEMPTS
    )]
    Locked,
    /// The recovery key does not open this store.
    #[error(
        "the recovery key does not open this phone's keystore (nothing was changed); ask your RA for a new unlock code, or enrol again if this phone's card was replaced"
    )]
    WrongRecoveryKey,
    /// A recovery key that is not 32 bytes of base64.
    #[error(
        "a recovery key is 32 bytes in base64, and this one is not ({0}); this is a server fault, tell your RA"
    )]
    RecoveryKeyFormat(String),
    /// `create` found a file in the way.
    #[error(
        "a keystore already exists at {}; it was not overwritten because it may hold keys you still need (move it away first if you really mean to start again)",
        path.display()
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// `open` found nothing.
    #[error("there is no keystore at {}; enrol this phone first", path.display())]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file could not be read or written.
    #[error("could not {action} {}: {source}; check the directory exists and that you may write to it", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not make sense.
    #[error(
        "the keystore at {} is damaged ({reason}); restore it from a backup, or ask your RA for a new card and enrol again",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer app.
    #[error(
        "the keystore at {} has format version {found}, but this app reads version {}; update the app",
        path.display(),
        FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// The cryptographic library refused an operation that cannot fail on valid input.
    #[error(
        "the cryptographic operation '{0}' failed; this is a bug or a broken crypto library, please report it"
    )]
    Crypto(&'static str),
}

/// A passcode: 6 to 64 ASCII digits. Never printed, zeroized when dropped.
#[derive(Clone)]
pub struct Passcode(Zeroizing<String>);

impl Passcode {
    /// Checks and wraps a passcode as typed.
    pub fn new(s: impl Into<String>) -> Result<Passcode, KeystoreError> {
        let s = Zeroizing::new(s.into());
        if !(PASSCODE_MIN..=PASSCODE_MAX).contains(&s.len())
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(KeystoreError::PasscodeFormat);
        }
        Ok(Passcode(s))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passcode(<redacted>)")
    }
}

/// The 256-bit key that unwraps the DEK without the passcode. Zeroized when dropped.
#[derive(Clone)]
pub struct RecoveryKey(Zeroizing<[u8; KEY_LEN]>);

impl RecoveryKey {
    fn generate() -> Result<RecoveryKey, KeystoreError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random(key.as_mut())?;
        Ok(RecoveryKey(key))
    }

    /// Standard base64, as deposited with the server.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_ref()))
    }

    /// Parses standard base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<RecoveryKey, KeystoreError> {
        let bytes = Zeroizing::new(
            B64.decode(s.trim())
                .map_err(|e| KeystoreError::RecoveryKeyFormat(format!("not base64: {e}")))?,
        );
        let array: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeystoreError::RecoveryKeyFormat(format!("{} bytes", bytes.len())))?;
        Ok(RecoveryKey(Zeroizing::new(array)))
    }
}

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

/// Operations that need the private keys. The unlocked software store ([`UnlockedKeys`])
/// implements it; a hardware-backed store would implement it with keys that never leave silicon.
pub trait Keystore {
    /// The authentication key's SubjectPublicKeyInfo (DER).
    fn auth_spki(&self) -> &[u8];
    /// The signing key's SubjectPublicKeyInfo (DER).
    fn signing_spki(&self) -> &[u8];
    /// A PKCS#10 request for the authentication key, signed by that key (proof of possession),
    /// ECDSA with SHA-256.
    fn auth_csr_der(&self, common_name: &str) -> Result<Vec<u8>, KeystoreError>;
    /// A PKCS#10 request for the signing key, signed by that key, sha256WithRSAEncryption.
    fn signing_csr_der(&self, common_name: &str) -> Result<Vec<u8>, KeystoreError>;
    /// ECDSA P-256 with SHA-256 over `msg`; ASN.1 DER signature.
    fn sign_auth(&self, msg: &[u8]) -> Result<Vec<u8>, KeystoreError>;
    /// ECDSA P-256 over a SHA-256 digest computed elsewhere; ASN.1 DER signature.
    fn sign_auth_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError>;
    /// RSA PKCS#1 v1.5 with SHA-256 over `msg`.
    fn sign_rsa_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, KeystoreError>;
    /// RSA PKCS#1 v1.5 over a SHA-256 digest computed elsewhere.
    fn sign_rsa_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError>;
    /// RSA PKCS#1 v1.5 over a SHA-1 or SHA-256 digest computed elsewhere (EPS `rsa-sha1` and
    /// `rsa-sha256`).
    fn sign_rsa_digest(
        &self,
        algorithm: vsc_rsa_digest::DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeystoreError>;
    /// A PKCS#10 request for a virtual-smartcard key, signed by that key; `None` for a store
    /// made before the card existed.
    fn piv_csr_der(&self, key: PivKey, common_name: &str)
    -> Result<Option<Vec<u8>>, KeystoreError>;
    /// ECDSA P-256 with a virtual-smartcard key over a SHA-256-sized digest computed elsewhere
    /// (by the workstation's middleware); ASN.1 DER signature.
    fn sign_piv_digest(&self, key: PivKey, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError>;
}

/// Argon2id parameters as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KdfParams {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// An AES-256-GCM blob: nonce and ciphertext with its tag, base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

/// A sealed ECDSA P-256 private key with its public key (SPKI, base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealedEcKey {
    private_key: Sealed,
    public_key: String,
}

/// The virtual smartcard's two key slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PivKey {
    /// Slot 9A, PIV Authentication.
    Authentication,
    /// Slot 9C, Digital Signature.
    Signature,
}

impl PivKey {
    fn index(self) -> usize {
        match self {
            PivKey::Authentication => 0,
            PivKey::Signature => 1,
        }
    }

    fn aad(self) -> &'static [u8] {
        match self {
            PivKey::Authentication => AAD_PIV_AUTH_KEY,
            PivKey::Signature => AAD_PIV_SIGN_KEY,
        }
    }
}

/// The on-disk form.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeystoreFile {
    version: u32,
    kdf: KdfParams,
    dek_by_passcode: Sealed,
    dek_by_recovery: Sealed,
    auth_private_key: Sealed,
    signing_private_key: Sealed,
    auth_public_key: String,
    signing_public_key: String,
    /// The virtual smartcard's keys (slot 9A, slot 9C): sealed private key and public key.
    /// Absent in stores made before the card existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    piv_keys: Option<[SealedEcKey; 2]>,
    failed_attempts: u32,
    locked: bool,
}

/// A keystore file on disk, not yet unlocked: public keys and counter only.
pub struct SoftwareKeystore {
    path: PathBuf,
    file: KeystoreFile,
    auth_spki: Vec<u8>,
    signing_spki: Vec<u8>,
}

impl fmt::Debug for SoftwareKeystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKeystore")
            .field("path", &self.path)
            .field("failed_attempts", &self.file.failed_attempts)
            .field("locked", &self.file.locked)
            .finish_non_exhaustive()
    }
}

impl SoftwareKeystore {
    /// Generates both key pairs, a DEK and a recovery key, and writes a new store at `path`
    /// protected by `passcode`. Refuses to overwrite an existing file. The recovery key is
    /// returned once, to be deposited with the server; it is not kept here.
    pub fn create(
        path: &Path,
        passcode: &Passcode,
    ) -> Result<(SoftwareKeystore, RecoveryKey), KeystoreError> {
        let (store, recovery, keys) = SoftwareKeystore::create_with_keys(path, passcode)?;
        drop(keys);
        Ok((store, recovery))
    }

    /// [`SoftwareKeystore::create`], also handing back the keys just made, so the caller can
    /// build its certificate requests without running Argon2id a second time.
    pub(crate) fn create_with_keys(
        path: &Path,
        passcode: &Passcode,
    ) -> Result<(SoftwareKeystore, RecoveryKey, UnlockedKeys), KeystoreError> {
        if path.exists() {
            return Err(KeystoreError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        random(dek.as_mut())?;
        let recovery = RecoveryKey::generate()?;
        let mut salt = [0u8; SALT_LEN];
        random(&mut salt)?;
        let kdf = KdfParams {
            algorithm: "argon2id".to_owned(),
            m_cost_kib: ARGON2_M_KIB,
            t_cost: ARGON2_T,
            p_cost: ARGON2_P,
            salt: B64.encode(salt),
        };
        let kek = derive_kek(passcode, &kdf, &salt)?;

        let auth = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| KeystoreError::Crypto("generate ECDSA P-256 key"))?;
        let auth_pkcs8 = auth
            .to_pkcs8v1()
            .map_err(|_| KeystoreError::Crypto("serialise ECDSA key"))?;
        let auth_spki = ec_spki(&auth)?;
        let signing = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| KeystoreError::Crypto("generate RSA-2048 key"))?;
        let signing_pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&signing)
            .map_err(|_| KeystoreError::Crypto("serialise RSA key"))?;
        let signing_spki = rsa_spki(&signing)?;
        let (piv_auth, sealed_piv_auth) = new_piv_key(&dek, PivKey::Authentication)?;
        let (piv_sign, sealed_piv_sign) = new_piv_key(&dek, PivKey::Signature)?;

        let file = KeystoreFile {
            version: FORMAT_VERSION,
            dek_by_passcode: seal(&kek, AAD_DEK_PASSCODE, dek.as_ref())?,
            dek_by_recovery: seal(&recovery.0, AAD_DEK_RECOVERY, dek.as_ref())?,
            auth_private_key: seal(
                &dek,
                &key_aad(AAD_AUTH_KEY, &auth_spki),
                auth_pkcs8.as_ref(),
            )?,
            signing_private_key: seal(
                &dek,
                &key_aad(AAD_SIGNING_KEY, &signing_spki),
                signing_pkcs8.as_ref(),
            )?,
            kdf,
            auth_public_key: B64.encode(&auth_spki),
            signing_public_key: B64.encode(&signing_spki),
            piv_keys: Some([sealed_piv_auth, sealed_piv_sign]),
            failed_attempts: 0,
            locked: false,
        };
        let keys = UnlockedKeys {
            auth,
            signing,
            signing_pkcs8: Zeroizing::new(signing_pkcs8.as_ref().to_vec()),
            piv: Some([piv_auth, piv_sign]),
            auth_spki: auth_spki.clone(),
            signing_spki: signing_spki.clone(),
        };
        let store = SoftwareKeystore {
            path: path.to_owned(),
            file,
            auth_spki,
            signing_spki,
        };
        // Checked again just before writing: key generation takes a moment.
        if path.exists() {
            return Err(KeystoreError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        store.save()?;
        Ok((store, recovery, keys))
    }

    /// Reads the store at `path` (nothing is decrypted).
    pub fn open(path: &Path) -> Result<SoftwareKeystore, KeystoreError> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KeystoreError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                KeystoreError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let corrupt = |reason: String| KeystoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        // Read the version first so a newer format gets the right message.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("not a keystore file: {e}")))?;
        if version.version != FORMAT_VERSION {
            return Err(KeystoreError::UnsupportedVersion {
                path: path.to_owned(),
                found: version.version,
            });
        }
        let file: KeystoreFile = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("not a keystore file: {e}")))?;
        let kdf = &file.kdf;
        if kdf.algorithm != "argon2id"
            || kdf.m_cost_kib > ARGON2_MAX_M_KIB
            || kdf.t_cost == 0
            || kdf.t_cost > 100
            || kdf.p_cost == 0
            || kdf.p_cost > 16
        {
            return Err(corrupt(
                "unexpected passcode key-derivation parameters".to_owned(),
            ));
        }
        let auth_spki = B64
            .decode(&file.auth_public_key)
            .map_err(|e| corrupt(format!("authentication public key: {e}")))?;
        let signing_spki = B64
            .decode(&file.signing_public_key)
            .map_err(|e| corrupt(format!("signing public key: {e}")))?;
        Ok(SoftwareKeystore {
            path: path.to_owned(),
            file,
            auth_spki,
            signing_spki,
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wrong passcodes since the last success.
    pub fn failed_attempts(&self) -> u32 {
        self.file.failed_attempts
    }

    /// Locked after [`MAX_ATTEMPTS`] wrong passcodes.
    pub fn is_locked(&self) -> bool {
        self.file.locked
    }

    /// Wrong passcodes still allowed before the store locks (0 when locked).
    pub fn remaining_attempts(&self) -> u32 {
        if self.file.locked {
            0
        } else {
            MAX_ATTEMPTS.saturating_sub(self.file.failed_attempts)
        }
    }

    /// The authentication key's SubjectPublicKeyInfo (DER), readable without the passcode.
    pub fn auth_spki(&self) -> &[u8] {
        &self.auth_spki
    }

    /// A virtual-smartcard key's SubjectPublicKeyInfo (DER), if this store has the card's keys.
    pub fn piv_spki(&self, key: PivKey) -> Option<Vec<u8>> {
        let sealed = self.file.piv_keys.as_ref()?;
        B64.decode(&sealed[key.index()].public_key).ok()
    }

    /// The signing key's SubjectPublicKeyInfo (DER), readable without the passcode.
    pub fn signing_spki(&self) -> &[u8] {
        &self.signing_spki
    }

    /// Opens the keys with `passcode`.
    ///
    /// A wrong passcode is counted and the count saved before this returns
    /// [`KeystoreError::WrongPasscode`]; the [`MAX_ATTEMPTS`]th locks the store
    /// ([`KeystoreError::Locked`]). A locked store refuses every passcode. Success resets the count.
    pub fn unlock(&mut self, passcode: &Passcode) -> Result<UnlockedKeys, KeystoreError> {
        if self.file.locked {
            return Err(KeystoreError::Locked);
        }
        let salt = self.salt()?;
        let kek = derive_kek(passcode, &self.file.kdf, &salt)?;
        let dek = match open_sealed(&kek, AAD_DEK_PASSCODE, &self.file.dek_by_passcode) {
            Ok(Some(dek)) => dek,
            Ok(None) => return Err(self.count_failure()),
            Err(reason) => return Err(self.corrupt(reason)),
        };
        let dek = self.as_key(&dek)?;
        let keys = self.open_keys(&dek)?;
        if self.file.failed_attempts != 0 {
            let mut file = self.file.clone();
            file.failed_attempts = 0;
            self.replace(file)?;
        }
        Ok(keys)
    }

    /// Sets a new passcode using the recovery key the server released after an RA unlock: the
    /// DEK is re-wrapped under the new passcode with a new salt, the counter cleared and the lock
    /// lifted. The keys, and so the certificates, stay the same. A wrong recovery key changes
    /// nothing.
    pub fn reset_passcode(
        &mut self,
        recovery: &RecoveryKey,
        new_passcode: &Passcode,
    ) -> Result<(), KeystoreError> {
        let dek = match open_sealed(&recovery.0, AAD_DEK_RECOVERY, &self.file.dek_by_recovery) {
            Ok(Some(dek)) => dek,
            Ok(None) => return Err(KeystoreError::WrongRecoveryKey),
            Err(reason) => return Err(self.corrupt(reason)),
        };
        let dek = self.as_key(&dek)?;
        // Prove the DEK opens the keys before committing to it.
        drop(self.open_keys(&dek)?);

        let mut salt = [0u8; SALT_LEN];
        random(&mut salt)?;
        let mut file = self.file.clone();
        file.kdf = KdfParams {
            algorithm: "argon2id".to_owned(),
            m_cost_kib: ARGON2_M_KIB,
            t_cost: ARGON2_T,
            p_cost: ARGON2_P,
            salt: B64.encode(salt),
        };
        let kek = derive_kek(new_passcode, &file.kdf, &salt)?;
        file.dek_by_passcode = seal(&kek, AAD_DEK_PASSCODE, dek.as_ref())?;
        file.failed_attempts = 0;
        file.locked = false;
        self.replace(file)
    }

    fn salt(&self) -> Result<[u8; SALT_LEN], KeystoreError> {
        let salt = B64
            .decode(&self.file.kdf.salt)
            .map_err(|e| self.corrupt(format!("salt: {e}")))?;
        salt.as_slice()
            .try_into()
            .map_err(|_| self.corrupt(format!("the salt is {} bytes, not {SALT_LEN}", salt.len())))
    }

    fn as_key(&self, bytes: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| self.corrupt("the data key has the wrong length".to_owned()))?;
        Ok(Zeroizing::new(array))
    }

    fn open_keys(&self, dek: &[u8; KEY_LEN]) -> Result<UnlockedKeys, KeystoreError> {
        let auth_pkcs8 = open_sealed(
            dek,
            &key_aad(AAD_AUTH_KEY, &self.auth_spki),
            &self.file.auth_private_key,
        )
        .map_err(|r| self.corrupt(r))?
        .ok_or_else(|| {
            self.corrupt("the authentication key does not open with the data key".to_owned())
        })?;
        let signing_pkcs8 = open_sealed(
            dek,
            &key_aad(AAD_SIGNING_KEY, &self.signing_spki),
            &self.file.signing_private_key,
        )
        .map_err(|r| self.corrupt(r))?
        .ok_or_else(|| {
            self.corrupt("the signing key does not open with the data key".to_owned())
        })?;
        let auth = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &auth_pkcs8)
            .map_err(|e| self.corrupt(format!("authentication key: {e}")))?;
        let signing = RsaKeyPair::from_pkcs8(&signing_pkcs8)
            .map_err(|e| self.corrupt(format!("signing key: {e}")))?;
        if ec_spki(&auth)? != self.auth_spki || rsa_spki(&signing)? != self.signing_spki {
            return Err(self.corrupt("a private key does not match its public key".to_owned()));
        }
        let piv = match &self.file.piv_keys {
            None => None,
            Some([a, b]) => Some([
                self.open_piv_key(dek, PivKey::Authentication, a)?,
                self.open_piv_key(dek, PivKey::Signature, b)?,
            ]),
        };
        Ok(UnlockedKeys {
            auth,
            signing,
            signing_pkcs8,
            piv,
            auth_spki: self.auth_spki.clone(),
            signing_spki: self.signing_spki.clone(),
        })
    }

    fn open_piv_key(
        &self,
        dek: &[u8; KEY_LEN],
        key: PivKey,
        sealed: &SealedEcKey,
    ) -> Result<EcdsaKeyPair, KeystoreError> {
        let spki = B64
            .decode(&sealed.public_key)
            .map_err(|e| self.corrupt(format!("smartcard public key: {e}")))?;
        let pkcs8 = open_sealed(dek, &key_aad(key.aad(), &spki), &sealed.private_key)
            .map_err(|r| self.corrupt(r))?
            .ok_or_else(|| {
                self.corrupt("a smartcard key does not open with the data key".to_owned())
            })?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .map_err(|e| self.corrupt(format!("smartcard key: {e}")))?;
        if ec_spki(&pair)? != spki {
            return Err(self.corrupt("a smartcard key does not match its public key".to_owned()));
        }
        Ok(pair)
    }

    /// Counts a wrong passcode, saves the count, and says what it means.
    fn count_failure(&mut self) -> KeystoreError {
        let mut file = self.file.clone();
        file.failed_attempts = file.failed_attempts.saturating_add(1);
        if file.failed_attempts >= MAX_ATTEMPTS {
            file.locked = true;
        }
        if let Err(e) = self.replace(file) {
            // A failure that cannot be recorded must not look like a harmless wrong guess.
            return e;
        }
        if self.file.locked {
            KeystoreError::Locked
        } else {
            KeystoreError::WrongPasscode {
                remaining: self.remaining_attempts(),
            }
        }
    }

    /// Writes `file` to disk, then adopts it (memory never runs ahead of the disk).
    fn replace(&mut self, file: KeystoreFile) -> Result<(), KeystoreError> {
        write_file(&self.path, &file)?;
        self.file = file;
        Ok(())
    }

    fn save(&self) -> Result<(), KeystoreError> {
        write_file(&self.path, &self.file)
    }

    fn corrupt(&self, reason: String) -> KeystoreError {
        KeystoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

fn write_file(path: &Path, file: &KeystoreFile) -> Result<(), KeystoreError> {
    let json =
        serde_json::to_vec_pretty(file).map_err(|_| KeystoreError::Crypto("serialise keystore"))?;
    fsutil::write_private_atomic(path, &json).map_err(|source| KeystoreError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

/// The private keys, decrypted. Dropping this frees them: aws-lc clears key memory when it
/// frees it, and every intermediate copy of the PKCS#8 bytes is zeroized.
pub struct UnlockedKeys {
    auth: EcdsaKeyPair,
    signing: RsaKeyPair,
    signing_pkcs8: Zeroizing<Vec<u8>>,
    piv: Option<[EcdsaKeyPair; 2]>,
    auth_spki: Vec<u8>,
    signing_spki: Vec<u8>,
}

impl fmt::Debug for UnlockedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlockedKeys").finish_non_exhaustive()
    }
}

impl Keystore for UnlockedKeys {
    fn auth_spki(&self) -> &[u8] {
        &self.auth_spki
    }

    fn signing_spki(&self) -> &[u8] {
        &self.signing_spki
    }

    fn auth_csr_der(&self, common_name: &str) -> Result<Vec<u8>, KeystoreError> {
        csr(&EcSigner(&self.auth), common_name)
    }

    fn signing_csr_der(&self, common_name: &str) -> Result<Vec<u8>, KeystoreError> {
        csr(&RsaSigner(&self.signing), common_name)
    }

    fn sign_auth(&self, msg: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        let sig = self
            .auth
            .sign(&SystemRandom::new(), msg)
            .map_err(|_| KeystoreError::Crypto("ECDSA sign"))?;
        Ok(sig.as_ref().to_vec())
    }

    fn sign_auth_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError> {
        let digest = import_sha256(digest)?;
        let sig = self
            .auth
            .sign_digest(&digest)
            .map_err(|_| KeystoreError::Crypto("ECDSA sign digest"))?;
        Ok(sig.as_ref().to_vec())
    }

    fn sign_rsa_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
            .map_err(|_| KeystoreError::Crypto("RSA sign"))?;
        Ok(sig)
    }

    fn sign_rsa_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError> {
        let digest = import_sha256(digest)?;
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign_digest(&RSA_PKCS1_SHA256, &digest, &mut sig)
            .map_err(|_| KeystoreError::Crypto("RSA sign digest"))?;
        Ok(sig)
    }

    fn sign_rsa_digest(
        &self,
        algorithm: vsc_rsa_digest::DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        self.rsa_digest(algorithm, digest)
    }

    fn piv_csr_der(
        &self,
        key: PivKey,
        common_name: &str,
    ) -> Result<Option<Vec<u8>>, KeystoreError> {
        match &self.piv {
            Some(keys) => Ok(Some(csr(&EcSigner(&keys[key.index()]), common_name)?)),
            None => Ok(None),
        }
    }

    fn sign_piv_digest(&self, key: PivKey, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError> {
        let keys = self.piv.as_ref().ok_or(KeystoreError::Crypto(
            "this keystore has no smartcard keys (enrol again)",
        ))?;
        let digest = import_sha256(digest)?;
        let sig = keys[key.index()]
            .sign_digest(&digest)
            .map_err(|_| KeystoreError::Crypto("ECDSA sign digest"))?;
        Ok(sig.as_ref().to_vec())
    }
}

impl UnlockedKeys {
    fn rsa_digest(
        &self,
        algorithm: vsc_rsa_digest::DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        vsc_rsa_digest::sign_digest(&self.signing_pkcs8, algorithm, digest)
            .map_err(|_| KeystoreError::Crypto("RSA sign digest"))
    }
}

fn import_sha256(digest: &[u8; 32]) -> Result<Digest, KeystoreError> {
    Digest::import_less_safe(digest, &SHA256)
        .map_err(|_| KeystoreError::Crypto("import SHA-256 digest"))
}

/// rcgen's view of the ECDSA key: sign with aws-lc-rs, no copy of the private key.
struct EcSigner<'a>(&'a EcdsaKeyPair);

impl rcgen::PublicKeyData for EcSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for EcSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0
            .sign(&SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// rcgen's view of the RSA key (sha256WithRSAEncryption).
struct RsaSigner<'a>(&'a RsaKeyPair);

impl rcgen::PublicKeyData for RsaSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        // PKCS#1 RSAPublicKey, which rcgen wraps in a SubjectPublicKeyInfo.
        self.0.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for RsaSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        Ok(sig)
    }
}

fn csr(key: &impl rcgen::SigningKey, common_name: &str) -> Result<Vec<u8>, KeystoreError> {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let request = params
        .serialize_request(key)
        .map_err(|_| KeystoreError::Crypto("build certificate signing request"))?;
    Ok(request.der().to_vec())
}

/// A new virtual-smartcard key, sealed under the DEK with its public key in the AAD.
fn new_piv_key(
    dek: &[u8; KEY_LEN],
    key: PivKey,
) -> Result<(EcdsaKeyPair, SealedEcKey), KeystoreError> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| KeystoreError::Crypto("generate ECDSA P-256 key"))?;
    let pkcs8 = pair
        .to_pkcs8v1()
        .map_err(|_| KeystoreError::Crypto("serialise ECDSA key"))?;
    let spki = ec_spki(&pair)?;
    let sealed = SealedEcKey {
        private_key: seal(dek, &key_aad(key.aad(), &spki), pkcs8.as_ref())?,
        public_key: B64.encode(&spki),
    };
    Ok((pair, sealed))
}

fn ec_spki(key: &EcdsaKeyPair) -> Result<Vec<u8>, KeystoreError> {
    let der = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(key.public_key())
        .map_err(|_| KeystoreError::Crypto("encode ECDSA public key"))?;
    Ok(der.as_ref().to_vec())
}

fn rsa_spki(key: &RsaKeyPair) -> Result<Vec<u8>, KeystoreError> {
    let der = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(key.public_key())
        .map_err(|_| KeystoreError::Crypto("encode RSA public key"))?;
    Ok(der.as_ref().to_vec())
}

/// AAD for a private-key blob: its purpose, then its public key.
fn key_aad(label: &[u8], spki: &[u8]) -> Vec<u8> {
    let mut aad = label.to_vec();
    aad.extend_from_slice(spki);
    aad
}

fn random(out: &mut [u8]) -> Result<(), KeystoreError> {
    aws_lc_rs::rand::fill(out).map_err(|_| KeystoreError::Crypto("random number generator"))
}

/// Argon2id(passcode, salt) → 256-bit key-encryption key.
fn derive_kek(
    passcode: &Passcode,
    kdf: &KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(KEY_LEN))
        .map_err(|_| KeystoreError::Crypto("Argon2id parameters"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passcode.as_bytes(), salt, kek.as_mut())
        .map_err(|_| KeystoreError::Crypto("Argon2id"))?;
    Ok(kek)
}

fn aead_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey, KeystoreError> {
    let unbound =
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| KeystoreError::Crypto("AES-256-GCM key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// AES-256-GCM with a fresh random nonce.
fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Sealed, KeystoreError> {
    let key = aead_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let mut in_out = Zeroizing::new(plaintext.to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut *in_out,
    )
    .map_err(|_| KeystoreError::Crypto("AES-256-GCM seal"))?;
    Ok(Sealed {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(&*in_out),
    })
}

/// Opens a blob: `Ok(None)` when the key is wrong (or the blob tampered with), `Err` when the
/// blob is not even well formed.
fn open_sealed(
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
    let key = aead_key(key).map_err(|e| e.to_string())?;
    match key.open_in_place(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut in_out,
    ) {
        Ok(plain) => Ok(Some(Zeroizing::new(plain.to_vec()))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };
    use x509_parser::prelude::FromDer;

    fn passcode(s: &str) -> Passcode {
        Passcode::new(s).expect("valid passcode")
    }

    #[test]
    fn passcode_rules() {
        assert!(Passcode::new("123456").is_ok());
        assert!(Passcode::new("1".repeat(64)).is_ok());
        for bad in [
            "",
            "12345",
            "12345a",
            "123 456",
            "１２３４５６",
            "abcdef",
            "1".repeat(65).as_str(),
        ] {
            let err = Passcode::new(bad).expect_err(bad);
            assert!(
                err.to_string().contains("a passcode is 6 or more digits"),
                "{err}"
            );
        }
        assert_eq!(format!("{:?}", passcode("987654")), "Passcode(<redacted>)");
    }

    #[test]
    fn recovery_key_base64() {
        let key = RecoveryKey::generate().expect("key");
        let b64 = key.to_base64();
        let back = RecoveryKey::from_base64(&b64).expect("parses");
        assert_eq!(*back.0, *key.0);
        assert!(RecoveryKey::from_base64("AAAA").is_err());
        assert!(RecoveryKey::from_base64("not base64!").is_err());
        assert!(!format!("{key:?}").contains(&*b64));
    }

    /// One store, exercised end to end: round trip, signatures, CSRs, counting, locking, reset.
    #[test]
    fn lifecycle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        let right = passcode("246810");
        let wrong = passcode("000000");
        let (mut store, recovery) = SoftwareKeystore::create(&path, &right).expect("create");
        assert_eq!(store.remaining_attempts(), MAX_ATTEMPTS);

        // Refuses to overwrite.
        assert!(matches!(
            SoftwareKeystore::create(&path, &right),
            Err(KeystoreError::AlreadyExists { .. })
        ));

        // Round trip.
        let keys = store.unlock(&right).expect("unlock");
        assert_eq!(keys.auth_spki(), store.auth_spki());
        assert_eq!(keys.signing_spki(), store.signing_spki());
        let auth_spki = store.auth_spki().to_vec();
        let signing_spki = store.signing_spki().to_vec();

        // Signatures verify.
        let msg = b"vsc test message";
        let sig = keys.sign_auth(msg).expect("sign");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &auth_spki)
            .verify(msg, &sig)
            .expect("ECDSA verifies");
        let digest: [u8; 32] = aws_lc_rs::digest::digest(&SHA256, msg)
            .as_ref()
            .try_into()
            .expect("32 bytes");
        let sig = keys.sign_auth_digest(&digest).expect("sign digest");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &auth_spki)
            .verify(msg, &sig)
            .expect("pre-hashed ECDSA verifies");
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &auth_spki)
                .verify(b"other", &sig)
                .is_err()
        );
        let sig = keys.sign_rsa_sha256(msg).expect("rsa sign");
        assert_eq!(sig.len(), 256);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &signing_spki)
            .verify(msg, &sig)
            .expect("RSA verifies");
        let sig2 = keys
            .sign_rsa_sha256_digest(&digest)
            .expect("rsa sign digest");
        assert_eq!(sig, sig2, "PKCS#1 v1.5 is deterministic");

        // CSRs parse, carry our keys and verify.
        for (der, spki) in [
            (
                keys.auth_csr_der("vsc enrolment").expect("auth csr"),
                &auth_spki,
            ),
            (
                keys.signing_csr_der("vsc enrolment").expect("signing csr"),
                &signing_spki,
            ),
        ] {
            let (_, csr) =
                x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                    .expect("CSR parses");
            csr.verify_signature().expect("CSR signature verifies");
            assert_eq!(
                csr.certification_request_info.subject_pki.raw,
                spki.as_slice()
            );
            let cn = csr
                .certification_request_info
                .subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok());
            assert_eq!(cn, Some("vsc enrolment"));
        }
        let rsa_csr = keys.signing_csr_der("x").expect("csr");
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&rsa_csr)
                .expect("parses");
        assert_eq!(
            csr.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
        );

        // The file is private and holds no private key in clear.
        let bytes = std::fs::read(&path).expect("read");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(
            text.contains(&B64.encode(&auth_spki)),
            "public keys are in clear"
        );
        let auth_pkcs8 = keys.auth.to_pkcs8v1().expect("pkcs8");
        let rsa_pkcs8 =
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&keys.signing).expect("pkcs8");
        for secret in [auth_pkcs8.as_ref(), rsa_pkcs8.as_ref()] {
            assert!(!contains(&bytes, secret), "raw PKCS#8 in the file");
            assert!(
                !text.contains(&B64.encode(secret)),
                "base64 PKCS#8 in the file"
            );
            // Nor any 32-byte window of it, in raw or base64 form.
            let window = &secret[secret.len() - 32..];
            assert!(!contains(&bytes, window));
        }
        drop(keys);

        // Two wrong, then right: the count resets.
        assert!(matches!(
            store.unlock(&wrong),
            Err(KeystoreError::WrongPasscode { remaining: 2 })
        ));
        assert!(matches!(
            store.unlock(&wrong),
            Err(KeystoreError::WrongPasscode { remaining: 1 })
        ));
        // The count is on disk.
        assert_eq!(
            SoftwareKeystore::open(&path)
                .expect("reopen")
                .failed_attempts(),
            2
        );
        store
            .unlock(&right)
            .expect("right passcode after two wrong");
        assert_eq!(store.failed_attempts(), 0);
        assert_eq!(
            SoftwareKeystore::open(&path)
                .expect("reopen")
                .failed_attempts(),
            0
        );

        // Three wrong lock, across re-opens.
        assert!(store.unlock(&wrong).is_err());
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        assert_eq!(store.failed_attempts(), 1);
        assert!(matches!(
            store.unlock(&wrong),
            Err(KeystoreError::WrongPasscode { remaining: 1 })
        ));
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        let locked = store.unlock(&wrong).expect_err("third wrong");
        assert!(matches!(locked, KeystoreError::Locked));
        assert!(
            locked
                .to_string()
                .contains("ask your RA or Local Smartcard Administrator")
        );
        assert!(store.is_locked());
        assert_eq!(store.remaining_attempts(), 0);
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        assert!(store.is_locked());
        assert!(
            matches!(store.unlock(&right), Err(KeystoreError::Locked)),
            "locked refuses the right passcode"
        );

        // A wrong recovery key changes nothing.
        let before = std::fs::read(&path).expect("read");
        let other = RecoveryKey::generate().expect("key");
        let new = passcode("13579135");
        assert!(matches!(
            store.reset_passcode(&other, &new),
            Err(KeystoreError::WrongRecoveryKey)
        ));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert!(store.is_locked());

        // The right one sets the new passcode, keeps the keys, lifts the lock.
        store.reset_passcode(&recovery, &new).expect("reset");
        assert!(!store.is_locked());
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        assert!(!store.is_locked());
        assert_eq!(store.failed_attempts(), 0);
        assert_eq!(store.auth_spki(), auth_spki.as_slice());
        assert_eq!(store.signing_spki(), signing_spki.as_slice());
        assert!(
            matches!(
                store.unlock(&right),
                Err(KeystoreError::WrongPasscode { .. })
            ),
            "old passcode"
        );
        let keys = store.unlock(&new).expect("new passcode");
        assert_eq!(keys.auth_spki(), auth_spki.as_slice());
        assert_eq!(store.failed_attempts(), 0);
    }

    #[test]
    fn open_reports_missing_and_damaged_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        assert!(matches!(
            SoftwareKeystore::open(&path),
            Err(KeystoreError::NotFound { .. })
        ));
        std::fs::write(&path, b"{\"version\": 9}").expect("write");
        assert!(matches!(
            SoftwareKeystore::open(&path),
            Err(KeystoreError::UnsupportedVersion { found: 9, .. })
        ));
        std::fs::write(&path, b"junk").expect("write");
        assert!(matches!(
            SoftwareKeystore::open(&path),
            Err(KeystoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn sealed_blobs_are_bound_to_their_purpose() {
        let key = [7u8; KEY_LEN];
        let sealed = seal(&key, AAD_DEK_PASSCODE, b"secret").expect("seal");
        assert_eq!(
            open_sealed(&key, AAD_DEK_PASSCODE, &sealed)
                .expect("well formed")
                .as_deref()
                .map(|v| v.as_slice()),
            Some(b"secret".as_slice())
        );
        assert!(
            open_sealed(&key, AAD_DEK_RECOVERY, &sealed)
                .expect("well formed")
                .is_none()
        );
        assert!(
            open_sealed(&[8u8; KEY_LEN], AAD_DEK_PASSCODE, &sealed)
                .expect("well formed")
                .is_none()
        );
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}

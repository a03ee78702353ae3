//! The software keystore: the card's private keys, sealed in one file on the phone and opened
//! with the person's passcode *and* a secret the server releases only after checking that
//! passcode.
//!
//! # What is in `keystore.json` (format 2)
//!
//! * a format version and the Argon2id parameters (m = 64 MiB, t = 3, p = 1) with a random
//!   16-byte salt;
//! * a random 256-bit data-encryption key (DEK), wrapped twice with AES-256-GCM:
//!   - once under `HKDF(W ‖ S)`, where `W` is derived from `Argon2id(passcode, salt)` and `S` is
//!     a random 256-bit *server secret* that is not on the phone (see below);
//!   - once under a random 256-bit *recovery key*, deposited with the server at enrolment and
//!     released back to this phone only after an RA unlock, so a locked-out person gets a new
//!     passcode without new keys;
//! * the PKCS#8 private keys (ECDSA P-256 for authentication, RSA-2048 for signing, and the
//!   virtual smartcard's two ECDSA P-256 PIV keys for slots 9A and 9C) sealed under
//!   the DEK. Every sealed blob carries AAD naming its purpose (and, for a private key, its
//!   public key), so blobs cannot be swapped for one another;
//! * the public keys (SubjectPublicKeyInfo DER, base64), and the wrong-passcode count and lock
//!   flag *as the server last reported them* (for status screens only), in clear.
//!
//! The file is mode 0600 and is always replaced through a temporary file and a rename.
//!
//! # Who checks the passcode
//!
//! `Argon2id(passcode, salt)` runs once per unlock and yields two independent values (HKDF):
//! the wrapping input `W`, which never leaves the phone, and the *verifier* `V`, which the phone
//! deposits with the server (at enrolment, and with every new passcode). To open the store the
//! phone sends `V`, signed with its device key over a single-use server challenge
//! ([`crate::unlock`]); the server compares `V` in constant time, counts wrong ones (the third in
//! a row locks the card until an RA unlock) and only for the right one returns `S`. The DEK opens
//! under `HKDF(W ‖ S)`.
//!
//! So the file alone is worthless: without `S` (256 random bits) no guess of the passcode can be
//! tested against it, offline or otherwise, and the file holds nothing derived from the passcode
//! that could be compared with a guess. With the phone (its device key) a thief gets the same
//! three online tries as the owner, counted by the server, which restoring an older copy of the
//! file does not reset. A hardware-backed store (Secure Enclave, StrongBox) would keep the keys
//! in silicon as well; the [`Keystore`] trait is the boundary such stores will implement.
//!
//! # Format 1
//!
//! Stores written before the server check (format 1) wrapped the DEK under the passcode alone
//! and counted wrong passcodes in the file. They are still read, but not opened with a passcode
//! any more ([`KeystoreError::LegacyFormat`]): redeeming an RA unlock code
//! ([`SoftwareKeystore::reset_passcode`]) upgrades them to format 2 with the same keys.
//!
//! # Limits of the software store
//!
//! aws-lc-rs offers RSA PKCS#1 v1.5 signing only with SHA-256/384/512 over a message; signatures
//! over a digest (EPS `rsa-sha1` and `rsa-sha256`) go through `vsc-rsa-digest`, which
//! calls the same AWS-LC library, so the unlocked keys keep the signing key's PKCS#8 bytes
//! (zeroized on drop) for it.
//!
//! # Shared with the web app
//!
//! Argon2id, the HKDF derivations, AES-256-GCM and the AAD labels are
//! [`vsc_phone_core::seal`], which the web app's keystore (WebAssembly) uses too; this module
//! keeps the file, the keys and the flows.

use std::fmt;
use std::path::{Path, PathBuf};

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
// The sealing primitives (Argon2id, HKDF, AES-256-GCM, the AAD labels) live in
// `vsc-phone-core`, shared with the web app's keystore, so both seal alike.
use vsc_phone_core::seal::StretchedPasscode as CoreStretched;
use vsc_phone_core::seal::{
    AAD_AUTH_KEY, AAD_DEK_PASSCODE, AAD_DEK_RECOVERY, AAD_PIV_AUTH_KEY, AAD_PIV_SIGN_KEY,
    AAD_SIGNING_KEY, CryptoError, KEY_LEN, KdfParams, SALT_LEN, Sealed, key_aad,
};
use zeroize::Zeroizing;

use crate::fsutil;

/// Wrong passcodes in a row before the card locks (counted by the server).
pub const MAX_ATTEMPTS: u32 = 3;

/// The `keystore.json` format this code writes: the passcode wrap needs the server's secret.
pub const FORMAT_VERSION: u32 = 2;

/// The format before the server checked passcodes: read, refused for unlocking, upgraded by an
/// RA unlock.
pub const LEGACY_FORMAT_VERSION: u32 = 1;

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passcode is not 6 to 64 digits.
    #[error("a passcode is 6 or more digits (at most 64), and nothing but digits; choose another")]
    PasscodeFormat,
    /// Wrong passcode (the server counted it); the card is not locked yet.
    #[error(
        "wrong passcode; {remaining} more wrong attempt(s) and the card locks until your RA or Local Smartcard Administrator unlocks it"
    )]
    WrongPasscode {
        /// Attempts left before the store locks.
        remaining: u32,
    },
    /// The card is locked (the server says so): too many wrong passcodes, or failed sign-ins or
    /// card PINs.
    #[error(
        "the card is locked ({} wrong passcodes in a row lock it, as do repeated failed sign-ins or card PINs); ask your RA or Local Smartcard Administrator to unlock your card",
        MAX_ATTEMPTS
    )]
    Locked,
    /// The recovery key does not open this store.
    #[error(
        "the recovery key does not open this phone's keystore (nothing was changed); ask your RA for a new unlock code, or enrol again if this phone's card was replaced"
    )]
    WrongRecoveryKey,
    /// A format-1 store: its passcode could be guessed from a copy of the file, so it is no
    /// longer opened with a passcode.
    #[error(
        "the keystore at {} was made by an older version of this app, whose passcode could be guessed from a copy of the file, so it is no longer opened with a passcode; ask your RA or Local Smartcard Administrator for an unlock code and redeem it (`vsc authenticator unlock`): that upgrades the keystore and keeps your keys and certificates",
        path.display()
    )]
    LegacyFormat {
        /// The file.
        path: PathBuf,
    },
    /// The server accepted the passcode, but its secret does not open this store.
    #[error(
        "the server accepted your passcode, but its secret does not open the keystore at {} (was the keystore restored from a copy older than your last unlock?); nothing was counted: ask your RA or Local Smartcard Administrator for an unlock code",
        path.display()
    )]
    ServerSecretMismatch {
        /// The file.
        path: PathBuf,
    },
    /// A server secret or verifier that is not 32 bytes of base64.
    #[error(
        "the server's keystore secret is not 32 bytes in base64 ({0}); this is a server fault, tell your RA"
    )]
    SecretFormat(String),
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
        "the keystore at {} has format version {found}, but this app reads versions {} and {}; update the app",
        path.display(),
        LEGACY_FORMAT_VERSION,
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
        if !vsc_phone_core::seal::passcode_ok(&s) {
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

/// 32 bytes from standard base64, for the secrets exchanged with the server.
fn key_from_base64(s: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    let bytes = Zeroizing::new(
        B64.decode(s.trim())
            .map_err(|e| KeystoreError::SecretFormat(format!("not base64: {e}")))?,
    );
    let array: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeystoreError::SecretFormat(format!("{} bytes", bytes.len())))?;
    Ok(Zeroizing::new(array))
}

/// The server's half of the passcode wrap (`S`): 256 random bits the server keeps for this
/// store and releases only for the right passcode verifier, on a request signed with the
/// device key. Zeroized when dropped.
#[derive(Clone)]
pub struct ServerSecret(Zeroizing<[u8; KEY_LEN]>);

impl ServerSecret {
    fn generate() -> Result<ServerSecret, KeystoreError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random(key.as_mut())?;
        Ok(ServerSecret(key))
    }

    /// Standard base64, as the server sends it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_ref()))
    }

    /// Parses standard base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<ServerSecret, KeystoreError> {
        key_from_base64(s).map(ServerSecret)
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// The passcode after the one Argon2id of an unlock: the wrapping input `W`, which never leaves
/// the phone, and the verifier `V`, which the server checks. Zeroized when dropped.
pub struct StretchedPasscode {
    wrap: Zeroizing<[u8; KEY_LEN]>,
    verifier: Zeroizing<[u8; KEY_LEN]>,
}

impl StretchedPasscode {
    fn from_argon2(stretched: &[u8; KEY_LEN]) -> Result<StretchedPasscode, KeystoreError> {
        let (wrap, verifier) = CoreStretched::from_argon2(stretched)?.into_parts();
        Ok(StretchedPasscode { wrap, verifier })
    }

    /// The verifier `V`, as the server receives it (standard base64).
    pub fn verifier_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.verifier.as_ref()))
    }

    /// The DEK's wrapping key: `HKDF(W ‖ S)`.
    fn kek(&self, secret: &ServerSecret) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
        Ok(vsc_phone_core::seal::dek_wrapping_key(
            &self.wrap, &secret.0,
        )?)
    }
}

impl fmt::Debug for StretchedPasscode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StretchedPasscode(<redacted>)")
    }
}

/// A new passcode, ready to be installed: a new salt, the passcode stretched with it, and a new
/// server secret. Made before the server is asked (its verifier and secret are deposited with
/// the enrolment or the unlock request), installed after the server has accepted them.
pub struct NewPasscode {
    kdf: KdfParams,
    stretched: StretchedPasscode,
    secret: ServerSecret,
}

impl NewPasscode {
    /// Runs Argon2id once over `passcode` with a new salt and draws a new server secret.
    pub fn new(passcode: &Passcode) -> Result<NewPasscode, KeystoreError> {
        let kdf = KdfParams::generate()?;
        let salt = kdf
            .salt_bytes()
            .map_err(|_| KeystoreError::Crypto("Argon2id salt"))?;
        let stretched = StretchedPasscode::from_argon2(&*stretch_argon2id(passcode, &kdf, &salt)?)?;
        Ok(NewPasscode {
            kdf,
            stretched,
            secret: ServerSecret::generate()?,
        })
    }

    /// The verifier `V` to deposit with the server (standard base64).
    pub fn verifier_base64(&self) -> Zeroizing<String> {
        self.stretched.verifier_base64()
    }

    /// The server secret `S` to deposit with the server (standard base64); the phone keeps no
    /// copy once the store is written.
    pub fn secret_base64(&self) -> Zeroizing<String> {
        self.secret.to_base64()
    }

    /// The DEK wrapped under this passcode and secret.
    fn wrap(&self, dek: &[u8; KEY_LEN]) -> Result<Sealed, KeystoreError> {
        seal(
            &*self.stretched.kek(&self.secret)?,
            AAD_DEK_PASSCODE,
            dek.as_ref(),
        )
    }
}

impl fmt::Debug for NewPasscode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPasscode(<redacted>)")
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
    /// RSA PKCS#1 v1.5 over a SHA-1 digest computed elsewhere (EPS `rsa-sha1`; `rsa-sha256`
    /// is [`Keystore::sign_rsa_sha256`] over the SignedInfo itself).
    fn sign_rsa_sha1_digest(&self, digest: &[u8]) -> Result<Vec<u8>, KeystoreError>;
    /// A PKCS#10 request for a virtual-smartcard key, signed by that key; `None` for a store
    /// made before the card existed.
    fn piv_csr_der(&self, key: PivKey, common_name: &str)
    -> Result<Option<Vec<u8>>, KeystoreError>;
    /// ECDSA P-256 with a virtual-smartcard key over a SHA-256-sized digest computed elsewhere
    /// (by the workstation's middleware); ASN.1 DER signature.
    fn sign_piv_digest(&self, key: PivKey, digest: &[u8; 32]) -> Result<Vec<u8>, KeystoreError>;
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
    /// Generates the key pairs, a DEK and a recovery key, and writes a new store at `path`
    /// protected by `passcode` (its verifier and server secret must be deposited with the server,
    /// or the store can never be opened with the passcode). Refuses to overwrite an existing
    /// file. The recovery key is returned once, to be deposited with the server; it is not kept
    /// here.
    pub fn create(
        path: &Path,
        passcode: &NewPasscode,
    ) -> Result<(SoftwareKeystore, RecoveryKey), KeystoreError> {
        let (store, recovery, keys) = SoftwareKeystore::create_with_keys(path, passcode)?;
        drop(keys);
        Ok((store, recovery))
    }

    /// [`SoftwareKeystore::create`], also handing back the keys just made, so the caller can
    /// build its certificate requests without unlocking the store.
    pub(crate) fn create_with_keys(
        path: &Path,
        passcode: &NewPasscode,
    ) -> Result<(SoftwareKeystore, RecoveryKey, UnlockedKeys), KeystoreError> {
        if path.exists() {
            return Err(KeystoreError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        random(dek.as_mut())?;
        let recovery = RecoveryKey::generate()?;

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
            dek_by_passcode: passcode.wrap(&dek)?,
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
            kdf: passcode.kdf.clone(),
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
        if version.version != FORMAT_VERSION && version.version != LEGACY_FORMAT_VERSION {
            return Err(KeystoreError::UnsupportedVersion {
                path: path.to_owned(),
                found: version.version,
            });
        }
        let file: KeystoreFile = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("not a keystore file: {e}")))?;
        file.kdf.check().map_err(corrupt)?;
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

    /// Wrong passcodes since the last success, as the server last reported them.
    pub fn failed_attempts(&self) -> u32 {
        self.file.failed_attempts
    }

    /// Locked, as the server last reported it.
    pub fn is_locked(&self) -> bool {
        self.file.locked
    }

    /// Wrong passcodes still allowed before the card locks (0 when locked), as the server last
    /// reported them.
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

    /// The file's format version ([`FORMAT_VERSION`], or [`LEGACY_FORMAT_VERSION`] until an RA
    /// unlock upgrades it).
    pub fn format_version(&self) -> u32 {
        self.file.version
    }

    /// Runs Argon2id over `passcode` with this store's salt (the slow step, once per unlock).
    /// Nothing here says whether the passcode is right: only the server can, by comparing the
    /// verifier.
    pub fn stretch(&self, passcode: &Passcode) -> Result<StretchedPasscode, KeystoreError> {
        if self.file.version == LEGACY_FORMAT_VERSION {
            return Err(KeystoreError::LegacyFormat {
                path: self.path.clone(),
            });
        }
        let salt = self.salt()?;
        StretchedPasscode::from_argon2(&*stretch_argon2id(passcode, &self.file.kdf, &salt)?)
    }

    /// Opens the keys with the stretched passcode and the secret the server released for its
    /// verifier. The server has already counted the attempt; a secret that does not open the
    /// store ([`KeystoreError::ServerSecretMismatch`]) is not counted again here. Clears the
    /// mirrored count.
    pub fn unlock_with_secret(
        &mut self,
        stretched: &StretchedPasscode,
        secret: &ServerSecret,
    ) -> Result<UnlockedKeys, KeystoreError> {
        if self.file.version == LEGACY_FORMAT_VERSION {
            return Err(KeystoreError::LegacyFormat {
                path: self.path.clone(),
            });
        }
        let kek = stretched.kek(secret)?;
        let dek = match open_sealed(&kek, AAD_DEK_PASSCODE, &self.file.dek_by_passcode) {
            Ok(Some(dek)) => dek,
            Ok(None) => {
                return Err(KeystoreError::ServerSecretMismatch {
                    path: self.path.clone(),
                });
            }
            Err(reason) => return Err(self.corrupt(reason)),
        };
        let dek = self.as_key(&dek)?;
        let keys = self.open_keys(&dek)?;
        self.record_server_count(0, false)?;
        Ok(keys)
    }

    /// Saves the wrong-passcode count and lock the server reported, for status screens (the
    /// server's count is the one that matters). Writes only when something changed.
    pub fn record_server_count(
        &mut self,
        failed_attempts: u32,
        locked: bool,
    ) -> Result<(), KeystoreError> {
        if self.file.failed_attempts == failed_attempts && self.file.locked == locked {
            return Ok(());
        }
        let mut file = self.file.clone();
        file.failed_attempts = failed_attempts;
        file.locked = locked;
        self.replace(file)
    }

    /// Installs `new_passcode` using the recovery key the server released after an RA unlock
    /// (which also took the new passcode's verifier and server secret): the DEK is re-wrapped
    /// under the new passcode and secret, the count cleared and the lock lifted; a format-1 store
    /// becomes format 2. The keys, and so the certificates, stay the same. A wrong recovery key
    /// changes nothing.
    pub fn reset_passcode(
        &mut self,
        recovery: &RecoveryKey,
        new_passcode: &NewPasscode,
    ) -> Result<(), KeystoreError> {
        let dek = match open_sealed(&recovery.0, AAD_DEK_RECOVERY, &self.file.dek_by_recovery) {
            Ok(Some(dek)) => dek,
            Ok(None) => return Err(KeystoreError::WrongRecoveryKey),
            Err(reason) => return Err(self.corrupt(reason)),
        };
        let dek = self.as_key(&dek)?;
        // Prove the DEK opens the keys before committing to it.
        drop(self.open_keys(&dek)?);

        let mut file = self.file.clone();
        file.version = FORMAT_VERSION;
        file.kdf = new_passcode.kdf.clone();
        file.dek_by_passcode = new_passcode.wrap(&dek)?;
        file.failed_attempts = 0;
        file.locked = false;
        self.replace(file)
    }

    /// Renewal: opens this store with the stretched passcode and the server's secret and writes
    /// at `path` a store with *fresh* keys sealed under the same data key, with the same passcode
    /// and recovery wraps (so the same passcode, server secret and recovery key open it). This
    /// store is not changed. Returns the current keys (which sign the renewal request) and the new
    /// store with its keys (which sign the confirmation). The caller moves the new store over this
    /// one only once the server has confirmed; until then both files open.
    pub fn rekey_to(
        &mut self,
        path: &Path,
        stretched: &StretchedPasscode,
        secret: &ServerSecret,
    ) -> Result<(UnlockedKeys, SoftwareKeystore, UnlockedKeys), KeystoreError> {
        let current = self.unlock_with_secret(stretched, secret)?;
        let kek = stretched.kek(secret)?;
        let dek = match open_sealed(&kek, AAD_DEK_PASSCODE, &self.file.dek_by_passcode) {
            Ok(Some(dek)) => self.as_key(&dek)?,
            Ok(None) => {
                return Err(KeystoreError::ServerSecretMismatch {
                    path: self.path.clone(),
                });
            }
            Err(reason) => return Err(self.corrupt(reason)),
        };
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
        let mut file = self.file.clone();
        file.auth_private_key = seal(
            &dek,
            &key_aad(AAD_AUTH_KEY, &auth_spki),
            auth_pkcs8.as_ref(),
        )?;
        file.signing_private_key = seal(
            &dek,
            &key_aad(AAD_SIGNING_KEY, &signing_spki),
            signing_pkcs8.as_ref(),
        )?;
        file.auth_public_key = B64.encode(&auth_spki);
        file.signing_public_key = B64.encode(&signing_spki);
        file.piv_keys = Some([sealed_piv_auth, sealed_piv_sign]);
        file.failed_attempts = 0;
        file.locked = false;
        write_file(path, &file)?;
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
        Ok((current, store, keys))
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

    fn sign_rsa_sha1_digest(&self, digest: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        vsc_rsa_digest::sign_sha1_digest(&self.signing_pkcs8, digest)
            .map_err(|_| KeystoreError::Crypto("RSA sign digest"))
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

fn random(out: &mut [u8]) -> Result<(), KeystoreError> {
    Ok(vsc_phone_core::seal::random(out)?)
}

/// Argon2id(passcode, salt) → 256 bits, from which [`StretchedPasscode`] derives `W` and `V`.
fn stretch_argon2id(
    passcode: &Passcode,
    kdf: &KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    Ok(vsc_phone_core::seal::argon2id(
        passcode.as_bytes(),
        kdf,
        salt,
    )?)
}

/// AES-256-GCM with a fresh random nonce.
fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Sealed, KeystoreError> {
    Ok(vsc_phone_core::seal::seal(key, aad, plaintext)?)
}

/// Opens a blob: `Ok(None)` when the key is wrong (or the blob tampered with), `Err` when the
/// blob is not even well formed.
fn open_sealed(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &Sealed,
) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    vsc_phone_core::seal::open(key, aad, sealed)
}

impl From<CryptoError> for KeystoreError {
    fn from(e: CryptoError) -> KeystoreError {
        KeystoreError::Crypto(e.0)
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

    /// Stand-in for the server: what it would hold after the deposit of `new`.
    fn server_side(new: &NewPasscode) -> (Zeroizing<String>, ServerSecret) {
        (
            new.verifier_base64(),
            ServerSecret::from_base64(&new.secret_base64()).expect("secret"),
        )
    }

    /// Renewal's re-keying: a second file with fresh keys that the same passcode, server secret
    /// and recovery key open, while the first file is untouched and still opens.
    #[test]
    fn rekey_to_writes_fresh_keys_under_the_same_wraps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        let renewing = dir.path().join("keystore.renewing.json");
        let right = passcode("246810");
        let new = NewPasscode::new(&right).expect("stretch");
        let (_, secret) = server_side(&new);
        let (mut store, recovery) = SoftwareKeystore::create(&path, &new).expect("create");
        let before = std::fs::read(&path).expect("read");
        let old_auth = store.auth_spki().to_vec();
        let old_piv = store.piv_spki(PivKey::Authentication);
        let stretched = store.stretch(&right).expect("stretch");
        let (current, mut renewed, new_keys) = store
            .rekey_to(&renewing, &stretched, &secret)
            .expect("rekey");
        assert_eq!(current.auth_spki(), old_auth.as_slice());
        assert_ne!(new_keys.auth_spki(), old_auth.as_slice());
        assert_ne!(new_keys.signing_spki(), store.signing_spki());
        assert_ne!(renewed.piv_spki(PivKey::Authentication), old_piv);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            before,
            "the old file is untouched"
        );

        // The new file opens with the same passcode and secret, and has the new keys.
        let mut reopened = SoftwareKeystore::open(&renewing).expect("open");
        let stretched = reopened.stretch(&right).expect("stretch");
        let keys = reopened
            .unlock_with_secret(&stretched, &secret)
            .expect("the new file opens");
        assert_eq!(keys.auth_spki(), new_keys.auth_spki());
        let msg = b"renewed";
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, new_keys.auth_spki())
            .verify(msg, &keys.sign_auth(msg).expect("sign"))
            .expect("the new key signs");
        assert!(
            keys.piv_csr_der(PivKey::Signature, "x")
                .expect("csr")
                .is_some()
        );
        // ... and with the recovery key, like the old one.
        let again = NewPasscode::new(&passcode("135790")).expect("stretch");
        renewed
            .reset_passcode(&recovery, &again)
            .expect("recovery opens the new file");
        // The old file still opens too.
        let stretched = store.stretch(&right).expect("stretch");
        assert_eq!(
            store
                .unlock_with_secret(&stretched, &secret)
                .expect("old opens")
                .auth_spki(),
            old_auth.as_slice()
        );
        // A wrong server secret changes nothing and writes nothing.
        let other = ServerSecret::from_base64(&B64.encode([1u8; 32])).expect("secret");
        let elsewhere = dir.path().join("nothing.json");
        assert!(matches!(
            store.rekey_to(&elsewhere, &stretched, &other),
            Err(KeystoreError::ServerSecretMismatch { .. })
        ));
        assert!(!elsewhere.exists());
    }

    /// One store, exercised end to end: round trip, signatures, CSRs, the verifier, reset.
    #[test]
    fn lifecycle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        let right = passcode("246810");
        let wrong = passcode("000000");
        let new = NewPasscode::new(&right).expect("stretch");
        let (verifier, secret) = server_side(&new);
        let (mut store, recovery) = SoftwareKeystore::create(&path, &new).expect("create");
        assert_eq!(store.remaining_attempts(), MAX_ATTEMPTS);
        assert_eq!(store.format_version(), FORMAT_VERSION);

        // Refuses to overwrite.
        assert!(matches!(
            SoftwareKeystore::create(&path, &new),
            Err(KeystoreError::AlreadyExists { .. })
        ));

        // The same passcode stretches to the deposited verifier; another one does not.
        let stretched = store.stretch(&right).expect("stretch");
        assert_eq!(*stretched.verifier_base64(), *verifier);
        let stretched_wrong = store.stretch(&wrong).expect("stretch");
        assert_ne!(*stretched_wrong.verifier_base64(), *verifier);

        // Round trip.
        let keys = store
            .unlock_with_secret(&stretched, &secret)
            .expect("unlock");
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

        // Whatever the passcode, a secret other than the server's opens nothing, and is not
        // counted here (the server counts).
        let other = ServerSecret::generate().expect("secret");
        for candidate in [&stretched, &stretched_wrong] {
            assert!(matches!(
                store.unlock_with_secret(candidate, &other),
                Err(KeystoreError::ServerSecretMismatch { .. })
            ));
        }
        assert!(matches!(
            store.unlock_with_secret(&stretched_wrong, &secret),
            Err(KeystoreError::ServerSecretMismatch { .. })
        ));
        assert_eq!(store.failed_attempts(), 0);

        // The server's count is mirrored for status screens, and cleared by a success.
        store.record_server_count(2, false).expect("mirror");
        assert_eq!(store.remaining_attempts(), 1);
        store.record_server_count(3, true).expect("mirror");
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        assert!(store.is_locked());
        assert_eq!(store.remaining_attempts(), 0);

        // A wrong recovery key changes nothing.
        let before = std::fs::read(&path).expect("read");
        let wrong_recovery = RecoveryKey::generate().expect("key");
        let second = passcode("13579135");
        let reset = NewPasscode::new(&second).expect("stretch");
        assert!(matches!(
            store.reset_passcode(&wrong_recovery, &reset),
            Err(KeystoreError::WrongRecoveryKey)
        ));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert!(store.is_locked());

        // The right one installs the new passcode and secret, keeps the keys, lifts the lock.
        store.reset_passcode(&recovery, &reset).expect("reset");
        assert!(!store.is_locked());
        let (_, new_secret) = server_side(&reset);
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        assert!(!store.is_locked());
        assert_eq!(store.failed_attempts(), 0);
        assert_eq!(store.auth_spki(), auth_spki.as_slice());
        assert_eq!(store.signing_spki(), signing_spki.as_slice());
        let old = store.stretch(&right).expect("stretch");
        assert!(
            matches!(
                store.unlock_with_secret(&old, &new_secret),
                Err(KeystoreError::ServerSecretMismatch { .. })
            ),
            "old passcode"
        );
        assert!(
            matches!(
                store.unlock_with_secret(&store.stretch(&second).expect("stretch"), &secret),
                Err(KeystoreError::ServerSecretMismatch { .. })
            ),
            "old server secret"
        );
        let keys = store
            .unlock_with_secret(&store.stretch(&second).expect("stretch"), &new_secret)
            .expect("new passcode");
        assert_eq!(keys.auth_spki(), auth_spki.as_slice());
    }

    /// The attack of issue 9 item 10: a copy of the file, guessed at offline. The right passcode
    /// alone does not open it, and nothing in the file tells a right guess from a wrong one.
    #[test]
    fn a_copied_file_cannot_be_guessed_at_offline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        let right = passcode("246810");
        let new = NewPasscode::new(&right).expect("stretch");
        let (verifier, _secret) = server_side(&new);
        let (store, _) = SoftwareKeystore::create(&path, &new).expect("create");
        drop(store);
        let copy = dir.path().join("stolen.json");
        std::fs::copy(&path, &copy).expect("copy");
        let mut stolen = SoftwareKeystore::open(&copy).expect("the thief reads the copy");

        // Every guess, the right one included, fails the same way with any secret the thief
        // can make up: the file cannot say which guess was right.
        let made_up = [
            ServerSecret(Zeroizing::new([0u8; KEY_LEN])),
            ServerSecret::generate().expect("secret"),
        ];
        for guess in ["246810", "000000", "123456"] {
            let stretched = stolen.stretch(&passcode(guess)).expect("stretch");
            for secret in &made_up {
                let err = stolen
                    .unlock_with_secret(&stretched, secret)
                    .expect_err("no guess opens the copy");
                assert!(
                    matches!(err, KeystoreError::ServerSecretMismatch { .. }),
                    "{err}"
                );
            }
        }

        // The file holds neither the verifier nor the phone's half of the stretched passcode,
        // so a guess cannot be compared with anything in it.
        let text = std::fs::read_to_string(&copy).expect("read");
        let stretched = stolen.stretch(&right).expect("stretch");
        assert!(!text.contains(verifier.as_str()));
        assert!(!text.contains(&B64.encode(stretched.wrap.as_ref())));
        assert!(!text.contains(&B64.encode(stretched.verifier.as_ref())));
    }

    /// A format-1 store (passcode alone) is read, refused for unlocking, and upgraded by a reset.
    #[test]
    fn format_one_is_upgraded_by_an_unlock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        let first = passcode("246810");
        let new = NewPasscode::new(&first).expect("stretch");
        let (store, recovery) = SoftwareKeystore::create(&path, &new).expect("create");
        let auth_spki = store.auth_spki().to_vec();
        // Rewrite it as the old app did: version 1, DEK under Argon2id(passcode) alone.
        let mut file = store.file.clone();
        let dek = open_sealed(&recovery.0, AAD_DEK_RECOVERY, &file.dek_by_recovery)
            .expect("well formed")
            .expect("opens");
        let salt = B64.decode(&file.kdf.salt).expect("salt");
        let kek = stretch_argon2id(&first, &file.kdf, &salt).expect("argon2id");
        file.version = LEGACY_FORMAT_VERSION;
        file.dek_by_passcode =
            seal(&kek, b"vsc-keystore/v1 dek wrapped by passcode", &dek).expect("seal");
        write_file(&path, &file).expect("write");

        let mut store = SoftwareKeystore::open(&path).expect("a format-1 store is read");
        assert_eq!(store.format_version(), LEGACY_FORMAT_VERSION);
        let err = store
            .stretch(&first)
            .expect_err("not opened with a passcode");
        assert!(matches!(err, KeystoreError::LegacyFormat { .. }), "{err}");
        assert!(err.to_string().contains("unlock code"), "{err}");

        let second = passcode("13579135");
        let reset = NewPasscode::new(&second).expect("stretch");
        store.reset_passcode(&recovery, &reset).expect("upgrade");
        let mut store = SoftwareKeystore::open(&path).expect("reopen");
        assert_eq!(store.format_version(), FORMAT_VERSION);
        let (_, secret) = server_side(&reset);
        let keys = store
            .unlock_with_secret(&store.stretch(&second).expect("stretch"), &secret)
            .expect("the upgraded store opens");
        assert_eq!(keys.auth_spki(), auth_spki.as_slice());
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

    /// A store written by this keystore before its sealing moved to `vsc-phone-core` (aws-lc-rs
    /// HKDF and AES-GCM then; RustCrypto now) still stretches to the same verifier and opens
    /// with its server secret and with its recovery key: the move changed no byte.
    #[test]
    fn store_made_before_the_move_still_opens() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../phone-core/tests/data");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keystore.json");
        std::fs::copy(format!("{data}/native-keystore-v2.json"), &path).expect("copy");
        let secrets: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{data}/native-keystore-v2.secrets.json"))
                .expect("read"),
        )
        .expect("json");
        let field = |name: &str| secrets[name].as_str().expect("field").to_owned();
        let mut store = SoftwareKeystore::open(&path).expect("opens");
        let passcode = Passcode::new(field("passcode")).expect("passcode");
        let stretched = store.stretch(&passcode).expect("stretch");
        assert_eq!(*stretched.verifier_base64(), field("verifier"));
        let secret = ServerSecret::from_base64(&field("secret")).expect("secret");
        let keys = store
            .unlock_with_secret(&stretched, &secret)
            .expect("unlocks");
        keys.sign_auth(b"still works").expect("signs");
        assert!(
            keys.piv_csr_der(PivKey::Signature, "x")
                .expect("csr")
                .is_some()
        );
        let recovery = RecoveryKey::from_base64(&field("recovery_key")).expect("recovery");
        let new = NewPasscode::new(&Passcode::new("97531086").expect("passcode")).expect("new");
        store
            .reset_passcode(&recovery, &new)
            .expect("recovery key opens");
    }
}

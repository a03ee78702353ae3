//! The device channel key: an ECDSA P-256 key this phone makes at enrolment and uses only to
//! prove, when it connects, that it is the device the server bound the card to.
//!
//! # What it is for, and what it is not
//!
//! The phone keeps one authenticated connection to the server to *receive* sign-in requests
//! ([`crate::phone`]). To open it, the phone signs a single-use server challenge
//! ([`vsc_proto::signin::device_token_statement`]) with this key and gets a short-lived device
//! token; no static secret is ever sent. The server learns the key's public half
//! (`EnrolRequest.device_key`) in the same transaction that issues the card's certificates.
//!
//! The same key signs every passcode check and every unlock-code redemption ([`crate::unlock`],
//! [`crate::flows::redeem_unlock`]): the server releases the keystore's server secret, or the
//! recovery key, only to a request signed by the card's device key over a fresh challenge. The
//! device id is only a name.
//!
//! The key is deliberately **not** under the passcode: the phone must be able to listen for
//! requests without asking the person for anything. That is safe because the key grants
//! nothing but the right to see and refuse the device's own pending requests and to *ask* the
//! server to check a passcode. Every *approval* is a signature by the card's authentication
//! key, which lives in the encrypted [`crate::keystore`], opened only with the passcode and the
//! server's secret. Somebody who copied this file (and the keystore) could read pending
//! requests and decline them, and try passcodes online: three, counted by the server, then the
//! card locks. Never approve one without the passcode.
//!
//! # `device-key.json`
//!
//! A format version, the algorithm, the device id it was made for, the public key
//! (SubjectPublicKeyInfo DER, base64) and the private key (PKCS#8 DER, base64). Mode 0600,
//! written through a temporary file and a rename, and only after the server accepted the
//! enrolment (like the keystore), so a failed enrolment leaves the previous key in place.

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fsutil;
use crate::home::HomeError;
use crate::keystore::KeystoreError;

/// The `device-key.json` format this code writes and reads.
pub const DEVICE_KEY_FORMAT_VERSION: u32 = 1;
const ALGORITHM: &str = "ecdsa-p256-sha256";

/// The on-disk form. The private key is wiped from memory when the value is dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct DeviceKeyFile {
    version: u32,
    algorithm: String,
    device_id: String,
    public_key: String,
    private_key: String,
}

/// The device channel key, in memory.
pub struct DeviceKey {
    key: EcdsaKeyPair,
    spki: Vec<u8>,
    device_id: String,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// Makes a new key for `device_id`.
    pub fn generate(device_id: &str) -> Result<DeviceKey, KeystoreError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| KeystoreError::Crypto("generate the ECDSA P-256 device key"))?;
        DeviceKey::from_pair(key, device_id)
    }

    fn from_pair(key: EcdsaKeyPair, device_id: &str) -> Result<DeviceKey, KeystoreError> {
        let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(key.public_key())
            .map_err(|_| KeystoreError::Crypto("encode the device public key"))?
            .as_ref()
            .to_vec();
        Ok(DeviceKey {
            key,
            spki,
            device_id: device_id.to_owned(),
        })
    }

    /// The public key (SubjectPublicKeyInfo DER), as sent at enrolment.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The public key, standard base64 of the DER (the `device_key` of an enrolment).
    pub fn spki_base64(&self) -> String {
        B64.encode(&self.spki)
    }

    /// The device this key was made for.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// ECDSA P-256 with SHA-256 over `msg`; ASN.1 DER signature.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        self.key
            .sign(&SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeystoreError::Crypto("sign with the device key"))
    }

    /// Writes the key to `path` (0600, temporary file and rename).
    pub(crate) fn save(&self, path: &Path) -> Result<(), HomeError> {
        let pkcs8 = self.key.to_pkcs8v1().map_err(|_| HomeError::Corrupt {
            path: path.to_owned(),
            reason: "the device key could not be serialised".to_owned(),
        })?;
        let file = DeviceKeyFile {
            version: DEVICE_KEY_FORMAT_VERSION,
            algorithm: ALGORITHM.to_owned(),
            device_id: self.device_id.clone(),
            public_key: self.spki_base64(),
            private_key: B64.encode(pkcs8.as_ref()),
        };
        let json =
            Zeroizing::new(
                serde_json::to_vec_pretty(&file).map_err(|e| HomeError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("could not be serialised: {e}"),
                })?,
            );
        fsutil::write_private_atomic(path, &json).map_err(|source| HomeError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        })
    }

    /// Reads the key at `path`; `Ok(None)` if there is none.
    pub(crate) fn load(path: &Path) -> Result<Option<DeviceKey>, HomeError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HomeError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let corrupt = |reason: String| HomeError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let file: DeviceKeyFile =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != DEVICE_KEY_FORMAT_VERSION || file.algorithm != ALGORITHM {
            return Err(corrupt(format!(
                "format {} / {}, but this app reads {DEVICE_KEY_FORMAT_VERSION} / {ALGORITHM}",
                file.version, file.algorithm
            )));
        }
        let pkcs8 = Zeroizing::new(
            B64.decode(&file.private_key)
                .map_err(|e| corrupt(format!("private key: {e}")))?,
        );
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .map_err(|_| corrupt("the private key is not an ECDSA P-256 PKCS#8 key".to_owned()))?;
        let key = DeviceKey::from_pair(key, &file.device_id).map_err(|e| corrupt(e.to_string()))?;
        if B64.encode(key.spki()) != file.public_key {
            return Err(corrupt(
                "the private key does not match the public key".to_owned(),
            ));
        }
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    #[test]
    fn round_trip_sign_and_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device-key.json");
        assert!(DeviceKey::load(&path).expect("missing is fine").is_none());
        let key = DeviceKey::generate("00112233445566778899aabbccddeeff").expect("generate");
        key.save(&path).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let back = DeviceKey::load(&path).expect("load").expect("present");
        assert_eq!(back.spki(), key.spki());
        assert_eq!(back.device_id(), "00112233445566778899aabbccddeeff");
        let sig = back.sign(b"hello").expect("sign");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.spki())
            .verify(b"hello", &sig)
            .expect("verifies with the saved public key");
        assert!(!format!("{back:?}").contains("private"));

        // A file whose halves do not match is refused.
        let other = DeviceKey::generate("x").expect("generate");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        json["public_key"] = serde_json::Value::String(other.spki_base64());
        std::fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("write");
        assert!(matches!(
            DeviceKey::load(&path),
            Err(HomeError::Corrupt { .. })
        ));
        std::fs::write(&path, b"junk").expect("write");
        assert!(matches!(
            DeviceKey::load(&path),
            Err(HomeError::Corrupt { .. })
        ));
    }
}

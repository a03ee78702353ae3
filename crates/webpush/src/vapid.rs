//! VAPID (RFC 8292): how the vsc server identifies itself to browsers' push services.
//!
//! The server keeps one P-256 key ([`VapidKey`], the file named by `vsc serve --vapid-key`).
//! Its public half is the `applicationServerKey` the phone app passes to
//! `PushManager.subscribe`, which ties the subscription to this server: the push service then
//! delivers only messages carrying an `Authorization: vapid t=<JWT>, k=<key>` header signed by
//! the same key. The JWT names the push service's origin (`aud`), an expiry at most 24 hours
//! ahead (`exp`) and a contact for the push service's operators (`sub`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use url::Url;
use zeroize::Zeroizing;

use crate::subscription::Endpoint;

/// How long a token is valid unless the caller says otherwise: half of RFC 8292's 24-hour limit,
/// so that a clock a little ahead at the push service does not reject it.
pub const DEFAULT_VALIDITY_SECS: u64 = 12 * 60 * 60;

/// RFC 8292 §2: push services may reject tokens that expire more than 24 hours ahead.
pub const MAX_VALIDITY_SECS: u64 = 24 * 60 * 60;

/// The JOSE header of every VAPID token, fixed (RFC 8292 §2).
const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ES256"}"#;

/// Why a VAPID key or token could not be made, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    /// Reading or writing the key file failed.
    #[error("VAPID key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The key file can be read by others than its owner.
    #[error(
        "VAPID key file {path} has mode {mode:o}; it must be readable by its owner only (chmod 600)"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a PKCS#8 P-256 private key (DER or PEM).
    #[error("VAPID key file {path} does not hold a PKCS#8 P-256 private key (DER or PEM)")]
    NotAKey {
        /// The key file.
        path: PathBuf,
    },
    /// The contact is not a `mailto:` address or an `https:` URL.
    #[error("the VAPID contact {0:?} must be a mailto: address or an https: URL")]
    BadContact(String),
    /// The requested validity is zero or longer than 24 hours.
    #[error("a VAPID token must be valid for 1 second to 24 hours, not {0} seconds")]
    BadValidity(u64),
    /// The cryptographic library failed.
    #[error("the cryptographic library failed while {0}")]
    Crypto(&'static str),
}

/// The format [`VapidKey::save`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileFormat {
    /// PKCS#8 DER.
    Der,
    /// PKCS#8 in PEM (`-----BEGIN PRIVATE KEY-----`), as `openssl` and most Web Push tools read.
    Pem,
}

/// The contact a VAPID token names (`sub`): a `mailto:` address or an `https:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact(String);

impl Contact {
    /// Checks a contact: `mailto:` with an address containing `@`, or an `https:` URL with a host.
    pub fn parse(text: &str) -> Result<Self, VapidError> {
        let bad = || VapidError::BadContact(text.to_owned());
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        if let Some(address) = text.strip_prefix("mailto:") {
            let (local, domain) = address.split_once('@').ok_or_else(bad)?;
            if local.is_empty() || domain.is_empty() || domain.contains('@') {
                return Err(bad());
            }
        } else {
            let url = Url::parse(text).map_err(|_| bad())?;
            if url.scheme() != "https" || url.host_str().is_none() {
                return Err(bad());
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The contact as written in the token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The server's VAPID signing key (ECDSA P-256).
pub struct VapidKey {
    pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key_base64url())
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random key.
    pub fn generate() -> Result<Self, VapidError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| VapidError::Crypto("generating a key"))?;
        Self::from_pkcs8(document.as_ref()).ok_or(VapidError::Crypto("loading a new key"))
    }

    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?;
        Some(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// Loads a key file (PKCS#8, DER or PEM), refusing one that others may read.
    pub fn load(path: &Path) -> Result<Self, VapidError> {
        let io_error = |source| VapidError::Io {
            path: path.to_owned(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).map_err(io_error)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(VapidError::InsecurePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(io_error)?);
        let not_a_key = || VapidError::NotAKey {
            path: path.to_owned(),
        };
        if bytes.starts_with(b"-----BEGIN") {
            let der = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|_| not_a_key())?;
            Self::from_pkcs8(der.secret_pkcs8_der()).ok_or_else(not_a_key)
        } else {
            Self::from_pkcs8(&bytes).ok_or_else(not_a_key)
        }
    }

    /// Loads the key file, or makes a new key and saves it (PEM) when there is no file; the
    /// flag says whether a key was made. This is `vsc serve --vapid-key FILE`.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), VapidError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.save(path, KeyFileFormat::Pem)?;
                Ok((key, true))
            }
            Err(source) => Err(VapidError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the key to `path` (mode 0600) through a temporary file and a rename, so that a
    /// crash never leaves a half-written key; an existing file is replaced.
    pub fn save(&self, path: &Path, format: KeyFileFormat) -> Result<(), VapidError> {
        let pem;
        let contents: &[u8] = match format {
            KeyFileFormat::Der => &self.pkcs8,
            KeyFileFormat::Pem => {
                pem = pem_private_key(&self.pkcs8);
                pem.as_bytes()
            }
        };
        write_private_file(path, contents).map_err(|source| VapidError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The public key as an uncompressed P-256 point (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key in base64url: the `k=` of the header, and the `applicationServerKey` the
    /// phone app subscribes with.
    pub fn public_key_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_key())
    }

    /// The signed JWT for `endpoint`, valid from `now` (Unix seconds) for `validity_secs`.
    pub fn token(
        &self,
        endpoint: &Endpoint,
        contact: &Contact,
        now: u64,
        validity_secs: u64,
    ) -> Result<String, VapidError> {
        if validity_secs == 0 || validity_secs > MAX_VALIDITY_SECS {
            return Err(VapidError::BadValidity(validity_secs));
        }
        let claims = serde_json::json!({
            "aud": endpoint.origin(),
            "exp": now.saturating_add(validity_secs),
            "sub": contact.as_str(),
        });
        let mut token = URL_SAFE_NO_PAD.encode(JWT_HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        // ECDSA_P256_SHA256_FIXED_SIGNING gives JOSE's raw r || s (64 bytes), not DER.
        let signature = self
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| VapidError::Crypto("signing the token"))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// The `Authorization` header value for `endpoint`: `vapid t=<JWT>, k=<public key>`, with
    /// the token valid for [`DEFAULT_VALIDITY_SECS`] from `now`.
    pub fn authorization(
        &self,
        endpoint: &Endpoint,
        contact: &Contact,
        now: u64,
    ) -> Result<String, VapidError> {
        let token = self.token(endpoint, contact, now, DEFAULT_VALIDITY_SECS)?;
        Ok(format!(
            "vapid t={token}, k={}",
            self.public_key_base64url()
        ))
    }
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM block, built in one buffer sized up front so that no
/// reallocation leaves a copy of the key in freed memory.
fn pem_private_key(der: &[u8]) -> Zeroizing<String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    const END: &str = "-----END PRIVATE KEY-----\n";
    // 48 bytes of DER are one 64-column line of base64.
    let lines = der.len().div_ceil(48);
    let mut out = Zeroizing::new(String::with_capacity(BEGIN.len() + END.len() + lines * 65));
    out.push_str(BEGIN);
    for line in der.chunks(48) {
        STANDARD.encode_string(line, &mut out);
        out.push('\n');
    }
    out.push_str(END);
    out
}

/// Writes `bytes` to a new 0600 temporary sibling of `path`, syncs it and renames it over `path`.
fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random)
        .map_err(|_| io::Error::other("the random number generator failed"))?;
    let mut temp_name = name.to_os_string();
    temp_name.push(format!(".{}.tmp", URL_SAFE_NO_PAD.encode(random)));
    let temp = path.with_file_name(temp_name);

    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    // Make the rename durable.
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    const NOW: u64 = 1_800_000_000;

    fn endpoint() -> Endpoint {
        Endpoint::parse("https://updates.push.services.mozilla.com:8443/wpush/v2/gAAAA").unwrap()
    }

    fn contact() -> Contact {
        Contact::parse("mailto:vsc-ops@example.nhs.uk").unwrap()
    }

    /// Splits and checks a token with the public key alone; returns its header and claims.
    fn verify(token: &str, public_key: &[u8]) -> (serde_json::Value, serde_json::Value) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 64, "JOSE r || s, not DER");
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
            .verify(signed.as_bytes(), &signature)
            .expect("the token verifies with the public key");
        let decode = |part: &str| {
            serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(part).unwrap())
                .unwrap()
        };
        (decode(parts[0]), decode(parts[1]))
    }

    #[test]
    fn authorization_header_verifies_and_names_the_origin() {
        let key = VapidKey::generate().unwrap();
        let header = key.authorization(&endpoint(), &contact(), NOW).unwrap();
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, key.public_key_base64url());
        let k = URL_SAFE_NO_PAD.decode(k).unwrap();
        assert_eq!((k.len(), k[0]), (65, 0x04));

        let (header, claims) = verify(token, &k);
        assert_eq!(header, serde_json::json!({"typ": "JWT", "alg": "ES256"}));
        assert_eq!(
            claims,
            serde_json::json!({
                "aud": "https://updates.push.services.mozilla.com:8443",
                "exp": NOW + 12 * 3600,
                "sub": "mailto:vsc-ops@example.nhs.uk",
            })
        );
    }

    #[test]
    fn validity_is_limited_to_24_hours() {
        let key = VapidKey::generate().unwrap();
        let token = key
            .token(&endpoint(), &contact(), NOW, MAX_VALIDITY_SECS)
            .unwrap();
        let (_, claims) = verify(&token, key.public_key());
        assert_eq!(claims["exp"], NOW + 24 * 3600);
        assert!(matches!(
            key.token(&endpoint(), &contact(), NOW, MAX_VALIDITY_SECS + 1),
            Err(VapidError::BadValidity(_))
        ));
        assert!(matches!(
            key.token(&endpoint(), &contact(), NOW, 0),
            Err(VapidError::BadValidity(0))
        ));
    }

    #[test]
    fn another_key_does_not_verify() {
        let key = VapidKey::generate().unwrap();
        let other = VapidKey::generate().unwrap();
        let token = key.token(&endpoint(), &contact(), NOW, 60).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, other.public_key())
                .verify(signed.as_bytes(), &signature)
                .is_err()
        );
    }

    #[test]
    fn contacts_are_checked() {
        for good in [
            "mailto:ops@example.nhs.uk",
            "https://vsc.example.nhs.uk/contact",
        ] {
            assert_eq!(Contact::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "ops@example.nhs.uk",
            "mailto:",
            "mailto:ops",
            "mailto:@example",
            "mailto:ops@",
            "mailto:a@b@c",
            "mailto:ops@example.nhs.uk\nBcc: x@y",
            "http://vsc.example.nhs.uk/contact",
            "https://",
            "ftp://example.nhs.uk",
        ] {
            assert!(
                matches!(Contact::parse(bad), Err(VapidError::BadContact(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn key_survives_save_and_load_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let key = VapidKey::generate().unwrap();
        for (name, format) in [("k.der", KeyFileFormat::Der), ("k.pem", KeyFileFormat::Pem)] {
            let path = dir.path().join(name);
            key.save(&path, format).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600);
            }
            let loaded = VapidKey::load(&path).unwrap();
            assert_eq!(loaded.public_key(), key.public_key());
            // The loaded key signs tokens the original's public key verifies.
            let token = loaded.token(&endpoint(), &contact(), NOW, 60).unwrap();
            verify(&token, key.public_key());
        }
        let pem = fs::read_to_string(dir.path().join("k.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        // Saving again replaces the file and leaves no temporary file behind.
        key.save(&dir.path().join("k.pem"), KeyFileFormat::Pem)
            .unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn load_or_generate_makes_the_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pem");
        let (first, created) = VapidKey::load_or_generate(&path).unwrap();
        assert!(created);
        let (second, created) = VapidKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), second.public_key());
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_and_junk_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pem");
        VapidKey::generate()
            .unwrap()
            .save(&path, KeyFileFormat::Pem)
            .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            VapidKey::load(&path),
            Err(VapidError::InsecurePermissions { mode: 0o644, .. })
        ));

        let junk = dir.path().join("junk");
        write_private_file(&junk, b"not a key").unwrap();
        assert!(matches!(
            VapidKey::load(&junk),
            Err(VapidError::NotAKey { .. })
        ));
        write_private_file(
            &junk,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(
            VapidKey::load(&junk),
            Err(VapidError::NotAKey { .. })
        ));
        assert!(matches!(
            VapidKey::load(&dir.path().join("missing")),
            Err(VapidError::Io { .. })
        ));
    }
}

//! The master key: the one secret on the server's disk that protects all the others.
//!
//! CA private keys and other server secrets are stored sealed with AES-256-GCM under this key,
//! so a copy of the data directory without the key file reveals nothing.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::PkiError;
use crate::fsutil;

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

const TAG_LEN: usize = 16;

/// 256-bit key that seals CA private keys (and other server secrets) at rest with AES-256-GCM.
pub struct MasterKey {
    key: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Loads the key file, or creates it (32 random bytes, mode 0600) when missing.
    ///
    /// Creation is exclusive, so two processes starting at once cannot end up with different
    /// keys: the loser of the race loads the winner's file. A file whose mode grants group or
    /// others any access is refused rather than silently "fixed", because it may already have
    /// been copied.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, PkiError> {
        match Self::load(path) {
            Err(PkiError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            other => return other,
        }
        let key = Self::generate();
        let mut file = match fsutil::open_for_write(path, 0o600, true) {
            Ok(file) => file,
            Err(PkiError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                return Self::load(path);
            }
            Err(e) => return Err(e),
        };
        file.write_all(key.key.as_slice())
            .and_then(|()| file.sync_all())
            .map_err(PkiError::io(path))?;
        fsutil::sync_dir(fsutil::parent_dir(path));
        Ok(key)
    }

    fn load(path: &Path) -> Result<MasterKey, PkiError> {
        let mut file = std::fs::File::open(path).map_err(PkiError::io(path))?;
        let meta = file.metadata().map_err(PkiError::io(path))?;
        if fsutil::is_group_or_world_accessible(&meta) {
            return Err(PkiError::InsecureKeyFile {
                path: path.to_path_buf(),
            });
        }
        // Read one byte more than needed so an over-long file is detected, not truncated.
        let mut buf = Zeroizing::new([0u8; MASTER_KEY_LEN + 1]);
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]).map_err(PkiError::io(path))? {
                0 => break,
                n => len += n,
            }
        }
        if len != MASTER_KEY_LEN {
            return Err(PkiError::corrupt(
                path,
                format!("a master key file must hold exactly {MASTER_KEY_LEN} bytes"),
            ));
        }
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        key.copy_from_slice(&buf[..MASTER_KEY_LEN]);
        Ok(MasterKey { key })
    }

    /// Generates a fresh random key (not persisted).
    ///
    /// # Panics
    /// If the operating system's random number generator fails, which leaves nothing
    /// safe to do.
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(key.as_mut_slice()).expect("system random number generator failed");
        MasterKey { key }
    }

    /// Encrypts and authenticates `plaintext`, returning `nonce(12) || ciphertext || tag(16)`.
    ///
    /// `aad` binds the blob to its purpose (e.g. `b"vsc/ca/issuing-key"`), so a blob sealed
    /// for one purpose cannot be substituted for another.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| PkiError::Crypto("random nonce"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .aead_key()?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| PkiError::Crypto("AES-GCM seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same `aad`.
    ///
    /// Fails with [`PkiError::Sealed`] if the key or `aad` differ or the blob was modified.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(PkiError::Sealed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PkiError::Sealed)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .aead_key()?
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| PkiError::Sealed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    fn aead_key(&self) -> Result<LessSafeKey, PkiError> {
        let key = UnboundKey::new(&AES_256_GCM, self.key.as_slice())
            .map_err(|_| PkiError::Crypto("AES-256-GCM key setup"))?;
        Ok(LessSafeKey::new(key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"purpose", b"secret bytes").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 12 + TAG_LEN);
        assert_eq!(
            key.open(b"purpose", &sealed).unwrap().as_slice(),
            b"secret bytes"
        );
        // Fresh nonce per seal.
        assert_ne!(sealed, key.seal(b"purpose", b"secret bytes").unwrap());
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"a", b"").unwrap();
        assert!(key.open(b"a", &sealed).unwrap().is_empty());
    }

    #[test]
    fn tampering_wrong_aad_wrong_key_and_truncation_fail() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"purpose", b"secret bytes").unwrap();
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert!(matches!(
                key.open(b"purpose", &tampered),
                Err(PkiError::Sealed)
            ));
        }
        assert!(matches!(key.open(b"other", &sealed), Err(PkiError::Sealed)));
        assert!(matches!(
            MasterKey::generate().open(b"purpose", &sealed),
            Err(PkiError::Sealed)
        ));
        assert!(matches!(
            key.open(b"purpose", &sealed[..20]),
            Err(PkiError::Sealed)
        ));
    }

    #[test]
    fn debug_does_not_print_key() {
        let key = MasterKey::generate();
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey([redacted])");
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_creates_0600_and_reloads_same_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), MASTER_KEY_LEN as u64);
        let loaded = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(*created.key, *loaded.key);
        let sealed = created.seal(b"x", b"y").unwrap();
        assert_eq!(loaded.open(b"x", &sealed).unwrap().as_slice(), b"y");
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_refuses_group_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err();
        assert!(matches!(&err, PkiError::InsecureKeyFile { path: p } if *p == path));
        let msg = err.to_string();
        assert!(
            msg.contains("chmod 600") && msg.contains(&*path.to_string_lossy()),
            "{msg}"
        );
    }

    #[test]
    fn load_or_create_rejects_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut f = fsutil::open_for_write(&path, 0o600, true).unwrap();
        f.write_all(&[7u8; MASTER_KEY_LEN + 1]).unwrap();
        drop(f);
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(PkiError::CorruptFile { .. })
        ));
    }
}

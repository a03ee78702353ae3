//! The per-user secret that guards the agent's loopback API.
//!
//! Any local user can connect to a loopback port, so the port alone protects nothing. The agent
//! keeps a random 256-bit value in `agent.secret` (mode 0600, in the user's agent home; made on
//! first run and reused after), and every caller must send it as the [`SECRET_HEADER`] header.
//! Only the user who owns the file can read it, so only they can take the ticket. The value is
//! compared in constant time, kept in zeroizing memory, and never logged.
//!
//! The port alone does not prove the agent either: while no agent runs, any local process may
//! listen on its port and wait for a client to send the secret. So a client first asks the
//! listener to prove it holds the secret ([`PROOF_PATH`]): it sends a fresh random nonce, the
//! agent answers HMAC-SHA256 under the secret of a domain-separated message with that nonce
//! ([`LocalSecret::proof`]), the client checks it in constant time
//! ([`LocalSecret::proof_matches`]) and sends the secret only then. The answer reveals nothing
//! that lets anyone compute the secret, and it is never accepted where the secret is.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{AgentError, Result};
use vsc_https::fsutil;

/// The header callers of the local API send the secret in.
pub const SECRET_HEADER: &str = "x-vsc-agent-secret";

/// The unauthenticated route where the agent proves it holds the secret:
/// `GET /v1/prove?nonce=<64 hex digits>` answers `{"proof": "<64 hex digits>"}`.
pub const PROOF_PATH: &str = "/v1/prove";

/// Length of a proof nonce in bytes.
pub const NONCE_BYTES: usize = 32;

/// What the proof's HMAC covers before the nonce, so it can never stand for anything else.
const PROOF_DOMAIN: &[u8] = b"vsc-agent-proof/v1\0";

/// Length of the secret in bytes (256 bits).
const SECRET_BYTES: usize = 32;

/// The local API secret, as the 64 lowercase hex digits callers send.
#[derive(Clone)]
pub struct LocalSecret {
    hex: Zeroizing<String>,
}

impl fmt::Debug for LocalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalSecret(…)")
    }
}

impl LocalSecret {
    /// A fresh random secret (for an agent run in-process, whose callers get it directly).
    pub fn generate() -> Result<LocalSecret> {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| AgentError::Internal("the random number generator failed".into()))?;
        Ok(LocalSecret {
            hex: Zeroizing::new(hex::encode(bytes.as_ref())),
        })
    }

    /// Reads the secret at `path`, creating it (mode 0600) if it does not exist. Refuses a file
    /// other users can access, and one that does not hold a secret.
    pub fn load_or_create(path: &Path) -> Result<LocalSecret> {
        if !path.exists() {
            let fresh = LocalSecret::generate()?;
            let mut content = Zeroizing::new(fresh.hex.as_str().to_owned());
            content.push('\n');
            // Another process may create it at the same moment: whoever links first wins and
            // both then read the same file.
            fsutil::create_private_once(path, content.as_bytes()).map_err(|source| {
                AgentError::Io {
                    action: "create the secret file",
                    path: path.to_owned(),
                    source,
                }
            })?;
        }
        LocalSecret::load(path)
    }

    /// Reads an existing secret file.
    pub fn load(path: &Path) -> Result<LocalSecret> {
        let meta = std::fs::metadata(path).map_err(|source| AgentError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        if fsutil::accessible_by_others(&meta) {
            return Err(AgentError::SecretPermissions {
                path: path.to_owned(),
            });
        }
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| AgentError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                })?,
            );
        LocalSecret::from_hex(text.trim()).ok_or_else(|| AgentError::Corrupt {
            path: path.to_owned(),
            reason: "it does not hold 64 hexadecimal digits".into(),
        })
    }

    /// A secret from its 64 hex digits (any case).
    pub fn from_hex(text: &str) -> Option<LocalSecret> {
        let bytes = Zeroizing::new(hex::decode(text).ok()?);
        (bytes.len() == SECRET_BYTES).then(|| LocalSecret {
            hex: Zeroizing::new(hex::encode(bytes.as_slice())),
        })
    }

    /// The value to send in [`SECRET_HEADER`]. Do not log it.
    pub fn expose(&self) -> &str {
        &self.hex
    }

    /// The agent's proof for a client's `nonce`: HMAC-SHA256 under the secret of
    /// `vsc-agent-proof/v1\0 || nonce`.
    pub fn proof(&self, nonce: &[u8; NONCE_BYTES]) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.hex.as_bytes());
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(PROOF_DOMAIN);
        ctx.update(nonce);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `presented` (hex) is the proof for `nonce`, compared in constant time.
    pub fn proof_matches(&self, nonce: &[u8; NONCE_BYTES], presented: &str) -> bool {
        let Ok(presented) = hex::decode(presented.trim()) else {
            return false;
        };
        bool::from(self.proof(nonce).as_slice().ct_eq(presented.as_slice()))
    }

    /// A fresh random nonce for [`LocalSecret::proof`].
    pub fn new_nonce() -> Result<[u8; NONCE_BYTES]> {
        let mut nonce = [0u8; NONCE_BYTES];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| AgentError::Internal("the random number generator failed".into()))?;
        Ok(nonce)
    }

    /// Whether `presented` is this secret, compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = presented.trim_ascii();
        bool::from(self.hex.as_bytes().ct_eq(&presented.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("agent.secret");
        let first = LocalSecret::load_or_create(&path).expect("created");
        assert_eq!(first.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        let second = LocalSecret::load_or_create(&path).expect("reused");
        assert_eq!(first.expose(), second.expose());
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("agent.secret")]);
        // Another fresh secret differs.
        assert_ne!(
            LocalSecret::generate().expect("fresh").expose(),
            first.expose()
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("agent.secret");
        LocalSecret::load_or_create(&path).expect("created");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = LocalSecret::load_or_create(&path).expect_err("too open");
        assert!(matches!(err, AgentError::SecretPermissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn damaged_secret_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("agent.secret");
        fsutil::create_private_once(&path, b"not a secret\n").expect("write");
        let err = LocalSecret::load_or_create(&path).expect_err("damaged");
        assert!(matches!(err, AgentError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn proofs_depend_on_secret_and_nonce() {
        let s = LocalSecret::generate().expect("secret");
        let other = LocalSecret::generate().expect("secret");
        let n1 = LocalSecret::new_nonce().expect("nonce");
        let n2 = LocalSecret::new_nonce().expect("nonce");
        let p = hex::encode(s.proof(&n1));
        assert!(s.proof_matches(&n1, &p));
        assert!(!s.proof_matches(&n2, &p));
        assert!(!other.proof_matches(&n1, &p));
        assert!(!s.proof_matches(&n1, ""));
        assert!(!s.proof_matches(&n1, "zz"));
        assert!(
            !s.proof_matches(&n1, s.expose()),
            "the secret is not a proof"
        );
    }

    #[test]
    fn matching_is_exact() {
        let s = LocalSecret::generate().expect("secret");
        assert!(s.matches(s.expose().as_bytes()));
        assert!(s.matches(s.expose().to_uppercase().as_bytes()));
        assert!(!s.matches(b""));
        assert!(!s.matches(&s.expose().as_bytes()[..63]));
        let other = LocalSecret::generate().expect("secret");
        assert!(!s.matches(other.expose().as_bytes()));
        assert_eq!(format!("{s:?}"), "LocalSecret(…)");
    }
}

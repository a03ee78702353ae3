//! Error types for the PKI crate.

use std::path::PathBuf;

use crate::csr::CsrError;

/// Everything that can go wrong in the PKI crate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A secret file is accessible to group or others.
    #[error(
        "{path} is accessible by group or others; it holds secret key material. Fix with `chmod 600 {path}`",
        path = path.display()
    )]
    InsecureKeyFile {
        /// The offending file.
        path: PathBuf,
    },

    /// A key or CA file exists but its contents are unusable.
    #[error("{path} is corrupt: {reason}", path = path.display())]
    CorruptFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Sealed data could not be opened.
    #[error("cannot open sealed data: wrong master key, or the data was tampered with")]
    Sealed,

    /// The system random number generator or another crypto primitive failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),

    /// Building, signing or parsing a certificate or CRL failed.
    #[error("certificate error: {0}")]
    Certificate(String),

    /// A caller-supplied value (name, UID, serial, time) is unacceptable.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A CSR was rejected.
    #[error(transparent)]
    Csr(#[from] CsrError),

    /// A string is not a SHA-256 fingerprint.
    #[error(
        "not a SHA-256 fingerprint: expected 64 hex digits, optionally as 32 colon-separated pairs"
    )]
    Fingerprint,

    /// Text is not valid PEM.
    #[error("invalid PEM: {0}")]
    Pem(String),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.into();
        move |source| PkiError::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> PkiError {
        PkiError::CorruptFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Certificate(e.to_string())
    }
}

//! vsc PKI: the instance certificate authority and the cryptographic plumbing around it.
//!
//! Each vsc instance runs its own two-level CA:
//!
//! * a **root** (ECDSA P-384, 20 years, pathLen 1) whose fingerprint people compare when they
//!   decide to trust an instance. It signs only the issuing CA and its own CRL;
//! * an **issuing CA** (ECDSA P-256, 10 years, pathLen 0) that signs people's certificates,
//!   the server's TLS certificate and the CRL listing revoked ones.
//!
//! People's private keys never reach the server: the phone sends a CSR, [`validate_csr`]
//! checks its proof of possession and key strength, and
//! [`CertificateAuthority::issue_person_certificate`] takes only the public key from it,
//! writing subject and extensions itself. The CA private keys are stored only sealed with the
//! [`MasterKey`] (AES-256-GCM), and are wiped from memory when dropped.
//!
//! [`ocsp`] is the OCSP (RFC 6960) codec: requests and responses for the server's responder,
//! and the checks a relying party makes on a response.
//!
//! Certificates are built with rcgen and parsed with x509-parser; all cryptography is aws-lc-rs.

#![forbid(unsafe_code)]

pub mod ca;
pub mod cert;
pub mod crl;
pub mod csr;
pub mod error;
pub mod fingerprint;
mod fsutil;
pub mod master_key;
pub mod ocsp;
pub mod pem;

pub use ca::{CertProfile, CertificateAuthority, PersonSubject};
pub use cert::{CertificateInfo, IssuedCertificate, certificate_info};
pub use crl::{RevocationReason, RevokedEntry};
pub use csr::{CsrError, KeyKind, ValidatedCsr, validate_csr, validate_public_key};
pub use error::PkiError;
pub use fingerprint::Fingerprint;
pub use master_key::MasterKey;
pub use pem::{der_to_pem, pem_to_der};

//! What every vsc client shares when it talks to a vsc server or keeps private state on disk,
//! apart from the phone's keystore.
//!
//! The phone (`vsc-authenticator`), the workstation agent (`vsc-agent`) and the CLI all reach the
//! server through the same [`client::Client`], which trusts only the instance's own root CA
//! (pinned by fingerprint before enrolment, by the stored root PEM after it) and turns the
//! server's error bodies into [`client::ClientError`]. They keep their state in private files
//! written atomically ([`fsutil`]). The phone also reads the server's device event stream with
//! the [`sse`] parser. Keeping these here, rather than in the authenticator, means the
//! workstation agent does not link the phone's keystore.
//!
//! PEM is read everywhere with `rustls-pki-types` ([`rustls_pki_types::pem::PemObject`]);
//! [`pem::encode`] is the writer for the PEM these clients store.

pub mod client;
pub mod fsutil;
pub mod pem;
pub mod sse;

pub use client::{Client, ClientError, PinNotPresented, PinnedRootVerifier};
pub use sse::{SseError, SseEvent, SseParser};

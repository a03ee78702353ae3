//! Bad input, refused requests and races against the real server: each refusal carries its HTTP
//! status and machine code, changes nothing but counters and the audit log, and is audited.
//!
//! The server runs in-process over TLS on loopback (see `common`); phones are the real
//! authenticator library in temporary directories.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod cards;
mod concurrency;
mod csr;
mod device;
mod identifiers;
mod oidc_clients;
mod ra_login;
mod ra_scope;
mod ra_takeover;
mod ra_withdraw;
mod replacement;
mod revocation_reasons;

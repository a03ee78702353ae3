//! The phone's keystore and the server (issue 9, items 5 and 10), against the real server over
//! TLS on loopback with real phones (the authenticator library in temporary homes):
//!
//! * `unlock_proof`: an RA unlock code is redeemed only with a signature by the card's device
//!   key over a fresh challenge; the code and the device id alone get nothing.
//! * `passcode`: the keystore opens only with the passcode *and* the secret the server releases
//!   for the right verifier; a copied file cannot be guessed at offline, wrong passcodes are
//!   counted by the server (rewinding the file does not help), challenges are single-use.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod passcode;
mod unlock_proof;

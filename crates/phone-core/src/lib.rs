//! The phone app's portable core: everything the authenticator decides, as opposed to how it
//! talks to the network or where it stores things. It builds natively (for `vsc-authenticator`
//! and its tests) and for `wasm32-unknown-unknown` (the web app, through `vsc-phone-web`), so
//! the approval checks, the keystore's sealing and what a prescriber sees before signing are
//! one implementation. No I/O, no async runtime, no aws-lc-rs: pure-Rust crypto only.
//!
//! * [`seal`]: the keystore's format-2 primitives (Argon2id, HKDF, AES-256-GCM with AAD).
//! * [`signin`]: checks on a sign-in request, the approval statement, what the phone shows.
//! * [`review`]: the signing review (what a prescriber sees, what each item signs).
//! * [`cert`]: serial, expiry and key of a certificate the server issued.
//! * [`csr`]: PKCS#10 requests signed elsewhere (WebCrypto), ECDSA P1363 to DER.
//! * [`webstore`]: the web app's keystore document.
//! * [`link`]: the activation link and the root CA check.
//! * [`qr`]: QR decoding from a camera frame.
#![forbid(unsafe_code)]

// The unit tests run in headless Chromium too (wasm-bindgen-test-runner).
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

pub mod cert;
pub mod csr;
pub mod link;
pub mod qr;
pub mod review;
pub mod seal;
pub mod signin;
pub mod webstore;

/// The wire types and statements shared with the server.
pub use vsc_proto;

/// The app's version (this crate's), which the app reports as `x-vsc-app-version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

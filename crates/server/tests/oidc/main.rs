//! The OpenID Connect provider against the real server over TLS on loopback: the
//! authorization code flow through the sign-in pages with a real phone approval, single sign-on,
//! tokens, userinfo, logout and back-channel logout, and the negative cases of the OpenID
//! Foundation's Basic OP plan. The "browser" here is a plain HTTPS client that keeps cookies
//! and reads the pages' forms (the real browser runs in `browser.rs`).

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod support;

mod flow;
mod hostile;
mod keys;
mod logout;
mod negative;
mod pages;
mod pkce;
mod private_key_jwt;
mod refresh;

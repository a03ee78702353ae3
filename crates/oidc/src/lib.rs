//! The protocol logic of vsc's OpenID Connect provider, kept free of I/O so that it can be
//! tested on its own: JOSE (JWS compact signing and verification, JWKs) over aws-lc-rs, PKCE,
//! redirect URI rules, and client assertion checks. The HTTP endpoints live in `vsc-server`.

pub mod assertion;
pub mod jose;
pub mod pkce;
pub mod redirect;

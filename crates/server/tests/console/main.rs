//! The RA console in the browser (`/ra`) against the real server: sign-in through the
//! provider's pages with the RA's phone, the console session, and the pages reading and acting
//! through the RA API's own functions. A cookie-keeping HTTPS client plays the browser (the
//! real browser runs in `oidc_browser`).

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

#[path = "../oidc/support.rs"]
#[allow(dead_code)]
mod support;

mod audit;
mod bulk;
mod dashboard;
mod organisations;
mod person_actions;
mod renewal;
mod signin;
mod workstation_grace;

//! The pinned HTTPS client. It lives in `vsc-https`, shared with the workstation agent and the
//! CLI, and is re-exported here; what stays is the one constructor that needs the phone's home
//! directory: [`ClientForHome::for_home`].

pub use vsc_https::client::*;

use crate::AuthenticatorError;
use crate::home::Home;

/// Builds the [`Client`] for an enrolled phone. A trait because `Client` now belongs to
/// `vsc-https`, which knows nothing of the phone's home directory; bring it into scope to call
/// `Client::for_home(&home)`.
pub trait ClientForHome: Sized {
    /// The client for an enrolled home: its server, its stored root.
    fn for_home(home: &Home) -> Result<Self, AuthenticatorError>;
}

impl ClientForHome for Client {
    fn for_home(home: &Home) -> Result<Client, AuthenticatorError> {
        let enrolment = home.enrolment()?.ok_or(AuthenticatorError::NotEnrolled)?;
        Ok(Client::with_root_pem(
            enrolment.server,
            &enrolment.root_ca_pem,
        )?)
    }
}

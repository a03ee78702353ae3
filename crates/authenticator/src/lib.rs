//! The vsc authenticator: the phone app's core as a library.
//!
//! A person's virtual smartcard lives on their phone: two private keys (ECDSA P-256 for
//! authentication, RSA-2048 for signing) in a [`keystore`] opened with a passcode, certified by
//! the instance CA at enrolment. This crate holds the state directory ([`home`]), the HTTPS
//! [`client`] that trusts only the instance's root CA, and the [`flows`] a front end drives:
//! enrolment, redeeming an RA unlock code, RA login, and status.

pub mod client;
pub mod flows;
mod fsutil;
pub mod home;
pub mod keystore;

pub use client::{Client, ClientError, PinnedRootVerifier};
pub use flows::{Status, enrol, ra_login, redeem_unlock, status};
pub use home::{Device, Enrolment, Home, HomeError};
pub use keystore::{
    Keystore, KeystoreError, MAX_ATTEMPTS, Passcode, RecoveryKey, SoftwareKeystore, UnlockedKeys,
};

/// Why a flow failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticatorError {
    /// The keystore refused or failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The home directory could not be used.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The server refused, or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The link could not be read.
    #[error(
        "{0}; paste the whole link your RA gave you, or type the code with the server address and CA fingerprint"
    )]
    Link(#[from] vsc_proto::ActivationLinkError),
    /// The code is not well formed.
    #[error("{0}; check the code your RA gave you")]
    Code(#[from] vsc_core::ActivationCodeError),
    /// A bare code without the server address.
    #[error(
        "a code on its own needs the server address too (for example https://vsc.example.nhs.uk); give it, or use the whole link your RA gave you"
    )]
    MissingServer,
    /// A bare code without the CA fingerprint.
    #[error(
        "a code on its own needs the server's CA fingerprint too (64 hex digits, from your RA); give it, or use the whole link your RA gave you"
    )]
    MissingFingerprint,
    /// An activation link where an unlock link was expected, or the other way round.
    #[error(
        "that is {found}, but this step needs {expected}; check which link your RA gave you for what"
    )]
    WrongLinkKind {
        /// What was needed.
        expected: &'static str,
        /// What was given.
        found: &'static str,
    },
    /// Nothing enrolled in this home yet.
    #[error("this phone is not enrolled yet; enrol it first with the activation link from your RA")]
    NotEnrolled,
    /// One person per device.
    #[error(
        "this phone already holds a card for UID {uid}; one person per device. The code was for UID {other_uid} and its new keys were discarded: ask your RA to cancel that card, and enrol on another phone"
    )]
    OtherPerson {
        /// Who this device belongs to.
        uid: String,
        /// Whom the code was for.
        other_uid: String,
    },
    /// The server's answer to an enrolment does not fit what was asked.
    #[error(
        "the server's enrolment answer cannot be used ({0}); nothing was saved, so tell your RA and ask for a new activation code"
    )]
    BadEnrolment(String),
    /// An unlock link for another server or CA than the one this phone is enrolled with.
    #[error(
        "the unlock link is for {link}, but this phone is enrolled with {enrolled}; use an unlock code from the RA of the service that issued your card"
    )]
    ServerMismatch {
        /// What the link says.
        link: String,
        /// What the enrolment says.
        enrolled: String,
    },
}

//! The vsc authenticator: the phone app's core as a library.
//!
//! A person's virtual smartcard lives on their phone: two private keys (ECDSA P-256 for
//! authentication, RSA-2048 for signing) in a [`keystore`] opened with a passcode, certified by
//! the instance CA at enrolment. This crate holds the state directory ([`home`]), the HTTPS
//! [`client`] that trusts only the instance's root CA, the [`flows`] a front end drives
//! (enrolment, redeeming an RA unlock code, RA login, status), and the [`phone`] side of signing
//! in: the device channel that receives sign-in requests (authenticated with the
//! [`device_key`]) and the approval signed with the card's key after the passcode. Every use of
//! the card's keys opens the keystore through [`unlock`], where the server checks the passcode.
//!
//! The HTTPS client, the event-stream parser and the private-file helpers are in `vsc-https`,
//! which the workstation agent uses without linking this crate; they are re-exported here
//! ([`client`], [`sse`], [`fsutil`]) so that the phone's callers need only this crate.

pub mod client;
pub mod device_key;
pub mod flows;
pub mod home;
pub mod keystore;
pub mod phone;
pub mod signing;
pub mod unlock;

pub use client::{Client, ClientError, ClientForHome, PinnedRootVerifier};
pub use device_key::DeviceKey;
pub use flows::{Renewed, Status, enrol, ra_login, redeem_unlock, renew, status};
pub use home::{Device, Enrolment, Home, HomeError, PendingRenewal, RenewalNews};
pub use keystore::{
    Keystore, KeystoreError, MAX_ATTEMPTS, NewPasscode, Passcode, RecoveryKey, ServerSecret,
    SoftwareKeystore, StretchedPasscode, UnlockedKeys,
};
pub use phone::{
    AutoApprove, DeviceEvent, ListenNotice, Listener, PhoneLink, Transport, WorkstationScreen,
    auto_approve, auto_approve_with, check_request,
};
pub use unlock::unlock_keys;
pub use vsc_https::{fsutil, sse};

impl From<vsc_phone_core::signin::SignInError> for AuthenticatorError {
    fn from(e: vsc_phone_core::signin::SignInError) -> AuthenticatorError {
        use vsc_phone_core::signin::SignInError;
        match e {
            SignInError::ContextMismatch { request_id } => {
                AuthenticatorError::ContextMismatch { request_id }
            }
            SignInError::RequestExpired { request_id } => {
                AuthenticatorError::RequestExpired { request_id }
            }
            SignInError::BadRequestId(id) => AuthenticatorError::BadRequestId(id),
            SignInError::NotTwoDigits { number } => AuthenticatorError::NotTwoDigits {
                number: u8::try_from(number).unwrap_or(u8::MAX),
            },
        }
    }
}

impl From<vsc_phone_core::review::ReviewError> for AuthenticatorError {
    fn from(e: vsc_phone_core::review::ReviewError) -> AuthenticatorError {
        AuthenticatorError::BadSigningRequest {
            request_id: e.request_id,
            reason: e.reason,
        }
    }
}

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
    /// Enrolled before device channel keys existed (or `device-key.json` was removed).
    #[error(
        "this phone has no device key, so it cannot receive sign-in requests or open its keystore; it was enrolled by an older version or device-key.json was removed: ask your RA for a new activation code and enrol again"
    )]
    NoDeviceKey,
    /// The context shown would not be the one signed.
    #[error(
        "sign-in request {request_id} was refused on this phone: its details do not match the digest the server sent, so what you would see is not what you would approve. Do not approve it; sign in again at the workstation, and tell your IT service desk if this repeats"
    )]
    ContextMismatch {
        /// The request.
        request_id: String,
    },
    /// The request has expired.
    #[error(
        "sign-in request {request_id} has expired; sign in again at the workstation to get a new one (if every request looks expired, check this phone's clock)"
    )]
    RequestExpired {
        /// The request.
        request_id: String,
    },
    /// The number typed is not a two-digit number.
    #[error(
        "{number} is not a two-digit number; type the number shown on the workstation (00 to 99)"
    )]
    NotTwoDigits {
        /// What was typed.
        number: u8,
    },
    /// A request id that cannot be one.
    #[error("'{0}' is not a sign-in request id; copy it from `vsc authenticator pending`")]
    BadRequestId(String),
    /// No pending request with that id.
    #[error(
        "there is no pending sign-in request {0} for this phone: it was answered, withdrawn or has expired; list the pending ones with `vsc authenticator pending`"
    )]
    NoSuchRequest(String),
    /// Automatic approval asked of a real phone.
    #[error(
        "automatic approval is only for a simulated phone (demo and sandbox); this phone was enrolled as a real one, so approve each request yourself"
    )]
    NotSimulated,
    /// The server did not answer the event stream with an event stream.
    #[error(
        "the server answered the event stream with '{content_type}' instead of text/event-stream; something between this phone and the server may be changing responses, so long-poll instead"
    )]
    NoEventStream {
        /// What came instead.
        content_type: String,
    },
    /// The event stream could not be parsed.
    #[error("the server's event stream could not be read ({0}); reconnect")]
    EventStream(String),
    /// A signing request this app will not sign at all.
    #[error("signing request {request_id} cannot be signed: {reason}")]
    BadSigningRequest {
        /// The request.
        request_id: String,
        /// What was wrong.
        reason: String,
    },
    /// One event could not be read.
    #[error(
        "the server sent a '{event}' event this app cannot read ({reason}); the server and this app may be different versions, so check for an app update"
    )]
    BadEvent {
        /// The event type.
        event: String,
        /// What was wrong.
        reason: String,
    },
    /// Not even a keep-alive for too long.
    #[error(
        "the server sent nothing for {seconds} seconds, not even a keep-alive; the connection is assumed dead, reconnect"
    )]
    StreamSilent {
        /// How long.
        seconds: u64,
    },
    /// The server closed the event stream.
    #[error("the server closed the event stream; reconnect")]
    StreamEnded,
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

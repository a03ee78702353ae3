//! The vsc identity agent: signs a person in with their phone, keeps the session for the
//! workstation, and hands the session ticket to local applications over a loopback API.
//!
//! The agent is the workstation's side of push sign-in. It opens an authentication request
//! bound to the workstation's context, shows the two-digit number the person must pick on
//! their phone, waits for the phone's approval and collects the session ticket. From then on it
//! holds that ticket in memory: local applications ask for it (`get-ticket`, which starts a
//! sign-in when there is none, or `get-ticket-no-auth`, which never does), the person locks and
//! unlocks the workstation (unlock is a fresh phone approval that keeps the selected role), and
//! logging out ends the server session at once, like removing a smartcard.
//!
//! * [`agent`]: the [`Agent`] itself, usable in-process (`vsc demo`, `vsc sandbox`);
//! * [`local`]: the loopback HTTP API ([`Agent::serve`]) and its wire types;
//! * [`local_client`]: [`LocalClient`], what the `vsc agent …` subcommands use to talk to a
//!   running agent;
//! * [`home`]: the agent's state directory (`agent.json`, `agent.secret`, `agent.port`);
//! * [`secret`]: the per-user secret that guards the loopback API;
//! * [`server`]: the calls the agent makes to the vsc server;
//! * [`workstation`]: this workstation's registration (`vsc agent enrol`) and the key that signs
//!   its sign-in requests and ticket collections.

pub mod agent;
pub mod card;
pub mod eps;
pub mod home;
pub mod local;
pub mod local_client;
pub mod secret;
pub mod server;
pub mod workstation;

pub use agent::{
    Agent, AgentConfig, AgentEvent, EventHandler, PURPOSE_SIGN_IN, PURPOSE_UNLOCK, Ticket,
    Workstation,
};
pub use home::{AgentFile, AgentHome};
pub use local::{
    AgentStatus, PendingPrompt, SessionState, TicketAnswer, UnlockReport, bind_loopback,
};
pub use local_client::LocalClient;
pub use secret::{LocalSecret, SECRET_HEADER};
pub use server::{ServerLink, ServerTrust};
pub use workstation::{RegisteredWorkstation, Registration};

use std::net::SocketAddr;
use std::path::PathBuf;

use vsc_https::ClientError;

/// Why an agent operation failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The vsc server refused, or could not be reached.
    #[error(transparent)]
    Server(#[from] ClientError),
    /// A file or directory of the agent's home could not be used.
    #[error("could not {action} {}: {source}; check that the agent home exists and that you may write to it", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file of the agent's home does not make sense.
    #[error("{} is damaged ({reason}); delete it and start again (the agent makes a new one)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The secret file can be read by other users.
    #[error("{} can be read or written by other users; run `chmod 600 {}` (or delete it to make a new one) and start again", path.display(), path.display())]
    SecretPermissions {
        /// The secret file.
        path: PathBuf,
    },
    /// No server configured yet.
    #[error(
        "no vsc server is configured for this agent; sign in once with `vsc agent login UID --server URL --ca-fingerprint FP` (or --ca-file root.pem)"
    )]
    NotConfigured,
    /// A server without a way to trust it.
    #[error(
        "the server's CA is not known; give its fingerprint with --ca-fingerprint (64 hex digits, from your RA or the server's start-up output) or its root certificate with --ca-file"
    )]
    NoTrust,
    /// No UID to sign in with.
    #[error(
        "no UID to sign in with: give your 12-digit UID (`vsc agent login UID`); it is remembered after the first sign-in"
    )]
    NoUid,
    /// No session is held.
    #[error("nobody is signed in on this workstation; sign in first (`vsc agent login`)")]
    NotSignedIn,
    /// The session is locked.
    #[error(
        "the workstation is locked; unlock it with your phone (`vsc agent unlock`), or log out (`vsc agent logout`)"
    )]
    Locked,
    /// The phone declined.
    #[error("the sign-in was declined on the phone; sign in again if that was a mistake")]
    Declined,
    /// The card holder said they did not make this request.
    #[error(
        "the card holder reported this sign-in as not theirs (\"I didn't do this\"); sign-in to that card is blocked for a while and the security team is alerted. If it was you, contact your RA or service desk"
    )]
    Reported,
    /// The approval failed (wrong number, bad signature).
    #[error(
        "the phone's approval failed (a wrong number was typed, or the signature did not verify); sign in again and type the number this workstation shows"
    )]
    Failed,
    /// Nobody answered in time.
    #[error(
        "the sign-in request expired before the phone approved it; sign in again and approve it on your phone within two minutes"
    )]
    Expired,
    /// A newer request from this workstation replaced this one.
    #[error(
        "this sign-in request was replaced by a newer one from this workstation; use the number of the newest request"
    )]
    Superseded,
    /// The request was withdrawn.
    #[error("the sign-in was cancelled on this workstation; sign in again when you are ready")]
    Cancelled,
    /// The server said `state` for a request, which this agent does not know.
    #[error(
        "the server answered the sign-in with state '{0}', which this agent does not understand; check for an agent update"
    )]
    UnexpectedState(String),
    /// The prescriber declined the signing request on the phone.
    #[error("the signing request was declined on the phone; nothing was signed")]
    SigningDeclined,
    /// The phone did not answer the signing request in time.
    #[error(
        "the signing request expired before the phone answered; send it again and approve it on your phone"
    )]
    SigningExpired,
    /// A prescription could not be prepared for signing (not EPS XML, missing parts).
    #[error("prescription '{id}' cannot be signed: {reason}")]
    Prescription {
        /// The caller's id for it.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The session ended on the server.
    #[error("the session has ended ({0}); sign in again")]
    SessionEnded(String),
    /// Fast user switching: the workstation already keeps as many locked sessions as it may.
    #[error(
        "this workstation already keeps {max} locked sessions of other people; one of them must unlock and log out (`vsc agent unlock --uid UID`, then `vsc agent logout`) or `vsc agent logout --all` before another person signs in"
    )]
    TooManyParked {
        /// The bound.
        max: usize,
    },
    /// Unlocking for a person who has no session on this workstation.
    #[error(
        "{uid} has no locked session on this workstation; sign in with `vsc agent login {uid}`"
    )]
    NotParked {
        /// Whom the unlock named.
        uid: String,
    },
    /// The role given is not one of the session's.
    #[error("'{given}' is not one of your roles; choose one of: {choices}")]
    UnknownRole {
        /// What was asked for.
        given: String,
        /// The roles on offer, "position id (role code, name, organisation)".
        choices: String,
    },
    /// A role code held at several organisations.
    #[error(
        "you hold role code '{given}' in more than one position; choose by position id: {choices}"
    )]
    AmbiguousRole {
        /// What was asked for.
        given: String,
        /// The matching positions.
        choices: String,
    },
    /// Unlock restored a session but not its role.
    #[error(
        "the phone approved the unlock, but the role you had ({position_id}) could not be selected again ({reason}); the workstation stays locked: log out and sign in again"
    )]
    RoleNotRestored {
        /// The position that could not be selected.
        position_id: String,
        /// Why.
        reason: String,
    },
    /// The ticket was dropped here, but the server did not confirm the logout.
    #[error(
        "the ticket was dropped on this workstation, but the server could not be told ({0}); the session ends at its idle timeout"
    )]
    LogoutUnconfirmed(#[source] ClientError),
    /// The local API may only listen on loopback.
    #[error(
        "the agent only listens on a loopback address (127.0.0.1 or ::1), and {0} is not one; use --listen 127.0.0.1:0"
    )]
    NotLoopback(SocketAddr),
    /// The local API's listener failed.
    #[error(
        "the agent's local API failed ({0}); check nothing else uses the port and start the agent again"
    )]
    Listen(#[source] std::io::Error),
    /// No agent is running for this home.
    #[error(
        "no agent is running for {}; start one with `vsc agent run` (or sign in with `vsc agent login`, which keeps running)", home.display()
    )]
    NoAgent {
        /// The agent home looked in.
        home: PathBuf,
    },
    /// The running agent could not be reached.
    #[error(
        "the agent at {addr} did not answer ({detail}); if it was stopped, start it again with `vsc agent run`"
    )]
    AgentUnreachable {
        /// Where it was expected.
        addr: SocketAddr,
        /// What went wrong.
        detail: String,
    },
    /// The running agent refused.
    #[error("{message} (agent error {code}, HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable machine code.
        code: String,
        /// The agent's sentence.
        message: String,
    },
    /// Setting something up failed in a way that should not happen.
    #[error("{0}; this is a bug, please report it")]
    Internal(String),
}

impl AgentError {
    /// The server's machine code, when the vsc server refused.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            AgentError::Server(ClientError::Server { code, .. }) => Some(code),
            _ => None,
        }
    }
}

/// Result of agent operations.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

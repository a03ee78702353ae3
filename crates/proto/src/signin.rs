//! Wire types of signing in with the phone: the agent opens an authentication request bound to
//! its context, the phone approves it with the number the workstation shows (typed by the person,
//! never sent to the phone), the agent collects a session ticket,
//! and relying systems validate tickets.
//!
//! The exact bytes the phone signs are built here, once, for both the phone and the server.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where and why a sign-in happens; shown on the phone and bound into the signature.
///
/// The agent sends one with its request, but the server writes the context the phone sees:
/// for a registered workstation the id, name and organisation come from the workstation
/// registry, and `client_address` is always the address the server saw the request come from
/// (what the caller claims is ignored). An unregistered workstation (allowed only where the
/// card's organisation allows it) has `registered == false`, and its name is only a claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthContext {
    /// Stable workstation identifier (the registration id of a registered workstation).
    pub workstation_id: String,
    /// Name a person recognises ("WARD-7-PC-03"): the registered name.
    pub workstation_name: String,
    /// The address the server saw the request come from.
    pub client_address: String,
    /// Agent software version.
    pub agent_version: String,
    /// Why ("Sign in to clinical systems", "Unlock workstation").
    pub purpose: String,
    /// Whether the workstation is registered (its name and organisation are then the
    /// registry's). `false`: an unregistered workstation, whose name nobody vouches for.
    #[serde(default)]
    pub registered: bool,
    /// ODS code of the organisation the workstation is registered with (empty if unregistered).
    #[serde(default)]
    pub organisation: String,
    /// That organisation's name.
    #[serde(default)]
    pub organisation_name: String,
    /// For a web sign-in (the OpenID Connect provider): the registered name of the client the
    /// person signs in to, which the server vouches for; `client_address` is then the browser's
    /// address. Empty for workstations.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub web_client: String,
}

impl AuthContext {
    /// The line a phone shows for the workstation: "WARD-7-PC-03 (RX1 Example Trust)", or
    /// "UNREGISTERED WORKSTATION claiming 'PC-9'", or for a web sign-in "web browser at
    /// 10.0.0.7 signing in to 'Example EPR'".
    pub fn workstation_label(&self) -> String {
        if !self.web_client.is_empty() {
            return format!(
                "web browser at {} signing in to '{}'",
                self.client_address, self.web_client
            );
        }
        if self.registered {
            if self.organisation_name.is_empty() {
                format!("{} ({})", self.workstation_name, self.organisation)
            } else {
                format!(
                    "{} ({} {})",
                    self.workstation_name, self.organisation, self.organisation_name
                )
            }
        } else {
            format!(
                "UNREGISTERED WORKSTATION claiming '{}'",
                self.workstation_name
            )
        }
    }
}

/// SHA-256 over every context field (length-prefixed, the registration included) and the
/// server's creation time, hex.
pub fn context_digest(ctx: &AuthContext, created_at_unix: i64) -> String {
    use sha2::Digest as _;
    let mut c = sha2::Sha256::new();
    c.update(b"vsc-auth-context/v2");
    let registered: &[u8] = if ctx.registered {
        b"registered"
    } else {
        b"unregistered"
    };
    for field in [
        ctx.workstation_id.as_bytes(),
        ctx.workstation_name.as_bytes(),
        ctx.client_address.as_bytes(),
        ctx.agent_version.as_bytes(),
        ctx.purpose.as_bytes(),
        registered,
        ctx.organisation.as_bytes(),
        ctx.organisation_name.as_bytes(),
    ] {
        c.update((field.len() as u64).to_be_bytes());
        c.update(field);
    }
    // Only web sign-ins carry a client: a workstation's digest stays what it always was.
    if !ctx.web_client.is_empty() {
        c.update(b"web-client");
        c.update((ctx.web_client.len() as u64).to_be_bytes());
        c.update(ctx.web_client.as_bytes());
    }
    c.update(created_at_unix.to_be_bytes());
    let digest = c.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes the phone signs (ECDSA P-256 SHA-256, card authentication key) to approve.
pub fn approval_statement(
    request_id: &str,
    nonce_b64: &str,
    context_digest_hex: &str,
    number: u8,
    server_origin: &str,
) -> Vec<u8> {
    format!(
        "vsc-auth-approve/v1\nrequest={request_id}\nnonce={nonce_b64}\ncontext={context_digest_hex}\nnumber={number:02}\nserver={server_origin}\n"
    )
    .into_bytes()
}

/// The bytes the phone signs with its device key to get a device token.
pub fn device_token_statement(
    challenge_id: &str,
    nonce_b64: &str,
    device_id: &str,
    server_origin: &str,
) -> Vec<u8> {
    format!("vsc-device-token/v1\nchallenge={challenge_id}\nnonce={nonce_b64}\ndevice={device_id}\nserver={server_origin}\n")
        .into_bytes()
}

/// The bytes a registered workstation signs (ECDSA P-256 SHA-256, its workstation key) to open
/// a sign-in request, over a single-use challenge from `POST /api/v1/workstations/challenge`.
/// `purpose` and `agent_version` cannot hold line breaks (the server refuses control
/// characters before it checks the signature).
pub fn workstation_open_statement(
    challenge_id: &str,
    nonce_b64: &str,
    workstation_id: &str,
    uid: &str,
    purpose: &str,
    agent_version: &str,
    server_origin: &str,
) -> Vec<u8> {
    format!(
        "vsc-workstation-open/v1\nchallenge={challenge_id}\nnonce={nonce_b64}\nworkstation={workstation_id}\nuid={uid}\npurpose={purpose}\nagent={agent_version}\nserver={server_origin}\n"
    )
    .into_bytes()
}

/// The bytes a registered workstation signs to collect the ticket of a request it opened: the
/// request is its own single-use challenge (its server nonce, and it is collected once).
pub fn workstation_collect_statement(
    request_id: &str,
    request_nonce_b64: &str,
    workstation_id: &str,
    server_origin: &str,
) -> Vec<u8> {
    format!(
        "vsc-workstation-collect/v1\nrequest={request_id}\nnonce={request_nonce_b64}\nworkstation={workstation_id}\nserver={server_origin}\n"
    )
    .into_bytes()
}

/// The header carrying a registered workstation's signature over
/// [`workstation_collect_statement`] (standard base64 of the DER signature) when it polls for
/// the outcome of its request. Needed only to collect: pending polls work without it.
pub const WORKSTATION_SIGNATURE_HEADER: &str = "x-vsc-workstation-signature";

/// A registered workstation's proof that it opens a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkstationProof {
    /// Registration id.
    pub workstation_id: String,
    /// From `POST /api/v1/workstations/challenge`.
    pub challenge_id: String,
    /// Signature over [`workstation_open_statement`] (standard base64 of the DER).
    pub signature: String,
}

/// `POST /api/v1/auth/requests` (agent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAuthRequest {
    /// Whose phone to ask.
    pub uid: String,
    /// The workstation's context (for a registered workstation only `agent_version` and
    /// `purpose` are taken from it).
    pub context: AuthContext,
    /// The registered workstation's signed proof. Without it the request comes from an
    /// unregistered workstation, refused unless the card's organisation allows those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workstation: Option<WorkstationProof>,
}

/// `POST /api/v1/workstations/challenge` (agent of a registered workstation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkstationChallengeRequest {
    /// Registration id.
    pub workstation_id: String,
}

/// Answer to [`CreateAuthRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequestCreated {
    /// Request id.
    pub request_id: String,
    /// Secret that lets only this agent collect the outcome (send as `X-Vsc-Request-Secret`).
    pub poll_secret: String,
    /// The two-digit number (00 to 99) the workstation shows; the person types it on the phone.
    /// Only the workstation is told: the phone never receives it.
    pub number: u8,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The request's server nonce: a registered workstation signs it to collect the ticket
    /// ([`workstation_collect_statement`]).
    #[serde(default)]
    pub nonce: String,
}

/// The states a sign-in request is reported in ([`AuthRequestOutcome::state`]): the names of
/// the states the server stores (`vsc_core::AuthRequestState`; a server test keeps the two
/// equal) and [`state::EXPIRED`], reported for a pending request past its expiry and never stored.
pub mod state {
    /// Waiting for the phone.
    pub const PENDING: &str = "pending";
    /// Approved on the phone; the ticket is not collected yet.
    pub const APPROVED: &str = "approved";
    /// Collected: the session exists (the ticket comes once, with this state).
    pub const COLLECTED: &str = "collected";
    /// Declined on the phone.
    pub const DECLINED: &str = "declined";
    /// "I didn't do this" on the phone.
    pub const REPORTED: &str = "reported";
    /// A wrong number or a bad signature, or the card stopped being usable before collection.
    pub const FAILED: &str = "failed";
    /// Replaced by a newer request from the same workstation.
    pub const SUPERSEDED: &str = "superseded";
    /// Withdrawn by the workstation that opened it.
    pub const CANCELLED: &str = "cancelled";
    /// Not decided before its expiry (or approved and not collected in time).
    pub const EXPIRED: &str = "expired";
    /// Every state above.
    pub const ALL: &[&str] = &[
        PENDING, APPROVED, COLLECTED, DECLINED, REPORTED, FAILED, SUPERSEDED, CANCELLED, EXPIRED,
    ];
}

/// `GET /api/v1/auth/requests/{id}?wait=SECONDS` (agent, with the poll secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequestOutcome {
    /// One of [`state`]: `pending`, `approved`, `collected`, `declined`, `reported`, `failed`,
    /// `superseded`, `cancelled`, `expired`.
    pub state: String,
    /// Present once, when an approved request is collected.
    pub ticket: Option<String>,
    /// The session, with the ticket.
    pub session: Option<SessionInfo>,
    /// Present once, with the ticket: the key only the workstation's identity agent holds. The
    /// ticket travels to relying systems; signing and the virtual card's operations also need
    /// this key (header [`AGENT_KEY_HEADER`]), so a system that only saw the ticket cannot use
    /// the person's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_key: Option<String>,
}

/// The header that carries the session's agent key.
pub const AGENT_KEY_HEADER: &str = "x-vsc-agent-key";

/// A request as the phone receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingAuthRequest {
    /// Request id.
    pub request_id: String,
    /// Whose card.
    pub uid: String,
    /// Server nonce (base64).
    pub nonce: String,
    /// The context to show.
    pub context: AuthContext,
    /// [`context_digest`] as the server computed it; the phone recomputes and compares.
    pub context_digest: String,
    /// Server creation time (Unix seconds), part of the digest.
    pub created_at: i64,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The card's renewal, when it is due (issue 14): the phone shows it with the request
    /// (`vsc authenticator renew`). Not part of the approved statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_renewal: Option<crate::renewal::RenewalWindow>,
    /// The card's licence term is ending or has ended (issue 14): the phone shows it with the
    /// request. Not part of the approved statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_warning: Option<crate::licences::LicenceWarning>,
}

/// `POST /api/v1/device/requests/{id}/approve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApproveAuthRequest {
    /// The number the person typed (read off the workstation); the server compares it with the
    /// request's and fails the request if it differs.
    pub number: u8,
    /// Signature over [`approval_statement`] (base64 DER).
    pub signature: String,
}

/// `POST /api/v1/device/requests/{id}/decline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeclineAuthRequest {
    /// `declined`, or `not-me` ("I didn't do this": raises an alert and blocks new requests).
    pub reason: String,
}

/// `POST /api/v1/device/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceChallengeRequest {
    /// The device.
    pub device_id: String,
}

/// `POST /api/v1/device/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceTokenRequest {
    /// The device.
    pub device_id: String,
    /// From the challenge.
    pub challenge_id: String,
    /// Signature over [`device_token_statement`] with the device key (base64 DER).
    pub signature: String,
}

/// A short-lived token bound to the device key (send as `Authorization: Bearer`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceToken {
    /// The token.
    pub token: String,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A role as a session carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRole {
    /// Position id.
    pub position_id: String,
    /// NRBAC role code.
    pub role_code: String,
    /// Role name.
    pub role_name: String,
    /// ODS code.
    pub organisation: String,
    /// Organisation name.
    pub organisation_name: String,
    /// Activity codes.
    pub activities: Vec<String>,
}

/// A session as its holder sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// UID.
    pub uid: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// The selected role, once chosen (automatic with one position).
    pub selected_role: Option<SessionRole>,
    /// Roles to choose from.
    pub roles: Vec<SessionRole>,
    /// When the phone approved.
    #[serde(with = "time::serde::rfc3339")]
    pub auth_time: OffsetDateTime,
    /// Idle expiry (moves with use).
    #[serde(with = "time::serde::rfc3339")]
    pub idle_expires_at: OffsetDateTime,
    /// Absolute expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The card's renewal, when it is due (issue 14): the agent warns the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_renewal: Option<crate::renewal::RenewalWindow>,
    /// The card's licence term is ending or has ended (issue 14): the agent warns the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_warning: Option<crate::licences::LicenceWarning>,
    /// Whether the session is locked on the server (issue 14): the workstation was locked and
    /// the session waits for its holder to resume it; only resume and logout work meanwhile.
    #[serde(default)]
    pub locked: bool,
    /// The grace period of the session's organisation, in minutes (0: off): a locked session
    /// resumes without a phone approval within this time of the lock.
    #[serde(default)]
    pub unlock_grace_minutes: u32,
    /// Whether the session's organisation allows fast user switching: a second person may sign
    /// in on a locked workstation while this session stays locked.
    #[serde(default)]
    pub fast_user_switching: bool,
}

/// `POST /api/v1/session/role` (bearer: ticket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectRole {
    /// One of the session's roles.
    pub position_id: String,
}

/// `POST /api/v1/tickets/validate`: what a relying system asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateTicket {
    /// The ticket.
    pub ticket: String,
}

/// The JSON counterpart of Spine's role assertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketValidation {
    /// UID.
    pub uid: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// The selected role; `None` until one is chosen.
    pub role: Option<SessionRole>,
    /// When the person authenticated.
    #[serde(with = "time::serde::rfc3339")]
    pub auth_time: OffsetDateTime,
    /// Level of assurance of the authentication (AAL3: hardware-bound keys + passcode; AAL2 for software keystores).
    pub level_of_assurance: String,
    /// Absolute expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

//! Wire types of signing in with the phone: the agent opens an authentication request bound to
//! its context, the phone approves it with number matching, the agent collects a session ticket,
//! and relying systems validate tickets.
//!
//! The exact bytes the phone signs are built here, once, for both the phone and the server.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where and why a sign-in happens; shown on the phone and bound into the signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthContext {
    /// Stable workstation identifier.
    pub workstation_id: String,
    /// Name a person recognises ("WARD-7-PC-03").
    pub workstation_name: String,
    /// The workstation's address as the agent sees it.
    pub client_address: String,
    /// Agent software version.
    pub agent_version: String,
    /// Why ("Sign in to clinical systems", "Unlock workstation").
    pub purpose: String,
}

/// SHA-256 over every context field (length-prefixed) and the server's creation time, hex.
pub fn context_digest(ctx: &AuthContext, created_at_unix: i64) -> String {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    c.update(b"vsc-auth-context/v1");
    for field in [
        ctx.workstation_id.as_bytes(),
        ctx.workstation_name.as_bytes(),
        ctx.client_address.as_bytes(),
        ctx.agent_version.as_bytes(),
        ctx.purpose.as_bytes(),
    ] {
        c.update(&(field.len() as u64).to_be_bytes());
        c.update(field);
    }
    c.update(&created_at_unix.to_be_bytes());
    let digest = c.finish();
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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

/// `POST /api/v1/auth/requests` (agent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAuthRequest {
    /// Whose phone to ask.
    pub uid: String,
    /// The workstation's context.
    pub context: AuthContext,
}

/// Answer to [`CreateAuthRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequestCreated {
    /// Request id.
    pub request_id: String,
    /// Secret that lets only this agent collect the outcome (send as `X-Vsc-Request-Secret`).
    pub poll_secret: String,
    /// The two-digit number the workstation shows; the phone must pick the same.
    pub number: u8,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `GET /api/v1/auth/requests/{id}?wait=SECONDS` (agent, with the poll secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequestOutcome {
    /// `pending`, `approved`, `declined`, `reported`, `failed`, `expired`, `collected`.
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
    /// Three numbers to offer; one is right.
    pub choices: [u8; 3],
    /// The right number, sent only by a sandbox server to a simulated phone (so it can approve
    /// on its own); never present for a real phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_number: Option<u8>,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/v1/device/requests/{id}/approve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApproveAuthRequest {
    /// The number the person picked.
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

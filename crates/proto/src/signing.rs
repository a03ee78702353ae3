//! Signing with the card's signing key on the phone: electronic prescriptions (EPS) one by one
//! or in batches.
//!
//! The agent opens a [`CreateSigningRequest`] with the session ticket; the server checks the
//! policy (keys held on the phone, a prescribing role, a valid signing certificate) and hands a
//! [`PendingSigningRequest`] to the phone. For [`SigningKind::Prescriptions`] the phone receives
//! the signature *fragments* and builds what it signs itself (canonical fragments → digest →
//! SignedInfo), so what it shows is derived from the very bytes it signs. For
//! [`SigningKind::Prepared`] (systems that prepare their own SignedInfo, as with the NHS
//! Signing Service) it receives SignedInfo and a caller-supplied description it cannot check,
//! and says so. The phone answers with one signature per item ([`CompleteSigningRequest`]);
//! the server verifies each against the signing certificate before the agent collects the
//! [`SigningOutcome`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What the items of a request are.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SigningKind {
    /// EPS prescriptions given as their signature fragments: the phone canonicalises, hashes,
    /// builds SignedInfo and derives what it shows from the fragments.
    Prescriptions,
    /// SignedInfo prepared by the caller (base64 canonical XML), with the caller's description.
    Prepared,
    /// A private-key operation of the virtual PIV card (one item: `slot` and base64 `payload`,
    /// the digest or PKCS#1 block OpenSC sent).
    Card,
}

impl SigningKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningKind::Prescriptions => "prescriptions",
            SigningKind::Prepared => "prepared",
            SigningKind::Card => "card",
        }
    }
}

/// One thing to sign.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningItem {
    /// The caller's identifier for it (unique within the request; 1 to 64 characters).
    pub id: String,
    /// [`SigningKind::Prescriptions`]: the `FragmentsToBeHashed` document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragments: Option<String>,
    /// [`SigningKind::Prepared`]: base64 of the canonical SignedInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// [`SigningKind::Prepared`]: what the caller says this is (shown as unverified);
    /// [`SigningKind::Card`]: the slot, its purpose and the workstation's stated reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// [`SigningKind::Card`]: `9a` or `9c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// `POST /api/v1/signing/requests` (session ticket as bearer token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSigningRequest {
    /// What the items are.
    pub kind: SigningKind,
    /// `RS1` (rsa-sha1) or `RS256` (rsa-sha256), as the NHS Signing Service names them.
    pub algorithm: String,
    /// The items (1 to the server's batch limit, 100 by default).
    pub items: Vec<SigningItem>,
}

/// The answer to [`CreateSigningRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningRequestCreated {
    /// Poll `GET /api/v1/signing/requests/{request_id}?wait=S` for the outcome.
    pub request_id: String,
    /// When the phone's answer is no longer accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// One signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemSignature {
    /// The item's id.
    pub id: String,
    /// Base64 RSA PKCS#1 v1.5 signature over the canonical SignedInfo.
    pub signature: String,
}

/// An item that was not signed, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedSignature {
    /// The item's id.
    pub id: String,
    /// Why (for a person).
    pub reason: String,
}

/// The states a signing request is reported in ([`SigningOutcome::state`]): the names of the
/// states the server stores (`vsc_core::SigningRequestState`; a server test keeps them equal)
/// and [`state::EXPIRED`], reported for a pending request past its expiry and never stored.
pub mod state {
    /// Waiting for the phone.
    pub const PENDING: &str = "pending";
    /// Signed on the phone, every signature verified by the server.
    pub const COMPLETED: &str = "completed";
    /// Declined on the phone (or "I didn't do this").
    pub const DECLINED: &str = "declined";
    /// Not decided before its expiry.
    pub const EXPIRED: &str = "expired";
    /// Every state above.
    pub const ALL: &[&str] = &[PENDING, COMPLETED, DECLINED, EXPIRED];
}

/// The outcome of a signing request (`GET /api/v1/signing/requests/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningOutcome {
    /// One of [`state`]: `pending`, `completed`, `declined`, `expired`.
    pub state: String,
    /// The signatures (when completed), each verified by the server.
    #[serde(default)]
    pub signatures: Vec<ItemSignature>,
    /// Base64 DER of the signing certificate (when completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Items the phone refused or whose signature did not verify.
    #[serde(default)]
    pub failed_signatures: Vec<FailedSignature>,
}

/// A signing request as the phone receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingSigningRequest {
    /// The request.
    pub request_id: String,
    /// The person whose card signs.
    pub uid: String,
    /// What the items are.
    pub kind: SigningKind,
    /// `RS1` or `RS256`.
    pub algorithm: String,
    /// The workstation that asked (its name as the agent reported it at sign-in).
    pub workstation: String,
    /// The role the session acts in (for the screen: "as Medical Practitioner at …").
    pub role: String,
    /// The items, in order.
    pub items: Vec<SigningItem>,
    /// When the request was opened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When answers stop being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/v1/device/signing/{id}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CompleteSigningRequest {
    /// One signature per item the phone signed.
    pub signatures: Vec<ItemSignature>,
    /// Items the phone would not sign (it could not read the fragments, say), and why.
    #[serde(default)]
    pub refused: Vec<FailedSignature>,
}

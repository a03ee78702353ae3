//! Wire types of workstation registration: an RA issues a one-time code for an organisation,
//! the workstation's identity agent redeems it with a CSR for a key it generated itself, and
//! gets a `workstation` certificate from the instance CA. RA Managers set whether unregistered
//! workstations may open sign-in requests for their organisation's cards, and how a locked
//! workstation may be re-opened (grace period) or switched to another person.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `POST /api/v1/ra/workstations/codes` (RA).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueWorkstationCode {
    /// ODS code of the organisation the workstation will belong to.
    pub organisation: String,
    /// The name the workstation must register with; `None` lets the agent choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Answer to [`IssueWorkstationCode`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkstationCode {
    /// The one-time code, as typed into `vsc agent enrol --code`.
    pub code: String,
    /// The organisation.
    pub organisation: String,
    /// The fixed name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The server's public URL (for `--server`).
    pub server: String,
    /// SHA-256 fingerprint of the instance root CA (colon hex; for `--ca-fingerprint`).
    pub ca_fingerprint: String,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/v1/workstations/enrol` (identity agent, with the one-time code).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolWorkstation {
    /// The one-time code.
    pub code: String,
    /// The name to register (must equal the code's name when the RA fixed one).
    pub name: String,
    /// PKCS#10 request for the workstation key (ECDSA P-256), standard base64 of the DER.
    pub csr: String,
}

/// Answer to [`EnrolWorkstation`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkstationEnrolled {
    /// The registration id the agent names itself with.
    pub workstation_id: String,
    /// The registered name.
    pub name: String,
    /// ODS code.
    pub organisation: String,
    /// The organisation's name.
    pub organisation_name: String,
    /// The workstation certificate (PEM).
    pub certificate_pem: String,
    /// The issuing CA and root certificates (PEM), to complete the chain.
    pub chain_pem: String,
}

/// One registered workstation as an RA sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkstationInfo {
    /// Registration id.
    pub id: String,
    /// Name.
    pub name: String,
    /// ODS code.
    pub organisation: String,
    /// `active` or `revoked`.
    pub state: String,
    /// Certificate serial (hex).
    pub certificate_serial: String,
    /// UID of the RA whose code registered it.
    pub registered_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// Certificate expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// `POST /api/v1/ra/organisations/{ods}/workstation-policy` (RA Manager), and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkstationPolicy {
    /// Whether workstations that are not registered may open sign-in requests for the cards
    /// this organisation issued (default: no).
    pub allow_unregistered_workstations: bool,
    /// Minutes after a lock within which the workstation may resume the locked session without
    /// a new phone approval (0: off, the default; at most [`MAX_UNLOCK_GRACE_MINUTES`]).
    #[serde(default)]
    pub unlock_grace_minutes: u32,
    /// Whether a second person may sign in on a locked workstation, the first person's session
    /// staying locked (not ended) until they resume it (default: no).
    #[serde(default)]
    pub fast_user_switching: bool,
}

/// The longest grace period an organisation may set.
pub const MAX_UNLOCK_GRACE_MINUTES: u32 = 15;

/// `POST /api/v1/session/resume`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionResumed {
    /// Seconds between the lock and the resume.
    pub seconds_since_lock: u64,
    /// The organisation's grace period, minutes.
    pub unlock_grace_minutes: u32,
}

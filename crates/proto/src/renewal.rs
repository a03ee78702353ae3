//! Certificate renewal (issue 14): the phone re-keys its card inside a window before the
//! certificates expire, in two phases so that it is never left without working keys.
//!
//! 1. `POST /api/v1/device/renewal/challenge` ([`RenewalChallengeRequest`]) gives a single-use
//!    challenge and the card's renewal window ([`RenewalChallenge`]).
//! 2. `POST /api/v1/device/renewal` ([`RenewalRequest`]): new CSRs, signed with the card's
//!    *current* authentication key over [`renewal_statement`]. The server issues the new
//!    certificates, unconfirmed ([`RenewalIssued`]); the old ones stay in force.
//! 3. The phone stores the new keys next to the old ones and confirms with a signature by the
//!    *new* authentication key over [`renewal_confirm_statement`] (`POST
//!    /api/v1/device/renewal/confirm`, [`RenewalConfirm`]). The server then revokes the old
//!    certificates `superseded` and publishes the CRL; the phone drops the old keys. Confirming
//!    again is harmless (the answer is the same), so a phone that stopped after the server's
//!    answer finishes with a retry.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ChallengeResponse;

/// `POST /api/v1/device/renewal/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RenewalChallengeRequest {
    /// The phone's device id.
    pub device_id: String,
    /// The card to renew.
    pub card_id: String,
}

/// Where a card stands with renewal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenewalWindow {
    /// The instance's window, in days before expiry.
    pub window_days: i64,
    /// When the card's current certificates expire (the earliest of them).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// When the window opens (`not_after - window_days`).
    #[serde(with = "time::serde::rfc3339")]
    pub opens_at: OffsetDateTime,
    /// An RA made the renewal due now (`vsc ra card renew-now`).
    pub forced: bool,
    /// Renewal is due: inside the window, or forced.
    pub due: bool,
}

/// The answer to [`RenewalChallengeRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewalChallenge {
    /// The single-use challenge the renewal request signs.
    pub challenge: ChallengeResponse,
    /// The card's window.
    pub window: RenewalWindow,
}

/// `POST /api/v1/device/renewal`. CSRs are standard base64 DER, as at enrolment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RenewalRequest {
    /// The phone's device id.
    pub device_id: String,
    /// The card.
    pub card_id: String,
    /// From [`RenewalChallenge`].
    pub challenge_id: String,
    /// Serial (hex) of the current authentication certificate, whose key signed this.
    pub auth_serial: String,
    /// New authentication key (P-256).
    pub auth_csr: String,
    /// New signing key (RSA-2048).
    pub signing_csr: String,
    /// New smartcard 9A key (P-256), when the card has one.
    #[serde(default)]
    pub piv_auth_csr: Option<String>,
    /// New smartcard 9C key (P-256), when the card has one.
    #[serde(default)]
    pub piv_signing_csr: Option<String>,
    /// ECDSA P-256 (DER, base64) by the current authentication key over [`renewal_statement`].
    pub signature: String,
}

/// The new certificates, issued but not in force until confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenewalIssued {
    /// The renewal.
    pub renewal_id: String,
    /// What the confirmation signs (base64).
    pub confirm_nonce: String,
    /// Confirm before this, or the renewal lapses (and can be asked again).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Authentication certificate (PEM).
    pub auth_certificate: String,
    /// Signing certificate (PEM).
    pub signing_certificate: String,
    /// Smartcard 9A certificate (PEM).
    #[serde(default)]
    pub piv_auth_certificate: Option<String>,
    /// Smartcard 9C certificate (PEM).
    #[serde(default)]
    pub piv_signing_certificate: Option<String>,
}

/// `POST /api/v1/device/renewal/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfirm {
    /// The renewal.
    pub renewal_id: String,
    /// ECDSA P-256 (DER, base64) by the *new* authentication key over
    /// [`renewal_confirm_statement`].
    pub signature: String,
}

/// The answer to [`RenewalConfirm`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenewalConfirmed {
    /// The renewal.
    pub renewal_id: String,
    /// The serials revoked `superseded` (empty when this was a repeated confirmation).
    pub superseded: Vec<String>,
}

/// `POST /api/v1/ra/cards/{id}/renew-now`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct RenewNow {
    /// Why, in words (recorded in the audit log).
    #[serde(default)]
    pub reason: String,
}

fn sha256_hex(value: &[u8]) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(value);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the current authentication key signs to renew: the challenge, the device, the card, the
/// certificate whose key signs, a hash of every CSR (in request order, absent ones empty), and the
/// server's origin.
pub fn renewal_statement(
    request: &RenewalRequest,
    nonce_b64: &str,
    server_origin: &str,
) -> Vec<u8> {
    let csrs = format!(
        "{}\n{}\n{}\n{}\n",
        request.auth_csr.trim(),
        request.signing_csr.trim(),
        request.piv_auth_csr.as_deref().unwrap_or("").trim(),
        request.piv_signing_csr.as_deref().unwrap_or("").trim()
    );
    format!(
        "vsc-renewal/v1\nchallenge={}\nnonce={nonce_b64}\ndevice={}\ncard={}\nserial={}\ncsrs-sha256={}\nserver={server_origin}\n",
        request.challenge_id,
        request.device_id,
        request.card_id,
        request.auth_serial.trim().to_ascii_lowercase(),
        sha256_hex(csrs.as_bytes())
    )
    .into_bytes()
}

/// What the new authentication key signs to confirm a renewal.
pub fn renewal_confirm_statement(
    renewal_id: &str,
    confirm_nonce_b64: &str,
    card_id: &str,
    server_origin: &str,
) -> Vec<u8> {
    format!(
        "vsc-renewal-confirm/v1\nrenewal={renewal_id}\nnonce={confirm_nonce_b64}\ncard={card_id}\nserver={server_origin}\n"
    )
    .into_bytes()
}

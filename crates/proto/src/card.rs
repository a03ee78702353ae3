//! The virtual PIV card the agent presents to the workstation: what it holds, its PIN, and the
//! private-key operations it forwards to the phone.
//!
//! The card's two PIV keys are *additional* ECDSA P-256 keys on the phone, each with its own
//! certificate: slot 9A (PIV Authentication) and slot 9C (Digital Signature). They are never
//! the sign-in key or the EPS signing key, because a card operation signs a digest the
//! workstation chooses and the phone can show only a fingerprint of it: through the sign-in key
//! a compromised workstation could sign another workstation's sign-in approval or an RA login
//! challenge; through the EPS key it could sign a prescription without the phone showing it.
//! The card PIN is set on the phone and kept by the server only as an Argon2id hash with its try
//! counter, so no workstation can reset it.

use serde::{Deserialize, Serialize};

/// `GET /api/v1/card` (session ticket): what the agent needs to build the card.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CardInfo {
    /// The card.
    pub card_id: String,
    /// Its holder's UID.
    pub uid: String,
    /// "Given Family", for the card's printed information.
    pub holder_name: String,
    /// The issuing organisation's name.
    pub organisation: String,
    /// Base64 DER of the slot 9A (PIV Authentication) certificate.
    pub auth_certificate: String,
    /// Base64 DER of the slot 9C (Digital Signature) certificate.
    pub signing_certificate: String,
    /// Whether a card PIN has been set on the phone.
    pub pin_set: bool,
    /// PIN tries left before the card locks.
    pub pin_tries_left: u8,
}

/// `POST /api/v1/card/pin/verify` (session ticket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyCardPin {
    /// The PIN as typed (6 to 8 digits).
    pub pin: String,
}

/// The answer to [`VerifyCardPin`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CardPinResult {
    /// The PIN was right.
    pub correct: bool,
    /// Tries left (the full count after a right PIN).
    pub tries_left: u8,
    /// The card is locked (3 wrong PINs): an RA must unlock it.
    pub blocked: bool,
}

/// `POST /api/v1/device/card-pin` (device token): the phone sets the card PIN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetCardPin {
    /// 6 to 8 digits.
    pub pin: String,
}

/// `POST /api/v1/card/operations` (session ticket): a private-key operation for the card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardOperation {
    /// `9a` (PIV Authentication) or `9c` (Digital Signature).
    pub slot: String,
    /// Base64 input: the 32-byte digest to sign with the slot's ECDSA P-256 key.
    pub input: String,
    /// What the workstation says it is for (shown on the phone; for example "ssh").
    #[serde(default)]
    pub purpose: Option<String>,
}

/// Shortest card PIN.
pub const PIN_MIN: usize = 6;
/// Longest card PIN (PIV pads to 8 bytes).
pub const PIN_MAX: usize = 8;
/// Wrong PINs in a row that lock the card.
pub const PIN_TRIES: u8 = 3;

/// Whether `pin` has the card PIN's shape: 6 to 8 ASCII digits.
pub fn pin_is_well_formed(pin: &str) -> bool {
    (PIN_MIN..=PIN_MAX).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

//! Card replacement (issue 14): a person changes or loses their phone, and the same card (same
//! id, same holder, same history) moves to a new phone with a new activation.
//!
//! `POST /api/v1/ra/cards/{id}/replace` takes a [`ReplaceCard`] and answers with a
//! [`CardWithCode`](crate::CardWithCode): the card as it now stands and the new activation.
//! With `lost`, the old phone's certificates are revoked (`key-compromise`) and its sessions end
//! at once; otherwise the old phone keeps working until the new one enrols, and only then are
//! its certificates revoked (`superseded`) and its sessions ended. Either way, from then on the
//! old phone is refused with `card_replaced`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `POST /api/v1/ra/cards/{id}/replace`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplaceCard {
    /// The old phone is lost or stolen (or may be in other hands): revoke its certificates with
    /// `key-compromise` and end its sessions now. Without it the old phone works until the new
    /// one enrols. Required, so that nobody leaves a lost phone working by omission.
    pub lost: bool,
    /// Why, in words (1 to 500 characters, recorded in the audit log).
    #[serde(default)]
    pub reason: String,
}

/// A phone that held (or holds) a card.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CardDevice {
    /// The phone's device id.
    pub device_id: String,
    /// Its platform and model as it reported them at enrolment.
    pub platform: String,
    /// Model.
    pub model: String,
    /// When the card was enrolled on it.
    #[serde(with = "time::serde::rfc3339")]
    pub bound_at: OffsetDateTime,
    /// When the card left it; `None` while it holds the card.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub unbound_at: Option<OffsetDateTime>,
    /// Why: `replaced` (a new phone enrolled), `lost` (replaced as lost), `card-cancelled`.
    #[serde(default)]
    pub unbound_reason: Option<String>,
}

/// A replacement waiting for the new phone to enrol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingReplacement {
    /// Replaced as lost (the old phone's certificates are already revoked).
    pub lost: bool,
    /// The RA's reason.
    pub reason: String,
    /// The RA who asked.
    pub requested_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The phone the card is leaving.
    #[serde(default)]
    pub old_device_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_is_required_and_unknown_fields_are_refused() {
        assert!(serde_json::from_str::<ReplaceCard>(r#"{"reason":"new phone"}"#).is_err());
        assert!(
            serde_json::from_str::<ReplaceCard>(r#"{"lost":true,"reason":"x","lsot":1}"#).is_err()
        );
        let r: ReplaceCard =
            serde_json::from_str(r#"{"lost":false}"#).expect("a reason may be left out");
        assert_eq!(r.reason, "");
    }
}

//! The lives of a sign-in request and of a signing request, as the server stores them and the
//! agent sees them.

use crate::names::stored_names;
use serde::{Deserialize, Serialize};

/// Where a sign-in request stands. Stored and sent as [`AuthRequestState::as_str`]; a pending
/// request past its expiry is shown as `expired` without being rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthRequestState {
    /// Waiting for the phone.
    Pending,
    /// Approved on the phone; the workstation has not collected the ticket yet.
    Approved,
    /// Approved and collected: the session exists. Final.
    Collected,
    /// Declined on the phone. Final.
    Declined,
    /// "I didn't do this" on the phone. Final.
    Reported,
    /// A wrong number or a bad signature, or the card stopped being usable before collection.
    /// Final.
    Failed,
    /// Replaced by a newer request from the same workstation. Final.
    Superseded,
    /// Withdrawn by the workstation that opened it. Final.
    Cancelled,
}

stored_names!(AuthRequestState, "sign-in request state" {
    Pending => "pending",
    Approved => "approved",
    Collected => "collected",
    Declined => "declined",
    Reported => "reported",
    Failed => "failed",
    Superseded => "superseded",
    Cancelled => "cancelled",
});

/// Where a signing request (a batch of prescriptions, or a card operation) stands. Stored and
/// sent as [`SigningRequestState::as_str`]; a pending request past its expiry is shown as
/// `expired` without being rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningRequestState {
    /// Waiting for the phone.
    Pending,
    /// Signed on the phone and every signature verified by the server. Final.
    Completed,
    /// Declined on the phone (or "I didn't do this"). Final.
    Declined,
}

stored_names!(SigningRequestState, "signing request state" {
    Pending => "pending",
    Completed => "completed",
    Declined => "declined",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            AuthRequestState::Pending,
            AuthRequestState::Approved,
            AuthRequestState::Collected,
            AuthRequestState::Declined,
            AuthRequestState::Reported,
            AuthRequestState::Failed,
            AuthRequestState::Superseded,
            AuthRequestState::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<AuthRequestState>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).ok(),
                Some(format!("\"{}\"", s.as_str()))
            );
        }
        assert!("expired".parse::<AuthRequestState>().is_err());
        for s in [
            SigningRequestState::Pending,
            SigningRequestState::Completed,
            SigningRequestState::Declined,
        ] {
            assert_eq!(s.as_str().parse::<SigningRequestState>(), Ok(s));
        }
        assert!("cancelled".parse::<SigningRequestState>().is_err());
    }
}

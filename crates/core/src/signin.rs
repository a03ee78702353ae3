//! The lives of a sign-in request and of a signing request, as the server stores them and the
//! agent sees them.

use std::fmt;
use std::str::FromStr;

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

impl AuthRequestState {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthRequestState::Pending => "pending",
            AuthRequestState::Approved => "approved",
            AuthRequestState::Collected => "collected",
            AuthRequestState::Declined => "declined",
            AuthRequestState::Reported => "reported",
            AuthRequestState::Failed => "failed",
            AuthRequestState::Superseded => "superseded",
            AuthRequestState::Cancelled => "cancelled",
        }
    }
}

impl FromStr for AuthRequestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => AuthRequestState::Pending,
            "approved" => AuthRequestState::Approved,
            "collected" => AuthRequestState::Collected,
            "declined" => AuthRequestState::Declined,
            "reported" => AuthRequestState::Reported,
            "failed" => AuthRequestState::Failed,
            "superseded" => AuthRequestState::Superseded,
            "cancelled" => AuthRequestState::Cancelled,
            other => return Err(format!("unknown sign-in request state '{other}'")),
        })
    }
}

impl fmt::Display for AuthRequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

impl SigningRequestState {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningRequestState::Pending => "pending",
            SigningRequestState::Completed => "completed",
            SigningRequestState::Declined => "declined",
        }
    }
}

impl FromStr for SigningRequestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => SigningRequestState::Pending,
            "completed" => SigningRequestState::Completed,
            "declined" => SigningRequestState::Declined,
            other => return Err(format!("unknown signing request state '{other}'")),
        })
    }
}

impl fmt::Display for SigningRequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

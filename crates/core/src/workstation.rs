//! A registered workstation's life.

use crate::names::stored_names;
use serde::{Deserialize, Serialize};

/// Where a workstation registration stands. Stored and sent as [`WorkstationState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkstationState {
    /// Registered: it may open sign-in requests and collect their tickets while its
    /// certificate is valid.
    Active,
    /// Revoked by an RA; its sessions ended. Final (a new registration gets a new id).
    Revoked,
}

stored_names!(WorkstationState, "workstation state" {
    Active => "active",
    Revoked => "revoked",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [WorkstationState::Active, WorkstationState::Revoked] {
            assert_eq!(s.as_str().parse::<WorkstationState>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(
                serde_json::to_string(&s).ok(),
                Some(format!("\"{}\"", s.as_str()))
            );
        }
        assert!("pending".parse::<WorkstationState>().is_err());
        assert!("Active".parse::<WorkstationState>().is_err());
        assert!("".parse::<WorkstationState>().is_err());
    }
}

//! A registered workstation's life.

use std::fmt;
use std::str::FromStr;

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

impl WorkstationState {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkstationState::Active => "active",
            WorkstationState::Revoked => "revoked",
        }
    }
}

impl FromStr for WorkstationState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "active" => WorkstationState::Active,
            "revoked" => WorkstationState::Revoked,
            other => return Err(format!("unknown workstation state '{other}'")),
        })
    }
}

impl fmt::Display for WorkstationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

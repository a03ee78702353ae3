//! A virtual smartcard's life: its states, who holds its keys, and which transitions are allowed.

use crate::names::stored_names;
use serde::{Deserialize, Serialize};

/// Where a card stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardState {
    /// Issued; waiting for the phone to redeem the activation.
    Pending,
    /// Enrolled; its certificates are valid.
    Active,
    /// Locked after failures; an RA or LSA must unlock it.
    Locked,
    /// Temporarily out of use.
    Suspended,
    /// Cancelled; its certificates are revoked. Final.
    Revoked,
    /// Past its certificates' validity. Final.
    Expired,
}

impl CardState {
    /// Whether an RA may cancel a card in this state.
    pub fn can_cancel(self) -> bool {
        !matches!(self, CardState::Revoked | CardState::Expired)
    }

    /// Whether an RA may unlock a card in this state (give the phone a way to set a new passcode).
    pub fn can_unlock(self) -> bool {
        matches!(self, CardState::Active | CardState::Locked)
    }

    /// Whether the card may sign in or sign.
    pub fn is_usable(self) -> bool {
        self == CardState::Active
    }
}

stored_names!(CardState, "card state" {
    Pending => "pending",
    Active => "active",
    Locked => "locked",
    Suspended => "suspended",
    Revoked => "revoked",
    Expired => "expired",
});

/// Who holds the card's private keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyCustody {
    /// Keys generated and held on the person's phone (the V2 pattern; may sign prescriptions).
    DeviceHeld,
    /// Keys held server-side in an HSM (appliance mode; authentication only).
    Appliance,
}

impl KeyCustody {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyCustody::DeviceHeld => "device-held",
            KeyCustody::Appliance => "appliance",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_cannot_be_cancelled_or_unlocked() {
        for s in [CardState::Revoked, CardState::Expired] {
            assert!(!s.can_cancel());
            assert!(!s.can_unlock());
            assert!(!s.is_usable());
        }
        assert!(CardState::Pending.can_cancel());
        assert!(!CardState::Pending.can_unlock());
        assert!(CardState::Locked.can_unlock());
    }

    #[test]
    fn names_round_trip() {
        for s in [
            CardState::Pending,
            CardState::Active,
            CardState::Locked,
            CardState::Suspended,
            CardState::Revoked,
            CardState::Expired,
        ] {
            assert_eq!(s.as_str().parse::<CardState>(), Ok(s));
        }
    }
}

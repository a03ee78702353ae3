//! The vsc domain model and policy rules: identifiers and their validation, the RA permission
//! matrix, card states, identity checks, activation codes and the approved-client policy.
//!
//! Everything here is pure (no I/O, no clock, no database), so every rule can be unit-tested and
//! the server, the CLI and the authenticator all agree on what a valid value is.

pub mod activation;
pub mod card;
pub mod identity;
pub mod ids;
mod names;
pub mod policy;
pub mod ra;
pub mod signin;
pub mod text;
pub mod workstation;

pub use activation::{ActivationCode, ActivationCodeError};
pub use card::{CardState, KeyCustody};
pub use identity::{EvidenceType, IdentityLevel};
pub use ids::{ActivityCode, IdError, OdsCode, RoleCode, Uid};
pub use policy::{
    AppVersionPolicy, ClientFacts, ClientKind, Decision, PolicyError, RuleError, Verdict,
    VersionPolicy, VersionRule,
};
pub use ra::{PositionRequestState, RaAction, RaGrant, RaRole, RaScopeError};
pub use signin::{AuthRequestState, SigningRequestState};
pub use workstation::WorkstationState;

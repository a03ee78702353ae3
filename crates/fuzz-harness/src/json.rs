//! `json`: the JSON bodies of the HTTP API as `serde_json` reads them into the `vsc_proto`
//! types — the requests the server accepts from anyone who reaches it, and the answers and
//! events the phone and the agent read from the server — followed by the checks the server
//! (or the phone) applies right after reading a body, where they are public functions: UIDs,
//! one-time codes and PINs parsed, CSRs and device keys decoded and validated, the sign-in
//! context rendered and digested.
//!
//! Input: the type's name on the first line (e.g. `EnrolRequest`; an unknown first line picks
//! a type by its first byte), then the body. Properties: no panic; and what was read writes
//! back as JSON that reads again to the same value (`to_value(from_value(v)) == v`), so a
//! body the server accepted and stored or echoed stays what it was.
//!
//! Route checks that are private to `vsc-server` (e.g. the sign-in context's field limits,
//! RA name cleaning) are not reached here; `crates/server/tests/bad_input` covers them
//! through the real server.

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vsc_core::{ActivationCode, Uid};
use vsc_pki::csr::{KeyKind, validate_csr, validate_public_key};
use vsc_proto::card::{CardInfo, CardOperation, CardPinResult, SetCardPin, VerifyCardPin};
use vsc_proto::passcode::{PasscodeCheckRequest, PasscodeCheckResponse};
use vsc_proto::signin::{
    ApproveAuthRequest, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest,
    DeclineAuthRequest, DeviceChallengeRequest, DeviceToken, DeviceTokenRequest,
    PendingAuthRequest, SelectRole, SessionInfo, TicketValidation, ValidateTicket,
    WorkstationChallengeRequest,
};
use vsc_proto::signing::{
    CompleteSigningRequest, CreateSigningRequest, PendingSigningRequest, SigningOutcome,
};
use vsc_proto::workstation::{
    EnrolWorkstation, IssueWorkstationCode, WorkstationEnrolled, WorkstationPolicy,
};
use vsc_proto::{
    AssignPosition, CancelCard, ChallengeRequest, CreateOrganisation, CreatePerson,
    DecidePositionRequest, EnrolRequest, EnrolResponse, ErrorBody, IssueCard, LoginRequest,
    RaRoleGrant, RecordIdentityCheck, RequestPosition, ServerInfo, SessionLimits,
    UnlockRedeemRequest, UnlockRedeemResponse,
};

/// Reads `body` as `T`; when it reads, checks that it writes back and reads again unchanged.
fn read<T: Serialize + DeserializeOwned>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let json = serde_json::to_value(&value)
        .unwrap_or_else(|e| panic!("a value read from JSON does not write back: {e}"));
    let again: T = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("JSON written from a value does not read back: {e}\n{json}"));
    let json_again = serde_json::to_value(&again)
        .unwrap_or_else(|e| panic!("a value read back does not write: {e}"));
    assert_eq!(json, json_again, "a value changes through JSON");
    Some(value)
}

/// A base64 CSR as the server decodes and validates it.
fn csr(b64: &str, kind: KeyKind) {
    if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
        let _ = validate_csr(&der, kind);
    }
}

fn uid(s: &str) {
    let _ = s.parse::<Uid>();
}

fn code(s: &str) {
    let _ = ActivationCode::parse(s);
}

fn enrol(r: &EnrolRequest) {
    code(&r.activation_code);
    csr(&r.auth_csr, KeyKind::EcdsaP256);
    csr(&r.signing_csr, KeyKind::Rsa2048);
    for piv in [&r.piv_auth_csr, &r.piv_signing_csr].into_iter().flatten() {
        csr(piv, KeyKind::EcdsaP256);
    }
    if let Some(key) = &r.device_key
        && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(key)
    {
        let _ = validate_public_key(&der, KeyKind::EcdsaP256);
    }
}

fn auth_request(r: &CreateAuthRequest) {
    uid(&r.uid);
    let _ = r.context.workstation_label();
    let _ = vsc_proto::signin::context_digest(&r.context, 0);
}

fn pending_auth(r: &PendingAuthRequest) {
    // What the phone shows and checks for a sign-in request.
    let _ = r.context.workstation_label();
    let _ = vsc_proto::signin::context_digest(&r.context, r.created_at);
}

macro_rules! json_types {
    ($($ty:ident $(=> $check:expr)?),* $(,)?) => {
        /// The types this target reads, by name.
        pub const TYPES: &[&str] = &[$(stringify!($ty)),*];

        /// Reads `body` as the type called `name` and runs its checks; whether it read.
        fn dispatch(name: &str, body: &[u8]) -> bool {
            $(
                if name == stringify!($ty) {
                    let value: Option<$ty> = read(body);
                    $( if let Some(value) = &value { ($check)(value) } )?
                    return value.is_some();
                }
            )*
            false
        }
    };
}

json_types! {
    // What anyone reaching the server may send.
    EnrolRequest => enrol,
    DeviceChallengeRequest,
    PasscodeCheckRequest,
    UnlockRedeemRequest => |r: &UnlockRedeemRequest| code(&r.unlock_code),
    ChallengeRequest => |r: &ChallengeRequest| uid(&r.uid),
    LoginRequest => |r: &LoginRequest| uid(&r.uid),
    CreateAuthRequest => auth_request,
    DeviceTokenRequest,
    ApproveAuthRequest,
    DeclineAuthRequest,
    SelectRole,
    ValidateTicket,
    VerifyCardPin => |r: &VerifyCardPin| { vsc_proto::card::pin_is_well_formed(&r.pin); },
    SetCardPin => |r: &SetCardPin| { vsc_proto::card::pin_is_well_formed(&r.pin); },
    CardOperation,
    CreateSigningRequest,
    CompleteSigningRequest,
    EnrolWorkstation => |r: &EnrolWorkstation| csr(&r.csr, KeyKind::EcdsaP256),
    WorkstationChallengeRequest,
    // RA API bodies (behind an RA login, but an RA is an attacker too).
    CreateOrganisation,
    SessionLimits,
    CreatePerson,
    RecordIdentityCheck,
    AssignPosition,
    RaRoleGrant,
    IssueCard,
    CancelCard,
    RequestPosition,
    DecidePositionRequest,
    IssueWorkstationCode,
    WorkstationPolicy,
    // What the phone and the agent read from the server.
    PendingAuthRequest => pending_auth,
    PendingSigningRequest,
    AuthRequestCreated,
    AuthRequestOutcome,
    SigningOutcome,
    SessionInfo,
    TicketValidation,
    DeviceToken,
    EnrolResponse,
    UnlockRedeemResponse,
    PasscodeCheckResponse,
    CardInfo,
    CardPinResult,
    WorkstationEnrolled,
    ServerInfo,
    ErrorBody,
}

/// The target.
pub fn run(data: &[u8]) {
    reads(data);
}

/// Runs the target on `data`; whether the body read as the type its first line names (the
/// seed replay checks that the seeds named after a type still do).
pub fn reads(data: &[u8]) -> bool {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = std::str::from_utf8(first)
        .ok()
        .filter(|n| TYPES.contains(n))
        .unwrap_or_else(|| TYPES[usize::from(first.first().copied().unwrap_or(0)) % TYPES.len()]);
    dispatch(name, body)
}

//! The phone's keystore and the server (issue 9, items 5 and 10): the server checks the
//! passcode and releases the secret that completes the keystore's key, and redeems an RA unlock
//! code; both only for a request signed with the device key over a single-use challenge.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/device/passcode/challenge` | a challenge for a passcode check ([`crate::signin::DeviceChallengeRequest`]) |
//! | `POST /api/v1/device/passcode/check` | [`PasscodeCheckRequest`] → [`PasscodeCheckResponse`] |
//! | `POST /api/v1/device/unlock/challenge` | a challenge for redeeming an unlock code |
//! | `POST /api/v1/device/unlock` | [`crate::UnlockRedeemRequest`] → [`crate::UnlockRedeemResponse`] |
//!
//! The device id names the device; it proves nothing. The proof is the signature.

use serde::{Deserialize, Serialize};

/// `POST` path: a challenge for a passcode check.
pub const PASSCODE_CHALLENGE_PATH: &str = "/api/v1/device/passcode/challenge";
/// `POST` path: the passcode check.
pub const PASSCODE_CHECK_PATH: &str = "/api/v1/device/passcode/check";
/// `POST` path: a challenge for redeeming an unlock code.
pub const UNLOCK_CHALLENGE_PATH: &str = "/api/v1/device/unlock/challenge";
/// `POST` path: redeeming an unlock code.
pub const UNLOCK_PATH: &str = "/api/v1/device/unlock";

/// `POST /api/v1/device/passcode/check`: the phone asks for its keystore's server secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasscodeCheckRequest {
    /// The device (names it; the signature proves it).
    pub device_id: String,
    /// The card whose keystore is being opened.
    pub card_id: String,
    /// The challenge from `POST /api/v1/device/passcode/challenge`.
    pub challenge_id: String,
    /// The passcode verifier `V` (32 bytes, base64).
    pub verifier: String,
    /// Signature over [`passcode_check_statement`] with the device key (base64 DER).
    pub signature: String,
}

/// Answer to [`PasscodeCheckRequest`]. A wrong passcode is an answer, not an error: it is
/// counted, and the count comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasscodeCheckResponse {
    /// Whether the verifier was right.
    pub correct: bool,
    /// Wrong passcodes still allowed before the card locks.
    pub tries_left: u32,
    /// Whether the card is now locked (an RA unlock is needed).
    pub locked: bool,
    /// The server secret `S` (32 bytes, base64), only when `correct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// SHA-256 of `value`, lowercase hex: binds a secret into a signed statement without putting it
/// there.
fn sha256_hex(value: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(value.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the device key signs to have its passcode verifier checked: the challenge, the device,
/// the card, a hash of the verifier sent, and the server's origin.
pub fn passcode_check_statement(
    challenge_id: &str,
    nonce_b64: &str,
    device_id: &str,
    card_id: &str,
    verifier_b64: &str,
    server_origin: &str,
) -> Vec<u8> {
    format!(
        "vsc-passcode-check/v1\nchallenge={challenge_id}\nnonce={nonce_b64}\ndevice={device_id}\ncard={card_id}\nverifier-sha256={}\nserver={server_origin}\n",
        sha256_hex(verifier_b64.trim())
    )
    .into_bytes()
}

/// What the device key signs to redeem an unlock code: the challenge, the device, a hash of the
/// unlock code and of the new passcode's verifier and server secret, and the server's origin.
pub fn unlock_statement(
    challenge_id: &str,
    nonce_b64: &str,
    device_id: &str,
    unlock_code: &str,
    verifier_b64: &str,
    secret_b64: &str,
    server_origin: &str,
) -> Vec<u8> {
    format!(
        "vsc-device-unlock/v1\nchallenge={challenge_id}\nnonce={nonce_b64}\ndevice={device_id}\ncode-sha256={}\nverifier-sha256={}\nsecret-sha256={}\nserver={server_origin}\n",
        sha256_hex(unlock_code.trim()),
        sha256_hex(verifier_b64.trim()),
        sha256_hex(secret_b64.trim())
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_field() {
        let base = passcode_check_statement("c", "n", "d", "k", "v", "https://s");
        for other in [
            passcode_check_statement("c2", "n", "d", "k", "v", "https://s"),
            passcode_check_statement("c", "n2", "d", "k", "v", "https://s"),
            passcode_check_statement("c", "n", "d2", "k", "v", "https://s"),
            passcode_check_statement("c", "n", "d", "k2", "v", "https://s"),
            passcode_check_statement("c", "n", "d", "k", "v2", "https://s"),
            passcode_check_statement("c", "n", "d", "k", "v", "https://t"),
        ] {
            assert_ne!(base, other);
        }
        let base = unlock_statement("c", "n", "d", "u", "v", "s", "https://s");
        assert!(!String::from_utf8_lossy(&base).contains("\nverifier-sha256=v\n"));
        for other in [
            unlock_statement("c", "n", "d", "u2", "v", "s", "https://s"),
            unlock_statement("c", "n", "d", "u", "v2", "s", "https://s"),
            unlock_statement("c", "n", "d", "u", "v", "s2", "https://s"),
        ] {
            assert_ne!(base, other);
        }
    }
}

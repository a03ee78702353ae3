//! What a front end drives: enrolment, redeeming an RA unlock code, RA login, and status.
//! Receiving and answering sign-in requests is in [`crate::phone`].
//!
//! Each flow checks what it can locally (the code's format, the fingerprint, the link's kind)
//! before any network call, and leaves the home as it was when the server refuses.

use crate::keystore::PivKey;
use std::path::PathBuf;
use vsc_proto::routes;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;
use vsc_core::ActivationCode;
use vsc_proto::signin::DeviceChallengeRequest;
use vsc_proto::{
    ActivationLink, ChallengeRequest, ChallengeResponse, EnrolRequest, EnrolResponse, LinkKind,
    LoginRequest, LoginResponse, UnlockRedeemRequest, UnlockRedeemResponse,
};
use zeroize::Zeroize;

use crate::AuthenticatorError;
use crate::client::{self, Client, ClientForHome as _};
use crate::device_key::DeviceKey;
use crate::fsutil;
use crate::home::{Enrolment, Home};
use crate::keystore::{
    Keystore, KeystoreError, NewPasscode, Passcode, RecoveryKey, SoftwareKeystore, UnlockedKeys,
};
use crate::unlock;

/// The subject the phone puts in its certificate requests; the CA sets the real subject.
pub const CSR_COMMON_NAME: &str = "vsc enrolment";

/// `POST` path for enrolment.
pub const ENROL_PATH: &str = routes::ENROL;
/// `POST` path for redeeming an unlock code.
pub const UNLOCK_PATH: &str = vsc_proto::passcode::UNLOCK_PATH;
/// `POST` path for the challenge an unlock redemption signs.
pub const UNLOCK_CHALLENGE_PATH: &str = vsc_proto::passcode::UNLOCK_CHALLENGE_PATH;
/// `POST` path for an RA login challenge.
pub const CHALLENGE_PATH: &str = routes::RA_AUTH_CHALLENGE;
/// `POST` path for an RA login.
pub const LOGIN_PATH: &str = routes::RA_AUTH_LOGIN;

/// A link, or a code typed on its own.
enum Input {
    Link(ActivationLink),
    Code(String),
}

fn parse_input(input: &str) -> Result<Input, AuthenticatorError> {
    let input = input.trim();
    if input.contains("://") {
        Ok(Input::Link(ActivationLink::parse(input)?))
    } else {
        Ok(Input::Code(input.to_owned()))
    }
}

/// Enrols this device: creates the keystore under `passcode` and a device channel key
/// ([`crate::device_key`]), sends the certificate requests, the channel key's public half, the
/// recovery key and the passcode deposit (verifier and server secret, see [`crate::keystore`])
/// with the activation code, and on success installs the keystore and the channel key and
/// records the enrolment.
///
/// `input` is an activation link, or a bare code; a bare code needs `server_override` and
/// `fingerprint_override`, which otherwise replace what the link says. The code's format is
/// checked before any network call. If the server refuses, the new keys are deleted so that a
/// retry starts clean. A device already enrolled for somebody else keeps its card (one person
/// per device); the same person's new card replaces the old one.
pub async fn enrol(
    home: &Home,
    input: &str,
    server_override: Option<Url>,
    fingerprint_override: Option<String>,
    passcode: &Passcode,
    simulated: bool,
) -> Result<EnrolResponse, AuthenticatorError> {
    let (code, server, fingerprint) = match parse_input(input)? {
        Input::Link(link) => {
            if link.kind != LinkKind::Activate {
                return Err(AuthenticatorError::WrongLinkKind {
                    expected: "an activation link",
                    found: "an unlock link",
                });
            }
            (
                link.code,
                server_override.unwrap_or(link.server),
                fingerprint_override.unwrap_or(link.ca_fingerprint),
            )
        }
        Input::Code(code) => (
            // A typo in the code is the likelier mistake: name it before asking for more.
            ActivationCode::parse(&code).map(|_| code)?,
            server_override.ok_or(AuthenticatorError::MissingServer)?,
            fingerprint_override.ok_or(AuthenticatorError::MissingFingerprint)?,
        ),
    };
    let code = ActivationCode::parse(&code)?;
    let pin = client::parse_fingerprint(&fingerprint)?;
    let client = Client::with_fingerprint(server, &fingerprint)?;
    let device = home.device_or_create(simulated)?;
    let existing = home.enrolment()?;

    let pending = home.pending_keystore_path();
    remove(&pending)?;
    let new_passcode = stretch_new(passcode).await?;
    let (store, recovery, keys) = SoftwareKeystore::create_with_keys(&pending, &new_passcode)?;
    // The channel key is made now and written to the home only once the enrolment succeeded.
    let device_key = DeviceKey::generate(&device.device_id)?;
    let result = enrol_with(
        home,
        &client,
        &store,
        &recovery,
        &new_passcode,
        keys,
        &device_key,
        &code,
        pin,
        device.facts(),
        existing,
    )
    .await;
    if result.is_err() {
        // Keys of a failed enrolment are worthless; a retry makes new ones.
        let _ = fsutil::remove_if_exists(&pending);
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn enrol_with(
    home: &Home,
    client: &Client,
    store: &SoftwareKeystore,
    recovery: &RecoveryKey,
    new_passcode: &NewPasscode,
    keys: UnlockedKeys,
    device_key: &DeviceKey,
    code: &ActivationCode,
    pin: [u8; 32],
    device: vsc_proto::DeviceFacts,
    existing: Option<Enrolment>,
) -> Result<EnrolResponse, AuthenticatorError> {
    let mut request = EnrolRequest {
        activation_code: code.display().to_string(),
        device,
        auth_csr: B64.encode(keys.auth_csr_der(CSR_COMMON_NAME)?),
        signing_csr: B64.encode(keys.signing_csr_der(CSR_COMMON_NAME)?),
        recovery_key: recovery.to_base64().to_string(),
        // Authenticates only the connection that receives requests; see `crate::device_key`.
        device_key: Some(device_key.spki_base64()),
        piv_auth_csr: keys
            .piv_csr_der(PivKey::Authentication, CSR_COMMON_NAME)?
            .map(|der| B64.encode(der)),
        piv_signing_csr: keys
            .piv_csr_der(PivKey::Signature, CSR_COMMON_NAME)?
            .map(|der| B64.encode(der)),
        // What the server checks before it releases the keystore's server secret.
        passcode_verifier: Some(new_passcode.verifier_base64().to_string()),
        passcode_secret: Some(new_passcode.secret_base64().to_string()),
    };
    // The private keys are not needed past this point.
    drop(keys);
    let response: Result<EnrolResponse, _> = client.post_json(ENROL_PATH, &request, None).await;
    request.recovery_key.zeroize();
    request.activation_code.zeroize();
    request.passcode_verifier.zeroize();
    request.passcode_secret.zeroize();
    let response = response?;

    if let Some(existing) = existing
        && existing.uid != response.uid
    {
        return Err(AuthenticatorError::OtherPerson {
            uid: existing.uid,
            other_uid: response.uid,
        });
    }
    let root = CertificateDer::pem_slice_iter(response.ca_chain.as_bytes())
        .filter_map(Result::ok)
        .find(|c| client::sha256_fingerprint(c) == pin)
        .ok_or_else(|| {
            AuthenticatorError::BadEnrolment(
                "the CA chain does not contain the root CA with the fingerprint from the link"
                    .to_owned(),
            )
        })?;
    check_certificate(
        &response.auth_certificate,
        store.auth_spki(),
        "authentication",
    )?;
    check_certificate(
        &response.signing_certificate,
        store.signing_spki(),
        "signing",
    )?;
    for (pem, key, what) in [
        (
            &response.piv_auth_certificate,
            PivKey::Authentication,
            "smartcard 9A",
        ),
        (
            &response.piv_signing_certificate,
            PivKey::Signature,
            "smartcard 9C",
        ),
    ] {
        if let (Some(pem), Some(spki)) = (pem, store.piv_spki(key)) {
            check_certificate(pem, &spki, what)?;
        }
    }

    // The server now knows only the new channel key: install it with the new keystore.
    home.save_device_key(device_key)?;
    let keystore_path = home.keystore_path();
    std::fs::rename(store.path(), &keystore_path).map_err(|source| KeystoreError::Io {
        action: "move the new keystore to",
        path: keystore_path.clone(),
        source,
    })?;
    home.save_enrolment(&Enrolment {
        server: client.base_url().clone(),
        root_ca_pem: vsc_https::pem::encode("CERTIFICATE", &root),
        ca_chain_pem: response.ca_chain.clone(),
        uid: response.uid.clone(),
        given_name: response.given_name.clone(),
        family_name: response.family_name.clone(),
        card_id: response.card_id.clone(),
        auth_certificate_pem: response.auth_certificate.clone(),
        signing_certificate_pem: response.signing_certificate.clone(),
        enrolled_at: time::OffsetDateTime::now_utc(),
    })?;
    Ok(response)
}

/// Checks a certificate the server issued is for the key this phone holds.
fn check_certificate(pem: &str, spki: &[u8], usage: &str) -> Result<(), AuthenticatorError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        AuthenticatorError::BadEnrolment(format!("the {usage} certificate is not PEM: {e}"))
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
        AuthenticatorError::BadEnrolment(format!("the {usage} certificate does not parse: {e}"))
    })?;
    if cert.public_key().raw != spki {
        return Err(AuthenticatorError::BadEnrolment(format!(
            "the {usage} certificate is not for this phone's {usage} key"
        )));
    }
    Ok(())
}

fn remove(path: &std::path::Path) -> Result<(), KeystoreError> {
    fsutil::remove_if_exists(path).map_err(|source| KeystoreError::Io {
        action: "remove",
        path: path.to_owned(),
        source,
    })
}

/// A new passcode stretched (Argon2id, once) on a blocking thread.
async fn stretch_new(passcode: &Passcode) -> Result<NewPasscode, AuthenticatorError> {
    let passcode = passcode.clone();
    Ok(
        tokio::task::spawn_blocking(move || NewPasscode::new(&passcode))
            .await
            .map_err(|_| {
                KeystoreError::Crypto("stretch the passcode (the worker thread stopped)")
            })??,
    )
}

/// Redeems an unlock code from an RA: the phone proves with its device key that it holds the
/// card (a signature over a fresh server challenge; the device id alone proves nothing) and
/// deposits `new_passcode`'s verifier and server secret; the server releases the recovery key
/// deposited at enrolment, and the keystore gets `new_passcode` (same keys, count cleared, lock
/// lifted; a format-1 keystore is upgraded to format 2).
///
/// `input` is an unlock link (which must be for the server and CA this phone is enrolled with)
/// or a bare code.
///
/// If the phone stops between the server's answer and writing the keystore, the server holds
/// the new passcode's check but the keystore still has the old wrap: neither passcode opens it,
/// and a second unlock code (the recovery key still opens the keystore) puts it right.
pub async fn redeem_unlock(
    home: &Home,
    input: &str,
    new_passcode: &Passcode,
) -> Result<(), AuthenticatorError> {
    let enrolment = home.enrolment()?.ok_or(AuthenticatorError::NotEnrolled)?;
    home.device()?.ok_or(AuthenticatorError::NotEnrolled)?;
    let code = match parse_input(input)? {
        Input::Link(link) => {
            if link.kind != LinkKind::Unlock {
                return Err(AuthenticatorError::WrongLinkKind {
                    expected: "an unlock link",
                    found: "an activation link",
                });
            }
            let enrolled_origin = enrolment.server.origin().ascii_serialization();
            let link_origin = link.server.origin().ascii_serialization();
            if link_origin != enrolled_origin {
                return Err(AuthenticatorError::ServerMismatch {
                    link: link_origin,
                    enrolled: enrolled_origin,
                });
            }
            let root = CertificateDer::from_pem_slice(enrolment.root_ca_pem.as_bytes())
                .map_err(|e| client::ClientError::BadRoot(e.to_string()))?;
            let enrolled_fp = client::sha256_fingerprint(&root);
            if client::parse_fingerprint(&link.ca_fingerprint)? != enrolled_fp {
                return Err(AuthenticatorError::ServerMismatch {
                    link: format!("the CA with fingerprint {}", link.ca_fingerprint),
                    enrolled: format!("the CA with fingerprint {}", hex::encode(enrolled_fp)),
                });
            }
            link.code
        }
        Input::Code(code) => code,
    };
    let code = ActivationCode::parse(&code)?;
    let mut store = home.open_keystore()?;
    let key = unlock::device_key_of(home)?;
    let client = Client::for_home(home)?;
    // Argon2id for the new passcode runs while the challenge is fetched.
    let challenge_request = DeviceChallengeRequest {
        device_id: key.device_id().to_owned(),
    };
    let challenge =
        client.post_json::<_, ChallengeResponse>(UNLOCK_CHALLENGE_PATH, &challenge_request, None);
    let (new_passcode, challenge) = tokio::join!(stretch_new(new_passcode), challenge);
    let (new_passcode, challenge) = (new_passcode?, challenge?);
    let unlock_code = code.display().to_string();
    let verifier = new_passcode.verifier_base64();
    let secret = new_passcode.secret_base64();
    let statement = vsc_proto::passcode::unlock_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        key.device_id(),
        &unlock_code,
        &verifier,
        &secret,
        &client.origin(),
    );
    let mut request = UnlockRedeemRequest {
        unlock_code,
        challenge_id: challenge.challenge_id,
        signature: B64.encode(key.sign(&statement)?),
        passcode_verifier: verifier.to_string(),
        passcode_secret: secret.to_string(),
    };
    let response: Result<UnlockRedeemResponse, _> =
        client.post_json(UNLOCK_PATH, &request, None).await;
    request.unlock_code.zeroize();
    request.passcode_verifier.zeroize();
    request.passcode_secret.zeroize();
    let mut response = response?;
    let recovery = RecoveryKey::from_base64(&response.recovery_key);
    response.recovery_key.zeroize();
    store.reset_passcode(&recovery?, &new_passcode)?;
    Ok(())
}

/// Logs an RA in: unlocks the keystore with `passcode` (checked by the server, see
/// [`crate::unlock`]), fetches a challenge for the enrolled UID, signs
/// [`vsc_proto::ra_login_statement`] with the authentication key and exchanges the signature
/// for a session token.
pub async fn ra_login(
    home: &Home,
    passcode: &Passcode,
) -> Result<LoginResponse, AuthenticatorError> {
    let enrolment = home.enrolment()?.ok_or(AuthenticatorError::NotEnrolled)?;
    let client = Client::for_home(home)?;
    let key = unlock::device_key_of(home)?;
    let keys = unlock::open_keystore(home, &client, &key, passcode).await?;
    let challenge: ChallengeResponse = client
        .post_json(
            CHALLENGE_PATH,
            &ChallengeRequest {
                uid: enrolment.uid.clone(),
            },
            None,
        )
        .await?;
    let statement = vsc_proto::ra_login_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        &enrolment.uid,
        &client.origin(),
    );
    let signature = keys.sign_auth(&statement)?;
    drop(keys);
    let login: LoginResponse = client
        .post_json(
            LOGIN_PATH,
            &LoginRequest {
                challenge_id: challenge.challenge_id,
                uid: enrolment.uid,
                signature: B64.encode(signature),
            },
            None,
        )
        .await?;
    Ok(login)
}

/// A summary of this device, for `status` screens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The home directory.
    pub home: PathBuf,
    /// The device id, once made.
    pub device_id: Option<String>,
    /// A simulated phone (demo, sandbox, tests).
    pub simulated: bool,
    /// Whether the device channel key exists (needed to receive sign-in requests).
    pub device_key_present: bool,
    /// Whether this device holds a card.
    pub enrolled: bool,
    /// The holder's UID.
    pub uid: Option<String>,
    /// The holder's name, "given family".
    pub name: Option<String>,
    /// The card.
    pub card_id: Option<String>,
    /// The server.
    pub server: Option<Url>,
    /// Whether the keystore file exists.
    pub keystore_present: bool,
    /// Wrong passcodes since the last success, as the server last reported them.
    pub failed_attempts: u32,
    /// Wrong passcodes still allowed before the card locks, as the server last reported them.
    pub remaining_attempts: u32,
    /// Locked, as the server last reported it.
    pub locked: bool,
    /// The keystore predates the server's passcode check (format 1): an RA unlock upgrades it.
    pub keystore_needs_upgrade: bool,
}

/// Reads the home's state (no network, nothing decrypted).
pub fn status(home: &Home) -> Result<Status, AuthenticatorError> {
    let device = home.device()?;
    let enrolment = home.enrolment()?;
    let store = match home.open_keystore() {
        Ok(store) => Some(store),
        Err(KeystoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Status {
        home: home.dir().to_owned(),
        simulated: device.as_ref().is_some_and(|d| d.simulated),
        device_id: device.map(|d| d.device_id),
        device_key_present: home.device_key_path().exists(),
        enrolled: enrolment.is_some() && store.is_some(),
        uid: enrolment.as_ref().map(|e| e.uid.clone()),
        name: enrolment
            .as_ref()
            .map(|e| format!("{} {}", e.given_name, e.family_name)),
        card_id: enrolment.as_ref().map(|e| e.card_id.clone()),
        server: enrolment.map(|e| e.server),
        keystore_present: store.is_some(),
        failed_attempts: store.as_ref().map_or(0, SoftwareKeystore::failed_attempts),
        remaining_attempts: store
            .as_ref()
            .map_or(0, SoftwareKeystore::remaining_attempts),
        locked: store.as_ref().is_some_and(SoftwareKeystore::is_locked),
        keystore_needs_upgrade: store
            .as_ref()
            .is_some_and(|s| s.format_version() == crate::keystore::LEGACY_FORMAT_VERSION),
    })
}

//! Opening the keystore: the one place where a passcode becomes unlocked keys. Every use of the
//! card's keys — approving a sign-in, signing prescriptions or card operations, RA login — goes
//! through [`open_keystore`].
//!
//! The passcode is checked by the server, not by the phone (issue 9, item 10; the scheme is in
//! [`crate::keystore`]):
//!
//! 1. Argon2id runs once over the passcode (on a blocking thread, while the phone fetches a
//!    single-use challenge: `POST /api/v1/device/passcode/challenge`);
//! 2. the phone signs [`vsc_proto::passcode::passcode_check_statement`] — the challenge, the
//!    device, the card and a hash of the verifier — with its device key and sends the verifier
//!    (`POST /api/v1/device/passcode/check`);
//! 3. the server compares the verifier, counts a wrong one (the third in a row locks the card)
//!    and for the right one returns the keystore's server secret, which with the phone's half of
//!    the stretched passcode opens the keys.
//!
//! The phone saves the count the server reports, for status screens; the server's count is the
//! one that locks.

use vsc_proto::ChallengeResponse;
use vsc_proto::errors;
use vsc_proto::passcode::{
    PASSCODE_CHALLENGE_PATH, PASSCODE_CHECK_PATH, PasscodeCheckRequest, PasscodeCheckResponse,
};
use vsc_proto::signin::DeviceChallengeRequest;
use zeroize::Zeroize;

use crate::AuthenticatorError;
use crate::client::{Client, ClientError, ClientForHome as _};
use crate::device_key::DeviceKey;
use crate::home::{Home, HomeError};
use crate::keystore::{
    KeystoreError, LEGACY_FORMAT_VERSION, MAX_ATTEMPTS, Passcode, ServerSecret, SoftwareKeystore,
    StretchedPasscode, UnlockedKeys,
};

/// Opens the keystore of an enrolled home with `passcode`, checked by its server (a new
/// connection; a [`crate::PhoneLink`] reuses its own with [`crate::PhoneLink::unlock_keys`]).
pub async fn unlock_keys(
    home: &Home,
    passcode: &Passcode,
) -> Result<UnlockedKeys, AuthenticatorError> {
    let client = Client::for_home(home)?;
    let key = device_key_of(home)?;
    open_keystore(home, &client, &key, passcode).await
}

/// The home's device key, checked to be this device's.
pub(crate) fn device_key_of(home: &Home) -> Result<DeviceKey, AuthenticatorError> {
    let device = home.device()?.ok_or(AuthenticatorError::NotEnrolled)?;
    let key = home.device_key()?.ok_or(AuthenticatorError::NoDeviceKey)?;
    if key.device_id() != device.device_id {
        return Err(HomeError::Corrupt {
            path: home.device_key_path(),
            reason: format!(
                "the key was made for device {}, but this home is device {}",
                key.device_id(),
                device.device_id
            ),
        }
        .into());
    }
    Ok(key)
}

/// Opens the keystore with `passcode`: Argon2id once, the server's check (signed with `key`
/// over a fresh challenge), then the keys. A wrong passcode is counted by the server and comes
/// back as [`KeystoreError::WrongPasscode`]; a locked card as [`KeystoreError::Locked`].
pub(crate) async fn open_keystore(
    home: &Home,
    client: &Client,
    key: &DeviceKey,
    passcode: &Passcode,
) -> Result<UnlockedKeys, AuthenticatorError> {
    let store = home.open_keystore()?;
    open_store_with(
        home,
        client,
        key,
        passcode,
        store,
        |store, stretched, secret| store.unlock_with_secret(stretched, secret),
    )
    .await
}

/// [`open_keystore`] for `store` (the home's keystore, or renewal's new one), ending with
/// `open` instead of a plain unlock (renewal re-keys there).
pub(crate) async fn open_store_with<T>(
    home: &Home,
    client: &Client,
    key: &DeviceKey,
    passcode: &Passcode,
    store: SoftwareKeystore,
    open: impl FnOnce(
        &mut SoftwareKeystore,
        &StretchedPasscode,
        &ServerSecret,
    ) -> Result<T, KeystoreError>,
) -> Result<T, AuthenticatorError> {
    let enrolment = home.enrolment()?.ok_or(AuthenticatorError::NotEnrolled)?;
    if store.format_version() == LEGACY_FORMAT_VERSION {
        // Refused before anything is sent: only an RA unlock upgrades it.
        return Err(KeystoreError::LegacyFormat {
            path: store.path().to_owned(),
        }
        .into());
    }
    let device_id = key.device_id().to_owned();
    let passcode = passcode.clone();
    let stretching = tokio::task::spawn_blocking(move || {
        let stretched = store.stretch(&passcode);
        (store, stretched)
    });
    let challenge_request = DeviceChallengeRequest {
        device_id: device_id.clone(),
    };
    let challenge =
        client.post_json::<_, ChallengeResponse>(PASSCODE_CHALLENGE_PATH, &challenge_request, None);
    let (stretched, challenge) = tokio::join!(stretching, challenge);
    let (mut store, stretched) = stretched
        .map_err(|_| KeystoreError::Crypto("stretch the passcode (the worker thread stopped)"))?;
    let stretched = stretched?;
    let challenge = challenge?;

    let verifier = stretched.verifier_base64();
    let statement = vsc_proto::passcode::passcode_check_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        &device_id,
        &enrolment.card_id,
        &verifier,
        &client.origin(),
    );
    let mut request = PasscodeCheckRequest {
        device_id,
        card_id: enrolment.card_id.clone(),
        challenge_id: challenge.challenge_id,
        verifier: verifier.to_string(),
        signature: base64_of(&key.sign(&statement)?),
    };
    let answer: Result<PasscodeCheckResponse, ClientError> =
        client.post_json(PASSCODE_CHECK_PATH, &request, None).await;
    request.verifier.zeroize();
    let mut answer = match answer {
        Ok(a) => a,
        Err(ClientError::Server { code, .. }) if code == errors::CARD_LOCKED => {
            store.record_server_count(store.failed_attempts(), true)?;
            return Err(KeystoreError::Locked.into());
        }
        Err(e) => return Err(e.into()),
    };
    if !answer.correct {
        store.record_server_count(
            MAX_ATTEMPTS.saturating_sub(answer.tries_left),
            answer.locked,
        )?;
        return Err(if answer.locked {
            KeystoreError::Locked
        } else {
            KeystoreError::WrongPasscode {
                remaining: answer.tries_left,
            }
        }
        .into());
    }
    let secret = answer
        .secret
        .as_deref()
        .ok_or_else(|| KeystoreError::SecretFormat("none was sent".to_owned()))
        .and_then(ServerSecret::from_base64);
    answer.secret.zeroize();
    Ok(open(&mut store, &stretched, &secret?)?)
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

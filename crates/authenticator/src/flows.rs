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
use vsc_proto::renewal::{
    RenewalChallenge, RenewalChallengeRequest, RenewalConfirm, RenewalConfirmed, RenewalIssued,
    RenewalRequest, RenewalWindow,
};
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
use crate::home::{Enrolment, Home, PendingRenewal, RenewalNews};
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
    /// When the authentication certificate expires.
    pub certificates_expire: Option<time::OffsetDateTime>,
    /// Renewal is due: inside the renewal window as the server last described it (the default
    /// [`DEFAULT_RENEWAL_WINDOW_DAYS`] when the phone never heard), or an RA made it due:
    /// `vsc authenticator renew`.
    pub renewal_due: bool,
    /// When the renewal window opens for the current certificates.
    pub renewal_opens_at: Option<time::OffsetDateTime>,
    /// The window's length in days: the instance's as the server last said, else the default.
    pub renewal_window_days: i64,
    /// Whether the window is the server's word (`false`: the default, the phone never heard).
    pub renewal_window_from_server: bool,
    /// An RA made the renewal due now (as the server last said).
    pub renewal_forced: bool,
    /// When the server last said anything about the window.
    pub renewal_heard_at: Option<time::OffsetDateTime>,
    /// A renewal was started and not finished (`renew` finishes it).
    pub renewal_unfinished: bool,
}

/// The renewal window the phone assumes for its warnings when offline (the server's default).
pub const DEFAULT_RENEWAL_WINDOW_DAYS: i64 = 90;

/// Reads the home's state (no network, nothing decrypted).
pub fn status(home: &Home) -> Result<Status, AuthenticatorError> {
    let device = home.device()?;
    let enrolment = home.enrolment()?;
    let store = match home.open_keystore() {
        Ok(store) => Some(store),
        Err(KeystoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let certificates_expire = enrolment
        .as_ref()
        .and_then(|e| not_after_of(&e.auth_certificate_pem).ok());
    let news = home.renewal_news()?;
    let window = certificates_expire
        .map(|t| renewal_view(t, news.as_ref(), time::OffsetDateTime::now_utc()));
    let renewal_unfinished = home.renewal_path().exists();
    Ok(Status {
        certificates_expire,
        renewal_due: window.as_ref().is_some_and(|w| w.due),
        renewal_opens_at: window.as_ref().map(|w| w.opens_at),
        renewal_window_days: window
            .as_ref()
            .map_or(DEFAULT_RENEWAL_WINDOW_DAYS, |w| w.window_days),
        renewal_window_from_server: window.as_ref().is_some_and(|w| w.from_server),
        renewal_forced: window.as_ref().is_some_and(|w| w.forced),
        renewal_heard_at: news.as_ref().map(|n| n.heard_at),
        renewal_unfinished,
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

/// The renewal window of certificates expiring at `not_after`, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RenewalView {
    pub due: bool,
    pub forced: bool,
    pub opens_at: time::OffsetDateTime,
    pub window_days: i64,
    pub from_server: bool,
}

/// Where certificates expiring at `not_after` stand at `now`, from what the server last said
/// (`news`). The server's window length replaces the default; what it said about *these*
/// certificates ("due", an RA's order) holds, and so does its "not due" until the window opens
/// by the clock. A window
/// told for other certificates (before a renewal) gives only its length.
pub(crate) fn renewal_view(
    not_after: time::OffsetDateTime,
    news: Option<&RenewalNews>,
    now: time::OffsetDateTime,
) -> RenewalView {
    let window_days = news.and_then(|n| n.window.as_ref()).map(|w| w.window_days);
    let from_server = window_days.is_some();
    let window_days = window_days.unwrap_or(DEFAULT_RENEWAL_WINDOW_DAYS);
    let opens_at = not_after - time::Duration::days(window_days);
    // What the server said is about these certificates when it named their expiry, or (a
    // request's bare "not due") when it was said while these certificates were the card's.
    let about_these = news.filter(|n| match &n.window {
        Some(w) => (w.not_after - not_after).abs() < time::Duration::minutes(1),
        None => true,
    });
    let forced = about_these.is_some_and(|n| n.forced && n.due);
    // The server's "due" (its clock, inside its window) stands even where this phone's clock
    // disagrees.
    let mut due = forced || now >= opens_at || about_these.is_some_and(|n| n.due);
    if !from_server
        && let Some(n) = about_these
        && !n.due
        && n.heard_at >= opens_at
    {
        // The default window would be open, but the server said "not due" since: the
        // instance's window is shorter, and the server's word stands.
        due = false;
    }
    RenewalView {
        due,
        forced,
        opens_at,
        window_days,
        from_server,
    }
}

/// Records what the server said about the card's renewal window beside a sign-in request
/// (`card_renewal`, present only when due). Best effort: a home that cannot be written does
/// not stop the request from being shown.
pub(crate) fn note_request_renewal(home: &Home, request: &vsc_proto::signin::PendingAuthRequest) {
    let now = time::OffsetDateTime::now_utc();
    let earlier = home.renewal_news().ok().flatten();
    let news = match &request.card_renewal {
        Some(w) => RenewalNews {
            window: Some(w.clone()),
            due: w.due,
            forced: w.forced,
            heard_at: now,
        },
        // Not due as of now: keep the window's length and expiry, drop "due" and "forced".
        None => RenewalNews {
            window: earlier
                .as_ref()
                .and_then(|n| n.window.clone())
                .map(|w| RenewalWindow {
                    due: false,
                    forced: false,
                    ..w
                }),
            due: false,
            forced: false,
            heard_at: now,
        },
    };
    // A stream of requests saying the same does not rewrite the file each time.
    if let Some(e) = &earlier
        && e.window == news.window
        && e.due == news.due
        && e.forced == news.forced
        && now - e.heard_at < time::Duration::hours(1)
    {
        return;
    }
    home.save_renewal_news(&news).ok();
}

/// Records the window from a renewal challenge.
fn note_window(home: &Home, window: &RenewalWindow) -> Result<(), AuthenticatorError> {
    home.save_renewal_news(&RenewalNews {
        window: Some(window.clone()),
        due: window.due,
        forced: window.forced,
        heard_at: time::OffsetDateTime::now_utc(),
    })?;
    Ok(())
}

/// What [`renew`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    /// The renewal.
    pub renewal_id: String,
    /// The old certificates the server revoked `superseded` (empty when it had already done so
    /// and this run only finished on the phone).
    pub superseded: Vec<String>,
    /// When the new authentication certificate expires.
    pub not_after: time::OffsetDateTime,
    /// This run finished a renewal an earlier run had started.
    pub resumed: bool,
}

/// Renews the card's certificates (issue 14), in two phases so that the phone always has keys
/// the server accepts:
///
/// 1. with the passcode checked as for every use of the keys, the current keys are opened and a
///    second keystore (`keystore.renewing.json`) is written with fresh keys under the same
///    passcode; the request (new CSRs) is signed by the *current* authentication key over a
///    server challenge. The server issues the new certificates, not yet in force; the phone
///    checks they are for its new keys and records the renewal (`renewal.json`);
/// 2. the confirmation, signed by the *new* authentication key, makes the server revoke the old
///    certificates (`superseded`); only then does the new keystore replace the old one (one
///    rename) and `enrolment.json` get the new certificates.
///
/// Stopped anywhere, the next `renew` picks up: before the server issued, the old keys are still
/// in force and it starts again; after, it confirms (a repeated confirmation is harmless) and
/// installs; a renewal that lapsed unconfirmed is dropped and a new one made. The server refuses
/// outside the renewal window (`renewal_not_due`) unless an RA made it due.
pub async fn renew(home: &Home, passcode: &Passcode) -> Result<Renewed, AuthenticatorError> {
    let enrolment = home.enrolment()?.ok_or(AuthenticatorError::NotEnrolled)?;
    let client = Client::for_home(home)?;
    let key = unlock::device_key_of(home)?;
    if let Some(pending) = home.renewal()? {
        match resume_renewal(home, &client, &key, passcode, &enrolment, &pending).await {
            Ok(Some(mut done)) => {
                done.resumed = true;
                return Ok(done);
            }
            Ok(None) => discard_renewal(home)?,
            Err(AuthenticatorError::Client(client::ClientError::Server { code, .. }))
                if code == vsc_proto::errors::RENEWAL_NOT_OPEN =>
            {
                discard_renewal(home)?
            }
            Err(e) => return Err(e),
        }
    }
    let window: RenewalChallenge = client
        .post_json(
            routes::DEVICE_RENEWAL_CHALLENGE,
            &RenewalChallengeRequest {
                device_id: key.device_id().to_owned(),
                card_id: enrolment.card_id.clone(),
            },
            None,
        )
        .await?;
    note_window(home, &window.window)?;
    let renewing = home.renewing_keystore_path();
    let store = home.open_keystore()?;
    let (current, new_store, new_keys) =
        unlock::open_store_with(home, &client, &key, passcode, store, |store, st, secret| {
            store.rekey_to(&renewing, st, secret)
        })
        .await?;
    let result = async {
        let mut request = RenewalRequest {
            device_id: key.device_id().to_owned(),
            card_id: enrolment.card_id.clone(),
            challenge_id: window.challenge.challenge_id.clone(),
            auth_serial: serial_of(&enrolment.auth_certificate_pem)?,
            auth_csr: B64.encode(new_keys.auth_csr_der(CSR_COMMON_NAME)?),
            signing_csr: B64.encode(new_keys.signing_csr_der(CSR_COMMON_NAME)?),
            piv_auth_csr: new_keys
                .piv_csr_der(PivKey::Authentication, CSR_COMMON_NAME)?
                .map(|der| B64.encode(der)),
            piv_signing_csr: new_keys
                .piv_csr_der(PivKey::Signature, CSR_COMMON_NAME)?
                .map(|der| B64.encode(der)),
            signature: String::new(),
        };
        let statement = vsc_proto::renewal::renewal_statement(
            &request,
            &window.challenge.nonce,
            &client.origin(),
        );
        request.signature = B64.encode(current.sign_auth(&statement)?);
        let issued: RenewalIssued = client
            .post_json(routes::DEVICE_RENEWAL, &request, None)
            .await?;
        check_certificate(
            &issued.auth_certificate,
            new_store.auth_spki(),
            "authentication",
        )?;
        check_certificate(
            &issued.signing_certificate,
            new_store.signing_spki(),
            "signing",
        )?;
        for (pem, key, what) in [
            (
                &issued.piv_auth_certificate,
                PivKey::Authentication,
                "smartcard 9A",
            ),
            (
                &issued.piv_signing_certificate,
                PivKey::Signature,
                "smartcard 9C",
            ),
        ] {
            if let (Some(pem), Some(spki)) = (pem, new_store.piv_spki(key)) {
                check_certificate(pem, &spki, what)?;
            }
        }
        Ok::<_, AuthenticatorError>(issued)
    }
    .await;
    drop(current);
    let issued = match result {
        Ok(issued) => issued,
        Err(e) => {
            // Nothing was issued (or nothing usable): the new keys are worthless.
            let _ = fsutil::remove_if_exists(&renewing);
            return Err(e);
        }
    };
    let pending = PendingRenewal {
        renewal_id: issued.renewal_id.clone(),
        confirm_nonce: issued.confirm_nonce.clone(),
        new_auth_spki: B64.encode(new_store.auth_spki()),
        auth_certificate_pem: issued.auth_certificate.clone(),
        signing_certificate_pem: issued.signing_certificate.clone(),
        expires_at: issued.expires_at,
    };
    home.save_renewal(&pending)?;
    match confirm_renewal(home, &client, &enrolment, &pending, &new_keys).await {
        Err(AuthenticatorError::Client(client::ClientError::Server {
            code,
            status,
            message,
        })) if code == vsc_proto::errors::RENEWAL_NOT_OPEN => {
            discard_renewal(home)?;
            Err(client::ClientError::Server {
                code,
                status,
                message,
            }
            .into())
        }
        other => other,
    }
}

/// Finishes a recorded renewal with the new keys, wherever they are; `None` when no keystore
/// holds them (the record is stale).
async fn resume_renewal(
    home: &Home,
    client: &Client,
    key: &DeviceKey,
    passcode: &Passcode,
    enrolment: &Enrolment,
    pending: &PendingRenewal,
) -> Result<Option<Renewed>, AuthenticatorError> {
    let mut found = None;
    for path in [home.renewing_keystore_path(), home.keystore_path()] {
        match SoftwareKeystore::open(&path) {
            Ok(store) if B64.encode(store.auth_spki()) == pending.new_auth_spki => {
                found = Some(store);
                break;
            }
            Ok(_) | Err(KeystoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some(store) = found else {
        return Ok(None);
    };
    let keys = unlock::open_store_with(home, client, key, passcode, store, |store, st, secret| {
        store.unlock_with_secret(st, secret)
    })
    .await?;
    confirm_renewal(home, client, enrolment, pending, &keys)
        .await
        .map(Some)
}

/// Phase 2: the server's confirmation, then the new keystore and certificates take over.
async fn confirm_renewal(
    home: &Home,
    client: &Client,
    enrolment: &Enrolment,
    pending: &PendingRenewal,
    new_keys: &UnlockedKeys,
) -> Result<Renewed, AuthenticatorError> {
    let statement = vsc_proto::renewal::renewal_confirm_statement(
        &pending.renewal_id,
        &pending.confirm_nonce,
        &enrolment.card_id,
        &client.origin(),
    );
    let confirmed: RenewalConfirmed = client
        .post_json(
            routes::DEVICE_RENEWAL_CONFIRM,
            &RenewalConfirm {
                renewal_id: pending.renewal_id.clone(),
                signature: B64.encode(new_keys.sign_auth(&statement)?),
            },
            None,
        )
        .await?;
    // The server now holds only the new certificates: install the new keys (one rename drops
    // the old ones), then the certificates, then forget the renewal.
    let renewing = home.renewing_keystore_path();
    if renewing.exists() {
        let keystore_path = home.keystore_path();
        std::fs::rename(&renewing, &keystore_path).map_err(|source| KeystoreError::Io {
            action: "move the renewed keystore to",
            path: keystore_path.clone(),
            source,
        })?;
    }
    let mut renewed = enrolment.clone();
    renewed.auth_certificate_pem = pending.auth_certificate_pem.clone();
    renewed.signing_certificate_pem = pending.signing_certificate_pem.clone();
    home.save_enrolment(&renewed)?;
    remove(&home.renewal_path())?;
    Ok(Renewed {
        renewal_id: confirmed.renewal_id,
        superseded: confirmed.superseded,
        not_after: not_after_of(&pending.auth_certificate_pem)?,
        resumed: false,
    })
}

/// Forgets an unfinished renewal and its keys (the server no longer accepts it).
fn discard_renewal(home: &Home) -> Result<(), AuthenticatorError> {
    remove(&home.renewing_keystore_path())?;
    remove(&home.renewal_path())?;
    Ok(())
}

fn parsed<T>(
    pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> Result<T, AuthenticatorError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        AuthenticatorError::BadEnrolment(format!("the stored certificate is not PEM: {e}"))
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
        AuthenticatorError::BadEnrolment(format!("the stored certificate does not parse: {e}"))
    })?;
    Ok(f(&cert))
}

/// The certificate's serial as the server spells it (hex of the INTEGER without sign padding).
fn serial_of(pem: &str) -> Result<String, AuthenticatorError> {
    parsed(pem, |cert| {
        let raw = cert.raw_serial();
        let start = raw
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(raw.len().saturating_sub(1));
        raw[start..].iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// When the certificate expires.
pub fn not_after_of(pem: &str) -> Result<time::OffsetDateTime, AuthenticatorError> {
    parsed(pem, |cert| cert.validity().not_after.to_datetime())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Duration, OffsetDateTime};

    fn window(not_after: OffsetDateTime, days: i64, due: bool, forced: bool) -> RenewalWindow {
        RenewalWindow {
            window_days: days,
            not_after,
            opens_at: not_after - Duration::days(days),
            forced,
            due,
        }
    }

    fn news(
        window: Option<RenewalWindow>,
        due: bool,
        forced: bool,
        heard_at: OffsetDateTime,
    ) -> RenewalNews {
        RenewalNews {
            window,
            due,
            forced,
            heard_at,
        }
    }

    #[test]
    fn status_uses_the_servers_window_and_the_default_only_when_it_never_heard() {
        let not_after = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        // Never heard: the default 90 days.
        let v = renewal_view(not_after, None, not_after - Duration::days(60));
        assert!(v.due && !v.from_server && !v.forced);
        assert_eq!(v.window_days, DEFAULT_RENEWAL_WINDOW_DAYS);
        assert_eq!(v.opens_at, not_after - Duration::days(90));

        // The instance's window is 30 days: 60 days before expiry is not due, 20 days is.
        let heard = not_after - Duration::days(100);
        let n = news(
            Some(window(not_after, 30, false, false)),
            false,
            false,
            heard,
        );
        let v = renewal_view(not_after, Some(&n), not_after - Duration::days(60));
        assert!(!v.due && v.from_server);
        assert_eq!(v.opens_at, not_after - Duration::days(30));
        assert!(renewal_view(not_after, Some(&n), not_after - Duration::days(20)).due);

        // An RA forced it: due long before the window, and said so.
        let n = news(Some(window(not_after, 30, true, true)), true, true, heard);
        let v = renewal_view(not_after, Some(&n), not_after - Duration::days(300));
        assert!(v.due && v.forced);

        // After a renewal the old word is about other certificates: only its length counts.
        let renewed = not_after + Duration::days(700);
        let v = renewal_view(renewed, Some(&n), not_after);
        assert!(!v.due && !v.forced && v.from_server);
        assert_eq!(v.opens_at, renewed - Duration::days(30));

        // Only a bare "not due" heard after the default window opened: the server's word stands.
        let n = news(None, false, false, not_after - Duration::days(50));
        let v = renewal_view(not_after, Some(&n), not_after - Duration::days(40));
        assert!(!v.due && !v.from_server);
        // A "not due" heard before the default window opened says nothing about later.
        let n = news(None, false, false, not_after - Duration::days(200));
        assert!(renewal_view(not_after, Some(&n), not_after - Duration::days(40)).due);
    }

    #[test]
    fn requests_update_what_the_phone_knows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(dir.path()).expect("home");
        let not_after = OffsetDateTime::now_utc() + Duration::days(20);
        let mut request = vsc_proto::signin::PendingAuthRequest {
            request_id: "r".into(),
            uid: "u".into(),
            nonce: String::new(),
            context: Default::default(),
            context_digest: String::new(),
            created_at: 0,
            expires_at: OffsetDateTime::now_utc(),
            card_renewal: Some(window(not_after, 30, true, true)),
            licence_warning: None,
        };
        note_request_renewal(&home, &request);
        let n = home.renewal_news().expect("read").expect("recorded");
        assert!(n.due && n.forced);
        assert_eq!(n.window.as_ref().map(|w| w.window_days), Some(30));
        // A request without it: not due, the window's length kept.
        request.card_renewal = None;
        note_request_renewal(&home, &request);
        let n = home.renewal_news().expect("read").expect("recorded");
        assert!(!n.due && !n.forced);
        let w = n.window.expect("kept");
        assert_eq!((w.window_days, w.due, w.forced), (30, false, false));
    }
}

//! Enrolment, passcode checks and unlock codes: the phone's routes that come before (or
//! without) a device token. The route table with callers is in [`super`].
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/enrol` | redeem an activation: CSRs, device facts, device key, recovery key and passcode deposit in, certificates out |
//! | `POST /api/v1/device/passcode/challenge` | a single-use challenge for a passcode check, for the device key to sign |
//! | `POST /api/v1/device/passcode/check` | the passcode verifier, signed by the device key: the keystore's server secret out, or a counted wrong try |
//! | `POST /api/v1/device/unlock/challenge` | a single-use challenge for redeeming an unlock code |
//! | `POST /api/v1/device/unlock` | redeem an RA unlock code, signed by the device key: the recovery key out, the new passcode deposit in |
//!
//! Enrolment is one transaction: the activation is consumed, the device bound, both
//! certificates issued and the card activated together, with the audit event — or nothing
//! changes except the wrong-guess counter and a failure event.
//!
//! # Passcodes (issue 9, item 10)
//!
//! The phone's keystore opens only with the passcode *and* a 256-bit secret `S` that this
//! server keeps per card (see `vsc_authenticator::keystore`). At enrolment, and with every
//! redeemed unlock code, the phone deposits `S` and the passcode verifier `V`; both are sealed
//! under the master key. A passcode check names the card, carries `V` and is signed by the
//! card's device key over a single-use challenge; `V` is compared in constant time, and in the
//! same transaction a wrong one is counted and audited — the third in a row locks the card
//! (sessions end) until an RA unlock. Only a right one returns `S`. So a copy of the keystore
//! file cannot be guessed at offline, and rewinding the file does not rewind the count.
//!
//! # Unlock codes (issue 9, item 5)
//!
//! The device id is a name, not a proof. Redeeming an unlock code needs a signature by the
//! card's device key over a challenge issued to that device; a request without that proof is
//! refused (`unlock_device_proof_failed`), leaves the code unused, and counts as a wrong guess
//! against it, like a mistyped code.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq;
use vsc_core::{CardState, ClientFacts};
use vsc_pki::{CertProfile, CsrError, KeyKind, PersonSubject, ValidatedCsr, validate_csr};
use vsc_proto::errors as code;
use vsc_proto::passcode::{PasscodeCheckRequest, PasscodeCheckResponse};
use vsc_proto::signin::DeviceChallengeRequest;
use vsc_proto::{
    ChallengeResponse, EnrolRequest, EnrolResponse, UnlockRedeemRequest, UnlockRedeemResponse,
};
use vsc_store::device_secrets;
use vsc_store::repo::{self, CardRow, CertificateRow, CodeRow, DeviceRow};
use vsc_store::{NewEvent, Outcome, Tx};
use zeroize::Zeroizing;

use super::replacement;
use crate::codes::{self, CodeKind};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiJson, Client, challenge};
use crate::state::{AppState, AuditContext};

/// Wrong passcodes in a row before the card locks (the phone's `MAX_ATTEMPTS`).
pub const PASSCODE_TRIES: i64 = 3;

/// Challenge purpose of a passcode check.
const PASSCODE_PURPOSE: &str = "device-passcode";
/// Challenge purpose of redeeming an unlock code.
const UNLOCK_PURPOSE: &str = "device-unlock";

/// AAD binding a sealed recovery key to its card.
fn recovery_aad(card_id: &str) -> Vec<u8> {
    format!("vsc/card-recovery-key/{card_id}").into_bytes()
}

/// AAD binding a sealed passcode verifier to its card.
fn verifier_aad(card_id: &str) -> Vec<u8> {
    format!("vsc/card-passcode-verifier/{card_id}").into_bytes()
}

/// AAD binding a sealed keystore server secret to its card.
fn secret_aad(card_id: &str) -> Vec<u8> {
    format!("vsc/card-passcode-secret/{card_id}").into_bytes()
}

/// 32 bytes of standard base64, or `code`.
fn decode_32(b64: &str, code: &'static str, what: &str) -> ApiResult<Zeroizing<Vec<u8>>> {
    B64.decode(b64.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .map(Zeroizing::new)
        .ok_or_else(|| ApiError::bad_request(code, format!("{what} must be 32 bytes, base64")))
}

/// A passcode deposit (verifier and server secret), sealed for `card_id`, stored in `tx`.
async fn store_passcode_deposit(
    state: &AppState,
    tx: &mut Tx,
    card_id: &str,
    verifier: &[u8],
    secret: &[u8],
) -> ApiResult<()> {
    let master = state.master_key();
    let sealed_verifier = master.seal(&verifier_aad(card_id), verifier)?;
    let sealed_secret = master.seal(&secret_aad(card_id), secret)?;
    device_secrets::set_passcode_secret(
        tx,
        card_id,
        &sealed_verifier,
        &sealed_secret,
        state.now_unix(),
    )
    .await?;
    Ok(())
}

fn csr_error(which: &str, e: CsrError) -> ApiError {
    let code = match &e {
        CsrError::Malformed(_) => code::CSR_MALFORMED,
        CsrError::ProofOfPossession => code::CSR_PROOF_OF_POSSESSION_FAILED,
        CsrError::WeakKey(_) => code::CSR_WEAK_KEY,
        CsrError::WrongKeyType { .. } => code::CSR_WRONG_KEY_TYPE,
        CsrError::Unsupported(_) => code::CSR_UNSUPPORTED,
    };
    ApiError::bad_request(code, format!("{which} CSR: {e}"))
}

pub(super) fn decode_csr(which: &str, b64: &str, kind: KeyKind) -> ApiResult<ValidatedCsr> {
    let der = B64.decode(b64.trim()).map_err(|_| {
        ApiError::bad_request(code::CSR_MALFORMED, format!("{which} CSR is not base64"))
    })?;
    validate_csr(&der, kind).map_err(|e| csr_error(which, e))
}

pub(super) async fn enrol(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    let mut subject = String::new();
    // The body names the subject as it learns it, so the refusal is audited here.
    let result = enrol_inner(&state, &ctx, req, &mut subject).await;
    match result {
        Ok(v) => Ok(Json(v)),
        Err(err) => {
            state
                .audit_failure(&ctx, "card.enrol", &subject, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn enrol_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: EnrolRequest,
    subject: &mut String,
) -> ApiResult<EnrolResponse> {
    let (mut tx, code) = codes::redeem(
        state,
        ctx,
        CodeKind::Activation,
        &req.activation_code,
        subject,
    )
    .await?;
    let card = repo::card(&mut tx, &code.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("activation without card"))?;
    // A replacement (`vsc ra card replace`) moves the card to a new phone: see `replacement`.
    let replacement = repo::open_replacement(&mut tx, &card.id).await?;
    let from_states = replacement::enrollable_states(replacement.as_ref());
    if !from_states.contains(&card.state) {
        return Err(ApiError::conflict(
            code::CARD_NOT_PENDING,
            format!(
                "this card is {} and cannot be enrolled; ask your RA to issue a new card",
                card.state
            ),
        ));
    }
    let person = repo::person(&mut tx, &card.uid)
        .await?
        .ok_or_else(|| ApiError::internal("card without person"))?;

    let facts = ClientFacts {
        platform: req.device.platform.clone(),
        app_version: req.device.app_version.clone(),
    };
    crate::routes::ra_versions::check_app_version(state, &facts).await?;
    if req.device.simulated && !state.config().sandbox {
        return Err(ApiError::forbidden(
            code::SIMULATED_DEVICE_REFUSED,
            "this server accepts real phones only; simulated phones work with `vsc sandbox` and `vsc demo`",
        ));
    }
    let device_id = req.device.device_id.trim();
    if device_id.len() < 16
        || device_id.len() > 128
        || !device_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::bad_request(
            code::DEVICE_ID_MALFORMED,
            "the device id must be 16 to 128 letters, digits or dashes",
        ));
    }
    if replacement.is_some() {
        replacement::check_new_phone(&mut tx, &card, device_id).await?;
    }
    if repo::device(&mut tx, device_id)
        .await?
        .is_some_and(|d| d.uid != person.uid)
    {
        return Err(ApiError::conflict(
            code::DEVICE_BOUND_TO_OTHER_PERSON,
            "this phone already holds another person's card; one person per device: use your own phone, or have the other card cancelled and the app reinstalled",
        ));
    }

    let auth_csr = decode_csr("the authentication", &req.auth_csr, KeyKind::EcdsaP256)?;
    let signing_csr = decode_csr("the signing", &req.signing_csr, KeyKind::Rsa2048)?;
    // The virtual smartcard's own keys (optional: an app without the card sends none).
    let piv_auth_csr = req
        .piv_auth_csr
        .as_deref()
        .map(|b64| decode_csr("the smartcard 9A", b64, KeyKind::EcdsaP256))
        .transpose()?;
    let piv_signing_csr = req
        .piv_signing_csr
        .as_deref()
        .map(|b64| decode_csr("the smartcard 9C", b64, KeyKind::EcdsaP256))
        .transpose()?;
    let mut spkis = std::collections::HashSet::new();
    for csr in [
        Some(&auth_csr),
        Some(&signing_csr),
        piv_auth_csr.as_ref(),
        piv_signing_csr.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if !spkis.insert(csr.spki_sha256_hex()) {
            return Err(ApiError::conflict(
                code::KEY_REUSED,
                "the same key appears twice in this request; every certificate needs its own key",
            ));
        }
        if repo::spki_known(&mut tx, &csr.spki_sha256_hex()).await? {
            return Err(ApiError::conflict(
                code::KEY_REUSED,
                "a key in this request already has a certificate; every card gets fresh keys",
            ));
        }
    }
    let device_key = match req.device_key.as_deref() {
        None => None,
        Some(b64) => {
            let der = B64.decode(b64.trim()).map_err(|_| {
                ApiError::bad_request(code::DEVICE_KEY_MALFORMED, "the device key is not base64")
            })?;
            Some(
                vsc_pki::validate_public_key(&der, KeyKind::EcdsaP256).map_err(|e| {
                    ApiError::bad_request(
                        code::DEVICE_KEY_MALFORMED,
                        format!("the device key: {e}"),
                    )
                })?,
            )
        }
    };
    let recovery_key = B64
        .decode(req.recovery_key.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            ApiError::bad_request(
                code::RECOVERY_KEY_MALFORMED,
                "the recovery key must be 32 bytes, base64",
            )
        })?;
    let sealed_recovery = state
        .master_key()
        .seal(&recovery_aad(&card.id), &recovery_key)?;
    // The keystore is opened with the device key's signature and the server's passcode check:
    // an app that sends neither made a keystore that could be guessed at offline.
    let Some(device_key) = device_key else {
        return Err(ApiError::bad_request(
            code::DEVICE_KEY_MISSING,
            "this app sends no device key, which this server needs to check passcodes; update the app",
        ));
    };
    let (Some(verifier), Some(secret)) = (
        req.passcode_verifier.as_deref(),
        req.passcode_secret.as_deref(),
    ) else {
        return Err(ApiError::bad_request(
            code::PASSCODE_DEPOSIT_MISSING,
            "this app does not deposit its passcode check with the server, so its keystore could be guessed at offline; update the app",
        ));
    };
    let passcode_verifier = decode_32(
        verifier,
        code::PASSCODE_VERIFIER_MALFORMED,
        "the passcode verifier",
    )?;
    let passcode_secret = decode_32(
        secret,
        code::PASSCODE_SECRET_MALFORMED,
        "the keystore's server secret",
    )?;

    let now = state.now();
    let device = DeviceRow {
        device_id: device_id.to_owned(),
        uid: person.uid.clone(),
        platform: req.device.platform.clone(),
        app_version: req.device.app_version.clone(),
        model: req.device.model.chars().take(200).collect(),
        simulated: req.device.simulated,
    };
    if !repo::upsert_device(&mut tx, &device, now.unix_timestamp()).await? {
        return Err(ApiError::conflict(
            code::DEVICE_BOUND_TO_OTHER_PERSON,
            "this phone already holds another person's card; one person per device",
        ));
    }
    vsc_store::signin::set_device_key(&mut tx, device_id, &device_key).await?;
    let retired = match &replacement {
        Some(r) => Some(
            replacement::retire_old_phone(
                state,
                &mut tx,
                &card,
                r,
                device_id,
                now.unix_timestamp(),
            )
            .await?,
        ),
        None => None,
    };
    let mut requested = vec![
        (&auth_csr, CertProfile::Authentication, "authentication"),
        (&signing_csr, CertProfile::Signing, "signing"),
    ];
    if let Some(csr) = &piv_auth_csr {
        requested.push((csr, CertProfile::Authentication, "piv-authentication"));
    }
    if let Some(csr) = &piv_signing_csr {
        requested.push((csr, CertProfile::Signing, "piv-signature"));
    }
    let issued = issue_certificates(state, &mut tx, &card.id, &person, &requested, now).await?;
    repo::bind_card_device(&mut tx, &card.id, device_id, &sealed_recovery).await?;
    repo::record_card_bound(&mut tx, &card.id, device_id, now.unix_timestamp()).await?;
    store_passcode_deposit(
        state,
        &mut tx,
        &card.id,
        &passcode_verifier,
        &passcode_secret,
    )
    .await?;
    if !repo::transition_card(
        &mut tx,
        &card.id,
        from_states,
        CardState::Active,
        now.unix_timestamp(),
    )
    .await?
    {
        return Err(ApiError::conflict(
            code::CARD_NOT_PENDING,
            "the card changed while enrolling; try again",
        ));
    }
    let event = AuditContext {
        actor: person.uid.clone(),
        source: ctx.source,
    }
    .event(
        "card.enrolled",
        &card.id,
        &card.issued_by,
        serde_json::json!({
            "uid": person.uid, "device_id": device_id, "platform": device.platform,
            "app_version": device.app_version, "simulated": device.simulated,
            "serials": issued.iter().map(|c| c.serial_hex.clone()).collect::<Vec<_>>(),
        }),
    );
    state.append_audit(&mut tx, &event, state.now_ms()).await?;
    if let Some(retired) = &retired {
        let event = AuditContext {
            actor: person.uid.clone(),
            source: ctx.source,
        }
        .event(
            "card.replaced",
            &card.id,
            &card.issued_by,
            retired.detail.clone(),
        );
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
    }
    tx.commit().await?;
    for request_id in retired.into_iter().flat_map(|r| r.failed_requests) {
        state.hub().publish(crate::hub::Event::Decided {
            card_id: card.id.clone(),
            request_id,
            state: vsc_proto::signin::state::FAILED.into(),
        });
    }
    // The bootstrap activation is spent: its file must not outlive it.
    let _ = std::fs::remove_file(state.config().data_dir.join("bootstrap.json"));
    let mut issued = issued.into_iter();
    let (Some(auth), Some(signing)) = (issued.next(), issued.next()) else {
        return Err(ApiError::internal("expected two certificates"));
    };
    let piv_auth = piv_auth_csr.as_ref().and_then(|_| issued.next());
    let piv_signing = piv_signing_csr.as_ref().and_then(|_| issued.next());
    Ok(EnrolResponse {
        uid: person.uid,
        given_name: person.given_name,
        family_name: person.family_name,
        card_id: card.id,
        auth_certificate: auth.pem(),
        signing_certificate: signing.pem(),
        piv_auth_certificate: piv_auth.map(|c| c.pem()),
        piv_signing_certificate: piv_signing.map(|c| c.pem()),
        ca_chain: format!("{}{}", state.ca().issuing_pem(), state.ca().root_pem()),
    })
}

/// Issues a challenge of `purpose` to a device that has a device key; audited as `action`.
async fn proof_challenge(
    state: &AppState,
    ctx: &AuditContext,
    device_id: &str,
    purpose: &str,
    action: &str,
) -> ApiResult<ChallengeResponse> {
    let mut tx = state.write().await?;
    // Unknown devices count against the caller's address; enrolled ones against the device.
    if vsc_store::signin::device_key(&mut tx, device_id)
        .await?
        .is_none()
    {
        state.admit_unauthenticated(ctx.source).await?;
        return Err(ApiError::not_found(
            code::UNKNOWN_DEVICE,
            "this device is not enrolled (or enrolled before device keys existed): enrol again",
        ));
    }
    state.admit_device_challenge(device_id).await?;
    let issued = challenge::issue(
        state,
        &mut tx,
        ctx,
        purpose,
        device_id,
        &format!("{action}.issued"),
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

pub(super) async fn passcode_challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<DeviceChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    audited_proof_challenge(
        &state,
        &ctx,
        &req.device_id,
        PASSCODE_PURPOSE,
        "device.passcode.challenge",
    )
    .await
}

pub(super) async fn unlock_challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<DeviceChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    audited_proof_challenge(
        &state,
        &ctx,
        &req.device_id,
        UNLOCK_PURPOSE,
        "device.unlock.challenge",
    )
    .await
}

/// [`proof_challenge`] with its refusal audited as `action`.
async fn audited_proof_challenge(
    state: &AppState,
    ctx: &AuditContext,
    device_id: &str,
    purpose: &str,
    action: &str,
) -> ApiResult<Json<ChallengeResponse>> {
    state
        .audited(
            ctx,
            action,
            device_id,
            proof_challenge(state, ctx, device_id, purpose, action),
        )
        .await
        .map(Json)
}

/// Verifies a device-key signature over `statement`.
pub(super) fn verify_device_signature(
    key: &[u8],
    statement: &[u8],
    signature: &[u8],
) -> ApiResult<()> {
    if !crate::routes::p256_signature_valid(key, statement, signature) {
        return Err(ApiError::unauthorized(
            code::SIGNATURE_INVALID,
            "the signature does not verify with this device's key",
        ));
    }
    Ok(())
}

pub(super) async fn passcode_check(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<PasscodeCheckRequest>,
) -> ApiResult<Json<PasscodeCheckResponse>> {
    let mut subject = req.card_id.clone();
    // The body names the subject as it learns it, so the refusal is audited here.
    let result = passcode_check_inner(&state, &ctx, &req, &mut subject).await;
    match result {
        Ok(v) => Ok(Json(v)),
        Err(err) => {
            state
                .audit_failure(&ctx, "card.passcode.check", &subject, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn passcode_check_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &PasscodeCheckRequest,
    subject: &mut String,
) -> ApiResult<PasscodeCheckResponse> {
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let verifier = decode_32(
        &req.verifier,
        code::PASSCODE_VERIFIER_MALFORMED,
        "the passcode verifier",
    )?;
    let now = state.now_unix();
    // One transaction on the honest path: the challenge is consumed with the check.
    let mut tx = state.write().await?;
    let nonce = challenge::consume(
        &mut tx,
        &req.challenge_id,
        PASSCODE_PURPOSE,
        &req.device_id,
        now,
    )
    .await?;
    match check_passcode(
        state, ctx, req, &signature, &verifier, &nonce, now, &mut tx, subject,
    )
    .await
    {
        Ok((answer, failed_requests)) => {
            tx.commit().await?;
            // The workstations waiting on the locked card's requests hear now, not at expiry.
            for request_id in failed_requests {
                state.hub().publish(crate::hub::Event::Decided {
                    card_id: req.card_id.clone(),
                    request_id,
                    state: vsc_proto::signin::state::FAILED.into(),
                });
            }
            Ok(answer)
        }
        Err(err) => {
            // The refusal changes nothing but the challenge, which is spent whatever happened:
            // one signed check per challenge.
            drop(tx);
            let mut tx = state.write().await?;
            let _ = repo::consume_challenge(
                &mut tx,
                &req.challenge_id,
                PASSCODE_PURPOSE,
                &req.device_id,
                now,
            )
            .await?;
            tx.commit().await?;
            Err(err)
        }
    }
}

/// The passcode check proper, inside the transaction that consumed the challenge; the caller
/// commits. A wrong passcode is an `Ok` answer whose count and audit events are in `tx`; when
/// it locks the card, the card's open sign-in requests fail with it (their ids come back for
/// the caller to announce after the commit): a request the person could no longer approve must
/// not wait for its expiry, nor reappear on the phone after an RA unlock. (Signing requests
/// belong to sessions, which the lock ends: the phone no longer lists them and nothing is
/// signed for them.)
#[allow(clippy::too_many_arguments)]
async fn check_passcode(
    state: &AppState,
    ctx: &AuditContext,
    req: &PasscodeCheckRequest,
    signature: &[u8],
    verifier: &[u8],
    nonce: &str,
    now: i64,
    tx: &mut Tx,
    subject: &mut String,
) -> ApiResult<(PasscodeCheckResponse, Vec<String>)> {
    let (key, uid) = vsc_store::signin::device_key(tx, &req.device_id)
        .await?
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_DEVICE, "this device is not enrolled"))?;
    let statement = vsc_proto::passcode::passcode_check_statement(
        &req.challenge_id,
        nonce,
        &req.device_id,
        &req.card_id,
        &req.verifier,
        &state.origin(),
    );
    verify_device_signature(&key, &statement, signature)?;
    let card = match repo::card(tx, &req.card_id).await?.filter(|c| c.uid == uid) {
        Some(c) if c.device_id.as_deref() == Some(req.device_id.as_str()) => c,
        // A card moved to another phone says so (`card_replaced`).
        other => {
            return Err(replacement::not_on_this_device(tx, other.as_ref(), &req.device_id).await);
        }
    };
    subject.clone_from(&card.id);
    match card.state.as_str() {
        "active" => {}
        "locked" => {
            return Err(ApiError::forbidden(
                code::CARD_LOCKED,
                "this card is locked; ask your RA or Local Smartcard Administrator for an unlock code",
            ));
        }
        other => {
            return Err(ApiError::forbidden(
                code::CARD_NOT_USABLE,
                format!("this card is {other}; ask your RA for a new card"),
            ));
        }
    }
    let row = device_secrets::passcode_secret(tx, &card.id)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                code::PASSCODE_NOT_REGISTERED,
                "this card's keystore was made by an older app that checked the passcode on the phone alone; ask your RA or Local Smartcard Administrator for an unlock code: redeeming it upgrades the keystore",
            )
        })?;
    let master = state.master_key();
    let stored = master.open(&verifier_aad(&card.id), &row.sealed_verifier)?;
    let correct: bool = stored.as_slice().ct_eq(verifier).into();
    let actor = AuditContext {
        actor: card.uid.clone(),
        source: ctx.source,
    };
    if correct {
        device_secrets::reset_passcode_failures(tx, &card.id, now).await?;
        let secret = master.open(&secret_aad(&card.id), &row.sealed_secret)?;
        state
            .append_audit(
                tx,
                &actor.event(
                    "card.passcode.verified",
                    &card.id,
                    &card.issued_by,
                    serde_json::json!({"uid": card.uid, "device_id": req.device_id}),
                ),
                state.now_ms(),
            )
            .await?;
        return Ok((
            PasscodeCheckResponse {
                correct: true,
                tries_left: PASSCODE_TRIES as u32,
                locked: false,
                secret: Some(B64.encode(&*secret)),
            },
            Vec::new(),
        ));
    }
    // A wrong passcode is counted and audited in `tx`, committed before the answer goes out.
    let failures = device_secrets::record_passcode_failure(tx, &card.id, now).await?;
    let locked = failures >= PASSCODE_TRIES
        && repo::transition_card(tx, &card.id, &[CardState::Active], CardState::Locked, now)
            .await?;
    let mut failed_requests = Vec::new();
    if locked {
        vsc_store::signin::end_sessions_of_card(tx, &card.id, now, "card-locked").await?;
        failed_requests = repo::fail_open_requests_of_card(tx, &card.id, now).await?;
    }
    let mut event = actor.event(
        "card.passcode.failed",
        &card.id,
        &card.issued_by,
        serde_json::json!({"uid": card.uid, "device_id": req.device_id, "consecutive_failures": failures, "card_locked": locked}),
    );
    event.outcome = Outcome::Failure;
    state.append_audit(tx, &event, state.now_ms()).await?;
    if locked {
        state.append_audit(
            tx,
            &actor.event(
                "card.locked",
                &card.id,
                &card.issued_by,
                serde_json::json!({"uid": card.uid, "reason": "three wrong passcodes", "failures": failures, "requests_failed": failed_requests}),
            ),
            state.now_ms(),
        )
        .await?;
    }
    Ok((
        PasscodeCheckResponse {
            correct: false,
            tries_left: u32::try_from((PASSCODE_TRIES - failures).max(0)).unwrap_or(0),
            locked: failures >= PASSCODE_TRIES,
            secret: None,
        },
        failed_requests,
    ))
}

pub(super) async fn unlock(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<UnlockRedeemRequest>,
) -> ApiResult<Json<UnlockRedeemResponse>> {
    let mut subject = String::new();
    // The body names the subject as it learns it, so the refusal is audited here.
    let result = unlock_inner(&state, &ctx, req, &mut subject).await;
    match result {
        Ok(v) => Ok(Json(v)),
        Err(err) => {
            state
                .audit_failure(&ctx, "card.unlock.redeem", &subject, "", &err)
                .await;
            Err(err)
        }
    }
}

/// Checks, inside the redemption's transaction, that the request is signed by the card's
/// device key over a challenge issued to that device (consuming the challenge).
async fn unlock_device_proof(
    state: &AppState,
    tx: &mut Tx,
    card: &CardRow,
    req: &UnlockRedeemRequest,
    signature: &[u8],
    now: i64,
) -> ApiResult<String> {
    let device_id = card.device_id.as_deref().ok_or_else(|| {
        ApiError::forbidden(code::UNLOCK_NO_DEVICE, "this card is not held on any phone")
    })?;
    let nonce = challenge::consume(tx, &req.challenge_id, UNLOCK_PURPOSE, device_id, now).await?;
    let (key, _) = vsc_store::signin::device_key(tx, device_id)
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(
                code::UNKNOWN_DEVICE,
                "the card's phone has no device key (enrolled by an older app); the card must be enrolled again",
            )
        })?;
    let statement = vsc_proto::passcode::unlock_statement(
        &req.challenge_id,
        &nonce,
        device_id,
        &req.unlock_code,
        &req.passcode_verifier,
        &req.passcode_secret,
        &state.origin(),
    );
    verify_device_signature(&key, &statement, signature)?;
    Ok(device_id.to_owned())
}

/// A redemption without the device proof: the code stays unused, but the attempt counts as a
/// wrong guess against it (so the code dies after as many failures as a mistyped one), and the
/// challenge, if it was one, is spent. Commits; returns the refusal, audited.
async fn refuse_unproven_unlock(
    state: &AppState,
    ctx: &AuditContext,
    code: &CodeRow,
    card: &CardRow,
    req: &UnlockRedeemRequest,
    why: ApiError,
) -> ApiError {
    let now = state.now_unix();
    let result: ApiResult<i64> = async {
        let mut tx = state.write().await?;
        let failures = repo::record_code_failure(&mut tx, &code.id).await?;
        if let Some(device_id) = card.device_id.as_deref() {
            // Whatever it says, the challenge has been tried once.
            let _ =
                repo::consume_challenge(&mut tx, &req.challenge_id, UNLOCK_PURPOSE, device_id, now)
                    .await?;
        }
        let event = NewEvent {
            actor: ctx.actor.clone(),
            action: "card.unlock.redeem".to_owned(),
            subject: card.id.clone(),
            organisation: card.issued_by.clone(),
            source: ctx.source.to_string(),
            outcome: Outcome::Failure,
            detail: serde_json::json!({
                "error": code::UNLOCK_DEVICE_PROOF_FAILED, "reason": why.code,
                "code_id": code.id, "failed_attempts": failures,
            }),
        };
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
        Ok(failures)
    }
    .await;
    let failures = match result {
        Ok(f) => f,
        Err(e) => return e,
    };
    state.throttle().record_failure(&ctx.source, now).await;
    let left = (codes::MAX_WRONG_GUESSES - failures).max(0);
    ApiError::unauthorized(
        code::UNLOCK_DEVICE_PROOF_FAILED,
        format!(
            "an unlock code is redeemed only by the phone that holds the card, proved with its device key, and this request was not ({}); it counted as a wrong guess ({left} tries left)",
            why.code
        ),
    )
    .audited()
}

async fn unlock_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: UnlockRedeemRequest,
    subject: &mut String,
) -> ApiResult<UnlockRedeemResponse> {
    // Malformed input is refused before the code is looked at, so it changes nothing.
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let passcode_verifier = decode_32(
        &req.passcode_verifier,
        code::PASSCODE_VERIFIER_MALFORMED,
        "the passcode verifier",
    )?;
    let passcode_secret = decode_32(
        &req.passcode_secret,
        code::PASSCODE_SECRET_MALFORMED,
        "the keystore's server secret",
    )?;
    let (mut tx, code) =
        codes::redeem(state, ctx, CodeKind::Unlock, &req.unlock_code, subject).await?;
    let card = repo::card(&mut tx, &code.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("unlock code without card"))?;
    let now = state.now_unix();
    let usable_after_unlock = ["active", "locked"];
    if !usable_after_unlock.contains(&card.state.as_str()) {
        return Err(ApiError::conflict(
            code::CARD_NOT_UNLOCKABLE,
            format!("this card is {} and cannot be unlocked", card.state),
        ));
    }
    let device_id = match unlock_device_proof(state, &mut tx, &card, &req, &signature, now).await {
        Ok(device_id) => device_id,
        // A fault of the server is not the caller's wrong guess.
        Err(err) if err.status.is_server_error() => return Err(err),
        Err(why) => {
            // Rolls back the code's consumption.
            drop(tx);
            return Err(refuse_unproven_unlock(state, ctx, &code, &card, &req, why).await);
        }
    };
    repo::transition_card(
        &mut tx,
        &card.id,
        &[CardState::Locked],
        CardState::Active,
        now,
    )
    .await?;
    vsc_store::signin::reset_card_failures(&mut tx, &card.id).await?;
    vsc_store::signing::reset_pin_failures(&mut tx, &card.id).await?;
    // The new passcode's check replaces the old one (and clears its count).
    store_passcode_deposit(
        state,
        &mut tx,
        &card.id,
        &passcode_verifier,
        &passcode_secret,
    )
    .await?;
    let sealed = repo::card_recovery_key(&mut tx, &card.id)
        .await?
        .ok_or_else(|| ApiError::internal("card has no recovery key"))?;
    let key = state.master_key().open(&recovery_aad(&card.id), &sealed)?;
    let event = AuditContext {
        actor: card.uid.clone(),
        source: ctx.source,
    }
    .event(
        "card.unlocked",
        &card.id,
        &card.issued_by,
        serde_json::json!({"uid": card.uid, "device_id": device_id, "code_id": code.id, "unlock_issued_by": code.created_by}),
    );
    state.append_audit(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
    Ok(UnlockRedeemResponse {
        card_id: card.id,
        recovery_key: B64.encode(&*key),
    })
}

/// Issues the card's certificates for `requested` (CSR, profile, usage) to `person` at `now` and
/// stores each in `certificates`, in the caller's transaction: what enrolment and renewal both
/// do (renewal then marks them pending until the phone confirms).
pub(super) async fn issue_certificates(
    state: &AppState,
    tx: &mut Tx,
    card_id: &str,
    person: &repo::PersonRow,
    requested: &[(&ValidatedCsr, CertProfile, &str)],
    now: time::OffsetDateTime,
) -> ApiResult<Vec<vsc_pki::IssuedCertificate>> {
    let subject = PersonSubject {
        uid: person.uid.clone(),
        given_name: person.given_name.clone(),
        family_name: person.family_name.clone(),
    };
    let validity = state.config().certificate_validity;
    let (crl_url, ocsp_url) = (state.crl_url(), state.ocsp_url());
    let mut issued = Vec::with_capacity(requested.len());
    for &(csr, profile, usage) in requested {
        let cert = state
            .ca()
            .issue_person_certificate(csr, profile, &subject, validity, &crl_url, &ocsp_url, now)?;
        repo::insert_certificate(
            tx,
            &CertificateRow {
                serial: cert.serial_hex.clone(),
                card_id: card_id.to_owned(),
                usage: usage.into(),
                der: cert.der.clone(),
                spki_sha256: csr.spki_sha256_hex(),
                not_before: cert.not_before.unix_timestamp(),
                not_after: cert.not_after.unix_timestamp(),
                revoked_at: None,
            },
        )
        .await?;
        issued.push(cert);
    }
    Ok(issued)
}

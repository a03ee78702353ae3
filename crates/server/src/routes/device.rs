//! The phone's API.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/enrol` | redeem an activation: CSRs + device facts in, certificates out |
//! | `POST /api/v1/device/unlock` | redeem an RA unlock code: the phone gets its recovery key back |
//!
//! Enrolment is one transaction: the activation is consumed, the device bound, both
//! certificates issued and the card activated together, with the audit event — or nothing
//! changes except the wrong-guess counter and a failure event.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_core::{CardState, ClientFacts, PolicyError};
use vsc_pki::{CertProfile, CsrError, KeyKind, PersonSubject, ValidatedCsr, validate_csr};
use vsc_proto::{EnrolRequest, EnrolResponse, UnlockRedeemRequest, UnlockRedeemResponse};
use vsc_store::repo::{self, CertificateRow, DeviceRow};

use super::{ApiJson, Client};
use crate::codes::{self, CodeKind};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enrol", post(enrol))
        .route("/api/v1/device/unlock", post(unlock))
}

/// AAD binding a sealed recovery key to its card.
fn recovery_aad(card_id: &str) -> Vec<u8> {
    format!("vsc/card-recovery-key/{card_id}").into_bytes()
}

fn csr_error(which: &str, e: CsrError) -> ApiError {
    let code = match &e {
        CsrError::Malformed(_) => "csr_malformed",
        CsrError::ProofOfPossession => "csr_proof_of_possession_failed",
        CsrError::WeakKey(_) => "csr_weak_key",
        CsrError::WrongKeyType { .. } => "csr_wrong_key_type",
        CsrError::Unsupported(_) => "csr_unsupported",
    };
    ApiError::bad_request(code, format!("{which} CSR: {e}"))
}

fn decode_csr(which: &str, b64: &str, kind: KeyKind) -> ApiResult<ValidatedCsr> {
    let der = B64.decode(b64.trim()).map_err(|_| {
        ApiError::bad_request("csr_malformed", format!("{which} CSR is not base64"))
    })?;
    validate_csr(&der, kind).map_err(|e| csr_error(which, e))
}

async fn enrol(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    let mut subject = String::new();
    match enrol_inner(&state, &ctx, req, &mut subject).await {
        Ok(resp) => Ok(Json(resp)),
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
    if card.state != CardState::Pending.as_str() {
        return Err(ApiError::conflict(
            "card_not_pending",
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
    state
        .config()
        .approved_app_versions
        .check(&facts)
        .map_err(|e| match e {
            PolicyError::BadVersion(_) => {
                ApiError::bad_request("app_version_malformed", e.to_string())
            }
            PolicyError::NotApproved { .. } => {
                ApiError::forbidden("app_version_not_approved", e.to_string())
            }
        })?;
    if req.device.simulated && !state.config().sandbox {
        return Err(ApiError::forbidden(
            "simulated_device_refused",
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
            "device_id_malformed",
            "the device id must be 16 to 128 letters, digits or dashes",
        ));
    }
    if repo::device(&mut tx, device_id)
        .await?
        .is_some_and(|d| d.uid != person.uid)
    {
        return Err(ApiError::conflict(
            "device_bound_to_other_person",
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
                "key_reused",
                "the same key appears twice in this request; every certificate needs its own key",
            ));
        }
        if repo::spki_known(&mut tx, &csr.spki_sha256_hex()).await? {
            return Err(ApiError::conflict(
                "key_reused",
                "a key in this request already has a certificate; every card gets fresh keys",
            ));
        }
    }
    let device_key = match req.device_key.as_deref() {
        None => None,
        Some(b64) => {
            let der = B64.decode(b64.trim()).map_err(|_| {
                ApiError::bad_request("device_key_malformed", "the device key is not base64")
            })?;
            Some(
                vsc_pki::validate_public_key(&der, KeyKind::EcdsaP256).map_err(|e| {
                    ApiError::bad_request("device_key_malformed", format!("the device key: {e}"))
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
                "recovery_key_malformed",
                "the recovery key must be 32 bytes, base64",
            )
        })?;
    let sealed_recovery = state
        .master_key()
        .seal(&recovery_aad(&card.id), &recovery_key)?;

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
            "device_bound_to_other_person",
            "this phone already holds another person's card; one person per device",
        ));
    }
    if let Some(key) = &device_key {
        vsc_store::signin::set_device_key(&mut tx, device_id, key).await?;
    }
    let subject_dn = PersonSubject {
        uid: person.uid.clone(),
        given_name: person.given_name.clone(),
        family_name: person.family_name.clone(),
    };
    let validity = state.config().certificate_validity;
    let crl_url = state.crl_url();
    let mut issued = Vec::new();
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
    for (csr, profile, usage) in requested {
        let cert = state.ca().issue_person_certificate(
            csr,
            profile,
            &subject_dn,
            validity,
            &crl_url,
            now,
        )?;
        repo::insert_certificate(
            &mut tx,
            &CertificateRow {
                serial: cert.serial_hex.clone(),
                card_id: card.id.clone(),
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
    repo::bind_card_device(&mut tx, &card.id, device_id, &sealed_recovery).await?;
    if !repo::transition_card(
        &mut tx,
        &card.id,
        &["pending"],
        "active",
        now.unix_timestamp(),
    )
    .await?
    {
        return Err(ApiError::conflict(
            "card_not_pending",
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
    vsc_store::audit::append(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
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

async fn unlock(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<UnlockRedeemRequest>,
) -> ApiResult<Json<UnlockRedeemResponse>> {
    let mut subject = String::new();
    match unlock_inner(&state, &ctx, req, &mut subject).await {
        Ok(resp) => Ok(Json(resp)),
        Err(err) => {
            state
                .audit_failure(&ctx, "card.unlock.redeem", &subject, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn unlock_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: UnlockRedeemRequest,
    subject: &mut String,
) -> ApiResult<UnlockRedeemResponse> {
    let (mut tx, code) =
        codes::redeem(state, ctx, CodeKind::Unlock, &req.unlock_code, subject).await?;
    let card = repo::card(&mut tx, &code.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("unlock code without card"))?;
    if card.device_id.as_deref() != Some(req.device_id.trim()) {
        return Err(ApiError::forbidden(
            "unlock_wrong_device",
            "this unlock code is for a card held on another phone",
        ));
    }
    let now = state.now_unix();
    let usable_after_unlock = ["active", "locked"];
    if !usable_after_unlock.contains(&card.state.as_str()) {
        return Err(ApiError::conflict(
            "card_not_unlockable",
            format!("this card is {} and cannot be unlocked", card.state),
        ));
    }
    repo::transition_card(&mut tx, &card.id, &["locked"], "active", now).await?;
    vsc_store::signin::reset_card_failures(&mut tx, &card.id).await?;
    vsc_store::signing::reset_pin_failures(&mut tx, &card.id).await?;
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
        serde_json::json!({"uid": card.uid, "device_id": req.device_id, "code_id": code.id, "unlock_issued_by": code.created_by}),
    );
    vsc_store::audit::append(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
    Ok(UnlockRedeemResponse {
        card_id: card.id,
        recovery_key: B64.encode(&*key),
    })
}

//! Signing on the phone: the phone's side. The prescribing system (through the agent) opens
//! requests and collects their outcome in [`crate::routes::signing`].
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/device/signing` | phone (device token) | signing requests waiting for it, in full (the event stream only names them: `signing-request`) |
//! | `POST /api/v1/device/signing/{id}/complete` | phone (device token) | one signature per item (and items it refused) |
//! | `POST /api/v1/device/signing/{id}/decline` | phone (device token) | `declined`, or `not-me` ("I didn't do this": the asking session ends, alert) |
//!
//! Every returned signature is verified here against the card's certificate before anyone
//! collects it, and every item is audited with its prescription id, digest, signer and outcome
//! in the transaction that completes the request.

use vsc_proto::errors as code;
use vsc_proto::signing::state as signing_state;

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_core::{CardState, SigningRequestState};
use vsc_eps::sign::SignatureAlgorithm;
use vsc_proto::signin::DeclineAuthRequest;
use vsc_proto::signing::{
    CompleteSigningRequest, FailedSignature, ItemSignature, PendingSigningRequest, SigningItem,
    SigningKind, SigningOutcome,
};
use vsc_store::Conn;
use vsc_store::repo;
use vsc_store::signing::{self as db, SigningRequestRow};

use super::DeviceCaller;
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::routes::ApiJson;
use crate::routes::signing::{StoredItem, certificate_of, parse_algorithm, signing_certificate};
use crate::state::AppState;

fn to_pending(row: &SigningRequestRow) -> ApiResult<PendingSigningRequest> {
    let items: Vec<StoredItem> = serde_json::from_str(&row.items).map_err(ApiError::internal)?;
    let kind = match row.kind.as_str() {
        "prescriptions" => SigningKind::Prescriptions,
        "prepared" => SigningKind::Prepared,
        "card" => SigningKind::Card,
        other => return Err(ApiError::internal(format!("stored kind {other}"))),
    };
    Ok(PendingSigningRequest {
        request_id: row.id.clone(),
        uid: row.uid.clone(),
        kind,
        algorithm: row.algorithm.clone(),
        workstation: row.workstation.clone(),
        role: row.role.clone(),
        items: items.into_iter().map(|i| i.item).collect(),
        created_at: time::OffsetDateTime::from_unix_timestamp(row.created_at)
            .map_err(ApiError::internal)?,
        expires_at: time::OffsetDateTime::from_unix_timestamp(row.expires_at)
            .map_err(ApiError::internal)?,
    })
}

/// The signing requests waiting for the calling phone.
pub(super) async fn pending_for_device(
    state: &AppState,
    caller: &DeviceCaller,
) -> ApiResult<Vec<PendingSigningRequest>> {
    let mut conn = state.store().pool().acquire().await?;
    let now = state.now_unix();
    let mut out = Vec::new();
    for card in repo::live_cards_of(&mut conn, &caller.uid).await? {
        if card.device_id.as_deref() != Some(caller.device_id.as_str()) {
            continue;
        }
        for row in db::open_for_card(&mut conn, &card.id, now).await? {
            // One unreadable row must not hide every other request from the phone.
            match to_pending(&row) {
                Ok(p) => out.push(p),
                Err(e) => {
                    tracing::error!(request_id = %row.id, error = %e.message, "unreadable signing request skipped")
                }
            }
        }
    }
    Ok(out)
}

pub(super) async fn device_pending(
    State(state): State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Json<Vec<PendingSigningRequest>>> {
    crate::routes::ra_versions::require_device_version(
        &state,
        &caller.ctx,
        &caller.device_id,
        "signing.pending",
    )
    .await?;
    Ok(Json(pending_for_device(&state, &caller).await?))
}

/// Loads a request the calling device may answer now, with its card.
async fn request_for_device(
    conn: &mut Conn,
    caller: &DeviceCaller,
    id: &str,
    now: i64,
) -> ApiResult<(SigningRequestRow, repo::CardRow)> {
    let row = db::get(conn, id).await?.ok_or_else(|| {
        ApiError::not_found(code::UNKNOWN_SIGNING_REQUEST, "no such signing request")
    })?;
    let card = repo::card(conn, &row.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("signing request without card"))?;
    if card.device_id.as_deref() != Some(caller.device_id.as_str()) || card.uid != caller.uid {
        return Err(ApiError::forbidden(
            code::REQUEST_NOT_FOR_THIS_DEVICE,
            "this signing request is for a card held on another device",
        ));
    }
    if row.state != SigningRequestState::Pending {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            format!("this signing request is already {}", row.state),
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::gone(
            code::REQUEST_EXPIRED,
            "this signing request has expired; sign again at the workstation",
        ));
    }
    // Nothing is signed for a session that has ended (logout, lock-out, card locked).
    if !db::session_is_live(conn, &row.session_id, now).await? {
        return Err(ApiError::gone(
            code::SESSION_ENDED,
            "the workstation session that asked has ended; nothing was signed",
        ));
    }
    if card.state != CardState::Active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            format!("the card is {}; it cannot sign", card.state),
        ));
    }
    Ok((row, card))
}

/// Whether the phone's result for a card operation is an ECDSA P-256 signature over the
/// digest that verifies with the slot's certificate.
fn card_result_acceptable(item: &SigningItem, certificate_der: &[u8], result: &[u8]) -> bool {
    use aws_lc_rs::digest::{Digest, SHA256};
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use x509_parser::prelude::{FromDer, X509Certificate};
    match item.slot.as_deref() {
        Some("9a" | "9c") => {
            let Some(input) = item.payload.as_deref().and_then(|p| B64.decode(p).ok()) else {
                return false;
            };
            let Ok(digest) = Digest::import_less_safe(&input, &SHA256) else {
                return false;
            };
            let Ok((_, cert)) = X509Certificate::from_der(certificate_der) else {
                return false;
            };
            UnparsedPublicKey::new(
                &ECDSA_P256_SHA256_ASN1,
                &cert.public_key().subject_public_key.data,
            )
            .verify_digest(&digest, result)
            .is_ok()
        }
        _ => false,
    }
}

/// Verifies one RSA PKCS#1 v1.5 signature over `signed_info` with the certificate's key.
fn signature_verifies(
    algorithm: SignatureAlgorithm,
    certificate_der: &[u8],
    signed_info: &[u8],
    signature: &[u8],
) -> bool {
    use aws_lc_rs::signature::{
        RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(certificate_der) else {
        return false;
    };
    let key = &cert.public_key().subject_public_key.data;
    let params = match algorithm {
        SignatureAlgorithm::RsaSha1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        SignatureAlgorithm::RsaSha256 => &RSA_PKCS1_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(params, key)
        .verify(signed_info, signature)
        .is_ok()
}

pub(super) async fn complete(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CompleteSigningRequest>,
) -> ApiResult<Json<SigningOutcome>> {
    match complete_inner(&state, &caller, &id, &req).await {
        Ok(o) => Ok(Json(o)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "signing.complete", &id, "", &err)
                .await;
            Err(err)
        }
    }
}

async fn complete_inner(
    state: &AppState,
    caller: &DeviceCaller,
    id: &str,
    req: &CompleteSigningRequest,
) -> ApiResult<SigningOutcome> {
    crate::routes::ra_versions::require_device_version(
        state,
        &caller.ctx,
        &caller.device_id,
        "signing.complete",
    )
    .await?;
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let (row, card) = request_for_device(&mut conn, caller, id, now).await?;
    let items: Vec<StoredItem> = serde_json::from_str(&row.items).map_err(ApiError::internal)?;
    let card_slot = (row.kind == SigningKind::Card.as_str())
        .then(|| items.first().and_then(|i| i.item.slot.clone()))
        .flatten();
    let certificate = match card_slot.as_deref() {
        Some("9a") => certificate_of(&mut conn, &card.id, "piv-authentication", now).await?,
        Some(_) => certificate_of(&mut conn, &card.id, "piv-signature", now).await?,
        None => signing_certificate(&mut conn, &card.id, now).await?,
    };
    drop(conn);
    let algorithm = match card_slot {
        // A card operation has no XML-DSig algorithm; the check below is per slot.
        Some(_) => SignatureAlgorithm::RsaSha256,
        None => parse_algorithm(&row.algorithm)?,
    };

    let mut signatures = Vec::new();
    let mut failed = Vec::new();
    let mut events = Vec::new();
    let given_by_id: std::collections::HashMap<&str, &ItemSignature> =
        req.signatures.iter().map(|s| (s.id.as_str(), s)).collect();
    let refused_by_id: std::collections::HashMap<&str, &FailedSignature> =
        req.refused.iter().map(|r| (r.id.as_str(), r)).collect();
    for item in &items {
        let id = &item.item.id;
        let given = given_by_id.get(id.as_str()).copied();
        let refused = refused_by_id.get(id.as_str()).copied();
        let verdict = match (given, refused) {
            (Some(sig), None) if card_slot.is_some() => {
                match B64.decode(sig.signature.trim()) {
                    Ok(bytes) if card_result_acceptable(&item.item, &certificate, &bytes) => {
                        Ok(sig.clone())
                    }
                    Ok(_) => Err("the card operation's result does not verify with the card's certificate".to_owned()),
                    Err(_) => Err("the signature is not base64".to_owned()),
                }
            }
            (Some(sig), None) => match B64.decode(sig.signature.trim()) {
                Ok(bytes)
                    if signature_verifies(
                        algorithm,
                        &certificate,
                        item.signed_info.as_bytes(),
                        &bytes,
                    ) =>
                {
                    Ok(sig.clone())
                }
                Ok(_) => Err("the signature does not verify with the signing certificate over the SignedInfo the server computed".to_owned()),
                Err(_) => Err("the signature is not base64".to_owned()),
            },
            (None, Some(r)) => Err(format!("refused on the phone: {}", r.reason)),
            (Some(_), Some(_)) => Err("the phone both signed and refused this item".to_owned()),
            (None, None) => Err("the phone returned nothing for this item".to_owned()),
        };
        let mut event = caller.ctx.event(
            if card_slot.is_some() {
                "card.operation"
            } else {
                "eps.signature"
            },
            &row.uid,
            &card.issued_by,
            serde_json::json!({
                "request_id": row.id,
                "item_id": id,
                "prescription_id": item.prescription_id,
                "digest": item.digest,
                "algorithm": row.algorithm,
                "kind": row.kind,
                "card_id": card.id,
                "signer": row.uid,
                "error": verdict.as_ref().err(),
            }),
        );
        match verdict {
            Ok(sig) => signatures.push(sig),
            Err(reason) => {
                event.outcome = vsc_store::Outcome::Failure;
                failed.push(FailedSignature {
                    id: id.clone(),
                    reason,
                });
            }
        }
        events.push(event);
    }
    let outcome = SigningOutcome {
        state: signing_state::COMPLETED.into(),
        signatures,
        certificate: Some(B64.encode(&certificate)),
        failed_signatures: failed,
    };
    let stored = serde_json::to_string(&outcome).map_err(ApiError::internal)?;
    let mut tx = state.write().await?;
    // Checked again under the write lock: a cancellation or lock that landed while the
    // signatures were being verified wins, and nothing is handed out.
    let still_active = repo::card(&mut tx, &card.id)
        .await?
        .is_some_and(|c| c.state == CardState::Active);
    if !still_active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            "the card was cancelled or locked while the phone was signing; nothing was signed",
        ));
    }
    if !db::decide(
        &mut tx,
        &row.id,
        SigningRequestState::Completed,
        Some(&stored),
        state.now_unix(),
    )
    .await?
    {
        return Err(ApiError::conflict(
            code::REQUEST_ALREADY_DECIDED,
            "this signing request was already answered (or has just expired)",
        ));
    }
    let at = state.now_ms();
    for e in &events {
        state.append_audit(&mut tx, e, at).await?;
    }
    tx.commit().await?;
    state.hub().publish(Event::SigningDecided {
        card_id: card.id,
        request_id: row.id,
        state: signing_state::COMPLETED.into(),
    });
    Ok(outcome)
}

pub(super) async fn decline(
    State(state): State<AppState>,
    caller: DeviceCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeclineAuthRequest>,
) -> ApiResult<Json<SigningOutcome>> {
    let result = async {
        if req.reason != "declined" && req.reason != "not-me" {
            return Err(ApiError::bad_request(
                code::INVALID_REASON,
                format!("'{}' is not a reason: use declined or not-me", req.reason),
            ));
        }
        let now = state.now_unix();
        let mut conn = state.store().pool().acquire().await?;
        let (row, card) = request_for_device(&mut conn, &caller, &id, now).await?;
        drop(conn);
        let outcome = SigningOutcome {
            state: signing_state::DECLINED.into(),
            signatures: Vec::new(),
            certificate: None,
            failed_signatures: Vec::new(),
        };
        let stored = serde_json::to_string(&outcome).map_err(ApiError::internal)?;
        let mut tx = state.write().await?;
        if !db::decide(&mut tx, &row.id, SigningRequestState::Declined, Some(&stored), now).await? {
            return Err(ApiError::conflict(
                code::REQUEST_ALREADY_DECIDED,
                "this signing request was already answered",
            ));
        }
        let not_me = req.reason == "not-me";
        // "I didn't do this": the session that asked is ended at once (its ticket and agent key
        // are worthless from now on), and the security team gets an alert.
        let ended = not_me
            && vsc_store::signin::end_session(&mut tx, &row.session_id, now, "reported-by-holder")
                .await?;
        let mut event = caller.ctx.event(
            if not_me { "alert.not_me" } else { "signing.declined" },
            &row.uid,
            &card.issued_by,
            serde_json::json!({"request_id": row.id, "card_id": card.id, "kind": row.kind, "workstation": row.workstation, "session_id": row.session_id, "session_ended": ended, "reason": req.reason}),
        );
        event.outcome = vsc_store::Outcome::Failure;
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
        if not_me {
            tracing::warn!(uid = %row.uid, request_id = %row.id, workstation = %row.workstation, "ALERT: the card holder reported a signing request they did not make; its session is ended");
        }
        state.hub().publish(Event::SigningDecided {
            card_id: card.id,
            request_id: row.id,
            state: signing_state::DECLINED.into(),
        });
        Ok(outcome)
    }
    .await;
    match result {
        Ok(o) => Ok(Json(o)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "signing.decline", &id, "", &err)
                .await;
            Err(err)
        }
    }
}

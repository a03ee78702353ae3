//! Certificate renewal (issue 14), the phone's side. The wire types and the signed statements
//! are in [`vsc_proto::renewal`]; the RA's `renew-now` is in [`crate::routes::ra`].
//!
//! - `POST /api/v1/device/renewal/challenge`: a single-use challenge for the card's device, with
//!   the card's renewal window (opens `renewal_window` before the earliest live certificate
//!   expires, or at once when an RA ordered it).
//! - `POST /api/v1/device/renewal`: new CSRs signed by the card's *current* authentication key
//!   over that challenge. Refused, with nothing changed, when the signing key's certificate is
//!   revoked (`renewal_key_revoked`) or expired (`card_expired`), the card is not active, or the
//!   window is not open (`renewal_not_due`). Otherwise, in one transaction: an earlier
//!   unconfirmed renewal of the card lapses (its certificates are revoked `superseded`), the new
//!   certificates are issued and stored marked `pending_renewal` (not the card's yet: sign-in,
//!   signing and the virtual card keep using the old ones), and the renewal is recorded
//!   (`issued`, an hour to confirm) with its audit event. A renewal still unconfirmed after its
//!   hour is lapsed, and its certificates revoked, by [`crate::renewal_sweep`].
//! - `POST /api/v1/device/renewal/confirm`: a signature by the *new* authentication key. In one
//!   transaction the old certificates are revoked `superseded`, the new ones become the card's,
//!   the RA's order is cleared and the CRL published. Confirming a confirmed renewal again
//!   answers the same without changing anything, so a phone that stopped before it heard the
//!   answer finishes by retrying; confirming a lapsed renewal answers `renewal_not_open`.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_core::CardState;
use vsc_pki::{CertProfile, KeyKind, RevocationReason};
use vsc_proto::errors as code;
use vsc_proto::renewal::{
    RenewalChallenge, RenewalChallengeRequest, RenewalConfirm, RenewalConfirmed, RenewalIssued,
    RenewalRequest, RenewalWindow,
};
use vsc_store::renewal as db;
use vsc_store::repo::{self, CardRow, CertificateRow};
use vsc_store::{Conn, Tx};

use super::{enrol, replacement};
use crate::crl::{self, CrlIssuer};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiJson, Client, challenge};
use crate::state::{AppState, AuditContext};

/// Challenge purpose of a renewal request.
const RENEWAL_PURPOSE: &str = "device-renewal";
/// How long the phone has to confirm a renewal before it lapses.
pub const CONFIRM_TTL_SECONDS: i64 = 3600;

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Where `card` stands with renewal at `now`: its live certificates' earliest expiry (or, when
/// none is live, the latest expiry it had), the window and an RA's order.
pub(crate) async fn window_of(
    state: &AppState,
    conn: &mut Conn,
    card: &CardRow,
    now: i64,
) -> ApiResult<Option<RenewalWindow>> {
    let certs = repo::certificates_of(conn, &card.id).await?;
    let live = certs
        .iter()
        .filter(|c| c.revoked_at.is_none() && now < c.not_after)
        .map(|c| c.not_after)
        .min();
    let Some(not_after) = live.or_else(|| certs.iter().map(|c| c.not_after).max()) else {
        return Ok(None);
    };
    let window_days = state.config().renewal_window.whole_days();
    let opens_at = not_after - state.config().renewal_window.whole_seconds();
    let forced = db::order(conn, &card.id).await?.is_some();
    Ok(Some(RenewalWindow {
        window_days,
        not_after: at(not_after),
        opens_at: at(opens_at),
        forced,
        due: forced || now >= opens_at,
    }))
}

/// The refusal for a card whose certificates have expired.
pub(crate) fn card_expired(not_after: i64) -> ApiError {
    ApiError::forbidden(
        code::CARD_EXPIRED,
        format!(
            "this card's certificates expired on {}; it can no longer sign in or renew. Ask your RA for a new card",
            rfc3339(not_after)
        ),
    )
}

/// The card bound to `device_id`, or why not.
async fn card_on_device(tx: &mut Tx, card_id: &str, device_id: &str) -> ApiResult<CardRow> {
    let card = repo::card(tx, card_id).await?;
    match card {
        Some(card) if card.device_id.as_deref() == Some(device_id) => Ok(card),
        other => Err(replacement::not_on_this_device(tx, other.as_ref(), device_id).await),
    }
}

pub(super) async fn challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<RenewalChallengeRequest>,
) -> ApiResult<Json<RenewalChallenge>> {
    state
        .audited(
            &ctx,
            "device.renewal.challenge",
            &req.device_id,
            challenge_inner(&state, &ctx, &req),
        )
        .await
        .map(Json)
}

async fn challenge_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &RenewalChallengeRequest,
) -> ApiResult<RenewalChallenge> {
    let mut tx = state.write().await?;
    super::admit_challenge(state, &mut tx, ctx, &req.device_id).await?;
    let card = card_on_device(&mut tx, &req.card_id, &req.device_id).await?;
    let window = window_of(state, &mut tx, &card, state.now_unix())
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                code::CARD_NOT_ACTIVE,
                "this card has no certificates to renew",
            )
        })?;
    let challenge = challenge::issue(
        state,
        &mut tx,
        ctx,
        RENEWAL_PURPOSE,
        &req.device_id,
        "device.renewal.challenge.issued",
    )
    .await?;
    tx.commit().await?;
    Ok(RenewalChallenge { challenge, window })
}

pub(super) async fn renew(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<RenewalRequest>,
) -> ApiResult<Json<RenewalIssued>> {
    state
        .audited(
            &ctx,
            "card.renewal",
            &req.card_id,
            renew_inner(&state, &ctx, &req),
        )
        .await
        .map(Json)
}

/// The card's live certificate `serial` for authentication, or why the request is refused.
fn signer_certificate(certs: Vec<CertificateRow>, serial: &str) -> ApiResult<CertificateRow> {
    let serial = serial.trim().to_ascii_lowercase();
    certs
        .into_iter()
        .find(|c| c.serial.to_ascii_lowercase() == serial && c.usage == "authentication")
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::RENEWAL_KEY_UNKNOWN,
                "the renewal names no authentication certificate of this card; nothing was changed",
            )
        })
}

async fn renew_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &RenewalRequest,
) -> ApiResult<RenewalIssued> {
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let now = state.now_unix();
    // The challenge is spent whatever follows: a replay is refused.
    let mut tx = state.write().await?;
    let nonce = challenge::consume(
        &mut tx,
        &req.challenge_id,
        RENEWAL_PURPOSE,
        &req.device_id,
        now,
    )
    .await?;
    tx.commit().await?;

    let mut tx = state.write().await?;
    let card = card_on_device(&mut tx, &req.card_id, &req.device_id).await?;
    let signer = signer_certificate(
        repo::certificates_of(&mut tx, &card.id).await?,
        &req.auth_serial,
    )?;
    let spki = vsc_pki::certificate_info(&signer.der)?.spki_der;
    let statement = vsc_proto::renewal::renewal_statement(req, &nonce, &state.origin());
    if !crate::routes::p256_signature_valid(&spki, &statement, &signature) {
        return Err(ApiError::unauthorized(
            code::SIGNATURE_INVALID,
            "the renewal's signature does not verify with the card's authentication key; nothing was changed",
        ));
    }
    if let Some(revoked_at) = signer.revoked_at {
        return Err(ApiError::forbidden(
            code::RENEWAL_KEY_REVOKED,
            format!(
                "the key that signed this renewal was revoked on {} (the card was cancelled or replaced); nothing was changed. Ask your RA for a new card",
                rfc3339(revoked_at)
            ),
        ));
    }
    if now >= signer.not_after {
        return Err(card_expired(signer.not_after));
    }
    if card.state != CardState::Active {
        return Err(ApiError::forbidden(
            code::CARD_NOT_ACTIVE,
            format!("the card is {} and cannot renew", card.state),
        ));
    }
    let window = window_of(state, &mut tx, &card, now)
        .await?
        .ok_or_else(|| ApiError::internal("a signing certificate but no window"))?;
    if !window.due {
        return Err(ApiError::conflict(
            code::RENEWAL_NOT_DUE,
            format!(
                "this card's renewal window opens on {} ({} days before its certificates expire on {}); nothing was changed. Renew then, or ask your RA to make it due now",
                rfc3339(window.opens_at.unix_timestamp()),
                window.window_days,
                rfc3339(window.not_after.unix_timestamp())
            ),
        ));
    }

    let auth_csr = enrol::decode_csr("the authentication", &req.auth_csr, KeyKind::EcdsaP256)?;
    let signing_csr = enrol::decode_csr("the signing", &req.signing_csr, KeyKind::Rsa2048)?;
    let piv_auth_csr = req
        .piv_auth_csr
        .as_deref()
        .map(|b64| enrol::decode_csr("the smartcard 9A", b64, KeyKind::EcdsaP256))
        .transpose()?;
    let piv_signing_csr = req
        .piv_signing_csr
        .as_deref()
        .map(|b64| enrol::decode_csr("the smartcard 9C", b64, KeyKind::EcdsaP256))
        .transpose()?;
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
    let mut spkis = std::collections::HashSet::new();
    for (csr, _, _) in &requested {
        if !spkis.insert(csr.spki_sha256_hex())
            || repo::spki_known(&mut tx, &csr.spki_sha256_hex()).await?
        {
            return Err(ApiError::conflict(
                code::KEY_REUSED,
                "a key in this renewal already has a certificate (or appears twice); a renewal needs fresh keys",
            ));
        }
    }
    let person = repo::person(&mut tx, &card.uid)
        .await?
        .ok_or_else(|| ApiError::internal("card without person"))?;

    // An earlier renewal the phone never confirmed lapses: its keys were never the card's.
    let lapsed =
        db::lapse_open(&mut tx, &card.id, now, RevocationReason::Superseded.code()).await?;
    let renewal_id = state.new_id()?;
    let issued =
        enrol::issue_certificates(state, &mut tx, &card.id, &person, &requested, state.now())
            .await?;
    for cert in &issued {
        db::mark_pending(&mut tx, &cert.serial_hex, &renewal_id).await?;
    }
    let confirm_nonce = B64.encode(state.random::<32>()?);
    let expires_at = now + CONFIRM_TTL_SECONDS;
    db::insert_renewal(
        &mut tx,
        &db::RenewalRow {
            id: renewal_id.clone(),
            card_id: card.id.clone(),
            device_id: req.device_id.clone(),
            signed_by: signer.serial.clone(),
            forced: window.forced && now < window.opens_at.unix_timestamp(),
            confirm_nonce: confirm_nonce.clone(),
            new_auth_serial: issued[0].serial_hex.clone(),
            state: db::ISSUED.into(),
            created_at: now,
            expires_at,
            confirmed_at: None,
        },
    )
    .await?;
    let crl_number = if lapsed.is_empty() {
        None
    } else {
        Some(crl::publish(state, &mut tx, CrlIssuer::Issuing).await?)
    };
    let event = AuditContext {
        actor: card.uid.clone(),
        source: ctx.source,
    }
    .event(
        "card.renewal.issued",
        &card.id,
        &card.issued_by,
        serde_json::json!({
            "renewal_id": renewal_id, "device_id": req.device_id, "signed_by": signer.serial,
            "forced": window.forced, "serials": issued.iter().map(|c| c.serial_hex.clone()).collect::<Vec<_>>(),
            "lapsed_serials": lapsed, "crl_number": crl_number,
        }),
    );
    state.append_audit(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
    let mut issued = issued.into_iter();
    let (Some(auth), Some(signing)) = (issued.next(), issued.next()) else {
        return Err(ApiError::internal("expected two certificates"));
    };
    let piv_auth = piv_auth_csr.as_ref().and_then(|_| issued.next());
    let piv_signing = piv_signing_csr.as_ref().and_then(|_| issued.next());
    Ok(RenewalIssued {
        renewal_id,
        confirm_nonce,
        expires_at: at(expires_at),
        auth_certificate: auth.pem(),
        signing_certificate: signing.pem(),
        piv_auth_certificate: piv_auth.map(|c| c.pem()),
        piv_signing_certificate: piv_signing.map(|c| c.pem()),
    })
}

pub(super) async fn confirm(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<RenewalConfirm>,
) -> ApiResult<Json<RenewalConfirmed>> {
    state
        .audited(
            &ctx,
            "card.renewal.confirm",
            &req.renewal_id,
            confirm_inner(&state, &ctx, &req),
        )
        .await
        .map(Json)
}

async fn confirm_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &RenewalConfirm,
) -> ApiResult<RenewalConfirmed> {
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let now = state.now_unix();
    let mut tx = state.write().await?;
    let not_open = |why: &str| {
        ApiError::conflict(
            code::RENEWAL_NOT_OPEN,
            format!("{why}; the card's current keys and certificates are unchanged: renew again"),
        )
    };
    let Some(renewal) = db::renewal(&mut tx, req.renewal_id.trim()).await? else {
        return Err(not_open("there is no such renewal"));
    };
    let new_auth = db::certificate(&mut tx, &renewal.new_auth_serial)
        .await?
        .ok_or_else(|| ApiError::internal("a renewal without its certificate"))?;
    let spki = vsc_pki::certificate_info(&new_auth.der)?.spki_der;
    let statement = vsc_proto::renewal::renewal_confirm_statement(
        &renewal.id,
        &renewal.confirm_nonce,
        &renewal.card_id,
        &state.origin(),
    );
    if !crate::routes::p256_signature_valid(&spki, &statement, &signature) {
        return Err(ApiError::unauthorized(
            code::SIGNATURE_INVALID,
            "the confirmation is not signed by the renewal's new authentication key",
        ));
    }
    if renewal.state == db::CONFIRMED {
        // A repeat (the phone did not hear the first answer): nothing more to do.
        return Ok(RenewalConfirmed {
            renewal_id: renewal.id,
            superseded: Vec::new(),
        });
    }
    if renewal.state != db::ISSUED || renewal.expires_at <= now {
        return Err(not_open("this renewal lapsed before it was confirmed"));
    }
    if new_auth.revoked_at.is_some() {
        return Err(not_open(
            "this renewal's certificates were revoked (the card was cancelled or replaced)",
        ));
    }
    let card = repo::card(&mut tx, &renewal.card_id)
        .await?
        .ok_or_else(|| ApiError::internal("a renewal without its card"))?;
    if card.state != CardState::Active
        || card.device_id.as_deref() != Some(renewal.device_id.as_str())
    {
        return Err(not_open(&format!(
            "the card is {} or no longer on this phone",
            card.state
        )));
    }
    let Some(superseded) = db::confirm(
        &mut tx,
        &renewal.id,
        &card.id,
        now,
        RevocationReason::Superseded.code(),
    )
    .await?
    else {
        return Err(not_open("this renewal changed while confirming"));
    };
    let crl_number = crl::publish(state, &mut tx, CrlIssuer::Issuing).await?;
    let event = AuditContext {
        actor: card.uid.clone(),
        source: ctx.source,
    }
    .event(
        "card.renewed",
        &card.id,
        &card.issued_by,
        serde_json::json!({
            "renewal_id": renewal.id, "device_id": renewal.device_id, "forced": renewal.forced,
            "superseded": superseded, "reason_code": "superseded", "crl_number": crl_number,
        }),
    );
    state.append_audit(&mut tx, &event, state.now_ms()).await?;
    tx.commit().await?;
    Ok(RenewalConfirmed {
        renewal_id: renewal.id,
        superseded,
    })
}

//! The phone's API: every `/api/v1/device/*` route (and enrolment, which is where a phone
//! starts), registered by [`routes`]. Each sub-module documents its part.
//!
//! | route | caller | what | module |
//! |---|---|---|---|
//! | `POST /api/v1/enrol` | the enrolling phone (activation code from the RA) | redeem an activation: CSRs, device facts, device key, recovery key and passcode deposit in, certificates out | `enrol` |
//! | `POST /api/v1/device/passcode/challenge` | phone (enrolled device id; no token) | a single-use challenge for a passcode check, for the device key to sign | `enrol` |
//! | `POST /api/v1/device/passcode/check` | phone (device-key signature over that challenge) | the passcode verifier: the keystore's server secret out, or a counted wrong try | `enrol` |
//! | `POST /api/v1/device/unlock/challenge` | phone (enrolled device id; no token) | a single-use challenge for redeeming an unlock code | `enrol` |
//! | `POST /api/v1/device/unlock` | phone (RA unlock code + device-key signature over that challenge) | the recovery key out, the new passcode deposit in | `enrol` |
//! | `POST /api/v1/device/challenge` | phone (enrolled device id; no token) | a single-use challenge for a device token | here |
//! | `POST /api/v1/device/token` | phone (device-key signature over that challenge) | a short-lived device token, the bearer credential of the routes below | here |
//! | `GET /api/v1/device/events` | phone (device token) | server-sent events: pending sign-in requests now and as they come; signing requests by id | `signin` |
//! | `GET /api/v1/device/requests?wait=S` | phone (device token) | long-poll fallback: the pending sign-in requests | `signin` |
//! | `POST /api/v1/device/requests/{id}/approve` | phone (device token) | the number the person typed + signature by the card's authentication key; a wrong number fails the request | `signin` |
//! | `POST /api/v1/device/requests/{id}/decline` | phone (device token) | `declined`, or `not-me` ("I didn't do this") | `signin` |
//! | `GET /api/v1/device/signing` | phone (device token) | signing requests waiting for it, in full (the event stream only names them: `signing-request`) | `signing` |
//! | `POST /api/v1/device/signing/{id}/complete` | phone (device token) | one signature per item (and items it refused) | `signing` |
//! | `POST /api/v1/device/signing/{id}/decline` | phone (device token) | `declined`, or `not-me` ("I didn't do this": the asking session ends, alert) | `signing` |
//! | `POST /api/v1/device/card-pin` | phone (device token) | set the card PIN of the active card it holds | `card` |
//! | `POST /api/v1/device/renewal/challenge` | phone (enrolled device id; no token) | a single-use challenge for a renewal, and the card's renewal window | `renewal` |
//! | `POST /api/v1/device/renewal` | phone (current authentication key's signature over that challenge) | new CSRs in, new certificates out (unconfirmed) | `renewal` |
//! | `POST /api/v1/device/renewal/confirm` | phone (new authentication key's signature) | the new certificates take over; the old ones are revoked `superseded` | `renewal` |
//! | `GET /api/v1/device/push` | phone (device token) | the server's VAPID public key (`applicationServerKey`) and whether this phone has a push subscription | `push` |
//! | `POST /api/v1/device/push/subscription` | phone (device token) | store or replace this phone's one Web Push subscription | `push` |
//! | `POST /api/v1/device/push/unsubscribe` | phone (device token) | remove this phone's Web Push subscription | `push` |
//!
//! A device token is issued only against a signature by the device key the phone registered at
//! enrolment, and a phone's request carrying one is checked by `DeviceCaller`. The workstation's
//! side of the same flows is in [`super::signin`] (sign-in), [`super::signing`] (signing) and
//! [`super::card`] (the virtual card).

mod card;
mod enrol;
mod push;
mod renewal;
mod replacement;
mod signin;

pub(crate) use renewal::{card_expired, window_of as renewal_window};
mod signing;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use tower_http::limit::RequestBodyLimitLayer;
use vsc_proto::ChallengeResponse;
use vsc_proto::errors as code;
use vsc_proto::passcode::{
    PASSCODE_CHALLENGE_PATH, PASSCODE_CHECK_PATH, UNLOCK_CHALLENGE_PATH, UNLOCK_PATH,
};
use vsc_proto::routes;
use vsc_proto::signin::{DeviceChallengeRequest, DeviceToken, DeviceTokenRequest};
use vsc_store::signin as db;

use super::signin::sha256;
use super::{ApiJson, Client, challenge};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// Every route of the phone's API. The signing answers carry batches of signatures and have
/// their own, larger body limit; the rest have the application's.
pub fn routes() -> Router<AppState> {
    let signing = Router::new()
        .route(routes::DEVICE_SIGNING, get(signing::device_pending))
        .route(routes::DEVICE_SIGNING_COMPLETE, post(signing::complete))
        .route(routes::DEVICE_SIGNING_DECLINE, post(signing::decline))
        .layer(DefaultBodyLimit::max(super::signing::MAX_SIGNING_BODY))
        .layer(RequestBodyLimitLayer::new(super::signing::MAX_SIGNING_BODY));
    Router::new()
        .route(routes::ENROL, post(enrol::enrol))
        .route(PASSCODE_CHALLENGE_PATH, post(enrol::passcode_challenge))
        .route(PASSCODE_CHECK_PATH, post(enrol::passcode_check))
        .route(UNLOCK_CHALLENGE_PATH, post(enrol::unlock_challenge))
        .route(UNLOCK_PATH, post(enrol::unlock))
        .route(routes::DEVICE_CHALLENGE, post(device_challenge))
        .route(routes::DEVICE_TOKEN, post(device_token))
        .route(routes::DEVICE_EVENTS, get(signin::device_events))
        .route(routes::DEVICE_REQUESTS, get(signin::device_requests))
        .route(routes::DEVICE_REQUEST_APPROVE, post(signin::approve))
        .route(routes::DEVICE_REQUEST_DECLINE, post(signin::decline))
        .route(routes::DEVICE_CARD_PIN, post(card::set_pin))
        .route(routes::DEVICE_RENEWAL_CHALLENGE, post(renewal::challenge))
        .route(routes::DEVICE_RENEWAL, post(renewal::renew))
        .route(routes::DEVICE_RENEWAL_CONFIRM, post(renewal::confirm))
        .route(routes::DEVICE_PUSH, get(push::status))
        .route(routes::DEVICE_PUSH_SUBSCRIPTION, post(push::subscribe))
        .route(routes::DEVICE_PUSH_UNSUBSCRIBE, post(push::unsubscribe))
        .layer(RequestBodyLimitLayer::new(super::MAX_BODY))
        .merge(signing)
}

const DEVICE_TOKEN_PURPOSE: &str = "device-token";

async fn device_challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<DeviceChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    state
        .audited(
            &ctx,
            "device.challenge",
            &req.device_id,
            device_challenge_inner(&state, &ctx, &req),
        )
        .await
        .map(Json)
}

/// Whether `device_id` may be given a challenge (a device token's, a renewal's): it must be an
/// enrolled device, and asking counts against its challenge throttle; an unknown device counts
/// against the caller's address instead.
pub(super) async fn admit_challenge(
    state: &AppState,
    tx: &mut vsc_store::Tx,
    ctx: &AuditContext,
    device_id: &str,
) -> ApiResult<()> {
    if db::device_key(tx, device_id).await?.is_none() {
        state.admit_unauthenticated(ctx.source).await?;
        return Err(ApiError::not_found(
            code::UNKNOWN_DEVICE,
            "this device is not enrolled (or enrolled before device keys existed): enrol again",
        ));
    }
    state.admit_device_challenge(device_id).await
}

async fn device_challenge_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &DeviceChallengeRequest,
) -> ApiResult<ChallengeResponse> {
    let mut tx = state.write().await?;
    admit_challenge(state, &mut tx, ctx, &req.device_id).await?;
    let issued = challenge::issue(
        state,
        &mut tx,
        ctx,
        DEVICE_TOKEN_PURPOSE,
        &req.device_id,
        "device.challenge.issued",
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

async fn device_token(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<DeviceTokenRequest>,
) -> ApiResult<Json<DeviceToken>> {
    state
        .audited(
            &ctx,
            "device.token",
            &req.device_id,
            device_token_inner(&state, &ctx, &req, &headers),
        )
        .await
        .map(Json)
}

async fn device_token_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &DeviceTokenRequest,
    headers: &axum::http::HeaderMap,
) -> ApiResult<DeviceToken> {
    // The app's version, when it says (older apps do not: their enrolment's version stands).
    // Recorded, not judged, here: the routes that use the card refuse an unapproved version
    // with a message the app shows.
    let app_version = super::ra_versions::reported_app_version(headers)?;
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let now = state.now_unix();
    let mut tx = state.write().await?;
    let nonce = challenge::consume(
        &mut tx,
        &req.challenge_id,
        DEVICE_TOKEN_PURPOSE,
        &req.device_id,
        now,
    )
    .await?;
    tx.commit().await?;
    let mut tx = state.write().await?;
    let (key, uid) = db::device_key(&mut tx, &req.device_id)
        .await?
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_DEVICE, "this device is not enrolled"))?;
    let statement = vsc_proto::signin::device_token_statement(
        &req.challenge_id,
        &nonce,
        &req.device_id,
        &state.origin(),
    );
    enrol::verify_device_signature(&key, &statement, &signature)?;
    super::ra_versions::record_device_version(&mut tx, &req.device_id, app_version.as_deref(), now)
        .await?;
    // A phone whose card was moved to another phone gets no channel (card replacement).
    if let Some(moved) = vsc_store::repo::device_replaced_away(&mut tx, &req.device_id).await? {
        return Err(replacement::moved_away(&moved));
    }
    let token = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    let expires_at = state.now() + state.config().signin.device_token_ttl;
    db::insert_device_token(
        &mut tx,
        &sha256(token.as_bytes()),
        &req.device_id,
        now,
        expires_at.unix_timestamp(),
    )
    .await?;
    let actor = AuditContext {
        actor: uid,
        source: ctx.source,
    };
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "device.token.issued",
                &req.device_id,
                "",
                serde_json::json!({"app_version": app_version}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(DeviceToken {
        token: token.to_string(),
        expires_at,
    })
}

/// A phone presenting a live device token.
#[derive(Debug, Clone)]
struct DeviceCaller {
    /// The device.
    device_id: String,
    /// SHA-256 of the device token it presented.
    token_hash: Vec<u8>,
    /// Its person.
    uid: String,
    /// For the audit log.
    ctx: AuditContext,
}

impl FromRequestParts<AppState> for DeviceCaller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Client(client) = Client::from_request_parts(parts, state).await?;
        let result = device_caller(parts, state, &client).await;
        if let Err(err) = &result {
            let path = parts.uri.path().to_owned();
            state
                .audit_failure(&client, "device.session", &path, "", err)
                .await;
        }
        result
    }
}

/// Checks the device token of a phone's request.
async fn device_caller(
    parts: &Parts,
    state: &AppState,
    client: &AuditContext,
) -> ApiResult<DeviceCaller> {
    let token = super::bearer_token(&parts.headers).ok_or_else(|| {
        ApiError::unauthorized(code::DEVICE_UNAUTHENTICATED, "get a device token first")
    })?;
    let mut conn = state.store().pool().acquire().await?;
    let token_hash = sha256(token.trim().as_bytes());
    let (device_id, uid) =
        db::device_and_person_for_token(&mut conn, &token_hash, state.now_unix())
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    code::DEVICE_TOKEN_EXPIRED,
                    "the device token is unknown or expired; get a new one",
                )
            })?;
    Ok(DeviceCaller {
        ctx: AuditContext {
            actor: uid.clone(),
            source: client.source,
        },
        device_id,
        token_hash,
        uid,
    })
}

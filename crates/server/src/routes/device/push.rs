//! Web Push (issue 13): the phone app's push subscription. Sending is in [`crate::push`].
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/device/push` | phone (device token) | the server's VAPID public key (`applicationServerKey`) and whether *this* phone is subscribed (its push service's origin) |
//! | `POST /api/v1/device/push/subscription` | phone (device token) | store or replace *this* phone's one subscription: the browser's `PushSubscription.toJSON()` |
//! | `POST /api/v1/device/push/unsubscribe` | phone (device token) | remove *this* phone's subscription |
//!
//! Each route acts on the calling device only (the device is the token's, never a value in the
//! body), so one phone can neither see nor change another's subscription. The subscription is
//! checked by `vsc-webpush` (an `https:` endpoint; `p256dh` an uncompressed P-256 point; `auth`
//! 16 bytes) before anything is written; the auth secret is sealed under `master.key` and never
//! logged or audited (the audit detail names the endpoint's origin only).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use vsc_proto::errors as code;
use vsc_proto::push::PushStatus;
use vsc_store::push::{self as db, PushSubscriptionRow};
use vsc_webpush::{Subscription, SubscriptionError};

use super::DeviceCaller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /api/v1/device/push`.
pub(super) async fn status(
    State(state): State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Json<PushStatus>> {
    let mut conn = state.store().pool().acquire().await?;
    let row = db::of_device(&mut conn, &caller.device_id).await?;
    let endpoint_origin = row.and_then(|r| {
        vsc_webpush::Endpoint::parse_with(&r.endpoint, state.push().loopback())
            .ok()
            .map(|e| e.origin())
    });
    Ok(Json(PushStatus {
        application_server_key: state.push().public_key_base64url(),
        subscribed: endpoint_origin.is_some(),
        endpoint_origin,
    }))
}

const SEND_AS_MADE: &str = "send PushSubscription.toJSON() as the browser made it: {\"endpoint\": \"https://…\", \"keys\": {\"p256dh\": \"…\", \"auth\": \"…\"}}";

/// The refusal of a subscription `vsc-webpush` did not accept.
fn refusal(e: &SubscriptionError) -> ApiError {
    match e {
        SubscriptionError::EndpointNotUrl(_)
        | SubscriptionError::EndpointNotHttps(_)
        | SubscriptionError::EndpointMalformed
        | SubscriptionError::EndpointNotPublic(_) => ApiError::bad_request(
            code::PUSH_ENDPOINT_INVALID,
            format!("{e}; send the subscription exactly as the browser's push service made it"),
        ),
        // serde's message may quote a value from the body (which could be a key): left out.
        SubscriptionError::Json(_) => ApiError::bad_request(
            code::PUSH_SUBSCRIPTION_INVALID,
            format!("the body is not a push subscription; {SEND_AS_MADE}"),
        ),
        _ => ApiError::bad_request(
            code::PUSH_SUBSCRIPTION_INVALID,
            format!("{e}; {SEND_AS_MADE}"),
        ),
    }
}

/// `POST /api/v1/device/push/subscription`.
pub(super) async fn subscribe(
    State(state): State<AppState>,
    caller: DeviceCaller,
    body: Bytes,
) -> ApiResult<Json<PushStatus>> {
    state
        .audited(
            &caller.ctx,
            "device.push_subscribed",
            &caller.device_id,
            subscribe_inner(&state, &caller, &body),
        )
        .await
        .map(Json)
}

async fn subscribe_inner(
    state: &AppState,
    caller: &DeviceCaller,
    body: &[u8],
) -> ApiResult<PushStatus> {
    let text =
        std::str::from_utf8(body).map_err(|_| refusal(&SubscriptionError::Json(String::new())))?;
    let subscription =
        Subscription::from_json(text, state.push().loopback()).map_err(|e| refusal(&e))?;
    let origin = subscription.endpoint.origin();
    let auth_sealed = state.master_key().seal(
        &crate::push::auth_aad(&caller.device_id),
        subscription.auth.as_bytes(),
    )?;
    let row = PushSubscriptionRow {
        device_id: caller.device_id.clone(),
        endpoint: subscription.endpoint.url().to_string(),
        p256dh: subscription.p256dh.as_bytes().to_vec(),
        auth_sealed,
        created_at: state.now_unix(),
    };
    let mut tx = state.write().await?;
    let replaced = db::replace(&mut tx, &row).await?;
    state
        .append_audit(
            &mut tx,
            &caller.ctx.event(
                "device.push_subscribed",
                &caller.device_id,
                "",
                serde_json::json!({"endpoint_origin": origin, "replaced": replaced}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(PushStatus {
        application_server_key: state.push().public_key_base64url(),
        subscribed: true,
        endpoint_origin: Some(origin),
    })
}

/// `POST /api/v1/device/push/unsubscribe`. Removing a subscription that is not there changes
/// nothing and answers the same (`subscribed: false`), so the app may call it at any time.
pub(super) async fn unsubscribe(
    State(state): State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Json<PushStatus>> {
    state
        .audited(
            &caller.ctx,
            "device.push_unsubscribed",
            &caller.device_id,
            async {
                let mut tx = state.write().await?;
                if db::delete(&mut tx, &caller.device_id).await? {
                    state
                        .append_audit(
                            &mut tx,
                            &caller.ctx.event(
                                "device.push_unsubscribed",
                                &caller.device_id,
                                "",
                                serde_json::json!({}),
                            ),
                            state.now_ms(),
                        )
                        .await?;
                }
                tx.commit().await?;
                Ok(PushStatus {
                    application_server_key: state.push().public_key_base64url(),
                    subscribed: false,
                    endpoint_origin: None,
                })
            },
        )
        .await
        .map(Json)
}

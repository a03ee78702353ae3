//! The card PIN, set on the phone. The agent's side of the virtual card (its certificates,
//! checking the PIN, private-key operations) is in [`crate::routes::card`].
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/device/card-pin` | phone (device token) | set the card PIN |

use argon2::password_hash::{PasswordHasher, SaltString};
use axum::Json;
use axum::extract::State;
use vsc_core::CardState;
use vsc_proto::card::{SetCardPin, pin_is_well_formed};
use vsc_proto::errors as code;
use vsc_store::repo;
use vsc_store::signing as db;
use zeroize::Zeroizing;

use super::DeviceCaller;
use crate::error::{ApiError, ApiResult};
use crate::routes::ApiJson;
use crate::routes::card::pin_hasher;
use crate::state::AppState;

pub(super) async fn set_pin(
    State(state): State<AppState>,
    caller: DeviceCaller,
    ApiJson(req): ApiJson<SetCardPin>,
) -> ApiResult<Json<serde_json::Value>> {
    crate::routes::ra_versions::require_device_version(
        &state,
        &caller.ctx,
        &caller.device_id,
        "card.pin.set",
    )
    .await?;
    let pin = Zeroizing::new(req.pin);
    let result = async {
        if !pin_is_well_formed(&pin) {
            return Err(ApiError::bad_request(
                code::PIN_MALFORMED,
                "a card PIN is 6 to 8 digits",
            ));
        }
        let mut conn = state.store().pool().acquire().await?;
        let card = repo::live_cards_of(&mut conn, &caller.uid)
            .await?
            .into_iter()
            .find(|c| {
                c.device_id.as_deref() == Some(caller.device_id.as_str())
                    && c.state == CardState::Active
            })
            .ok_or_else(|| {
                ApiError::forbidden(code::CARD_NOT_ACTIVE, "this phone holds no active card")
            })?;
        drop(conn);
        let salt = SaltString::encode_b64(&state.random::<16>()?).map_err(ApiError::internal)?;
        let secret = Zeroizing::new(pin.as_bytes().to_vec());
        let hash = tokio::task::spawn_blocking(move || -> ApiResult<String> {
            Ok(pin_hasher()?
                .hash_password(&secret, &salt)
                .map_err(ApiError::internal)?
                .to_string())
        })
        .await
        .map_err(ApiError::internal)??;
        let mut tx = state.write().await?;
        db::set_card_pin(&mut tx, &card.id, &hash).await?;
        state
            .append_audit(
                &mut tx,
                &caller.ctx.event(
                    "card.pin.set",
                    &card.id,
                    &card.issued_by,
                    serde_json::json!({"uid": card.uid, "device_id": caller.device_id}),
                ),
                state.now_ms(),
            )
            .await?;
        tx.commit().await?;
        Ok(serde_json::json!({"card_id": card.id, "pin_set": true}))
    }
    .await;
    match result {
        Ok(v) => Ok(Json(v)),
        Err(err) => {
            state
                .audit_failure(&caller.ctx, "card.pin.set", &caller.uid, "", &err)
                .await;
            Err(err)
        }
    }
}

//! Approved client versions at runtime. (Being built.)

use axum::Router;
use vsc_core::{ClientFacts, PolicyError};
use vsc_proto::errors as code;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

/// Refuses an authenticator app version the server does not approve.
pub async fn check_app_version(state: &AppState, facts: &ClientFacts) -> ApiResult<()> {
    state
        .config()
        .approved_app_versions
        .check(facts)
        .map_err(|e| match e {
            PolicyError::BadVersion(_) => {
                ApiError::bad_request(code::APP_VERSION_MALFORMED, e.to_string())
            }
            PolicyError::NotApproved { .. } => {
                ApiError::forbidden(code::APP_VERSION_NOT_APPROVED, e.to_string())
            }
        })
}

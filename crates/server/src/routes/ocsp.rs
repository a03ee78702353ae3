//! The OCSP responder (RFC 6960) at `/ca/ocsp`. (Being built.)

use axum::Router;

use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

//! Organisations: list, create, session limits.

use axum::Router;

use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

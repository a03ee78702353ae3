//! Bulk issuance: CSV upload, preview, run, results CSV and activation letters.

use axum::Router;

use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

//! The audit trail, filtered by person, card, organisation, actor and time, exportable as CSV.

use axum::Router;

use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

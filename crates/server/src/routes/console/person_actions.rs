//! A person's actions: create, identity checks, positions, RA roles, cards (issue with QR and activation letter, new activation, unlock, cancel), with re-approval on the phone for destructive actions.

use axum::Router;

use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

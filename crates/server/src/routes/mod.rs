//! The HTTP surface: public CA publication, the phone's device API, and the RA API. Each
//! sub-module documents its routes.

pub mod card;
pub mod challenge;
pub mod device;
pub mod public;
pub mod ra;
pub mod session;
pub mod signin;
pub mod signing;
pub mod views;
pub mod workstation;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use vsc_proto::errors as code;

use crate::error::ApiError;
use crate::state::{AppState, AuditContext};

/// Largest request body accepted (CSRs and JSON are small).
const MAX_BODY: usize = 64 * 1024;

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(public::routes())
        .merge(device::routes())
        .merge(ra::routes())
        .merge(signin::routes())
        .merge(session::routes())
        .merge(card::routes())
        .merge(workstation::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        // Batches of prescriptions are larger; those routes carry their own limit.
        .merge(signing::routes())
        .merge(crate::metrics::routes())
        .layer(TraceLayer::new_for_http())
        // `Router::layer` wraps each route, so this sees the route template a request matched.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// A JSON body whose rejection is an [`ApiError`] with code `invalid_request`, so clients get
/// the same error shape for a malformed body as for every other refusal.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let path = req.uri().path().to_owned();
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let err = ApiError::bad_request(
                    code::INVALID_REQUEST,
                    format!(
                        "the request body is not what this endpoint expects: {}",
                        without_quoted_values(&rejection.body_text())
                    ),
                );
                let ctx = AuditContext {
                    actor: "anonymous".into(),
                    source: ip,
                };
                state
                    .audit_failure(&ctx, "api.request", &path, "", &err)
                    .await;
                Err(err)
            }
        }
    }
}

/// A JSON error message without the values it quotes: serde quotes the offending value between
/// backticks ("invalid type: integer `123456`"), and that value may be a PIN, a code or a key;
/// the message goes back to the client and into the audit log.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for part in message.split('`') {
        out.push_str(if inside { "…" } else { part });
        inside = !inside;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values_leave_error_messages() {
        assert_eq!(
            super::without_quoted_values(
                "Failed to deserialize: pin: invalid type: integer `123456`, expected a string"
            ),
            "Failed to deserialize: pin: invalid type: integer …, expected a string"
        );
        assert_eq!(super::without_quoted_values("no quotes"), "no quotes");
    }
}

/// The bearer token of a request (`Authorization: Bearer …`), trimmed; `None` when absent.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's address, as an anonymous audit context.
#[derive(Debug, Clone)]
pub struct Client(pub AuditContext);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        Ok(Client(AuditContext {
            actor: "anonymous".into(),
            source: ip,
        }))
    }
}

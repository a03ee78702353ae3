//! Public, unauthenticated routes: health, server facts, the CA certificates and CRLs at stable
//! URLs, and the landing pages a person reaches by opening an activation link in a browser.
//!
//! | route | content |
//! |---|---|
//! | `GET /healthz` | `ok` |
//! | `GET /api/v1/info` | [`vsc_proto::ServerInfo`] |
//! | `GET /ca/root.pem`, `/ca/issuing.pem`, `/ca/chain.pem` | CA certificates (PEM) |
//! | `GET /ca/issuing.crl`, `/ca/root.crl` | CRLs (DER, `application/pkix-crl`) |
//! | `GET /activate`, `/unlock` | a page telling the person to open the link on their phone |
//!
//! `GET /readyz` (public) and `GET /metrics` (loopback and an optional token) are in
//! [`crate::metrics`].

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::{Organisation, ServerInfo};
use vsc_store::repo;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::HEALTHZ, get(|| async { "ok" }))
        .route(routes::INFO, get(info))
        .route(routes::CA_ROOT_PEM, get(root_pem))
        .route(routes::CA_ISSUING_PEM, get(issuing_pem))
        .route(routes::CA_CHAIN_PEM, get(chain_pem))
        .route(routes::CA_ISSUING_CRL, get(issuing_crl))
        .route(routes::CA_ROOT_CRL, get(root_crl))
        .route(routes::ACTIVATE_PAGE, get(landing))
        .route(routes::UNLOCK_PAGE, get(landing))
}

async fn info(State(state): State<AppState>) -> ApiResult<Json<ServerInfo>> {
    let mut conn = state.store().pool().acquire().await?;
    let national = repo::national_organisation(&mut conn)
        .await?
        .ok_or_else(|| ApiError::internal("no national organisation"))?;
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        public_url: state.public_url().to_string(),
        ca_fingerprint: state.ca().root_fingerprint().to_colon_hex(),
        national_organisation: Organisation {
            ods_code: national.ods_code,
            name: national.name,
            national: true,
        },
        approved_app_versions: super::ra_versions::policy(&state)
            .await?
            .describe(vsc_core::ClientKind::Authenticator, None),
    }))
}

fn pem(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/x-pem-file")], body).into_response()
}

async fn root_pem(State(state): State<AppState>) -> Response {
    pem(state.ca().root_pem())
}

async fn issuing_pem(State(state): State<AppState>) -> Response {
    pem(state.ca().issuing_pem())
}

async fn chain_pem(State(state): State<AppState>) -> Response {
    pem(format!(
        "{}{}",
        state.ca().issuing_pem(),
        state.ca().root_pem()
    ))
}

async fn crl(state: &AppState, issuer: &str) -> ApiResult<Response> {
    let mut conn = state.store().pool().acquire().await?;
    let crl = repo::crl(&mut conn, issuer).await?.ok_or_else(|| {
        ApiError::not_found(code::CRL_NOT_PUBLISHED, "no CRL has been published yet")
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        crl.der,
    )
        .into_response())
}

async fn issuing_crl(State(state): State<AppState>) -> ApiResult<Response> {
    crl(&state, "issuing").await
}

async fn root_crl(State(state): State<AppState>) -> ApiResult<Response> {
    crl(&state, "root").await
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let fp = state.ca().root_fingerprint().to_colon_hex();
    Html(format!(
        "<!doctype html><html lang=en><meta charset=utf-8><title>vsc: open on your phone</title>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">\
         <h1>Open this link on your phone</h1>\
         <p>This link activates or unlocks a virtual smartcard. Scan the QR code your RA gave you \
         with the vsc authenticator app, or type the code into the app.</p>\
         <p>The app checks that it is talking to this server: its CA fingerprint is<br><code>{fp}</code></p>\
         </body></html>"
    ))
}

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
//! The activation page also offers to set the card up in this browser, in the phone web app
//! ([`super::app`]), and the unlock page to unlock a card held there. Both pages have a strict
//! Content Security Policy (their one style sheet by hash, scripts only from this server).
//!
//! `GET /readyz` (public) and `GET /metrics` (loopback and an optional token) are in
//! [`crate::metrics`].

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
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
        .route(routes::ACTIVATE_PAGE, get(activate_landing))
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

/// The unlock landing page, with a link that unlocks the card in the web app, for a card held
/// in this browser (the code and fingerprint travel in the fragment, as for activation).
async fn landing(State(state): State<AppState>) -> Response {
    landing_page(
        &state,
        "<p>Is your card in the vsc web app in this browser? Unlock it there, with the code \
         from this link filled in:</p>\
         <p><a id=\"open-app\" data-kind=\"unlock\" class=\"button\" href=\"/app/\">\
         Unlock in this browser</a></p>\
         <script src=\"/app/activate.js\"></script>",
    )
}

/// The activation landing page, with a link that sets the card up in the web app in this
/// browser. The link carries the page's fragment (code and fingerprint), which only a script
/// in the browser can read: `/app/activate.js` copies it onto the link. Without scripts the
/// link opens the app, where the person pastes the link.
async fn activate_landing(State(state): State<AppState>) -> Response {
    landing_page(
        &state,
        "<p>Is this your phone? The vsc web app can hold your card in this browser, with the \
         code from this link filled in:</p>\
         <p><a id=\"open-app\" class=\"button\" href=\"/app/\">Set up in this browser</a></p>\
         <script src=\"/app/activate.js\"></script>",
    )
}

/// The landing pages' whole style sheet, allowed by its hash in their CSP (no inline style
/// attributes, so no `'unsafe-inline'`).
const LANDING_CSS: &str = "body{font-family:sans-serif;max-width:40em;margin:2em auto;\
padding:0 1em}.button{display:inline-block;padding:.8em 1.2em;background:#005eb8;color:#fff;\
border-radius:6px;text-decoration:none;font-size:1.1em}";

/// The landing pages' Content Security Policy: their one style sheet (by hash), scripts only
/// from this server (`/app/activate.js`), nothing else; never framed. Made once.
static LANDING_CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, LANDING_CSS.as_bytes());
    format!(
        "default-src 'none'; script-src 'self'; style-src 'sha256-{}'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        B64.encode(digest.as_ref())
    )
});

/// A landing page, with `extra` (trusted markup) after its explanation.
fn landing_page(state: &AppState, extra: &str) -> Response {
    let fp = state.ca().root_fingerprint().to_colon_hex();
    let page = Html(format!(
        "<!doctype html><html lang=en><meta charset=utf-8><title>vsc: open on your phone</title>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <style>{LANDING_CSS}</style><body>\
         <h1>Open this link on your phone</h1>\
         <p>This link activates or unlocks a virtual smartcard. Scan the QR code your RA gave you \
         with the vsc authenticator app, or type the code into the app.</p>\
         {extra}\
         <p>The app checks that it is talking to this server: its CA fingerprint is<br><code>{fp}</code></p>\
         </body></html>"
    ));
    (
        [
            (header::CONTENT_SECURITY_POLICY, LANDING_CSP.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
        ],
        page,
    )
        .into_response()
}

//! The OpenID Connect provider, shaped like NHS CIS2 Authentication so that a relying party
//! written for CIS2 can point at vsc with configuration changes only. The person signs in with
//! their phone (push with number matching), exactly as at a workstation.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /.well-known/openid-configuration` | anyone | discovery (issuer = the server's public origin) |
//! | `GET /oauth2/jwks` | anyone | the provider's public keys (current and recently retired) |
//! | `GET`/`POST /oauth2/authorize` | a browser sent by a registered client | authorization code flow: validates the request, then single sign-on or the sign-in page |
//! | `GET`/`POST /oauth2/signin/{flow}` | the browser that started the flow (flow cookie) | the sign-in page: UID form, the number to type on the phone, role selection |
//! | `GET /oauth2/signin/{flow}/status` | the same browser | JSON: the phone request's state (long poll) |
//! | `POST /oauth2/signin/{flow}/continue`, `…/role` | the same browser (CSRF token) | finish: create the sign-in session, choose a role, redirect to the client with a code |
//! | `POST /oauth2/token` | a registered client (its secret, its signed assertion, or PKCE for public clients) | authorization code and refresh token grants |
//! | `GET`/`POST /oauth2/userinfo` | bearer access token | the CIS2 claims the token's scopes allow |
//! | `GET`/`POST /oauth2/logout` | a browser (with `id_token_hint`, or confirming on the page) | ends the sign-in session, revokes its tokens, back-channel logout to the clients that had them |
//!
//! The flow (an authorization request waiting for its person), the grants an authorization
//! code opens and the tokens they carry live in the database (`vsc_store::oidc`), so every
//! node of an instance serves every step. Access and refresh tokens are opaque: 256 random
//! bits, stored as their SHA-256; they die with the sign-in session.

pub mod authorize;
pub mod claims;
pub mod keys;
pub mod logout;
pub mod pages;
pub mod token;
pub mod userinfo;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use vsc_proto::routes;

use crate::error::ApiResult;
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::OIDC_DISCOVERY, get(discovery))
        .route(routes::OIDC_JWKS, get(jwks))
        .route(
            routes::OIDC_AUTHORIZE,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(routes::OIDC_TOKEN, axum::routing::post(token::token))
        .route(
            routes::OIDC_USERINFO,
            get(userinfo::userinfo_get).post(userinfo::userinfo_post),
        )
        .route(
            routes::OIDC_LOGOUT,
            get(logout::logout_get).post(logout::logout_post),
        )
        .merge(pages::routes())
}

/// OAuth 2.0 and OpenID Connect error codes (RFC 6749 §4.1.2.1 and §5.2, OpenID Connect Core
/// §3.1.2.6, RFC 6750 §3.1), which relying parties compare against: protocol names, not vsc's.
pub mod oauth_error {
    /// Malformed or missing parameter.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// Client authentication failed.
    pub const INVALID_CLIENT: &str = "invalid_client";
    /// The code or refresh token is invalid, expired, revoked or used.
    pub const INVALID_GRANT: &str = "invalid_grant";
    /// The client may not use this grant type.
    pub const UNAUTHORIZED_CLIENT: &str = "unauthorized_client";
    /// Grant type not supported.
    pub const UNSUPPORTED_GRANT_TYPE: &str = "unsupported_grant_type";
    /// Response type not supported.
    pub const UNSUPPORTED_RESPONSE_TYPE: &str = "unsupported_response_type";
    /// Scope missing `openid` or malformed.
    pub const INVALID_SCOPE: &str = "invalid_scope";
    /// The person declined or the request was refused.
    pub const ACCESS_DENIED: &str = "access_denied";
    /// `prompt=none` without a usable sign-in session.
    pub const LOGIN_REQUIRED: &str = "login_required";
    /// `prompt=none` but the person would have to choose something.
    pub const INTERACTION_REQUIRED: &str = "interaction_required";
    /// `request` objects are not supported.
    pub const REQUEST_NOT_SUPPORTED: &str = "request_not_supported";
    /// `request_uri` is not supported.
    pub const REQUEST_URI_NOT_SUPPORTED: &str = "request_uri_not_supported";
    /// No requested `acr` can be met (the CIS2 error name).
    pub const UNMET_AUTHENTICATION_REQUIREMENTS: &str = "unmet_authentication_requirements";
    /// Bearer token invalid (RFC 6750).
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// Server error.
    pub const SERVER_ERROR: &str = "server_error";
}

/// An error of the token or userinfo endpoint, as RFC 6749 §5.2 shapes it.
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// One of [`oauth_error`].
    pub error: &'static str,
    /// For the client's developer.
    pub description: String,
    /// `WWW-Authenticate` challenge scheme (`Basic` for client authentication, `Bearer` for
    /// userinfo).
    pub challenge: Option<&'static str>,
}

impl OAuthError {
    /// 400 with `error`.
    pub fn bad(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            challenge: None,
        }
    }
    /// 401 `invalid_client`.
    pub fn client(description: impl Into<String>, basic: bool) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: oauth_error::INVALID_CLIENT,
            description: description.into(),
            challenge: basic.then_some("Basic"),
        }
    }
    /// 401 `invalid_token` for a bearer token.
    pub fn token(description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: oauth_error::INVALID_TOKEN,
            description: description.into(),
            challenge: Some("Bearer"),
        }
    }
}

impl From<crate::error::ApiError> for OAuthError {
    fn from(e: crate::error::ApiError) -> OAuthError {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: oauth_error::SERVER_ERROR,
            description: e.message,
            challenge: None,
        }
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> OAuthError {
        OAuthError::from(crate::error::ApiError::from(e))
    }
}

impl From<vsc_store::StoreError> for OAuthError {
    fn from(e: vsc_store::StoreError) -> OAuthError {
        OAuthError::from(crate::error::ApiError::from(e))
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            no_store(),
            Json(serde_json::json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        if let Some(scheme) = self.challenge {
            let value = if scheme == "Bearer" && self.error == oauth_error::INVALID_REQUEST {
                // No credentials at all: RFC 6750 §3.1 asks for the bare challenge.
                "Bearer realm=\"vsc\"".to_owned()
            } else if scheme == "Bearer" {
                format!(
                    "Bearer realm=\"vsc\", error=\"{}\", error_description=\"{}\"",
                    self.error,
                    self.description.replace(['"', '\\'], "'")
                )
            } else {
                format!("{scheme} realm=\"vsc\"")
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for every answer that carries a token or
/// personal data.
pub fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// The scopes the provider knows (CIS2's names); others are ignored.
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "nhsperson",
    "nationalrbacaccess",
    "associatedorgs",
    "selectedrole",
    "professionalmemberships",
    "organisationalmemberships",
];

/// The name of the single sign-on cookie. `__Host-`: Secure, Path=/, no Domain, so no other
/// host and no plain-HTTP page can set or read it.
pub const SSO_COOKIE: &str = "__Host-vsc-sso";

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value for a `__Host-` cookie (Secure, HttpOnly, SameSite=Lax, Path=/);
/// `max_age` `Some(0)` deletes it, `None` makes it last until the browser closes.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("__Host-vsc-invalid=; Path=/; Secure; Max-Age=0"))
}

async fn discovery(State(state): State<AppState>) -> ApiResult<Response> {
    let issuer = state.issuer();
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", routes::OIDC_AUTHORIZE),
        "token_endpoint": format!("{issuer}{}", routes::OIDC_TOKEN),
        "userinfo_endpoint": format!("{issuer}{}", routes::OIDC_USERINFO),
        "jwks_uri": format!("{issuer}{}", routes::OIDC_JWKS),
        "end_session_endpoint": format!("{issuer}{}", routes::OIDC_LOGOUT),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "RS512", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS512", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": claims::CLAIMS_SUPPORTED,
        "acr_values_supported": claims::ACR_VALUES_SUPPORTED,
        "prompt_values_supported": ["none", "login"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "ui_locales_supported": ["en-GB"],
    });
    Ok((
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        )],
        Json(doc),
    )
        .into_response())
}

async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = keys::published(&state).await?;
    Ok((
        // Short enough that a rotated key reaches relying parties well within the grace period.
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(serde_json::json!({ "keys": keys })),
    )
        .into_response())
}

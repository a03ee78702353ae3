//! Wire types of the OpenID Connect provider's administration: registering, listing,
//! disabling clients and rotating their secrets (`/api/v1/ra/clients`, RA Managers at the
//! national organisation and Service Managers). The provider's own endpoints speak OAuth 2.0 /
//! OpenID Connect and their types live in the server.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How a client authenticates at the token endpoint.
pub mod auth_method {
    /// Public client: no secret, PKCE S256 required.
    pub const NONE: &str = "none";
    /// HTTP Basic with the client id and secret.
    pub const CLIENT_SECRET_BASIC: &str = "client_secret_basic";
    /// `client_id` and `client_secret` in the form body.
    pub const CLIENT_SECRET_POST: &str = "client_secret_post";
    /// A JWT signed with the client's key (RFC 7523).
    pub const PRIVATE_KEY_JWT: &str = "private_key_jwt";
    /// Every method.
    pub const ALL: &[&str] = &[
        NONE,
        CLIENT_SECRET_BASIC,
        CLIENT_SECRET_POST,
        PRIVATE_KEY_JWT,
    ];
}

/// `POST /api/v1/ra/clients`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateClient {
    /// The name people see on the sign-in page and on their phone (1 to 100 printable characters).
    pub name: String,
    /// Redirect URIs (exact; `https`, or `http` on loopback where any port is accepted).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE S256 required). Implies `auth_method` `none`.
    #[serde(default)]
    pub public: bool,
    /// One of [`auth_method`] (default `client_secret_basic`, or `none` for public clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// The client's public keys (a JWK set) for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK set (https), instead of `jwks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// OpenID Back-Channel Logout endpoint (https, or http on loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// `RS256` (default), `RS512` or `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_alg: Option<String>,
}

/// A registered client as administrators see it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientInfo {
    /// `NNNNNNNNNNNN.apps.vsc`.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Public client.
    pub public: bool,
    /// Token endpoint authentication method.
    pub auth_method: String,
    /// Whether a JWK set is registered inline.
    pub has_jwks: bool,
    /// Registered JWK set URL.
    pub jwks_uri: Option<String>,
    /// Back-channel logout endpoint.
    pub backchannel_logout_uri: Option<String>,
    /// ID token algorithm.
    pub id_token_alg: String,
    /// The organisation of the RA who registered it.
    pub organisation: String,
    /// UID of the RA who registered it.
    pub created_by: String,
    /// Registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Disabled, if it is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

/// Answer to [`CreateClient`] and to a secret rotation: the client and, for secret clients,
/// the secret (shown once, stored hashed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientCreated {
    /// The client.
    pub client: ClientInfo,
    /// The secret, for `client_secret_basic` / `client_secret_post` clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The provider's issuer (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
}

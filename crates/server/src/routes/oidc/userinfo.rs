//! The UserInfo endpoint (OpenID Connect Core §5.3): the CIS2 claims the access token's scopes
//! allow, for `GET` and `POST`, with the token in the `Authorization: Bearer` header or (POST)
//! the `access_token` form field (RFC 6750 §2.2).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use vsc_store::oidc as db;

use super::authorize::parse_params;
use super::{OAuthError, claims, no_store, oauth_error};
use crate::routes::signin::sha256;
use crate::state::AppState;

/// `GET /oauth2/userinfo`.
pub async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(userinfo(&state, bearer(&headers)).await)
}

/// `POST /oauth2/userinfo`.
pub async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let from_body = parse_params(&body)
        .ok()
        .and_then(|f| f.get("access_token").cloned());
    let token = match (bearer(&headers), from_body) {
        (Some(_), Some(_)) => {
            return OAuthError::bad(
                oauth_error::INVALID_REQUEST,
                "send the access token once, in the header or in the body",
            )
            .into_response();
        }
        (Some(h), None) => Some(h),
        (None, b) => b,
    };
    respond(userinfo(&state, token).await)
}

fn respond(r: Result<Value, OAuthError>) -> Response {
    match r {
        Ok(v) => (no_store(), Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn userinfo(state: &AppState, token: Option<String>) -> Result<Value, OAuthError> {
    let Some(token) = token else {
        let mut e = OAuthError::token("send the access token as Authorization: Bearer");
        e.error = oauth_error::INVALID_REQUEST;
        return Err(e);
    };
    let mut conn = state.store().pool().acquire().await?;
    let t = db::token(&mut conn, &sha256(token.as_bytes()))
        .await?
        .filter(|t| t.kind == "access")
        .ok_or_else(|| OAuthError::token("unknown access token"))?;
    let now = state.now_unix();
    if t.revoked_at.is_some() {
        return Err(OAuthError::token("the access token was revoked"));
    }
    if t.expires_at <= now {
        return Err(OAuthError::token("the access token has expired"));
    }
    // An idle session is over too (as at the token endpoint and for single sign-on).
    if t.session_ended_at.is_some()
        || t.session_expires_at <= now
        || t.session_last_used + t.session_idle_seconds <= now
    {
        return Err(OAuthError::token("the sign-in session has ended"));
    }
    // A disabled client's tokens are refused (as at the token endpoint).
    let client = vsc_store::oidc_clients::client(&mut conn, &t.client_id).await?;
    if client.is_none_or(|c| c.disabled_at.is_some()) {
        return Err(OAuthError::token(
            "the client that holds this token is disabled",
        ));
    }
    let scopes: Vec<String> = t
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let c = claims::userinfo_claims(&mut conn, &t.uid, &scopes, t.position_id.as_deref()).await?;
    Ok(Value::Object(c))
}

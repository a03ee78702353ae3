//! The token endpoint (RFC 6749 §3.2, OpenID Connect Core §3.1.3): client authentication,
//! the `authorization_code` grant (single-use codes, PKCE, a second use revokes what the first
//! issued) and the `refresh_token` grant (rotation: each refresh token works once, and a replay
//! revokes the grant). Tokens never outlive the sign-in session.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use vsc_oidc::jose::{Alg, Jwk, JwkSet};
use vsc_proto::oidc::auth_method;
use vsc_proto::routes;
use vsc_store::oidc::{self as db, GrantRow};
use vsc_store::oidc_clients::{self, ClientRow};
use vsc_store::signin::{self as signin_db, SessionRow};

use super::authorize::parse_params;
use super::{OAuthError, claims, keys, no_store, oauth_error};
use crate::error::ApiError;
use crate::routes::Client;
use crate::routes::signin::sha256;
use crate::state::{AppState, AuditContext};

/// `client_assertion_type` of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest JWK set fetched from a client's `jwks_uri`.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// `POST /oauth2/token`.
pub async fn token(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    match token_inner(&state, &ctx, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(error = %e.description, "token endpoint failed");
            }
            e.into_response()
        }
    }
}

async fn token_inner(
    state: &AppState,
    ctx: &AuditContext,
    headers: &HeaderMap,
    body: &str,
) -> Result<Response, OAuthError> {
    let form_type_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type_ok {
        return Err(OAuthError::bad(
            oauth_error::INVALID_REQUEST,
            "send the token request as application/x-www-form-urlencoded",
        ));
    }
    let form = parse_params(body).map_err(|e| OAuthError::bad(oauth_error::INVALID_REQUEST, e))?;
    let client = authenticate(state, headers, &form).await?;
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(state, ctx, &client, &form).await,
        Some("refresh_token") => refresh_grant(state, ctx, &client, &form).await,
        Some(other) => Err(OAuthError::bad(
            oauth_error::UNSUPPORTED_GRANT_TYPE,
            format!(
                "grant_type {other:?} is not supported: use authorization_code or refresh_token"
            ),
        )),
        None => Err(OAuthError::bad(
            oauth_error::INVALID_REQUEST,
            "grant_type is missing",
        )),
    }
}

/// `client_id` and `client_secret` from HTTP Basic (each form-urlencoded, RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or("");
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Ok(None);
    };
    let bad = || {
        OAuthError::client(
            "the Authorization header is not valid HTTP Basic credentials",
            true,
        )
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// The `iss` of a client assertion, read before its signature is checked (only to find whose
/// keys to check it with).
fn unverified_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

async fn client_by_id(
    state: &AppState,
    client_id: &str,
    basic: bool,
) -> Result<ClientRow, OAuthError> {
    let mut conn = state.store().pool().acquire().await?;
    match oidc_clients::client(&mut conn, client_id).await? {
        Some(c) if c.disabled_at.is_none() => Ok(c),
        Some(_) => Err(OAuthError::client("this client is disabled", basic)),
        None => Err(OAuthError::client("unknown client", basic)),
    }
}

/// Authenticates the client by the one method it was registered with.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientRow, OAuthError> {
    let basic = basic_credentials(headers)?;
    let post_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let used = [basic.is_some(), post_secret.is_some(), assertion.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if used > 1 {
        return Err(OAuthError::bad(
            oauth_error::INVALID_REQUEST,
            "use exactly one client authentication method",
        ));
    }
    let form_id = form.get("client_id").map(String::as_str);
    if let Some((id, secret)) = basic {
        if form_id.is_some_and(|f| f != id) {
            return Err(OAuthError::client(
                "client_id differs from the Basic credentials",
                true,
            ));
        }
        let client = client_by_id(state, &id, true).await?;
        check_secret(&client, auth_method::CLIENT_SECRET_BASIC, &secret, true)?;
        return Ok(client);
    }
    if let Some(secret) = post_secret {
        let id = form_id.ok_or_else(|| OAuthError::client("client_id is missing", false))?;
        let client = client_by_id(state, id, false).await?;
        check_secret(&client, auth_method::CLIENT_SECRET_POST, secret, false)?;
        return Ok(client);
    }
    if let Some(assertion) = assertion {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(OAuthError::client(
                format!("client_assertion_type must be {JWT_BEARER}"),
                false,
            ));
        }
        let issuer = unverified_issuer(assertion).ok_or_else(|| {
            OAuthError::client("the client assertion is not a JWT with an iss", false)
        })?;
        if form_id.is_some_and(|f| f != issuer) {
            return Err(OAuthError::client(
                "client_id differs from the assertion's iss",
                false,
            ));
        }
        let client = client_by_id(state, &issuer, false).await?;
        if client.auth_method != auth_method::PRIVATE_KEY_JWT {
            return Err(OAuthError::client(
                format!(
                    "this client authenticates with {}, not private_key_jwt",
                    client.auth_method
                ),
                false,
            ));
        }
        let keys = client_keys(&client).await?;
        let issuer_url = state.issuer();
        let token_endpoint = format!("{issuer_url}{}", routes::OIDC_TOKEN);
        let now = state.now_unix();
        let checked = vsc_oidc::assertion::verify_client_assertion(
            assertion,
            &client.client_id,
            &[token_endpoint.as_str(), issuer_url.as_str()],
            &keys,
            now,
        )
        .map_err(|e| {
            OAuthError::client(format!("the client assertion is not valid: {e}"), false)
        })?;
        let mut tx = state.write().await?;
        let fresh =
            db::spend_assertion_id(&mut tx, &client.client_id, &checked.jti, checked.exp, now)
                .await?;
        tx.commit().await?;
        if !fresh {
            return Err(OAuthError::client(
                "this client assertion was used before (its jti is single use): sign a new one",
                false,
            ));
        }
        return Ok(client);
    }
    // No credentials: only a public client, which proves itself with PKCE at the code grant.
    let id = form_id
        .ok_or_else(|| OAuthError::client("no client authentication and no client_id", false))?;
    let client = client_by_id(state, id, false).await?;
    if !client.public_client || client.auth_method != auth_method::NONE {
        return Err(OAuthError::client(
            format!("this client must authenticate with {}", client.auth_method),
            false,
        ));
    }
    Ok(client)
}

fn check_secret(
    client: &ClientRow,
    method: &str,
    secret: &str,
    basic: bool,
) -> Result<(), OAuthError> {
    if client.auth_method != method {
        return Err(OAuthError::client(
            format!(
                "this client authenticates with {}, not {method}",
                client.auth_method
            ),
            basic,
        ));
    }
    let ok = client
        .secret_hash
        .as_ref()
        .is_some_and(|h| bool::from(sha256(secret.as_bytes()).ct_eq(h)));
    if !ok {
        return Err(OAuthError::client("the client secret is wrong", basic));
    }
    Ok(())
}

/// The client's registered keys: inline, or fetched from its `jwks_uri`.
async fn client_keys(client: &ClientRow) -> Result<Vec<Jwk>, OAuthError> {
    if let Some(jwks) = &client.jwks {
        let set: JwkSet = serde_json::from_str(jwks).map_err(ApiError::internal)?;
        return Ok(set.keys);
    }
    let Some(uri) = &client.jwks_uri else {
        return Err(OAuthError::client(
            "this client has no registered keys",
            false,
        ));
    };
    let fetch = async {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let body = http
            .get(uri)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok::<_, reqwest::Error>(body)
    };
    let body = fetch.await.map_err(|e| {
        OAuthError::client(
            format!("the client's jwks_uri could not be fetched: {e}"),
            false,
        )
    })?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(OAuthError::client(
            "the client's JWK set is too large",
            false,
        ));
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::client(
            format!("the client's jwks_uri is not a JWK set: {e}"),
            false,
        )
    })?;
    Ok(set.keys)
}

/// The key that signs this client's ID tokens (its registered algorithm, RS256 by default).
async fn id_token_key(
    state: &AppState,
    client: &ClientRow,
) -> Result<std::sync::Arc<vsc_oidc::jose::SigningKey>, OAuthError> {
    let alg: Alg = client.id_token_alg.parse().unwrap_or(Alg::RS256);
    Ok(keys::signing_key(state, alg).await?)
}

fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::bad(oauth_error::INVALID_GRANT, description)
}

/// The live session a grant belongs to (`idle` also checks the idle timeout).
async fn live_session(
    state: &AppState,
    session_id: &str,
    idle: bool,
) -> Result<SessionRow, OAuthError> {
    let mut conn = state.store().pool().acquire().await?;
    let s = db::session(&mut conn, session_id)
        .await?
        .ok_or_else(|| invalid_grant("the sign-in session is gone"))?;
    let now = state.now_unix();
    if s.ended_at.is_some() || s.expires_at <= now || (idle && s.last_used + s.idle_seconds <= now)
    {
        return Err(invalid_grant(
            "the sign-in session has ended: sign in again",
        ));
    }
    Ok(s)
}

async fn code_grant(
    state: &AppState,
    ctx: &AuditContext,
    client: &ClientRow,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::bad(oauth_error::INVALID_REQUEST, "code is missing"))?;
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::bad(oauth_error::INVALID_REQUEST, "redirect_uri is missing"))?;
    let mut conn = state.store().pool().acquire().await?;
    let grant = db::grant_by_code(&mut conn, &sha256(code.as_bytes()))
        .await?
        .ok_or_else(|| invalid_grant("unknown authorization code"))?;
    drop(conn);
    if grant.client_id != client.client_id {
        return Err(invalid_grant("this code was issued to another client"));
    }
    let now = state.now_unix();
    if grant.code_used_at.is_some() {
        revoke_replayed(state, ctx, &grant, "oidc.code.replayed").await?;
        return Err(invalid_grant(
            "this code was already used; every token issued for it is now revoked",
        ));
    }
    if grant.revoked_at.is_some() {
        return Err(invalid_grant("this code was revoked"));
    }
    if grant.code_expires_at <= now {
        return Err(invalid_grant(
            "this code has expired (codes live 60 seconds)",
        ));
    }
    if &grant.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the one the code was sent to",
        ));
    }
    match (&grant.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !vsc_oidc::pkce::verify_s256(verifier, challenge) {
                return Err(invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => {
            return Err(invalid_grant(
                "code_verifier is missing (the request used PKCE)",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid_grant(
                "code_verifier was sent but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let session = live_session(state, &grant.session_id, false).await?;
    // Before the write transaction: loading keys may itself write (a first key, a rotation).
    let key = id_token_key(state, client).await?;
    let mut tx = state.write().await?;
    if !db::redeem_code(&mut tx, &grant.id, now).await? {
        drop(tx);
        // Another request redeemed it between our read and this write: a replay.
        revoke_replayed(state, ctx, &grant, "oidc.code.replayed").await?;
        return Err(invalid_grant(
            "this code was already used; every token issued for it is now revoked",
        ));
    }
    let issued = issue_tokens(
        state,
        &mut tx,
        client,
        &grant,
        &session,
        grant.nonce.as_deref(),
        &key,
    )
    .await?;
    let actor = AuditContext {
        actor: session.uid.clone(),
        source: ctx.source,
    };
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "oidc.token.issued",
                &session.uid,
                &client.ods_code,
                json!({"client_id": client.client_id, "grant_id": grant.id, "grant_type": "authorization_code", "session_id": session.id}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok((no_store(), Json(issued)).into_response())
}

async fn revoke_replayed(
    state: &AppState,
    ctx: &AuditContext,
    grant: &GrantRow,
    action: &str,
) -> Result<(), OAuthError> {
    let mut tx = state.write().await?;
    let revoked = db::revoke_grant(&mut tx, &grant.id, state.now_unix()).await?;
    state
        .append_audit(
            &mut tx,
            &ctx.event(
                action,
                &grant.client_id,
                "",
                json!({"grant_id": grant.id, "session_id": grant.session_id, "revoked": revoked}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Access token, refresh token and ID token for a grant, written in `tx`.
async fn issue_tokens(
    state: &AppState,
    tx: &mut vsc_store::Tx,
    client: &ClientRow,
    grant: &GrantRow,
    session: &SessionRow,
    nonce: Option<&str>,
    key: &vsc_oidc::jose::SigningKey,
) -> Result<Value, OAuthError> {
    let now = state.now_unix();
    let cfg = &state.config().oidc;
    let access = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    let refresh = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    let access_expires = (now + cfg.access_token_ttl.whole_seconds()).min(session.expires_at);
    db::insert_token(
        tx,
        &sha256(access.as_bytes()),
        &grant.id,
        "access",
        now,
        access_expires,
    )
    .await?;
    // A refresh token dies with the sign-in session.
    db::insert_token(
        tx,
        &sha256(refresh.as_bytes()),
        &grant.id,
        "refresh",
        now,
        session.expires_at,
    )
    .await?;
    let alg = key.alg();
    let scopes: Vec<String> = grant
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut id =
        claims::id_token_claims(tx, &session.uid, &scopes, grant.position_id.as_deref()).await?;
    let issuer = state.issuer();
    for (k, v) in [
        ("iss", json!(issuer)),
        ("sub", json!(session.uid)),
        ("aud", json!(client.client_id)),
        ("azp", json!(client.client_id)),
        ("iat", json!(now)),
        ("exp", json!(now + cfg.id_token_ttl.whole_seconds())),
        ("auth_time", json!(session.auth_time)),
        ("sid", json!(session.id)),
        ("acr", json!(grant.acr)),
        ("amr", json!(claims::AMR)),
        ("at_hash", json!(vsc_oidc::jose::half_hash(alg, &access))),
    ] {
        id.insert(k.into(), v);
    }
    if let Some(n) = nonce {
        id.insert("nonce".into(), json!(n));
    }
    let id_token = key
        .sign_jwt(&Value::Object(id), Some("JWT"))
        .map_err(ApiError::internal)?;
    Ok(json!({
        "access_token": access.as_str(),
        "token_type": "Bearer",
        "expires_in": access_expires - now,
        "refresh_token": refresh.as_str(),
        "id_token": id_token,
        "scope": grant.scope,
    }))
}

async fn refresh_grant(
    state: &AppState,
    ctx: &AuditContext,
    client: &ClientRow,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::bad(oauth_error::INVALID_REQUEST, "refresh_token is missing"))?;
    let hash = sha256(presented.as_bytes());
    let mut conn = state.store().pool().acquire().await?;
    let t = db::token(&mut conn, &hash)
        .await?
        .filter(|t| t.kind == "refresh")
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    let grant = db::grant(&mut conn, &t.grant_id)
        .await?
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    drop(conn);
    if t.client_id != client.client_id {
        return Err(invalid_grant(
            "this refresh token was issued to another client",
        ));
    }
    if t.revoked_at.is_some() {
        return Err(invalid_grant("this refresh token was revoked"));
    }
    if t.used_at.is_some() {
        revoke_replayed(state, ctx, &grant, "oidc.refresh.replayed").await?;
        return Err(invalid_grant(
            "this refresh token was already used (they rotate); every token of this grant is now revoked",
        ));
    }
    if let Some(scope) = form.get("scope") {
        let granted: Vec<&str> = grant.scope.split(' ').collect();
        if scope
            .split_ascii_whitespace()
            .any(|s| !granted.contains(&s))
        {
            return Err(OAuthError::bad(
                oauth_error::INVALID_SCOPE,
                "a refresh cannot add scopes",
            ));
        }
    }
    let session = live_session(state, &t.session_id, true).await?;
    let key = id_token_key(state, client).await?;
    let now = state.now_unix();
    let mut tx = state.write().await?;
    if !db::use_refresh_token(&mut tx, &hash, now).await? {
        drop(tx);
        revoke_replayed(state, ctx, &grant, "oidc.refresh.replayed").await?;
        return Err(invalid_grant(
            "this refresh token was already used or has expired",
        ));
    }
    signin_db::touch_session(&mut tx, &session.id, now).await?;
    let issued = issue_tokens(state, &mut tx, client, &grant, &session, None, &key).await?;
    let actor = AuditContext {
        actor: session.uid.clone(),
        source: ctx.source,
    };
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "oidc.token.refreshed",
                &session.uid,
                &client.ods_code,
                json!({"client_id": client.client_id, "grant_id": grant.id, "session_id": session.id}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok((no_store(), Json(issued)).into_response())
}

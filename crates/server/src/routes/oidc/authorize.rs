//! The authorization endpoint (OpenID Connect Core §3.1.2): validates an authorization request,
//! answers from the browser's sign-in session when it has a usable one (single sign-on), and
//! otherwise starts a flow on the sign-in page.
//!
//! Errors about the client or the redirect URI are shown on an error page (redirecting would
//! hand the browser to an address nobody registered); every other error goes back to the client
//! as `error`, `error_description`, `state` and `iss` on the redirect URI (RFC 6749 §4.1.2.1,
//! RFC 9207).

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use vsc_core::Uid;
use vsc_proto::routes;
use vsc_store::oidc as db;
use vsc_store::oidc_clients::{self, ClientRow};
use vsc_store::signin::{self as signin_db, SessionRow};

use super::{SSO_COOKIE, claims, cookie, oauth_error, pages, set_cookie};
use crate::error::{ApiError, ApiResult};
use crate::routes::Client;
use crate::routes::signin::sha256;
use crate::state::{AppState, AuditContext};

/// The longest `state` and `nonce` accepted (they come back in redirects and tokens).
const MAX_ECHO: usize = 1024;

/// An authorization request as validated, kept with its flow while the person signs in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowParams {
    /// The redirect URI the client sent (matched against its registration).
    pub redirect_uri: String,
    /// Requested scopes the provider knows.
    pub scopes: Vec<String>,
    /// The client's `state`.
    pub state: Option<String>,
    /// The client's `nonce`.
    pub nonce: Option<String>,
    /// `prompt=login`: sign in again even with a session.
    pub prompt_login: bool,
    /// `prompt=none`.
    pub prompt_none: bool,
    /// `max_age` seconds.
    pub max_age: Option<i64>,
    /// `login_hint`, when it is a UID.
    pub login_hint: Option<String>,
    /// The `acr` this sign-in will carry.
    pub acr: String,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
}

/// Parameters of a form or query string; a repeated parameter is an error (RFC 6749 §3.1).
pub fn parse_params(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if v.is_empty() {
            // Empty parameters are treated as omitted (RFC 6749 §3.1).
            continue;
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the parameter {k} is repeated"));
        }
    }
    Ok(out)
}

/// `GET /oauth2/authorize`.
pub async fn authorize_get(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(&state, &ctx, &headers, query.as_deref().unwrap_or("")).await
}

/// `POST /oauth2/authorize` (form-encoded, as OpenID Connect Core §3.1.2.1 allows).
pub async fn authorize_post(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    authorize(&state, &ctx, &headers, &body).await
}

/// Where errors go once the client and its redirect URI are known.
pub struct Reply<'a> {
    /// Redirect URI.
    pub redirect_uri: &'a str,
    /// The client's `state`.
    pub state: Option<&'a str>,
    /// Issuer (RFC 9207 `iss`).
    pub issuer: String,
}

impl Reply<'_> {
    /// Redirects back to the client with an error.
    pub fn error(&self, error: &str, description: &str) -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = self.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &self.issuer));
        redirect_with(self.redirect_uri, &pairs)
    }
}

/// A 303 to `uri` with `pairs` appended to its query.
pub fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "The application's address is not valid",
            "Go back to the application and start again.",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    see_other(url.as_str())
}

/// `303 See Other` to `location`, never cached.
pub fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The client named by `client_id`, usable for new sign-ins, or the error page's words.
pub async fn usable_client(
    state: &AppState,
    client_id: Option<&str>,
) -> Result<ClientRow, Response> {
    let Some(client_id) = client_id else {
        return Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "The application did not say who it is",
            "The sign-in request has no client_id. Go back to the application; if this keeps happening, tell its support team.",
        ));
    };
    let found = match state.store().pool().acquire().await {
        Ok(mut conn) => oidc_clients::client(&mut conn, client_id).await,
        Err(e) => Err(vsc_store::StoreError::from(e)),
    };
    match found {
        Ok(Some(c)) if c.disabled_at.is_none() => Ok(c),
        Ok(Some(_)) => Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "This application has been disabled",
            "The application is no longer registered for sign-in with vsc. Tell its support team.",
        )),
        Ok(None) => Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "This application is not registered",
            "The sign-in request names a client that vsc does not know. Go back to the application; if this keeps happening, tell its support team.",
        )),
        Err(e) => Err(pages::internal_error_page(ApiError::from(e))),
    }
}

/// Whether `presented` is one of the client's redirect URIs.
pub fn redirect_allowed(client: &ClientRow, presented: &str) -> bool {
    (client.any_loopback_redirect && vsc_oidc::redirect::is_loopback_redirect(presented))
        || client
            .redirect_uris
            .iter()
            .any(|r| vsc_oidc::redirect::matches(r, presented))
}

async fn authorize(
    state: &AppState,
    ctx: &AuditContext,
    headers: &HeaderMap,
    raw: &str,
) -> Response {
    let params = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "The sign-in request is not valid",
                &format!("{e}. Go back to the application and start again."),
            );
        }
    };
    let get = |k: &str| params.get(k).map(String::as_str);
    let client = match usable_client(state, get("client_id")).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "The application did not say where to return",
            "The sign-in request has no redirect_uri. Tell the application's support team.",
        );
    };
    if !redirect_allowed(&client, redirect_uri) {
        state
            .audit_failure(
                ctx,
                "oidc.authorize",
                &client.client_id,
                &client.ods_code,
                &ApiError::bad_request(
                    vsc_proto::errors::INVALID_REQUEST,
                    format!("unregistered redirect_uri {redirect_uri:?}"),
                ),
            )
            .await;
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "The application asked to return to an address it has not registered",
            "vsc sends people back only to addresses registered for the application. Tell the application's support team.",
        );
    }
    let st = get("state").filter(|s| s.len() <= MAX_ECHO);
    let reply = Reply {
        redirect_uri,
        state: st,
        issuer: state.issuer(),
    };
    if get("state").is_some_and(|s| s.len() > MAX_ECHO) {
        return reply.error(
            oauth_error::INVALID_REQUEST,
            "state is longer than 1024 characters",
        );
    }
    let validated = match validate(&client, &params, redirect_uri) {
        Ok(v) => v,
        Err((error, description)) => return reply.error(error, &description),
    };

    // Single sign-on: a live session in this browser that meets the request.
    let session = match sso_session(state, headers).await {
        Ok(s) => s,
        Err(e) => return pages::internal_error_page(e),
    };
    let now = state.now_unix();
    let usable = session.filter(|s| {
        !validated.prompt_login
            && validated.max_age.is_none_or(|m| now - s.auth_time <= m)
            && validated
                .login_hint
                .as_deref()
                .is_none_or(|hint| hint == s.uid)
    });
    if validated.prompt_none && usable.is_none() {
        return reply.error(
            oauth_error::LOGIN_REQUIRED,
            "there is no sign-in session in this browser that meets the request",
        );
    }
    if let Some(session) = usable {
        let roles = match pages::roles_of(state, &session.uid).await {
            Ok(r) => r,
            Err(e) => return pages::internal_error_page(e),
        };
        let needs_choice = claims::has(&validated.scopes, "selectedrole") && roles.len() > 1;
        if !needs_choice {
            let position = roles
                .first()
                .filter(|_| roles.len() == 1)
                .map(|r| r.position_id.clone());
            return match issue_code(
                state,
                ctx,
                &client,
                &validated,
                &session,
                position.as_deref(),
                None,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => pages::internal_error_page(e),
            };
        }
        if validated.prompt_none {
            return reply.error(
                oauth_error::INTERACTION_REQUIRED,
                "the person holds several roles and must choose one",
            );
        }
        return match start_flow(state, &client, &validated, Some(&session.id)).await {
            Ok(r) => r,
            Err(e) => pages::internal_error_page(e),
        };
    }
    match start_flow(state, &client, &validated, None).await {
        Ok(r) => r,
        Err(e) => pages::internal_error_page(e),
    }
}

/// Checks everything but the client and the redirect URI.
fn validate(
    client: &ClientRow,
    params: &HashMap<String, String>,
    redirect_uri: &str,
) -> Result<FlowParams, (&'static str, String)> {
    let get = |k: &str| params.get(k).map(String::as_str);
    if get("request").is_some() {
        return Err((
            oauth_error::REQUEST_NOT_SUPPORTED,
            "request objects are not supported: send the parameters themselves".into(),
        ));
    }
    if get("request_uri").is_some() {
        return Err((
            oauth_error::REQUEST_URI_NOT_SUPPORTED,
            "request_uri is not supported: send the parameters themselves".into(),
        ));
    }
    match get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err((
                oauth_error::UNSUPPORTED_RESPONSE_TYPE,
                format!(
                    "response_type {other:?} is not supported: only the authorization code flow (response_type=code)"
                ),
            ));
        }
        None => {
            return Err((
                oauth_error::INVALID_REQUEST,
                "response_type is missing (use code)".into(),
            ));
        }
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return Err((
            oauth_error::INVALID_REQUEST,
            "only response_mode=query is supported".into(),
        ));
    }
    let requested: Vec<&str> = get("scope")
        .unwrap_or("")
        .split_ascii_whitespace()
        .collect();
    if !requested.contains(&"openid") {
        return Err((
            oauth_error::INVALID_SCOPE,
            "scope must include openid".into(),
        ));
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in requested {
        if super::SCOPES.contains(&s) && !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_owned());
        }
    }
    let prompts: Vec<&str> = get("prompt")
        .unwrap_or("")
        .split_ascii_whitespace()
        .collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err((
            oauth_error::INVALID_REQUEST,
            "prompt=none cannot be combined with other prompt values".into(),
        ));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(m) => Some(m.parse::<i64>().ok().filter(|m| *m >= 0).ok_or((
            oauth_error::INVALID_REQUEST,
            "max_age must be a whole number of seconds".to_owned(),
        ))?),
    };
    let nonce = get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHO) {
        return Err((
            oauth_error::INVALID_REQUEST,
            "nonce is longer than 1024 characters".into(),
        ));
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (Some(c), Some("S256")) if vsc_oidc::pkce::valid_s256_challenge(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => {
            return Err((
                oauth_error::INVALID_REQUEST,
                "code_challenge is not a base64url SHA-256 (43 characters)".into(),
            ));
        }
        (Some(_), None) | (Some(_), Some("plain")) => {
            return Err((
                oauth_error::INVALID_REQUEST,
                "only code_challenge_method=S256 is supported".into(),
            ));
        }
        _ => {
            return Err((
                oauth_error::INVALID_REQUEST,
                "code_challenge_method must come with code_challenge, and be S256".into(),
            ));
        }
    };
    if client.public_client && code_challenge.is_none() {
        return Err((
            oauth_error::INVALID_REQUEST,
            "public clients must use PKCE: send code_challenge and code_challenge_method=S256"
                .into(),
        ));
    }
    let acr = claims::acr_for(get("acr_values")).ok_or((
        oauth_error::UNMET_AUTHENTICATION_REQUIREMENTS,
        format!(
            "a phone sign-in earns {} (keys in the phone's passcode-protected keystore); it cannot meet {}",
            claims::ACR_MET.join(" or "),
            get("acr_values").unwrap_or("")
        ),
    ))?;
    // A hint that is not a UID is only a hint: ignored.
    let login_hint = get("login_hint")
        .and_then(|h| h.trim().parse::<Uid>().ok())
        .map(|u| u.to_string());
    Ok(FlowParams {
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state: get("state").map(str::to_owned),
        nonce,
        prompt_login: prompts.contains(&"login"),
        prompt_none,
        max_age,
        login_hint,
        acr: acr.to_owned(),
        code_challenge,
    })
}

/// The browser's live sign-in session, if its cookie names one (not ended, not expired, not
/// idle).
pub async fn sso_session(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<SessionRow>> {
    let Some(ticket) = cookie(headers, SSO_COOKIE) else {
        return Ok(None);
    };
    let mut conn = state.store().pool().acquire().await?;
    let Some(s) = signin_db::session_by_ticket(&mut conn, &sha256(ticket.as_bytes())).await? else {
        return Ok(None);
    };
    let now = state.now_unix();
    let live = s.ended_at.is_none() && s.expires_at > now && s.last_used + s.idle_seconds > now;
    Ok(live.then_some(s))
}

/// The name of a flow's cookie: one per flow, so two sign-ins in two tabs do not collide.
pub fn flow_cookie_name(flow_id: &str) -> String {
    format!("__Host-vsc-flow-{flow_id}")
}

/// Stores a new flow and sends the browser to its sign-in page with the flow's cookie.
async fn start_flow(
    state: &AppState,
    client: &ClientRow,
    params: &FlowParams,
    session_id: Option<&str>,
) -> ApiResult<Response> {
    let id = state.new_id()?;
    let secret = URL_SAFE_NO_PAD.encode(state.random::<32>()?);
    let now = state.now_unix();
    let ttl = state.config().oidc.flow_ttl.whole_seconds();
    let row = db::FlowRow {
        id: id.clone(),
        client_id: client.client_id.clone(),
        params: serde_json::to_string(params).map_err(ApiError::internal)?,
        browser_hash: sha256(secret.as_bytes()),
        auth_request_id: None,
        session_id: session_id.map(str::to_owned),
        position_id: None,
        created_at: now,
        expires_at: now + ttl,
        finished_at: None,
    };
    let mut tx = state.write().await?;
    // Old flows are worthless once expired; clearing them here keeps the table small.
    db::prune_flows(&mut tx, now - 3600).await?;
    db::insert_flow(&mut tx, &row).await?;
    tx.commit().await?;
    let mut r = see_other(&routes::fill(routes::OIDC_SIGNIN, &id));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&flow_cookie_name(&id), &secret, Some(ttl)),
    );
    Ok(r)
}

/// Issues an authorization code for `session` and sends the browser back to the client. Ends
/// `flow` (once) when the code comes from a flow; the grant, the flow's end and the audit event
/// are one transaction.
pub async fn issue_code(
    state: &AppState,
    ctx: &AuditContext,
    client: &ClientRow,
    params: &FlowParams,
    session: &SessionRow,
    position_id: Option<&str>,
    flow_id: Option<&str>,
) -> ApiResult<Response> {
    let now = state.now_unix();
    let code = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(state.random::<32>()?));
    let grant = db::GrantRow {
        id: state.new_id()?,
        code_hash: sha256(code.as_bytes()),
        client_id: client.client_id.clone(),
        session_id: session.id.clone(),
        redirect_uri: params.redirect_uri.clone(),
        scope: params.scopes.join(" "),
        nonce: params.nonce.clone(),
        code_challenge: params.code_challenge.clone(),
        position_id: position_id.map(str::to_owned),
        acr: params.acr.clone(),
        created_at: now,
        code_expires_at: now + state.config().oidc.code_ttl.whole_seconds().min(60),
        code_used_at: None,
        revoked_at: None,
    };
    let mut tx = state.write().await?;
    if let Some(flow_id) = flow_id
        && !db::finish_flow(&mut tx, flow_id, position_id, now).await?
    {
        drop(tx);
        return Ok(pages::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has already finished or expired",
            "Go back to the application and sign in again.",
        ));
    }
    db::insert_grant(&mut tx, &grant).await?;
    signin_db::touch_session(&mut tx, &session.id, now).await?;
    let actor = AuditContext {
        actor: session.uid.clone(),
        source: ctx.source,
    };
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "oidc.code.issued",
                &session.uid,
                &client.ods_code,
                serde_json::json!({"client_id": client.client_id, "grant_id": grant.id, "session_id": session.id, "scope": grant.scope, "role": position_id, "acr": grant.acr}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = params.state.as_deref() {
        pairs.push(("state", s));
    }
    let issuer = state.issuer();
    pairs.push(("iss", &issuer));
    Ok(redirect_with(&params.redirect_uri, &pairs))
}

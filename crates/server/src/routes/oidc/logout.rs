//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and back-channel logout
//! (OpenID Connect Back-Channel Logout 1.0).
//!
//! With a valid `id_token_hint` naming this browser's session (or when the browser holds no
//! other session), the session ends at once; without one the person confirms on a page (a
//! form with a CSRF token), so a link on another site cannot sign them out. Ending a sign-in
//! session revokes every grant made under it and sends each client that held one and
//! registered a `backchannel_logout_uri` a logout token (`sid`, `sub`, the back-channel
//! logout event, no `nonce`), signed with the client's ID token algorithm.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;
use serde_json::json;
use vsc_oidc::jose::Alg;
use vsc_store::oidc as db;
use vsc_store::oidc_clients::{self, ClientRow};
use vsc_store::signin as signin_db;

use super::authorize::{parse_params, redirect_with, sso_session};
use super::pages::{csrf_ok, csrf_token, error_page, html_page, internal_error_page};
use super::{SSO_COOKIE, keys, set_cookie};
use crate::error::{ApiError, ApiResult};
use crate::routes::Client;
use crate::state::{AppState, AuditContext};

/// The event a logout token carries.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// `GET /oauth2/logout`.
pub async fn logout_get(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    logout(
        &state,
        &ctx,
        &headers,
        query.as_deref().unwrap_or(""),
        false,
    )
    .await
}

/// `POST /oauth2/logout` (the RP's form, or the confirmation page's).
pub async fn logout_post(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    logout(&state, &ctx, &headers, &body, true).await
}

/// The claims of an ID token this provider signed (any age: hints may have expired).
async fn verified_hint(
    state: &AppState,
    hint: &str,
) -> ApiResult<Option<serde_json::Map<String, serde_json::Value>>> {
    let keys = keys::published(state).await?;
    let Ok((_, claims)) =
        vsc_oidc::jose::verify_jwt(hint, &keys, &[Alg::RS256, Alg::RS512, Alg::ES256])
    else {
        return Ok(None);
    };
    let ours = claims.get("iss").and_then(|v| v.as_str()) == Some(state.issuer().as_str());
    Ok(ours.then_some(claims))
}

async fn logout(
    state: &AppState,
    ctx: &AuditContext,
    headers: &HeaderMap,
    raw: &str,
    posted: bool,
) -> Response {
    let params: HashMap<String, String> = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The sign-out request is not valid",
                &e,
            );
        }
    };
    let get = |k: &str| params.get(k).map(String::as_str);
    let hint = match get("id_token_hint") {
        Some(h) => match verified_hint(state, h).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The sign-out request is not valid",
                    "The application sent an ID token that vsc did not issue. Close the browser to end your session, and tell the application's support team.",
                );
            }
            Err(e) => return internal_error_page(e),
        },
        None => None,
    };
    let hint_client = hint.as_ref().and_then(|c| match c.get("aud") {
        Some(serde_json::Value::String(a)) => Some(a.clone()),
        Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    });
    let client_id = match (get("client_id"), hint_client.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The sign-out request is not valid",
                "client_id and the ID token's audience differ.",
            );
        }
        (Some(a), _) => Some(a.to_owned()),
        (None, b) => b.map(str::to_owned),
    };
    let client = match &client_id {
        Some(id) => match state.store().pool().acquire().await {
            Ok(mut conn) => match oidc_clients::client(&mut conn, id).await {
                Ok(c) => c,
                Err(e) => return internal_error_page(e.into()),
            },
            Err(e) => return internal_error_page(ApiError::from(vsc_store::StoreError::from(e))),
        },
        None => None,
    };
    // Where to go afterwards: only a registered post-logout redirect URI of a known client.
    let after = match get("post_logout_redirect_uri") {
        Some(uri) => {
            let allowed = client.as_ref().is_some_and(|c| post_logout_allowed(c, uri));
            if !allowed {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The application asked to return to an address it has not registered",
                    "You have not been signed out. Close the browser to end your session, and tell the application's support team.",
                );
            }
            Some(uri.to_owned())
        }
        None => None,
    };
    let browser_session = match sso_session(state, headers).await {
        Ok(s) => s,
        Err(e) => return internal_error_page(e),
    };
    let hint_sid = hint
        .as_ref()
        .and_then(|c| c.get("sid"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    // What to end: the hint's session when the browser holds that one or none at all.
    let target = match (&browser_session, &hint_sid) {
        (Some(b), Some(sid)) if &b.id == sid => Some(b.id.clone()),
        (None, Some(sid)) => Some(sid.clone()),
        (Some(b), _) => {
            // No hint, or a hint for another session: the person confirms.
            let confirmed = posted && get("confirm") == Some("yes");
            let ticket = super::cookie(headers, SSO_COOKIE).unwrap_or("");
            if !confirmed || !csrf_ok(ticket, get("csrf")) {
                return confirm_page(ticket, &params);
            }
            Some(b.id.clone())
        }
        (None, None) => None,
    };
    if let Some(session_id) = target
        && let Err(e) = end_session(state, ctx, &session_id, "logout").await
    {
        return internal_error_page(e);
    }
    let mut response = match after {
        Some(uri) => {
            let mut pairs = Vec::new();
            if let Some(s) = get("state") {
                pairs.push(("state", s));
            }
            redirect_with(&uri, &pairs)
        }
        None => html_page(
            StatusCode::OK,
            "Signed out",
            html! { h1 { "You have signed out" } p { "Your vsc sign-in session in this browser has ended. You can close this window." } },
            None,
        ),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SSO_COOKIE, "", Some(0)));
    response
}

fn post_logout_allowed(client: &ClientRow, uri: &str) -> bool {
    client.disabled_at.is_none()
        && ((client.any_loopback_redirect && vsc_oidc::redirect::is_loopback_redirect(uri))
            || client.post_logout_redirect_uris.iter().any(|r| r == uri))
}

fn confirm_page(ticket: &str, params: &HashMap<String, String>) -> Response {
    html_page(
        StatusCode::OK,
        "Sign out",
        html! {
            h1 { "Sign out of vsc?" }
            p { "This ends your sign-in in this browser for every application that uses it." }
            form method="post" action=(vsc_proto::routes::OIDC_LOGOUT) {
                input type="hidden" name="csrf" value=(csrf_token(ticket));
                input type="hidden" name="confirm" value="yes";
                @for key in ["post_logout_redirect_uri", "state", "client_id"] {
                    @if let Some(v) = params.get(key) { input type="hidden" name=(key) value=(v); }
                }
                button type="submit" { "Sign out" }
            }
        },
        None,
    )
}

/// Ends a sign-in session: the session, every grant made under it, one audit event, then
/// back-channel logout to the clients that held a grant.
pub async fn end_session(
    state: &AppState,
    ctx: &AuditContext,
    session_id: &str,
    reason: &str,
) -> ApiResult<()> {
    let now = state.now_unix();
    let mut tx = state.write().await?;
    let Some(session) = db::session(&mut tx, session_id).await? else {
        return Ok(());
    };
    let ended = signin_db::end_session(&mut tx, session_id, now, reason).await?;
    let clients = db::revoke_session_grants(&mut tx, session_id, now).await?;
    let actor = AuditContext {
        actor: session.uid.clone(),
        source: ctx.source,
    };
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "session.ended",
                &session.uid,
                "",
                json!({"session_id": session_id, "reason": reason, "ended_now": ended, "oidc_clients": clients}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    let mut targets = Vec::new();
    {
        let mut conn = state.store().pool().acquire().await?;
        for id in clients {
            if let Some(c) = oidc_clients::client(&mut conn, &id).await?
                && c.backchannel_logout_uri.is_some()
            {
                targets.push(c);
            }
        }
    }
    for client in targets {
        send_backchannel(
            state.clone(),
            client,
            session.uid.clone(),
            session_id.to_owned(),
        );
    }
    Ok(())
}

/// How often ended sessions are looked for (see [`sweep_ended_sessions`]).
pub const SWEEP_SECONDS: u64 = 10;

/// Runs [`sweep_ended_sessions`] every [`SWEEP_SECONDS`] until the task is aborted.
pub async fn sweeper(state: AppState) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(SWEEP_SECONDS)).await;
        if let Err(e) = sweep_ended_sessions(&state).await {
            tracing::warn!(error = %e, "back-channel logout sweep failed");
        }
    }
}

/// Sessions end in many places besides `/oauth2/logout`: the card is cancelled or locked, its
/// holder answers "I didn't do this", the idle or maximum limit passes. Their tokens already
/// stop working (every token check joins the session); this revokes the grants made under
/// such sessions, one audited transaction per session, and sends the clients that held them
/// their back-channel logout. The conditional revocation makes exactly one node send each.
pub async fn sweep_ended_sessions(state: &AppState) -> ApiResult<usize> {
    let now = state.now_unix();
    let ended = {
        let mut conn = state.store().pool().acquire().await?;
        db::ended_sessions_with_live_grants(&mut conn, now).await?
    };
    let mut notified = 0;
    for (session_id, uid) in ended {
        let mut tx = state.write().await?;
        let clients = db::revoke_live_grants_of_session(&mut tx, &session_id, now).await?;
        let system = AuditContext {
            actor: "system".into(),
            source: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        state
            .append_audit(
                &mut tx,
                &system.event(
                    "oidc.grants.revoked",
                    &uid,
                    "",
                    json!({"session_id": session_id, "reason": "session-ended", "oidc_clients": clients}),
                ),
                state.now_ms(),
            )
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        for id in clients {
            if let Some(c) = oidc_clients::client(&mut conn, &id).await?
                && c.backchannel_logout_uri.is_some()
            {
                send_backchannel(state.clone(), c, uid.clone(), session_id.clone());
                notified += 1;
            }
        }
    }
    Ok(notified)
}

/// Posts a logout token to the client's back-channel logout endpoint, in the background (a
/// slow relying party must not hold the person's sign-out); the outcome is logged.
fn send_backchannel(state: AppState, client: ClientRow, uid: String, sid: String) {
    tokio::spawn(async move {
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            return;
        };
        let result = async {
            let alg: Alg = client.id_token_alg.parse().unwrap_or(Alg::RS256);
            let key = keys::signing_key(&state, alg).await?;
            let now = state.now_unix();
            let token = key
                .sign_jwt(
                    &json!({
                        "iss": state.issuer(),
                        "aud": client.client_id,
                        "iat": now,
                        "exp": now + 120,
                        "jti": state.new_id()?,
                        "sub": uid,
                        "sid": sid,
                        "events": { BACKCHANNEL_EVENT: {} },
                    }),
                    Some("logout+jwt"),
                )
                .map_err(ApiError::internal)?;
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("logout_token", &token)
                .finish();
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(ApiError::internal)?;
            let response = http
                .post(&uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(ApiError::internal)?;
            Ok::<_, ApiError>(response.status())
        }
        .await;
        match result {
            Ok(status) if status.is_success() => {
                tracing::info!(
                    client = client.client_id,
                    sid,
                    "back-channel logout delivered"
                );
            }
            Ok(status) => {
                tracing::warn!(client = client.client_id, sid, %status, "back-channel logout refused by the client");
            }
            Err(e) => {
                tracing::warn!(client = client.client_id, sid, error = %e, "back-channel logout not delivered");
            }
        }
    });
}

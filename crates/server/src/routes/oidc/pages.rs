//! The web sign-in pages: server-rendered HTML (maud, escaped by default) that works without
//! JavaScript, plus one small first-party script that waits for the phone and continues by
//! itself. Every page is sent with a strict Content-Security-Policy (no inline script or style,
//! `frame-ancestors 'none'`), `Cache-Control: no-store` and no referrer.
//!
//! A flow belongs to the browser that started it: the authorization endpoint set a cookie
//! (`__Host-vsc-flow-{id}`) holding a secret whose SHA-256 the flow keeps, and every page and
//! form checks it. Forms also carry a CSRF token derived from that secret, so a page of another
//! site cannot post into a flow even where a browser sends the cookie along.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;
use vsc_core::{AuthRequestState, Uid};
use vsc_proto::routes;
use vsc_proto::signin::{AuthContext, SessionRole};
use vsc_store::oidc::{self as db, FlowRow};
use vsc_store::oidc_clients::{self, ClientRow};
use vsc_store::signin as signin_db;

use super::authorize::{FlowParams, flow_cookie_name, issue_code, parse_params, see_other};
use super::{SSO_COOKIE, claims, cookie, set_cookie};
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::routes::Client;
use crate::routes::signin::{Opening, open_request, sha256};
use crate::state::{AppState, AuditContext};

const SCRIPT: &str = include_str!("../../../assets/oidc/signin.js");
const STYLE: &str = include_str!("../../../assets/oidc/style.css");

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::OIDC_SIGNIN, get(page).post(submit_uid))
        .route(routes::OIDC_SIGNIN_STATUS, get(status))
        .route(
            routes::OIDC_SIGNIN_CONTINUE,
            axum::routing::post(continue_flow),
        )
        .route(routes::OIDC_SIGNIN_ROLE, axum::routing::post(choose_role))
        .route(routes::OIDC_ASSETS, get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "signin.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// A page with the security headers every sign-in page carries. `form_target` is the origin a
/// form on the page may end up redirecting to (the client's), which CSP's `form-action` must
/// allow.
pub fn html_page(
    status: StatusCode,
    title: &str,
    body: Markup,
    form_target: Option<&str>,
) -> Response {
    framed_page(status, title, "vsc sign-in", None, body, form_target)
}

/// A page of another part of the server (the RA console) in the same frame and with the same
/// headers: `site` ends the window title, and `nav` sits between the banner and the content,
/// so the skip link passes it too.
pub fn framed_page(
    status: StatusCode,
    title: &str,
    site: &str,
    nav: Option<Markup>,
    body: Markup,
    form_target: Option<&str>,
) -> Response {
    let wide = nav.is_some();
    let markup = html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – " (site) }
                link rel="stylesheet" href=(routes::fill(routes::OIDC_ASSETS, "style.css"));
                script src=(routes::fill(routes::OIDC_ASSETS, "signin.js")) defer {}
            }
            body {
                // The first Tab stop: past the banner and any navigation to the content, for
                // people who move through the page with the keyboard.
                a class="skip-link" href="#main" { "Skip to main content" }
                header class="banner" { span class="brand" { "vsc" } " " span { "Care identity sign-in" } }
                @if let Some(nav) = nav { div class="site-bar" { (nav) } }
                main id="main" tabindex="-1" class=[wide.then_some("wide")] { (body) }
            }
        }
    };
    let form_action = match form_target {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut r = (status, axum::response::Html(markup.into_string())).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// An error page: what happened and what to do next.
pub fn error_page(status: StatusCode, title: &str, next: &str) -> Response {
    html_page(
        status,
        title,
        html! {
            h1 { (title) }
            p { (next) }
        },
        None,
    )
}

/// The page for an internal error (the detail is in the server log).
pub fn internal_error_page(e: ApiError) -> Response {
    error_page(
        e.status,
        "Sign-in could not continue",
        &format!("{} Go back to the application and try again.", e.message),
    )
}

/// The person's roles.
pub async fn roles_of(state: &AppState, uid: &str) -> ApiResult<Vec<SessionRole>> {
    let mut conn = state.store().pool().acquire().await?;
    crate::routes::session::roles_of(&mut conn, uid).await
}

/// The CSRF token of a form bound to `secret` (the flow's or the session's cookie).
pub fn csrf_token(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(format!("vsc-csrf/v1\n{secret}").as_bytes()))
}

/// Whether `presented` is the CSRF token for `secret`.
pub fn csrf_ok(secret: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(csrf_token(secret).as_bytes().ct_eq(p.as_bytes())))
}

/// A flow this browser started, with its parameters and client.
struct Loaded {
    flow: FlowRow,
    params: FlowParams,
    client: ClientRow,
    secret: String,
}

impl Loaded {
    fn form_target(&self) -> Option<String> {
        url::Url::parse(&self.params.redirect_uri)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }
}

fn not_this_browser() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in was started somewhere else or has expired",
        "Go back to the application and choose sign in again; the sign-in must be finished in the browser that started it, within 10 minutes.",
    )
}

async fn load(state: &AppState, headers: &HeaderMap, id: &str) -> Result<Loaded, Response> {
    let bad_id = id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret = cookie(headers, &flow_cookie_name(id)).map(str::to_owned);
    let (Some(secret), false) = (secret, bad_id) else {
        return Err(not_this_browser());
    };
    let mut conn = match state.store().pool().acquire().await {
        Ok(c) => c,
        Err(e) => return Err(internal_error_page(ApiError::from(e))),
    };
    let flow = match db::flow(&mut conn, id).await {
        Ok(Some(f)) if bool::from(sha256(secret.as_bytes()).ct_eq(&f.browser_hash)) => f,
        Ok(_) => return Err(not_this_browser()),
        Err(e) => return Err(internal_error_page(e.into())),
    };
    if flow.expires_at <= state.now_unix() {
        return Err(not_this_browser());
    }
    if flow.finished_at.is_some() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has finished",
            "You were sent back to the application already. To sign in again, start from the application.",
        ));
    }
    let params: FlowParams = match serde_json::from_str(&flow.params) {
        Ok(p) => p,
        Err(e) => return Err(internal_error_page(ApiError::internal(e))),
    };
    let client = match oidc_clients::client(&mut conn, &flow.client_id).await {
        Ok(Some(c)) if c.disabled_at.is_none() => c,
        Ok(_) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "This application has been disabled",
                "The application is no longer registered for sign-in with vsc. Tell its support team.",
            ));
        }
        Err(e) => return Err(internal_error_page(e.into())),
    };
    Ok(Loaded {
        flow,
        params,
        client,
        secret,
    })
}

fn uid_form(l: &Loaded, error: Option<&str>, uid: Option<&str>) -> Response {
    let action = routes::fill(routes::OIDC_SIGNIN, &l.flow.id);
    let value = uid.or(l.params.login_hint.as_deref()).unwrap_or("");
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html_page(
        status,
        "Sign in",
        html! {
            h1 { "Sign in to " (l.client.name) }
            p { "You will approve this sign-in on your phone, in the vsc app." }
            @if let Some(e) = error {
                div class="error" role="alert" id="uid-error" { h2 { "There is a problem" } p { (e) } }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf_token(&l.secret));
                label for="uid" { "Your UID" }
                p class="hint" id="uid-hint" { "The 12-digit number on your smartcard record, for example 555 555 555 555." }
                input id="uid" name="uid" type="text" inputmode="numeric" autocomplete="username"
                    spellcheck="false" value=(value) aria-describedby="uid-hint" required
                    autofocus[error.is_some() || value.is_empty()];
                button type="submit" { "Send to my phone" }
            }
        },
        None,
    )
}

fn number_page(l: &Loaded, number: u8, minutes_left: i64) -> Response {
    let flow = &l.flow.id;
    html_page(
        StatusCode::OK,
        "Approve on your phone",
        html! {
            h1 { "Approve on your phone" }
            p { "Open vsc on your phone. Check that the request is to sign in to " strong { (l.client.name) } " from this browser, then type this number:" }
            p class="number" aria-label=(format!("Your number is {} {}", number / 10, number % 10)) { (format!("{number:02}")) }
            p id="wait" role="status" aria-live="polite"
                data-status=(routes::fill(routes::OIDC_SIGNIN_STATUS, flow)) {
                "Waiting for your phone (this request lasts " (minutes_left.max(1)) " more minute" @if minutes_left > 1 { "s" } ")."
            }
            form id="continue" method="post" action=(routes::fill(routes::OIDC_SIGNIN_CONTINUE, flow)) {
                input type="hidden" name="csrf" value=(csrf_token(&l.secret));
                button type="submit" class="secondary" { "I have approved on my phone – continue" }
            }
            p { "Did not get a request? " a href=(routes::fill(routes::OIDC_SIGNIN, flow)) { "Check again" } "." }
        },
        l.form_target().as_deref(),
    )
}

fn role_page(l: &Loaded, roles: &[SessionRole], error: Option<&str>) -> Response {
    let flow = &l.flow.id;
    html_page(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "Choose your role",
        html! {
            h1 { "Choose your role" }
            p { (l.client.name) " will act in the role you choose." }
            @if let Some(e) = error {
                div class="error" role="alert" { h2 { "There is a problem" } p { (e) } }
            }
            form method="post" action=(routes::fill(routes::OIDC_SIGNIN_ROLE, flow)) {
                input type="hidden" name="csrf" value=(csrf_token(&l.secret));
                @if roles.len() > 5 {
                    label for="role-search" { "Search your roles" }
                    input id="role-search" type="search" data-filter="roles" autocomplete="off";
                }
                fieldset id="roles" {
                    legend { "Your roles" }
                    @for (i, r) in roles.iter().enumerate() {
                        div class="role" {
                            input type="radio" name="role" id=(format!("role-{i}")) value=(r.position_id) required checked[i == 0];
                            label for=(format!("role-{i}")) {
                                strong { (r.role_name) } br;
                                (r.organisation_name) " (" (r.organisation) ")"
                                @if !r.activities.is_empty() { br; span class="hint" { "Activities: " (r.activities.join(", ")) } }
                            }
                        }
                    }
                }
                button type="submit" { "Continue" }
            }
        },
        l.form_target().as_deref(),
    )
}

fn continue_page(l: &Loaded) -> Response {
    html_page(
        StatusCode::OK,
        "Approved",
        html! {
            h1 { "Approved on your phone" }
            form id="continue" data-auto="submit" method="post" action=(routes::fill(routes::OIDC_SIGNIN_CONTINUE, &l.flow.id)) {
                input type="hidden" name="csrf" value=(csrf_token(&l.secret));
                button type="submit" { "Continue to " (l.client.name) }
            }
        },
        l.form_target().as_deref(),
    )
}

/// Why a finished phone request did not sign the person in, in their words.
fn outcome_words(state: AuthRequestState) -> &'static str {
    match state {
        AuthRequestState::Declined => {
            "The request was declined on your phone. To sign in, send a new one."
        }
        AuthRequestState::Reported => {
            "You told us on your phone that you did not make this request. Sign-in to your card is blocked for a while; if you did not try to sign in, tell your RA."
        }
        AuthRequestState::Failed => {
            "The number typed on the phone did not match, or the approval could not be checked. Send a new request and type the number shown here."
        }
        AuthRequestState::Superseded | AuthRequestState::Cancelled => {
            "That request was replaced. Send a new one."
        }
        _ => "The request expired before it was approved. Send a new one.",
    }
}

/// `GET /oauth2/signin/{flow}`.
async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let l = match load(&state, &headers, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    render(&state, &headers, &l, None).await
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    l: &Loaded,
    error: Option<&str>,
) -> Response {
    if let Some(session_id) = &l.flow.session_id {
        return match session_of_flow(state, headers, session_id).await {
            Ok(Some(uid)) => match roles_of(state, &uid).await {
                Ok(roles) if needs_choice(&l.params, &roles) => role_page(l, &roles, error),
                Ok(_) => continue_page(l),
                Err(e) => internal_error_page(e),
            },
            Ok(None) => uid_form(
                l,
                Some("Your sign-in session has ended. Sign in again."),
                None,
            ),
            Err(e) => internal_error_page(e),
        };
    }
    let Some(request_id) = &l.flow.auth_request_id else {
        return uid_form(l, error, None);
    };
    let row = match state.store().pool().acquire().await {
        Ok(mut conn) => signin_db::auth_request(&mut conn, request_id).await,
        Err(e) => Err(e.into()),
    };
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => return uid_form(l, error, None),
        Err(e) => return internal_error_page(e.into()),
    };
    let now = state.now_unix();
    match row.state {
        AuthRequestState::Pending if row.expires_at > now => {
            number_page(l, row.number, (row.expires_at - now + 59) / 60)
        }
        AuthRequestState::Approved => continue_page(l),
        s => uid_form(l, Some(error.unwrap_or(outcome_words(s))), Some(&row.uid)),
    }
}

fn needs_choice(params: &FlowParams, roles: &[SessionRole]) -> bool {
    claims::has(&params.scopes, "selectedrole") && roles.len() > 1
}

/// The UID of the flow's session if it is still live and this browser holds its cookie.
async fn session_of_flow(
    state: &AppState,
    headers: &HeaderMap,
    session_id: &str,
) -> ApiResult<Option<String>> {
    Ok(super::authorize::sso_session(state, headers)
        .await?
        .filter(|s| s.id == session_id)
        .map(|s| s.uid))
}

fn form_of(body: &str) -> std::collections::HashMap<String, String> {
    parse_params(body).unwrap_or_default()
}

/// A form posted into a flow: the flow (this browser's) and the form's fields, once its CSRF
/// token has been checked.
async fn load_form(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &str,
) -> Result<(Loaded, std::collections::HashMap<String, String>), Response> {
    let l = load(state, headers, id).await?;
    let form = form_of(body);
    if !csrf_ok(&l.secret, form.get("csrf").map(String::as_str)) {
        return Err(csrf_refused());
    }
    Ok((l, form))
}

fn csrf_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The page was out of date or did not come from vsc. Go back to the application and sign in again.",
    )
}

/// `POST /oauth2/signin/{flow}`: send the sign-in request to the person's phone.
async fn submit_uid(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (l, form) = match load_form(&state, &headers, &id, &body).await {
        Ok(loaded) => loaded,
        Err(r) => return r,
    };
    if l.flow.session_id.is_some() {
        return see_other(&routes::fill(routes::OIDC_SIGNIN, &id));
    }
    let typed: String = form
        .get("uid")
        .map(|u| u.chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default();
    let uid: Uid = match typed.parse() {
        Ok(u) => u,
        Err(_) => {
            return uid_form(
                &l,
                Some("Enter your UID: 12 digits, as on your smartcard record."),
                Some(&typed),
            );
        }
    };
    if !state
        .throttle()
        .allowed(&ctx.source, state.now_unix())
        .await
    {
        return uid_form(
            &l,
            Some(
                "Too many failed sign-in attempts from this network. Wait 15 minutes and try again.",
            ),
            Some(uid.as_str()),
        );
    }
    let shown = AuthContext {
        workstation_id: format!("web:{}", l.flow.id),
        workstation_name: "web browser".into(),
        client_address: ctx.source.to_string(),
        agent_version: "web".into(),
        purpose: format!("Sign in to {}", l.client.name),
        registered: false,
        organisation: String::new(),
        organisation_name: String::new(),
        web_client: l.client.name.clone(),
    };
    match open_request(&state, &ctx, &uid, &Opening::Web(&shown), "").await {
        Ok(created) => {
            let recorded = match state.write().await {
                Ok(mut tx) => {
                    match db::set_flow_request(&mut tx, &l.flow.id, &created.request_id).await {
                        Ok(true) => tx.commit().await.map(|()| true),
                        Ok(false) => Ok(false),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = recorded {
                return internal_error_page(e.into());
            }
            if let Some(screen) = &state.config().oidc.number_screen {
                screen(uid.as_str(), created.number);
            }
            see_other(&routes::fill(routes::OIDC_SIGNIN, &id))
        }
        Err(err) => {
            if err.code == vsc_proto::errors::NO_ACTIVE_CARD {
                state
                    .throttle()
                    .record_failure(&ctx.source, state.now_unix())
                    .await;
            }
            state
                .audit_failure(&ctx, "oidc.signin", uid.as_str(), "", &err)
                .await;
            uid_form(&l, Some(&err.message), Some(uid.as_str()))
        }
    }
}

/// `?wait=SECONDS`.
#[derive(Debug, Deserialize)]
struct Wait {
    #[serde(default)]
    wait: u64,
}

/// `GET /oauth2/signin/{flow}/status?wait=S`: `{"state": …}` of the flow's phone request,
/// answered when it changes or after at most 25 seconds.
async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(wait): Query<Wait>,
) -> Response {
    let l = match load(&state, &headers, &id).await {
        Ok(l) => l,
        Err(_) => {
            return (
                StatusCode::NOT_FOUND,
                super::no_store(),
                Json(serde_json::json!({"state": "gone"})),
            )
                .into_response();
        }
    };
    if l.flow.session_id.is_some() {
        return (
            super::no_store(),
            Json(serde_json::json!({"state": "approved"})),
        )
            .into_response();
    }
    let Some(request_id) = l.flow.auth_request_id.clone() else {
        return (
            super::no_store(),
            Json(serde_json::json!({"state": "none"})),
        )
            .into_response();
    };
    let mut events = state.hub().subscribe();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait.wait.min(25));
    loop {
        let row = match state.store().pool().acquire().await {
            Ok(mut conn) => signin_db::auth_request(&mut conn, &request_id).await,
            Err(e) => Err(e.into()),
        };
        let row = match row {
            Ok(Some(r)) => r,
            Ok(None) => return StatusCode::NOT_FOUND.into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        };
        let now = state.now_unix();
        let name = if row.state == AuthRequestState::Pending && row.expires_at <= now {
            vsc_proto::signin::state::EXPIRED
        } else {
            row.state.as_str()
        };
        if row.state != AuthRequestState::Pending
            || name == vsc_proto::signin::state::EXPIRED
            || tokio::time::Instant::now() >= deadline
        {
            return (super::no_store(), Json(serde_json::json!({"state": name}))).into_response();
        }
        let until_expiry =
            std::time::Duration::from_secs(u64::try_from(row.expires_at - now).unwrap_or(0));
        let wake = deadline.min(tokio::time::Instant::now() + until_expiry);
        loop {
            match tokio::time::timeout_at(wake, events.recv()).await {
                Ok(Ok(Event::Decided { request_id: r, .. })) if r == request_id => break,
                Ok(Ok(Event::Resync)) | Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            }
        }
    }
}

/// `POST /oauth2/signin/{flow}/continue`: after the phone approved, the sign-in session is
/// created (its ticket becomes this browser's single sign-on cookie), then role selection or the
/// redirect to the client.
async fn continue_flow(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (l, _form) = match load_form(&state, &headers, &id, &body).await {
        Ok(loaded) => loaded,
        Err(r) => return r,
    };
    let mut set_sso = None;
    let session = if let Some(session_id) = &l.flow.session_id {
        match super::authorize::sso_session(&state, &headers).await {
            Ok(Some(s)) if &s.id == session_id => s,
            Ok(_) => {
                return uid_form(
                    &l,
                    Some("Your sign-in session has ended. Sign in again."),
                    None,
                );
            }
            Err(e) => return internal_error_page(e),
        }
    } else {
        let Some(request_id) = &l.flow.auth_request_id else {
            return see_other(&routes::fill(routes::OIDC_SIGNIN, &id));
        };
        match collect(&state, &ctx, &l, request_id).await {
            Ok(Some((session, ticket))) => {
                set_sso = Some(ticket);
                session
            }
            // Not approved (yet): the page says where things stand.
            Ok(None) => return see_other(&routes::fill(routes::OIDC_SIGNIN, &id)),
            Err(e) => return render(&state, &headers, &l, Some(&e.message)).await,
        }
    };
    let mut response = match roles_of(&state, &session.uid).await {
        Ok(roles) if needs_choice(&l.params, &roles) => {
            see_other(&routes::fill(routes::OIDC_SIGNIN, &id))
        }
        Ok(roles) => {
            let position = roles
                .first()
                .filter(|_| roles.len() == 1)
                .map(|r| r.position_id.clone());
            match issue_code(
                &state,
                &ctx,
                &l.client,
                &l.params,
                &session,
                position.as_deref(),
                Some(&l.flow.id),
            )
            .await
            {
                Ok(r) => with_flow_cookie_cleared(r, &id),
                Err(e) => internal_error_page(e),
            }
        }
        Err(e) => internal_error_page(e),
    };
    if let Some(ticket) = set_sso {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(SSO_COOKIE, &ticket, None));
    }
    response
}

fn with_flow_cookie_cleared(mut r: Response, flow_id: &str) -> Response {
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&flow_cookie_name(flow_id), "", Some(0)),
    );
    r
}

/// Creates the session of the flow's approved request (once) and records it on the flow.
async fn collect(
    state: &AppState,
    ctx: &AuditContext,
    l: &Loaded,
    request_id: &str,
) -> ApiResult<Option<(signin_db::SessionRow, zeroize::Zeroizing<String>)>> {
    let mut conn = state.store().pool().acquire().await?;
    let Some(row) = signin_db::auth_request(&mut conn, request_id).await? else {
        return Ok(None);
    };
    drop(conn);
    if row.state != AuthRequestState::Approved || row.expires_at + 60 <= state.now_unix() {
        return Ok(None);
    }
    let outcome = crate::routes::session::collect(state, ctx, &row).await?;
    let Some(ticket) = outcome.ticket.map(zeroize::Zeroizing::new) else {
        // Another tab of this browser collected it first.
        return Err(ApiError::conflict(
            vsc_proto::errors::REQUEST_ALREADY_DECIDED,
            "this sign-in was already continued in another tab",
        ));
    };
    let mut tx = state.write().await?;
    let session = signin_db::session_by_ticket(&mut tx, &sha256(ticket.as_bytes()))
        .await?
        .ok_or_else(|| ApiError::internal("a collected session is missing"))?;
    db::set_flow_session(&mut tx, &l.flow.id, &session.id).await?;
    tx.commit().await?;
    Ok(Some((session, ticket)))
}

/// `POST /oauth2/signin/{flow}/role`.
async fn choose_role(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (l, form) = match load_form(&state, &headers, &id, &body).await {
        Ok(loaded) => loaded,
        Err(r) => return r,
    };
    let Some(session_id) = &l.flow.session_id else {
        return see_other(&routes::fill(routes::OIDC_SIGNIN, &id));
    };
    let session = match super::authorize::sso_session(&state, &headers).await {
        Ok(Some(s)) if &s.id == session_id => s,
        Ok(_) => {
            return uid_form(
                &l,
                Some("Your sign-in session has ended. Sign in again."),
                None,
            );
        }
        Err(e) => return internal_error_page(e),
    };
    let roles = match roles_of(&state, &session.uid).await {
        Ok(r) => r,
        Err(e) => return internal_error_page(e),
    };
    let chosen = form
        .get("role")
        .and_then(|p| roles.iter().find(|r| &r.position_id == p));
    let Some(chosen) = chosen else {
        return role_page(&l, &roles, Some("Choose one of your roles."));
    };
    match issue_code(
        &state,
        &ctx,
        &l.client,
        &l.params,
        &session,
        Some(&chosen.position_id),
        Some(&l.flow.id),
    )
    .await
    {
        Ok(r) => with_flow_cookie_cleared(r, &id),
        Err(e) => internal_error_page(e),
    }
}

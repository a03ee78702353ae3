//! The RA console in the browser (`/ra`): the web face of the RA API for Registration Authority
//! staff, signed in with their own virtual smartcard through the provider's web sign-in.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /ra` | an RA with a console session (else sent to sign in) | dashboard: cards by state, the [`DASHBOARD_LIST`] most recently locked cards and newest activations waiting for their phone, "I didn't do this" alerts; all in the RA's organisations (all for national RAs) |
//! | `GET /ra/signin` | anyone | starts the sign-in: the console is a client of vsc's own OpenID Connect provider (`vsc-ra-console`, public, PKCE) |
//! | `GET /ra/callback` | the browser that started the sign-in (state cookie) | redeems the code, checks the person holds an RA role and an active card, opens the console session |
//! | `POST /ra/signout` | console session (CSRF) | ends the console session |
//! | `GET /ra/people?q=&org=&page=` | console session | search people by name, UID or email in the RA's organisations (all for national RAs), optionally in one of them |
//! | `GET /ra/people/{uid}` | console session; any RA role in one of the person's organisations | the person's page, with their last sign-ins |
//!
//! **One implementation.** Every read and action goes through the RA API's own handler
//! functions (`routes::ra`) with an [`RaCaller`] built by `ra::caller_for_uid`, the function the
//! API's bearer tokens go through too: the permission matrix, the organisation scope, the
//! own-record rule and the audit events are the API's, never a copy.
//!
//! **Sessions.** The console session is a random token in a `__Host-vsc-ra` cookie (Secure,
//! HttpOnly, SameSite=Strict), stored as its SHA-256 (`console_sessions`); it ends after 15 idle
//! minutes, at the underlying sign-in session's end, or at sign-out. Each form carries a CSRF
//! token derived from the session token. Pages with personal data are never cached.

pub mod audit;
pub mod bulk;
pub mod organisations;
pub mod people;
pub mod person_actions;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::{Markup, html};
use serde::Deserialize;
use vsc_store::console::{
    self as db, ConsoleSessionRow, Listed, LockedCardRow, WaitingActivationRow,
};
use vsc_store::oidc as oidc_db;
use vsc_store::oidc_clients::{self, ClientRow};

use super::Client;
use super::oidc::authorize::{parse_params, see_other};
use super::oidc::pages::{csrf_token, error_page, framed_page, internal_error_page};
use super::oidc::{cookie, set_cookie};
use super::ra::{RaCaller, caller_for_uid};
use super::signin::sha256;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// The console's client id at the provider.
pub const CONSOLE_CLIENT_ID: &str = "vsc-ra-console";
/// The console session cookie.
pub const SESSION_COOKIE: &str = "__Host-vsc-ra";
/// The sign-in's state cookie (state and PKCE verifier).
const SIGNIN_COOKIE: &str = "__Host-vsc-ra-signin";
/// Idle minutes before a console session ends.
pub const IDLE_SECONDS: i64 = 15 * 60;
/// Rows each of the dashboard's lists shows; the rest are counted ("showing 20 of 57").
pub const DASHBOARD_LIST: i64 = 20;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra", get(dashboard))
        .route("/ra/signin", get(signin))
        .route("/ra/callback", get(callback))
        .route("/ra/signout", post(signout))
        .merge(people::routes())
        .merge(person_actions::routes())
        .merge(organisations::routes())
        .merge(audit::routes())
        .merge(bulk::routes())
}

/// A signed-in RA as the console's handlers see it.
pub struct Console {
    /// The RA, as the RA API checks callers.
    pub caller: RaCaller,
    /// Their name, for the header.
    pub name: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

impl Console {
    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| {
            subtle::ConstantTimeEq::ct_eq(self.csrf.as_bytes(), p.as_bytes()).into()
        })
    }
}

/// The console session of this request, or where to send the browser instead: to sign in (no
/// session, or an ended one) or an error page (no longer an RA).
pub async fn console(
    state: &AppState,
    ctx: &AuditContext,
    headers: &HeaderMap,
) -> Result<Console, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(see_other("/ra/signin"));
    };
    let hash = sha256(token.as_bytes());
    let now = state.now_unix();
    let row = match load_session(state, &hash).await {
        Ok(r) => r,
        Err(e) => return Err(internal_error_page(e)),
    };
    let live = row.as_ref().is_some_and(|s: &ConsoleSessionRow| {
        s.ended_at.is_none() && s.expires_at > now && s.last_used + IDLE_SECONDS > now
    });
    let Some(row) = row.filter(|_| live) else {
        return Err(see_other("/ra/signin"));
    };
    // The phone sign-in behind it must still be live (logout, cancelled card, "not me").
    match sign_in_session_live(state, &row.session_id).await {
        Ok(true) => {}
        Ok(false) => return Err(see_other("/ra/signin")),
        Err(e) => return Err(internal_error_page(e)),
    }
    let caller = match caller_for_uid(state, &row.uid, ctx).await {
        Ok(c) => c,
        Err(e) => {
            return Err(error_page(
                e.status,
                "You cannot use the RA console",
                &format!(
                    "{} Ask your RA Manager if you think this is wrong.",
                    e.message
                ),
            ));
        }
    };
    let name = match person_name(state, &row.uid).await {
        Ok(n) => n,
        Err(e) => return Err(internal_error_page(e)),
    };
    if let Err(e) = touch(state, &hash, row.last_used, now).await {
        return Err(internal_error_page(e));
    }
    Ok(Console {
        caller,
        name,
        csrf: csrf_token(token),
    })
}

async fn load_session(state: &AppState, hash: &[u8]) -> ApiResult<Option<ConsoleSessionRow>> {
    let mut conn = state.store().pool().acquire().await?;
    Ok(db::session(&mut conn, hash).await?)
}

async fn sign_in_session_live(state: &AppState, session_id: &str) -> ApiResult<bool> {
    let mut conn = state.store().pool().acquire().await?;
    let now = state.now_unix();
    Ok(oidc_db::session(&mut conn, session_id)
        .await?
        .is_some_and(|s| s.ended_at.is_none() && s.expires_at > now))
}

async fn person_name(state: &AppState, uid: &str) -> ApiResult<String> {
    let mut conn = state.store().pool().acquire().await?;
    Ok(vsc_store::repo::person(&mut conn, uid)
        .await?
        .map(|p| format!("{} {}", p.given_name, p.family_name))
        .unwrap_or_else(|| uid.to_owned()))
}

/// Moves the idle deadline; a minute's precision is enough, so at most one write a minute.
async fn touch(state: &AppState, hash: &[u8], last_used: i64, now: i64) -> ApiResult<()> {
    if now - last_used >= 60 {
        let mut tx = state.write().await?;
        db::touch_session(&mut tx, hash, now).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// A console page: the sign-in pages' security headers, the console's header and navigation.
pub fn page(c: &Console, status: StatusCode, title: &str, body: Markup) -> Response {
    framed_page(
        status,
        title,
        "vsc RA console",
        Some(html! {
            nav class="console-nav" aria-label="RA console" {
                a href="/ra" { "Dashboard" }
                a href="/ra/people" { "People" }
                a href="/ra/organisations" { "Organisations" }
                a href="/ra/audit" { "Audit" }
                a href="/ra/bulk" { "Bulk issuance" }
                span class="who" { "Signed in as " (c.name) " (" (c.caller.uid) ")" }
                form method="post" action="/ra/signout" class="inline" {
                    input type="hidden" name="csrf" value=(c.csrf);
                    button type="submit" class="link" { "Sign out" }
                }
            }
        }),
        body,
        None,
    )
}

/// The console's page for an RA API refusal: what the API said, and a way back.
pub fn refused(c: &Console, e: &ApiError, back: &str) -> Response {
    if e.status.is_server_error() {
        return internal_error_page(e.clone());
    }
    page(
        c,
        e.status,
        "Not done",
        html! {
            h1 { "Not done" }
            div class="error" role="alert" { p { (e.message) } }
            p class="hint" { "(" (e.code) ")" }
            p { a href=(back) { "Back" } }
        },
    )
}

/// The organisations an RA's grants cover, or `None` for a national grant (everywhere).
pub fn scope_of(state: &AppState, caller: &RaCaller) -> Option<Vec<String>> {
    let national = state.national_ods();
    if caller
        .grants
        .iter()
        .any(|g| g.organisation.as_str() == national)
    {
        return None;
    }
    let mut orgs: Vec<String> = caller
        .grants
        .iter()
        .map(|g| g.organisation.to_string())
        .collect();
    orgs.sort();
    orgs.dedup();
    Some(orgs)
}

async fn dashboard(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let scope = scope_of(&state, &c.caller);
    let now = state.now_unix();
    let since = now - 7 * 24 * 3600;
    let data = async {
        let mut conn = state.store().pool().acquire().await?;
        let counts = db::card_counts(&mut conn, scope.as_deref()).await?;
        let reports = db::reports_since(&mut conn, scope.as_deref(), since).await?;
        let locked = db::locked_cards(&mut conn, scope.as_deref(), DASHBOARD_LIST).await?;
        let waiting = db::waiting_activations(
            &mut conn,
            scope.as_deref(),
            DASHBOARD_LIST,
            crate::codes::MAX_WRONG_GUESSES,
        )
        .await?;
        Ok::<_, vsc_store::StoreError>((counts, reports, locked, waiting))
    }
    .await;
    let (counts, reports, locked, waiting) = match data {
        Ok(d) => d,
        Err(e) => return internal_error_page(e.into()),
    };
    let count = |state_name: &str| {
        counts
            .iter()
            .find(|(s, _)| s == state_name)
            .map_or(0, |(_, n)| *n)
    };
    page(
        &c,
        StatusCode::OK,
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            p { @match &scope { None => "All organisations (national RA).", Some(orgs) => { "Organisations: " (orgs.join(", ")) } } }
            h2 { "Cards" }
            table class="counts" {
                thead { tr { th scope="col" { "State" } th scope="col" { "Cards" } } }
                tbody {
                    @for (label, name) in [("Active", "active"), ("Waiting for activation", "pending"), ("Locked", "locked"), ("Suspended", "suspended"), ("Cancelled", "revoked"), ("Expired", "expired")] {
                        tr { td { (label) } td { (count(name)) } }
                    }
                }
            }
            (locked_cards(&locked))
            (waiting_activations(&waiting, now))
            h2 { "Alerts" }
            @if reports.is_empty() {
                p { "No \"I didn't do this\" reports in the last 7 days." }
            } @else {
                p { "Sign-in requests their card holder reported as not theirs (last 7 days):" }
                ul {
                    @for (uid, card, _at) in &reports {
                        li { a href=(format!("/ra/people/{uid}")) { (uid) } " – card " (card) }
                    }
                }
            }
            h2 { "Find a person" }
            (people::search_form("", ""))
        },
    )
}

/// The holder's name and UID, linking to their page.
fn person_link(uid: &str, given_name: &str, family_name: &str) -> Markup {
    html! { a href=(format!("/ra/people/{uid}")) { (given_name) " " (family_name) " (" (uid) ")" } }
}

/// "Showing 20 of 57": how much of a list the page holds.
fn showing(shown: usize, total: i64) -> Markup {
    html! { p class="hint" { "Showing " (shown) " of " (total) "." } }
}

fn locked_cards(locked: &Listed<LockedCardRow>) -> Markup {
    html! {
        h2 { "Locked cards" }
        @if locked.rows.is_empty() {
            p { "No locked cards." }
        } @else {
            p { "An RA or Local Smartcard Administrator unlocks a card from its holder's page." }
            table {
                caption { "Locked cards, most recently locked first" }
                thead { tr { th scope="col" { "Person" } th scope="col" { "Card" } th scope="col" { "Organisation" } th scope="col" { "Locked since" } } }
                tbody {
                    @for r in &locked.rows {
                        tr {
                            td { (person_link(&r.uid, &r.given_name, &r.family_name)) }
                            td { (r.card_id) }
                            td { (r.organisation_name) " (" (r.issued_by) ")" }
                            td {
                                @match r.locked_at_ms {
                                    Some(ms) => (time_at(ms.div_euclid(1000))),
                                    None => "not recorded",
                                }
                            }
                        }
                    }
                }
            }
            (showing(locked.rows.len(), locked.total))
        }
    }
}

fn waiting_activations(waiting: &Listed<WaitingActivationRow>, now: i64) -> Markup {
    html! {
        h2 { "Activations waiting" }
        @if waiting.rows.is_empty() {
            p { "No cards waiting for activation." }
        } @else {
            p { "Cards issued whose phone has not enrolled yet." }
            table {
                caption { "Cards waiting for activation, newest first" }
                thead { tr { th scope="col" { "Person" } th scope="col" { "Card" } th scope="col" { "Organisation" } th scope="col" { "Issued" } th scope="col" { "Activation code" } } }
                tbody {
                    @for r in &waiting.rows {
                        tr {
                            td { (person_link(&r.uid, &r.given_name, &r.family_name)) }
                            td { (r.card_id) }
                            td { (r.organisation_name) " (" (r.issued_by) ")" }
                            td { (time_at(r.issued_at)) }
                            td {
                                @match r.code_expires_at.filter(|t| *t > now) {
                                    Some(t) => { "expires " (time_at(t)) }
                                    // Expired, or spent on too many wrong guesses: either way
                                    // only a new activation helps.
                                    None => strong class="overdue" { "expired — issue a new activation" },
                                }
                            }
                        }
                    }
                }
            }
            (showing(waiting.rows.len(), waiting.total))
        }
    }
}

/// A time for people, `YYYY-MM-DD HH:MM UTC`, in a `<time>` element that gives machines (and
/// assistive technology) the exact instant.
pub fn time_at(unix_seconds: i64) -> Markup {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (date, hour, minute, second) = (
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        t.hour(),
        t.minute(),
        t.second(),
    );
    html! {
        time datetime=(format!("{date}T{hour:02}:{minute:02}:{second:02}Z")) {
            (format!("{date} {hour:02}:{minute:02} UTC"))
        }
    }
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The console's client at the provider, registered (or its redirect URI updated) on use.
async fn console_client(state: &AppState) -> ApiResult<ClientRow> {
    internal_client(state, CONSOLE_CLIENT_ID, "vsc RA console", "/ra/callback").await
}

/// One of the console's own public clients at the provider (PKCE, no secret), registered on
/// first use and its redirect URI (`callback_path` on the server's current public origin)
/// updated when the public URL changed.
pub(crate) async fn internal_client(
    state: &AppState,
    client_id: &str,
    name: &str,
    callback_path: &str,
) -> ApiResult<ClientRow> {
    let issuer = state.issuer();
    let row = ClientRow {
        client_id: client_id.into(),
        name: name.into(),
        redirect_uris: vec![format!("{issuer}{callback_path}")],
        post_logout_redirect_uris: vec![format!("{issuer}/ra")],
        public_client: true,
        auth_method: vsc_proto::oidc::auth_method::NONE.into(),
        secret_hash: None,
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        id_token_alg: "RS256".into(),
        any_loopback_redirect: false,
        ods_code: state.national_ods().to_owned(),
        created_by: "system".into(),
        created_at: state.now_unix(),
        disabled_at: None,
    };
    let mut conn = state.store().pool().acquire().await?;
    let current = oidc_clients::client(&mut conn, client_id).await?;
    drop(conn);
    if current
        .as_ref()
        .is_none_or(|c| c.redirect_uris != row.redirect_uris)
    {
        let mut tx = state.write().await?;
        oidc_clients::upsert_internal_client(&mut tx, &row).await?;
        tx.commit().await?;
    }
    Ok(row)
}

/// `GET /ra/signin`: to the provider's authorization endpoint with state and PKCE.
async fn signin(State(state): State<AppState>) -> Response {
    let client = match console_client(&state).await {
        Ok(c) => c,
        Err(e) => return internal_error_page(e),
    };
    let random = |state: &AppState| state.random::<32>().map(|b| URL_SAFE_NO_PAD.encode(b));
    let (Ok(st), Ok(verifier)) = (random(&state), random(&state)) else {
        return internal_error_page(ApiError::internal("no randomness"));
    };
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &client.redirect_uris[0])
        .append_pair("scope", "openid profile")
        .append_pair("state", &st)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut r = see_other(&format!("{}?{q}", vsc_proto::routes::OIDC_AUTHORIZE));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &format!("{st}.{verifier}"), Some(600)),
    );
    r
}

/// `GET /ra/callback`: the provider's answer. The code is redeemed here, in process, with the
/// same single-use rule and PKCE check as the token endpoint.
async fn callback(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let Some((expected_state, verifier)) =
        cookie(&headers, SIGNIN_COOKIE).and_then(|v| v.split_once('.'))
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in was started somewhere else",
            "Open the RA console again to sign in.",
        );
    };
    if cb.state.as_deref() != Some(expected_state) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in was started somewhere else",
            "Open the RA console again to sign in.",
        );
    }
    if let Some(e) = cb.error {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in did not complete",
            &format!(
                "{} Open the RA console to try again.",
                cb.error_description.unwrap_or(e)
            ),
        );
    }
    let Some(code) = cb.code else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in did not complete",
            "Open the RA console to try again.",
        );
    };
    match open_session(&state, &ctx, &code, verifier).await {
        Ok(token) => {
            let mut r = see_other("/ra");
            r.headers_mut().append(
                header::SET_COOKIE,
                strict_cookie(SESSION_COOKIE, &token, None),
            );
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", Some(0)));
            r
        }
        Err(e) if e.status.is_server_error() => internal_error_page(e),
        Err(e) => error_page(
            e.status,
            "You cannot use the RA console",
            &format!(
                "{} Ask your RA Manager if you think this is wrong.",
                e.message
            ),
        ),
    }
}

/// A `__Host-` cookie with `SameSite=Strict`: the console is never entered from another site
/// with its session.
fn strict_cookie(name: &str, value: &str, max_age: Option<i64>) -> axum::http::HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    axum::http::HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| {
        axum::http::HeaderValue::from_static("__Host-vsc-invalid=; Path=/; Secure; Max-Age=0")
    })
}

async fn open_session(
    state: &AppState,
    ctx: &AuditContext,
    code: &str,
    verifier: &str,
) -> ApiResult<String> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let grant = oidc_db::grant_by_code(&mut conn, &sha256(code.as_bytes()))
        .await?
        .filter(|g| g.client_id == CONSOLE_CLIENT_ID)
        .ok_or_else(|| {
            ApiError::bad_request(
                vsc_proto::errors::INVALID_REQUEST,
                "this sign-in code is not valid",
            )
        })?;
    let session = oidc_db::session(&mut conn, &grant.session_id)
        .await?
        .ok_or_else(|| ApiError::internal("a grant's session is missing"))?;
    drop(conn);
    let pkce_ok = grant
        .code_challenge
        .as_deref()
        .is_some_and(|c| vsc_oidc::pkce::verify_s256(verifier, c));
    if !pkce_ok {
        return Err(ApiError::bad_request(
            vsc_proto::errors::INVALID_REQUEST,
            "this sign-in was not started by this browser",
        ));
    }
    // The same checks the API makes of a bearer: an RA role, an active card.
    let caller = caller_for_uid(state, &session.uid, ctx).await?;
    let token = URL_SAFE_NO_PAD.encode(state.random::<32>()?);
    let row = ConsoleSessionRow {
        token_hash: sha256(token.as_bytes()),
        uid: session.uid.clone(),
        session_id: session.id.clone(),
        created_at: now,
        last_used: now,
        expires_at: session.expires_at,
        ended_at: None,
    };
    let mut tx = state.write().await?;
    if !oidc_db::redeem_code(&mut tx, &grant.id, now).await? {
        drop(tx);
        return Err(ApiError::bad_request(
            vsc_proto::errors::INVALID_REQUEST,
            "this sign-in code was already used or has expired",
        ));
    }
    db::insert_session(&mut tx, &row).await?;
    state
        .append_audit(
            &mut tx,
            &caller.ctx.event(
                "console.signin",
                &session.uid,
                "",
                serde_json::json!({"session_id": session.id}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(token)
}

async fn signout(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = parse_params(&body).unwrap_or_default();
    if !c.csrf_ok(form.get("csrf").map(String::as_str)) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Reload the page and try again.",
        );
    }
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or("");
    let hash = sha256(token.as_bytes());
    let done = async {
        let session_id = load_session(&state, &hash).await?.map(|s| s.session_id);
        let mut tx = state.write().await?;
        db::end_session(&mut tx, &hash, state.now_unix()).await?;
        state
            .append_audit(
                &mut tx,
                &c.caller
                    .ctx
                    .event("console.signout", &c.caller.uid, "", serde_json::json!({})),
                state.now_ms(),
            )
            .await?;
        tx.commit().await?;
        // Signing out of the console also ends the browser's sign-in session behind it: on a
        // shared RA workstation the next person must not get in by single sign-on.
        if let Some(session_id) = session_id {
            super::oidc::logout::end_session(&state, &ctx, &session_id, "console-signout").await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = done {
        return internal_error_page(e);
    }
    let mut r = framed_page(
        StatusCode::OK,
        "Signed out",
        "vsc RA console",
        None,
        html! { h1 { "You have signed out of the RA console" } p { a href="/ra" { "Sign in again" } } },
        None,
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        strict_cookie(SESSION_COOKIE, "", Some(0)),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(super::oidc::SSO_COOKIE, "", Some(0)),
    );
    r
}

/// Whether the form's CSRF token fits this console session (for the action modules).
pub fn form_csrf_ok(c: &Console, form: &std::collections::HashMap<String, String>) -> bool {
    c.csrf_ok(form.get("csrf").map(String::as_str))
}

/// A form body's fields (a repeated field keeps its last value).
pub fn form_fields(body: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

//! Organisations: the list, creating one, and each organisation's sign-in session limits and
//! workstation policy.
//!
//! | route | caller (decided by the RA API) | what |
//! |---|---|---|
//! | `GET /ra/organisations` | any RA role (`ra::list_organisations`) | every organisation with its session limits and workstation policy; the create form for national RAs, the session limits form where `ra::may_set_session_limits` allows it (RA Managers there or national), the workstation policy form where `workstation::may_set_policy` allows it |
//! | `POST /ra/organisations` | RA Manager at the national organisation (`ra::create_organisation`) | create (ODS code, name) |
//! | `POST /ra/organisations/{ods}/session-limits` | RA Manager at that organisation or national (`ra::set_session_limits`) | idle minutes, maximum hours |
//! | `POST /ra/organisations/{ods}/workstation-policy` | RA Manager at that organisation or national (`workstation::set_policy`) | whether unregistered workstations may open sign-in requests for its cards, whether a second person may sign in on a locked workstation (checkboxes: absent is "no"), and the unlock grace period in minutes (0 = off, to 15; absent is 0) |
//!
//! Which forms are *shown* is only a convenience; every POST goes to the API's handler, which
//! makes the decision (a hand-crafted POST gets the API's refusal, shown on the page). Forms
//! carry the session's CSRF token (403 without it, nothing written) and answer with a redirect
//! back to the list (post/redirect/get).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use vsc_proto::errors as code;
use vsc_proto::workstation::WorkstationPolicy;
use vsc_proto::{CreateOrganisation, Organisation, SessionLimits};

use super::{Console, console, form_csrf_ok, form_fields, page, refused, scope_of};
use crate::error::ApiError;
use crate::routes::oidc::authorize::see_other;
use crate::routes::oidc::pages::{error_page, internal_error_page};
use crate::routes::{ApiJson, Client, ra, workstation};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra/organisations", get(list).post(create))
        .route(
            "/ra/organisations/{ods}/session-limits",
            post(session_limits),
        )
        .route(
            "/ra/organisations/{ods}/workstation-policy",
            post(workstation_policy),
        )
}

#[derive(Debug, Deserialize)]
struct Done {
    created: Option<String>,
    limits: Option<String>,
    policy: Option<String>,
}

/// An organisation's settings as the list shows them.
struct Settings {
    limits: Option<(i64, i64)>,
    policy: Option<vsc_store::workstation::PolicyRow>,
}

async fn settings(
    state: &AppState,
    orgs: &[Organisation],
) -> Result<Vec<Settings>, vsc_store::StoreError> {
    let mut conn = state.store().pool().acquire().await?;
    let mut out = Vec::with_capacity(orgs.len());
    for o in orgs {
        out.push(Settings {
            limits: vsc_store::signin::session_limits(&mut conn, &o.ods_code).await?,
            policy: vsc_store::workstation::policy(&mut conn, &o.ods_code).await?,
        });
    }
    Ok(out)
}

/// Hours as the form shows them: whole hours plainly, otherwise to two decimals.
fn hours(seconds: i64) -> String {
    if seconds % 3600 == 0 {
        (seconds / 3600).to_string()
    } else {
        let h = format!("{:.2}", seconds as f64 / 3600.0);
        h.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Minutes as the form shows them.
fn minutes(seconds: i64) -> String {
    if seconds % 60 == 0 {
        (seconds / 60).to_string()
    } else {
        format!("{:.2}", seconds as f64 / 60.0)
    }
}

async fn list(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let orgs = match ra::list_organisations(State(state.clone()), c.caller.clone()).await {
        Ok(axum::Json(o)) => o,
        Err(e) => return refused(&c, &e, "/ra"),
    };
    let settings = match settings(&state, &orgs).await {
        Ok(s) => s,
        Err(e) => return internal_error_page(e.into()),
    };
    let scope = scope_of(&state, &c.caller);
    // Only ODS codes are echoed back, so a crafted link cannot put words on the page.
    let ods_of = |v: &Option<String>| {
        v.as_deref()
            .and_then(|o| o.parse::<vsc_core::OdsCode>().ok())
    };
    let notice = match (
        ods_of(&done.created),
        ods_of(&done.limits),
        ods_of(&done.policy),
    ) {
        (Some(ods), _, _) => Some(format!("Organisation {ods} registered.")),
        (None, Some(ods), _) => Some(format!("Session limits of {ods} saved.")),
        (None, None, Some(ods)) => Some(format!("Workstation policy of {ods} saved.")),
        _ => None,
    };
    // The policy API's own check decides where its form is shown (the POST asks it again).
    let may_set_policy = |ods: &str| workstation::may_set_policy(&state, &c.caller, ods).is_ok();
    let may_set_limits = |ods: &str| {
        ods.parse()
            .is_ok_and(|ods| ra::may_set_session_limits(&state, &c.caller, &ods).is_ok())
    };
    let policy_forms = orgs.iter().any(|o| may_set_policy(&o.ods_code));
    page(
        &c,
        StatusCode::OK,
        "Organisations",
        html! {
            h1 { "Organisations" }
            @if let Some(n) = notice { div class="notice" role="status" { p { (n) } } }
            table {
                caption { "Registered organisations" }
                thead {
                    tr {
                        th scope="col" { "ODS code" }
                        th scope="col" { "Name" }
                        th scope="col" { "Session idle timeout" }
                        th scope="col" { "Session maximum" }
                        th scope="col" { "Unregistered workstations" }
                        th scope="col" { "Unlock grace period" }
                        th scope="col" { "Fast user switching" }
                    }
                }
                tbody {
                    @for (o, s) in orgs.iter().zip(&settings) {
                        tr {
                            td { (o.ods_code) @if o.national { " (national)" } }
                            td { (o.name) }
                            @match s.limits {
                                Some((idle, max)) => { td { (minutes(idle)) " min" } td { (hours(max)) " h" } }
                                None => { td { "—" } td { "—" } }
                            }
                            @match s.policy {
                                Some(p) => {
                                    td { @if p.allow_unregistered { "allowed" } @else { "not allowed" } }
                                    td { @if p.unlock_grace_minutes == 0 { "off" } @else { (p.unlock_grace_minutes) " min" } }
                                    td { @if p.fast_user_switching { "on" } @else { "off" } }
                                }
                                None => { td { "—" } td { "—" } td { "—" } }
                            }
                        }
                    }
                }
            }
            @if scope.is_none() {
                (create_form(&c))
            } @else {
                p class="hint" { "Organisations are registered by an RA Manager at the national organisation." }
            }
            h2 { "Session limits" }
            p class="hint" { "How long sign-in sessions of the organisation's cards last: an idle timeout (1 minute to 24 hours) and a maximum (5 minutes to 24 hours, not shorter than the idle timeout). Set by the organisation's RA Manager." }
            @for (o, s) in orgs.iter().zip(&settings) {
                @if may_set_limits(&o.ods_code) {
                    (limits_form(&c, o, s.limits))
                }
            }
            h2 { "Workstation policy" }
            p class="hint" { "Whether workstations that are not registered may open sign-in requests for the cards an organisation issued (default: no, only registered workstations); how long after a lock a workstation may be re-opened without a new phone approval (default: off); and whether a second person may sign in on a locked workstation, the first person's session staying locked for them (default: no). Set by the organisation's RA Manager." }
            @for (o, s) in orgs.iter().zip(&settings) {
                @if may_set_policy(&o.ods_code) {
                    (policy_form(&c, o, s.policy))
                }
            }
            @if !policy_forms {
                p class="hint" { "You cannot change the workstation policy of any organisation: it needs an RA Manager role there (or at the national organisation)." }
            }
        },
    )
}

fn create_form(c: &Console) -> Markup {
    html! {
        h2 { "Register an organisation" }
        form method="post" action="/ra/organisations" {
            input type="hidden" name="csrf" value=(c.csrf);
            label for="ods_code" { "ODS code" }
            input id="ods_code" name="ods_code" type="text" required minlength="3" maxlength="8" autocomplete="off";
            label for="name" { "Name" }
            input id="name" name="name" type="text" required maxlength="200" autocomplete="off";
            button type="submit" { "Register organisation" }
        }
    }
}

fn limits_form(c: &Console, o: &Organisation, limits: Option<(i64, i64)>) -> Markup {
    let id = |f: &str| format!("{f}-{}", o.ods_code);
    let (idle, max) = limits.map_or((String::new(), String::new()), |(i, m)| {
        (minutes(i), hours(m))
    });
    html! {
        form method="post" action=(format!("/ra/organisations/{}/session-limits", o.ods_code)) {
            fieldset {
                legend { (o.ods_code) " – " (o.name) }
                input type="hidden" name="csrf" value=(c.csrf);
                label for=(id("idle")) { "Idle timeout (minutes)" }
                input id=(id("idle")) name="idle_minutes" type="number" min="1" max="1440" step="any" required value=(idle);
                label for=(id("max")) { "Maximum session length (hours)" }
                input id=(id("max")) name="max_hours" type="number" min="0.1" max="24" step="any" required value=(max);
                button type="submit" { "Save session limits of " (o.ods_code) }
            }
        }
    }
}

fn policy_form(
    c: &Console,
    o: &Organisation,
    policy: Option<vsc_store::workstation::PolicyRow>,
) -> Markup {
    let id = |f: &str| format!("{f}-{}", o.ods_code);
    let allow = policy.is_some_and(|p| p.allow_unregistered);
    let switching = policy.is_some_and(|p| p.fast_user_switching);
    let grace = policy.map_or(0, |p| p.unlock_grace_minutes);
    html! {
        form method="post" action=(format!("/ra/organisations/{}/workstation-policy", o.ods_code)) {
            fieldset {
                legend { (o.ods_code) " – " (o.name) }
                input type="hidden" name="csrf" value=(c.csrf);
                div class="check" {
                    input id=(id("allow-unregistered")) name=(ALLOW_UNREGISTERED) type="checkbox" value="true"
                        checked[allow] aria-describedby=(id("allow-unregistered-hint"));
                    label for=(id("allow-unregistered")) { "Allow unregistered workstations" }
                }
                p class="hint" id=(id("allow-unregistered-hint")) {
                    "Ticked: any workstation may open sign-in requests for cards issued by " (o.ods_code)
                    ". Unticked: only workstations registered with vsc may."
                }
                label for=(id("unlock-grace")) { "Unlock grace period (minutes, 0 = off)" }
                input id=(id("unlock-grace")) name=(UNLOCK_GRACE) type="number" min="0"
                    max=(vsc_proto::workstation::MAX_UNLOCK_GRACE_MINUTES) step="1" required value=(grace)
                    aria-describedby=(id("unlock-grace-hint"));
                p class="hint" id=(id("unlock-grace-hint")) {
                    "Within this many minutes of a lock, the workstation re-opens the locked session without a new phone approval (at most "
                    (vsc_proto::workstation::MAX_UNLOCK_GRACE_MINUTES) ")."
                }
                div class="check" {
                    input id=(id("fast-user-switching")) name=(FAST_USER_SWITCHING) type="checkbox" value="true"
                        checked[switching] aria-describedby=(id("fast-user-switching-hint"));
                    label for=(id("fast-user-switching")) { "Allow fast user switching" }
                }
                p class="hint" id=(id("fast-user-switching-hint")) {
                    "Ticked: a second person may sign in on a locked workstation; the first person's session stays locked until they unlock it with their own approval. Unticked: a second sign-in ends the first session."
                }
                button type="submit" { "Save workstation policy of " (o.ods_code) }
            }
        }
    }
}

fn form_expired() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "Reload the page and try again.",
    )
}

/// `POST /ra/organisations`: through `ra::create_organisation`.
async fn create(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = form_fields(&body);
    if !form_csrf_ok(&c, &form) {
        return form_expired();
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let req = CreateOrganisation {
        ods_code: field("ods_code"),
        name: field("name"),
    };
    match ra::create_organisation(State(state.clone()), c.caller.clone(), ApiJson(req)).await {
        Ok(axum::Json(o)) => see_other(&format!(
            "/ra/organisations?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("created", &o.ods_code)
                .finish()
        )),
        Err(e) => refused(&c, &e, "/ra/organisations"),
    }
}

/// A positive number from a form field, as whole seconds (`unit` seconds each).
fn seconds(value: Option<&String>, unit: f64) -> Option<i64> {
    let v: f64 = value?.trim().parse().ok()?;
    let s = (v * unit).round();
    (v.is_finite() && v > 0.0 && s <= 1e9).then_some(s as i64)
}

/// `POST /ra/organisations/{ods}/session-limits`: through `ra::set_session_limits`.
async fn session_limits(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Path(ods): Path<String>,
    body: String,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = form_fields(&body);
    if !form_csrf_ok(&c, &form) {
        return form_expired();
    }
    let (Some(idle_seconds), Some(max_seconds)) = (
        seconds(form.get("idle_minutes"), 60.0),
        seconds(form.get("max_hours"), 3600.0),
    ) else {
        let e = ApiError::bad_request(
            code::INVALID_SESSION_LIMITS,
            "give the idle timeout in minutes and the maximum session length in hours, as numbers (for example 15 and 8)",
        );
        return refused(&c, &e, "/ra/organisations");
    };
    let req = SessionLimits {
        idle_seconds,
        max_seconds,
    };
    let shown = ods.trim().to_ascii_uppercase();
    match ra::set_session_limits(
        State(state.clone()),
        c.caller.clone(),
        Path(ods),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => see_other(&format!(
            "/ra/organisations?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("limits", &shown)
                .finish()
        )),
        Err(e) => refused(&c, &e, "/ra/organisations"),
    }
}

/// The workstation policy form's checkbox.
const ALLOW_UNREGISTERED: &str = "allow_unregistered_workstations";
/// The workstation policy form's grace period field.
const UNLOCK_GRACE: &str = "unlock_grace_minutes";
/// The workstation policy form's fast user switching checkbox.
const FAST_USER_SWITCHING: &str = "fast_user_switching";

/// The grace period field: absent is 0 (off); a whole number once, else `None` (refused).
fn grace_minutes(body: &str) -> Option<u32> {
    let mut values = url::form_urlencoded::parse(body.as_bytes())
        .filter(|(k, _)| k == UNLOCK_GRACE)
        .map(|(_, v)| v);
    let value = values.next();
    if values.next().is_some() {
        return None;
    }
    match value.as_deref().map(str::trim) {
        None | Some("") => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// A checkbox's value in a form body: a browser sends an unticked box not at all (no), a
/// ticked one once with its value `true`; `false` is taken too, for a hand-written POST.
/// Anything else, or the field more than once, is refused (`None`).
fn checkbox(body: &str, name: &str) -> Option<bool> {
    let mut values = url::form_urlencoded::parse(body.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v);
    let value = values.next();
    if values.next().is_some() {
        return None;
    }
    match value.as_deref().map(str::trim) {
        None => Some(false),
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => None,
    }
}

/// `POST /ra/organisations/{ods}/workstation-policy`: through `workstation::set_policy`.
async fn workstation_policy(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Path(ods): Path<String>,
    body: String,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = form_fields(&body);
    if !form_csrf_ok(&c, &form) {
        return form_expired();
    }
    let Some(allow_unregistered_workstations) = checkbox(&body, ALLOW_UNREGISTERED) else {
        let e = ApiError::bad_request(
            code::INVALID_REQUEST,
            "\"Allow unregistered workstations\" is either ticked (true) or left out (false); nothing was changed",
        );
        return refused(&c, &e, "/ra/organisations");
    };
    let Some(fast_user_switching) = checkbox(&body, FAST_USER_SWITCHING) else {
        let e = ApiError::bad_request(
            code::INVALID_REQUEST,
            "\"Allow fast user switching\" is either ticked (true) or left out (false); nothing was changed",
        );
        return refused(&c, &e, "/ra/organisations");
    };
    let Some(unlock_grace_minutes) = grace_minutes(&body) else {
        let e = ApiError::bad_request(
            code::INVALID_WORKSTATION_POLICY,
            "the unlock grace period is a whole number of minutes, 0 (off) to 15; nothing was changed",
        );
        return refused(&c, &e, "/ra/organisations");
    };
    let req = WorkstationPolicy {
        allow_unregistered_workstations,
        unlock_grace_minutes,
        fast_user_switching,
    };
    match workstation::set_policy(
        State(state.clone()),
        c.caller.clone(),
        Path(ods.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => see_other(&format!(
            "/ra/organisations?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("policy", &ods)
                .finish()
        )),
        Err(e) => refused(&c, &e, "/ra/organisations"),
    }
}

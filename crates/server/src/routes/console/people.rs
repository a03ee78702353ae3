//! The console's people pages: search (name, UID, email, within the RA's organisations; paged)
//! and a person's page (identity checks, positions with activities, RA roles, cards with their
//! state, renewal window (expiry, when it opens, due or forced by an RA, a renewal the phone has
//! not confirmed), the phones that held them and their certificates, the last
//! [`SIGN_INS_SHOWN`] sign-ins). The person's page reads
//! through the RA API's `get_person`, so the same scope rule and the same `person.view` audit
//! event apply, and the sign-ins are read only once that has admitted the RA; its action forms
//! come from `person_actions`.
//!
//! **Sign-ins.** Each row is a sign-in session: when the phone approved, where from, the role
//! used and how it ended. "Where from" is the context the phone showed for the request, which
//! the server wrote from its own registries at the time (so a workstation renamed since keeps
//! the name the person saw): a registered workstation's name and organisation, an unregistered
//! one's claimed name marked as such, or for the web sign-in page "web: " and the application's
//! registered name; the address is the one the server saw. A session nobody ended but whose
//! idle or absolute limit has passed shows as timed out at that moment.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use vsc_proto::Person;
use vsc_proto::signin::AuthContext;
use vsc_store::console::SignInRow;

use super::{console, page, person_actions, refused, scope_of, time_at};
use crate::routes::oidc::pages::internal_error_page;
use crate::routes::{Client, ra};
use crate::state::AppState;

/// Rows per search page.
pub const PAGE_SIZE: i64 = 25;
/// Sign-ins a person's page lists.
pub const SIGN_INS_SHOWN: i64 = 10;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra/people", get(search))
        .route("/ra/people/{uid}", get(person_page))
}

/// The search form, filled with `q` and the organisation filter `org`.
pub fn search_form(q: &str, org: &str) -> Markup {
    html! {
        form method="get" action="/ra/people" role="search" {
            label for="q" { "Name, UID or email" }
            input id="q" name="q" type="search" value=(q) autocomplete="off";
            label for="org" { "Organisation (ODS code)" }
            p class="hint" id="org-hint" { "Optional: only people registered at, or holding a position at, this organisation." }
            input id="org" name="org" type="text" value=(org) autocomplete="off" aria-describedby="org-hint" maxlength="10";
            button type="submit" { "Search" }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    page: i64,
}

/// The organisations a search looks in: the RA's scope, narrowed to `org` when one is given.
/// An `org` outside the scope gives an empty list (and a note saying so), never a wider search.
fn search_scope(scope: Option<Vec<String>>, org: &str) -> Result<Option<Vec<String>>, String> {
    if org.is_empty() {
        return Ok(scope);
    }
    let ods: vsc_core::OdsCode = org
        .parse()
        .map_err(|e: vsc_core::IdError| format!("“{org}” is not an ODS code: {e}"))?;
    let ods = ods.to_string();
    match scope {
        None => Ok(Some(vec![ods])),
        Some(mine) if mine.contains(&ods) => Ok(Some(vec![ods])),
        Some(_) => Err(format!("{ods} is not one of your organisations")),
    }
}

async fn search(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Query(sq): Query<SearchQuery>,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q: String = sq.q.chars().take(100).collect();
    let org: String = sq.org.trim().to_uppercase().chars().take(10).collect();
    let page_no = sq.page.clamp(0, 10_000);
    let (scope, refusal) = match search_scope(scope_of(&state, &c.caller), &org) {
        Ok(scope) => (scope, None),
        Err(why) => (Some(Vec::new()), Some(why)),
    };
    let found = async {
        let mut conn = state.store().pool().acquire().await?;
        vsc_store::console::search_people(
            &mut conn,
            &q,
            scope.as_deref(),
            PAGE_SIZE + 1,
            page_no * PAGE_SIZE,
        )
        .await
    }
    .await;
    let mut people = match found {
        Ok(p) => p,
        Err(e) => return internal_error_page(e.into()),
    };
    let more = people.len() as i64 > PAGE_SIZE;
    people.truncate(PAGE_SIZE as usize);
    let link = |p: i64| {
        format!(
            "/ra/people?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &q)
                .append_pair("org", &org)
                .append_pair("page", &p.to_string())
                .finish()
        )
    };
    page(
        &c,
        StatusCode::OK,
        "People",
        html! {
            h1 { "People" }
            (search_form(&q, &org))
            p { a href="/ra/people/new" { "Create a person" } }
            @if let Some(why) = &refusal {
                div class="error" role="alert" { p { (why) } }
            } @else if people.is_empty() {
                p { "Nobody found." }
            } @else {
                table {
                    caption {
                        @if org.is_empty() { "People in your organisations" } @else { "People at " (org) }
                        @if !q.is_empty() { " matching “" (q) "”" }
                    }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "UID" } th scope="col" { "Email" } th scope="col" { "Registered by" } } }
                    tbody {
                        @for p in &people {
                            tr {
                                td { a href=(format!("/ra/people/{}", p.uid)) { (p.family_name) ", " (p.given_name) } }
                                td { (p.uid) }
                                td { (p.email.as_deref().unwrap_or("")) }
                                td { (p.registered_by) }
                            }
                        }
                    }
                }
                nav class="pager" aria-label="Pages" {
                    @if page_no > 0 { a href=(link(page_no - 1)) { "Previous" } }
                    " Page " (page_no + 1) " "
                    @if more { a href=(link(page_no + 1)) { "Next" } }
                }
            }
        },
    )
}

async fn person_page(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // `get_person` decides whether this RA may see the person at all; nothing else is read
    // before it has.
    let p = match ra::get_person(State(state.clone()), c.caller.clone(), Path(uid)).await {
        Ok(axum::Json(p)) => p,
        Err(e) => return refused(&c, &e, "/ra/people"),
    };
    let sign_ins = async {
        let mut conn = state.store().pool().acquire().await?;
        vsc_store::console::last_sign_ins(&mut conn, &p.uid, SIGN_INS_SHOWN).await
    }
    .await;
    let sign_ins = match sign_ins {
        Ok(rows) => rows,
        Err(e) => return internal_error_page(e.into()),
    };
    // Renewal (issue 14): each active card's window, an RA's order and an unfinished renewal.
    let renewals = async {
        let mut conn = state.store().pool().acquire().await?;
        let mut out = HashMap::new();
        for card in &p.cards {
            out.insert(
                card.id.clone(),
                ra::card_renewal_facts(&state, &mut conn, card).await?,
            );
        }
        Ok::<_, crate::error::ApiError>(out)
    }
    .await;
    let renewals = match renewals {
        Ok(r) => r,
        Err(e) => return internal_error_page(e),
    };
    page(
        &c,
        StatusCode::OK,
        &format!("{} {}", p.given_name, p.family_name),
        html! {
            (person_view(&p, &renewals))
            (sign_ins_view(&sign_ins, state.now_unix()))
            (person_actions::person_forms(&c, &p, &renewals))
        },
    )
}

/// The person's last sign-ins, newest first.
fn sign_ins_view(rows: &[SignInRow], now: i64) -> Markup {
    html! {
        h2 { "Last sign-ins" }
        @if rows.is_empty() {
            p { "No sign-ins yet." }
        } @else {
            table {
                caption { "Last sign-ins, newest first (up to " (SIGN_INS_SHOWN) ")" }
                thead {
                    tr {
                        th scope="col" { "Signed in" }
                        th scope="col" { "From" }
                        th scope="col" { "Address" }
                        th scope="col" { "Role" }
                        th scope="col" { "Card" }
                        th scope="col" { "Ended" }
                    }
                }
                tbody {
                    @for s in rows {
                        @let context = s.context.as_deref().and_then(|c| serde_json::from_str::<AuthContext>(c).ok());
                        tr {
                            td { (time_at(s.auth_time)) }
                            td { (signed_in_from(&s.workstation_id, context.as_ref())) }
                            td { (context.as_ref().map_or("", |c| c.client_address.as_str())) }
                            td {
                                @match (&s.role_name, &s.role_code, &s.role_organisation) {
                                    (Some(name), Some(code), Some(org)) => { (name) " (" (code) ") at " (org) }
                                    _ => "none chosen",
                                }
                            }
                            td { (s.card_id) }
                            td { (how_it_ended(s, now)) }
                        }
                    }
                }
            }
        }
    }
}

/// Where a sign-in came from, as the phone showed it.
fn signed_in_from(workstation_id: &str, context: Option<&AuthContext>) -> Markup {
    let Some(c) = context else {
        return html! { (workstation_id) };
    };
    // The web sign-in page's requests carry `web:<flow>` and the application's registered name.
    if !c.web_client.is_empty() || workstation_id.starts_with("web:") {
        let client = if c.web_client.is_empty() {
            "browser"
        } else {
            c.web_client.as_str()
        };
        return html! { "web: " (client) };
    }
    if c.registered {
        html! { (c.workstation_name) " (" (c.organisation) ")" }
    } else {
        // Nobody vouches for an unregistered workstation's name.
        html! { (c.workstation_name) " " span class="hint" { "(unregistered workstation; name not verified)" } }
    }
}

/// "Active", or when and why the session ended.
fn how_it_ended(s: &SignInRow, now: i64) -> Markup {
    if let Some(at) = s.ended_at {
        let reason = s.end_reason.as_deref().unwrap_or("");
        return html! {
            @match end_reason_text(reason) {
                Some(why) => (why),
                None if reason.is_empty() => "Ended",
                None => { "Ended (" (reason) ")" }
            }
            ", " (time_at(at))
        };
    }
    // Nothing marks a session that ran out of time: it ends at whichever limit came first.
    let idle_end = s.last_used + s.idle_seconds;
    if idle_end.min(s.expires_at) <= now {
        return if idle_end < s.expires_at {
            html! { "Timed out (idle), " (time_at(idle_end)) }
        } else {
            html! { "Timed out (session limit), " (time_at(s.expires_at)) }
        };
    }
    html! { span class="state-active" { "Active" } }
}

/// The words for a `sessions.end_reason` written by the server; `None` for one it does not know
/// (shown as stored).
fn end_reason_text(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "logout" => "Signed out",
        "console-signout" => "Signed out of the RA console",
        "card-locked" => "Card locked",
        "card-cancelled" => "Card cancelled",
        "workstation-revoked" => "Workstation revoked",
        "position-ended" => "Role ended",
        "not-me-reported" => "Holder reported a sign-in they did not make",
        "reported-by-holder" => "Holder reported a signing request they did not make",
        _ => return None,
    })
}

fn date(t: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// A person's record; `renewals` holds each card's renewal facts (see [`card_view`]).
pub(crate) fn person_view(p: &Person, renewals: &HashMap<String, ra::CardRenewalFacts>) -> Markup {
    html! {
        h1 { (p.given_name) " " (p.family_name) }
        dl class="facts" {
            dt { "UID" } dd { (p.uid) }
            dt { "Email" } dd { (p.email.as_deref().unwrap_or("—")) }
            dt { "Registered by" } dd { (p.registered_by) }
        }
        h2 { "Identity checks" }
        @if p.identity_checks.is_empty() { p { "None recorded." } } @else {
            table {
                thead { tr { th scope="col" { "Date" } th scope="col" { "Level" } th scope="col" { "Evidence" } th scope="col" { "Checked by" } th scope="col" { "Organisation" } } }
                tbody { @for i in &p.identity_checks { tr { td { (date(i.checked_at)) } td { (i.level) } td { (i.evidence.join(", ")) } td { (i.checked_by) @if let Some(r) = &i.recorded_by { br; span class="hint" { "recorded by " (r) } } } td { (i.organisation) } } } }
            }
        }
        h2 { "Positions" }
        @if p.positions.is_empty() { p { "No positions." } } @else {
            table {
                thead { tr { th scope="col" { "Role" } th scope="col" { "Code" } th scope="col" { "Organisation" } th scope="col" { "Activities" } } }
                tbody { @for pos in &p.positions { tr { td { (pos.role_name) } td { (pos.role_code) } td { (pos.organisation) } td { (pos.activities.join(", ")) } } } }
            }
        }
        h2 { "RA roles" }
        @if p.ra_roles.is_empty() { p { "No RA roles." } } @else {
            ul { @for r in &p.ra_roles { li { (r.role) " at " (r.organisation) } } }
        }
        h2 { "Cards" }
        @if p.cards.is_empty() { p { "No cards." } } @else {
            @for card in &p.cards {
                (card_view(card, renewals.get(&card.id)))
            }
        }
    }
}

/// One card: its state, its renewal (window, an RA's order, a renewal the phone has not
/// confirmed), the phones that held it (replacements keep them all) and its certificates, the
/// revoked ones included. Every text an RA or a phone supplied is escaped by maud.
fn card_view(card: &vsc_proto::Card, renewal: Option<&ra::CardRenewalFacts>) -> Markup {
    let heading = format!("card-{}-heading", card.id);
    html! {
        section class="card" aria-labelledby=(heading) {
            h3 id=(heading) { "Card " (card.id) " – " span class=(format!("state state-{}", card.state)) { (card.state) } }
            p { "Issued by " (card.issued_by) @if let Some(d) = &card.device_id { ", on device " (d) } }
            @if let Some(r) = renewal {
                @if let Some(w) = &r.window {
                    h4 { "Renewal" }
                    dl class="facts" {
                        dt { "Certificates expire" } dd { (time_at(w.not_after.unix_timestamp())) }
                        dt { "Renewal window opens" } dd { (time_at(w.opens_at.unix_timestamp())) " (" (w.window_days) " days before expiry)" }
                        dt { "Renewal" } dd {
                            @if w.forced { strong { "Due now: an RA asked for it" } }
                            @else if w.due { strong { "Due: the holder should renew" } }
                            @else { "Not due yet" }
                        }
                        @if let Some(o) = &r.order {
                            dt { "Renew-now order" } dd { "By " (o.ordered_by) ", " (time_at(o.ordered_at)) @if !o.reason.is_empty() { ": " (o.reason) } }
                        }
                        @if let Some(u) = &r.unfinished {
                            dt { "Unfinished renewal" } dd { "New certificates issued " (time_at(u.created_at)) "; the phone must confirm by " (time_at(u.expires_at)) ", or they are revoked" }
                        }
                    }
                }
            }
            @if let Some(pr) = &card.pending_replacement {
                div class="notice" role="status" {
                    p {
                        "Waiting for a replacement phone"
                        @if pr.lost { " (the old phone was reported lost; its certificates are revoked)" }
                        ": " (pr.reason)
                    }
                }
            }
            @if !card.devices.is_empty() {
                table {
                    caption { "Phones that held card " (card.id) ", oldest first" }
                    thead { tr { th scope="col" { "Device" } th scope="col" { "Platform" } th scope="col" { "Enrolled" } th scope="col" { "Left" } } }
                    tbody {
                        @for d in &card.devices {
                            tr {
                                td { (d.device_id) }
                                td { (d.platform) " " (d.model) }
                                td { (time_at(d.bound_at.unix_timestamp())) }
                                td {
                                    @match d.unbound_at {
                                        Some(at) => { (time_at(at.unix_timestamp())) " (" (unbound_text(d.unbound_reason.as_deref().unwrap_or(""))) ")" }
                                        None => "holds the card",
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !card.certificates.is_empty() {
                table {
                    caption { "Certificates of card " (card.id) }
                    thead { tr { th scope="col" { "Certificate" } th scope="col" { "Use" } th scope="col" { "Issued" } th scope="col" { "Expires" } th scope="col" { "Revoked" } } }
                    tbody {
                        @for cert in &card.certificates {
                            tr {
                                td { (cert.serial) }
                                td { (cert.usage) }
                                td { @if let Some(t) = cert.not_before { (date(t)) } }
                                td { (date(cert.not_after)) }
                                td {
                                    @if cert.revoked {
                                        "yes"
                                        @if let Some(t) = cert.revoked_at { ", " (date(t)) }
                                        @if let Some(r) = &cert.revocation_reason { " (" (r) ")" }
                                    } @else { "no" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Why a phone stopped holding a card, in words.
fn unbound_text(reason: &str) -> &str {
    match reason {
        "replaced" => "replaced by a new phone",
        "lost" => "reported lost",
        "card-cancelled" => "card cancelled",
        other => other,
    }
}

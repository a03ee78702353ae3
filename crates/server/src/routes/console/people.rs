//! The console's people pages: search (name, UID, email, within the RA's organisations; paged)
//! and a person's page (identity checks, positions with activities, RA roles, cards with their
//! state and certificates). The person's page reads through the RA API's `get_person`, so the
//! same scope rule and the same `person.view` audit event apply; its action forms come from
//! `person_actions`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use vsc_proto::Person;

use super::{console, page, person_actions, refused, scope_of};
use crate::routes::oidc::pages::internal_error_page;
use crate::routes::{Client, ra};
use crate::state::AppState;

/// Rows per search page.
pub const PAGE_SIZE: i64 = 25;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra/people", get(search))
        .route("/ra/people/{uid}", get(person_page))
}

/// The search form, filled with `q`.
pub fn search_form(q: &str) -> Markup {
    html! {
        form method="get" action="/ra/people" role="search" {
            label for="q" { "Name, UID or email" }
            input id="q" name="q" type="search" value=(q) autocomplete="off";
            button type="submit" { "Search" }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: i64,
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
    let page_no = sq.page.clamp(0, 10_000);
    let scope = scope_of(&state, &c.caller);
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
            (search_form(&q))
            p { a href="/ra/people/new" { "Create a person" } }
            @if people.is_empty() {
                p { "Nobody found." }
            } @else {
                table {
                    caption { "People in your organisations" @if !q.is_empty() { " matching “" (q) "”" } }
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
    match ra::get_person(State(state.clone()), c.caller.clone(), Path(uid)).await {
        Ok(axum::Json(p)) => page(
            &c,
            StatusCode::OK,
            &format!("{} {}", p.given_name, p.family_name),
            html! { (person_view(&p)) (person_actions::person_forms(&c, &p)) },
        ),
        Err(e) => refused(&c, &e, "/ra/people"),
    }
}

fn date(t: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// A person's record.
pub fn person_view(p: &Person) -> Markup {
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
                tbody { @for i in &p.identity_checks { tr { td { (date(i.checked_at)) } td { (i.level) } td { (i.evidence.join(", ")) } td { (i.checked_by) } td { (i.organisation) } } } }
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
                section class="card" aria-label=(format!("Card {}", card.id)) {
                    h3 { "Card " (card.id) " – " span class=(format!("state state-{}", card.state)) { (card.state) } }
                    p { "Issued by " (card.issued_by) @if let Some(d) = &card.device_id { ", on device " (d) } }
                    @if !card.certificates.is_empty() {
                        table {
                            thead { tr { th scope="col" { "Certificate" } th scope="col" { "Use" } th scope="col" { "Expires" } th scope="col" { "Revoked" } } }
                            tbody { @for cert in &card.certificates { tr { td { (cert.serial) } td { (cert.usage) } td { (date(cert.not_after)) } td { @if cert.revoked { "yes" } @else { "no" } } } } }
                        }
                    }
                }
            }
        }
    }
}

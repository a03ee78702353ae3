//! The audit trail, filtered by person, card, organisation, actor and time, exportable as CSV.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /ra/audit?person=&card=&organisation=&actor=&from=&to=&before=` | console session; any RA role | the events in the RA's scope matching the filter, newest first, 50 a page (`before`: the sequence number the page starts below) |
//! | `GET /ra/audit.csv?…` (same filter) | the same | the same events as CSV, at most [`EXPORT_CAP`] (the newest) |
//!
//! **Who.** Reading the audit trail is the permission matrix's `RaAction::View`, which every RA
//! role holds (`vsc_core::ra`), with the API's organisation scope: an RA sees the events whose
//! organisation is one where they hold any RA role; an RA with a role at the national
//! organisation sees every event. **Events without an organisation** (sign-in refusals of
//! unknown callers, instance events, requests refused before an organisation was known) are
//! shown to national RAs only: they are not attributable to one organisation and may concern
//! anyone's. Filtering by another organisation than one's own finds nothing.
//!
//! **Filter.** Person: events whose subject is the UID or whose detail names it (`"uid"`, e.g.
//! card events); card: the subject or the detail's `"card_id"`; organisation: an ODS code;
//! actor: a UID, `system` or `anonymous`; from and to: dates (UTC, both inclusive). Bad input is
//! named on the page (400), never an error page.
//!
//! **Audited.** Each page view appends `audit.view` and each export `audit.export` (actor the
//! RA, subject the filtered person or card, organisation the filtered one, detail the filter
//! and the number of rows) before anything is shown; if that append fails nothing is shown.
//!
//! **CSV.** RFC 4180 (every field quoted, quotes doubled, CRLF line ends), a header row,
//! `Content-Disposition: attachment`; a cell beginning with `=`, `+`, `-`, `@`, tab or carriage
//! return gets a leading `'` so that a spreadsheet never reads it as a formula.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use vsc_store::AuditEvent;
use vsc_store::console_audit::{self as db, AuditFilter};

use super::{Console, console, page, scope_of};
use crate::error::ApiResult;
use crate::routes::Client;
use crate::routes::oidc::pages::internal_error_page;
use crate::state::AppState;

/// Events a page shows.
pub const PAGE_SIZE: i64 = 50;
/// Most events an export holds.
pub const EXPORT_CAP: i64 = 10_000;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra/audit", get(trail))
        .route("/ra/audit.csv", get(export))
}

/// The filter as the form sends it.
#[derive(Debug, Default, Deserialize)]
struct FilterForm {
    #[serde(default)]
    person: String,
    #[serde(default)]
    card: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

impl FilterForm {
    /// The query string for this filter (without `before`).
    fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                [
                    ("person", &self.person),
                    ("card", &self.card),
                    ("organisation", &self.organisation),
                    ("actor", &self.actor),
                    ("from", &self.from),
                    ("to", &self.to),
                ]
                .into_iter()
                .filter(|(_, v)| !v.trim().is_empty()),
            )
            .finish()
    }

    /// The checked filter and page start, or what is wrong with each field.
    fn parse(&self) -> Result<(AuditFilter, Option<i64>), Vec<String>> {
        let mut problems = Vec::new();
        let mut filter = AuditFilter::default();
        let person = self.person.trim();
        if !person.is_empty() {
            match person.parse::<vsc_core::Uid>() {
                Ok(u) => filter.person = u.to_string(),
                Err(_) => problems.push("Person UID: give the 12-digit UID.".to_owned()),
            }
        }
        let card = self.card.trim();
        if !card.is_empty() {
            if card.len() <= 64
                && card
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                filter.card = card.to_ascii_lowercase();
            } else {
                problems.push(
                    "Card id: letters and digits only, as shown on the person's page.".to_owned(),
                );
            }
        }
        let org = self.organisation.trim();
        if !org.is_empty() {
            match org.parse::<vsc_core::OdsCode>() {
                Ok(o) => filter.organisation = o.to_string(),
                Err(_) => problems
                    .push("Organisation: give an ODS code (3 to 8 letters and digits).".to_owned()),
            }
        }
        let actor = self.actor.trim();
        if !actor.is_empty() {
            if actor == "system" || actor == "anonymous" {
                filter.actor = actor.to_owned();
            } else {
                match actor.parse::<vsc_core::Uid>() {
                    Ok(u) => filter.actor = u.to_string(),
                    Err(_) => problems.push(
                        "Actor: give a 12-digit UID, \"system\" or \"anonymous\".".to_owned(),
                    ),
                }
            }
        }
        let from = day_start_ms(&self.from, "From", &mut problems);
        let to = day_start_ms(&self.to, "To", &mut problems);
        filter.from_ms = from;
        // "To" is inclusive: up to the end of that day.
        filter.to_ms = to.map(|t| t.saturating_add(86_400_000));
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            problems.push("From is after To.".to_owned());
        }
        let before = match self.before.trim() {
            "" => None,
            b => {
                match b.parse::<i64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        problems.push("The page asked for does not exist; start again from the newest events.".to_owned());
                        None
                    }
                }
            }
        };
        if problems.is_empty() {
            Ok((filter, before))
        } else {
            Err(problems)
        }
    }
}

/// Midnight UTC of a `YYYY-MM-DD` date, as Unix milliseconds; empty is `None`.
fn day_start_ms(value: &str, field: &str, problems: &mut Vec<String>) -> Option<i64> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let parsed = (|| {
        let mut parts = v.splitn(3, '-');
        let year: i32 = parts.next()?.parse().ok()?;
        let month: u8 = parts.next()?.parse().ok()?;
        let day: u8 = parts.next()?.parse().ok()?;
        if !(1970..=9999).contains(&year) {
            return None;
        }
        let date =
            time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
        Some(date.midnight().assume_utc().unix_timestamp() * 1000)
    })();
    if parsed.is_none() {
        problems.push(format!(
            "{field}: give a date as YYYY-MM-DD (for example 2025-03-31)."
        ));
    }
    parsed
}

/// An event's time, `YYYY-MM-DD HH:MM:SS` UTC.
fn when(at_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn filter_form(f: &FilterForm) -> Markup {
    let field = |name: &str, label: &str, value: &str, kind: &str, hint: &str| {
        html! {
            label for=(format!("f-{name}")) { (label) }
            @if !hint.is_empty() { span class="hint" id=(format!("f-{name}-hint")) { (hint) } }
            input id=(format!("f-{name}")) name=(name) type=(kind) value=(value) autocomplete="off"
                aria-describedby=[(!hint.is_empty()).then(|| format!("f-{name}-hint"))];
        }
    };
    html! {
        form method="get" action="/ra/audit" role="search" {
            fieldset {
                legend { "Filter" }
                (field("person", "Person UID", &f.person, "text", ""))
                (field("card", "Card id", &f.card, "text", ""))
                (field("organisation", "Organisation (ODS code)", &f.organisation, "text", ""))
                (field("actor", "Actor UID", &f.actor, "text", "who did it: a UID, system or anonymous"))
                (field("from", "From date", &f.from, "date", "YYYY-MM-DD, UTC"))
                (field("to", "To date (inclusive)", &f.to, "date", "YYYY-MM-DD, UTC"))
                button type="submit" { "Show events" }
                " " a href="/ra/audit" { "Clear" }
            }
        }
    }
}

fn problems_page(c: &Console, f: &FilterForm, problems: &[String]) -> Response {
    page(
        c,
        StatusCode::BAD_REQUEST,
        "Audit trail",
        html! {
            h1 { "Audit trail" }
            div class="error" role="alert" {
                p { "The filter could not be used:" }
                ul { @for p in problems { li { (p) } } }
            }
            (filter_form(f))
        },
    )
}

/// Appends the `audit.view` or `audit.export` event of this read.
async fn audit_read(
    state: &AppState,
    c: &Console,
    action: &str,
    filter: &AuditFilter,
    rows: usize,
) -> ApiResult<()> {
    let subject = if filter.person.is_empty() {
        &filter.card
    } else {
        &filter.person
    };
    let detail = serde_json::json!({
        "person": filter.person, "card": filter.card, "organisation": filter.organisation,
        "actor": filter.actor, "from_ms": filter.from_ms, "to_ms": filter.to_ms, "rows": rows,
    });
    let mut tx = state.write().await?;
    state
        .append_audit(
            &mut tx,
            &c.caller
                .ctx
                .event(action, subject, &filter.organisation, detail),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn load(
    state: &AppState,
    filter: &AuditFilter,
    scope: Option<&[String]>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEvent>, vsc_store::StoreError> {
    let mut conn = state.store().pool().acquire().await?;
    db::events(&mut conn, filter, scope, before, limit).await
}

/// `GET /ra/audit`.
async fn trail(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    query: Result<Query<FilterForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(Query(f)) = query else {
        return problems_page(
            &c,
            &FilterForm::default(),
            &["The filter could not be read; fill in the form again.".to_owned()],
        );
    };
    let (filter, before) = match f.parse() {
        Ok(p) => p,
        Err(problems) => return problems_page(&c, &f, &problems),
    };
    let scope = scope_of(&state, &c.caller);
    let mut events = match load(&state, &filter, scope.as_deref(), before, PAGE_SIZE + 1).await {
        Ok(e) => e,
        Err(e) => return internal_error_page(e.into()),
    };
    let more = events.len() as i64 > PAGE_SIZE;
    events.truncate(PAGE_SIZE as usize);
    if let Err(e) = audit_read(&state, &c, "audit.view", &filter, events.len()).await {
        return internal_error_page(e);
    }
    let q = f.query();
    let older = events.last().map(|e| {
        let mut s = url::form_urlencoded::Serializer::new(q.clone());
        s.append_pair("before", &e.seq.to_string());
        format!("/ra/audit?{}", s.finish())
    });
    let outside = !filter.organisation.is_empty()
        && scope
            .as_ref()
            .is_some_and(|s| !s.contains(&filter.organisation));
    page(
        &c,
        StatusCode::OK,
        "Audit trail",
        html! {
            h1 { "Audit trail" }
            p {
                @match &scope {
                    None => "Events of every organisation, and those without one (national RA).",
                    Some(orgs) => { "Events of your organisations: " (orgs.join(", ")) "." }
                }
            }
            (filter_form(&f))
            p { a href=(format!("/ra/audit.csv?{q}")) download { "Download these events as CSV" } " (at most the newest " (EXPORT_CAP) ")" }
            @if outside {
                div class="error" role="alert" { p { (filter.organisation) " is not one of your organisations, so none of its events are shown." } }
            }
            @if events.is_empty() {
                p { "No events match." }
            } @else {
                table class="audit" {
                    caption { "Events, newest first" }
                    thead {
                        tr {
                            th scope="col" { "Time (UTC)" }
                            th scope="col" { "Actor" }
                            th scope="col" { "Action" }
                            th scope="col" { "Subject" }
                            th scope="col" { "Organisation" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "Source" }
                            th scope="col" { "Detail" }
                        }
                    }
                    tbody {
                        @for e in &events {
                            tr class=(format!("outcome-{}", e.outcome)) {
                                td { (when(e.at_ms)) }
                                td { (e.actor) }
                                td { (e.action) }
                                td { (e.subject) }
                                td { (e.organisation) }
                                td { (e.outcome) }
                                td { (e.source) }
                                td class="detail" { code { (e.detail) } }
                            }
                        }
                    }
                }
                nav class="pager" aria-label="Pages" {
                    @if before.is_some() { a href=(format!("/ra/audit?{q}")) { "Newest" } " " }
                    @if more { @if let Some(o) = &older { a href=(o) { "Older" } } }
                }
            }
        },
    )
}

/// One CSV field: quoted, quotes doubled, and a would-be formula disarmed.
fn csv_field(value: &str) -> String {
    let disarmed = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", disarmed.replace('"', "\"\""))
}

/// The CSV of `events`, with its header row.
fn csv(events: &[AuditEvent]) -> String {
    let mut out = String::from(
        "\"seq\",\"time_utc\",\"actor\",\"action\",\"subject\",\"organisation\",\"outcome\",\"source\",\"detail\"\r\n",
    );
    for e in events {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let row = [
            e.seq.to_string(),
            at,
            e.actor.clone(),
            e.action.clone(),
            e.subject.clone(),
            e.organisation.clone(),
            e.outcome.clone(),
            e.source.clone(),
            e.detail.clone(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// `GET /ra/audit.csv`.
async fn export(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    query: Result<Query<FilterForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(Query(f)) = query else {
        return problems_page(
            &c,
            &FilterForm::default(),
            &["The filter could not be read; fill in the form again.".to_owned()],
        );
    };
    let filter = match f.parse() {
        Ok((filter, _)) => filter,
        Err(problems) => return problems_page(&c, &f, &problems),
    };
    let scope = scope_of(&state, &c.caller);
    let events = match load(&state, &filter, scope.as_deref(), None, EXPORT_CAP).await {
        Ok(e) => e,
        Err(e) => return internal_error_page(e.into()),
    };
    if let Err(e) = audit_read(&state, &c, "audit.export", &filter, events.len()).await {
        return internal_error_page(e);
    }
    let now = state.now();
    let name = format!(
        "vsc-audit-{:04}{:02}{:02}-{:02}{:02}{:02}.csv",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut r = (StatusCode::OK, csv(&events)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_disarmed() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("say \"hi\", twice"), "\"say \"\"hi\"\", twice\"");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        for lead in ["+1", "-1", "@SUM(A1)", "\t=1", "\r=1"] {
            assert!(csv_field(lead).starts_with("\"'"), "{lead}");
        }
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn dates_are_checked() {
        let mut p = Vec::new();
        assert_eq!(day_start_ms("1970-01-02", "From", &mut p), Some(86_400_000));
        assert!(p.is_empty());
        assert_eq!(day_start_ms("yesterday", "From", &mut p), None);
        assert_eq!(day_start_ms("2025-02-30", "To", &mut p), None);
        assert_eq!(p.len(), 2);
    }
}

//! Bulk issuance in the console: upload a CSV, check it, run it, keep the results.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /ra/bulk` | console session | the upload form (paste the CSV), with the columns explained |
//! | `POST /ra/bulk/preview` | console session, CSRF | every row checked and its errors named; nothing written ([`ra_bulk::preview`]) |
//! | `POST /ra/bulk/run` | console session, CSRF | the rows run through the RA API's handlers ([`ra_bulk::run`]); the results, a results CSV to download and a printable sheet of activation letters with QR codes |
//! | `POST /ra/bulk/results.csv` | console session, CSRF | echoes the results CSV the results page carries, as a download |
//! | `GET /ra/bulk/letters.css` | anyone | the letters' print stylesheet |
//!
//! Who may issue what is decided per row by the API's handlers (see [`ra_bulk`]). Activation
//! codes are shown once: the server keeps only their hashes, so the results page is the only
//! place they appear; its download form re-posts the results CSV the page holds rather than the
//! server deriving it again. The upload, run and download routes are registered by
//! [`ra_bulk::routes`] under its larger body limit.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, PreEscaped, html};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use vsc_proto::bulk::{self, BulkRow, EXAMPLE};

use super::{Console, console, form_csrf_ok, form_fields, page, refused};
use crate::error::ApiError;
use crate::routes::oidc::pages::error_page;
use crate::routes::{Client, ra_bulk};
use crate::state::AppState;

/// The routes the console's own body limit suits.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra/bulk", get(upload))
        .route("/ra/bulk/letters.css", get(letters_css))
}

/// The routes that carry a whole CSV (merged by [`ra_bulk::routes`], with its body limit).
pub fn upload_routes() -> Router<AppState> {
    Router::new()
        .route("/ra/bulk/preview", post(preview))
        .route("/ra/bulk/run", post(run))
        .route("/ra/bulk/results.csv", post(results_csv))
}

const LETTERS_CSS: &str = "\
.bulk-csv { width: 100%; min-height: 12rem; font-family: monospace; font-size: 1rem; }
.bulk table { border-collapse: collapse; width: 100%; font-size: 1rem; }
.bulk th, .bulk td { border-bottom: 1px solid #d8dde0; padding: 0.3rem; text-align: left; vertical-align: top; }
.bulk .bad { color: #d5281b; }
.bulk code { word-break: break-all; }
.letter { border: 2px solid #212b32; padding: 1rem; margin: 1.5rem 0; break-inside: avoid; }
.letter .qr svg { width: 14rem; height: 14rem; }
.letter dt { font-weight: bold; }
@media print {
  .banner, .console-nav, .no-print { display: none; }
  main { max-width: none; padding: 0; }
  .letter { border: 0; margin: 0; break-after: page; }
}
";

async fn letters_css() -> Response {
    let mut r = (StatusCode::OK, LETTERS_CSS).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

fn stylesheet() -> Markup {
    html! { link rel="stylesheet" href="/ra/bulk/letters.css"; }
}

/// The upload form, with `csv` filled in.
fn upload_form(c: &Console, csv: &str) -> Markup {
    html! {
        form method="post" action="/ra/bulk/preview" class="no-print" {
            input type="hidden" name="csrf" value=(c.csrf);
            label for="csv" { "The CSV file's contents" }
            p class="hint" id="csv-hint" {
                "Open the file in a text editor, copy everything and paste it here. "
                "At most 1,000 rows and 1 MiB."
            }
            textarea id="csv" name="csv" class="bulk-csv" aria-describedby="csv-hint" spellcheck="false" required { (csv) }
            button type="submit" { "Check the rows" }
        }
    }
}

fn columns_help() -> Markup {
    html! {
        h2 { "Columns" }
        p { "The first row names the columns (in any order):" }
        ul {
            li { code { "given_name" } ", " code { "family_name" } ", " code { "email" } " (required; a person already registered with it is refused)" }
            li { code { "organisation" } ": the ODS code registering the person and issuing the card" }
            li { code { "role_code" } " (" code { "S8000:G8000:R8000" } "), " code { "role_name" } " (optional), " code { "activities" } " (codes separated by spaces or semicolons)" }
            li { code { "evidence" } " (e.g. " code { "passport proof-of-address" } "), " code { "level" } " (3 for a card)" }
            li { code { "checker_uid" } ": who saw the evidence (an RA Manager, RA Agent or ID Checker of the organisation)" }
        }
        p { "Example:" }
        pre { code { (EXAMPLE) } }
    }
}

async fn upload(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    page(
        &c,
        StatusCode::OK,
        "Bulk issuance",
        html! {
            (stylesheet())
            div class="bulk" {
                h1 { "Bulk issuance" }
                p {
                    "Register people, record their identity checks, assign their positions and issue "
                    "their cards from one CSV file. You see every row checked before anything is written."
                }
                (upload_form(&c, ""))
                (columns_help())
            }
        },
    )
}

/// The session and a form whose CSRF token fits it, or the answer to send instead.
async fn form_of(
    state: &AppState,
    ctx: &crate::state::AuditContext,
    headers: &HeaderMap,
    body: &str,
) -> Result<(Console, std::collections::HashMap<String, String>), Response> {
    let c = console(state, ctx, headers).await?;
    let form = form_fields(body);
    if !form_csrf_ok(&c, &form) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Reload the page and try again.",
        ));
    }
    Ok((c, form))
}

/// A file that could not be read: the API's message and the form again.
fn file_refused(c: &Console, e: &ApiError, csv: &str) -> Response {
    if e.status.is_server_error() {
        return refused(c, e, "/ra/bulk");
    }
    page(
        c,
        e.status,
        "Bulk issuance: the file cannot be read",
        html! {
            (stylesheet())
            div class="bulk" {
                h1 { "The file cannot be read" }
                div class="error" role="alert" { p { (e.message) } }
                p class="hint" { "(" (e.code) ")" }
                (upload_form(c, csv))
            }
        },
    )
}

fn errors_cell(r: &BulkRow) -> Markup {
    html! {
        @if r.errors.is_empty() {
            "—"
        } @else {
            ul class="bad" {
                @for e in &r.errors { li { strong { (e.field) } ": " (e.message) " (" code { (e.code) } ")" } }
            }
        }
    }
}

async fn preview(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (c, form) = match form_of(&state, &ctx, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let csv = form.get("csv").map(String::as_str).unwrap_or("");
    let rows = match ra_bulk::preview(&state, &c.caller, csv).await {
        Ok(rows) => rows,
        Err(e) => return file_refused(&c, &e, csv),
    };
    let ready = rows.iter().filter(|r| r.is_ok()).count();
    let bad = rows.len() - ready;
    page(
        &c,
        StatusCode::OK,
        "Bulk issuance: check",
        html! {
            (stylesheet())
            div class="bulk" {
                h1 { "Check the rows" }
                p { (rows.len()) " rows: " strong { (ready) " ready" } ", " strong class=[(bad > 0).then_some("bad")] { (bad) " with errors" } ". Nothing has been written yet." }
                table {
                    caption { "Every row of the file" }
                    thead { tr { th scope="col" { "Row" } th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Organisation" } th scope="col" { "Check" } } }
                    tbody {
                        @for r in &rows {
                            tr {
                                td { (r.row) }
                                td { (r.given_name) " " (r.family_name) }
                                td { (r.email) }
                                td { (r.organisation) }
                                td { @if r.is_ok() { "Ready" } @else { (errors_cell(r)) } }
                            }
                        }
                    }
                }
                @if ready > 0 {
                    form method="post" action="/ra/bulk/run" {
                        input type="hidden" name="csrf" value=(c.csrf);
                        input type="hidden" name="csv" value=(csv);
                        @if bad > 0 { p { "Rows with errors are skipped; correct them and upload them again later." } }
                        p { "Each row is registered, identity-checked, placed and issued a card in turn; a row that is refused does not stop the others." }
                        button type="submit" { "Issue cards for the " (ready) " ready rows" }
                    }
                } @else {
                    p { "No row is ready. Correct the file and check it again." }
                }
                h2 { "Check another file" }
                (upload_form(&c, csv))
            }
        },
    )
}

/// The QR code of `url` as inline SVG.
fn qr_svg(url: &str) -> Option<String> {
    let svg = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .ok()?
        .render::<svg::Color<'_>>()
        .min_dimensions(224, 224)
        .quiet_zone(true)
        .build();
    let at = svg.find("<svg")?;
    Some(svg[at..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code of the activation link\" ",
        1,
    ))
}

fn expiry(r: &BulkRow) -> String {
    r.activation
        .as_ref()
        .map(|a| {
            let t = a.expires_at;
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

fn letter(r: &BulkRow) -> Markup {
    let Some(a) = &r.activation else {
        return html! {};
    };
    html! {
        article class="letter" aria-label=(format!("Activation letter for {} {}", r.given_name, r.family_name)) {
            h3 { "Your NHS virtual smartcard" }
            p { "Dear " (r.given_name) " " (r.family_name) "," }
            p {
                "A virtual smartcard has been issued to you by " (r.organisation) ". "
                "To put it on your phone, open the vsc authenticator and scan this code, "
                "or enter the activation code below. You will then choose a passcode."
            }
            div class="qr" { @if let Some(svg) = qr_svg(&a.url) { (PreEscaped(svg)) } }
            dl {
                dt { "Your UID" } dd { (r.uid.as_deref().unwrap_or("")) }
                dt { "Activation code" } dd { code { (a.code) } }
                dt { "Valid until" } dd { (expiry(r)) }
                dt { "Server fingerprint" } dd { code { (a.ca_fingerprint) } }
            }
            p { "The code works once. Do not share it; nobody from the NHS will ask you for it." }
        }
    }
}

async fn run(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (c, form) = match form_of(&state, &ctx, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let csv = form.get("csv").map(String::as_str).unwrap_or("");
    let rows = match ra_bulk::run(&state, &c.caller, csv).await {
        Ok(rows) => rows,
        Err(e) => return file_refused(&c, &e, csv),
    };
    let issued = rows.iter().filter(|r| r.is_ok()).count();
    let results = bulk::results_csv(&rows);
    page(
        &c,
        StatusCode::OK,
        "Bulk issuance: results",
        html! {
            (stylesheet())
            div class="bulk" {
                div class="no-print" {
                    h1 { "Bulk issuance results" }
                    p { (rows.len()) " rows: " strong { (issued) " cards issued" } ", " strong class=[(issued < rows.len()).then_some("bad")] { (rows.len() - issued) " not issued" } "." }
                    div class="error" role="alert" {
                        p { "The activation codes are shown only on this page. Download the results and print the letters before you leave it." }
                    }
                    form method="post" action="/ra/bulk/results.csv" {
                        input type="hidden" name="csrf" value=(c.csrf);
                        input type="hidden" name="csv" value=(results);
                        button type="submit" { "Download the results (CSV)" }
                    }
                    table {
                        caption { "What happened to each row" }
                        thead { tr { th scope="col" { "Row" } th scope="col" { "Name" } th scope="col" { "Outcome" } th scope="col" { "UID" } th scope="col" { "Card" } th scope="col" { "Activation" } th scope="col" { "Problems" } } }
                        tbody {
                            @for r in &rows {
                                tr {
                                    td { (r.row) }
                                    td { @if let Some(uid) = &r.uid { a href=(format!("/ra/people/{uid}")) { (r.given_name) " " (r.family_name) } } @else { (r.given_name) " " (r.family_name) } }
                                    td class=[(!r.is_ok()).then_some("bad")] { (r.outcome) @if !r.done.is_empty() && !r.is_ok() { " (done: " (r.done.join(", ")) ")" } }
                                    td { (r.uid.as_deref().unwrap_or("")) }
                                    td { (r.card_id.as_deref().unwrap_or("")) }
                                    td { @if let Some(a) = &r.activation { code { (a.code) } br; a class="activation-link" href=(a.url) { "link" } } }
                                    td { (errors_cell(r)) }
                                }
                            }
                        }
                    }
                    @if issued > 0 {
                        h2 { "Activation letters" }
                        p { "One letter a page when printed (use your browser's Print); hand or send each to its person." }
                    }
                }
                @for r in &rows { (letter(r)) }
                p class="no-print" { a href="/ra/bulk" { "Upload another file" } }
            }
        },
    )
}

async fn results_csv(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (_c, form) = match form_of(&state, &ctx, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let csv = form.get("csv").cloned().unwrap_or_default();
    let mut r = (StatusCode::OK, csv).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"vsc-bulk-results.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

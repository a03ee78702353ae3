//! A person's actions: create, identity checks, positions (assign, end), RA roles (give,
//! remove), cards (issue with QR and
//! activation letter, new activation, unlock, renew now, replace, cancel), with re-approval on
//! the phone for destructive actions.
//!
//! | route | caller (decided by the RA API) | what |
//! |---|---|---|
//! | `GET /ra/people/new`, `POST /ra/people/new` | create profile: RAM, RAA, IDC (`ra::create_person`) | create a person, then their page |
//! | `POST /ra/people/{uid}/identity-checks` | RAM, RAA, IDC (`ra::record_identity_check`) | evidence, level, organisation |
//! | `POST /ra/people/{uid}/positions` | RAM, RAA, Sponsor within its roles (`ra::assign_position`) | organisation, role code and name, activities |
//! | `POST /ra/positions/{id}/end` | whoever may assign the position (`ra::end_position`) | ends it and the sessions acting in it |
//! | `POST /ra/people/{uid}/ra-roles` | RAM (`ra::assign_ra_role`), **after re-approval on the phone** | RA role at an organisation |
//! | `POST /ra/people/{uid}/ra-roles/remove` | RAM at the role's organisation (`ra::remove_ra_role`) | takes an RA role away |
//! | `POST /ra/people/{uid}/cards` | RAM, RAA (`ra::issue_card`) | answers the activation letter (QR code, code, expiry) at once |
//! | `POST /ra/cards/{id}/activation` | RAM, RAA (`ra::reissue_activation`) | a new activation letter for a pending card |
//! | `POST /ra/cards/{id}/unlock` | RAM, RAA, Sponsor, LSA (`ra::unlock_card`) | the unlock code as QR code and text |
//! | `POST /ra/cards/{id}/renew-now` | RAM, RAA in the holder's organisations, never one's own card (`ra::renew_now_card`) | makes an active card's renewal due now, with a reason |
//! | `POST /ra/cards/{id}/replace` | RAM, RAA, never one's own card (`ra::replace_card`), **after re-approval on the phone** | moves an active or locked card to a new phone (reason, "the phone is lost"); answers the new activation letter at once |
//! | `POST /ra/cards/{id}/cancel` | RAM, RAA (`ra::cancel_card`), **after re-approval on the phone** | RFC 5280 reason code, reason, invalidity date |
//! | `GET /ra/reapprove/callback` | the browser that started the re-approval (state cookie, PKCE) | records the phone's approval and offers the action to confirm |
//!
//! Every POST carries the session's CSRF token (403 without it, nothing written) and goes to the
//! RA API's own handler, which decides; a refusal is shown with the API's words. Success answers
//! with a redirect to the person's page (post/redirect/get), except where a one-time code was
//! issued: its secret exists only in the API's answer, so that answer is rendered at once (the
//! activation letter, the unlock code) and never stored.
//!
//! **Re-approval.** Cancelling or replacing a card and giving an RA role need a fresh approval on the RA's
//! phone. The first POST checks the caller may see the subject (through the API's `get_card` /
//! `get_person`, so a hand-crafted POST outside the RA's scope gets the API's refusal), keeps the
//! action's fields in a short-lived state cookie and sends the browser to the provider with
//! `prompt=login` and `login_hint` = the RA's UID, as the console's own client for re-approvals
//! (`vsc-ra-console-reapproval`, public, PKCE). The authorization request's `nonce` is a digest of
//! this console session's CSRF token and the action's exact fields, so the grant the provider
//! stores says which action, in which console session, was approved. The callback redeems the
//! code in process (state cookie, PKCE, single use), requires the approving session to be the
//! same RA, and shows the action to confirm with the grant's id. The confirming POST runs only
//! if that grant is this client's, redeemed, for exactly these fields and this console session,
//! approved by this RA on the phone less than [`REAPPROVAL_SECONDS`] ago, and not used before:
//! the grant is revoked (atomically, `revoked_at IS NULL`) before the action runs, so one
//! approval runs one action once. Posting the action without a valid approval only starts a
//! new re-approval.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::{Markup, PreEscaped, html};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::{Deserialize, Serialize};
use vsc_core::{CardState, EvidenceType, RaRole};
use vsc_proto::{
    AssignPosition, CancelCard, Card, CardWithCode, CreatePerson, IssueCard, Person, RaRoleGrant,
    RecordIdentityCheck, RemoveRaRole,
};
use vsc_store::oidc as oidc_db;
use vsc_store::oidc_clients::ClientRow;

use super::{Console, console, form_csrf_ok, page, refused};
use crate::error::{ApiError, ApiResult};
use crate::routes::oidc::authorize::see_other;
use crate::routes::oidc::pages::{error_page, internal_error_page};
use crate::routes::oidc::{cookie, set_cookie};
use crate::routes::signin::sha256;
use crate::routes::{ApiJson, Client, ra};
use crate::state::AppState;

/// The console's client at the provider for re-approvals.
pub const REAPPROVAL_CLIENT_ID: &str = "vsc-ra-console-reapproval";
/// How long a phone re-approval lasts.
pub const REAPPROVAL_SECONDS: i64 = 5 * 60;
/// The pending action during a re-approval (state, PKCE verifier, the action's fields).
const PENDING_COOKIE: &str = "__Host-vsc-ra-reapprove";
const CALLBACK: &str = "/ra/reapprove/callback";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ra/people/new", get(new_person_page).post(create_person))
        .route("/ra/people/{uid}/identity-checks", post(identity_check))
        .route("/ra/people/{uid}/positions", post(position))
        .route("/ra/positions/{id}/end", post(end_position))
        .route("/ra/people/{uid}/ra-roles", post(ra_role))
        .route("/ra/people/{uid}/ra-roles/remove", post(remove_ra_role))
        .route("/ra/people/{uid}/cards", post(issue_card))
        .route("/ra/cards/{id}/activation", post(new_activation))
        .route("/ra/cards/{id}/unlock", post(unlock))
        .route("/ra/cards/{id}/renew-now", post(renew_now))
        .route("/ra/cards/{id}/replace", post(replace))
        .route("/ra/cards/{id}/cancel", post(cancel))
        .route(CALLBACK, get(reapprove_callback))
}

// ---------------------------------------------------------------------------------------------
// Forms

/// A posted form: every field in order (checkboxes repeat).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &str) -> Form {
        Form(
            url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect(),
        )
    }
    /// The field's last value, trimmed ("" when absent).
    fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.trim())
    }
    /// Every value of a repeated field.
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, v)| n == k && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
    fn map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
    /// The action's own fields: without the CSRF token and the re-approval, in a fixed order.
    fn action_fields(&self) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "csrf" && k != "reapproval")
            .cloned()
            .collect();
        f.sort();
        f
    }
}

/// Codes in a text field, separated by commas or spaces.
fn list(v: &str) -> Vec<String> {
    v.split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn csrf_field(c: &Console) -> Markup {
    html! { input type="hidden" name="csrf" value=(c.csrf); }
}

fn text_field(
    id: &str,
    name: &str,
    label: &str,
    value: &str,
    hint: Option<&str>,
    required: bool,
) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        label for=(id) { (label) }
        @if let Some(h) = hint { p class="hint" id=(hint_id) { (h) } }
        input type="text" id=(id) name=(name) value=(value) required[required]
            aria-describedby=[hint.map(|_| hint_id.as_str())];
    }
}

fn evidence_label(e: EvidenceType) -> &'static str {
    match e {
        EvidenceType::Passport => "Passport",
        EvidenceType::DrivingLicence => "Photocard driving licence",
        EvidenceType::NationalIdentityCard => "National identity card",
        EvidenceType::ResidencePermit => "Biometric residence permit",
        EvidenceType::BirthCertificate => "Birth or adoption certificate",
        EvidenceType::ProofOfAddress => "Proof of address (utility bill, bank statement)",
        EvidenceType::EmploymentEvidence => "Letter from an employer or professional body",
    }
}

/// The RFC 5280 reasons an RA chooses from (the API's names; `vsc ra card cancel` maps to the same).
const REASONS: [(&str, &str); 4] = [
    (
        "key-compromise",
        "Key compromise: lost or stolen phone, a passcode others may know",
    ),
    (
        "affiliation-changed",
        "Affiliation changed: moved organisation, changed name",
    ),
    (
        "superseded",
        "Superseded: replaced by a new card while the old phone is still in hand",
    ),
    (
        "cessation-of-operation",
        "Cessation of operation: left, no longer needs a card",
    ),
];

fn create_form(c: &Console, v: &Form) -> Markup {
    let org = if v.get("organisation").is_empty() {
        c.caller
            .grants
            .first()
            .map(|g| g.organisation.to_string())
            .unwrap_or_default()
    } else {
        v.get("organisation").to_owned()
    };
    html! {
        form method="post" action="/ra/people/new" class="action" {
            (csrf_field(c))
            (text_field("given_name", "given_name", "Given name", v.get("given_name"), None, true))
            (text_field("family_name", "family_name", "Family name", v.get("family_name"), None, true))
            label for="email" { "Email (optional)" }
            input type="email" id="email" name="email" value=(v.get("email")) autocomplete="off";
            (text_field("organisation", "organisation", "Registering organisation (ODS code)", &org, None, true))
            button type="submit" { "Create the person" }
        }
    }
}

fn id_check_form(c: &Console, uid: &str, v: &Form, default_org: &str) -> Markup {
    let chosen = v.all("evidence");
    let org = if v.get("organisation").is_empty() {
        default_org
    } else {
        v.get("organisation")
    };
    let level = if v.get("level").is_empty() {
        "3"
    } else {
        v.get("level")
    };
    html! {
        form method="post" action=(format!("/ra/people/{uid}/identity-checks")) class="action" {
            (csrf_field(c))
            fieldset {
                legend { "Evidence seen" }
                p class="hint" { "Level 3 (needed for a smartcard) takes two documents, one of them photographic." }
                @for e in EvidenceType::ALL {
                    div class="check" {
                        input type="checkbox" name="evidence" id=(format!("idc-{}", e.as_str())) value=(e.as_str())
                            checked[chosen.iter().any(|x| x == e.as_str())];
                        label for=(format!("idc-{}", e.as_str())) { (evidence_label(e)) }
                    }
                }
            }
            label for="idc-level" { "Level" }
            select id="idc-level" name="level" {
                @for (n, l) in [("3", "3 – smartcard"), ("2", "2"), ("1", "1")] {
                    option value=(n) selected[level == n] { (l) }
                }
            }
            (text_field("idc-organisation", "organisation", "Checked at (ODS code)", org, None, true))
            button type="submit" { "Record the identity check" }
        }
    }
}

fn position_form(c: &Console, uid: &str, v: &Form, default_org: &str) -> Markup {
    let org = if v.get("organisation").is_empty() {
        default_org
    } else {
        v.get("organisation")
    };
    html! {
        form method="post" action=(format!("/ra/people/{uid}/positions")) class="action" {
            (csrf_field(c))
            (text_field("pos-organisation", "organisation", "Organisation (ODS code)", org, None, true))
            (text_field("pos-role-code", "role_code", "Role code", v.get("role_code"), Some("NRBAC job role code, for example S8000:G8000:R8000."), true))
            (text_field("pos-role-name", "role_name", "Role name", v.get("role_name"), None, true))
            (text_field("pos-activities", "activities", "Activities", v.get("activities"), Some("Activity codes separated by commas, for example B0570, B0278."), false))
            button type="submit" { "Assign the position" }
        }
    }
}

fn ra_role_form(c: &Console, uid: &str, v: &Form, default_org: &str) -> Markup {
    let org = if v.get("organisation").is_empty() {
        default_org
    } else {
        v.get("organisation")
    };
    html! {
        form method="post" action=(format!("/ra/people/{uid}/ra-roles")) class="action" {
            (csrf_field(c))
            label for="rar-role" { "RA role" }
            select id="rar-role" name="role" {
                @for r in RaRole::ALL {
                    option value=(r.as_str()) selected[v.get("role") == r.as_str()] { (r.title()) }
                }
            }
            (text_field("rar-organisation", "organisation", "At organisation (ODS code)", org, None, true))
            (text_field("rar-roles", "assignable_roles", "Sponsor only: role codes it may assign", v.get("assignable_roles"), Some("Separated by commas; leave empty for other roles."), false))
            (text_field("rar-activities", "assignable_activities", "Sponsor only: activity codes it may assign", v.get("assignable_activities"), Some("Separated by commas; leave empty for other roles."), false))
            p class="hint" { "You will approve this on your phone before it is done." }
            button type="submit" { "Give the RA role" }
        }
    }
}

fn issue_form(c: &Console, uid: &str, v: &Form, default_org: &str) -> Markup {
    let org = if v.get("organisation").is_empty() {
        default_org
    } else {
        v.get("organisation")
    };
    html! {
        form method="post" action=(format!("/ra/people/{uid}/cards")) class="action" {
            (csrf_field(c))
            (text_field("card-organisation", "organisation", "Issuing organisation (ODS code)", org, None, true))
            p class="hint" { "The activation is shown once, as a QR code and an activation letter to print." }
            button type="submit" { "Issue a card" }
        }
    }
}

fn cancel_form(c: &Console, card_id: &str, v: &Form) -> Markup {
    let id = |s: &str| format!("cancel-{s}-{card_id}");
    html! {
        form method="post" action=(format!("/ra/cards/{card_id}/cancel")) class="action" {
            (csrf_field(c))
            label for=(id("reason-code")) { "Reason (RFC 5280, goes into the CRL)" }
            select id=(id("reason-code")) name="reason_code" required {
                option value="" selected[v.get("reason_code").is_empty()] { "Choose a reason" }
                @for (code, label) in REASONS {
                    option value=(code) selected[v.get("reason_code") == code] { (label) }
                }
            }
            (text_field(&id("reason"), "reason", "Why, in words (for the audit log)", v.get("reason"), None, true))
            (text_field(&id("invalidity"), "invalidity_date", "Key compromise only: since when the key may be in other hands (optional)", v.get("invalidity_date"), Some("An RFC 3339 time, for example 2026-03-01T14:30:00Z."), false))
            p class="hint" { "You will approve this on your phone before it is done. Cancelling cannot be undone." }
            button type="submit" class="danger" { "Cancel the card" }
        }
    }
}

fn renew_now_form(c: &Console, card_id: &str, v: &Form) -> Markup {
    let id = format!("renew-reason-{card_id}");
    html! {
        form method="post" action=(format!("/ra/cards/{card_id}/renew-now")) class="action" {
            (csrf_field(c))
            (text_field(&id, "reason", "Why renew now (for the audit log)", v.get("reason"), Some("For example: new CA profile, key may be weak. The holder renews from their phone with `vsc authenticator renew`; the current certificates stay in force until then."), true))
            button type="submit" class="secondary" { "Renew card " (card_id) " now" }
        }
    }
}

fn replace_form(c: &Console, card_id: &str, v: &Form) -> Markup {
    let id = |s: &str| format!("replace-{s}-{card_id}");
    html! {
        form method="post" action=(format!("/ra/cards/{card_id}/replace")) class="action" {
            (csrf_field(c))
            (text_field(&id("reason"), "reason", "Why (for the audit log)", v.get("reason"), Some("For example: new phone, phone lost on the bus."), true))
            div class="check" {
                input type="checkbox" id=(id("lost")) name="lost" value="yes" checked[v.get("lost") == "yes"] aria-describedby=(id("lost-hint"));
                label for=(id("lost")) { "The phone is lost" }
                p class="hint" id=(id("lost-hint")) { "Lost: the old phone's certificates are revoked (key compromise) and its sessions end now. Not lost: the old phone keeps working until the new one is activated." }
            }
            p class="hint" { "You will approve this on your phone before it is done. The new activation is then shown once, as a QR code and an activation letter to print." }
            button type="submit" { "Replace card " (card_id) }
        }
    }
}

/// The action forms of a person's page: what the console offers; the API decides.
pub(crate) fn person_forms(
    c: &Console,
    p: &Person,
    renewals: &HashMap<String, ra::CardRenewalFacts>,
) -> Markup {
    let uid = &p.uid;
    let org = p.registered_by.as_str();
    let empty = Form::default();
    html! {
        section class="actions" aria-labelledby="actions-heading" {
            h2 id="actions-heading" { "Actions" }
            details { summary { "Record an identity check" } (id_check_form(c, uid, &empty, org)) }
            details { summary { "Assign a position" } (position_form(c, uid, &empty, org)) }
            @if !p.positions.is_empty() {
                details {
                    summary { "End a position" }
                    p class="hint" { "Sessions acting in the position end at once; the record keeps it in the audit trail." }
                    @for pos in &p.positions {
                        form method="post" action=(format!("/ra/positions/{}/end", pos.id)) class="action inline-action" {
                            (csrf_field(c))
                            button type="submit" class="secondary" {
                                "End " (pos.role_name) " (" (pos.role_code) ") at " (pos.organisation)
                            }
                        }
                    }
                }
            }
            details { summary { "Give an RA role" } (ra_role_form(c, uid, &empty, org)) }
            @if !p.ra_roles.is_empty() {
                details {
                    summary { "Remove an RA role" }
                    @for r in &p.ra_roles {
                        form method="post" action=(format!("/ra/people/{uid}/ra-roles/remove")) class="action inline-action" {
                            (csrf_field(c))
                            input type="hidden" name="role" value=(r.role);
                            input type="hidden" name="organisation" value=(r.organisation);
                            button type="submit" class="secondary" {
                                "Remove " (r.role.parse::<RaRole>().map_or_else(|_| r.role.clone(), |role| role.title().to_owned())) " at " (r.organisation)
                            }
                        }
                    }
                }
            }
            @if !p.cards.iter().any(|card| card.state.parse::<CardState>().is_ok_and(CardState::can_cancel)) {
                details { summary { "Issue a card" } (issue_form(c, uid, &empty, org)) }
            }
            @for card in &p.cards {
                (card_forms(c, card, c.caller.uid == p.uid, renewals.get(&card.id)))
            }
        }
    }
}

/// A card's forms. Renew now and replace are offered only where the API would take them: not on
/// one's own card, renew now for an active card with certificates (a window), replace for an
/// active or locked one.
fn card_forms(
    c: &Console,
    card: &Card,
    own: bool,
    renewal: Option<&ra::CardRenewalFacts>,
) -> Markup {
    let Ok(state) = card.state.parse::<CardState>() else {
        return html! {};
    };
    let id = &card.id;
    let renewable =
        !own && state == CardState::Active && renewal.is_some_and(|r| r.window.is_some());
    let replaceable = !own && matches!(state, CardState::Active | CardState::Locked);
    html! {
        @if renewable {
            details { summary { "Renew card " (id) " now" } (renew_now_form(c, id, &Form::default())) }
        }
        @if replaceable {
            details { summary { "Replace card " (id) " (new or lost phone)" } (replace_form(c, id, &Form::default())) }
        }
        @if state == CardState::Pending {
            form method="post" action=(format!("/ra/cards/{id}/activation")) class="action inline-action" {
                (csrf_field(c))
                button type="submit" class="secondary" { "New activation for card " (id) }
            }
        }
        @if state.can_unlock() {
            form method="post" action=(format!("/ra/cards/{id}/unlock")) class="action inline-action" {
                (csrf_field(c))
                button type="submit" class="secondary" { "Unlock card " (id) }
            }
        }
        @if state.can_cancel() {
            details { summary { "Cancel card " (id) } (cancel_form(c, id, &Form::default())) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// 403 for a form without this session's CSRF token.
fn form_expired() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "Go back, reload the page and try again.",
    )
}

/// A refusal: 403 and 404 (scope, permission, unknown) as the API's refusal page; anything
/// else (the input) as the form again with the API's message.
fn failed(c: &Console, e: &ApiError, title: &str, form: Markup, back: &str) -> Response {
    if e.status == StatusCode::FORBIDDEN
        || e.status == StatusCode::NOT_FOUND
        || e.status.is_server_error()
    {
        return refused(c, e, back);
    }
    page(
        c,
        e.status,
        title,
        html! {
            h1 { (title) }
            div class="error" role="alert" { h2 { "There is a problem" } p { (e.message) } }
            (form)
            p { a href=(back) { "Back" } }
        },
    )
}

/// The answer to a form on a person's page: the page again (post/redirect/get), or the form
/// once more with the API's refusal.
fn back_to_person<T>(
    c: &Console,
    done: ApiResult<T>,
    uid: &str,
    title: &str,
    form: impl FnOnce() -> Markup,
) -> Response {
    match done {
        Ok(_) => see_other(&person_url(uid)),
        Err(e) => failed(c, &e, title, form(), &person_url(uid)),
    }
}

fn person_url(uid: &str) -> String {
    format!("/ra/people/{uid}")
}

/// The QR code of `url` as inline SVG (an element, not a script: allowed by the CSP).
pub fn qr_svg(url: &str, label: &str) -> Option<String> {
    let svg = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .ok()?
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let at = svg.find("<svg")?;
    let label = maud::html! { (label) }.into_string();
    Some(svg[at..].replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{label}\" "),
        1,
    ))
}

fn when(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

async fn name_of(state: &AppState, uid: &str) -> String {
    let found = async {
        let mut conn = state.store().pool().acquire().await?;
        vsc_store::repo::person(&mut conn, uid).await
    }
    .await;
    match found {
        Ok(Some(p)) => format!("{} {}", p.given_name, p.family_name),
        _ => String::new(),
    }
}

/// The activation letter, rendered from the API's answer (the code's secret is never stored).
async fn letter(state: &AppState, c: &Console, issued: &CardWithCode, title: &str) -> Response {
    let name = name_of(state, &issued.card.uid).await;
    let code = &issued.code;
    let uid = &issued.card.uid;
    page(
        c,
        StatusCode::OK,
        title,
        html! {
            div class="no-print" {
                h1 { (title) }
                div class="notice" role="status" {
                    p { "Card " (issued.card.id) " is waiting for activation. The activation code is shown only on this page and is not kept: "
                        "let " (name) " scan the QR code now, or print this letter (your browser's Print) and give it to them in person." }
                }
                p { a href=(person_url(uid)) { "Back to " (name) } }
            }
            article class="letter" aria-label=(format!("Activation letter for {name}")) {
                h2 { "Your NHS virtual smartcard" }
                p { "Dear " (name) "," }
                p { "A virtual smartcard has been issued to you by " (issued.card.issued_by) ". To put it on your phone:" }
                ol {
                    li { "Install the vsc authenticator on your phone and open it." }
                    li { "Choose \"Activate a card\" and scan the QR code below, or type the activation code." }
                    li { "Check that the server fingerprint the app shows matches the one below." }
                    li { "Choose a passcode only you know." }
                }
                div class="qr" { @if let Some(svg) = qr_svg(&code.url, "QR code of your activation link") { (PreEscaped(svg)) } }
                dl class="facts" {
                    dt { "Name" } dd { (name) }
                    dt { "UID" } dd { (uid) }
                    dt { "Activation code" } dd { code class="code" { (code.code) } }
                    dt { "Valid until" } dd { (when(code.expires_at)) }
                    dt { "Server fingerprint" } dd { code class="fingerprint" { (code.ca_fingerprint) } }
                }
                p { "The code works once. Do not share it; nobody from the NHS will ask you for it. If it has expired, ask your RA team for a new one." }
            }
            details class="no-print" {
                summary { "Activation link (for a phone on this computer)" }
                p { code class="link" { (code.url) } }
            }
        },
    )
}

/// The unlock code, rendered from the API's answer.
async fn unlock_page(state: &AppState, c: &Console, issued: &CardWithCode) -> Response {
    let name = name_of(state, &issued.card.uid).await;
    let code = &issued.code;
    page(
        c,
        StatusCode::OK,
        "Unlock code",
        html! {
            h1 { "Unlock code for card " (issued.card.id) }
            p { "Let " (name) " (" (issued.card.uid) ") scan this QR code with the vsc authenticator, or type the code. "
                "They then choose a new passcode. The code is shown only on this page." }
            div class="qr" { @if let Some(svg) = qr_svg(&code.url, "QR code of the unlock link") { (PreEscaped(svg)) } }
            dl class="facts" {
                dt { "Unlock code" } dd { code class="code" { (code.code) } }
                dt { "Valid until" } dd { (when(code.expires_at)) }
            }
            details {
                summary { "Unlock link" }
                p { code class="link" { (code.url) } }
            }
            p { a href=(person_url(&issued.card.uid)) { "Back to " (name) } }
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// A console POST: the console session and the posted form with this session's CSRF token; a
/// request without either is answered instead (to the sign-in; 403, nothing written).
struct Posted(Console, Form);

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Client(ctx) = Client::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let c = console(state, &ctx, &parts.headers).await?;
        let body = String::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        if !form_csrf_ok(&c, &form.map()) {
            return Err(form_expired());
        }
        Ok(Posted(c, form))
    }
}

async fn new_person_page(
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
        "Create a person",
        html! {
            h1 { "Create a person" }
            (create_form(&c, &Form::default()))
        },
    )
}

async fn create_person(State(state): State<AppState>, Posted(c, form): Posted) -> Response {
    let email = Some(form.get("email").to_owned()).filter(|e| !e.is_empty());
    let req = CreatePerson {
        given_name: form.get("given_name").to_owned(),
        family_name: form.get("family_name").to_owned(),
        email,
        organisation: form.get("organisation").to_owned(),
    };
    match ra::create_person(State(state.clone()), c.caller.clone(), ApiJson(req)).await {
        Ok(axum::Json(p)) => see_other(&person_url(&p.uid)),
        Err(e) => failed(
            &c,
            &e,
            "Create a person",
            create_form(&c, &form),
            "/ra/people",
        ),
    }
}

async fn identity_check(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let req = RecordIdentityCheck {
        evidence: form.all("evidence"),
        level: form.get("level").parse().unwrap_or(0),
        organisation: form.get("organisation").to_owned(),
    };
    let done = ra::record_identity_check(
        State(state.clone()),
        c.caller.clone(),
        Path(uid.clone()),
        ApiJson(req),
    )
    .await;
    back_to_person(&c, done, &uid, "Record an identity check", || {
        id_check_form(&c, &uid, &form, "")
    })
}

async fn position(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let req = AssignPosition {
        organisation: form.get("organisation").to_owned(),
        role_code: form.get("role_code").to_owned(),
        role_name: form.get("role_name").to_owned(),
        activities: list(form.get("activities")),
    };
    let done = ra::assign_position(
        State(state.clone()),
        c.caller.clone(),
        Path(uid.clone()),
        ApiJson(req),
    )
    .await;
    back_to_person(&c, done, &uid, "Assign a position", || {
        position_form(&c, &uid, &form, "")
    })
}

async fn issue_card(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let req = IssueCard {
        organisation: form.get("organisation").to_owned(),
    };
    match ra::issue_card(
        State(state.clone()),
        c.caller.clone(),
        Path(uid.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(axum::Json(issued)) => {
            letter(&state, &c, &issued, "Card issued: activation letter").await
        }
        Err(e) => failed(
            &c,
            &e,
            "Issue a card",
            issue_form(&c, &uid, &form, ""),
            &person_url(&uid),
        ),
    }
}

async fn new_activation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(c, _form): Posted,
) -> Response {
    match ra::reissue_activation(State(state.clone()), c.caller.clone(), Path(id)).await {
        Ok(axum::Json(issued)) => letter(&state, &c, &issued, "New activation letter").await,
        Err(e) => refused(&c, &e, "/ra/people"),
    }
}

async fn unlock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(c, _form): Posted,
) -> Response {
    match ra::unlock_card(State(state.clone()), c.caller.clone(), Path(id)).await {
        Ok(axum::Json(issued)) => unlock_page(&state, &c, &issued).await,
        Err(e) => refused(&c, &e, "/ra/people"),
    }
}

async fn renew_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    // The holder, for the way back; also the API's scope check before anything is written.
    let card = match ra::get_card(State(state.clone()), c.caller.clone(), Path(id.clone())).await {
        Ok(axum::Json(card)) => card,
        Err(e) => return refused(&c, &e, "/ra/people"),
    };
    let req = vsc_proto::renewal::RenewNow {
        reason: form.get("reason").to_owned(),
    };
    let done = ra::renew_now_card(
        State(state.clone()),
        c.caller.clone(),
        Path(id.clone()),
        ApiJson(req),
    )
    .await;
    back_to_person(&c, done, &card.uid, "Renew a card now", || {
        renew_now_form(&c, &id, &form)
    })
}

async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let path = format!("/ra/cards/{id}/replace");
    let card = match ra::get_card(State(state.clone()), c.caller.clone(), Path(id.clone())).await {
        Ok(axum::Json(card)) => card,
        Err(e) => return refused(&c, &e, "/ra/people"),
    };
    // A reason the API would refuse is refused before the phone is asked to approve it.
    if let Err(e) = ra::replacement_reason(form.get("reason")) {
        return failed(
            &c,
            &e,
            "Replace a card",
            replace_form(&c, &id, &form),
            &person_url(&card.uid),
        );
    }
    // Moving a card to another phone hands the person's keys to whoever holds that phone: as
    // for cancelling, the RA approves it on their own phone first.
    if let Err(r) = reapproved(&state, &c, &path, &form).await {
        return r;
    }
    let req = vsc_proto::replacement::ReplaceCard {
        reason: form.get("reason").to_owned(),
        lost: form.get("lost") == "yes",
    };
    match ra::replace_card(
        State(state.clone()),
        c.caller.clone(),
        Path(id.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(axum::Json(issued)) => {
            letter(
                &state,
                &c,
                &issued,
                "Card replaced: activation letter for the new phone",
            )
            .await
        }
        Err(e) => failed(
            &c,
            &e,
            "Replace a card",
            replace_form(&c, &id, &form),
            &person_url(&card.uid),
        ),
    }
}

async fn end_position(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(c, _form): Posted,
) -> Response {
    match ra::end_position(State(state.clone()), c.caller.clone(), Path(id)).await {
        Ok(axum::Json(p)) => see_other(&person_url(&p.uid)),
        Err(e) => refused(&c, &e, "/ra/people"),
    }
}

async fn remove_ra_role(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let req = RemoveRaRole {
        role: form.get("role").to_owned(),
        organisation: form.get("organisation").to_owned(),
    };
    match ra::remove_ra_role(
        State(state.clone()),
        c.caller.clone(),
        Path(uid.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => see_other(&person_url(&uid)),
        Err(e) => refused(&c, &e, &person_url(&uid)),
    }
}

async fn ra_role(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let path = format!("/ra/people/{uid}/ra-roles");
    // Only someone who may see the person is asked to approve anything (the API's check).
    if let Err(e) = ra::get_person(State(state.clone()), c.caller.clone(), Path(uid.clone())).await
    {
        return refused(&c, &e, "/ra/people");
    }
    if let Err(r) = reapproved(&state, &c, &path, &form).await {
        return r;
    }
    let req = RaRoleGrant {
        role: form.get("role").to_owned(),
        organisation: form.get("organisation").to_owned(),
        assignable_roles: list(form.get("assignable_roles")),
        assignable_activities: list(form.get("assignable_activities")),
    };
    let done = ra::assign_ra_role(
        State(state.clone()),
        c.caller.clone(),
        Path(uid.clone()),
        ApiJson(req),
    )
    .await;
    back_to_person(&c, done, &uid, "Give an RA role", || {
        ra_role_form(&c, &uid, &form, "")
    })
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(c, form): Posted,
) -> Response {
    let path = format!("/ra/cards/{id}/cancel");
    let card = match ra::get_card(State(state.clone()), c.caller.clone(), Path(id.clone())).await {
        Ok(axum::Json(card)) => card,
        Err(e) => return refused(&c, &e, "/ra/people"),
    };
    if let Err(r) = reapproved(&state, &c, &path, &form).await {
        return r;
    }
    let req = CancelCard {
        reason_code: Some(form.get("reason_code").to_owned()).filter(|r| !r.is_empty()),
        reason: form.get("reason").to_owned(),
        invalidity_date: Some(form.get("invalidity_date").to_owned()).filter(|r| !r.is_empty()),
    };
    match ra::cancel_card(
        State(state.clone()),
        c.caller.clone(),
        Path(id.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => see_other(&person_url(&card.uid)),
        Err(e) => failed(
            &c,
            &e,
            "Cancel a card",
            cancel_form(&c, &id, &form),
            &person_url(&card.uid),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Re-approval on the phone

/// What waits in the state cookie while the RA approves on the phone.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    state: String,
    verifier: String,
    path: String,
    fields: Vec<(String, String)>,
}

/// The digest an approval is bound to: this console session (its CSRF token), the action's
/// route and its exact fields.
fn action_digest(c: &Console, path: &str, fields: &[(String, String)]) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    URL_SAFE_NO_PAD.encode(sha256(
        format!("vsc-ra-reapprove/v1\n{}\n{path}\n{encoded}", c.csrf).as_bytes(),
    ))
}

/// Ok when the form carries a valid, unused approval for exactly this action (spending it);
/// otherwise the answer that starts a re-approval.
async fn reapproved(
    state: &AppState,
    c: &Console,
    path: &str,
    form: &Form,
) -> Result<(), Response> {
    let fields = form.action_fields();
    let digest = action_digest(c, path, &fields);
    let grant_id = form.get("reapproval");
    if !grant_id.is_empty() {
        match spend_approval(state, c, grant_id, &digest).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(internal_error_page(e)),
        }
    }
    Err(
        match start_reapproval(state, c, path, fields, &digest).await {
            Ok(r) => r,
            Err(e) => internal_error_page(e),
        },
    )
}

/// Checks grant `grant_id` approves `digest` for this RA, recently, and revokes it (single use).
async fn spend_approval(
    state: &AppState,
    c: &Console,
    grant_id: &str,
    digest: &str,
) -> ApiResult<bool> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let Some(grant) = oidc_db::grant(&mut conn, grant_id).await? else {
        return Ok(false);
    };
    let fits = grant.client_id == REAPPROVAL_CLIENT_ID
        && grant.code_used_at.is_some()
        && grant.revoked_at.is_none()
        && grant.created_at + REAPPROVAL_SECONDS > now
        && grant.nonce.as_deref() == Some(digest);
    if !fits {
        return Ok(false);
    }
    let Some(session) = oidc_db::session(&mut conn, &grant.session_id).await? else {
        return Ok(false);
    };
    drop(conn);
    if session.uid != c.caller.uid || session.auth_time + REAPPROVAL_SECONDS <= now {
        return Ok(false);
    }
    let mut tx = state.write().await?;
    if !oidc_db::revoke_grant(&mut tx, grant_id, now).await? {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// The re-approval client, registered (or its redirect URI updated) on use.
async fn reapproval_client(state: &AppState) -> ApiResult<ClientRow> {
    super::internal_client(
        state,
        REAPPROVAL_CLIENT_ID,
        "vsc RA console (confirm an action)",
        CALLBACK,
    )
    .await
}

/// To the provider with `prompt=login`, `login_hint` = the RA and `nonce` = the action's digest.
async fn start_reapproval(
    state: &AppState,
    c: &Console,
    path: &str,
    fields: Vec<(String, String)>,
    digest: &str,
) -> ApiResult<Response> {
    let client = reapproval_client(state).await?;
    let st = URL_SAFE_NO_PAD.encode(state.random::<32>()?);
    let verifier = URL_SAFE_NO_PAD.encode(state.random::<32>()?);
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &client.redirect_uris[0])
        .append_pair("scope", "openid")
        .append_pair("state", &st)
        .append_pair("nonce", digest)
        .append_pair("prompt", "login")
        .append_pair("login_hint", &c.caller.uid)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let pending = Pending {
        state: st,
        verifier,
        path: path.to_owned(),
        fields,
    };
    let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&pending).map_err(ApiError::internal)?);
    if value.len() > 3500 {
        return Err(ApiError::bad_request(
            vsc_proto::errors::INVALID_REQUEST,
            "this form is too long",
        ));
    }
    let mut r = see_other(&format!("{}?{q}", vsc_proto::routes::OIDC_AUTHORIZE));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(PENDING_COOKIE, &value, Some(600)),
    );
    Ok(r)
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn not_approved(detail: &str) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Not approved",
        &format!("{detail} Go back to the person's page and try the action again."),
    )
}

/// `GET /ra/reapprove/callback`: records the phone's approval and offers the action to confirm.
async fn reapprove_callback(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let c = match console(&state, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let pending: Option<Pending> = cookie(&headers, PENDING_COOKIE)
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(pending) = pending.filter(|p| cb.state.as_deref() == Some(p.state.as_str())) else {
        return not_approved("This approval was started somewhere else.");
    };
    if let Some(e) = cb.error {
        return not_approved(&cb.error_description.unwrap_or(e));
    }
    let Some(code) = cb.code else {
        return not_approved("The approval did not complete.");
    };
    let digest = action_digest(&c, &pending.path, &pending.fields);
    let grant_id = match redeem(&state, &c, &code, &pending, &digest).await {
        Ok(g) => g,
        Err(e) if e.status.is_server_error() => return internal_error_page(e),
        Err(e) => return not_approved(&e.message),
    };
    let what = if pending.path.ends_with("/cancel") {
        "Cancel the card"
    } else if pending.path.ends_with("/replace") {
        "Replace the card"
    } else {
        "Give the RA role"
    };
    let mut r = page(
        &c,
        StatusCode::OK,
        "Approved: confirm",
        html! {
            h1 { "Approved on your phone" }
            p { "Your approval is good for this action only, for " (REAPPROVAL_SECONDS / 60) " minutes." }
            dl class="facts" {
                @for (k, v) in &pending.fields { dt { (k) } dd { (v) } }
            }
            form method="post" action=(pending.path) class="action" {
                (csrf_field(&c))
                input type="hidden" name="reapproval" value=(grant_id);
                @for (k, v) in &pending.fields { input type="hidden" name=(k) value=(v); }
                button type="submit" class="danger" { (what) " now" }
            }
            p { a href="/ra/people" { "Do not do it" } }
        },
    );
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(PENDING_COOKIE, "", Some(0)));
    r
}

/// Redeems the re-approval's code in process (the token endpoint's single-use and PKCE rules);
/// the approving sign-in must be this RA's and the grant must carry this action's digest.
async fn redeem(
    state: &AppState,
    c: &Console,
    code: &str,
    pending: &Pending,
    digest: &str,
) -> ApiResult<String> {
    let now = state.now_unix();
    let bad = |m: &str| ApiError::bad_request(vsc_proto::errors::INVALID_REQUEST, m.to_owned());
    let mut conn = state.store().pool().acquire().await?;
    let grant = oidc_db::grant_by_code(&mut conn, &sha256(code.as_bytes()))
        .await?
        .filter(|g| g.client_id == REAPPROVAL_CLIENT_ID)
        .ok_or_else(|| bad("This approval code is not valid."))?;
    let session = oidc_db::session(&mut conn, &grant.session_id)
        .await?
        .ok_or_else(|| ApiError::internal("a grant's session is missing"))?;
    drop(conn);
    if !grant
        .code_challenge
        .as_deref()
        .is_some_and(|ch| vsc_oidc::pkce::verify_s256(&pending.verifier, ch))
    {
        return Err(bad("This approval was not started by this browser."));
    }
    if session.uid != c.caller.uid {
        return Err(bad(&format!(
            "The approval came from UID {}, not from you ({}).",
            session.uid, c.caller.uid
        )));
    }
    if grant.nonce.as_deref() != Some(digest) {
        return Err(bad("The approval was for another action."));
    }
    if session.auth_time + REAPPROVAL_SECONDS <= now {
        return Err(bad("The approval is too old."));
    }
    let mut tx = state.write().await?;
    if !oidc_db::redeem_code(&mut tx, &grant.id, now).await? {
        return Err(bad("This approval code was already used or has expired."));
    }
    state
        .append_audit(
            &mut tx,
            &c.caller.ctx.event(
                "console.reapproved",
                &c.caller.uid,
                "",
                serde_json::json!({"grant_id": grant.id, "session_id": session.id, "action": pending.path}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(grant.id)
}

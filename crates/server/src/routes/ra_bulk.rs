//! Bulk issuance: a CSV of people (given name, family name, email, organisation, role code and
//! name, activities, identity evidence and level, checker UID; see `vsc_proto::bulk`) registered,
//! identity-checked, placed and issued a card row by row.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/ra/bulk-issue` | any RA (bearer token); each row needs the right, at the row's organisation, to create a profile, record an identity check, assign the position and issue a card (RA Manager or RA Agent there or national), checked per row | `{"csv", "dry_run"}` → a report per row |
//! | `POST /ra/bulk/preview`, `/ra/bulk/run`, `/ra/bulk/results.csv` | the console (session and CSRF; [`super::console::bulk`]) | the same through the browser |
//!
//! **Nothing is written by a dry run (the console's preview).** [`preview`] checks every row
//! and names all of its errors: the values (with `vsc_core`'s parsers), formula cells, rows
//! repeating an email, an email already registered at the organisation, the organisation and
//! the checker (a person holding a role that checks identity there), and the caller's
//! permissions at the organisation with `vsc_core::ra`'s matrix, as the API will check them.
//!
//! **One implementation.** [`run`] checks each row the same way except the caller's
//! permissions, then calls the RA API's own handlers in order — `create_person`,
//! `record_identity_check`, `assign_position`, `issue_card` — so permissions, scope, the
//! own-record rule and the audit events are the API's, and a refused row carries the API's
//! error. Each call is its own transaction; a refused step ends its row (the report says what
//! was done before, e.g. a person created but no card) and the next row runs. The identity
//! check is recorded in the name of the row's checker, who saw the documents, with the RA who
//! runs the file as its recorder (`record_identity_check_by`, which checks again, in the
//! write's transaction, that the checker may check identity at the row's organisation).
//!
//! Limits: 1 MiB and 1,000 rows (`vsc_proto::bulk`); the request body may be up to 8 MiB,
//! room for a 1 MiB file form- or JSON-encoded.

use std::collections::HashSet;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::post;
use axum::{Json, Router};
use tower_http::limit::RequestBodyLimitLayer;
use vsc_core::ra::{authorize, authorize_position};
use vsc_core::{ActivityCode, EvidenceType, IdentityLevel, OdsCode, RaAction, RoleCode, Uid};
use vsc_proto::bulk::{
    self, BulkIssueReport, BulkIssueRequest, BulkRow, BulkRowError, CsvError, outcome, step,
};
use vsc_proto::errors as code;
use vsc_proto::{AssignPosition, CreatePerson, IssueCard, RecordIdentityCheck, routes};
use vsc_store::Conn;
use vsc_store::repo;

use super::ApiJson;
use super::ra::{self, RaCaller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest request body of the bulk routes (a 1 MiB file, encoded).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The routes: the API's and the console's upload routes, with their own body limit.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RA_BULK_ISSUE, post(bulk_issue))
        .merge(super::console::bulk::upload_routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
}

async fn bulk_issue(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<BulkIssueRequest>,
) -> ApiResult<Json<BulkIssueReport>> {
    let rows = if req.dry_run {
        preview(&state, &caller, &req.csv).await?
    } else {
        run(&state, &caller, &req.csv).await?
    };
    Ok(Json(BulkIssueReport {
        dry_run: req.dry_run,
        rows,
    }))
}

/// A row's values, trimmed, as in the file.
#[derive(Debug, Clone, Default)]
struct Fields {
    row: usize,
    given_name: String,
    family_name: String,
    email: String,
    organisation: String,
    role_code: String,
    role_name: String,
    activities: String,
    evidence: String,
    level: String,
    checker_uid: String,
}

/// A row that passed its checks, ready for the API.
struct Valid {
    ods: OdsCode,
    role: RoleCode,
    activities: Vec<ActivityCode>,
    evidence: Vec<EvidenceType>,
    level: IdentityLevel,
    checker: Uid,
}

/// A file that cannot be read, as the API's error.
fn csv_error(e: CsvError) -> ApiError {
    let c = match e {
        CsvError::TooLarge(_) => code::BULK_CSV_TOO_LARGE,
        CsvError::TooManyRows => code::BULK_CSV_TOO_MANY_ROWS,
        _ => code::BULK_CSV_INVALID,
    };
    ApiError::bad_request(c, e.to_string())
}

/// Reads the file into rows; a record with the wrong number of fields becomes a row with that
/// error.
fn read(text: &str) -> ApiResult<Vec<(Fields, Vec<BulkRowError>)>> {
    let (index, records) = bulk::read_bulk_csv(text).map_err(csv_error)?;
    let width = index.iter().flatten().count();
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, (_, values))| {
            let get = |col: usize| {
                index[col]
                    .and_then(|at| values.get(at))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            let fields = Fields {
                row: i + 2,
                given_name: get(0),
                family_name: get(1),
                email: get(2),
                organisation: get(3),
                role_code: get(4),
                role_name: get(5),
                activities: get(6),
                evidence: get(7),
                level: get(8),
                checker_uid: get(9),
            };
            let mut errors = Vec::new();
            if values.len() != width {
                errors.push(err(
                    "row",
                    code::BULK_CSV_INVALID,
                    format!(
                        "this row has {} fields and the header {width}",
                        values.len()
                    ),
                ));
            }
            (fields, errors)
        })
        .collect())
}

fn err(field: &str, code: &str, message: impl Into<String>) -> BulkRowError {
    BulkRowError {
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

fn api_err(field: &str, e: &ApiError) -> BulkRowError {
    err(field, e.code, e.message.clone())
}

/// Several values in one cell: separated by spaces, semicolons or `|`.
fn list(cell: &str) -> Vec<&str> {
    cell.split([' ', ';', '|'])
        .filter(|s| !s.is_empty())
        .collect()
}

/// The API's rule for names (`routes::ra::create_person`), so the preview says what the API
/// would; the API checks again.
fn name_ok(v: &str) -> bool {
    !v.is_empty() && v.chars().count() <= 100 && !v.chars().any(char::is_control)
}

/// The API's rule for emails; in a bulk file the email is required (it is how a file run twice
/// is recognised).
fn email_ok(e: &str) -> bool {
    e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
}

/// The checks that need no database: every value, every error.
fn check_values(f: &Fields, errors: &mut Vec<BulkRowError>) -> Option<Valid> {
    let cells = [
        ("given_name", &f.given_name),
        ("family_name", &f.family_name),
        ("email", &f.email),
        ("organisation", &f.organisation),
        ("role_code", &f.role_code),
        ("role_name", &f.role_name),
        ("activities", &f.activities),
        ("evidence", &f.evidence),
        ("level", &f.level),
        ("checker_uid", &f.checker_uid),
    ];
    let start = errors.len();
    let mut formula = HashSet::new();
    for (name, value) in cells {
        if value.starts_with(['=', '+', '-', '@']) {
            formula.insert(name);
            errors.push(err(
                name,
                code::BULK_FORMULA_CELL,
                format!("{name} starts with '{}', as a spreadsheet formula does; formulas are not accepted", &value[..1]),
            ));
        }
    }
    for (name, value, what) in [
        ("given_name", &f.given_name, "the given name"),
        ("family_name", &f.family_name, "the family name"),
        ("role_name", &f.role_name, "the role name"),
    ] {
        let optional = name == "role_name" && value.is_empty();
        if !formula.contains(name) && !optional && !name_ok(value) {
            errors.push(err(
                name,
                code::INVALID_NAME,
                format!("{what} must be 1 to 100 printable characters"),
            ));
        }
    }
    if !formula.contains("email") && !email_ok(&f.email) {
        let message = if f.email.is_empty() {
            "an email is required in a bulk file".to_owned()
        } else {
            format!("'{}' is not an email address", f.email)
        };
        errors.push(err("email", code::INVALID_EMAIL, message));
    }
    let ods = if formula.contains("organisation") {
        None
    } else {
        f.organisation
            .parse::<OdsCode>()
            .map_err(|e| errors.push(err("organisation", code::INVALID_ODS_CODE, e.to_string())))
            .ok()
    };
    let role = if formula.contains("role_code") {
        None
    } else {
        f.role_code
            .parse::<RoleCode>()
            .map_err(|e| errors.push(err("role_code", code::INVALID_ROLE_CODE, e.to_string())))
            .ok()
    };
    let mut activities = Vec::new();
    if !formula.contains("activities") {
        for a in list(&f.activities) {
            match a.parse::<ActivityCode>() {
                Ok(a) if activities.contains(&a) => errors.push(err(
                    "activities",
                    code::INVALID_ACTIVITY_CODE,
                    format!("{a} is listed twice"),
                )),
                Ok(a) => activities.push(a),
                Err(e) => errors.push(err(
                    "activities",
                    code::INVALID_ACTIVITY_CODE,
                    e.to_string(),
                )),
            }
        }
    }
    let mut evidence = Vec::new();
    let evidence_errors = errors.len();
    if !formula.contains("evidence") {
        for e in list(&f.evidence) {
            match e.parse::<EvidenceType>() {
                Ok(e) if evidence.contains(&e) => errors.push(err(
                    "evidence",
                    code::INVALID_EVIDENCE,
                    format!("{e} is listed twice"),
                )),
                Ok(e) => evidence.push(e),
                Err(m) => errors.push(err("evidence", code::INVALID_EVIDENCE, m)),
            }
        }
    }
    let evidence_ok = !formula.contains("evidence") && errors.len() == evidence_errors;
    let level = match f.level.parse::<u8>() {
        _ if formula.contains("level") => None,
        Ok(n) => IdentityLevel::try_from(n)
            .map_err(|m| errors.push(err("level", code::INVALID_LEVEL, m)))
            .ok(),
        Err(_) => {
            errors.push(err(
                "level",
                code::INVALID_LEVEL,
                format!("'{}' is not an identity level: use 1, 2 or 3", f.level),
            ));
            None
        }
    };
    if let Some(level) = level {
        if level < IdentityLevel::SMARTCARD {
            errors.push(err(
                "level",
                code::IDENTITY_NOT_VERIFIED,
                "a card needs an identity check at level 3",
            ));
        } else if evidence_ok && let Err(m) = level.supported_by(&evidence) {
            errors.push(err("evidence", code::INSUFFICIENT_EVIDENCE, m));
        }
    }
    let checker = if formula.contains("checker_uid") {
        None
    } else {
        f.checker_uid
            .parse::<Uid>()
            .map_err(|e| errors.push(err("checker_uid", code::INVALID_UID, e.to_string())))
            .ok()
    };
    if errors.len() > start {
        return None;
    }
    Some(Valid {
        ods: ods?,
        role: role?,
        activities,
        evidence,
        level: level?,
        checker: checker?,
    })
}

/// The checks that read the database: the organisation, the checker, an email already there.
async fn check_records(
    state: &AppState,
    conn: &mut Conn,
    f: &Fields,
    v: &Valid,
    errors: &mut Vec<BulkRowError>,
) -> ApiResult<()> {
    if repo::organisation(conn, v.ods.as_str()).await?.is_none() {
        errors.push(err(
            "organisation",
            code::UNKNOWN_ORGANISATION,
            format!("no organisation has ODS code {}", v.ods),
        ));
        return Ok(());
    }
    match repo::person(conn, v.checker.as_str()).await? {
        None => errors.push(err(
            "checker_uid",
            code::UNKNOWN_PERSON,
            format!("no person has UID {}", v.checker),
        )),
        Some(_) => {
            let national: OdsCode = state.national_ods().parse().map_err(ApiError::internal)?;
            let grants = ra::grants_of(conn, v.checker.as_str()).await?;
            if authorize(
                &grants,
                RaAction::RecordIdentityCheck,
                &v.ods,
                &national,
                None,
            )
            .is_err()
            {
                errors.push(err(
                    "checker_uid",
                    code::BULK_CHECKER_NOT_PERMITTED,
                    format!("{} does not check identity at {} (an RA Manager, RA Agent or ID Checker there or national does)", v.checker, v.ods),
                ));
            }
        }
    }
    let scope = [v.ods.to_string()];
    let same = vsc_store::console::search_people(conn, &f.email, Some(&scope), 20, 0).await?;
    if let Some(p) = same.iter().find(|p| {
        p.email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&f.email))
    }) {
        errors.push(err(
            "email",
            code::BULK_PERSON_EXISTS,
            format!(
                "{} is already registered at {} as UID {} (was this file run before?)",
                f.email, v.ods, p.uid
            ),
        ));
    }
    Ok(())
}

/// The caller's rights at the row's organisation, with the matrix the API applies: the first
/// refusal, if any.
fn check_permissions(
    state: &AppState,
    caller: &RaCaller,
    v: &Valid,
) -> ApiResult<Option<BulkRowError>> {
    let national: OdsCode = state.national_ods().parse().map_err(ApiError::internal)?;
    let prescribing: Vec<ActivityCode> = state
        .config()
        .signing
        .prescribing_activities
        .iter()
        .map(|a| a.parse::<ActivityCode>().map_err(ApiError::internal))
        .collect::<ApiResult<_>>()?;
    let g = &caller.grants;
    let checks = [
        (
            "person",
            authorize(g, RaAction::CreateProfile, &v.ods, &national, None).err(),
        ),
        (
            "identity_check",
            authorize(g, RaAction::RecordIdentityCheck, &v.ods, &national, None).err(),
        ),
        (
            "position",
            authorize_position(g, &v.ods, &national, &v.role, &v.activities, &prescribing).err(),
        ),
        (
            "card",
            authorize(g, RaAction::IssueCard, &v.ods, &national, None).err(),
        ),
    ];
    Ok(checks
        .into_iter()
        .find_map(|(step, e)| e.map(|e| err(step, ra::scope_code(&e), e.to_string()))))
}

fn report(f: &Fields, outcome: &str, errors: Vec<BulkRowError>) -> BulkRow {
    BulkRow {
        row: f.row,
        given_name: f.given_name.clone(),
        family_name: f.family_name.clone(),
        email: f.email.clone(),
        organisation: f.organisation.clone(),
        outcome: outcome.to_owned(),
        errors,
        done: vec![],
        uid: None,
        card_id: None,
        activation: None,
    }
}

/// Checks a row (all but the caller's permissions when `permissions` is false); `seen` holds the
/// emails of earlier rows.
async fn check_row(
    state: &AppState,
    caller: &RaCaller,
    f: &Fields,
    mut errors: Vec<BulkRowError>,
    seen: &mut HashSet<String>,
    permissions: bool,
) -> ApiResult<(Option<Valid>, Vec<BulkRowError>)> {
    let valid = check_values(f, &mut errors);
    if !f.email.is_empty() && !seen.insert(f.email.to_ascii_lowercase()) {
        errors.push(err(
            "email",
            code::BULK_DUPLICATE_ROW,
            format!("{} is in an earlier row of this file", f.email),
        ));
    }
    let Some(v) = valid else {
        return Ok((None, errors));
    };
    let mut conn = state.store().pool().acquire().await?;
    check_records(state, &mut conn, f, &v, &mut errors).await?;
    drop(conn);
    if permissions && let Some(e) = check_permissions(state, caller, &v)? {
        errors.push(e);
    }
    Ok(((errors.is_empty()).then_some(v), errors))
}

/// Checks every row without writing anything.
pub async fn preview(state: &AppState, caller: &RaCaller, csv: &str) -> ApiResult<Vec<BulkRow>> {
    state
        .audited(&caller.ctx, "bulk.preview", "", async {
            let rows = read(csv)?;
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(rows.len());
            for (f, errors) in rows {
                out.push(
                    match check_row(state, caller, &f, errors, &mut seen, true).await {
                        Ok((Some(_), _)) => report(&f, outcome::VALID, vec![]),
                        Ok((None, errors)) => report(&f, outcome::INVALID, errors),
                        Err(e) => report(&f, outcome::INVALID, vec![api_err("row", &e)]),
                    },
                );
            }
            Ok(out)
        })
        .await
}

/// Runs every row through the RA API's handlers, in order; a refused row does not stop the
/// others.
pub async fn run(state: &AppState, caller: &RaCaller, csv: &str) -> ApiResult<Vec<BulkRow>> {
    state
        .audited(&caller.ctx, "bulk.issue", "", async {
            let rows = read(csv)?;
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(rows.len());
            let mut summary = Vec::with_capacity(rows.len());
            for (f, errors) in rows {
                let row = match check_row(state, caller, &f, errors, &mut seen, false).await {
                    Ok((Some(v), _)) => run_row(state, caller, &f, &v).await,
                    Ok((None, errors)) => report(&f, outcome::INVALID, errors),
                    Err(e) => report(&f, outcome::INVALID, vec![api_err("row", &e)]),
                };
                summary.push(serde_json::json!({
                    "row": row.row, "outcome": row.outcome, "uid": row.uid,
                    "card_id": row.card_id, "checker_uid": f.checker_uid,
                }));
                out.push(row);
            }
            // Every step above is audited by the API in its own transaction; this event ties
            // the rows together and keeps each row's checker. The codes are shown once, so a
            // failure here is logged rather than withholding them.
            if let Err(e) = summary_event(state, caller, summary).await {
                tracing::error!(error = %e.message, "bulk issuance: the summary audit event was not written");
            }
            Ok(out)
        })
        .await
}

async fn summary_event(
    state: &AppState,
    caller: &RaCaller,
    rows: Vec<serde_json::Value>,
) -> ApiResult<()> {
    let mut tx = state.write().await?;
    state
        .append_audit(
            &mut tx,
            &caller
                .ctx
                .event("bulk.issued", "", "", serde_json::json!({ "rows": rows })),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// One row through the API: person, identity check, position, card.
async fn run_row(state: &AppState, caller: &RaCaller, f: &Fields, v: &Valid) -> BulkRow {
    let mut row = report(f, outcome::FAILED, vec![]);
    let s = || State(state.clone());
    let person = ra::create_person(
        s(),
        caller.clone(),
        ApiJson(CreatePerson {
            given_name: f.given_name.clone(),
            family_name: f.family_name.clone(),
            email: Some(f.email.clone()),
            organisation: v.ods.to_string(),
        }),
    )
    .await;
    let uid = match person {
        Ok(Json(p)) => p.uid,
        Err(e) => {
            row.errors.push(api_err("person", &e));
            return row;
        }
    };
    row.uid = Some(uid.clone());
    row.done.push(step::PERSON_CREATED.into());
    let checked = ra::record_identity_check_by(
        state,
        caller,
        &uid,
        &RecordIdentityCheck {
            evidence: v.evidence.iter().map(|e| e.as_str().to_owned()).collect(),
            level: v.level.get(),
            organisation: v.ods.to_string(),
        },
        Some(&v.checker),
    )
    .await;
    if let Err(e) = checked {
        row.errors.push(api_err("identity_check", &e));
        return row;
    }
    row.done.push(step::IDENTITY_CHECKED.into());
    let role_name = if f.role_name.is_empty() {
        v.role.to_string()
    } else {
        f.role_name.clone()
    };
    let placed = ra::assign_position(
        s(),
        caller.clone(),
        Path(uid.clone()),
        ApiJson(AssignPosition {
            organisation: v.ods.to_string(),
            role_code: v.role.to_string(),
            role_name,
            activities: v.activities.iter().map(ToString::to_string).collect(),
        }),
    )
    .await;
    if let Err(e) = placed {
        row.errors.push(api_err("position", &e));
        return row;
    }
    row.done.push(step::POSITION_ASSIGNED.into());
    let card = ra::issue_card(
        s(),
        caller.clone(),
        Path(uid),
        ApiJson(IssueCard {
            organisation: v.ods.to_string(),
        }),
    )
    .await;
    match card {
        Ok(Json(c)) => {
            row.done.push(step::CARD_ISSUED.into());
            row.card_id = Some(c.card.id);
            row.activation = Some(c.code);
            row.outcome = outcome::ISSUED.into();
        }
        Err(e) => row.errors.push(api_err("card", &e)),
    }
    row
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(level: &str, evidence: &str) -> Fields {
        Fields {
            row: 2,
            given_name: "Mary".into(),
            family_name: "Seacole".into(),
            email: "mary@example.nhs.uk".into(),
            organisation: "RX1".into(),
            role_code: "S8000:G8000:R8000".into(),
            role_name: String::new(),
            activities: "B0570; B0278".into(),
            evidence: evidence.into(),
            level: level.into(),
            checker_uid: "545737588804".into(),
        }
    }

    fn codes(f: &Fields) -> Vec<String> {
        let mut errors = vec![];
        let v = check_values(f, &mut errors);
        assert_eq!(v.is_some(), errors.is_empty());
        errors.into_iter().map(|e| e.code).collect()
    }

    #[test]
    fn values_are_checked_with_every_error_named() {
        assert!(
            codes(&fields("3", "passport proof-of-address")).is_empty(),
            "{:?}",
            codes(&fields("3", "passport proof-of-address"))
        );
        assert_eq!(
            codes(&fields("2", "passport")),
            vec![code::IDENTITY_NOT_VERIFIED]
        );
        assert_eq!(
            codes(&fields("3", "passport")),
            vec![code::INSUFFICIENT_EVIDENCE]
        );
        assert_eq!(
            codes(&fields("4", "passport x")),
            vec![code::INVALID_EVIDENCE, code::INVALID_LEVEL]
        );
        let mut f = fields("3", "passport passport");
        f.given_name = "=HYPERLINK(\"x\")".into();
        f.email = "nope".into();
        f.checker_uid = "12".into();
        assert_eq!(
            codes(&f),
            vec![
                code::BULK_FORMULA_CELL,
                code::INVALID_EMAIL,
                code::INVALID_EVIDENCE,
                code::INVALID_UID
            ]
        );
        let mut f = fields("3", "passport driving-licence");
        f.activities = "-1".into();
        f.role_code = "+S1".into();
        assert_eq!(
            codes(&f),
            vec![code::BULK_FORMULA_CELL, code::BULK_FORMULA_CELL]
        );
    }
}

//! Bulk issuance, in the console and through `POST /api/v1/ra/bulk-issue`: the preview names
//! every bad row's errors and writes nothing; the run issues the good rows through the RA API's
//! handlers (a bad row does not stop the others) with activations that enrol real phones; an RA
//! Agent's rows outside their organisation get the API's refusal; hostile files get clear
//! errors and write nothing.

use vsc_proto::bulk::{BulkIssueReport, BulkIssueRequest, outcome, step};
use vsc_proto::errors as code;
use vsc_proto::routes;

use crate::common::{Phone, TestServer, assert_api_error, start};
use crate::signin::console_sign_in;
use crate::support::{Browser, field};

const HEADER: &str = "given_name,family_name,email,organisation,role_code,role_name,activities,evidence,level,checker_uid";

fn row(given: &str, email: &str, org: &str, level: &str, checker: &str) -> String {
    format!(
        "{given},Tester,{email},{org},S8000:G8000:R8000,Clinical Practitioner Access Role,B0570,passport proof-of-address,{level},{checker}"
    )
}

fn csv(rows: &[String]) -> String {
    let mut out = format!("{HEADER}\r\n");
    for r in rows {
        out.push_str(r);
        out.push_str("\r\n");
    }
    out
}

/// HTML text back to the text (maud escapes `&`, `<`, `>`, `"`).
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every activation link of a results page.
fn activation_links(body: &str) -> Vec<String> {
    body.split("class=\"activation-link\" href=\"")
        .skip(1)
        .map(|rest| unescape(&rest[..rest.find('"').unwrap()]))
        .collect()
}

async fn count(s: &TestServer, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    n
}

async fn api(
    s: &TestServer,
    token: &str,
    csv: &str,
    dry_run: bool,
) -> Result<BulkIssueReport, vsc_authenticator::ClientError> {
    s.post(
        Some(token),
        routes::RA_BULK_ISSUE,
        &BulkIssueRequest {
            csv: csv.to_owned(),
            dry_run,
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_names_bad_rows_then_the_run_issues_the_good_ones() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let checker = ram.uid.clone();
    let file = csv(&[
        row("Mary", "mary@example.nhs.uk", "RX1", "3", &checker),
        row("Bad", "not-an-email", "RX1", "2", &checker),
        row("Ada", "ada@example.nhs.uk", "RX1", "3", &checker),
        row("Nowhere", "nowhere@example.nhs.uk", "RZ9", "3", &checker),
        row(
            "\"=HYPERLINK(\"\"http://x\"\")\"",
            "formula@example.nhs.uk",
            "RX1",
            "3",
            &checker,
        ),
        row("Again", "MARY@example.nhs.uk", "RX1", "3", &checker),
        row("Unchecked", "u@example.nhs.uk", "RX1", "3", "123456789012"),
    ]);
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let form = b.get("/ra/bulk").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("<textarea"), "{}", form.body);
    let csrf = form.csrf();

    // Without the CSRF token nothing happens.
    let before = s.snapshot().await;
    let forged = b
        .post("/ra/bulk/run", &[("csrf", "x"), ("csv", &file)])
        .await;
    assert_eq!(forged.status, 403);

    // The preview: every bad row and each of its errors named; nothing written.
    let people = count(&s, "people").await;
    let preview = b
        .post("/ra/bulk/preview", &[("csrf", &csrf), ("csv", &file)])
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    for needed in [
        "2 ready",
        "5 with errors",
        code::INVALID_EMAIL,
        code::IDENTITY_NOT_VERIFIED,
        code::UNKNOWN_ORGANISATION,
        code::BULK_FORMULA_CELL,
        code::BULK_DUPLICATE_ROW,
        code::UNKNOWN_PERSON,
        "Nothing has been written",
    ] {
        assert!(
            preview.body.contains(needed),
            "{needed} in:\n{}",
            preview.body
        );
    }
    assert_eq!(preview.headers["cache-control"], "no-store");
    s.assert_unchanged(&before, &s.snapshot().await, "the preview");
    assert_eq!(count(&s, "people").await, people);
    // The same through the API.
    let report = api(&s, &ram.token, &file, true).await.unwrap();
    let outcomes: Vec<&str> = report.rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "valid", "invalid", "valid", "invalid", "invalid", "invalid", "invalid"
        ]
    );
    let bad = &report.rows[1];
    assert_eq!(bad.row, 3);
    let codes: Vec<&str> = bad.errors.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, [code::INVALID_EMAIL, code::IDENTITY_NOT_VERIFIED]);
    s.assert_unchanged(&before, &s.snapshot().await, "the dry run");

    // Confirm: the good rows get people, checks, positions and cards; the bad ones nothing.
    let confirm_csv = unescape(&field(&preview.body, "csv").unwrap());
    assert_eq!(confirm_csv, file);
    let cards = count(&s, "cards").await;
    let results = b
        .post("/ra/bulk/run", &[("csrf", &csrf), ("csv", &confirm_csv)])
        .await;
    assert_eq!(results.status, 200, "{}", results.body);
    assert!(results.body.contains("2 cards issued"), "{}", results.body);
    assert!(results.body.contains("Activation letters"));
    assert_eq!(results.body.matches("class=\"letter\"").count(), 2);
    assert_eq!(
        results.body.matches("<svg").count(),
        2,
        "a QR code on each letter"
    );
    assert_eq!(count(&s, "people").await, people + 2);
    assert_eq!(count(&s, "cards").await, cards + 2);
    let links = activation_links(&results.body);
    assert_eq!(links.len(), 2);

    // One activation from the results enrols a real phone.
    let phone = Phone::new();
    let enrolled = s
        .enrol(&phone, &links[0])
        .await
        .expect("the activation enrols a phone");
    let person = s.person(&ram.token, &enrolled.uid).await;
    assert_eq!(person.given_name, "Mary");
    assert_eq!(person.email.as_deref(), Some("mary@example.nhs.uk"));
    assert_eq!(person.positions[0].role_code, "S8000:G8000:R8000");
    assert_eq!(person.positions[0].activities, ["B0570"]);
    assert_eq!(person.identity_checks[0].level, 3);
    assert_eq!(s.card_state(&enrolled.card_id).await, "active");

    // The results CSV, downloaded from the page.
    let results_csv = unescape(&field(&results.body, "csv").unwrap());
    let download = b
        .post(
            "/ra/bulk/results.csv",
            &[("csrf", &csrf), ("csv", &results_csv)],
        )
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(download.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        download.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let lines: Vec<&str> = download.body.lines().collect();
    assert_eq!(lines.len(), 8, "{}", download.body);
    assert!(
        lines[1].starts_with("2,issued,Mary,Tester,mary@example.nhs.uk,RX1,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("/activate#"), "{}", lines[1]);
    assert!(lines[2].starts_with("3,invalid,"), "{}", lines[2]);
    // The formula cell does not come back as a formula.
    assert!(lines[5].contains("'=HYPERLINK"), "{}", lines[5]);
    let forged = b
        .post("/ra/bulk/results.csv", &[("csrf", "x"), ("csv", "a")])
        .await;
    assert_eq!(forged.status, 403);

    // The same file again issues nothing twice: those emails are registered now.
    let again = api(&s, &ram.token, &file, false).await.unwrap();
    assert_eq!(again.ok_rows(), 0);
    assert_eq!(again.rows[0].errors[0].code, code::BULK_PERSON_EXISTS);
    assert_eq!(count(&s, "people").await, people + 2);
    s.assert_audit_intact().await;
}

/// The row's checker saw the documents, so the check is theirs; the RA who ran the file is
/// its recorder. A checker who may not check identity at the row's organisation (or is the
/// person themselves) is refused by the preview and by the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rows_checker_is_recorded_as_the_checker_and_the_runner_as_recorder() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let checker = s.new_ra(&ram.token, "RX1", "id-checker", &[]).await;
    let elsewhere = s.new_ra(&ram.token, "RY2", "id-checker", &[]).await;
    let file = csv(&[
        row("Grace", "grace@example.nhs.uk", "RX1", "3", &checker.uid),
        row("Wrong", "wrong@example.nhs.uk", "RX1", "3", &elsewhere.uid),
    ]);
    let report = api(&s, &ram.token, &file, false).await.expect("run");
    assert_eq!(report.rows[0].outcome, outcome::ISSUED, "{report:?}");
    assert_eq!(report.rows[1].outcome, outcome::INVALID, "{report:?}");
    assert_eq!(
        report.rows[1].errors[0].code,
        code::BULK_CHECKER_NOT_PERMITTED,
        "{report:?}"
    );
    let uid = report.rows[0].uid.clone().expect("uid");
    let person = s.person(&ram.token, &uid).await;
    assert_eq!(person.identity_checks.len(), 1);
    assert_eq!(person.identity_checks[0].checked_by, checker.uid);
    assert_eq!(
        person.identity_checks[0].recorded_by.as_deref(),
        Some(ram.uid.as_str())
    );
    let events = s.audit_events("identity.checked").await;
    let last = events.last().expect("an identity check event");
    assert_eq!(
        (last.actor.as_str(), last.subject.as_str()),
        (ram.uid.as_str(), uid.as_str())
    );
    assert!(last.detail.contains(&checker.uid), "{}", last.detail);
    assert_eq!(
        count(&s, "people").await,
        4,
        "no person for the refused row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_agent_gets_the_apis_refusal_for_rows_outside_their_organisation() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let file = csv(&[
        row("Home", "home@example.nhs.uk", "RX1", "3", &ram.uid),
        row("Away", "away@example.nhs.uk", "RY2", "3", &ram.uid),
    ]);

    // The preview says so before anything is written.
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &agent.uid, &agent.phone).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let csrf = dashboard.csrf();
    let preview = b
        .post("/ra/bulk/preview", &[("csrf", &csrf), ("csv", &file)])
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains("1 ready"), "{}", preview.body);
    assert!(
        preview.body.contains(code::RA_OUTSIDE_ORGANISATION),
        "{}",
        preview.body
    );

    // A run anyway (a hand-crafted POST): the API refuses the row, the other one is issued.
    let results = b
        .post("/ra/bulk/run", &[("csrf", &csrf), ("csv", &file)])
        .await;
    assert_eq!(results.status, 200, "{}", results.body);
    assert!(results.body.contains("1 cards issued"), "{}", results.body);
    assert!(
        results.body.contains(code::RA_OUTSIDE_ORGANISATION),
        "{}",
        results.body
    );
    s.assert_audited("person.create", code::RA_OUTSIDE_ORGANISATION, 1)
        .await;

    // Through the API: the same.
    let file2 = csv(&[
        row("Home2", "home2@example.nhs.uk", "RX1", "3", &ram.uid),
        row("Away2", "away2@example.nhs.uk", "RY2", "3", &ram.uid),
    ]);
    let report = api(&s, &agent.token, &file2, false).await.unwrap();
    assert_eq!(report.rows[0].outcome, outcome::ISSUED);
    assert_eq!(
        report.rows[0].done,
        [
            step::PERSON_CREATED,
            step::IDENTITY_CHECKED,
            step::POSITION_ASSIGNED,
            step::CARD_ISSUED
        ]
    );
    assert!(report.rows[0].activation.is_some());
    let away = &report.rows[1];
    assert_eq!(away.outcome, outcome::FAILED);
    assert!(away.done.is_empty() && away.uid.is_none());
    assert_eq!(away.errors[0].field, "person");
    assert_eq!(away.errors[0].code, code::RA_OUTSIDE_ORGANISATION);
    s.assert_audited("person.create", code::RA_OUTSIDE_ORGANISATION, 2)
        .await;
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_get_clear_errors_and_write_nothing() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let before = s.snapshot().await;
    let good = row("Mary", "mary@example.nhs.uk", "RX1", "3", &ram.uid);

    let unterminated = format!("{HEADER}\n\"Mary,Tester,m@x.uk,RX1\n");
    let msg = assert_api_error(
        api(&s, &ram.token, &unterminated, false).await,
        400,
        code::BULK_CSV_INVALID,
    );
    assert!(
        msg.contains("line 2") && msg.contains("never ends"),
        "{msg}"
    );
    let stray = format!("{HEADER}\nMa\"ry,Tester\n");
    assert_api_error(
        api(&s, &ram.token, &stray, false).await,
        400,
        code::BULK_CSV_INVALID,
    );
    let many = csv(&vec![good.clone(); 2000]);
    let msg = assert_api_error(
        api(&s, &ram.token, &many, false).await,
        400,
        code::BULK_CSV_TOO_MANY_ROWS,
    );
    assert!(msg.contains("1,000"), "{msg}");
    let huge = format!("{HEADER}\n{}", "x".repeat(2 * 1024 * 1024));
    let msg = assert_api_error(
        api(&s, &ram.token, &huge, false).await,
        400,
        code::BULK_CSV_TOO_LARGE,
    );
    assert!(msg.contains("1 MiB"), "{msg}");
    let headless = "Mary,Tester\n";
    assert_api_error(
        api(&s, &ram.token, headless, true).await,
        400,
        code::BULK_CSV_INVALID,
    );
    // Formula cells in any column, and a short row: named per row, in a run too.
    let formulas = csv(&[
        "=1+1,Tester,a@example.nhs.uk,RX1,S8000:G8000:R8000,,B0570,passport driving-licence,3,"
            .to_owned()
            + &ram.uid,
        format!(
            "Ann,@SUM(A1),b@example.nhs.uk,RX1,+S8000,,-B0570,passport driving-licence,3,{}",
            ram.uid
        ),
        "Short,Row".to_owned(),
    ]);
    let report = api(&s, &ram.token, &formulas, false).await.unwrap();
    assert_eq!(report.ok_rows(), 0);
    assert!(
        report.rows[0]
            .errors
            .iter()
            .any(|e| e.code == code::BULK_FORMULA_CELL && e.field == "given_name")
    );
    let fields: Vec<&str> = report.rows[1]
        .errors
        .iter()
        .filter(|e| e.code == code::BULK_FORMULA_CELL)
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, ["family_name", "role_code", "activities"]);
    assert_eq!(report.rows[2].errors[0].code, code::BULK_CSV_INVALID);
    s.assert_unchanged(&before, &s.snapshot().await, "hostile files");

    // In the console: the page names the problem; a body beyond the limit is refused.
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    let csrf = dashboard.csrf();
    let page = b
        .post("/ra/bulk/preview", &[("csrf", &csrf), ("csv", &huge)])
        .await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("1 MiB") && page.body.contains(code::BULK_CSV_TOO_LARGE),
        "{}",
        &page.body[..500.min(page.body.len())]
    );
    let page = b
        .post("/ra/bulk/run", &[("csrf", &csrf), ("csv", &unterminated)])
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("never ends"));
    // Beyond the body limit: 413, or the connection closed while the client still sends.
    let beyond = format!("csrf={csrf}&csv={}", "x".repeat(9 * 1024 * 1024));
    let sent = b
        .http
        .post(b.url("/ra/bulk/preview"))
        .header(reqwest::header::COOKIE, b.cookie_header())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(beyond)
        .send()
        .await;
    if let Ok(r) = sent {
        assert_eq!(r.status(), 413);
    }
    s.assert_unchanged(&before, &s.snapshot().await, "hostile files in the console");
}

//! The audit trail page and its CSV export: an RA sees the events of their organisations only
//! (national RAs everything), the export holds the same rows with formulas disarmed, bad filter
//! input is named, and each view and export is itself audited.

use crate::common::start;
use crate::signin::console_sign_in;
use crate::support::Browser;

/// The header line and data rows of a CSV export, read by RFC 4180's rules (quoted fields,
/// doubled quotes, CRLF between records).
fn csv_rows(body: &str) -> (String, Vec<Vec<String>>) {
    let (header, rest) = body.split_once("\r\n").unwrap();
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = rest.chars().peekable();
    let mut quoted = false;
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'));
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => panic!("unquoted {c:?} in {body}"),
        }
    }
    assert!(
        row.is_empty() && field.is_empty(),
        "the last record ends with CRLF"
    );
    (header.to_owned(), rows)
}

/// How many event rows a trail page shows.
fn page_rows(body: &str) -> usize {
    body.matches("<tr class=\"outcome-").count()
}

async fn count(s: &crate::common::TestServer, action: &str, actor: &str) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = $1 AND actor = $2")
            .bind(action)
            .bind(actor)
            .fetch_one(s.state.store().pool())
            .await
            .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_sees_the_events_of_their_organisation_only() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let in_rx1 = s.create_person(&ram.token, "RX1").await;
    let in_ry2 = s.create_person(&ram.token, "RY2").await;
    let agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    let mut b = Browser::new(&s);
    assert_eq!(
        console_sign_in(&s, &mut b, &agent.uid, &agent.phone)
            .await
            .status,
        200
    );

    let trail = b.get("/ra/audit").await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    assert_eq!(trail.headers["cache-control"], "no-store");
    assert!(trail.body.contains(&in_rx1), "{}", trail.body);
    assert!(!trail.body.contains(&in_ry2), "{}", trail.body);
    assert!(!trail.body.contains(">RY2<"), "{}", trail.body);
    // Events without an organisation (the instance's bootstrap, sign-ins) are national RAs' only.
    assert!(!trail.body.contains("<td></td>"), "{}", trail.body);
    for label in [
        "Person UID",
        "Card id",
        "Organisation (ODS code)",
        "Actor UID",
        "From date",
        "To date",
    ] {
        assert!(trail.body.contains(label), "{label}");
    }

    // Asking for RY2's events finds none, and says why; the person filter cannot cross either.
    let other = b.get("/ra/audit?organisation=RY2").await;
    assert_eq!(other.status, 200);
    assert!(
        other.body.contains("RY2 is not one of your organisations"),
        "{}",
        other.body
    );
    assert_eq!(page_rows(&other.body), 0);
    let person = b.get(&format!("/ra/audit?person={in_ry2}")).await;
    assert_eq!(page_rows(&person.body), 0, "{}", person.body);
    let csv = b.get("/ra/audit.csv?organisation=RY2").await;
    assert_eq!(csv.status, 200);
    assert!(csv_rows(&csv.body).1.is_empty(), "{}", csv.body);
    let csv = b.get("/ra/audit.csv").await;
    assert!(!csv.body.contains(&in_ry2));
    assert!(csv.body.contains(&in_rx1));

    // The person filter keeps that person's events.
    let mine = b.get(&format!("/ra/audit?person={in_rx1}")).await;
    assert!(page_rows(&mine.body) >= 1);
    assert!(mine.body.contains("person.created"));
    assert!(!mine.body.contains(&agent.uid[..]) || mine.body.contains("Signed in as"));

    // Every view and export was audited, as the agent.
    assert!(count(&s, "audit.view", &agent.uid).await >= 4);
    assert_eq!(count(&s, "audit.export", &agent.uid).await, 2);

    // The national RA Manager sees both organisations and the events without one.
    let mut nb = Browser::new(&s);
    assert_eq!(
        console_sign_in(&s, &mut nb, &ram.uid, &ram.phone)
            .await
            .status,
        200
    );
    let all = nb.get("/ra/audit").await;
    assert!(
        all.body.contains(&in_rx1) && all.body.contains(&in_ry2),
        "{}",
        all.body
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_export_holds_the_same_rows_with_formulas_disarmed() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let mut b = Browser::new(&s);
    let dashboard = console_sign_in(&s, &mut b, &ram.uid, &ram.phone).await;
    assert_eq!(dashboard.status, 200);
    // A refused registration leaves its (attacker-chosen) ODS code as an event's subject.
    let orgs = b.get("/ra/organisations").await;
    let refused = b
        .post(
            "/ra/organisations",
            &[
                ("csrf", &orgs.csrf()),
                ("ods_code", "=cmd|' /C calc'!A0"),
                ("name", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    let filter = format!("actor={}", ram.uid);
    let trail = b.get(&format!("/ra/audit?{filter}")).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let shown = page_rows(&trail.body);
    assert!(shown >= 3, "{}", trail.body);
    assert!(trail.body.contains("organisation.create"));
    let link = format!("/ra/audit.csv?{filter}");
    assert!(
        trail.body.contains(&link.replace('&', "&amp;")),
        "{}",
        trail.body
    );

    let csv = b.get(&link).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = csv.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"vsc-audit-"),
        "{disposition}"
    );
    assert_eq!(csv.headers["cache-control"], "no-store");
    let (header, rows) = csv_rows(&csv.body);
    assert_eq!(
        header,
        "\"seq\",\"time_utc\",\"actor\",\"action\",\"subject\",\"organisation\",\"outcome\",\"source\",\"detail\""
    );
    // The same rows as the page, plus the page view's own audit.view event, the newest.
    assert_eq!(rows.len(), shown + 1, "{}", csv.body);
    assert_eq!(rows[0][3], "audit.view");
    for row in &rows {
        assert_eq!(row.len(), 9, "{row:?}");
        assert_eq!(row[2], ram.uid);
        assert!(
            trail.body.contains(&format!("<td>{}</td>", row[3])) || row[3] == "audit.view",
            "{row:?}"
        );
    }
    let seqs: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    // The formula is disarmed.
    let cmd = rows.iter().find(|r| r[3] == "organisation.create").unwrap();
    assert_eq!(cmd[4], "'=cmd|' /C calc'!A0");
    assert_eq!(cmd[6], "failure");
    assert!(!csv.body.contains(",\"=cmd"));
    assert_eq!(count(&s, "audit.export", &ram.uid).await, 1);

    // Paging: one page older than the newest event starts below it.
    let newest = seqs[0];
    let older = b.get(&format!("/ra/audit?{filter}&before={newest}")).await;
    assert_eq!(older.status, 200);
    assert_eq!(page_rows(&older.body), shown);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filter_input_is_named_not_a_server_error() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let mut b = Browser::new(&s);
    assert_eq!(
        console_sign_in(&s, &mut b, &ram.uid, &ram.phone)
            .await
            .status,
        200
    );
    let views = count(&s, "audit.view", &ram.uid).await;
    for (query, says) in [
        ("from=yesterday", "From: give a date as YYYY-MM-DD"),
        ("to=2025-02-30", "To: give a date as YYYY-MM-DD"),
        ("from=2025-03-02&to=2025-03-01", "From is after To"),
        ("person=12345", "Person UID: give the 12-digit UID"),
        (
            "actor=%27%3B+DROP+TABLE+audit_events",
            "Actor: give a 12-digit UID",
        ),
        ("organisation=R%25", "Organisation: give an ODS code"),
        ("card=%22%3E%3Cscript%3E", "Card id"),
        ("before=-1", "start again from the newest events"),
    ] {
        let page = b.get(&format!("/ra/audit?{query}")).await;
        assert_eq!(page.status, 400, "{query}: {}", page.body);
        assert!(page.body.contains(says), "{query}: {}", page.body);
        assert!(!page.body.contains("<script>"), "{query}");
        let csv = b.get(&format!("/ra/audit.csv?{query}")).await;
        assert_eq!(csv.status, 400, "{query}");
    }
    // Nothing was shown, so nothing was audited as viewed.
    assert_eq!(count(&s, "audit.view", &ram.uid).await, views);
    assert_eq!(count(&s, "audit.export", &ram.uid).await, 0);
    // A good date range works.
    let ok = b.get("/ra/audit?from=1970-01-01&to=2999-12-31").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Without a console session: to the sign-in, not the data.
    let mut stranger = Browser::new(&s);
    for path in ["/ra/audit", "/ra/audit.csv", "/ra/organisations"] {
        let r = stranger.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.location.as_deref(), Some("/ra/signin"));
    }
}

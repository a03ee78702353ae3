//! `vsc ra bulk-issue` through the real binary against `vsc serve`: a dry run prints every
//! row's report and exits non-zero when a row is bad, writing nothing; a real run issues the
//! good rows, reports the bad ones, writes the results file with mode 0600, and one of its
//! activations enrols a phone.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Server, ok, run};

const PASSCODE: &str = "246810";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dry_run_then_run_with_a_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _server = Server::start(&data);
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let link = bootstrap["activation"]["url"].as_str().unwrap().to_owned();
    let ram_uid = bootstrap["uid"].as_str().unwrap().to_owned();
    let ram = tmp.path().join("ram-phone");
    ok(
        &["authenticator", "--home", path(&ram), "enrol", &link],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    ok(
        &[
            "ra",
            "--home",
            path(&ram),
            "org",
            "create",
            "--ods",
            "RX1",
            "--name",
            "Example Trust",
        ],
        None,
    );

    let file = tmp.path().join("staff.csv");
    std::fs::write(
        &file,
        format!(
            "\u{feff}given_name,family_name,email,organisation,role_code,role_name,activities,evidence,level,checker_uid\r\n\
Mary,Seacole,mary@example.nhs.uk,RX1,S8000:G8000:R8000,Clinical Practitioner Access Role,B0570,passport proof-of-address,3,{ram_uid}\r\n\
\"O'Neil, Jr\",Smith,not-an-email,RX1,S8000:G8000:R8000,,B0570,passport,3,{ram_uid}\r\n\
Ada,Lovelace,ada@example.nhs.uk,RX1,S8000:G8000:R8000,,B0570;B0278,passport driving-licence,3,{ram_uid}\r\n"
        ),
    )
    .unwrap();
    let bulk = |extra: &[&str]| {
        let mut args = vec!["ra", "--home", path(&ram), "bulk-issue", path(&file)];
        args.extend_from_slice(extra);
        run(&args, None)
    };

    // --help explains the columns.
    let help = ok(&["ra", "--home", path(&ram), "bulk-issue", "--help"], None);
    for needed in ["checker_uid", "--dry-run", "--results", "Example file"] {
        assert!(help.contains(needed), "{needed} in:\n{help}");
    }

    // Dry run: a line per row, the bad one's errors, exit 1, nothing written.
    let dry = bulk(&["--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(!dry.status.success(), "{out}");
    assert!(out.contains("row    2  OK     Mary Seacole"), "{out}");
    assert!(out.contains("row    3  ERROR  O'Neil, Jr Smith"), "{out}");
    assert!(
        out.contains("email: 'not-an-email' is not an email address (invalid_email)"),
        "{out}"
    );
    assert!(out.contains("(insufficient_evidence)"), "{out}");
    assert!(out.contains("row    4  OK     Ada Lovelace"), "{out}");
    assert!(
        out.contains("3 rows: 2 ready, 1 with errors (dry run: nothing written)"),
        "{out}"
    );
    // (That nothing was written shows below: the run issues both good rows, which it would
    // refuse as already registered had the dry run created them.)
    // --json: the report.
    let dry_json = bulk(&["--dry-run", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&dry_json.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["rows"][1]["outcome"], "invalid");
    assert_eq!(report["rows"][1]["errors"][0]["code"], "invalid_email");

    // A file that cannot be read: the reason, exit 1.
    let broken = tmp.path().join("broken.csv");
    std::fs::write(&broken, "given_name,family_name\n\"Mary,Seacole\n").unwrap();
    let out = run(
        &[
            "ra",
            "--home",
            path(&ram),
            "bulk-issue",
            path(&broken),
            "--dry-run",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never ends"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The run: two cards, one row refused, exit 1; the results file is 0600.
    let results = tmp.path().join("results.csv");
    let real = bulk(&["--results", path(&results)]);
    let out = String::from_utf8_lossy(&real.stdout);
    assert!(!real.status.success(), "{out}");
    assert!(
        out.contains("3 rows: 2 cards issued, 1 not issued"),
        "{out}"
    );
    assert!(out.contains("code "), "{out}");
    let mode = std::fs::metadata(&results).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let csv = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("row,outcome,given_name"), "{csv}");
    assert!(lines[1].starts_with("2,issued,Mary,Seacole,"), "{csv}");
    assert!(
        lines[2].starts_with("3,invalid,\"O'Neil, Jr\",Smith"),
        "{csv}"
    );
    assert!(lines[3].starts_with("4,issued,Ada,Lovelace,"), "{csv}");

    // Mary's activation from the results file enrols her phone.
    let url = lines[1]
        .split(',')
        .find(|f| f.contains("/activate#"))
        .unwrap()
        .to_owned();
    let mary = tmp.path().join("mary-phone");
    let enrolled = ok(
        &["authenticator", "--home", path(&mary), "enrol", &url],
        Some(PASSCODE),
    );
    assert!(
        enrolled.contains("Mary") || enrolled.contains("UID"),
        "{enrolled}"
    );

    // Running the file again issues nothing twice.
    let again = bulk(&[]);
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(!again.status.success());
    assert!(out.contains("bulk_person_exists"), "{out}");
    assert!(out.contains("0 cards issued"), "{out}");
}

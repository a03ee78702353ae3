//! `vsc ra licences` through the real `vsc` binary against `vsc serve` on loopback: no pool (not
//! enforced), creating the pool, an application approved and one waiting, issuance refused with
//! the waiting-list position, the report as text, CSV and JSON, bad input refused, an
//! extension approved at once and one waiting for funding until a top-up serves it, and
//! `--help` that reads like a manual page.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Server, ok, run};

const PASSCODE: &str = "246810";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pool_apply_approve_issue_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _server = Server::start_with(&data, &[]);
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let link = bootstrap["activation"]["url"].as_str().unwrap().to_owned();
    let ram = tmp.path().join("ram-phone");
    ok(
        &["authenticator", "--home", path(&ram), "enrol", &link],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    let ra_run = |args: &[&str]| {
        let mut full = vec!["ra", "--home", path(&ram)];
        full.extend_from_slice(args);
        run(&full, None)
    };
    let ra = |args: &[&str]| -> String {
        let out = ra_run(args);
        assert!(
            out.status.success(),
            "vsc ra {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ra_fails = |args: &[&str]| -> String {
        let out = ra_run(args);
        assert!(!out.status.success(), "vsc ra {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let ra_json = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = ra(&full);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json prints JSON ({e}): {out}"))
    };

    // --help reads like a manual page.
    for (sub, needed) in [
        (
            "pool",
            &["Examples:", "--add-funding", "--grace-days", "enforced"][..],
        ),
        (
            "apply",
            &["Example:", "--contact", "--systems", "waiting list"][..],
        ),
        (
            "approve",
            &["Examples:", "first come, first served", "--end"][..],
        ),
        ("return", &["Example:", "--count", "waiting list"][..]),
        (
            "extend",
            &["Examples:", "funding", "--to", "extension queue"][..],
        ),
        (
            "extensions",
            &[
                "Examples:",
                "--approve",
                "--withdraw",
                "first come, first served",
            ][..],
        ),
        ("report", &["Examples:", "--csv", "expiring"][..]),
    ] {
        let help = ra(&["licences", sub, "--help"]);
        for n in needed {
            assert!(help.contains(n), "{n} in `licences {sub} --help`:\n{help}");
        }
    }

    ra(&[
        "org",
        "create",
        "--ods",
        "RX1",
        "--name",
        "Example Hospitals NHS Trust",
    ]);
    let person = |given: &str| -> String {
        let p = ra_json(&[
            "person", "create", "--given", given, "--family", "Seacole", "--org", "RX1",
        ]);
        let uid = p["uid"].as_str().unwrap().to_owned();
        ra(&[
            "person",
            "id-check",
            &uid,
            "--evidence",
            "passport",
            "--evidence",
            "proof-of-address",
            "--level",
            "3",
            "--org",
            "RX1",
        ]);
        uid
    };
    let mary = person("Mary");
    let alex = person("Alex");

    // No pool: not enforced.
    assert!(ra(&["licences", "report"]).contains("not enforced"));
    assert!(ra(&["licences", "pool"]).contains("No licence pool"));

    let out = ra(&["licences", "pool", "--add", "1", "--add-funding", "10"]);
    assert!(
        out.contains("Pool: 1 licences, 0 allocated, 1 available"),
        "{out}"
    );
    let out = ra(&[
        "licences",
        "apply",
        "RX1",
        "--count",
        "1",
        "--contact",
        "Jo Bloggs",
        "--systems",
        "EPS",
    ]);
    assert!(out.contains("place 1"), "{out}");
    ra(&[
        "licences",
        "apply",
        "RX1",
        "--count",
        "1",
        "--contact",
        "Jo Bloggs",
        "--systems",
        "SCR",
    ]);
    let out = ra(&["licences", "approve"]);
    assert!(
        out.contains("Approved:") && out.contains("1 allocated"),
        "{out}"
    );
    let pool = ra_json(&["licences", "pool"]);
    assert_eq!(pool["available"], 0);
    assert_eq!(pool["waiting"][0]["position"], 1);

    ra(&["card", "issue", &mary, "--org", "RX1"]);
    let err = ra_fails(&["card", "issue", &alex, "--org", "RX1"]);
    assert!(
        err.contains("no free virtual smartcard licence") && err.contains("number 1 of 1"),
        "{err}"
    );

    let csv = ra(&["licences", "report", "--csv"]);
    assert_eq!(
        csv,
        "organisation,allocated,used,free,waiting,waiting_position,expiring,expiring_on,extensions_waiting,extension_position,extension_requested_to\nRX1,1,1,0,1,1,0,,0,,\n"
    );
    let report = ra_json(&["licences", "report"]);
    assert_eq!(report["enforced"], true);
    assert_eq!(report["organisations"][0]["used"], 1);
    let text = ra(&["licences", "report"]);
    assert!(text.contains("RX1") && text.contains("allocated"), "{text}");

    // Bad input is refused by the server with its code.
    let err = ra_fails(&[
        "licences",
        "apply",
        "RX1",
        "--count=-3",
        "--contact",
        "Jo",
        "--systems",
        "EPS",
    ]);
    assert!(
        err.contains("invalid_licence_request") || err.contains("from 1 to"),
        "{err}"
    );
    let err = ra_fails(&["licences", "extend", "1", "--end", "2026-02-30"]);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let err = ra_fails(&["licences", "return", "RX1", "--count", "1"]);
    assert!(err.contains("unused licences"), "{err}");

    // Extensions: the block's last day, plus some days.
    let block = report["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["state"] == "approved")
        .unwrap()
        .clone();
    let id = block["id"].as_i64().unwrap().to_string();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let end = time::Date::parse(block["end"].as_str().unwrap(), &format).unwrap();
    let plus = |days: i64| (end + time::Duration::days(days)).format(&format).unwrap();
    // The national RA Manager's own request, first and funded (1 licence × 4 days of 10): at once.
    let out = ra(&["licences", "extend", &id, "--to", &plus(4)]);
    assert!(
        out.contains("Extended") && out.contains("funding left: 6"),
        "{out}"
    );
    // Beyond the funding (7 days): it waits, and approving says why.
    let out = ra(&["licences", "extend", &id, "--to", &plus(11)]);
    assert!(out.contains("waiting") && out.contains("place 1"), "{out}");
    let out = ra(&["licences", "extensions"]);
    assert!(
        out.contains("place 1, costs 7 licence-days") && out.contains("approved (4 licence-days)"),
        "{out}"
    );
    let text = ra(&["licences", "report"]);
    assert!(
        text.contains("Extension requests waiting (first come, first served):")
            && text.contains(&plus(11)),
        "{text}"
    );
    let err = ra_fails(&["licences", "extensions", "--approve"]);
    assert!(
        err.contains("licence_funding_exhausted") || err.contains("keeps its place"),
        "{err}"
    );
    // A funding top-up serves the queue.
    let out = ra(&["licences", "pool", "--add-funding", "10"]);
    assert!(out.contains("Extension approved from the top-up"), "{out}");
    let text = ra(&["licences", "report"]);
    assert!(text.contains("Extension requests waiting: none"), "{text}");
    let report = ra_json(&["licences", "report"]);
    let block = report["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"].as_i64().unwrap().to_string() == id)
        .unwrap();
    assert_eq!(block["end"], plus(11).as_str());
    let err = ra_fails(&["licences", "extensions", "--withdraw", "999"]);
    assert!(
        err.contains("no extension request #999 is waiting"),
        "{err}"
    );
}

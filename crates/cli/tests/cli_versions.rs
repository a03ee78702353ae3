//! `vsc ra versions` through the real `vsc` binary against `vsc serve` on loopback: the policy
//! seeded from `--approved-app-version`, `list` (for people and `--json`) with the cards on each
//! version, `deny` refusing the RA's own phone at once (`vsc authenticator pending` says to
//! update), `allow` restoring it, `remove` (never the last allow rule), bad input refused, and
//! `--help` that reads like a manual page.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Server, ok, run};

const PASSCODE: &str = "246810";
const OWN: &str = env!("CARGO_PKG_VERSION");

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn allow_deny_list_and_remove_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _server = Server::start_with(
        &data,
        &[
            "--approved-app-version",
            ">=0.1.0, <0.2.0",
            "--approved-app-version",
            "ios=>=3.4.0",
        ],
    );
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
            "deny",
            &[
                "Examples:",
                "a deny always wins",
                "national RA Managers",
                "--platform",
                "--reason",
            ][..],
        ),
        ("allow", &["Examples:", "1.4.x", "exactly that version"][..]),
        ("list", &["Examples:", "withdrawn", "--json"][..]),
        ("remove", &["last allow rule"][..]),
    ] {
        // Compared with line breaks folded: clap wraps to the terminal's width.
        let help = ra(&["versions", sub, "--help"])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for n in needed {
            assert!(help.contains(n), "{n} in `versions {sub} --help`:\n{help}");
        }
    }

    // The seeded policy, and the RA Manager's own phone in use on this release.
    let listed = ra(&["versions", "list"]);
    for needed in [
        "Approved authenticator versions: >=0.1.0, <0.2.0; ios >=3.4.0",
        "system",
        "In use:",
        OWN,
        "approved",
    ] {
        assert!(listed.contains(needed), "{needed} in:\n{listed}");
    }
    let report = ra_json(&["versions", "list"]);
    let rules = report["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "{report}");
    let mine = report["in_use"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["client"] == "authenticator" && v["version"] == OWN)
        .cloned()
        .expect("this release in use");
    assert_eq!(mine["decision"], "approved");
    assert_eq!(mine["clients"], 1);
    assert_eq!(mine["cards_total"], 1);
    let card = mine["cards"][0].as_str().unwrap().to_owned();
    assert!(listed.contains(&card), "the card id in:\n{listed}");

    // The phone works; then the version is withdrawn and it is refused with the upgrade message.
    ok(&["authenticator", "--home", path(&ram), "pending"], None);
    let denied = ra(&[
        "versions",
        "deny",
        "authenticator",
        OWN,
        "--reason",
        "defect INC-1",
    ]);
    assert!(
        denied.contains("Denied") && denied.contains("now refused") && denied.contains(OWN),
        "{denied}"
    );
    let out = run(&["authenticator", "--home", path(&ram), "pending"], None);
    assert!(!out.status.success(), "a withdrawn app is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("withdrawn") && err.contains("update the vsc authenticator app"),
        "{err}"
    );
    let report = ra_json(&["versions", "list"]);
    assert!(
        report["in_use"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == OWN && v["decision"] == "withdrawn"),
        "{report}"
    );

    // Allowed again: the deny rule turns into an allow rule, and the phone works.
    let allowed = ra_json(&["versions", "allow", "authenticator", OWN]);
    assert_eq!(allowed["replaced"]["verdict"], "deny");
    assert_eq!(allowed["now_refused"].as_array().unwrap().len(), 0);
    let exact_id = allowed["rule"]["id"].as_i64().unwrap();
    ok(&["authenticator", "--home", path(&ram), "pending"], None);

    // Bad input is refused, by the CLI or by the server, and nothing changes.
    let before = ra_json(&["versions", "list"])["rules"].clone();
    let err = ra_fails(&["versions", "allow", "authenticator", "banana"]);
    assert!(err.contains("is not a version requirement"), "{err}");
    let err = ra_fails(&["versions", "allow", "phone", "1.0"]);
    assert!(err.contains("invalid value 'phone'"), "{err}");
    let err = ra_fails(&[
        "versions",
        "deny",
        "agent",
        "1.0.0",
        "--platform",
        "vsc agent; rm -rf /",
    ]);
    assert!(err.contains("is not a platform or product name"), "{err}");
    let err = ra_fails(&["versions", "remove", "0"]);
    assert!(err.contains("rule ids start at 1"), "{err}");
    let err = ra_fails(&["versions", "remove", "99999"]);
    assert!(err.contains("no rule has this id"), "{err}");
    assert_eq!(before, ra_json(&["versions", "list"])["rules"]);

    // Remove: the seeded series goes (the exact rule stays); the last allow rule cannot.
    let seeded = before
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["client"] == "authenticator" && r["platform"].is_null() && r["set_by"] == "system"
        })
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let removed = ra(&["versions", "remove", &seeded.to_string()]);
    assert!(removed.contains("Removed"), "{removed}");
    let ios = before
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["platform"] == "ios")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    ra(&["versions", "remove", &ios.to_string()]);
    let err = ra_fails(&["versions", "remove", &exact_id.to_string()]);
    assert!(err.contains("no allow rule"), "{err}");
    ok(&["authenticator", "--home", path(&ram), "pending"], None);
}

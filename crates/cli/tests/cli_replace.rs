//! Card replacement through the real `vsc` binary (issue 14): `vsc ra card replace` gives the
//! same card a new activation; a real `vsc authenticator enrol` on a new phone takes it. Not
//! lost, the old phone keeps working until then and is refused afterwards; lost, it is refused
//! at once. `vsc ra card show` keeps the history, and `openssl crl` reads the reasons.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, ok, run};

const PASSCODE: &str = "246810";

fn json(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    serde_json::from_str(&ok(args, stdin)).expect("--json prints JSON")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn device_id(home: &Path) -> String {
    let device: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("device.json")).unwrap()).unwrap();
    device["device_id"].as_str().unwrap().to_owned()
}

/// `vsc ARGS` must fail, saying `wanted` on standard error.
#[track_caller]
fn refused(args: &[&str], stdin: Option<&str>, wanted: &str) {
    let out = run(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "vsc {args:?} must fail");
    assert!(err.contains(wanted), "vsc {args:?} says {wanted:?}: {err}");
}

#[test]
fn replace_a_changed_phone_then_a_lost_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let ram = tmp.path().join("ram-phone");
    ok(
        &[
            "authenticator",
            "--home",
            path(&ram),
            "enrol",
            bootstrap["activation"]["url"].as_str().unwrap(),
        ],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    let ra = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["ra", "--home", path(&ram), "--json"];
        full.extend_from_slice(args);
        json(&full, None)
    };
    let ra_text = |args: &[&str]| -> String {
        let mut full = vec!["ra", "--home", path(&ram)];
        full.extend_from_slice(args);
        ok(&full, None)
    };
    ra(&["org", "create", "--ods", "RX1", "--name", "Example Trust"]);
    let person = ra(&[
        "person", "create", "--given", "Mary", "--family", "Seacole", "--org", "RX1",
    ]);
    let uid = person["uid"].as_str().unwrap().to_owned();
    ra(&[
        "person",
        "id-check",
        &uid,
        "--evidence",
        "passport",
        "--evidence",
        "driving-licence",
        "--org",
        "RX1",
    ]);
    // An RA Agent as well, so that `vsc ra login` shows her phone using the card's keys.
    ra(&[
        "person", "ra-role", &uid, "--org", "RX1", "--role", "ra-agent",
    ]);
    let issued = ra(&["card", "issue", &uid, "--org", "RX1"]);
    let card_id = issued["card"]["id"].as_str().unwrap().to_owned();
    let old = tmp.path().join("old-phone");
    ok(
        &[
            "authenticator",
            "--home",
            path(&old),
            "enrol",
            issued["code"]["url"].as_str().unwrap(),
        ],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&old), "login"], Some(PASSCODE));

    // A changed phone: the RA replaces the card; the printout says what happens to the old one.
    let png = tmp.path().join("replacement.png");
    let out = ra_text(&[
        "card",
        "replace",
        &card_id,
        "--reason",
        "new phone",
        "--qr-png",
        path(&png),
    ]);
    assert!(out.contains("Replacement activation"), "{out}");
    assert!(
        out.contains("keeps working until the new phone enrols"),
        "{out}"
    );
    assert!(
        out.contains("replacement  waiting for the new phone"),
        "{out}"
    );
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    let link = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("link"))
        .unwrap()
        .trim()
        .to_owned();

    // Until the new phone enrols, the old one works; it cannot take the replacement itself.
    ok(&["ra", "--home", path(&old), "login"], Some(PASSCODE));
    ok(&["authenticator", "--home", path(&old), "pending"], None);
    refused(
        &["authenticator", "--home", path(&old), "enrol", &link],
        Some(PASSCODE),
        "new phone",
    );
    let new = tmp.path().join("new-phone");
    let out = ok(
        &["authenticator", "--home", path(&new), "enrol", &link],
        Some(PASSCODE),
    );
    assert!(out.contains("Enrolled: Mary Seacole"), "{out}");

    // Now the old phone is refused, saying why; the new one works.
    refused(
        &["ra", "--home", path(&old), "login"],
        Some(PASSCODE),
        "moved to another phone",
    );
    refused(
        &["authenticator", "--home", path(&old), "pending"],
        None,
        "moved to another phone",
    );
    ok(&["ra", "--home", path(&new), "login"], Some(PASSCODE));
    // The replacement's code works once.
    refused(
        &[
            "authenticator",
            "--home",
            path(&tmp.path().join("third-phone")),
            "enrol",
            &link,
        ],
        Some(PASSCODE),
        "already been used",
    );

    // The card's history: both phones, the old certificates superseded.
    let card = ra(&["card", "show", &card_id]);
    assert_eq!(card["state"], "active");
    assert_eq!(card["device_id"], device_id(&new));
    assert_eq!(card["devices"].as_array().unwrap().len(), 2);
    assert_eq!(card["devices"][0]["device_id"], device_id(&old));
    assert_eq!(card["devices"][0]["unbound_reason"], "replaced");
    let certificates = card["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 8);
    assert_eq!(
        certificates
            .iter()
            .filter(|c| c["revocation_reason"] == "superseded")
            .count(),
        4
    );
    let shown = ra_text(&["card", "show", &card_id]);
    assert!(
        shown.contains(&device_id(&old)) && shown.contains("(replaced)"),
        "{shown}"
    );
    assert!(shown.contains("holds the card now"), "{shown}");
    assert!(shown.contains("(superseded)"), "{shown}");

    // The new phone is lost: stopped at once, before any other phone enrols.
    let lost = ra(&[
        "card",
        "replace",
        &card_id,
        "--lost",
        "--reason",
        "phone stolen",
    ]);
    assert_eq!(lost["card"]["state"], "pending");
    assert!(lost["card"]["device_id"].is_null());
    assert_eq!(lost["card"]["pending_replacement"]["lost"], true);
    refused(
        &["ra", "--home", path(&new), "login"],
        Some(PASSCODE),
        "moved to another phone",
    );
    let replacement = tmp.path().join("replacement-phone");
    ok(
        &[
            "authenticator",
            "--home",
            path(&replacement),
            "enrol",
            lost["code"]["url"].as_str().unwrap(),
        ],
        Some(PASSCODE),
    );
    ok(
        &["ra", "--home", path(&replacement), "login"],
        Some(PASSCODE),
    );
    let card = ra(&["card", "show", &card_id]);
    assert_eq!(card["state"], "active");
    assert_eq!(card["devices"].as_array().unwrap().len(), 3);
    assert_eq!(card["devices"][1]["unbound_reason"], "lost");
    let reasons: Vec<&str> = card["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revocation_reason"].as_str().unwrap_or("valid"))
        .collect();
    assert_eq!(reasons.len(), 12);
    assert_eq!(
        reasons.iter().filter(|r| **r == "key-compromise").count(),
        4
    );
    assert_eq!(reasons.iter().filter(|r| **r == "superseded").count(), 4);
    assert_eq!(reasons.iter().filter(|r| **r == "valid").count(), 4);

    // A relying party's CRL carries both reasons.
    let crl = tmp.path().join("issuing.crl");
    server.curl("/ca/issuing.crl", &crl);
    let text = Command::new("openssl")
        .args([
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-text",
            "-in",
            path(&crl),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.matches("Key Compromise").count(), 4, "{text}");
    assert_eq!(text.matches("Superseded").count(), 4, "{text}");

    ok(&["audit", "verify", "--data", path(&data)], None);
}

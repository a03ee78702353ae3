//! Certificate renewal through the real `vsc` binary (issue 14): outside the window `vsc
//! authenticator renew` is refused with the date it opens; `vsc ra card renew-now` makes it due
//! and `vsc ra card show` says so; the phone renews, the old certificates are revoked
//! `superseded`, and the phone signs in to the RA console with its new keys.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Server, ok, run};

const PASSCODE: &str = "246810";

fn json(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    serde_json::from_str(&ok(args, stdin)).expect("--json prints JSON")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn renew_outside_the_window_then_after_renew_now() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Certificates for 100 days, a 30-day window: not due yet.
    let _server = Server::start_with(
        &data,
        &["--certificate-days", "100", "--renewal-window-days", "30"],
    );
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
    ra(&[
        "person", "ra-role", &uid, "--org", "RX1", "--role", "ra-agent",
    ]);
    let issued = ra(&["card", "issue", &uid, "--org", "RX1"]);
    let card_id = issued["card"]["id"].as_str().unwrap().to_owned();
    let phone = tmp.path().join("phone");
    ok(
        &[
            "authenticator",
            "--home",
            path(&phone),
            "enrol",
            issued["code"]["url"].as_str().unwrap(),
        ],
        Some(PASSCODE),
    );
    let status = ok(&["authenticator", "--home", path(&phone), "status"], None);
    assert!(status.contains("expires"), "{status}");
    // The phone has not heard of the instance's window yet: the default, said as such.
    assert!(
        status.contains("90 days before expiry, the default window"),
        "{status}"
    );

    // Outside the window: refused, saying when it opens; nothing kept on the phone.
    let out = run(
        &["authenticator", "--home", path(&phone), "renew"],
        Some(PASSCODE),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("renewal window opens on"), "{err}");
    assert!(!phone.join("keystore.renewing.json").exists());
    // The challenge told the phone the instance's window: 30 days.
    let status = ok(&["authenticator", "--home", path(&phone), "status"], None);
    assert!(
        status.contains("30 days before expiry, the server's window") && !status.contains("RENEW"),
        "{status}"
    );

    // The RA makes it due; `card show` says so.
    let shown = ok(
        &["ra", "--home", path(&ram), "card", "show", &card_id],
        None,
    );
    assert!(shown.contains("renewal      not due"), "{shown}");
    let out = ok(
        &[
            "ra",
            "--home",
            path(&ram),
            "card",
            "renew-now",
            &card_id,
            "--reason",
            "test",
        ],
        None,
    );
    assert!(out.contains("is due now"), "{out}");
    let shown = ok(
        &["ra", "--home", path(&ram), "card", "show", &card_id],
        None,
    );
    assert!(shown.contains("renewal      DUE"), "{shown}");
    assert!(shown.contains("made due by an RA"), "{shown}");
    // A renewal stopped by a mistyped passcode has heard the server: `status` says an RA
    // made it due.
    let out = run(
        &["authenticator", "--home", path(&phone), "renew"],
        Some("135799"),
    );
    assert!(!out.status.success());
    let status = ok(&["authenticator", "--home", path(&phone), "status"], None);
    assert!(
        status.contains("RENEW: your RA asked for this card to be renewed now")
            && status.contains("an RA made it due now"),
        "{status}"
    );

    // The phone renews: four old certificates superseded, new keys in place.
    let before = std::fs::read(phone.join("keystore.json")).unwrap();
    let renewed = json(
        &["authenticator", "--home", path(&phone), "--json", "renew"],
        Some(PASSCODE),
    );
    assert_eq!(
        renewed["superseded"].as_array().unwrap().len(),
        4,
        "{renewed}"
    );
    assert_eq!(renewed["resumed"], false);
    assert_ne!(std::fs::read(phone.join("keystore.json")).unwrap(), before);
    let card = ra(&["card", "show", &card_id]);
    let certs = card["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 8, "{card}");
    assert_eq!(
        certs
            .iter()
            .filter(|c| c["revocation_reason"] == "superseded")
            .count(),
        4
    );
    assert_eq!(card["renewal"]["forced"], false, "the order is spent");
    // The new keys work: an RA login with the card.
    ok(&["ra", "--home", path(&phone), "login"], Some(PASSCODE));
}

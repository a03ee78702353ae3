//! The whole foundation flow through the real `vsc` binary, as a person would run it: a server
//! on a loopback port over real TLS, the RA console, two phones, then OpenSSL checking what the
//! CA issued and revoked, and the audit tools checking the log (and catching a tampered row).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Server, ok, run};
const PASSCODE: &str = "246810";

fn json(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    serde_json::from_str(&ok(args, stdin)).expect("--json prints JSON")
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bootstrap_issue_enrol_verify_cancel_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    assert!(
        server.stdout.contains("No RA Manager has enrolled yet"),
        "{}",
        server.stdout
    );
    assert!(server.stdout.contains("CA fingerprint"));

    // The first RA Manager enrols from the bootstrap activation the server printed and saved.
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let link = bootstrap["activation"]["url"].as_str().unwrap().to_owned();
    assert!(server.stdout.contains(&link), "the link is printed");
    let ram = tmp.path().join("ram-phone");
    let enrolled = json(
        &[
            "authenticator",
            "--home",
            path(&ram),
            "--json",
            "enrol",
            &link,
        ],
        Some(PASSCODE),
    );
    assert_eq!(enrolled["uid"], bootstrap["uid"]);
    assert!(
        !data.join("bootstrap.json").exists(),
        "the spent bootstrap activation is deleted"
    );

    // A wrong passcode is counted and refused with a readable line and a non-zero exit.
    let wrong = run(&["ra", "--home", path(&ram), "login"], Some("999999"));
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.starts_with("error: ") && err.contains('2'),
        "says tries left: {err}"
    );
    let status = json(
        &["authenticator", "--home", path(&ram), "--json", "status"],
        None,
    );
    assert_eq!(status["failed_attempts"], 1);

    let ra = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["ra", "--home", path(&ram), "--json"];
        full.extend_from_slice(args);
        json(&full, None)
    };
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    assert_eq!(
        json(
            &["authenticator", "--home", path(&ram), "--json", "status"],
            None
        )["failed_attempts"],
        0
    );
    ra(&[
        "org",
        "create",
        "--ods",
        "rx1",
        "--name",
        "Example Hospitals NHS Trust",
    ]);
    let orgs = ra(&["org", "list"]);
    assert!(
        orgs.as_array()
            .unwrap()
            .iter()
            .any(|o| o["ods_code"] == "RX1")
    );

    let person = ra(&[
        "person",
        "create",
        "--given",
        "Mary",
        "--family",
        "Seacole",
        "--email",
        "mary@example.nhs.uk",
        "--org",
        "RX1",
    ]);
    let uid = person["uid"].as_str().unwrap().to_owned();
    assert_eq!(uid.len(), 12);
    assert!(uid.bytes().all(|b| b.is_ascii_digit()));
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
    let person = ra(&[
        "person",
        "position",
        &uid,
        "--org",
        "RX1",
        "--role-code",
        "S8000:G8000:R8000",
        "--role-name",
        "Clinical Practitioner Access Role",
        "--activity",
        "B0570",
    ]);
    assert_eq!(person["positions"][0]["activities"][0], "B0570");

    let png = tmp.path().join("activation.png");
    let svg = tmp.path().join("activation.svg");
    let issued = ra(&[
        "card",
        "issue",
        &uid,
        "--org",
        "RX1",
        "--qr-png",
        path(&png),
        "--qr-svg",
        path(&svg),
    ]);
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let card_id = issued["card"]["id"].as_str().unwrap().to_owned();
    assert_eq!(issued["card"]["state"], "pending");
    let code = issued["code"]["code"].as_str().unwrap();
    let fingerprint = issued["code"]["ca_fingerprint"].as_str().unwrap();

    // The person enrols by typing the code (with the server and fingerprint the RA gave).
    let mary = tmp.path().join("mary-phone");
    let out = ok(
        &[
            "authenticator",
            "--home",
            path(&mary),
            "enrol",
            code,
            "--server",
            &server.url,
            "--ca-fingerprint",
            fingerprint,
        ],
        Some("135791"),
    );
    assert!(out.contains("Enrolled: Mary Seacole"), "{out}");
    let card = ra(&["card", "show", &card_id]);
    assert_eq!(card["state"], "active");
    // Sign-in, EPS signing, and the virtual smartcard's 9A and 9C.
    assert_eq!(card["certificates"].as_array().unwrap().len(), 4);

    // OpenSSL agrees the certificates chain to the instance CA, with the right usages.
    let enrolment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mary.join("enrolment.json")).unwrap()).unwrap();
    let auth_pem = tmp.path().join("auth.pem");
    let sign_pem = tmp.path().join("sign.pem");
    std::fs::write(
        &auth_pem,
        enrolment["auth_certificate_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        &sign_pem,
        enrolment["signing_certificate_pem"].as_str().unwrap(),
    )
    .unwrap();
    let root = data.join("ca/root.pem");
    let issuing = data.join("ca/issuing.pem");
    for cert in [&auth_pem, &sign_pem] {
        let v = openssl(&[
            "verify",
            "-CAfile",
            path(&root),
            "-untrusted",
            path(&issuing),
            path(cert),
        ]);
        assert!(
            v.status.success(),
            "openssl verify: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        assert!(String::from_utf8_lossy(&v.stdout).contains(": OK"));
    }
    let text =
        String::from_utf8(openssl(&["x509", "-noout", "-text", "-in", path(&auth_pem)]).stdout)
            .unwrap();
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains(&uid), "the UID is in the subject");
    assert!(text.contains("ca/issuing.crl"), "CRL distribution point");
    let text =
        String::from_utf8(openssl(&["x509", "-noout", "-text", "-in", path(&sign_pem)]).stdout)
            .unwrap();
    assert!(text.contains("Non Repudiation"), "{text}");
    assert!(
        text.contains("rsaEncryption") && text.contains("2048 bit"),
        "{text}"
    );

    // A position at another organisation: the national RA Manager asks, an RA Agent of Mary's
    // registering organisation (RX1) approves.
    ra(&["org", "create", "--ods", "RY2", "--name", "Other Trust"]);
    let agent = ra(&[
        "person", "create", "--given", "Alex", "--family", "Agent", "--org", "RX1",
    ]);
    let agent_uid = agent["uid"].as_str().unwrap().to_owned();
    ra(&[
        "person",
        "id-check",
        &agent_uid,
        "--evidence",
        "passport",
        "--evidence",
        "driving-licence",
        "--org",
        "RX1",
    ]);
    ra(&[
        "person", "ra-role", &agent_uid, "--org", "RX1", "--role", "ra-agent",
    ]);
    let agent_card = ra(&["card", "issue", &agent_uid, "--org", "RX1"]);
    let agent_phone = tmp.path().join("agent-phone");
    ok(
        &[
            "authenticator",
            "--home",
            path(&agent_phone),
            "enrol",
            agent_card["code"]["url"].as_str().unwrap(),
        ],
        Some(PASSCODE),
    );
    ok(
        &["ra", "--home", path(&agent_phone), "login"],
        Some(PASSCODE),
    );
    let agent_ra = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["ra", "--home", path(&agent_phone), "--json"];
        full.extend_from_slice(args);
        json(&full, None)
    };
    // Nobody acts on their own record.
    let own = run(
        &[
            "ra",
            "--home",
            path(&agent_phone),
            "person",
            "position",
            &agent_uid,
            "--org",
            "RX1",
            "--role-code",
            "S8000:G8000:R8000",
            "--role-name",
            "Self",
            "--activity",
            "B0570",
        ],
        None,
    );
    assert!(!own.status.success());
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("own record"),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let request = ra(&[
        "position-request",
        "create",
        &uid,
        "--org",
        "RY2",
        "--role-code",
        "S8000:G8000:R8000",
        "--role-name",
        "Clinical Practitioner Access Role",
        "--activity",
        "B0570",
    ]);
    assert_eq!(request["state"], "pending");
    assert_eq!(request["home_organisation"], "RX1");
    let request_id = request["id"].as_str().unwrap().to_owned();
    let listed = agent_ra(&["position-request", "list"]);
    assert_eq!(listed[0]["id"], request_id.as_str());
    let approved = agent_ra(&[
        "position-request",
        "approve",
        &request_id,
        "--note",
        "agreed",
    ]);
    assert_eq!(approved["state"], "approved");
    let person = ra(&["person", "show", &uid]);
    assert!(
        person["positions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["organisation"] == "RY2")
    );

    // Taking away: the position at RY2 ends (its id from `person show`); a replay finds
    // nothing to end.
    let at_ry2 = person["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["organisation"] == "RY2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = run(&["ra", "--home", path(&ram), "person", "show", &uid], None);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("id {at_ry2}")),
        "the position's id is printed for `end-position`: {}",
        String::from_utf8_lossy(&shown.stdout)
    );
    let ended = ra(&["person", "end-position", &at_ry2]);
    assert!(
        ended["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["organisation"] != "RY2"),
        "{ended}"
    );
    let again = run(
        &[
            "ra",
            "--home",
            path(&ram),
            "person",
            "end-position",
            &at_ry2,
        ],
        None,
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("unknown_position"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // Cancelling needs a reason code; a stolen phone is key-compromise since a known time.
    let no_reason = run(
        &[
            "ra",
            "--home",
            path(&ram),
            "card",
            "cancel",
            &card_id,
            "--reason",
            "stolen",
        ],
        None,
    );
    assert!(!no_reason.status.success());
    assert!(
        String::from_utf8_lossy(&no_reason.stderr).contains("--reason-code"),
        "{}",
        String::from_utf8_lossy(&no_reason.stderr)
    );
    let since = (time::OffsetDateTime::now_utc() - time::Duration::seconds(60))
        .replace_nanosecond(0)
        .unwrap();
    let since_text = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // Cancelling revokes every certificate; the published CRL lists them with the reason.
    let cancelled = agent_ra(&[
        "card",
        "cancel",
        &card_id,
        "--reason-code",
        "key-compromise",
        "--reason",
        "phone stolen on the ward",
        "--invalidity-date",
        &since_text,
    ]);
    assert_eq!(cancelled["state"], "revoked");
    let crl_der = tmp.path().join("issuing.crl");
    server.curl("/ca/issuing.crl", &crl_der);
    let crl_text = String::from_utf8(
        openssl(&[
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-text",
            "-in",
            path(&crl_der),
        ])
        .stdout,
    )
    .unwrap();
    for cert in cancelled["certificates"].as_array().unwrap() {
        assert_eq!(cert["revoked"], true);
        let serial = cert["serial"].as_str().unwrap().to_uppercase();
        assert!(
            crl_text.contains(&serial),
            "CRL lists {serial}:\n{crl_text}"
        );
    }
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");
    // The agent's RA role is removed: their next RA call is refused.
    let removed = ra(&[
        "person",
        "remove-ra-role",
        &agent_uid,
        "--org",
        "RX1",
        "--role",
        "ra-agent",
    ]);
    assert_eq!(removed["ra_roles"], serde_json::json!([]));
    let after = run(
        &["ra", "--home", path(&agent_phone), "person", "show", &uid],
        None,
    );
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("no longer hold an RA role"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );

    assert!(crl_text.contains("Invalidity Date"), "{crl_text}");
    let openssl_date = since
        .format(time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
        ))
        .unwrap();
    assert!(
        crl_text.contains(&openssl_date),
        "{openssl_date} in {crl_text}"
    );
    let crl_pem = tmp.path().join("issuing.crl.pem");
    assert!(
        openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            path(&crl_der),
            "-out",
            path(&crl_pem)
        ])
        .status
        .success()
    );
    let v = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        path(&crl_pem),
        "-CAfile",
        path(&root),
        "-untrusted",
        path(&issuing),
        path(&auth_pem),
    ]);
    assert!(!v.status.success());
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("certificate revoked")
            || String::from_utf8_lossy(&v.stderr).contains("certificate revoked")
    );

    // The audit log is intact and exports as JSON lines, then the server stops cleanly.
    let report = json(&["audit", "verify", "--data", path(&data), "--json"], None);
    assert!(report["first_broken"].is_null());
    let events = report["events"].as_u64().unwrap();
    assert!(events >= 12, "{report}");
    let export = ok(&["audit", "export", "--data", path(&data)], None);
    let actions: Vec<String> = export
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(actions.len() as u64, events);
    for expected in [
        "instance.bootstrapped",
        "card.enrolled",
        "ra.login",
        "person.created",
        "card.issued",
        "card.cancelled",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    assert!(
        actions.iter().any(|a| a == "ra.login"),
        "failed login was audited too"
    );
    assert!(server.stop().success(), "graceful stop exits 0");

    // A restart keeps the instance and prints no bootstrap code once an RA Manager is active.
    let again = Server::start(&data);
    assert!(!again.stdout.contains("No RA Manager"), "{}", again.stdout);
    assert!(again.stdout.contains(fingerprint), "same CA after restart");
    assert!(again.stop().success());

    // Tampering with one audit row is caught and named.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = vsc_store::Store::open_existing(&data.join("vsc.db"))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_events SET actor = '000000000000' WHERE seq = 5")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    });
    let out = run(&["audit", "verify", "--data", path(&data)], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("BROKEN at event 5"), "{stdout}");
}

#[test]
fn every_command_has_help_and_bad_usage_fails() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["ra", "--help"],
        vec!["ra", "card", "issue", "--help"],
        vec!["ra", "person", "position", "--help"],
        vec!["ra", "card", "cancel", "--help"],
        vec!["ra", "position-request", "--help"],
        vec!["ra", "position-request", "create", "--help"],
        vec!["authenticator", "--help"],
        vec!["authenticator", "enrol", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["assurance", "report", "--help"],
        vec!["audit", "export", "--help"],
    ] {
        let out = run(&args, None);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    let help = String::from_utf8(run(&["ra", "card", "cancel", "--help"], None).stdout).unwrap();
    for word in [
        "key-compromise",
        "affiliation-changed",
        "superseded",
        "cessation-of-operation",
        "--invalidity-date",
        "lost or stolen",
    ] {
        assert!(help.contains(word), "{word} in {help}");
    }
    assert!(
        !run(&["serve", "--listen", "not-an-address"], None)
            .status
            .success()
    );
    let out = run(&["audit", "verify", "--data", "/nonexistent/vsc"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vsc serve"),
        "tells what to do next"
    );
    let out = run(&["ra", "--home", "/nonexistent/home", "whoami"], None);
    assert!(!out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "authenticator",
            "--home",
            path(tmp.path()),
            "enrol",
            "NOT-A-CODE",
        ],
        Some(PASSCODE),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("activation code"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

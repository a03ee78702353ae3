//! Workstation registration through the real `vsc` binary against `vsc serve` on loopback: an
//! RA issues a code (`vsc ra workstation code`), the workstation enrols (`vsc agent enrol`,
//! key in a 0600 file), the RA lists it, sets the organisation's policy and revokes it; an
//! unregistered or revoked workstation cannot ask anyone's phone.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Server, ok, run};

const PASSCODE: &str = "246810";

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args, None)).expect("--json prints JSON")
}

/// Runs `args`, which must fail; returns its standard error.
fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        !out.status.success(),
        "vsc {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn register_list_set_policy_and_revoke_a_workstation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _server = Server::start(&data);
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let uid = bootstrap["uid"].as_str().unwrap().to_owned();
    let link = bootstrap["activation"]["url"].as_str().unwrap().to_owned();
    let ram = tmp.path().join("ram-phone");
    ok(
        &["authenticator", "--home", path(&ram), "enrol", &link],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    let ra = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["ra", "--home", path(&ram), "--json"];
        full.extend_from_slice(args);
        json(&full)
    };
    ra(&["org", "create", "--ods", "RX1", "--name", "Example Trust"]);

    // A code for WARD-7-PC-03 at RX1, with what the workstation needs to pin the server.
    let code = ra(&[
        "workstation",
        "code",
        "--org",
        "RX1",
        "--name",
        "WARD-7-PC-03",
    ]);
    let server = code["server"].as_str().unwrap().to_owned();
    let fp = code["ca_fingerprint"].as_str().unwrap().to_owned();
    let secret = code["code"].as_str().unwrap().to_owned();

    // An agent that never registered cannot ask the RA Manager's phone.
    let stranger: PathBuf = tmp.path().join("stranger-agent");
    let err = fails(&[
        "agent",
        "--home",
        path(&stranger),
        "login",
        &uid,
        "--server",
        &server,
        "--ca-fingerprint",
        &fp,
    ]);
    assert!(err.contains("not registered"), "{err}");

    // The workstation enrols: the server is pinned by the fingerprint, the key stays here.
    let agent = tmp.path().join("agent");
    let enrol = |home: &Path| {
        run(
            &[
                "agent",
                "--home",
                path(home),
                "--json",
                "enrol",
                "--server",
                &server,
                "--ca-fingerprint",
                &fp,
                "--code",
                &secret,
                "--name",
                "WARD-7-PC-03",
            ],
            None,
        )
    };
    let out = enrol(&agent);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let enrolled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enrolled["organisation"], "RX1");
    assert_eq!(enrolled["name"], "WARD-7-PC-03");
    let id = enrolled["workstation_id"].as_str().unwrap().to_owned();
    let key = agent.join("workstation.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the workstation key is private");
    }
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    // The code was single use.
    let again = enrol(&tmp.path().join("other-agent"));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already been used"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let list = ra(&["workstation", "list", "--org", "RX1"]);
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "active");

    // The policy: off by default, an RA Manager switches it.
    let policy = ra(&["workstation", "policy", "--org", "RX1"]);
    assert_eq!(policy["allow_unregistered_workstations"], false);
    let policy = ra(&[
        "workstation",
        "policy",
        "--org",
        "RX1",
        "--allow-unregistered-workstations",
        "true",
    ]);
    assert_eq!(policy["allow_unregistered_workstations"], true);
    assert_eq!(policy["unlock_grace_minutes"], 0);
    assert_eq!(policy["fast_user_switching"], false);

    // Issue 14: the grace period and fast user switching (the ODS code may come first); what
    // is not given keeps its value, and more than 15 minutes is refused.
    let policy = ra(&[
        "workstation",
        "policy",
        "RX1",
        "--unlock-grace-minutes",
        "5",
        "--fast-user-switching",
        "on",
    ]);
    assert_eq!(policy["unlock_grace_minutes"], 5);
    assert_eq!(policy["fast_user_switching"], true);
    assert_eq!(policy["allow_unregistered_workstations"], true, "kept");
    let err = fails(&[
        "ra",
        "--home",
        path(&ram),
        "workstation",
        "policy",
        "RX1",
        "--unlock-grace-minutes",
        "16",
    ]);
    assert!(
        err.contains("invalid_workstation_policy") || err.contains("0 (off) to 15"),
        "{err}"
    );
    let policy = ra(&[
        "workstation",
        "policy",
        "--org",
        "RX1",
        "--fast-user-switching",
        "off",
    ]);
    assert_eq!(policy["fast_user_switching"], false);
    assert_eq!(policy["unlock_grace_minutes"], 5, "kept");

    // Revoked: the workstation's agent is refused at once.
    let revoked = ra(&["workstation", "revoke", &id]);
    assert_eq!(revoked["state"], "revoked");
    let err = fails(&["agent", "--home", path(&agent), "login", &uid]);
    assert!(err.contains("revoked"), "{err}");
}

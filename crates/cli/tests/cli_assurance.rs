//! `vsc assurance report` through the real binary, against a real instance: a fresh instance
//! with no backup needs attention (exit 1, the backup named), `vsc backup` records itself in
//! the audit log and the report then stands in order (exit 0), and a tampered audit chain is
//! reported broken. The JSON carries the evidence an assessment attaches.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{Server, VSC};

fn vsc(args: &[&str]) -> Output {
    Command::new(VSC)
        .args(args)
        .env_remove("VSC_DATABASE_URL")
        .env_remove("VSC_MASTER_KEY")
        .env_remove("VSC_DATA")
        .output()
        .expect("vsc runs")
}

fn report(data: &str) -> (Option<i32>, serde_json::Value) {
    let out = vsc(&["assurance", "report", "--data", data, "--json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn finding<'a>(r: &'a serde_json::Value, heading: &str) -> Vec<&'a serde_json::Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["heading"] == heading)
        .collect()
}

#[test]
fn the_report_names_what_needs_attention_and_stands_in_order_after_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();
    let server = Server::start(&data);

    // A fresh instance: everything in order except that it was never backed up.
    let (code, r) = report(data_arg);
    assert_eq!(code, Some(1), "{r:#}");
    assert_eq!(r["standing"], "attention", "{r:#}");
    let backup = finding(&r, "Backup");
    assert_eq!(backup[0]["standing"], "attention");
    assert!(
        backup[0]["what"]
            .as_str()
            .unwrap()
            .contains("no backup recorded")
    );
    assert_eq!(finding(&r, "Audit")[0]["standing"], "ok", "{r:#}");
    assert!(r["audit"]["events"].as_u64().unwrap() > 0);
    assert!(r["audit"]["first_broken"].is_null());
    let own: Vec<&str> = r["own_certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(own, ["root CA", "issuing CA", "TLS server certificate"]);
    assert!(
        finding(&r, "Certificate authority")
            .iter()
            .all(|f| f["standing"] == "ok"),
        "{r:#}"
    );
    assert_eq!(r["passcode"]["wrong_attempts_before_lock"], 3);
    assert!(
        finding(&r, "Licences")[0]["what"]
            .as_str()
            .unwrap()
            .contains("no licence pool"),
        "{r:#}"
    );
    // The approved versions, as the server seeded them from its flags on first start.
    let software = finding(&r, "Software");
    assert!(
        software[0]["what"]
            .as_str()
            .unwrap()
            .contains("approved: authenticator >="),
        "{r:#}"
    );
    assert!(!r["organisations"].as_array().unwrap().is_empty());
    assert!(
        finding(&r, "Revocation")
            .iter()
            .all(|f| f["standing"] == "ok"),
        "the server published its CRLs: {r:#}"
    );

    // A backup while the server runs records itself; the report is then in order.
    let archive = tmp.path().join("backup.tar.gz");
    let out = vsc(&[
        "backup",
        "--data",
        data_arg,
        "-o",
        archive.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, r) = report(data_arg);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["standing"], "ok");
    assert_eq!(r["last_backup"]["days_ago"], 0);
    assert!(r["last_backup"]["detail"]["audit_events"].as_u64().unwrap() > 0);
    let human = vsc(&["assurance", "report", "--data", data_arg]);
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    for expected in [
        "Passcode",
        "Sessions",
        "Certificate authority",
        "Audit",
        "Backup",
        "Everything above is in order.",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    // An older backup than the policy allows needs attention again.
    let (code, r) = {
        let out = vsc(&[
            "assurance",
            "report",
            "--data",
            data_arg,
            "--json",
            "--backup-days=-1",
        ]);
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(code, Some(1));
    assert_eq!(finding(&r, "Backup")[0]["standing"], "attention");
    assert!(server.stop().success());

    // A tampered audit chain is broken, and the report says so.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = vsc_store::Store::open_existing(&data.join("vsc.db"))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_events SET actor = '000000000000' WHERE seq = 2")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    });
    let (code, r) = report(data_arg);
    assert_eq!(code, Some(1));
    assert_eq!(r["standing"], "broken");
    assert_eq!(r["audit"]["first_broken"]["seq"], 2);
    let human = vsc(&["assurance", "report", "--data", data_arg]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("BROKEN at event 2"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
}

#[test]
fn a_missing_instance_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vsc(&[
        "assurance",
        "report",
        "--data",
        tmp.path().join("nothing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the instance's database"), "{err}");
}

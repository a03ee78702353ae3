//! `vsc db migrate-to-postgres` and `vsc serve --database` through the real binary, against the
//! real PostgreSQL of the test machine (`VSC_POSTGRES_SERVER`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the test command makes sure it runs): a
//! sandbox fills an instance's SQLite database, the copy moves it, the audit tools verify it on
//! PostgreSQL, and the server starts on PostgreSQL as the same instance. A second copy into the
//! same database, and URLs that name no PostgreSQL database, are refused and change nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{Sandbox, Server, VSC};

fn postgres_server() -> String {
    std::env::var("VSC_POSTGRES_SERVER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn vsc(args: &[&str]) -> Output {
    Command::new(VSC)
        .args(args)
        .env_remove("VSC_DATABASE_URL")
        .output()
        .expect("vsc runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "vsc failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_moves_from_sqlite_to_postgres_and_serves_from_it() {
    let dir = tempfile::tempdir().unwrap();
    // The sandbox registers a person, enrols a phone and registers a workstation: every kind
    // of row, and an audit chain of some length.
    let sandbox = Sandbox::start(dir.path());
    sandbox.stop();
    let data = dir.path().join("server");
    let data_arg = data.to_str().unwrap();

    let prefix = std::env::var("VSC_TEST_DB_PREFIX").unwrap_or_else(|_| "vsc_test".into());
    let name = format!("{prefix}_cli_db_{}", std::process::id());
    let server = postgres_server();
    let url = vsc_store::postgres::create_database(&server, &name)
        .await
        .expect("create an empty PostgreSQL database");

    let before = json(&vsc(&["audit", "verify", "--data", data_arg, "--json"]));
    let events = before["events"].as_u64().unwrap();
    assert!(events > 5, "the sandbox left an audit trail: {before}");

    let report = json(&vsc(&[
        "db",
        "migrate-to-postgres",
        "--data",
        data_arg,
        "--database",
        &url,
        "--json",
    ]));
    assert_eq!(report["audit_events"].as_u64(), Some(events));
    assert_eq!(report["audit_head_hash"], before["head_hash"]);
    let tables = report["tables"].as_array().unwrap();
    let rows = |t: &str| {
        tables
            .iter()
            .find(|x| x["table"] == t)
            .unwrap_or_else(|| panic!("{t} copied: {report}"))["rows"]
            .as_i64()
            .unwrap()
    };
    assert!(rows("people") >= 2 && rows("cards") >= 2 && rows("certificates") >= 4);
    assert!(rows("workstations") >= 1);
    assert_eq!(rows("audit_events") as u64, events);

    // The audit tools read PostgreSQL: the copied chain plus the migration's own event.
    let after = json(&vsc(&[
        "audit",
        "verify",
        "--data",
        data_arg,
        "--database",
        &url,
        "--json",
    ]));
    assert_eq!(after["events"].as_u64(), Some(events + 1));
    assert!(after["first_broken"].is_null(), "{after}");
    let export = vsc(&["audit", "export", "--data", data_arg, "--database", &url]);
    assert!(export.status.success());
    let last: serde_json::Value = serde_json::from_str(
        String::from_utf8(export.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["action"], "store.migrated_to_postgres");
    assert_eq!(last["prev_hash"], before["head_hash"]);

    // Over TLS to the database server: PostgreSQL's certificate here is Debian's self-signed
    // snakeoil, so `require` (encrypt) connects and `verify-full` (check the certificate
    // against trusted roots) refuses.
    let tls = json(&vsc(&[
        "audit",
        "verify",
        "--data",
        data_arg,
        "--database",
        &format!("{url}?sslmode=require"),
        "--json",
    ]));
    assert_eq!(tls["head_hash"], after["head_hash"]);
    let untrusted = vsc(&[
        "audit",
        "verify",
        "--data",
        data_arg,
        "--database",
        &format!("{url}?sslmode=verify-full"),
    ]);
    assert!(
        !untrusted.status.success(),
        "an untrusted server certificate is refused"
    );

    // A second copy into the same database is refused; the data there stays as it was.
    let again = vsc(&[
        "db",
        "migrate-to-postgres",
        "--data",
        data_arg,
        "--database",
        &url,
    ]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds data"), "{stderr}");
    let unchanged = json(&vsc(&[
        "audit",
        "verify",
        "--data",
        data_arg,
        "--database",
        &url,
        "--json",
    ]));
    assert_eq!(unchanged["head_hash"], after["head_hash"]);

    // URLs that are not PostgreSQL are refused with a clear message (and no password echoed).
    for bad in ["mysql://root:hunter2@127.0.0.1/vsc", "/tmp/x.db"] {
        let out = vsc(&[
            "db",
            "migrate-to-postgres",
            "--data",
            data_arg,
            "--database",
            bad,
        ]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a database URL"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }

    // The server runs the same instance from PostgreSQL: no new bootstrap, same CA, and it
    // serves its CRL over TLS.
    let serving = Server::start_with(&data, &["--database", &url]);
    assert!(
        !serving.stdout.contains("new instance"),
        "{}",
        serving.stdout
    );
    assert!(
        serving.stdout.contains(&format!("database        {url}")),
        "{}",
        serving.stdout
    );
    let crl = dir.path().join("issuing.crl");
    serving.curl("/ca/issuing.crl", &crl);
    assert!(std::fs::metadata(&crl).unwrap().len() > 100);
    assert!(serving.stop().success());

    vsc_store::postgres::drop_database(&server, &name)
        .await
        .expect("drop the test database");
}

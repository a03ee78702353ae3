//! `vsc backup` and `vsc restore` through the real binary: a sandbox fills an instance, a backup
//! is taken while `vsc serve` runs on it, and the restore in a new directory serves as the same
//! instance (same CA, same audit chain). Hostile and mistaken restores (a flipped byte, a
//! truncated archive, members that escape the directory or are links, a non-empty target, the
//! wrong master key) are refused and leave the target as it was. On PostgreSQL (the test
//! machine's server, as `cli_db`) the archive holds the keys and the audit head, not the database.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Sandbox, Server, VSC};

fn vsc(args: &[&str]) -> Output {
    Command::new(VSC)
        .args(args)
        .env_remove("VSC_DATABASE_URL")
        .env_remove("VSC_MASTER_KEY")
        .env_remove("VSC_DATA")
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

/// The refusal's message (and that it was a refusal).
fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A member of an archive as the test handles it.
struct Member {
    name: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Option<&'static str>,
}

fn read_members(archive: &Path) -> Vec<Member> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Member {
                name: e.path_bytes().into_owned(),
                kind: e.header().entry_type(),
                data,
                link: None,
            }
        })
        .collect()
}

/// Writes members with exactly the names given (the tar crate's own path checks would refuse
/// the hostile ones, so the name goes into the header's bytes directly).
fn write_members(archive: &Path, members: &[Member]) {
    let file = std::fs::File::create(archive).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::default(),
    ));
    for m in members {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..m.name.len()].copy_from_slice(&m.name);
        header.set_entry_type(m.kind);
        header.set_mode(0o600);
        header.set_size(m.data.len() as u64);
        if let Some(link) = m.link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        tar.append(&header, m.data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The genuine members plus `extra`, with the manifest listing `extra` under `listed` (so
/// that only the member's path or kind can be the reason for a refusal).
fn with_member(members: &[Member], extra: Member, listed: &str) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for m in members {
        let mut data = m.data.clone();
        if m.name == b"manifest.json" {
            let mut manifest: serde_json::Value = serde_json::from_slice(&m.data).unwrap();
            manifest["files"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "path": listed,
                    "size": extra.data.len(),
                    "sha256": sha256_hex(&extra.data),
                }));
            data = serde_json::to_vec(&manifest).unwrap();
        }
        out.push(Member {
            name: m.name.clone(),
            kind: m.kind,
            data,
            link: None,
        });
    }
    out.insert(0, extra);
    out
}

fn no_staging_left(parent: &Path) {
    for e in std::fs::read_dir(parent).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".vsc-restore-"), "left behind: {name}");
    }
}

#[test]
fn a_backup_taken_while_serving_restores_as_the_same_instance() {
    let dir = tempfile::tempdir().unwrap();
    // The sandbox registers a person, enrols a phone and registers a workstation: every kind of
    // row and an audit chain of some length.
    let sandbox = Sandbox::start(dir.path());
    sandbox.stop();
    let data = dir.path().join("server");
    let serving = Server::start(&data);
    let fingerprint = serving
        .stdout
        .lines()
        .find(|l| l.contains("CA fingerprint"))
        .unwrap()
        .trim()
        .to_owned();

    // Online: the server holds the database open and keeps its writer.
    let archive = dir.path().join("vsc-backup.tar.gz");
    let report = json(&vsc(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
        "--json",
    ]));
    assert!(serving.stop().success());
    assert_eq!(mode(&archive), 0o600, "the archive is private");
    assert_eq!(report["master_key_included"], false);
    let events = report["audit"]["events"].as_u64().unwrap();
    assert!(events > 5, "{report}");
    let members = read_members(&archive);
    let names: Vec<String> = members
        .iter()
        .map(|m| String::from_utf8_lossy(&m.name).into_owned())
        .collect();
    for wanted in [
        "data/vsc.db",
        "data/ca/root.pem",
        "data/ca/root.key.sealed",
        "data/ca/issuing.key.sealed",
        "data/tls/server.key.sealed",
        "manifest.json",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("master.key")),
        "no master key unless asked: {names:?}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &members
            .iter()
            .find(|m| m.name == b"manifest.json")
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(manifest["audit"], report["audit"]);
    assert_eq!(manifest["format"], "vsc-backup/1");

    // Restore into a new directory with the original master key.
    let restored = dir.path().join("restored");
    let out = json(&vsc(&[
        "restore",
        archive.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
        "--master-key",
        data.join("master.key").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["master_key"], "file");
    assert_eq!(out["master_key_checked"], true);
    assert_eq!(out["audit_verified"], true);
    assert_eq!(mode(&restored), 0o700);
    assert_eq!(mode(&restored.join("ca")), 0o700);
    assert_eq!(mode(&restored.join("master.key")), 0o600);
    assert_eq!(mode(&restored.join("ca/root.key.sealed")), 0o600);
    no_staging_left(dir.path());

    let verified = json(&vsc(&[
        "audit",
        "verify",
        "--data",
        restored.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(verified["head_hash"], manifest["audit"]["head_hash"]);
    assert_eq!(verified["events"].as_u64(), Some(events));
    assert!(verified["first_broken"].is_null());

    // The restored directory serves the same instance.
    let again = Server::start(&restored);
    assert!(again.stdout.contains(&fingerprint), "{}", again.stdout);
    assert!(!again.stdout.contains("new instance"), "{}", again.stdout);
    let crl = dir.path().join("issuing.crl");
    again.curl("/ca/issuing.crl", &crl);
    assert!(again.stop().success());
}

#[test]
fn hostile_or_mistaken_restores_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start(&data);
    assert!(first.stop().success());
    let data_arg = data.to_str().unwrap();
    let key = data.join("master.key");
    let key_arg = key.to_str().unwrap();

    let archive = dir.path().join("a.tar.gz");
    let archive_arg = archive.to_str().unwrap();
    json(&vsc(&[
        "backup",
        "--data",
        data_arg,
        "-o",
        archive_arg,
        "--json",
    ]));
    let members = read_members(&archive);

    // Never overwrites: neither an archive, nor a backup inside the data directory.
    let err = refused(&vsc(&["backup", "--data", data_arg, "-o", archive_arg]));
    assert!(err.contains("already exists"), "{err}");
    let inside = data.join("b.tar.gz");
    let err = refused(&vsc(&[
        "backup",
        "--data",
        data_arg,
        "-o",
        inside.to_str().unwrap(),
    ]));
    assert!(err.contains("outside the data directory"), "{err}");

    let target = dir.path().join("target");
    let target_arg = target.to_str().unwrap();
    let restore = |archive: &Path, key: Option<&str>| {
        let mut args = vec!["restore", archive.to_str().unwrap(), "--data", target_arg];
        if let Some(k) = key {
            args.extend(["--master-key", k]);
        }
        vsc(&args)
    };
    let untouched = || {
        assert!(!target.exists(), "the target was created");
        no_staging_left(dir.path());
        assert!(!dir.path().join("evil").exists());
    };

    // A flipped byte in a member.
    let mut tampered: Vec<Member> = Vec::new();
    for m in &members {
        let mut data = m.data.clone();
        if m.name == b"data/ca/root.pem" {
            data[100] ^= 0x01;
        }
        tampered.push(Member {
            name: m.name.clone(),
            kind: m.kind,
            data,
            link: None,
        });
    }
    let bad = dir.path().join("tampered.tar.gz");
    write_members(&bad, &tampered);
    let err = refused(&restore(&bad, Some(key_arg)));
    assert!(err.contains("SHA-256"), "{err}");
    untouched();

    // A truncated archive.
    let bytes = std::fs::read(&archive).unwrap();
    let cut = dir.path().join("truncated.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(&restore(&cut, Some(key_arg)));
    untouched();

    // Members that escape the directory, or are links, even when the manifest vouches for them.
    let evil = |name: &[u8], kind, link| Member {
        name: name.to_vec(),
        kind,
        data: if kind == tar::EntryType::Regular {
            b"owned".to_vec()
        } else {
            Vec::new()
        },
        link,
    };
    for (member, listed, why) in [
        (
            evil(b"data/../evil", tar::EntryType::Regular, None),
            "../evil",
            "not a plain relative path",
        ),
        (
            evil(b"data/ca/../../../evil", tar::EntryType::Regular, None),
            "ca/../../../evil",
            "not a plain relative path",
        ),
        (
            evil(b"/tmp/evil", tar::EntryType::Regular, None),
            "/tmp/evil",
            "outside data/",
        ),
        (
            evil(b"data/ca/link", tar::EntryType::Symlink, Some("/etc")),
            "ca/link",
            "not a regular file",
        ),
        (
            evil(b"data/ca/hard", tar::EntryType::Link, Some("/etc/passwd")),
            "ca/hard",
            "not a regular file",
        ),
    ] {
        let hostile = dir.path().join("hostile.tar.gz");
        write_members(&hostile, &with_member(&members, member, listed));
        let err = refused(&restore(&hostile, Some(key_arg)));
        assert!(err.contains(why), "{listed}: {err}");
        untouched();
    }

    // The wrong master key: checked before the target appears.
    let wrong = dir.path().join("wrong.key");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&wrong)
            .unwrap();
        f.write_all(&[0x5a; 32]).unwrap();
    }
    let err = refused(&restore(&archive, Some(wrong.to_str().unwrap())));
    assert!(err.contains("not this instance's master key"), "{err}");
    assert!(
        err.contains("wrong.key") && !err.contains(".vsc-restore-"),
        "{err}"
    );
    untouched();

    // A non-empty target.
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"mine").unwrap();
    let err = refused(&restore(&archive, Some(key_arg)));
    assert!(err.contains("not empty"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&target).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(std::fs::read(target.join("keep.txt")).unwrap(), b"mine");
    std::fs::remove_file(target.join("keep.txt")).unwrap();

    // An empty target is fine; without a key the restore says what to do and checks no key.
    let out = json(&vsc(&[
        "restore",
        archive_arg,
        "--data",
        target_arg,
        "--json",
    ]));
    assert_eq!(out["master_key"], "missing");
    assert_eq!(out["master_key_checked"], false);
    assert!(!target.join("master.key").exists());
    let human = vsc(&[
        "restore",
        archive_arg,
        "--data",
        dir.path().join("second").to_str().unwrap(),
    ]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("master key    NOT restored"), "{text}");

    // With --include-master-key the archive alone restores, and the key is checked.
    let with_key = dir.path().join("k.tar.gz");
    let report = json(&vsc(&[
        "backup",
        "--data",
        data_arg,
        "-o",
        with_key.to_str().unwrap(),
        "--include-master-key",
        "--json",
    ]));
    assert_eq!(report["master_key_included"], true);
    assert!(
        read_members(&with_key)
            .iter()
            .any(|m| m.name == b"data/master.key")
    );
    let full: PathBuf = dir.path().join("full");
    let out = json(&vsc(&[
        "restore",
        with_key.to_str().unwrap(),
        "--data",
        full.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["master_key"], "archive");
    assert_eq!(out["master_key_checked"], true);
    assert_eq!(
        std::fs::read(full.join("master.key")).unwrap(),
        std::fs::read(&key).unwrap()
    );
    assert_eq!(mode(&full.join("master.key")), 0o600);
}

/// On PostgreSQL the archive holds the data directory's keys and the audit head, not the
/// database (that is pg_dump's job), and restore says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_instance_backs_up_its_keys_and_audit_head_only() {
    let server = std::env::var("VSC_POSTGRES_SERVER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let prefix = std::env::var("VSC_TEST_DB_PREFIX").unwrap_or_else(|_| "vsc_test".into());
    let name = format!("{prefix}_cli_backup_{}", std::process::id());
    let url = vsc_store::postgres::create_database(&server, &name)
        .await
        .expect("create an empty PostgreSQL database");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serving = Server::start_with(&data, &["--database", &url]);
    let archive = dir.path().join("keys.tar.gz");
    let report = json(&vsc(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "--database",
        &url,
        "-o",
        archive.to_str().unwrap(),
        "--json",
    ]));
    assert!(serving.stop().success());
    assert_eq!(report["database"]["engine"], "postgresql");
    assert_eq!(report["database"]["included"], false);
    let verified = json(&vsc(&[
        "audit",
        "verify",
        "--data",
        data.to_str().unwrap(),
        "--database",
        &url,
        "--json",
    ]));
    // The archive names the chain as it was; the backup then recorded itself as one more
    // event (`backup.taken`, which `vsc assurance report` reads).
    assert_eq!(
        verified["events"].as_u64().unwrap(),
        report["audit"]["events"].as_u64().unwrap() + 1
    );
    let names: Vec<Vec<u8>> = read_members(&archive).into_iter().map(|m| m.name).collect();
    assert!(names.iter().any(|n| n == b"data/ca/root.key.sealed"));
    assert!(!names.iter().any(|n| n == b"data/vsc.db"), "no database");

    let restored = dir.path().join("restored");
    let out = vsc(&[
        "restore",
        archive.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
        "--master-key",
        data.join("master.key").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pg_restore"), "{text}");
    assert!(restored.join("ca/root.key.sealed").exists());
    assert!(!restored.join("vsc.db").exists());

    // Without --database the command does not guess: it says where the database might be.
    let err = refused(&vsc(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "-o",
        dir.path().join("x.tar.gz").to_str().unwrap(),
    ]));
    assert!(err.contains("PostgreSQL"), "{err}");

    vsc_store::postgres::drop_database(&server, &name)
        .await
        .expect("drop the test database");
}

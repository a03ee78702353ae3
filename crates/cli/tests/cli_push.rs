//! `vsc serve --vapid-key FILE --vapid-contact …` (Web Push, issue 13) as an operator runs it:
//! the key is made 0600 in the data directory when absent and kept across restarts, another
//! path is honoured, and a bad contact or a key file others can read stop the server before it
//! serves.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Server, run};

fn printed_key(server: &Server) -> String {
    server
        .stdout
        .lines()
        .find_map(|l| l.split("VAPID public key ").nth(1))
        .expect("the VAPID public key is printed")
        .trim_end_matches(')')
        .to_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn serve_makes_the_vapid_key_when_absent_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = data.join("vapid-key.pem");

    let server = Server::start(&data);
    let first = printed_key(&server);
    assert!(server.stop().success());
    assert_eq!(mode(&key_file), 0o600, "made private");
    assert!(
        std::fs::read_to_string(&key_file)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert_eq!(first.len(), 87, "a base64url P-256 point: {first}");

    let server = Server::start(&data);
    assert_eq!(printed_key(&server), first, "the same key after a restart");
    assert!(server.stop().success());

    // Elsewhere, with a contact.
    let elsewhere = dir.path().join("vapid.pem");
    let server = Server::start_with(
        &data,
        &[
            "--vapid-key",
            elsewhere.to_str().unwrap(),
            "--vapid-contact",
            "mailto:ops@example.nhs.uk",
        ],
    );
    assert_ne!(printed_key(&server), first);
    assert!(server.stop().success());
    assert_eq!(mode(&elsewhere), 0o600);

    // A contact that is neither mailto: nor https:, and a key others can read: refused.
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--vapid-contact",
            "ops@example.nhs.uk",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--vapid-contact"),
        "{out:?}"
    );
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--vapid-key",
            elsewhere.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vapid.pem"),
        "names the file: {out:?}"
    );
}

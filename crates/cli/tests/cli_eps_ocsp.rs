//! `vsc eps verify --ocsp` end to end: a prescription signed through the sandbox's phone is
//! checked against the instance's OCSP responder, found from the signing certificate's
//! Authority Information Access (or given with `--ocsp-url`): good while the card is active,
//! revoked (with the reason) once the RA cancels it as stolen — with no CRL given at all. A
//! responder that is not the signer's is refused.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{Sandbox, VSC};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../eps/tests/data/corpus");

/// Runs `command` with `sh` in `dir`, with `vsc` on the PATH: success and everything printed.
fn run(dir: &Path, command: &str) -> (bool, String) {
    let bin_dir = Path::new(VSC).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("PATH", &path)
        .env_remove("VSC_AGENT_HOME")
        .env_remove("VSC_PASSCODE")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn eps_verify_checks_the_signer_by_ocsp_before_and_after_cancellation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("vsc-sandbox");
    let sandbox = Sandbox::start(&data);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    sources.sort();
    let xml = std::fs::read_to_string(&sources[0]).unwrap();
    std::fs::write(
        dir.join("rx.xml"),
        vsc_eps::sign::strip_signature(&xml).unwrap(),
    )
    .unwrap();
    let (ok, printed) = run(
        dir,
        "vsc eps sign --stamp-author-time --agent-home vsc-sandbox/agent --out-dir signed rx.xml",
    );
    assert!(ok, "{printed}");

    let chain = "--trust vsc-sandbox/server/ca/root.pem --chain vsc-sandbox/server/ca/issuing.pem";
    let server = sandbox.field("server").trim_end_matches('/').to_owned();

    // Active card: good, from the URL in the certificate.
    let (ok, printed) = run(dir, &format!("vsc eps verify {chain} --ocsp signed/rx.xml"));
    assert!(ok, "{printed}");
    assert!(printed.contains("signed/rx.xml: valid"), "{printed}");
    assert!(
        printed.contains("OCSP: certificate is good (OCSP response from ")
            && printed.contains(&format!("{server}/ca/ocsp"))
            && printed.contains("OCSP Responder"),
        "{printed}"
    );
    // The same responder given explicitly, with JSON output.
    let (ok, printed) = run(
        dir,
        &format!("vsc eps verify {chain} --json --ocsp-url {server}/ca/ocsp signed/rx.xml"),
    );
    assert!(ok, "{printed}");
    let reports: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let revocation = reports[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "revocation")
        .unwrap()
        .clone();
    assert_eq!(revocation["outcome"], "passed", "{printed}");
    // Without the issuing CA the response cannot be authenticated, and the file is not valid.
    let (ok, printed) = run(
        dir,
        "vsc eps verify --trust vsc-sandbox/server/ca/root.pem --ocsp signed/rx.xml",
    );
    assert!(!ok, "{printed}");
    assert!(
        printed.contains(
            "NOT VERIFIED (OCSP check not possible: the signer's issuing CA is not among"
        ),
        "{printed}"
    );

    // The RA cancels the card as stolen: the responder says revoked, and the file is invalid.
    let ram_home = sandbox
        .field("RA Manager")
        .strip_prefix("phone in ")
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .to_owned();
    let card = sandbox
        .field("test person")
        .split("(card ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let (ok, printed) = run(
        dir,
        &format!("VSC_PASSCODE=123456 vsc ra --home '{ram_home}' login"),
    );
    assert!(ok, "{printed}");
    let (ok, printed) = run(
        dir,
        &format!(
            "vsc ra --home '{ram_home}' card cancel {card} --reason-code key-compromise \
             --reason 'phone stolen'"
        ),
    );
    assert!(ok, "{printed}");
    let (ok, printed) = run(dir, &format!("vsc eps verify {chain} --ocsp signed/rx.xml"));
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("signed/rx.xml: INVALID (OCSP: certificate revoked on ")
            && printed.contains("reason keyCompromise"),
        "{printed}"
    );
    // Without --ocsp (and no CRL) nothing says so: revocation is skipped, as before.
    let (ok, printed) = run(dir, &format!("vsc eps verify {chain} signed/rx.xml"));
    assert!(ok, "{printed}");
    assert!(printed.contains("no CRL was supplied"), "{printed}");

    // A responder that is not the signer's CA's: another instance's answers are refused.
    let other = dir.join("other");
    let other_sandbox = Sandbox::start(&other);
    let other_server = other_sandbox
        .field("server")
        .trim_end_matches('/')
        .to_owned();
    // Both roots trusted (so TLS to the other instance works): the answer is still refused.
    let (ok, printed) = run(
        dir,
        &format!(
            "cat vsc-sandbox/server/ca/root.pem other/server/ca/root.pem > both.pem && \
             vsc eps verify --trust both.pem --chain vsc-sandbox/server/ca/issuing.pem \
             --ocsp-url {other_server}/ca/ocsp signed/rx.xml"
        ),
    );
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("OCSP response from") && printed.contains("unauthorized"),
        "{printed}"
    );
    assert!(other_sandbox.stop().success());
    assert!(sandbox.stop().success());
}

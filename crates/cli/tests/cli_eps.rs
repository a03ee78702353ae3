//! `vsc eps verify` against NHS England's vectors (in crates/eps/tests/data, with provenance):
//! exit status 0 only when every file is valid, each check named, `--json` for scripts.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

const VSC: &str = env!("CARGO_BIN_EXE_vsc");

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../eps/tests/data")
        .join(name)
}

#[test]
fn valid_vector_passes_and_broken_ones_fail_by_name() {
    let out = Command::new(VSC)
        .args(["eps", "verify"])
        .arg(vector("ValidSignature.xml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(": valid"));
    assert!(
        stdout.contains("trusted_issuer") && stdout.contains("skipped"),
        "{stdout}"
    );

    let out = Command::new(VSC)
        .args(["eps", "verify", "--json"])
        .arg(vector("ValidSignature.xml"))
        .arg(vector("SignatureDoesNotMatchPrescription.xml"))
        .arg(vector("SignatureIsInvalid.xml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "one invalid file makes the exit status 1"
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = |i: usize, check: &str| -> String {
        reports[i]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == check)
            .map(|c| c["outcome"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(outcome(1, "digest"), "failed");
    assert_eq!(outcome(2, "signature"), "failed", "{}", reports[2]);
}

#[test]
fn trust_anchor_is_checked_when_given() {
    // ValidSignature.xml is issued by NHS INT Level 2D, not by Level 1D.
    let out = Command::new(VSC)
        .args(["eps", "verify", "--trust"])
        .arg(vector("NHS_INT_Level1D_Base64_pem.cer"))
        .arg(vector("ValidSignature.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("trusted_issuer") && stdout.contains("FAILED"),
        "{stdout}"
    );
}

//! A second opinion from code that is not ours: `tests/independent/eps_check.py`
//! rebuilds the fragments with its own XPath, canonicalises with libxml2's
//! exclusive C14N (lxml) and verifies RSA with the `openssl` command.
//!
//! Needs Debian's `/usr/bin/python3` with `python3-lxml`, and `openssl`. These
//! tests fail (they do not skip) when any is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{corpus, data, read, sign_with_test_signer};
use vsc_eps::fragments;
use vsc_eps::sign::{self, SignatureAlgorithm};

/// The Python interpreter the checker runs under (Debian's, where
/// `python3-lxml` installs).
pub const PYTHON: &str = "/usr/bin/python3";

/// The independent checker script.
pub fn checker_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/independent/eps_check.py")
}

/// Run the independent checker on a prescription file: its exit code (0 =
/// valid, 1 = a check failed, 2 = unreadable) and standard output (`OK`, or
/// one `FAIL <check>: <why>` line per failed check, checks being `format`,
/// `certificate`, `signature` and `digest`).
///
/// Other tests may copy this helper (with [`PYTHON`] and [`checker_script`]).
pub fn independent_check(path: &Path) -> (i32, String) {
    let output = Command::new(PYTHON)
        .arg(checker_script())
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e} (install python3 and python3-lxml)"));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let code = output.status.code().expect("exit code");
    assert!(
        code != 2,
        "checker could not read {}: {stdout}{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty() || code == 0 || code == 1,
        "checker error: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (code, stdout)
}

/// The checker's canonical `fragments` or `signed-info` for a file, exact
/// bytes.
pub fn independent_emit(what: &str, path: &Path) -> String {
    let output = Command::new(PYTHON)
        .arg(checker_script())
        .args(["--emit", what])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
    assert!(
        output.status.success(),
        "{}: {}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Write `content` to a scratch file for the checker.
fn scratch(name: &str, content: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vsc-eps-independent");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write scratch file");
    path
}

#[test]
fn the_checker_and_its_tools_are_installed() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: install the Debian package python3"
    );
    let lxml = Command::new(PYTHON)
        .args(["-c", "import lxml.etree"])
        .status()
        .expect("run python3");
    assert!(
        lxml.success(),
        "lxml is missing: install the Debian package python3-lxml"
    );
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .expect("openssl is missing: install the Debian package openssl");
    assert!(openssl.status.success());
}

#[test]
fn nhs_vectors_get_the_documented_verdicts() {
    let (code, out) = independent_check(&data("ValidSignature.xml"));
    assert_eq!((code, out.as_str()), (0, "OK\n"));

    let (code, out) = independent_check(&data("SignatureDoesNotMatchPrescription.xml"));
    assert_eq!(code, 1);
    assert!(out.contains("FAIL digest: the fragments hash to"), "{out}");

    let (code, out) = independent_check(&data("SignatureIsInvalid.xml"));
    assert_eq!(code, 1);
    assert!(out.contains("FAIL signature:"), "{out}");
    assert!(!out.contains("FAIL digest"), "{out}");

    let (code, out) = independent_check(&data("SignatureAlgorithmSha256.xml"));
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL digest") && !out.contains("FAIL signature"),
        "{out}"
    );
}

#[test]
fn our_fragments_are_libxml2s_byte_for_byte() {
    let mut files: Vec<(String, String)> = corpus();
    for name in [
        "ValidSignature.xml",
        "SignatureAlgorithmSha256.xml",
        "SignatureDoesNotMatchPrescription.xml",
        "special-characters.xml",
    ] {
        files.push((name.to_owned(), read(name)));
    }
    for (name, xml) in files {
        let path = scratch(&format!("fragments-{name}"), &xml);
        assert_eq!(
            fragments::canonical_fragments_from_str(&xml).expect("fragments"),
            independent_emit("fragments", &path),
            "{name}"
        );
    }
}

#[test]
fn our_signed_info_is_libxml2s_byte_for_byte() {
    for (name, algorithm) in [
        ("ValidSignature.xml", SignatureAlgorithm::RsaSha1),
        (
            "SignatureAlgorithmSha256.xml",
            SignatureAlgorithm::RsaSha256,
        ),
    ] {
        let theirs = independent_emit("signed-info", &data(name));
        let digest = theirs
            .split("<DigestValue>")
            .nth(1)
            .and_then(|rest| rest.split("</DigestValue>").next())
            .expect("DigestValue");
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(digest)
            .expect("base64");
        assert_eq!(sign::signed_info(algorithm, &digest), theirs, "{name}");
    }
}

#[test]
fn prescriptions_we_sign_verify_independently() {
    let mut files: Vec<(String, String)> = corpus();
    files.push((
        "special-characters.xml".to_owned(),
        read("special-characters.xml"),
    ));
    for (name, xml) in files {
        let signed = sign_with_test_signer(&xml);
        let path = scratch(&format!("signed-{name}"), &signed);
        let (code, out) = independent_check(&path);
        assert_eq!((code, out.as_str()), (0, "OK\n"), "{name}");
    }
    // And a tampered one fails there too.
    let signed = sign_with_test_signer(&read("special-characters.xml"));
    let path = scratch("tampered.xml", &signed.replacen("Ångström", "Angstrom", 1));
    let (code, out) = independent_check(&path);
    assert_eq!(code, 1);
    assert!(out.starts_with("FAIL digest:"), "{out}");
}

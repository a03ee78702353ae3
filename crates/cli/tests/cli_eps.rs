//! `vsc eps verify` against NHS England's vectors (in crates/eps/tests/data, with provenance):
//! exit status 0 only when every file is valid and its signer trusted (or `--no-trust-check`),
//! each check named, `--json` for scripts; decoys where EPS reads one HL7 element refused, not
//! checked. `vsc eps preview` prints exactly the phone's screen (the phone's own code).

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
    // No trust anchor: the signature is valid, the signer is not trusted, exit status 1.
    let out = Command::new(VSC)
        .args(["eps", "verify"])
        .arg(vector("ValidSignature.xml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(": signature valid, signer not trusted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("trusted_issuer") && stdout.contains("skipped"),
        "{stdout}"
    );
    // --no-trust-check accepts that, and says so.
    let out = Command::new(VSC)
        .args(["eps", "verify", "--no-trust-check"])
        .arg(vector("ValidSignature.xml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("accepted: --no-trust-check"), "{stdout}");
    // --no-trust-check and --trust contradict each other.
    let out = Command::new(VSC)
        .args(["eps", "verify", "--no-trust-check", "--trust"])
        .arg(vector("NHS_INT_Level1D_Base64_pem.cer"))
        .arg(vector("ValidSignature.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

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
    assert_eq!(reports[0]["valid"], false, "not trusted without --trust");
    assert_eq!(
        reports[0]["verdict"], "signature_valid_signer_not_trusted",
        "{reports}"
    );
    assert_eq!(reports[1]["verdict"], "invalid");
    assert_eq!(outcome(1, "digest"), "failed");
    assert_eq!(outcome(2, "signature"), "failed", "{}", reports[2]);
}

/// `xml` with `insert` placed right before the first `<recordTarget`.
fn before_record_target(xml: &str, insert: &str) -> String {
    let at = xml.find("<recordTarget").unwrap();
    format!("{}{insert}{}", &xml[..at], &xml[at..])
}

/// The vector's recordTarget, for another patient.
fn decoy_patient(xml: &str) -> String {
    let start = xml.find("<recordTarget").unwrap();
    let end = xml.find("</recordTarget>").unwrap() + "</recordTarget>".len();
    xml[start..end]
        .replace("9990548609", "9449305552")
        .replace("DONOTUSE", "SOMEONE")
}

fn verify_text(xml: &str, dir: &std::path::Path, name: &str) -> (Option<i32>, String) {
    let file = dir.join(name);
    std::fs::write(&file, xml).unwrap();
    let out = Command::new(VSC)
        .args(["eps", "verify", "--no-trust-check"])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_decoy_record_target_before_the_real_one_is_refused_not_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let xml = std::fs::read_to_string(vector("ValidSignature.xml")).unwrap();
    let (code, stdout) = verify_text(&xml, tmp.path(), "honest.xml");
    assert_eq!(code, Some(0), "{stdout}");
    let decoy = decoy_patient(&xml);

    // Another patient in a foreign namespace before the real recordTarget. The old verifier
    // skipped it, checked the real one and said "valid"; a reader that goes by local names
    // would see the decoy patient.
    let foreign = before_record_target(
        &xml,
        &decoy
            .replacen("<recordTarget", "<x:recordTarget xmlns:x=\"urn:decoy\"", 1)
            .replace("</recordTarget>", "</x:recordTarget>"),
    );
    let (code, stdout) = verify_text(&foreign, tmp.path(), "foreign.xml");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("REFUSED, not checked"), "{stdout}");
    assert!(
        stdout.contains("recordTarget") && stdout.contains("urn:decoy"),
        "{stdout}"
    );

    // A second recordTarget (same namespace) before the real one.
    let doubled = before_record_target(&xml, &decoy);
    let (code, stdout) = verify_text(&doubled, tmp.path(), "doubled.xml");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("REFUSED") && stdout.contains("appears more than once"),
        "{stdout}"
    );

    // Inside an HL7-namespaced message, a no-namespace copy (xmlns="") before the real one.
    let wrapped = |body: &str| {
        format!(
            "<PORX_IN020101SM31 xmlns=\"urn:hl7-org:v3\"><ControlActEvent><subject>{body}</subject></ControlActEvent></PORX_IN020101SM31>"
        )
    };
    let (code, stdout) = verify_text(&wrapped(&xml), tmp.path(), "wrapped.xml");
    assert_eq!(code, Some(0), "{stdout}");
    let bare = before_record_target(
        &xml,
        &decoy.replacen("<recordTarget", "<recordTarget xmlns=\"\"", 1),
    );
    let (code, stdout) = verify_text(&wrapped(&bare), tmp.path(), "bare.xml");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("REFUSED") && stdout.contains("(none)"),
        "{stdout}"
    );

    // Far too deep: refused with a clear error, no crash.
    let deep = xml.replacen(
        "<patientPerson",
        &format!("{}<patientPerson", vsc_eps::xml::nested("a", 40_000)),
        1,
    );
    let (code, stdout) = verify_text(&deep, tmp.path(), "deep.xml");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("nested more than 256 levels deep"),
        "{stdout}"
    );
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../eps/tests/data/corpus");

#[test]
fn preview_prints_exactly_what_the_phone_shows() {
    let files = [
        format!("{CORPUS}/primary-care__acute-and-repeat-prescribing.xml"),
        format!(
            "{CORPUS}/secondary-care__community__repeat-dispensing__nominated-pharmacy__clinical-practitioner__multiple-medication-requests__prescriber-endorsed.xml"
        ),
    ];
    let out = Command::new(VSC)
        .args(["eps", "preview", "--algorithm", "RS1"])
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let preview: Vec<&str> = stdout.lines().collect();

    // The phone, given the request the agent makes of these files (ids as `vsc eps sign` gives).
    let items: Vec<serde_json::Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let xml = std::fs::read_to_string(f).unwrap();
            let prepared =
                vsc_eps::sign::prepare(&xml, vsc_eps::sign::SignatureAlgorithm::RsaSha1).unwrap();
            serde_json::json!({"id": format!("{:03}", i + 1), "fragments": prepared.canonical_fragments})
        })
        .collect();
    let request: vsc_proto::signing::PendingSigningRequest =
        serde_json::from_value(serde_json::json!({
            "request_id": "r1", "uid": "555000000001", "kind": "prescriptions",
            "algorithm": "RS1", "workstation": "pc-1", "role": "Medical Practitioner",
            "items": items,
            "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:05:00Z",
        }))
        .unwrap();
    let review = vsc_authenticator::signing::review(&request).unwrap();
    let mut phone = review.display_lines();
    // The second header line is the session's ("from pc-1 as …"), not the files'.
    assert!(phone[1].starts_with("from pc-1"), "{phone:#?}");
    phone.remove(1);
    assert_eq!(preview, phone);
    // What a dispenser acts on is on it.
    for wanted in [
        "Sign 2 prescriptions (RS1)",
        "[1] 001",
        "    1. Paracetamol 500mg soluble tablets [dm+d 322237000]",
        "       issues authorised: 6",
        "       endorsement: SLS",
        "    Patient: MISS ETTA CORY, NHS 944 930 5552, born 1999-01-04, female",
    ] {
        assert!(preview.contains(&wanted), "{wanted:?} in\n{stdout}");
    }
    assert!(
        preview
            .iter()
            .any(|l| l.starts_with("       additional instructions: ")),
        "{stdout}"
    );

    // A decoy (a foreign-namespace code before the real one) is listed as not signed; exit 1.
    let tmp = tempfile::tempdir().unwrap();
    let xml = std::fs::read_to_string(&files[0]).unwrap();
    let decoyed = xml.replacen(
        "<code code=\"322237000\"",
        "<x:code xmlns:x=\"urn:decoy\" code=\"39720311000001101\" displayName=\"Decoy\"/><code code=\"322237000\"",
        1,
    );
    assert_ne!(decoyed, xml);
    let file = tmp.path().join("decoy.xml");
    std::fs::write(&file, decoyed).unwrap();
    let out = Command::new(VSC)
        .args(["eps", "preview"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("NOT SIGNED 001:") && stdout.contains("urn:decoy"),
        "{stdout}"
    );
    assert!(!stdout.contains("Decoy"), "{stdout}");
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

//! Prescription signing end to end, through the real binary: `vsc sandbox` (server, identity
//! agent, simulated phone), `vsc eps sign` (agent → server → phone → back) over every corpus
//! prescription with rsa-sha1 and rsa-sha256, then `vsc eps verify` with the sandbox's CA and
//! CRL, and an independent check that uses libxml2's exclusive C14N and OpenSSL (not our code).
//! Tampering with a signed part is caught; tampering with an unsigned part is not, as in EPS.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{Sandbox, VSC};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../eps/tests/data/corpus");
const SPECIAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../eps/tests/data/special-characters.xml"
);
const INDEPENDENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../eps/tests/independent/eps_check.py"
);

fn corpus_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    entries.sort();
    // `&`, `<`, non-ASCII names, attributes in unusual order, namespace prefixes.
    entries.push(PathBuf::from(SPECIAL));
    for src in entries {
        // The corpus's stale signatures come out first, as a prescribing system's unsigned
        // prescription would arrive.
        let xml = std::fs::read_to_string(&src).unwrap();
        let unsigned = vsc_eps::sign::strip_signature(&xml).unwrap();
        let dst = dir.join(src.file_name().unwrap());
        std::fs::write(&dst, unsigned).unwrap();
        out.push(dst);
    }
    out
}

fn sign(agent_home: &Path, algorithm: &str, files: &[PathBuf], out: &Path) {
    let result = Command::new(VSC)
        .args([
            "eps",
            "sign",
            "--stamp-author-time",
            "--algorithm",
            algorithm,
        ])
        .arg("--agent-home")
        .arg(agent_home)
        .arg("--out-dir")
        .arg(out)
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "vsc eps sign {algorithm} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("signed ")).count(),
        files.len(),
        "{stdout}"
    );
}

/// `vsc eps verify --json`: (exit success, the per-file reports, everything printed).
fn verify(trust: &Path, crl: &Path, files: &[PathBuf]) -> (bool, serde_json::Value, String) {
    let out = Command::new(VSC)
        .args(["eps", "verify", "--json", "--trust"])
        .arg(trust)
        .arg("--crl")
        .arg(crl)
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let reports = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        reports,
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

fn independent(file: &Path) -> (bool, String) {
    let out = Command::new("/usr/bin/python3")
        .arg(INDEPENDENT)
        .arg(file)
        .output()
        .expect("/usr/bin/python3 with python3-lxml (the test command installs them)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn signed_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_prescription_signs_through_the_phone_and_verifies_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sandbox");
    let sandbox = Sandbox::start(&data);
    let server = sandbox.field("server");
    let agent_home = data.join("agent");
    let inputs = corpus_copies(&tmp.path().join("unsigned"));
    assert_eq!(
        inputs.len(),
        44,
        "the corpus's 43 prescriptions and the special one"
    );

    // The trust bundle (root + issuing CA) and the issuing CA's CRL, as a receiver gets them.
    let ca = data.join("server").join("ca");
    let trust = tmp.path().join("trust.pem");
    std::fs::write(
        &trust,
        [
            std::fs::read(ca.join("root.pem")).unwrap(),
            std::fs::read(ca.join("issuing.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let crl = tmp.path().join("issuing.crl");
    let curl = Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(ca.join("root.pem"))
        .arg("-o")
        .arg(&crl)
        .arg(format!("{}/ca/issuing.crl", server.trim_end_matches('/')))
        .status()
        .unwrap();
    assert!(curl.success(), "the CRL downloads over the server's TLS");

    for algorithm in ["RS1", "RS256"] {
        let out = tmp.path().join(format!("signed-{algorithm}"));
        sign(&agent_home, algorithm, &inputs, &out);
        let signed = signed_files(&out);
        assert_eq!(signed.len(), inputs.len());

        let (ok, reports, printed) = verify(&trust, &crl, &signed);
        assert!(ok, "vsc eps verify {algorithm}:\n{printed}");
        // Every check ran and passed: revocation against the CRL and the chain to the root too.
        let reports = reports.as_array().expect("one report per file");
        assert_eq!(reports.len(), signed.len());
        for report in reports {
            let checks = report["checks"].as_array().unwrap();
            assert_eq!(checks.len(), 7, "{report}");
            assert!(
                checks.iter().all(|c| c["outcome"] == "passed"),
                "{algorithm}: not every check passed: {report}"
            );
        }

        for file in &signed {
            let (ok, why) = independent(file);
            assert!(
                ok,
                "independent check of {} ({algorithm}): {why}",
                file.display()
            );
        }

        // Tampering: a dose (signed) breaks the digest; repeatNumber/low (unsigned) does not.
        let victim = &signed[0];
        let xml = std::fs::read_to_string(victim).unwrap();
        let dose = xml
            .split("<pertinentDosageInstructions")
            .nth(1)
            .and_then(|rest| rest.split("<value>").nth(1))
            .and_then(|rest| rest.split("</value>").next())
            .unwrap()
            .to_owned();
        let tampered = tmp.path().join(format!("tampered-dose-{algorithm}.xml"));
        std::fs::write(
            &tampered,
            xml.replacen(
                &format!("<value>{dose}</value>"),
                "<value>take 40 at once</value>",
                1,
            ),
        )
        .unwrap();
        let (ok, reports, printed) = verify(&trust, &crl, std::slice::from_ref(&tampered));
        assert!(!ok, "a changed dose must not verify:\n{printed}");
        let failed: Vec<_> = reports[0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["outcome"] == "failed")
            .map(|c| c["check"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(failed, ["digest"], "{printed}");

        // An unsigned part (repeatNumber/low) may change, as in EPS.
        if let Some(with_repeat) = signed.iter().find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("<repeatNumber>")
        }) {
            let xml = std::fs::read_to_string(with_repeat).unwrap();
            let start = xml.find("<repeatNumber>").unwrap();
            let low = xml[start..].find("<low value=\"").unwrap() + start + "<low value=\"".len();
            let mut changed = xml.clone();
            changed.replace_range(low..low + 1, "7");
            assert_ne!(changed, xml);
            let unsigned_change = tmp.path().join(format!("repeat-{algorithm}.xml"));
            std::fs::write(&unsigned_change, changed).unwrap();
            let (ok, _, printed) = verify(&trust, &crl, std::slice::from_ref(&unsigned_change));
            assert!(ok, "repeatNumber/low is not signed:\n{printed}");
        }
        let (ok, _) = independent(&tampered);
        assert!(!ok, "the independent check must catch the changed dose too");
    }

    // The agent's API as a prescribing system uses it (curl, the secret header).
    let agent_url = sandbox
        .field("agent ticket API")
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches("/v1/ticket")
        .to_owned();
    let secret = std::fs::read_to_string(agent_home.join("agent.secret")).unwrap();
    let header = format!("X-Vsc-Agent-Secret: {}", secret.trim());
    let curl = |path: &str, body_file: &Path, content_type: &str| -> (bool, Vec<u8>) {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "-H", &header, "-H"])
            .arg(format!("Content-Type: {content_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", body_file.display()))
            .arg(format!("{agent_url}{path}"))
            .output()
            .unwrap();
        (out.status.success(), out.stdout)
    };

    // XML in, signed XML out.
    let (ok, signed_xml) = curl(
        "/v1/eps/sign-xml?algorithm=RS1&stamp_author_time=true",
        &inputs[1],
        "application/xml",
    );
    assert!(ok, "{}", String::from_utf8_lossy(&signed_xml));
    let single = tmp.path().join("single.xml");
    std::fs::write(&single, &signed_xml).unwrap();
    let (ok, _, printed) = verify(&trust, &crl, std::slice::from_ref(&single));
    assert!(ok, "{printed}");
    assert!(independent(&single).0);

    // The Signing Service shape: prepare, then sign the prepared SignedInfo.
    let request = tmp.path().join("prepare.json");
    std::fs::write(
        &request,
        serde_json::json!({
            "algorithm": "RS1",
            "stamp_author_time": true,
            "prescriptions": [{"id": "rx-a", "xml": std::fs::read_to_string(&inputs[2]).unwrap()}],
        })
        .to_string(),
    )
    .unwrap();
    let (ok, prepared) = curl("/v1/signing/prepare", &request, "application/json");
    assert!(ok, "{}", String::from_utf8_lossy(&prepared));
    let prepared: serde_json::Value = serde_json::from_slice(&prepared).unwrap();
    let payload = prepared["payloads"][0]["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        prepared["payloads"][0]["summary"][0]
            .as_str()
            .unwrap()
            .starts_with("Prescription"),
        "{prepared}"
    );
    // A payload that is not a SignedInfo is refused with the whole request: nothing signed.
    std::fs::write(
        &request,
        serde_json::json!({
            "algorithm": "RS1",
            "payloads": [
                {"id": "rx-a", "payload": payload, "description": "rx-a"},
                {"id": "not-signed-info", "payload": "PGZvby8+", "description": "a blob"},
            ],
        })
        .to_string(),
    )
    .unwrap();
    let (ok, answer) = curl("/v1/signing/sign", &request, "application/json");
    assert!(!ok);
    assert!(
        String::from_utf8_lossy(&answer).contains("payload_invalid"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    std::fs::write(
        &request,
        serde_json::json!({
            "algorithm": "RS1",
            "payloads": [
                {"id": "rx-a", "payload": payload, "description": "rx-a as the system describes it"},
            ],
        })
        .to_string(),
    )
    .unwrap();
    let (ok, answer) = curl("/v1/signing/sign", &request, "application/json");
    assert!(ok, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["signatures"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    assert!(answer["failed_signatures"].as_array().unwrap().is_empty());
    // OpenSSL checks the signature over the prepared SignedInfo with the returned certificate.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (signed_info, signature, cert) = (
        tmp.path().join("si.xml"),
        tmp.path().join("si.sig"),
        tmp.path().join("signer.der"),
    );
    std::fs::write(&signed_info, b64.decode(&payload).unwrap()).unwrap();
    std::fs::write(
        &signature,
        b64.decode(answer["signatures"][0]["signature"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    std::fs::write(
        &cert,
        b64.decode(answer["certificate"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let pubkey = tmp.path().join("signer.pub");
    assert!(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&pubkey)
            .status()
            .unwrap()
            .success()
    );
    let checked = Command::new("openssl")
        .args(["dgst", "-sha1", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(&signature)
        .arg(&signed_info)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // Every signature is in the audit log, with its outcome.
    let audit = Command::new(VSC)
        .args(["audit", "export", "--data"])
        .arg(data.join("server"))
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    let signatures = audit
        .lines()
        .filter(|l| l.contains("\"eps.signature\""))
        .count();
    // 2 × 44 signatures, one through sign-xml, one prepared.
    assert_eq!(
        signatures,
        2 * inputs.len() + 2,
        "one audit event per signature"
    );
    assert!(sandbox.stop().success());
}

/// The README's EPS example, run word for word against a sandbox: preview, sign, then verify with
/// the instance's root as the anchor and its published issuing CA as the chain (the README's old
/// line, `--trust` alone, stops at the issuing CA and says how to fix it). Then the agent's API
/// under attack: a prescription nested 40,000 elements deep and one with a decoy are refused with
/// clear errors, and the agent (in the sandbox process) keeps serving. Last, the card is cancelled
/// as stolen with an invalidity date: with the served CRL, `vsc eps verify` keeps the signatures
/// stamped before it and rejects the one stamped after.
#[test]
fn readme_example_works_and_the_agent_survives_deep_xml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("vsc-sandbox");
    let sandbox = Sandbox::start(&data);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sources.sort();
    for (name, src) in ["rx1.xml", "rx2.xml"].iter().zip(&sources) {
        let xml = std::fs::read_to_string(src).unwrap();
        std::fs::write(
            dir.join(name),
            vsc_eps::sign::strip_signature(&xml).unwrap(),
        )
        .unwrap();
    }

    // The README's lines, as written (comments dropped), with `vsc` on the PATH.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("### Sign prescriptions with the phone (EPS)")
        .nth(1)
        .unwrap();
    let block = section
        .split("```sh")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let line = |prefix: &str| -> String {
        block
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in the README's EPS example:\n{block}"))
            .split(" #")
            .next()
            .unwrap()
            .trim()
            .to_owned()
    };
    let bin_dir = Path::new(VSC).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |command: &str| -> (bool, String) {
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(dir)
            .env("PATH", &path)
            .env_remove("VSC_AGENT_HOME")
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
    };
    let (ok, preview) = run(&line("vsc eps preview "));
    assert!(ok, "{preview}");
    assert!(preview.contains("[dm+d "), "{preview}");
    let (ok, printed) = run(&line("vsc eps sign "));
    assert!(ok, "{printed}");
    let verify = line("vsc eps verify ");
    assert!(
        verify.contains("--trust vsc-sandbox/server/ca/root.pem"),
        "{verify}"
    );
    let (ok, printed) = run(&verify);
    assert!(ok, "the README's verify line:\n{verify}\n{printed}");
    assert_eq!(printed.matches(": valid").count(), 2, "{printed}");
    assert!(printed.contains("chains to trusted CA"), "{printed}");
    // Without the chain, the anchor alone cannot reach the signer, and the output says why.
    let (ok, printed) = run("vsc eps verify --trust vsc-sandbox/server/ca/root.pem signed/*.xml");
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("hint: give the issuing CA with --chain"),
        "{printed}"
    );

    // The agent's API, attacked.
    let agent_url = sandbox
        .field("agent ticket API")
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches("/v1/ticket")
        .to_owned();
    let secret = std::fs::read_to_string(data.join("agent").join("agent.secret")).unwrap();
    let header = format!("X-Vsc-Agent-Secret: {}", secret.trim());
    let sign_xml = |body: &Path| -> (bool, String) {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "-H", &header])
            .args(["-H", "Content-Type: application/xml", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg(format!(
                "{agent_url}/v1/eps/sign-xml?algorithm=RS1&stamp_author_time=true"
            ))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let honest = std::fs::read_to_string(dir.join("rx1.xml")).unwrap();
    let deep = dir.join("deep.xml");
    std::fs::write(
        &deep,
        honest.replacen(
            "<patientPerson",
            &format!("{}<patientPerson", vsc_eps::xml::nested("a", 40_000)),
            1,
        ),
    )
    .unwrap();
    let (ok, answer) = sign_xml(&deep);
    assert!(!ok, "{answer}");
    assert!(
        answer.contains("prescription_invalid")
            && answer.contains("nested more than 256 levels deep"),
        "{answer}"
    );
    let start = honest.find("<recordTarget").unwrap();
    let end = honest.find("</recordTarget>").unwrap() + "</recordTarget>".len();
    let decoy = dir.join("decoy.xml");
    std::fs::write(
        &decoy,
        format!(
            "{}{}{}",
            &honest[..start],
            honest[start..end].replacen("<recordTarget", "<recordTarget xmlns=\"\"", 1),
            &honest[start..]
        ),
    )
    .unwrap();
    let (ok, answer) = sign_xml(&decoy);
    assert!(!ok, "{answer}");
    assert!(
        answer.contains("prescription_invalid") && answer.contains("recordTarget"),
        "{answer}"
    );
    // Still serving: the honest prescription signs, and verifies with the chain. Its
    // author/time is stamped after `compromised` (whole seconds), the README's files before.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let compromised = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (ok, signed) = sign_xml(&dir.join("rx1.xml"));
    assert!(ok, "{signed}");
    std::fs::write(dir.join("after.xml"), signed).unwrap();
    let chain = "--trust vsc-sandbox/server/ca/root.pem --chain vsc-sandbox/server/ca/issuing.pem";
    let (ok, printed) = run(&format!("vsc eps verify {chain} after.xml"));
    assert!(ok, "{printed}");

    // Item 4 end to end: the RA cancels the card as stolen, key compromised since `compromised`;
    // with the server's CRL, signatures stamped before that stand and the later one is rejected.
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
    let (ok, printed) = run(&format!(
        "VSC_PASSCODE=123456 vsc ra --home '{ram_home}' login"
    ));
    assert!(ok, "{printed}");
    let since = compromised
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (ok, printed) = run(&format!(
        "vsc ra --home '{ram_home}' card cancel {card} --reason-code key-compromise \
         --reason 'phone stolen' --invalidity-date {since}"
    ));
    assert!(ok, "{printed}");
    let server = sandbox.field("server");
    let (ok, printed) = run(&format!(
        "curl -sSf --cacert vsc-sandbox/server/ca/root.pem -o issuing.crl {}/ca/issuing.crl",
        server.trim_end_matches('/')
    ));
    assert!(ok, "{printed}");
    let (ok, printed) = run(&format!(
        "vsc eps verify {chain} --crl issuing.crl signed/*.xml"
    ));
    assert!(ok, "signed before the compromise:\n{printed}");
    assert!(
        printed.contains("but the prescription was signed before that"),
        "{printed}"
    );
    let (ok, printed) = run(&format!(
        "vsc eps verify {chain} --crl issuing.crl after.xml"
    ));
    assert!(!ok, "signed after the compromise:\n{printed}");
    assert!(
        printed.contains("INVALID (certificate revoked on")
            && printed.contains("reason keyCompromise, invalid since"),
        "{printed}"
    );
    assert!(
        sandbox.stop().success(),
        "the sandbox exits cleanly after the attacks"
    );
}

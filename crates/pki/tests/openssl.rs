//! Cross-checks the CA's output with the real `openssl` command line tool: chains verify,
//! extensions read as intended, and CRLs revoke.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use time::{Duration, OffsetDateTime};
use vsc_pki::{
    CertProfile, CertificateAuthority, IssuedCertificate, KeyKind, PersonSubject, RevocationReason,
    RevokedEntry, ValidatedCsr, der_to_pem, validate_csr,
};

/// Runs openssl in `dir`, returning success and the combined output.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed to run these tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn csr() -> ValidatedCsr {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let pem = der_to_pem("CERTIFICATE REQUEST", csr.der());
    validate_csr(pem.as_bytes(), KeyKind::EcdsaP256).unwrap()
}

fn person() -> PersonSubject {
    PersonSubject {
        uid: "555000111222".into(),
        given_name: "Mary".into(),
        family_name: "Seacole".into(),
    }
}

const CRL_URL: &str = "http://vsc.test/crl/issuing.crl";
const OCSP_URL: &str = "http://vsc.test/ca/ocsp";

fn issue(
    ca: &CertificateAuthority,
    profile: CertProfile,
    now: OffsetDateTime,
) -> IssuedCertificate {
    ca.issue_person_certificate(
        &csr(),
        profile,
        &person(),
        Duration::days(90),
        CRL_URL,
        OCSP_URL,
        now,
    )
    .unwrap()
}

#[test]
fn openssl_accepts_chain_extensions_and_crl() {
    let now = OffsetDateTime::now_utc();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = CertificateAuthority::create("vsc OpenSSL Test", now).unwrap();
    std::fs::write(dir.join("root.pem"), ca.root_pem()).unwrap();
    std::fs::write(dir.join("issuing.pem"), ca.issuing_pem()).unwrap();

    let auth = issue(&ca, CertProfile::Authentication, now);
    let signing = issue(&ca, CertProfile::Signing, now);
    let bystander = issue(&ca, CertProfile::Authentication, now);
    std::fs::write(dir.join("person.pem"), auth.pem()).unwrap();
    std::fs::write(dir.join("signing.pem"), signing.pem()).unwrap();
    std::fs::write(dir.join("bystander.pem"), bystander.pem()).unwrap();
    let chain = ["-CAfile", "root.pem", "-untrusted", "issuing.pem"];

    // Chains verify, for the purposes each profile is meant for and not the other's.
    let verify = |extra: &[&str], cert: &str| {
        let mut args = vec!["verify"];
        args.extend_from_slice(&chain);
        args.extend_from_slice(extra);
        args.push(cert);
        openssl(dir, &args)
    };
    let (ok, out) = verify(&[], "person.pem");
    assert!(ok && out.contains("person.pem: OK"), "{out}");
    let (ok, out) = verify(&["-purpose", "sslclient"], "person.pem");
    assert!(ok, "{out}");
    let (ok, out) = verify(&["-purpose", "smimesign"], "signing.pem");
    assert!(ok, "{out}");
    let (ok, out) = verify(&["-purpose", "sslclient"], "signing.pem");
    assert!(!ok, "a signing certificate must not do client auth: {out}");

    // Extensions as openssl reads them.
    let (ok, text) = openssl(dir, &["x509", "-in", "person.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    for expected in [
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "TLS Web Client Authentication",
        "Microsoft Smartcard Login",
        "X509v3 CRL Distribution Points",
        &format!("URI:{CRL_URL}"),
        "Authority Information Access",
        &format!("OCSP - URI:{OCSP_URL}"),
        "CA:FALSE",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "serialNumber = 555000111222",
        "CN = Mary Seacole",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("Non Repudiation"), "{text}");
    let (ok, text) = openssl(dir, &["x509", "-in", "signing.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    for expected in [
        "X509v3 Key Usage: critical",
        "Digital Signature, Non Repudiation",
        "E-mail Protection",
        &format!("URI:{CRL_URL}"),
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("TLS Web Client Authentication"), "{text}");

    // Revoke the authentication certificate.
    let revoked = [RevokedEntry {
        reason: RevocationReason::KeyCompromise,
        ..RevokedEntry::new(auth.serial_hex.clone(), now)
    }];
    let crl = ca
        .issuing_crl(&revoked, 1, now, now + Duration::days(7))
        .unwrap();
    std::fs::write(dir.join("crl.der"), &crl).unwrap();
    std::fs::write(dir.join("crl.pem"), der_to_pem("X509 CRL", &crl)).unwrap();
    let (ok, text) = openssl(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-noout",
            "-text",
            "-CAfile",
            "issuing.pem",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "CRL signature: {text}");
    assert!(
        text.to_lowercase().contains(&format!(
            "serial number: {}",
            auth.serial_hex.to_lowercase()
        )),
        "serial {} not listed in:\n{text}",
        auth.serial_hex
    );
    assert!(text.contains("Key Compromise"), "{text}");

    let (ok, out) = verify(&["-crl_check", "-CRLfile", "crl.pem"], "person.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    // Control: the CRL does not make openssl reject certificates it does not list.
    let (ok, out) = verify(&["-crl_check", "-CRLfile", "crl.pem"], "bystander.pem");
    assert!(ok && out.contains("bystander.pem: OK"), "{out}");

    // With the root's CRL too, the whole chain can be revocation-checked.
    let root_crl = ca.root_crl(&[], 1, now, now + Duration::days(365)).unwrap();
    let both = der_to_pem("X509 CRL", &crl) + &der_to_pem("X509 CRL", &root_crl);
    std::fs::write(dir.join("crls.pem"), both).unwrap();
    let (ok, out) = verify(&["-crl_check_all", "-CRLfile", "crls.pem"], "bystander.pem");
    assert!(ok, "{out}");
    let (ok, out) = verify(&["-crl_check_all", "-CRLfile", "crls.pem"], "person.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
}

#[test]
fn openssl_accepts_server_certificate_and_key() {
    let now = OffsetDateTime::now_utc();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = CertificateAuthority::create("vsc OpenSSL Test", now).unwrap();
    std::fs::write(dir.join("root.pem"), ca.root_pem()).unwrap();
    std::fs::write(dir.join("issuing.pem"), ca.issuing_pem()).unwrap();
    let names = ["vsc.localhost".to_owned(), "192.0.2.7".to_owned()];
    let (cert, key) = ca.issue_server_certificate(&names, now).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), der_to_pem("PRIVATE KEY", &key)).unwrap();

    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "vsc.localhost",
            "server.pem",
        ],
    );
    assert!(ok && out.contains("server.pem: OK"), "{out}");
    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-verify_ip",
            "192.0.2.7",
            "server.pem",
        ],
    );
    assert!(ok, "{out}");

    // The key file is the certificate's key.
    let (ok, from_cert) = openssl(dir, &["x509", "-in", "server.pem", "-noout", "-pubkey"]);
    assert!(ok, "{from_cert}");
    let (ok, from_key) = openssl(dir, &["pkey", "-in", "server.key", "-pubout"]);
    assert!(ok, "{from_key}");
    assert_eq!(from_cert, from_key);
}

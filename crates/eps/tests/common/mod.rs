//! Helpers shared by the integration tests: test data, a test RSA-2048 signer
//! with a self-signed certificate, and signing a prescription end to end.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_RSA_SHA256, RsaKeySize};
use vsc_eps::sign::{self, SignatureAlgorithm};

/// A file under tests/data.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The text of a file under tests/data.
pub fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).expect("read test data")
}

/// The corpus prescriptions, sorted, as (file name, XML).
pub fn corpus() -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data("corpus"))
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_owned();
            (name, std::fs::read_to_string(&p).expect("read corpus file"))
        })
        .collect()
}

/// The test signing key (RSA-2048, PKCS#8) and its self-signed certificate
/// (valid 2000-01-01 to 2040-01-01, covering every corpus `author/time`).
pub struct TestSigner {
    /// PKCS#8 DER of the RSA-2048 key.
    pub pkcs8: Vec<u8>,
    /// DER of the self-signed certificate.
    pub cert_der: Vec<u8>,
}

impl TestSigner {
    /// The key for aws-lc-rs.
    pub fn rsa(&self) -> RsaKeyPair {
        RsaKeyPair::from_pkcs8(&self.pkcs8).expect("pkcs8")
    }

    /// The key for rcgen.
    pub fn rcgen_key(&self) -> KeyPair {
        KeyPair::try_from(self.pkcs8.as_slice()).expect("rcgen key")
    }

    /// RSA PKCS#1 v1.5 SHA-256 signature over `message`.
    pub fn sign_sha256(&self, message: &[u8]) -> Vec<u8> {
        let key = self.rsa();
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut signature,
        )
        .expect("sign");
        signature
    }
}

/// The shared test signer (generated once per test binary).
pub fn signer() -> &'static TestSigner {
    static SIGNER: OnceLock<TestSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("rsa key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "vsc tests");
        name.push(DnType::CommonName, "Test Prescriber");
        params.distinguished_name = name;
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let cert = params.self_signed(&key).expect("self-signed");
        TestSigner {
            pkcs8: key.serialize_der(),
            cert_der: cert.der().to_vec(),
        }
    })
}

/// Sign a prescription with RSA-SHA256, as the server and phone would:
/// strip any old signature, prepare, sign `SignedInfo` with `key`, build the
/// `Signature` with `cert_der` and insert it.
pub fn sign_prescription_sha256(xml: &str, key: &TestSigner, cert_der: &[u8]) -> String {
    let unsigned = sign::strip_signature(xml).expect("strip");
    let prepared = sign::prepare(&unsigned, SignatureAlgorithm::RsaSha256).expect("prepare");
    // The phone's view: from the fragments alone.
    let (digest, signed_info) =
        sign::prepare_from_fragments(&prepared.canonical_fragments, SignatureAlgorithm::RsaSha256)
            .expect("prepare from fragments");
    assert_eq!(digest, prepared.digest);
    assert_eq!(signed_info, prepared.signed_info);
    let signature = key.sign_sha256(signed_info.as_bytes());
    let element = sign::signature_element(&signed_info, &signature, cert_der);
    sign::insert_signature(&unsigned, &element).expect("insert")
}

/// [`sign_prescription_sha256`] with the shared signer's self-signed
/// certificate.
pub fn sign_with_test_signer(xml: &str) -> String {
    let signer = signer();
    sign_prescription_sha256(xml, signer, &signer.cert_der)
}

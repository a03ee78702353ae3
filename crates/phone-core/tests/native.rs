//! The core's requests and signatures checked against independent implementations that only
//! build natively (x509-parser and aws-lc-rs; neither builds for wasm32). Everything that can
//! run in the browser is in `core.rs`.
#![cfg(not(target_arch = "wasm32"))]
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)]

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePublicKey as _;
use vsc_phone_core::csr;
use vsc_phone_core::webstore::{self, PivSlot};
use x509_parser::prelude::FromDer as _;

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn p256_spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey as _;
    key.verifying_key().to_public_key_der().unwrap().into_vec()
}

/// A request assembled the way the web app does (WebCrypto signs the info, P1363 to DER)
/// parses and verifies with x509-parser, with the subject and key asked for.
/// (P1363 -> DER itself: `ecdsa_p1363_to_der` in `core.rs`, which runs in the browser too.)
#[test]
fn ecdsa_csr_verifies_independently() {
    let key = p256_key();
    let spki = p256_spki(&key);
    let info = csr::certification_request_info(&spki, "Dr Ada Example 555000000001").unwrap();
    // What WebCrypto returns: IEEE P1363 r || s.
    let signature: p256::ecdsa::Signature = key.sign(&info);
    let der = csr::ecdsa_p1363_to_der(&signature.to_bytes()).unwrap();
    let request = csr::assemble(&info, csr::CsrAlgorithm::EcdsaP256Sha256, &der).unwrap();
    let (rest, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&request).unwrap();
    assert!(rest.is_empty());
    parsed.verify_signature().expect("signature verifies");
    let info = &parsed.certification_request_info;
    assert_eq!(info.subject.to_string(), "CN=Dr Ada Example 555000000001");
    assert_eq!(info.subject_pki.raw, spki.as_slice());
    // A signature over other bytes does not verify.
    let other: p256::ecdsa::Signature = key.sign(b"something else");
    let bad = csr::assemble(
        &csr::certification_request_info(&spki, "x").unwrap(),
        csr::CsrAlgorithm::EcdsaP256Sha256,
        other.to_der().as_bytes(),
    )
    .unwrap();
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&bad).unwrap();
    assert!(parsed.verify_signature().is_err());
}

/// An RSA request (the signing key: WebCrypto RSASSA-PKCS1-v1_5 SHA-256) assembled by the core
/// verifies with x509-parser.
#[test]
fn rsa_csr_verifies_independently() {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let spki = key.public_key().as_der().unwrap();
    let info = csr::certification_request_info(spki.as_ref(), "Dr Ada Example").unwrap();
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &info,
        &mut signature,
    )
    .unwrap();
    let request = csr::assemble(&info, csr::CsrAlgorithm::RsaSha256, &signature).unwrap();
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&request).unwrap();
    parsed.verify_signature().expect("signature verifies");
    assert!("rsa-sha1".parse::<csr::CsrAlgorithm>().is_err());
}

/// The web keystore's CSRs verify with x509-parser and carry the store's public keys, and a PIV
/// digest signature verifies with aws-lc-rs. (The rest of the round trip: `webstore_round_trip`
/// in `core.rs`, which runs in the browser too.)
#[test]
fn webstore_keys_verify_independently() {
    let new = webstore::create("135790", "Dr Ada Example").unwrap();
    // The CSRs verify and carry the store's public keys.
    for (csr_der, slot) in [
        (&new.piv_auth_csr, PivSlot::Authentication),
        (&new.piv_signing_csr, PivSlot::Signature),
    ] {
        let (_, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(csr_der)
                .unwrap();
        parsed.verify_signature().unwrap();
        assert_eq!(
            parsed.certification_request_info.subject_pki.raw,
            webstore::piv_spki(&new.store, slot).unwrap().as_slice()
        );
    }
    let stretched = webstore::stretch(&new.store, "135790").unwrap();
    let unlocked = webstore::unlock(&new.store, &stretched, &new.secret).unwrap();
    for slot in [PivSlot::Authentication, PivSlot::Signature] {
        let spki = webstore::piv_spki(&new.store, slot).unwrap();
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
        // And with aws-lc-rs, independently (it hashes the message itself, so check a
        // signature over SHA-256(msg) made as the middleware would).
        let msg = b"a challenge from the workstation";
        let d: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg)
            .as_ref()
            .try_into()
            .unwrap();
        let der = unlocked.sign_piv_digest(slot, &d).unwrap();
        let point = key.to_sec1_point(false);
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            point.as_bytes(),
        )
        .verify(msg, &der)
        .expect("aws-lc-rs verifies");
    }
}

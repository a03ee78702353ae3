//! The core's behaviour as the two fronts rely on it: a keystore written by the native
//! authenticator before the sealing code moved here, the web keystore, sign-in checks and QR
//! decoding (images from the `qrcode` crate). Runs natively and in headless Chromium
//! (wasm-bindgen-test-runner); the checks that need native-only independent implementations
//! (x509-parser, aws-lc-rs) are in `native.rs`.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use time::OffsetDateTime;
use vsc_phone_core::seal::{self, KdfParams, Sealed, StretchedPasscode};
use vsc_phone_core::webstore::{self, PivSlot, WebStoreError};
use vsc_phone_core::{csr, qr, signin};
use vsc_proto::signin::{AuthContext, PendingAuthRequest};

/// The native authenticator's keystore file and its secrets, built in (no file reads at run
/// time: the browser has no file system).
const NATIVE_KEYSTORE: &str = include_str!("data/native-keystore-v2.json");
const NATIVE_SECRETS: &str = include_str!("data/native-keystore-v2.secrets.json");

/// The parts of `native-keystore-v2.json` this test reads.
#[derive(Deserialize)]
struct NativeFile {
    kdf: KdfParams,
    dek_by_passcode: Sealed,
    dek_by_recovery: Sealed,
    auth_private_key: Sealed,
    auth_public_key: String,
}

#[derive(Deserialize)]
struct NativeSecrets {
    passcode: String,
    verifier: String,
    secret: String,
    recovery_key: String,
}

/// `native-keystore-v2.json` was written by `vsc-authenticator`'s keystore when it still
/// derived and sealed with aws-lc-rs (passcode, verifier, server secret and recovery key in the
/// `.secrets.json` beside it). The core's Argon2id + HKDF must give the same verifier `V` and a
/// wrapping input `W` that opens the same DEK; its AES-GCM must open the same blobs.
#[test]
fn stretch_matches_the_native_keystore() {
    let file: NativeFile = serde_json::from_str(NATIVE_KEYSTORE).unwrap();
    let secrets: NativeSecrets = serde_json::from_str(NATIVE_SECRETS).unwrap();
    file.kdf.check().unwrap();
    let stretched = StretchedPasscode::stretch(secrets.passcode.as_bytes(), &file.kdf).unwrap();
    assert_eq!(*stretched.verifier_base64(), secrets.verifier);
    let secret = seal::as_key(&B64.decode(&secrets.secret).unwrap()).unwrap();
    let kek = stretched.kek(&secret).unwrap();
    let dek = seal::open(&kek, seal::AAD_DEK_PASSCODE, &file.dek_by_passcode)
        .unwrap()
        .expect("the native DEK opens with W and S");
    let recovery = seal::as_key(&B64.decode(&secrets.recovery_key).unwrap()).unwrap();
    let dek2 = seal::open(&recovery, seal::AAD_DEK_RECOVERY, &file.dek_by_recovery)
        .unwrap()
        .expect("the native DEK opens with the recovery key");
    assert_eq!(*dek, *dek2);
    let dek = seal::as_key(&dek).unwrap();
    let spki = B64.decode(&file.auth_public_key).unwrap();
    let pkcs8 = seal::open(
        &dek,
        &seal::key_aad(seal::AAD_AUTH_KEY, &spki),
        &file.auth_private_key,
    )
    .unwrap()
    .expect("the authentication key opens with the DEK");
    assert!(!pkcs8.is_empty());
    // A wrong passcode gives another verifier and does not open the DEK.
    let wrong = StretchedPasscode::stretch(b"246811", &file.kdf).unwrap();
    assert_ne!(*wrong.verifier_base64(), secrets.verifier);
    let kek = wrong.kek(&secret).unwrap();
    assert!(
        seal::open(&kek, seal::AAD_DEK_PASSCODE, &file.dek_by_passcode)
            .unwrap()
            .is_none()
    );
}

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn p256_spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey as _;
    key.verifying_key().to_public_key_der().unwrap().into_vec()
}

/// What WebCrypto returns for an ECDSA signature (IEEE P1363 r || s) becomes the DER a request
/// carries, and the request the core assembles carries a signature that verifies over the info.
/// (x509-parser's own parse and check of the request: `native.rs`.)
#[test]
fn ecdsa_p1363_to_der() {
    let key = p256_key();
    let spki = p256_spki(&key);
    let info = csr::certification_request_info(&spki, "Dr Ada Example 555000000001").unwrap();
    // What WebCrypto returns: IEEE P1363 r || s.
    let signature: p256::ecdsa::Signature = key.sign(&info);
    let p1363 = signature.to_bytes();
    assert_eq!(p1363.len(), 64);
    let der = csr::ecdsa_p1363_to_der(&p1363).unwrap();
    assert_eq!(
        p256::ecdsa::Signature::from_der(&der).unwrap(),
        signature,
        "P1363 -> DER keeps r and s"
    );
    key.verifying_key()
        .verify(&info, &p256::ecdsa::Signature::from_der(&der).unwrap())
        .expect("the DER signature verifies over the info");
    let request = csr::assemble(&info, csr::CsrAlgorithm::EcdsaP256Sha256, &der).unwrap();
    assert!(
        request.windows(info.len()).any(|w| w == info.as_slice()),
        "the request carries the info it was signed over"
    );
    // Not 64 bytes: refused.
    assert!(csr::ecdsa_p1363_to_der(&[1; 63]).is_err());
}

#[test]
fn webstore_round_trip() {
    let new = webstore::create("135790", "Dr Ada Example").unwrap();
    // (The CSRs, checked with x509-parser: `native.rs`.)
    // The same passcode gives the same verifier; the store opens with it and the secret.
    let stretched = webstore::stretch(&new.store, "135790").unwrap();
    assert_eq!(*stretched.verifier_base64(), *new.verifier);
    let unlocked = webstore::unlock(&new.store, &stretched, &new.secret).unwrap();
    assert_eq!(unlocked.wrapping_key(), &*new.wrapping_key);

    // A PIV digest signature verifies under the slot's public key (p256 verify).
    let digest = [9u8; 32];
    for slot in [PivSlot::Authentication, PivSlot::Signature] {
        let der = unlocked.sign_piv_digest(slot, &digest).unwrap();
        let spki = webstore::piv_spki(&new.store, slot).unwrap();
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
        let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
        key.verify_prehash(&digest, &signature).expect("verifies");
        // (And with aws-lc-rs, independently: `native.rs`.)
    }
    assert!(matches!(
        unlocked.sign_piv_digest(PivSlot::Signature, &[0; 20]),
        Err(WebStoreError::DigestLength(20))
    ));

    // Wrong passcode: another verifier, and the DEK does not open even with the right secret.
    let wrong = webstore::stretch(&new.store, "135791").unwrap();
    assert_ne!(*wrong.verifier_base64(), *new.verifier);
    assert_eq!(
        webstore::unlock(&new.store, &wrong, &new.secret).unwrap_err(),
        WebStoreError::WrongPasscodeOrSecret
    );
    // Wrong secret with the right passcode.
    let other_secret = B64.encode([7u8; 32]);
    assert_eq!(
        webstore::unlock(&new.store, &stretched, &other_secret).unwrap_err(),
        WebStoreError::WrongPasscodeOrSecret
    );
    assert!(matches!(
        webstore::unlock(&new.store, &stretched, "not base64"),
        Err(WebStoreError::SecretFormat(_))
    ));
    // Passcode rule.
    assert_eq!(
        webstore::create("12345", "x").unwrap_err(),
        WebStoreError::PasscodeFormat
    );

    // After an RA unlock: a new passcode with the recovery key, the same keys.
    let first = webstore::NewPasscode::new("864200").unwrap();
    let reset_store = webstore::install_passcode(&new.store, &first, &new.recovery_key).unwrap();
    let stretched = webstore::stretch(&reset_store, "864200").unwrap();
    assert_eq!(*stretched.verifier_base64(), *first.verifier_base64());
    let again = webstore::unlock(&reset_store, &stretched, &first.secret_base64()).unwrap();
    assert_eq!(again.wrapping_key(), &*new.wrapping_key);
    assert_eq!(
        webstore::piv_spki(&reset_store, PivSlot::Signature).unwrap(),
        webstore::piv_spki(&new.store, PivSlot::Signature).unwrap()
    );
    assert_eq!(
        webstore::install_passcode(&new.store, &first, &other_secret).unwrap_err(),
        WebStoreError::WrongRecoveryKey
    );

    // The RA unlock as the app does it: the new passcode's verifier and secret are made first
    // (they go to the server with the code), then the recovery key re-wraps the data key.
    let prepared = webstore::NewPasscode::new("97531864").unwrap();
    assert_eq!(
        webstore::NewPasscode::new("123").unwrap_err(),
        WebStoreError::PasscodeFormat
    );
    assert_eq!(
        webstore::install_passcode(&reset_store, &prepared, &other_secret).unwrap_err(),
        WebStoreError::WrongRecoveryKey
    );
    let installed = webstore::install_passcode(&reset_store, &prepared, &new.recovery_key).unwrap();
    let stretched = webstore::stretch(&installed, "97531864").unwrap();
    assert_eq!(*stretched.verifier_base64(), *prepared.verifier_base64());
    let opened = webstore::unlock(&installed, &stretched, &prepared.secret_base64()).unwrap();
    assert_eq!(opened.wrapping_key(), &*new.wrapping_key);
    // The old passcode no longer opens it.
    let old = webstore::stretch(&installed, "864200").unwrap();
    assert_eq!(
        webstore::unlock(&installed, &old, &prepared.secret_base64()).unwrap_err(),
        WebStoreError::WrongPasscodeOrSecret
    );
}

fn request(now: OffsetDateTime) -> PendingAuthRequest {
    let context = AuthContext {
        workstation_id: "ws-1".into(),
        workstation_name: "WARD-7-PC-03".into(),
        client_address: "10.0.0.7".into(),
        agent_version: "0.1.0".into(),
        purpose: "Sign in to clinical systems".into(),
        registered: true,
        organisation: "RX1".into(),
        organisation_name: "Example Trust".into(),
        web_client: String::new(),
    };
    let created_at = now.unix_timestamp() - 10;
    PendingAuthRequest {
        request_id: "req_123".into(),
        uid: "555000000001".into(),
        nonce: B64.encode([1u8; 16]),
        context_digest: vsc_proto::signin::context_digest(&context, created_at),
        context,
        created_at,
        expires_at: now + time::Duration::seconds(60),
        card_renewal: None,
        licence_warning: None,
    }
}

#[test]
fn sign_in_checks() {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let req = request(now);
    let view = signin::view(&req, now).unwrap();
    assert_eq!(view.request_id, "req_123");
    assert_eq!(view.organisation, "Example Trust (RX1)");
    assert_eq!(view.address, "10.0.0.7");
    assert_eq!(view.client, "WARD-7-PC-03");
    assert_eq!(view.seconds_left, 60);
    assert!(view.who.contains("WARD-7-PC-03"));
    let json = serde_json::to_value(&view).unwrap();
    assert!(json.get("secondsLeft").is_some());

    let statement = signin::approval_statement(&req, 7, "https://vsc.example", now).unwrap();
    let text = String::from_utf8(statement).unwrap();
    assert!(text.contains("number=07\n"));
    assert!(text.contains(&format!("context={}\n", req.context_digest)));
    assert!(matches!(
        signin::approval_statement(&req, 100, "https://vsc.example", now),
        Err(signin::SignInError::NotTwoDigits { number: 100 })
    ));

    // Tampered context: what would be shown is not what the digest covers.
    let mut tampered = req.clone();
    tampered.context.workstation_name = "OTHER-PC".into();
    assert!(matches!(
        signin::view(&tampered, now),
        Err(signin::SignInError::ContextMismatch { .. })
    ));
    assert!(signin::approval_statement(&tampered, 7, "https://vsc.example", now).is_err());
    // Expired.
    let later = now + time::Duration::seconds(61);
    assert!(matches!(
        signin::view(&req, later),
        Err(signin::SignInError::RequestExpired { .. })
    ));
    // An id that cannot be one.
    let mut bad_id = req.clone();
    bad_id.request_id = "../x".into();
    assert!(matches!(
        signin::view(&bad_id, now),
        Err(signin::SignInError::BadRequestId(_))
    ));
}

/// A QR made by the `qrcode` crate (what the RA console and `vsc ra card issue --qr-png` use),
/// drawn into a greyscale frame with a quiet zone and scaled up, decodes to the same link.
#[test]
fn qr_decodes_a_generated_code() {
    let link = "https://vsc.example:8443/activate#code=ABCD1234-AAAA-BBBB-CCCC-DDDD&fp=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let code = qrcode::QrCode::new(link.as_bytes()).unwrap();
    let modules = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (4, 4);
    let side = (modules + 2 * quiet) * scale;
    let mut luma = vec![255u8; side * side];
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = (x / scale, y / scale);
            if mx >= quiet && my >= quiet && mx < quiet + modules && my < quiet + modules {
                let dark = colors[(my - quiet) * modules + (mx - quiet)] == qrcode::Color::Dark;
                if dark {
                    luma[y * side + x] = 0;
                }
            }
        }
    }
    assert_eq!(qr::decode_luma(&luma, side, side).as_deref(), Some(link));
    // RGBA of the same frame (a canvas) decodes too.
    let rgba: Vec<u8> = luma.iter().flat_map(|&v| [v, v, v, 255]).collect();
    assert_eq!(
        qr::decode_luma(&qr::rgba_to_luma(&rgba), side, side).as_deref(),
        Some(link)
    );
    // A blank frame or a wrongly sized one has no code.
    assert_eq!(qr::decode_luma(&vec![255; side * side], side, side), None);
    assert_eq!(qr::decode_luma(&luma, side + 1, side), None);
}

//! The phone web app's WebAssembly interface: thin `#[wasm_bindgen]` wrappers over
//! `vsc-phone-core`, named as the app's JavaScript calls them (`pkg/vsc_phone_web.js`). Logic
//! stays in the core, where native tests cover it; here are only conversions between JS values
//! and Rust ones, and errors turned into JS `Error`s a person can read.
//!
//! Secrets handed to JavaScript (the wrapping key, the server secret, the recovery key) are
//! copies the app needs for one step. The getters copy them straight from the Rust object's
//! `Zeroizing` fields into a new JS `Uint8Array` or string, without a second Rust copy; the
//! Rust-side values are wiped when the JS object is `free()`d (or, if the app never calls it,
//! whenever the garbage collector finalises the object, which may be never). What was handed
//! to JavaScript is not wiped by Rust: JS strings cannot be wiped at all, and a `Uint8Array`
//! only if the app overwrites it (the app does, for the wrapping key, once WebCrypto has
//! imported it). Transient buffers inside Argon2id, AES-GCM and the wasm-bindgen glue (string
//! arguments are copied into the module's memory and freed without wiping) are also outside
//! what this crate controls.
#![forbid(unsafe_code)]

use vsc_phone_core::{cert, csr, link, qr, review, seal, signin, vsc_proto, webstore};
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

/// Turns any core error into a JS `Error` carrying its message.
fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Parses JSON the core produced into a plain JS object.
fn to_js(json: &str) -> Result<JsValue, JsError> {
    js_sys::JSON::parse(json).map_err(|_| JsError::new("internal error: bad JSON from the core"))
}

/// The time now, from the browser: `std::time` is not available in wasm32-unknown-unknown.
fn now() -> Result<time::OffsetDateTime, JsError> {
    unix_time(js_sys::Date::now() / 1000.0)
}

fn unix_time(seconds: f64) -> Result<time::OffsetDateTime, JsError> {
    if !seconds.is_finite() {
        return Err(JsError::new("the time is not a number"));
    }
    // Whole seconds are enough for expiry checks (and `as` saturates, so a huge value cannot
    // wrap to a time in the past).
    let seconds = seconds.floor() as i64;
    time::OffsetDateTime::from_unix_timestamp(seconds).map_err(js_error)
}

fn parse_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, JsError> {
    serde_json::from_str(json).map_err(|e| {
        JsError::new(&format!(
            "the server's {what} cannot be read ({e}); the server and this app may be different versions, so reload the app"
        ))
    })
}

/// The app's version (the crate's), sent as `x-vsc-app-version`.
#[wasm_bindgen]
pub fn version() -> String {
    vsc_phone_core::VERSION.to_owned()
}

/// `{code, caFingerprint}` from an activation link, an `/app/#…` link or a bare fragment;
/// throws when the link is for another origin than `origin`.
#[wasm_bindgen(js_name = parseActivation)]
pub fn parse_activation(link: &str, origin: &str) -> Result<JsValue, JsError> {
    let a = link::parse_activation(link, origin).map_err(js_error)?;
    let json = serde_json::json!({ "code": a.code, "caFingerprint": a.ca_fingerprint });
    to_js(&json.to_string())
}

/// Throws unless a certificate in `chain_pem` has the SHA-256 fingerprint from the link.
#[wasm_bindgen(js_name = checkRootCa)]
pub fn check_root_ca(chain_pem: &str, ca_fingerprint_hex: &str) -> Result<(), JsError> {
    link::check_root_ca(chain_pem, ca_fingerprint_hex).map_err(js_error)
}

/// A new web keystore and what to deposit with the server.
#[wasm_bindgen]
pub struct NewStore(webstore::NewWebStore);

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[wasm_bindgen]
impl NewStore {
    /// The keystore document (JSON) to keep in IndexedDB.
    #[wasm_bindgen(getter)]
    pub fn store(&self) -> String {
        self.0.store.clone()
    }
    /// The passcode verifier (base64) for the server.
    #[wasm_bindgen(getter)]
    pub fn verifier(&self) -> String {
        self.0.verifier.to_string()
    }
    /// The server secret (base64) for the server; do not keep it.
    #[wasm_bindgen(getter)]
    pub fn secret(&self) -> js_sys::JsString {
        js_sys::JsString::from(self.0.secret.as_str())
    }
    /// The recovery key (base64) for the server; do not keep it.
    #[wasm_bindgen(getter = recoveryKey)]
    pub fn recovery_key(&self) -> js_sys::JsString {
        js_sys::JsString::from(self.0.recovery_key.as_str())
    }
    /// The 32-byte WebCrypto wrapping key (import non-extractable, AES-GCM; then overwrite it).
    #[wasm_bindgen(getter = wrappingKey)]
    pub fn wrapping_key(&self) -> js_sys::Uint8Array {
        js_sys::Uint8Array::from(&self.0.wrapping_key[..])
    }
    /// The PIV 9A request, base64 DER.
    #[wasm_bindgen(getter = pivAuthCsr)]
    pub fn piv_auth_csr(&self) -> String {
        b64(&self.0.piv_auth_csr)
    }
    /// The PIV 9C request, base64 DER.
    #[wasm_bindgen(getter = pivSigningCsr)]
    pub fn piv_signing_csr(&self) -> String {
        b64(&self.0.piv_signing_csr)
    }
}

/// Creates a web keystore for `passcode` (6+ digits) with PIV requests for `common_name`.
/// Takes a second or two: Argon2id with 64 MiB.
#[wasm_bindgen(js_name = createKeystore)]
pub fn create_keystore(passcode: &str, common_name: &str) -> Result<NewStore, JsError> {
    let passcode = Zeroizing::new(passcode.to_owned());
    webstore::create(&passcode, common_name)
        .map(NewStore)
        .map_err(js_error)
}

/// A new passcode for an RA unlock, stretched, with a new server secret (see
/// [`webstore::NewPasscode`]): its `verifier` and `secret` go to the server with the code.
#[wasm_bindgen]
pub struct NewPasscode(webstore::NewPasscode);

#[wasm_bindgen]
impl NewPasscode {
    /// The new verifier (base64) for the server.
    #[wasm_bindgen(getter)]
    pub fn verifier(&self) -> String {
        self.0.verifier_base64().to_string()
    }
    /// The new server secret (base64) for the server; do not keep it.
    #[wasm_bindgen(getter)]
    pub fn secret(&self) -> js_sys::JsString {
        // The Zeroizing copy is wiped when this returns.
        js_sys::JsString::from(self.0.secret_base64().as_str())
    }
}

/// Stretches a new passcode (6+ digits) for an RA unlock (Argon2id with 64 MiB: a second or
/// two). Throws when the passcode is not 6 to 64 digits.
#[wasm_bindgen(js_name = newPasscode)]
pub fn new_passcode(passcode: &str) -> Result<NewPasscode, JsError> {
    let passcode = Zeroizing::new(passcode.to_owned());
    webstore::NewPasscode::new(&passcode)
        .map(NewPasscode)
        .map_err(js_error)
}

/// After the server redeemed the unlock code: the keystore document re-wrapped under the new
/// passcode with the recovery key the server released (the keys stay the same).
#[wasm_bindgen(js_name = installPasscode)]
pub fn install_passcode(
    store: &str,
    new_passcode: &NewPasscode,
    recovery_key_b64: &str,
) -> Result<String, JsError> {
    let recovery = Zeroizing::new(recovery_key_b64.to_owned());
    webstore::install_passcode(store, &new_passcode.0, &recovery).map_err(js_error)
}

/// The unlock code (display form) from a typed code or an unlock link; a link must be for
/// `origin` and name the CA the app enrolled with (`enrolled_fp_hex`).
#[wasm_bindgen(js_name = parseUnlock)]
pub fn parse_unlock(input: &str, origin: &str, enrolled_fp_hex: &str) -> Result<String, JsError> {
    link::parse_unlock(input, origin, enrolled_fp_hex).map_err(js_error)
}

/// `vsc_proto::passcode::unlock_statement`: what the device key signs to redeem an unlock code
/// with a new passcode's verifier and secret.
#[wasm_bindgen(js_name = unlockStatement)]
pub fn unlock_statement(
    challenge_id: &str,
    nonce: &str,
    device_id: &str,
    unlock_code: &str,
    verifier_b64: &str,
    secret_b64: &str,
    origin: &str,
) -> Vec<u8> {
    vsc_proto::passcode::unlock_statement(
        challenge_id,
        nonce,
        device_id,
        unlock_code,
        verifier_b64,
        secret_b64,
        origin,
    )
}

/// The passcode after Argon2id: its verifier for the server, its wrapping half for [`unlock`].
#[wasm_bindgen]
pub struct Stretched(vsc_phone_core::seal::StretchedPasscode);

#[wasm_bindgen]
impl Stretched {
    /// The verifier (base64) the server checks.
    #[wasm_bindgen(getter)]
    pub fn verifier(&self) -> String {
        self.0.verifier_base64().to_string()
    }
}

/// Runs Argon2id over `passcode` with the store's salt (once per unlock).
#[wasm_bindgen]
pub fn stretch(store: &str, passcode: &str) -> Result<Stretched, JsError> {
    let passcode = Zeroizing::new(passcode.to_owned());
    webstore::stretch(store, &passcode)
        .map(Stretched)
        .map_err(js_error)
}

/// `vsc_proto::passcode::passcode_check_statement`: what the device key signs to have the
/// verifier checked.
#[wasm_bindgen(js_name = passcodeCheckStatement)]
pub fn passcode_check_statement(
    challenge_id: &str,
    nonce: &str,
    device_id: &str,
    card_id: &str,
    verifier_b64: &str,
    origin: &str,
) -> Vec<u8> {
    vsc_proto::passcode::passcode_check_statement(
        challenge_id,
        nonce,
        device_id,
        card_id,
        verifier_b64,
        origin,
    )
}

/// An unlocked keystore: the wrapping key and the PIV keys, wiped on `free()` (the app frees it
/// as soon as the operation is done).
#[wasm_bindgen]
pub struct Unlocked(webstore::UnlockedWebStore);

#[wasm_bindgen]
impl Unlocked {
    /// The 32-byte WebCrypto wrapping key (import it, then overwrite it).
    #[wasm_bindgen(getter = wrappingKey)]
    pub fn wrapping_key(&self) -> js_sys::Uint8Array {
        js_sys::Uint8Array::from(&self.0.wrapping_key()[..])
    }

    /// ECDSA P-256 with the PIV key of `slot` (`9a`/`9c`) over a 32-byte digest; DER.
    #[wasm_bindgen(js_name = signPivDigest)]
    pub fn sign_piv_digest(&self, slot: &str, digest: &[u8]) -> Result<Vec<u8>, JsError> {
        let slot = webstore::PivSlot::parse(slot).map_err(js_error)?;
        self.0.sign_piv_digest(slot, digest).map_err(js_error)
    }
}

/// Opens the keystore with the stretched passcode and the secret the server released; throws
/// "wrong passcode or secret" when the data key does not open.
#[wasm_bindgen]
pub fn unlock(store: &str, stretched: &Stretched, secret_b64: &str) -> Result<Unlocked, JsError> {
    webstore::unlock(store, &stretched.0, secret_b64)
        .map(Unlocked)
        .map_err(js_error)
}

/// `vsc_proto::signin::device_token_statement`: what the device key signs for a device token.
#[wasm_bindgen(js_name = deviceTokenStatement)]
pub fn device_token_statement(
    challenge_id: &str,
    nonce: &str,
    device_id: &str,
    origin: &str,
) -> Vec<u8> {
    vsc_proto::signin::device_token_statement(challenge_id, nonce, device_id, origin)
}

/// Checks a sign-in request (digest, id, expiry at `now_unix`) and returns what to show:
/// `{requestId, who, organisation, address, client, secondsLeft, lines}`.
#[wasm_bindgen(js_name = checkSignIn)]
pub fn check_sign_in(request_json: &str, now_unix: f64) -> Result<JsValue, JsError> {
    let request = parse_json(request_json, "sign-in request")?;
    let view = signin::view(&request, unix_time(now_unix)?).map_err(js_error)?;
    to_js(&serde_json::to_string(&view).map_err(js_error)?)
}

/// The approval statement for `number` (after every check, at the browser's time now); the
/// app signs it with the card's authentication key.
#[wasm_bindgen(js_name = approvalStatement)]
pub fn approval_statement(
    request_json: &str,
    number: u32,
    origin: &str,
) -> Result<Vec<u8>, JsError> {
    let request = parse_json(request_json, "sign-in request")?;
    signin::approval_statement(&request, number, origin, now()?).map_err(js_error)
}

/// An ECDSA P-256 signature from WebCrypto (P1363, 64 bytes) as DER.
#[wasm_bindgen(js_name = ecdsaDer)]
pub fn ecdsa_der(p1363: &[u8]) -> Result<Vec<u8>, JsError> {
    csr::ecdsa_p1363_to_der(p1363).map_err(js_error)
}

/// The DER CertificationRequestInfo for a key (SPKI DER) and common name: what WebCrypto signs.
#[wasm_bindgen(js_name = csrInfo)]
pub fn csr_info(spki_der: &[u8], common_name: &str) -> Result<Vec<u8>, JsError> {
    csr::certification_request_info(spki_der, common_name).map_err(js_error)
}

/// The DER PKCS#10 request from `info`, `algorithm` (`ecdsa-p256-sha256` with a DER signature,
/// or `rsa-sha256`) and the signature.
#[wasm_bindgen(js_name = csrAssemble)]
pub fn csr_assemble(info: &[u8], algorithm: &str, signature: &[u8]) -> Result<Vec<u8>, JsError> {
    let algorithm: csr::CsrAlgorithm = algorithm.parse().map_err(js_error)?;
    csr::assemble(info, algorithm, signature).map_err(js_error)
}

/// Reviews a signing request: `{requestId, algorithm, header, displayLines, items: [{id, lines,
/// verified, toSign, slot}], refused: [{id, reason}]}`; throws for a request that cannot be
/// signed at all.
#[wasm_bindgen(js_name = reviewSigning)]
pub fn review_signing(request_json: &str) -> Result<JsValue, JsError> {
    let request = parse_json(request_json, "signing request")?;
    let review = review::review(&request).map_err(js_error)?;
    to_js(&serde_json::to_string(&review.view()).map_err(js_error)?)
}

/// Decodes a QR code in a greyscale frame (`width` × `height` bytes); `undefined` if none.
#[wasm_bindgen(js_name = decodeQr)]
pub fn decode_qr(luma: &[u8], width: u32, height: u32) -> Option<String> {
    qr::decode_luma(luma, width as usize, height as usize)
}

/// Whether `passcode` is a well-formed passcode (6 to 64 digits: the keystores' one rule).
#[wasm_bindgen(js_name = passcodeWellFormed)]
pub fn passcode_well_formed(passcode: &str) -> bool {
    seal::passcode_ok(passcode)
}

/// Whether `pin` is a well-formed card PIN (`vsc_proto::card::pin_is_well_formed`: 6 to 8
/// digits).
#[wasm_bindgen(js_name = pinWellFormed)]
pub fn pin_well_formed(pin: &str) -> bool {
    vsc_proto::card::pin_is_well_formed(pin)
}

/// The card PIN's length rule for messages: `{min, max}` (`vsc_proto::card::{PIN_MIN, PIN_MAX}`).
#[wasm_bindgen(js_name = pinLengths)]
pub fn pin_lengths() -> Result<JsValue, JsError> {
    let json = serde_json::json!({
        "min": vsc_proto::card::PIN_MIN,
        "max": vsc_proto::card::PIN_MAX,
    });
    to_js(&json.to_string())
}

/// The first certificate of `pem`: `{serial (hex), notAfter (RFC 3339), spkiMatches}`, where
/// `spkiMatches` says whether it is for the key whose SubjectPublicKeyInfo (DER) is `spki`
/// (`null` without one); throws when there is no certificate or it does not parse.
#[wasm_bindgen(js_name = certificateFacts)]
pub fn certificate_facts(pem: &str, spki: Option<Vec<u8>>) -> Result<JsValue, JsError> {
    let facts = cert::certificate_facts(pem).map_err(js_error)?;
    let not_after = facts
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(js_error)?;
    let json = serde_json::json!({
        "serial": facts.serial,
        "notAfter": not_after,
        "spkiMatches": spki.map(|s| facts.is_for_key(&s)),
    });
    to_js(&json.to_string())
}

//! `csr`: validation of the certificate signing requests and public keys a phone sends at
//! enrolment (`vsc_pki::csr`): DER or PEM parsing, the key-kind and strength checks, and the
//! proof-of-possession signature.
//!
//! Input: one byte that picks the expected key kind (bit 0: RSA instead of ECDSA P-256), then
//! the CSR (DER or PEM) — and the same bytes as a bare SubjectPublicKeyInfo. Properties:
//! no panic; an accepted CSR's key passes `validate_public_key` for the same kind, and its
//! DER is the input's (or the input's PEM content).

use vsc_pki::csr::{KeyKind, validate_csr, validate_public_key};

/// The target.
pub fn run(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let kind = if selector & 1 == 0 {
        KeyKind::EcdsaP256
    } else {
        KeyKind::Rsa2048
    };
    let _ = validate_public_key(input, kind);
    let Ok(csr) = validate_csr(input, kind) else {
        return;
    };
    assert_eq!(csr.key_kind, kind);
    if !input.trim_ascii_start().starts_with(b"-----BEGIN") {
        assert_eq!(csr.der, input, "a DER CSR is kept as received");
    }
    let key = validate_public_key(&csr.spki_der, kind)
        .unwrap_or_else(|e| panic!("an accepted CSR's key is refused on its own: {e}"));
    assert_eq!(key, csr.spki_der);
    assert_eq!(csr.spki_sha256_hex().len(), 64);
}

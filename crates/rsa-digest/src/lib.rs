//! RSA PKCS#1 v1.5 signatures that aws-lc-rs cannot make, made by the same AWS-LC library.
//!
//! The phone's EPS signing key is RSA-2048 because EPS verifies RSA PKCS#1 v1.5 signatures, and
//! EPS still accepts (and most prescribing systems still send) `rsa-sha1` SignedInfo. aws-lc-rs
//! signs with SHA-256/384/512 only. [`sign_sha1_digest`] signs a SHA-1 digest computed
//! elsewhere (the phone hashes the SignedInfo it built itself); that is all this crate offers.
//! `rsa-sha256` is signed by aws-lc-rs itself (`RSA_PKCS1_SHA256` over the SignedInfo), with no
//! FFI; the tests here check that both paths produce the same bytes for SHA-256.
//!
//! It builds the DigestInfo and ends in AWS-LC's `RSA_sign_raw` with PKCS#1 v1.5 type-1
//! padding, which is constant-time and blinded like every other RSA private operation in
//! aws-lc-rs; no RSA arithmetic is written here, and no unpadded (decrypting) operation is
//! offered. The crate is the only place in the workspace allowed `unsafe`, confined to
//! the private [`ffi`] module, which states the invariants each call relies on.

mod ffi;

use zeroize::Zeroizing;

/// The DER `DigestInfo` prefix (RFC 8017 §9.2, note 1) that precedes a SHA-1 digest.
const SHA1_DIGEST_INFO_PREFIX: &[u8] = &[
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

/// A SHA-1 digest's length in bytes.
pub const SHA1_LEN: usize = 20;

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RsaError {
    /// The private key is not a PKCS#8 RSA key AWS-LC accepts.
    #[error("the private key is not a valid PKCS#8 RSA key")]
    InvalidKey,
    /// The digest is not 20 bytes long.
    #[error("a SHA-1 digest is 20 bytes, got {0}")]
    DigestLength(usize),
    /// AWS-LC refused the operation.
    #[error("the RSA private-key operation failed")]
    Operation,
}

/// Signs a SHA-1 digest with RSA PKCS#1 v1.5 (`sha1WithRSAEncryption`, EPS `rsa-sha1`):
/// `DigestInfo(SHA-1, digest)`, type-1 padded, raised to the private exponent.
pub fn sign_sha1_digest(pkcs8_der: &[u8], digest: &[u8]) -> Result<Vec<u8>, RsaError> {
    if digest.len() != SHA1_LEN {
        return Err(RsaError::DigestLength(digest.len()));
    }
    sign_digest_info(pkcs8_der, SHA1_DIGEST_INFO_PREFIX, digest)
}

/// `DigestInfo` = `prefix ‖ digest`, signed with PKCS#1 v1.5 type-1 padding.
fn sign_digest_info(pkcs8_der: &[u8], prefix: &[u8], digest: &[u8]) -> Result<Vec<u8>, RsaError> {
    let mut digest_info = Zeroizing::new(Vec::with_capacity(prefix.len() + digest.len()));
    digest_info.extend_from_slice(prefix);
    digest_info.extend_from_slice(digest);
    let key = ffi::RsaPrivateKey::from_pkcs8(pkcs8_der)?;
    key.sign_padded_pkcs1(&digest_info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::digest;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};

    fn key() -> (RsaKeyPair, Vec<u8>) {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate");
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .expect("pkcs8")
            .as_ref()
            .to_vec();
        (pair, der)
    }

    /// The SHA-256 `DigestInfo` prefix, to check the FFI path against aws-lc-rs's own signer.
    const SHA256_DIGEST_INFO_PREFIX: &[u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];

    #[test]
    fn the_ffi_path_equals_aws_lc_rs_for_sha256() {
        let (pair, der) = key();
        let message = b"<SignedInfo>...</SignedInfo>";
        let mut expected = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut expected,
        )
        .expect("sign");
        let digest = digest::digest(&digest::SHA256, message);
        let ours =
            sign_digest_info(&der, SHA256_DIGEST_INFO_PREFIX, digest.as_ref()).expect("sign");
        // PKCS#1 v1.5 is deterministic: the same key and message give the same bytes.
        assert_eq!(ours, expected);
    }

    #[test]
    fn sha1_digest_signature_verifies_as_rsa_sha1() {
        let (pair, der) = key();
        let message = b"prescription SignedInfo";
        let digest = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, message);
        let sig = sign_sha1_digest(&der, digest.as_ref()).expect("sign");
        let public = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            pair.public_key().as_ref(),
        );
        public.verify(message, &sig).expect("verifies");
        assert!(public.verify(b"something else", &sig).is_err());
    }

    #[test]
    fn wrong_digest_length_and_wrong_key_are_refused() {
        let (_, der) = key();
        assert_eq!(
            sign_sha1_digest(&der, &[0; 32]),
            Err(RsaError::DigestLength(32))
        );
        assert_eq!(
            sign_sha1_digest(b"not a key", &[0; 20]),
            Err(RsaError::InvalidKey)
        );
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .expect("ec key");
        assert_eq!(
            sign_sha1_digest(ec.as_ref(), &[0; 20]),
            Err(RsaError::InvalidKey)
        );
        // Trailing bytes after the key are not silently ignored.
        let mut padded = der.clone();
        padded.push(0);
        assert_eq!(
            sign_sha1_digest(&padded, &[0; 20]),
            Err(RsaError::InvalidKey)
        );
    }
}

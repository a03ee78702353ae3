//! RSA PKCS#1 v1.5 signatures that aws-lc-rs cannot make, made by the same AWS-LC library.
//!
//! The phone's EPS signing key is RSA-2048 because EPS verifies RSA PKCS#1 v1.5 signatures, and
//! EPS still accepts (and most prescribing systems still send) `rsa-sha1` SignedInfo. aws-lc-rs
//! signs with SHA-256/384/512 only, and only over a message. [`sign_digest`] signs a SHA-1 or
//! SHA-256 digest computed elsewhere (the phone hashes the SignedInfo it built itself).
//!
//! It builds the DigestInfo and ends in AWS-LC's `RSA_sign_raw` with PKCS#1 v1.5 type-1
//! padding, which is constant-time and blinded like every other RSA private operation in
//! aws-lc-rs; no RSA arithmetic is written here, and no unpadded (decrypting) operation is
//! offered. The crate is the only place in the workspace allowed `unsafe`, confined to
//! the private [`ffi`] module, which states the invariants each call relies on.

mod ffi;

use zeroize::Zeroizing;

/// The hash a digest was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// SHA-1 (20 bytes): EPS's `rsa-sha1`, for legacy use only.
    Sha1,
    /// SHA-256 (32 bytes).
    Sha256,
}

impl DigestAlgorithm {
    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha1 => 20,
            DigestAlgorithm::Sha256 => 32,
        }
    }

    /// The DER `DigestInfo` prefix (RFC 8017 §9.2, note 1) that precedes the digest.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            DigestAlgorithm::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            DigestAlgorithm::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
        }
    }
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RsaError {
    /// The private key is not a PKCS#8 RSA key AWS-LC accepts.
    #[error("the private key is not a valid PKCS#8 RSA key")]
    InvalidKey,
    /// The digest's length does not match its algorithm.
    #[error("a {algorithm:?} digest is {expected} bytes, got {actual}")]
    DigestLength {
        /// The algorithm named.
        algorithm: DigestAlgorithm,
        /// Its digest length.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// AWS-LC refused the operation.
    #[error("the RSA private-key operation failed")]
    Operation,
}

/// Signs a digest with RSA PKCS#1 v1.5: `DigestInfo(algorithm, digest)`, type-1 padded, raised
/// to the private exponent. The result is what `RSA_PKCS1_SHA256` (or the SHA-1 equivalent)
/// would produce over the message the digest was taken of.
pub fn sign_digest(
    pkcs8_der: &[u8],
    algorithm: DigestAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, RsaError> {
    if digest.len() != algorithm.digest_len() {
        return Err(RsaError::DigestLength {
            algorithm,
            expected: algorithm.digest_len(),
            actual: digest.len(),
        });
    }
    let prefix = algorithm.digest_info_prefix();
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

    #[test]
    fn sha256_digest_signature_equals_aws_lc_rs_message_signature() {
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
        let ours = sign_digest(&der, DigestAlgorithm::Sha256, digest.as_ref()).expect("sign");
        // PKCS#1 v1.5 is deterministic: the same key and message give the same bytes.
        assert_eq!(ours, expected);
    }

    #[test]
    fn sha1_digest_signature_verifies_as_rsa_sha1() {
        let (pair, der) = key();
        let message = b"prescription SignedInfo";
        let digest = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, message);
        let sig = sign_digest(&der, DigestAlgorithm::Sha1, digest.as_ref()).expect("sign");
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
            sign_digest(&der, DigestAlgorithm::Sha1, &[0; 32]),
            Err(RsaError::DigestLength {
                algorithm: DigestAlgorithm::Sha1,
                expected: 20,
                actual: 32
            })
        );
        assert_eq!(
            sign_digest(b"not a key", DigestAlgorithm::Sha256, &[0; 32]),
            Err(RsaError::InvalidKey)
        );
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .expect("ec key");
        assert_eq!(
            sign_digest(ec.as_ref(), DigestAlgorithm::Sha256, &[0; 32]),
            Err(RsaError::InvalidKey)
        );
        // Trailing bytes after the key are not silently ignored.
        let mut padded = der.clone();
        padded.push(0);
        assert_eq!(
            sign_digest(&padded, DigestAlgorithm::Sha256, &[0; 32]),
            Err(RsaError::InvalidKey)
        );
    }
}

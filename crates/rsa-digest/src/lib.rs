//! RSA PKCS#1 v1.5 signatures that aws-lc-rs cannot make, made by the same AWS-LC library.
//!
//! The phone's signing key is RSA-2048 because EPS verifies RSA PKCS#1 v1.5 signatures. Two
//! operations it needs are not in aws-lc-rs's safe API:
//!
//! * **a signature over a digest that was computed elsewhere, with SHA-1.** EPS still accepts
//!   (and most prescribing systems still send) `rsa-sha1` SignedInfo. aws-lc-rs signs with
//!   SHA-256/384/512 only. [`sign_digest`] signs a SHA-1 or SHA-256 digest.
//! * **the private-key operation on a PKCS#1 v1.5 signature block** that a PIV middleware
//!   (OpenSC, Windows, macOS) has already padded (PIV GENERAL AUTHENTICATE, algorithm 07).
//!   [`sign_pkcs1_block`] accepts only a well-formed *signature* block (type 1), never an
//!   arbitrary integer: an RSA card key that computed `m^d` for any `m` would decrypt for
//!   whoever can reach the card.
//!
//! Both end in AWS-LC's `RSA_sign_raw` with PKCS#1 v1.5 type-1 padding, which is constant-time
//! and blinded like every other RSA private operation in aws-lc-rs; no RSA arithmetic is
//! written here. The crate is the only place in the workspace allowed `unsafe`, confined to
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
    /// The input to [`sign_pkcs1_block`] is not a PKCS#1 v1.5 signature block for this key.
    #[error("not a PKCS#1 v1.5 signature block for this key: {0}")]
    NotASignatureBlock(&'static str),
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

/// The private-key operation on a complete PKCS#1 v1.5 signature block, as a PIV card performs
/// it for GENERAL AUTHENTICATE with algorithm 07.
///
/// The block must be exactly as long as the modulus and shaped `00 01 FF…FF 00 T` with at least
/// eight `FF` bytes (RFC 8017 §9.2). `T` is usually a `DigestInfo`, but TLS 1.0/1.1 client
/// authentication signs a bare 36-byte MD5‖SHA-1, so `T` is not parsed. Anything else, in
/// particular an encryption block (type 2) or a bare integer, is refused.
pub fn sign_pkcs1_block(pkcs8_der: &[u8], block: &[u8]) -> Result<Vec<u8>, RsaError> {
    let key = ffi::RsaPrivateKey::from_pkcs8(pkcs8_der)?;
    if block.len() != key.modulus_len() {
        return Err(RsaError::NotASignatureBlock(
            "its length differs from the modulus length",
        ));
    }
    let payload = signature_block_payload(block)?;
    key.sign_padded_pkcs1(payload)
}

/// `T` from `00 01 FF…FF 00 T`, or why the block is not a signature block.
fn signature_block_payload(block: &[u8]) -> Result<&[u8], RsaError> {
    let rest = match block {
        [0x00, 0x01, rest @ ..] => rest,
        [0x00, 0x02, ..] => {
            return Err(RsaError::NotASignatureBlock(
                "it is an encryption block (type 2); the card does not decrypt",
            ));
        }
        _ => return Err(RsaError::NotASignatureBlock("it does not start 00 01")),
    };
    let padding = rest.iter().take_while(|&&b| b == 0xFF).count();
    if padding < 8 {
        return Err(RsaError::NotASignatureBlock(
            "fewer than eight FF padding bytes",
        ));
    }
    match rest.get(padding..) {
        Some([0x00, payload @ ..]) if !payload.is_empty() => Ok(payload),
        _ => Err(RsaError::NotASignatureBlock(
            "the padding is not followed by 00 and a payload",
        )),
    }
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

    fn type1_block(payload: &[u8], len: usize) -> Vec<u8> {
        let mut block = vec![0x00, 0x01];
        block.resize(len - payload.len() - 1, 0xFF);
        block.push(0x00);
        block.extend_from_slice(payload);
        block
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
    fn signature_block_gives_the_same_signature_as_the_digest() {
        let (_, der) = key();
        let digest = digest::digest(&digest::SHA256, b"ssh session id");
        let mut digest_info = DigestAlgorithm::Sha256.digest_info_prefix().to_vec();
        digest_info.extend_from_slice(digest.as_ref());
        let block = type1_block(&digest_info, 256);
        assert_eq!(
            sign_pkcs1_block(&der, &block).expect("block"),
            sign_digest(&der, DigestAlgorithm::Sha256, digest.as_ref()).expect("digest")
        );
    }

    #[test]
    fn a_bare_tls_md5_sha1_payload_is_signed() {
        let (_, der) = key();
        let block = type1_block(&[0x5A; 36], 256);
        assert_eq!(sign_pkcs1_block(&der, &block).expect("block").len(), 256);
    }

    #[test]
    fn anything_but_a_signature_block_is_refused() {
        let (_, der) = key();
        let mut encryption = vec![0x00, 0x02];
        encryption.resize(200, 0x11);
        encryption.push(0x00);
        encryption.resize(256, 0x22);
        let short_padding = {
            let mut b = vec![0x00, 0x01, 0xFF, 0xFF, 0xFF, 0x00];
            b.resize(256, 0x33);
            b
        };
        let no_separator = vec![0xFF; 256]
            .into_iter()
            .enumerate()
            .map(|(i, b)| match i {
                0 => 0x00,
                1 => 0x01,
                _ => b,
            });
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("encryption block", encryption),
            ("short padding", short_padding),
            ("no separator", no_separator.collect()),
            ("bare integer", vec![0x42; 256]),
            ("too short", type1_block(&[1, 2, 3], 128)),
            ("empty payload", {
                let mut b = vec![0x00, 0x01];
                b.resize(255, 0xFF);
                b.push(0x00);
                b
            }),
        ];
        for (name, block) in cases {
            assert!(
                matches!(
                    sign_pkcs1_block(&der, &block),
                    Err(RsaError::NotASignatureBlock(_))
                ),
                "{name} was not refused"
            );
        }
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

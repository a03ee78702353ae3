//! PKCE (RFC 7636) with the S256 method only: checks the challenge a client sends to the
//! authorization endpoint and, at the token endpoint, the verifier against it.
//!
//! `plain` is not offered: it protects nothing once the authorization request is observed.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

/// Length of an S256 challenge: 32 bytes of SHA-256 in base64url without padding.
const S256_CHALLENGE_LEN: usize = 43;

/// RFC 7636 S256: whether `BASE64URL(SHA256(ASCII(verifier)))` equals `challenge`, compared in
/// constant time. A verifier that is not 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636
/// §4.1) never matches.
#[must_use]
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !valid_verifier(verifier) {
        return false;
    }
    let hash = digest::digest(&digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(hash.as_ref());
    // Lengths are public (always 43 for a computed value); only the content is compared in
    // constant time.
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// Whether `challenge` can be an S256 challenge: 43 characters of base64url that decode to 32
/// bytes (so the last character's unused bits are zero, as a real SHA-256 encoding has them).
#[must_use]
pub fn valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == S256_CHALLENGE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert!(verify_s256(VERIFIER, CHALLENGE));
        assert!(valid_s256_challenge(CHALLENGE));
    }

    #[test]
    fn wrong_verifier_or_challenge() {
        let wrong = VERIFIER.replace('d', "e");
        assert!(!verify_s256(&wrong, CHALLENGE));
        assert!(!verify_s256(VERIFIER, &CHALLENGE.replace('E', "F")));
        assert!(!verify_s256(VERIFIER, ""));
        assert!(!verify_s256(VERIFIER, &format!("{CHALLENGE}=")));
        // `plain` must not work: the verifier as its own challenge.
        assert!(!verify_s256(VERIFIER, VERIFIER));
    }

    #[test]
    fn verifier_length_and_charset() {
        // 42 characters: too short even when the challenge is computed from it.
        let short = &VERIFIER[..42];
        let short_challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, short.as_bytes()).as_ref());
        assert!(!verify_s256(short, &short_challenge));

        let ok_long = "a".repeat(128);
        let c =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, ok_long.as_bytes()).as_ref());
        assert!(verify_s256(&ok_long, &c));
        let too_long = "a".repeat(129);
        let c =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, too_long.as_bytes()).as_ref());
        assert!(!verify_s256(&too_long, &c));

        let bad_chars = format!("{}+/", &VERIFIER[..41]);
        let c =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, bad_chars.as_bytes()).as_ref());
        assert!(!verify_s256(&bad_chars, &c));

        let unreserved = format!("{}.~", &VERIFIER[..41]);
        let c =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, unreserved.as_bytes()).as_ref());
        assert!(verify_s256(&unreserved, &c));
    }

    #[test]
    fn challenge_shape() {
        assert!(!valid_s256_challenge(&CHALLENGE[..42]));
        assert!(!valid_s256_challenge(&format!("{CHALLENGE}A")));
        assert!(!valid_s256_challenge(&format!("{}=", &CHALLENGE[..42])));
        assert!(!valid_s256_challenge(&CHALLENGE.replace('-', "+")));
        // Last character with non-zero unused bits ('N' = 0b001101): not a SHA-256 encoding.
        assert!(!valid_s256_challenge(&format!("{}N", &CHALLENGE[..42])));
        assert!(!valid_s256_challenge(""));
    }
}

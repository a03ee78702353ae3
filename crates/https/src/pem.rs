//! Writing PEM (RFC 7468): a label, the DER in base64 on 64-column lines, LF line endings.
//!
//! Reading is left to `rustls-pki-types` ([`rustls_pki_types::pem::PemObject`]), which has no
//! writer; this is the one the phone uses for the root CA it stores at enrolment and the agent for
//! its workstation key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// 48 bytes of DER are exactly one 64-column line of base64, with no padding.
const BYTES_PER_LINE: usize = 48;

/// `der` as one PEM block labelled `label` (for example `CERTIFICATE` or `PRIVATE KEY`).
///
/// The text is built in a buffer sized up front, line by line, so that when it holds a private
/// key (the caller wraps it in `Zeroizing`) no reallocation or intermediate base64 string leaves
/// a copy of the key behind in freed memory.
pub fn encode(label: &str, der: &[u8]) -> String {
    // An upper bound: both marker lines, and every line of base64 as if full (64 + LF).
    let lines = der.len().div_ceil(BYTES_PER_LINE);
    let capacity = 2 * (label.len() + "-----BEGIN -----\n".len()) + lines * 65;
    let mut out = String::with_capacity(capacity);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in der.chunks(BYTES_PER_LINE) {
        STANDARD.encode_string(line, &mut out);
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn lines_are_64_columns_and_the_block_reads_back() {
        for len in [0usize, 1, 47, 48, 49, 95, 96, 97, 1000] {
            let der: Vec<u8> = (0..=255u8).cycle().take(len).collect();
            let pem = encode("CERTIFICATE", &der);
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
            assert!(pem.ends_with("\n-----END CERTIFICATE-----\n"), "{pem}");
            let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            assert!(body.iter().all(|l| l.len() <= 64), "{pem}");
            assert!(body.iter().rev().skip(1).all(|l| l.len() == 64), "{pem}");
            assert_eq!(
                body.concat(),
                STANDARD.encode(&der),
                "the same base64 as in one piece"
            );
            if len > 0 {
                let back = CertificateDer::from_pem_slice(pem.as_bytes()).expect("reads back");
                assert_eq!(back.as_ref(), der.as_slice());
            }
        }
    }
}

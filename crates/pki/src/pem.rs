//! Minimal PEM (RFC 7468) encoding and decoding for certificates, CSRs and CRLs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::PkiError;

/// Encodes `der` as PEM with the given label (e.g. `"CERTIFICATE"`), 64-column lines, LF endings.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for (i, c) in b64.chars().enumerate() {
        out.push(c);
        if i % 64 == 63 {
            out.push('\n');
        }
    }
    if !b64.len().is_multiple_of(64) {
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block in `pem`, whatever its label. Text around the block is ignored.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    parse_first(pem).map(|(_, der)| der)
}

/// Decodes the first PEM block, returning its label and contents.
pub(crate) fn parse_first(pem: &str) -> Result<(&str, Vec<u8>), PkiError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let start = pem
        .find(BEGIN)
        .ok_or_else(|| PkiError::Pem("no \"-----BEGIN\" line".into()))?;
    let after_begin = &pem[start + BEGIN.len()..];
    let label_end = after_begin
        .find(DASHES)
        .ok_or_else(|| PkiError::Pem("unterminated BEGIN line".into()))?;
    let label = &after_begin[..label_end];
    if label.contains('\n') {
        return Err(PkiError::Pem("unterminated BEGIN line".into()));
    }
    let body_and_rest = &after_begin[label_end + DASHES.len()..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_rest
        .find(&end_marker)
        .ok_or_else(|| PkiError::Pem(format!("missing \"{end_marker}\"")))?;
    let body: String = body_and_rest[..body_end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|e| PkiError::Pem(format!("bad base64 in {label} block: {e}")))?;
    if der.is_empty() {
        return Err(PkiError::Pem(format!("empty {label} block")));
    }
    Ok((label, der))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_line_length() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = der_to_pem("CERTIFICATE", &der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        assert_eq!(pem_to_der(&pem).unwrap(), der);
        // CRLF line endings and leading text are tolerated; only the first block is read.
        let messy = format!(
            "subject=CN=x\r\n{}{}",
            pem.replace('\n', "\r\n"),
            der_to_pem("X", b"other")
        );
        assert_eq!(parse_first(&messy).unwrap(), ("CERTIFICATE", der));
    }

    #[test]
    fn rejects_broken_pem() {
        for bad in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            "-----BEGIN CERTIFICATE-----\nA*AA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        ] {
            assert!(matches!(pem_to_der(bad), Err(PkiError::Pem(_))), "{bad:?}");
        }
    }
}

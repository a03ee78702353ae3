//! PEM (RFC 7468) for certificates, CSRs and CRLs: decoding through `rustls-pki-types`, the
//! workspace's one PEM reader, and the encoder it lacks.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::pem::{self, PemObject, SectionKind};

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

/// Decodes the first PEM block in `pem` whose label `rustls-pki-types` knows (`CERTIFICATE`,
/// `X509 CRL`, `CERTIFICATE REQUEST`, the private and public key labels). Text around the block,
/// and blocks with other labels, are skipped.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    parse_first(pem).map(|(_, der)| der)
}

/// Decodes the first PEM block with a known label, returning its kind and contents.
pub(crate) fn parse_first(pem: &str) -> Result<(SectionKind, Vec<u8>), PkiError> {
    let (kind, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Pem(describe(e)))?;
    if der.is_empty() {
        return Err(PkiError::Pem(format!("empty {} block", label(kind))));
    }
    Ok((kind, der))
}

/// The label of a PEM block of this kind, for messages.
pub(crate) fn label(kind: SectionKind) -> String {
    match kind {
        SectionKind::Certificate => "CERTIFICATE".into(),
        SectionKind::Crl => "X509 CRL".into(),
        SectionKind::Csr => "CERTIFICATE REQUEST".into(),
        SectionKind::PublicKey => "PUBLIC KEY".into(),
        SectionKind::PrivateKey => "PRIVATE KEY".into(),
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY".into(),
        SectionKind::EcPrivateKey => "EC PRIVATE KEY".into(),
        other => format!("{other:?}"),
    }
}

/// A sentence for a decoding error (the library's own shows marker lines as byte lists).
fn describe(err: pem::Error) -> String {
    match err {
        pem::Error::NoItemsFound => "no \"-----BEGIN\" line with a known label".into(),
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "missing \"-----END {}-----\"",
                String::from_utf8_lossy(&end_marker)
            )
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {:?}", String::from_utf8_lossy(&line))
        }
        pem::Error::Base64Decode(e) => format!("bad base64 in a PEM block: {e}"),
        other => other.to_string(),
    }
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
        assert_eq!(
            parse_first(&messy).unwrap(),
            (SectionKind::Certificate, der.clone())
        );
        // A block with a label rustls-pki-types does not know is skipped.
        let unknown_first = format!("{}{}", der_to_pem("X", b"other"), pem);
        assert_eq!(pem_to_der(&unknown_first).unwrap(), der);
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

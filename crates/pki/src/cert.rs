//! Issued certificates and the facts the server reads back out of stored certificates.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::OID_X509_SERIALNUMBER;
use x509_parser::prelude::FromDer;

use crate::error::PkiError;
use crate::fingerprint::Fingerprint;
use crate::pem::der_to_pem;

/// A certificate the CA has just issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The DER certificate.
    pub der: Vec<u8>,
    /// Serial number as lowercase hex without leading zero bytes (the same spelling as
    /// [`CertificateInfo::serial_hex`]).
    pub serial_hex: String,
    /// Start of validity, as encoded in the certificate (whole seconds).
    pub not_before: OffsetDateTime,
    /// End of validity, as encoded in the certificate (whole seconds).
    pub not_after: OffsetDateTime,
}

impl IssuedCertificate {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        der_to_pem("CERTIFICATE", &self.der)
    }

    /// SHA-256 fingerprint of the certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.der)
    }

    /// Reads the fields back from the encoded certificate so they match what relying parties
    /// see (times truncated to seconds, serial as encoded).
    pub(crate) fn from_der(der: Vec<u8>) -> Result<IssuedCertificate, PkiError> {
        let info = certificate_info(&der)?;
        Ok(IssuedCertificate {
            der,
            serial_hex: info.serial_hex,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }
}

/// What the server needs to know about a stored certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// DER SubjectPublicKeyInfo, for verifying signatures made with the certificate's key.
    pub spki_der: Vec<u8>,
    /// Serial number as lowercase hex without leading zero bytes.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The subject's serialNumber attribute (2.5.4.5): the person's UID in vsc certificates.
    pub subject_serial_number: Option<String>,
}

/// Parses a DER certificate. This does not verify it; it only reads it.
pub fn certificate_info(der: &[u8]) -> Result<CertificateInfo, PkiError> {
    let cert = parse_certificate(der)?;
    let subject_serial_number = cert
        .subject()
        .iter_by_oid(&OID_X509_SERIALNUMBER)
        .next()
        .map(|attr| {
            attr.as_str()
                .map(str::to_owned)
                .map_err(|_| PkiError::Certificate("subject serialNumber is not a string".into()))
        })
        .transpose()?;
    Ok(CertificateInfo {
        spki_der: cert.public_key().raw.to_vec(),
        serial_hex: serial_to_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        subject_serial_number,
    })
}

pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::Certificate(format!("not a DER X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Certificate(
            "trailing data after the certificate".into(),
        ));
    }
    Ok(cert)
}

/// Hex of the INTEGER's content bytes, with the sign-padding zero bytes removed so the same
/// serial always has one spelling.
pub(crate) fn serial_to_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

/// Parses a serial in the spellings people and tools use: any case, optional colons
/// (`openssl x509 -text` style), odd digit counts (`openssl crl -text` style).
pub(crate) fn serial_from_hex(s: &str) -> Result<Vec<u8>, PkiError> {
    let mut digits: String = s.trim().chars().filter(|&c| c != ':').collect();
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    let bytes = hex::decode(&digits)
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= 20)
        .ok_or_else(|| {
            PkiError::InvalidInput(format!(
                "{s:?} is not a certificate serial number (1 to 20 bytes of hex)"
            ))
        })?;
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serial_hex_spelling_is_canonical() {
        assert_eq!(serial_to_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_to_hex(&[0x0a, 0x00]), "0a00");
        assert_eq!(serial_to_hex(&[0x00]), "00");
        assert_eq!(serial_to_hex(&[]), "");
        assert_eq!(serial_from_hex("8F:01").unwrap(), vec![0x8f, 0x01]);
        assert_eq!(serial_from_hex("A00").unwrap(), vec![0x0a, 0x00]);
        for bad in ["", "xyz", &"ab".repeat(21)] {
            assert!(serial_from_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_non_certificates() {
        assert!(matches!(
            certificate_info(b"not a cert"),
            Err(PkiError::Certificate(_))
        ));
    }
}

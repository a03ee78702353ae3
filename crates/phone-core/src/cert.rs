//! What the app needs from an X.509 certificate the server issued: its serial, its expiry and
//! whether it is for a given public key (SubjectPublicKeyInfo). A small DER walk with yasna
//! over the TBSCertificate (RFC 5280 §4.1); the signature is not checked here (the enrolment
//! checks the chain's root with [`crate::link::check_root_ca`], and the server is the issuer).

use yasna::{ASN1Error, ASN1ErrorKind, Tag};

use crate::link::pem_certificates;

/// A certificate cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The PEM holds no `CERTIFICATE` block.
    #[error("the server sent no certificate")]
    NoCertificate,
    /// The DER is not an X.509 certificate.
    #[error("a certificate from the server does not parse")]
    Malformed,
}

/// Serial, expiry and public key of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The serial number, lowercase hex, without DER's leading zero byte.
    pub serial: String,
    /// The end of the validity period.
    pub not_after: time::OffsetDateTime,
    /// The SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

impl CertificateFacts {
    /// Whether the certificate is for the key whose SubjectPublicKeyInfo (DER) is `spki_der`.
    pub fn is_for_key(&self, spki_der: &[u8]) -> bool {
        self.spki == spki_der
    }
}

fn malformed() -> ASN1Error {
    ASN1Error::new(ASN1ErrorKind::Invalid)
}

/// A UTCTime or GeneralizedTime (RFC 5280 §4.1.2.5).
fn read_time(r: yasna::BERReader<'_, '_>) -> yasna::ASN1Result<time::OffsetDateTime> {
    let v = r.read_tagged_der()?;
    let t = if v.tag() == yasna::tags::TAG_UTCTIME {
        yasna::models::UTCTime::parse(v.value()).map(|t| *t.datetime())
    } else if v.tag() == yasna::tags::TAG_GENERALIZEDTIME {
        yasna::models::GeneralizedTime::parse(v.value()).map(|t| *t.datetime())
    } else {
        None
    };
    t.ok_or_else(malformed)
}

/// Reads every element left in a SEQUENCE without looking inside.
fn skip_rest(r: &mut yasna::BERReaderSeq<'_, '_>) -> yasna::ASN1Result<()> {
    while r.read_optional(|r| r.read_der().map(|_| ()))?.is_some() {}
    Ok(())
}

/// The facts of one DER certificate.
pub fn facts_of_der(der: &[u8]) -> Result<CertificateFacts, CertError> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let facts = r.next().read_sequence(|r| {
                // version [0] EXPLICIT (absent for v1)
                r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_i64()))?;
                let serial = r.next().read_tagged_der()?;
                if serial.tag() != yasna::tags::TAG_INTEGER || serial.value().is_empty() {
                    return Err(malformed());
                }
                let mut serial = serial.value();
                if serial.len() > 1 && serial[0] == 0 {
                    serial = &serial[1..];
                }
                r.next().read_der()?; // signature algorithm
                r.next().read_der()?; // issuer
                let not_after = r.next().read_sequence(|r| {
                    read_time(r.next())?;
                    read_time(r.next())
                })?;
                r.next().read_der()?; // subject
                let spki = r.next().read_der()?;
                skip_rest(r)?; // unique ids, extensions
                Ok(CertificateFacts {
                    serial: hex::encode(serial),
                    not_after,
                    spki,
                })
            })?;
            skip_rest(r)?; // signature algorithm, signature
            Ok(facts)
        })
    })
    .map_err(|_| CertError::Malformed)
}

/// The facts of the first certificate in a PEM text.
pub fn certificate_facts(pem: &str) -> Result<CertificateFacts, CertError> {
    let der = pem_certificates(pem)
        .into_iter()
        .next()
        .ok_or(CertError::NoCertificate)?;
    facts_of_der(&der)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// `openssl req -x509 -set_serial 0x00c0ffee01 -days 365` (notAfter a UTCTime).
    const UTC_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBaTCCARCgAwIBAgIFAMD/7gEwCgYIKoZIzj0EAwIwEjEQMA4GA1UEAwwHRHIg
VGVzdDAeFw0yNjEyMDYxMDMxMDJaFw0yNzEyMDYxMDMxMDJaMBIxEDAOBgNVBAMM
B0RyIFRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQszlzBnEo3RDtckawC
1smMga137PB6wuwz/7f9ElnsDW6jsLX7pN5IPNJmNdGseq2sxuH1P9K9x44KjU3F
Vav0o1MwUTAdBgNVHQ4EFgQUPg3Agxu3919XaNZlpaGqxPzPV3kwHwYDVR0jBBgw
FoAUPg3Agxu3919XaNZlpaGqxPzPV3kwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjO
PQQDAgNHADBEAiAqwgKx6fX8ceUjOO36KClnE9QGxJ4TC/pI/wh+m2gmmQIgOIau
vQrA/jk23YC8DMt23Q7ZlS39J7iUZDsKpSF2Zvs=
-----END CERTIFICATE-----
";

    /// The same key, serial 5, `-days 20000` (notAfter a GeneralizedTime, 2081).
    const GENERALIZED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBaDCCAQ6gAwIBAgIBBTAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAdEciBMYXRl
MCAXDTI2MTIwNjEwMzEwNFoYDzIwODEwOTA4MTAzMTA0WjASMRAwDgYDVQQDDAdE
ciBMYXRlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELM5cwZxKN0Q7XJGsAtbJ
jIGtd+zwesLsM/+3/RJZ7A1uo7C1+6TeSDzSZjXRrHqtrMbh9T/SvceOCo1NxVWr
9KNTMFEwHQYDVR0OBBYEFD4NwIMbt/dfV2jWZaWhqsT8z1d5MB8GA1UdIwQYMBaA
FD4NwIMbt/dfV2jWZaWhqsT8z1d5MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0E
AwIDSAAwRQIhAMXyKa0eIXsoT0EdFx6veD9bq16aHIe50Y0MCCUOD2A2AiBH344p
NURshOkDUqjU3pY0V1vdEzbaA8uXHXs7fMZppw==
-----END CERTIFICATE-----
";

    /// The key's SubjectPublicKeyInfo (`openssl pkey -pubout -outform DER`).
    const SPKI_HEX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200042cce5cc19c4a37443b5c91ac02d6c98c81ad77ecf07ac2ec33ffb7fd1259ec0d6ea3b0b5fba4de483cd26635d1ac7aadacc6e1f53fd2bdc78e0a8d4dc555abf4";

    #[test]
    fn serial_expiry_and_key() {
        let spki = hex::decode(SPKI_HEX).expect("hex");
        let f = certificate_facts(UTC_CERT).expect("parses");
        assert_eq!(f.serial, "c0ffee01");
        assert_eq!(
            f.not_after,
            time::macros::datetime!(2027-12-06 10:31:02 UTC)
        );
        assert!(f.is_for_key(&spki));
        let mut other = spki.clone();
        *other.last_mut().expect("not empty") ^= 1;
        assert!(!f.is_for_key(&other));

        let g = certificate_facts(&format!("junk\n{GENERALIZED_CERT}{UTC_CERT}")).expect("parses");
        assert_eq!(g.serial, "05");
        assert_eq!(
            g.not_after,
            time::macros::datetime!(2081-09-08 10:31:04 UTC)
        );
        assert!(g.is_for_key(&spki));
    }

    #[test]
    fn not_certificates() {
        assert_eq!(certificate_facts(""), Err(CertError::NoCertificate));
        let der = pem_certificates(UTC_CERT).remove(0);
        assert_eq!(
            facts_of_der(&der[..der.len() - 1]),
            Err(CertError::Malformed)
        );
        let mut extra = der.clone();
        extra.push(0);
        assert_eq!(facts_of_der(&extra), Err(CertError::Malformed));
        assert_eq!(facts_of_der(b"\x30\x00"), Err(CertError::Malformed));
        // an SPKI is a SEQUENCE, but not a certificate
        assert_eq!(
            facts_of_der(&hex::decode(SPKI_HEX).expect("hex")),
            Err(CertError::Malformed)
        );
    }
}

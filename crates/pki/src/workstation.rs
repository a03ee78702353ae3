//! Certificates for registered workstations: the identity agent's own key (ECDSA P-256,
//! generated on the workstation), certified by the issuing CA as `CN=<workstation name>,
//! O=<organisation ODS code>` with EKU clientAuth.
//!
//! A child module of [`crate::ca`] so that it signs with the issuing CA's key without that key
//! leaving the `ca` module.

use rcgen::{CrlDistributionPoint, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

use super::{CertificateAuthority, aia_extension, check_url, checked_text, dn, leaf_params};
use crate::cert::IssuedCertificate;
use crate::csr::{KeyKind, ValidatedCsr};
use crate::error::PkiError;

/// How long a workstation certificate is valid (the registry, checked on every use, is what
/// revokes it earlier).
pub const WORKSTATION_LIFETIME: Duration = Duration::days(2 * 365);

impl CertificateAuthority {
    /// Issues a workstation certificate for the ECDSA P-256 key in a validated CSR.
    ///
    /// Subject `CN=<name>, O=<organisation>` (the organisation's ODS code); key usage
    /// digitalSignature; EKU clientAuth only; CRL distribution point `crl_url`; Authority
    /// Information Access naming the OCSP responder `ocsp_url`; validity
    /// `now - 5 min .. now + validity`, capped at the issuing CA's expiry. Only the CSR's public
    /// key is used.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_workstation_certificate(
        &self,
        csr: &ValidatedCsr,
        name: &str,
        organisation: &str,
        validity: Duration,
        crl_url: &str,
        ocsp_url: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, PkiError> {
        if csr.key_kind != KeyKind::EcdsaP256 {
            return Err(PkiError::InvalidInput(
                "a workstation key must be ECDSA P-256".into(),
            ));
        }
        let name = checked_text("workstation name", name)?;
        let organisation = checked_text("organisation", organisation)?;
        check_url("CRL URL", crl_url)?;
        check_url("OCSP URL", ocsp_url)?;
        let mut params = leaf_params(now, validity, self.issuing.not_after)?;
        params.distinguished_name = dn([
            (DnType::OrganizationName, organisation.into()),
            (DnType::CommonName, name.into()),
        ]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![crl_url.to_owned()],
        }];
        params.custom_extensions = vec![aia_extension(ocsp_url)];
        let cert = params.signed_by(csr.public_key(), &self.issuing.issuer)?;
        IssuedCertificate::from_der(cert.der().to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::csr::validate_csr;
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
    use x509_parser::prelude::*;

    #[test]
    fn workstation_certificates_name_the_workstation_and_its_organisation() {
        let now = ::time::macros::datetime!(2025-06-01 12:00:00 UTC);
        let ca = CertificateAuthority::create("Test", now).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let csr = validate_csr(csr.der(), KeyKind::EcdsaP256).unwrap();
        let issued = ca
            .issue_workstation_certificate(
                &csr,
                "WARD-7-PC-03",
                "RX1",
                WORKSTATION_LIFETIME,
                "https://vsc.example/ca/issuing.crl",
                "https://vsc.example/ca/ocsp",
                now,
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        let subject = cert.subject().to_string();
        assert!(subject.contains("CN=WARD-7-PC-03"), "{subject}");
        assert!(subject.contains("O=RX1"), "{subject}");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.email_protection);
        assert_eq!(cert.public_key().raw, csr.spki_der.as_slice());
        assert!(
            ca.issue_workstation_certificate(
                &csr,
                "bad\nname",
                "RX1",
                WORKSTATION_LIFETIME,
                "https://x/c.crl",
                "https://x/ocsp",
                now
            )
            .is_err()
        );
    }
}

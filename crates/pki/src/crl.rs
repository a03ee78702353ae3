//! Revocation list entries. The CRLs themselves are signed by
//! [`CertificateAuthority::issuing_crl`](crate::CertificateAuthority::issuing_crl) and
//! [`CertificateAuthority::root_crl`](crate::CertificateAuthority::root_crl).

use time::OffsetDateTime;

use crate::cert::serial_from_hex;
use crate::error::PkiError;

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// No reason given; the CRL entry then carries no reason code at all, as RFC 5280 asks.
    #[default]
    Unspecified,
    /// The private key is known or suspected to be compromised (e.g. a lost phone).
    KeyCompromise,
    /// The CA's key is compromised (only meaningful in the root's CRL).
    CaCompromise,
    /// The person's name or relationship with the organisation changed.
    AffiliationChanged,
    /// A new certificate replaces this one (e.g. re-enrolment on a new phone).
    Superseded,
    /// The certificate is no longer needed (e.g. a leaver).
    CessationOfOperation,
    /// Temporarily suspended.
    CertificateHold,
    /// The privileges the certificate represented were withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The RFC 5280 reason code, for storage.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    /// Inverse of [`RevocationReason::code`]; `None` for codes vsc does not use.
    pub fn from_code(code: u8) -> Option<RevocationReason> {
        Some(match code {
            0 => RevocationReason::Unspecified,
            1 => RevocationReason::KeyCompromise,
            2 => RevocationReason::CaCompromise,
            3 => RevocationReason::AffiliationChanged,
            4 => RevocationReason::Superseded,
            5 => RevocationReason::CessationOfOperation,
            6 => RevocationReason::CertificateHold,
            9 => RevocationReason::PrivilegeWithdrawn,
            _ => return None,
        })
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

/// One revoked certificate, as listed in a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number in hex (any case; colons allowed), as in
    /// [`IssuedCertificate::serial_hex`](crate::IssuedCertificate::serial_hex).
    pub serial_hex: String,
    /// When the revocation took effect.
    pub revoked_at: OffsetDateTime,
    /// Why; [`RevocationReason::Unspecified`] omits the reason code from the entry.
    pub reason: RevocationReason,
    /// Since when the key is known or suspected to be compromised (RFC 5280 §5.3.2
    /// `invalidityDate`); `None` omits the extension.
    pub invalidity_date: Option<OffsetDateTime>,
}

impl RevokedEntry {
    /// An entry with reason [`RevocationReason::Unspecified`].
    pub fn new(serial_hex: impl Into<String>, revoked_at: OffsetDateTime) -> RevokedEntry {
        RevokedEntry {
            serial_hex: serial_hex.into(),
            revoked_at,
            reason: RevocationReason::Unspecified,
            invalidity_date: None,
        }
    }

    pub(crate) fn to_rcgen(&self) -> Result<rcgen::RevokedCertParams, PkiError> {
        Ok(rcgen::RevokedCertParams {
            serial_number: serial_from_hex(&self.serial_hex)?.into(),
            revocation_time: self.revoked_at,
            reason_code: Some(self.reason.to_rcgen()),
            invalidity_date: self.invalidity_date,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_round_trip() {
        for code in 0..=10u8 {
            if let Some(reason) = RevocationReason::from_code(code) {
                assert_eq!(reason.code(), code);
                assert_eq!(reason.to_rcgen() as u8, code);
            }
        }
        assert_eq!(RevocationReason::from_code(7), None);
    }
}

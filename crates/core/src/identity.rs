//! Identity checks an ID Checker records before a card may be issued: the evidence seen and the
//! level of assurance reached (the e-GIF levels CIM uses; a smartcard needs level 3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of identity evidence seen in person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceType {
    /// Passport (any country).
    Passport,
    /// Photocard driving licence.
    DrivingLicence,
    /// National identity card.
    NationalIdentityCard,
    /// Biometric residence permit.
    ResidencePermit,
    /// Birth or adoption certificate.
    BirthCertificate,
    /// Utility bill, bank statement or council-tax bill showing the address.
    ProofOfAddress,
    /// A letter from an employer or a professional body.
    EmploymentEvidence,
}

impl EvidenceType {
    /// Every kind, for help text.
    pub const ALL: [EvidenceType; 7] = [
        EvidenceType::Passport,
        EvidenceType::DrivingLicence,
        EvidenceType::NationalIdentityCard,
        EvidenceType::ResidencePermit,
        EvidenceType::BirthCertificate,
        EvidenceType::ProofOfAddress,
        EvidenceType::EmploymentEvidence,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceType::Passport => "passport",
            EvidenceType::DrivingLicence => "driving-licence",
            EvidenceType::NationalIdentityCard => "national-identity-card",
            EvidenceType::ResidencePermit => "residence-permit",
            EvidenceType::BirthCertificate => "birth-certificate",
            EvidenceType::ProofOfAddress => "proof-of-address",
            EvidenceType::EmploymentEvidence => "employment-evidence",
        }
    }

    /// Whether this is photographic identity, which level 3 requires.
    pub fn is_photographic(self) -> bool {
        matches!(
            self,
            EvidenceType::Passport
                | EvidenceType::DrivingLicence
                | EvidenceType::NationalIdentityCard
                | EvidenceType::ResidencePermit
        )
    }
}

impl FromStr for EvidenceType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        EvidenceType::ALL
            .into_iter()
            .find(|e| e.as_str() == t)
            .ok_or_else(|| {
                let all: Vec<&str> = EvidenceType::ALL.iter().map(|e| e.as_str()).collect();
                format!(
                    "'{s}' is not an evidence type: use one of {}",
                    all.join(", ")
                )
            })
    }
}

impl fmt::Display for EvidenceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The e-GIF level of identity assurance reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct IdentityLevel(u8);

impl IdentityLevel {
    /// The level a smartcard requires.
    pub const SMARTCARD: IdentityLevel = IdentityLevel(3);

    /// The level as a number (1 to 3).
    pub fn get(self) -> u8 {
        self.0
    }

    /// Checks that `evidence` can support this level: level 3 needs two documents, one of them
    /// photographic, as the CIM identity-check guidance asks.
    pub fn supported_by(self, evidence: &[EvidenceType]) -> Result<(), String> {
        if evidence.is_empty() {
            return Err("record at least one piece of evidence".into());
        }
        if self >= IdentityLevel::SMARTCARD {
            if evidence.len() < 2 {
                return Err("level 3 needs at least two pieces of evidence".into());
            }
            if !evidence.iter().any(|e| e.is_photographic()) {
                return Err("level 3 needs photographic evidence (passport, driving licence, identity card or residence permit)".into());
            }
        }
        Ok(())
    }
}

impl TryFrom<u8> for IdentityLevel {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        if (1..=3).contains(&v) {
            Ok(IdentityLevel(v))
        } else {
            Err(format!("identity level {v} does not exist: use 1, 2 or 3"))
        }
    }
}

impl From<IdentityLevel> for u8 {
    fn from(l: IdentityLevel) -> u8 {
        l.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_three_needs_two_documents_one_photographic() {
        let l3 = IdentityLevel::SMARTCARD;
        assert!(
            l3.supported_by(&[EvidenceType::Passport, EvidenceType::ProofOfAddress])
                .is_ok()
        );
        assert!(l3.supported_by(&[EvidenceType::Passport]).is_err());
        assert!(
            l3.supported_by(&[EvidenceType::BirthCertificate, EvidenceType::ProofOfAddress])
                .is_err()
        );
        assert!(IdentityLevel::try_from(4).is_err());
        assert!(IdentityLevel::try_from(0).is_err());
    }

    #[test]
    fn evidence_names_parse() {
        assert_eq!(
            "Driving licence".parse::<EvidenceType>(),
            Ok(EvidenceType::DrivingLicence)
        );
        assert!("library card".parse::<EvidenceType>().is_err());
    }
}

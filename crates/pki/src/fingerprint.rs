//! SHA-256 certificate fingerprints, in the two spellings vsc uses: plain lowercase hex for
//! URLs and storage, colon-separated uppercase pairs for showing to people.

use std::fmt;

use crate::error::PkiError;

/// SHA-256 fingerprint of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of the given DER bytes.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// Lowercase hex without separators, e.g. for URLs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Uppercase hex pairs separated by colons (`AB:CD:…`), as people are used to seeing.
    pub fn to_colon_hex(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        pairs.join(":")
    }

    /// Parses either spelling, case-insensitively; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Fingerprint, PkiError> {
        let s = s.trim();
        let compact: String = if s.contains(':') {
            let mut pairs = s.split(':');
            if !pairs.all(|pair| pair.len() == 2) {
                return Err(PkiError::Fingerprint);
            }
            s.chars().filter(|&c| c != ':').collect()
        } else {
            s.to_owned()
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(&compact, &mut out).map_err(|_| PkiError::Fingerprint)?;
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_colon_hex())
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_both_forms() {
        let fp = Fingerprint::of_der(b"abc");
        // SHA-256("abc") from FIPS 180-2.
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(fp.to_hex(), hex);
        let colon = fp.to_colon_hex();
        assert!(colon.starts_with("BA:78:16:BF:"));
        assert_eq!(colon.len(), 95);
        assert_eq!(fp.to_string(), colon);

        assert_eq!(Fingerprint::parse(hex).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&hex.to_uppercase()).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&colon).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&colon.to_lowercase()).unwrap(), fp);
        assert_eq!(format!(" {hex}\n").parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn rejects_malformed() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for bad in [
            "",
            &hex[..62],
            &format!("{hex}00"),
            &hex.replace('a', "g"),
            // Colons in the wrong places.
            &format!("{}:{}", &hex[..3], &hex[3..]),
            "BA:78:16",
            &format!("{hex}:"),
        ] {
            assert!(
                matches!(Fingerprint::parse(bad), Err(PkiError::Fingerprint)),
                "{bad:?}"
            );
        }
    }
}

//! One-time codes a person types or scans: card activations and unlock codes.
//!
//! A code is `IIIIIIII-SSSS-SSSS-SSSS-SSSS` in Crockford base32: an 8-character public id (40 bits)
//! that finds the record, and a 16-character secret (80 bits) that the server stores only as a
//! hash. Wrong guesses are counted against the id, so the secret cannot be searched online.

use std::fmt;

use zeroize::Zeroizing;

/// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud is not misheard.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ID_LEN: usize = 8;
const SECRET_LEN: usize = 16;

/// Why a typed code was refused before it reached the server's records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationCodeError {
    /// Wrong length once spaces and dashes are removed.
    #[error(
        "an activation code has 24 letters and digits (in groups like K7QF3M2A-9XH4-PR2D-W8TC-5N6B); this one has {0}"
    )]
    Length(usize),
    /// A character outside the alphabet.
    #[error("'{0}' cannot appear in an activation code")]
    Character(char),
}

/// A parsed or freshly generated code. The secret half is zeroized when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode {
    id: String,
    secret: Zeroizing<String>,
}

impl ActivationCode {
    /// Builds a code from 24 random bytes (the caller owns the randomness, so this stays pure).
    pub fn from_random(bytes: &[u8; ID_LEN + SECRET_LEN]) -> ActivationCode {
        let pick = |b: &u8| char::from(ALPHABET[usize::from(b & 31)]);
        ActivationCode {
            id: bytes[..ID_LEN].iter().map(pick).collect(),
            secret: Zeroizing::new(bytes[ID_LEN..].iter().map(pick).collect()),
        }
    }

    /// Parses what a person typed: case, spaces and dashes do not matter, and the look-alike
    /// letters O, I and L are read as 0, 1 and 1 as Crockford intends.
    pub fn parse(typed: &str) -> Result<ActivationCode, ActivationCodeError> {
        let mut chars = Zeroizing::new(String::with_capacity(ID_LEN + SECRET_LEN));
        for c in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                u if u.is_ascii() && ALPHABET.contains(&(u as u8)) => u,
                _ => return Err(ActivationCodeError::Character(c)),
            };
            chars.push(c);
        }
        if chars.len() != ID_LEN + SECRET_LEN {
            return Err(ActivationCodeError::Length(chars.len()));
        }
        Ok(ActivationCode {
            id: chars[..ID_LEN].to_owned(),
            secret: Zeroizing::new(chars[ID_LEN..].to_owned()),
        })
    }

    /// The public id that locates the record.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret half (to be hashed, never stored or logged).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The code as a person reads it, grouped.
    pub fn display(&self) -> Zeroizing<String> {
        let s = &self.secret;
        Zeroizing::new(format!(
            "{}-{}-{}-{}-{}",
            self.id,
            &s[0..4],
            &s[4..8],
            &s[8..12],
            &s[12..16]
        ))
    }
}

impl fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never reaches a log through Debug.
        f.debug_struct("ActivationCode")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parses_back() {
        let mut bytes = [0u8; 24];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        let code = ActivationCode::from_random(&bytes);
        let shown = code.display();
        assert_eq!(shown.len(), 8 + 1 + 4 * 4 + 3);
        assert_eq!(ActivationCode::parse(&shown), Ok(code.clone()));
        assert_eq!(
            ActivationCode::parse(&shown.to_lowercase().replace('-', " ")),
            Ok(code)
        );
    }

    #[test]
    fn look_alikes_are_forgiven_and_junk_is_named() {
        let a = ActivationCode::parse("OOOOOOOO-IIII-LLLL-0000-1111").expect("parses");
        assert_eq!(a.id(), "00000000");
        assert_eq!(a.secret(), "1111111100001111");
        assert_eq!(
            ActivationCode::parse("ABC"),
            Err(ActivationCodeError::Length(3))
        );
        assert_eq!(
            ActivationCode::parse("UUUUUUUU-0000-0000-0000-0000"),
            Err(ActivationCodeError::Character('U'))
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let a = ActivationCode::parse("00000000-ABCD-EFGH-JKMN-PQRS").expect("parses");
        assert!(!format!("{a:?}").contains("ABCD"));
    }
}

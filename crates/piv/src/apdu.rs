//! Command APDUs (ISO/IEC 7816-4 §5.1): parsing the four cases in short and extended form from
//! untrusted bytes, and the status words this card answers with.

/// Status words used by the card.
pub(crate) mod sw {
    /// Normal processing.
    pub const OK: u16 = 0x9000;
    /// `61 xx`: more response bytes are waiting for GET RESPONSE (the low byte is added).
    pub const MORE_DATA: u16 = 0x6100;
    /// `63 Cx`: verification failed, x tries left (the low nibble is added).
    pub const TRIES_LEFT: u16 = 0x63C0;
    /// Command chaining is not supported for this instruction.
    pub const CHAINING_NOT_SUPPORTED: u16 = 0x6884;
    /// Wrong length (Lc or Le), or a malformed APDU.
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Security status not satisfied (PIN not verified, or the phone declined).
    pub const SECURITY_STATUS: u16 = 0x6982;
    /// Authentication method (the PIN) blocked.
    pub const PIN_BLOCKED: u16 = 0x6983;
    /// Conditions of use not satisfied (for example, a host request is still pending).
    pub const CONDITIONS_OF_USE: u16 = 0x6985;
    /// Incorrect parameters in the data field.
    pub const WRONG_DATA: u16 = 0x6A80;
    /// Function not supported.
    pub const FUNCTION_NOT_SUPPORTED: u16 = 0x6A81;
    /// File, application or data object not found.
    pub const NOT_FOUND: u16 = 0x6A82;
    /// Incorrect parameters P1-P2.
    pub const WRONG_P1P2: u16 = 0x6A86;
    /// Referenced data (key or PIN reference) not found.
    pub const REFERENCE_NOT_FOUND: u16 = 0x6A88;
    /// Instruction code not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    /// No precise diagnosis.
    pub const UNKNOWN: u16 = 0x6F00;
}

/// A response APDU that carries only a status word.
pub(crate) fn status(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

/// A parsed command APDU, borrowing its data field from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The command data field (empty when Lc is absent).
    pub data: &'a [u8],
    /// Ne, the maximum number of response bytes expected; `None` when Le is absent.
    pub le: Option<usize>,
    /// Whether Lc/Le were in the extended (three- or two-byte) form.
    pub extended: bool,
}

impl<'a> Command<'a> {
    /// Parses a command APDU. `None` means the bytes are not a well-formed APDU (fewer than four
    /// bytes, or a body whose length bytes do not match the rest).
    pub(crate) fn parse(apdu: &'a [u8]) -> Option<Self> {
        let (&[cla, ins, p1, p2], body) = apdu.split_first_chunk::<4>()?;
        let mut cmd = Command {
            cla,
            ins,
            p1,
            p2,
            data: &[],
            le: None,
            extended: false,
        };
        match body {
            // case 1
            [] => {}
            // case 2, short: Le = 00 means 256
            [le] => cmd.le = Some(short_ne(*le)),
            // extended forms start with a 00 byte followed by at least two more
            [0, rest @ ..] => {
                cmd.extended = true;
                let (&[hi, lo], rest) = rest.split_first_chunk::<2>()?;
                let n = usize::from(u16::from_be_bytes([hi, lo]));
                if rest.is_empty() {
                    // case 2, extended: Le = 0000 means 65536
                    cmd.le = Some(if n == 0 { 65536 } else { n });
                } else {
                    if n == 0 {
                        return None;
                    }
                    let (data, rest) = rest.split_at_checked(n)?;
                    cmd.data = data;
                    match rest {
                        [] => {}
                        [hi, lo] => {
                            let ne = usize::from(u16::from_be_bytes([*hi, *lo]));
                            cmd.le = Some(if ne == 0 { 65536 } else { ne });
                        }
                        _ => return None,
                    }
                }
            }
            // cases 3 and 4, short
            [lc, rest @ ..] => {
                let (data, rest) = rest.split_at_checked(usize::from(*lc))?;
                cmd.data = data;
                match rest {
                    [] => {}
                    [le] => cmd.le = Some(short_ne(*le)),
                    _ => return None,
                }
            }
        }
        Some(cmd)
    }

    /// The number of response bytes the card may send in one response: Ne, or 256 when Le is
    /// absent (hosts such as yubico-piv-tool send case 3 APDUs and still expect data).
    pub(crate) fn ne(&self) -> usize {
        self.le.unwrap_or(256)
    }
}

fn short_ne(le: u8) -> usize {
    if le == 0 { 256 } else { usize::from(le) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Option<Command<'_>> {
        Command::parse(bytes)
    }

    #[test]
    fn short_cases() {
        let c1 = parse(&[0x00, 0x20, 0x00, 0x80]).expect("case 1");
        assert_eq!((c1.data, c1.le, c1.extended), (&[][..], None, false));

        let c2 = parse(&[0x00, 0xFD, 0x00, 0x00, 0x00]).expect("case 2");
        assert_eq!((c2.data, c2.le), (&[][..], Some(256)));
        assert_eq!(
            parse(&[0x00, 0xFD, 0x00, 0x00, 0x03]).map(|c| c.le),
            Some(Some(3))
        );

        let c3 = parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E]).expect("case 3");
        assert_eq!((c3.data, c3.le), (&[0x5C, 0x01, 0x7E][..], None));
        assert_eq!(c3.ne(), 256);

        let c4 = parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x08]).expect("case 4");
        assert_eq!((c4.data, c4.le), (&[0x5C, 0x01, 0x7E][..], Some(8)));
    }

    #[test]
    fn extended_cases() {
        let c2 = parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x00]).expect("case 2E");
        assert_eq!((c2.le, c2.extended), (Some(65536), true));

        let c3 = parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x01, 0xAA]).expect("case 3E");
        assert_eq!((c3.data, c3.le, c3.extended), (&[0xAA][..], None, true));

        let c4 = parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x01, 0xAA, 0x01, 0x00]).expect("4E");
        assert_eq!((c4.data, c4.le), (&[0xAA][..], Some(256)));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x00, 0xA4, 0x04]), None);
        // Lc says 3, two bytes follow
        assert_eq!(parse(&[0x00, 0xA4, 0x04, 0x00, 0x03, 0x01, 0x02]), None);
        // Lc says 1, three bytes follow
        assert_eq!(
            parse(&[0x00, 0xA4, 0x04, 0x00, 0x01, 0x01, 0x02, 0x03]),
            None
        );
        // a lone 00 after a zero byte: neither short nor extended
        assert_eq!(parse(&[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00]), None);
        // extended Lc of zero with data following
        assert_eq!(
            parse(&[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01]),
            None
        );
        // extended Lc = 2 with three bytes following
        assert_eq!(parse(&[0, 0xA4, 4, 0, 0, 0, 2, 1, 2, 3]), None);
    }
}

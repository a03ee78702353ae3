//! The PIV data objects this card holds (SP 800-73-4 Part 1 §3 and Appendix A), built once from
//! the [`CardConfig`] as the exact bytes GET DATA returns, and the application property template
//! that SELECT returns.
//!
//! | object | tag | content here |
//! |---|---|---|
//! | Discovery | `7E` | the PIV AID and a PIN usage policy of "PIV PIN only" |
//! | Card Capability Container | `5FC107` | a CCC with a card identifier derived from the GUID |
//! | CHUID | `5FC102` | the non-federal FASC-N (agency 9999), the GUID, expiry `99991231`, an empty signature |
//! | X.509 certificate for PIV authentication | `5FC105` | slot 9A, uncompressed |
//! | X.509 certificate for digital signature | `5FC10A` | slot 9C, uncompressed |
//! | Printed Information | `5FC109` | holder name and organisation; readable only after VERIFY |
//! | Key History | `5FC10C` | no retired keys |
//!
//! Every other object (card authentication certificate, key management certificate, security
//! object, biometrics, retired keys, Yubico's proprietary objects) is absent.

use crate::tlv;
use crate::{CardConfig, PIV_AID};

/// A data object tag as sent in GET DATA's `5C` list.
pub(crate) mod tag {
    pub const DISCOVERY: u32 = 0x7E;
    pub const CHUID: u32 = 0x5F_C1_02;
    pub const AUTH_CERT: u32 = 0x5F_C1_05;
    pub const CCC: u32 = 0x5F_C1_07;
    pub const PRINTED_INFO: u32 = 0x5F_C1_09;
    pub const SIGN_CERT: u32 = 0x5F_C1_0A;
    pub const KEY_HISTORY: u32 = 0x5F_C1_0C;
}

/// The label SELECT reports for the application.
pub(crate) const APPLICATION_LABEL: &[u8] = b"vsc virtual card";

/// Expiry written into the CHUID (YYYYMMDD): the card object does not know the card's real
/// expiry, and the certificates carry their own; this is the conventional "no expiry" value.
const CHUID_EXPIRY: &[u8; 8] = b"99991231";
/// The same in the Printed Information format (YYYYMMMDD).
const PRINTED_EXPIRY: &[u8; 9] = b"9999DEC31";

/// The objects of one card, encoded.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    /// The SELECT response (application property template).
    pub fci: Vec<u8>,
    discovery: Vec<u8>,
    ccc: Vec<u8>,
    chuid: Vec<u8>,
    key_history: Vec<u8>,
    auth_cert: Option<Vec<u8>>,
    sign_cert: Option<Vec<u8>>,
    printed_info: Vec<u8>,
}

/// What GET DATA finds for a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    /// Readable by anyone.
    Public(&'a [u8]),
    /// Readable only once the PIN has been verified.
    PinProtected(&'a [u8]),
    /// Not on this card.
    Absent,
}

impl Objects {
    /// Encodes every object for `config`.
    pub(crate) fn new(config: &CardConfig) -> Self {
        Objects {
            fci: fci(),
            discovery: discovery(),
            ccc: ccc(&config.guid),
            chuid: chuid(&config.guid),
            key_history: key_history(),
            auth_cert: certificate(&config.auth_certificate),
            sign_cert: certificate(&config.sign_certificate),
            printed_info: printed_info(config),
        }
    }

    /// Looks up a data object by tag.
    pub(crate) fn get<'a>(&'a self, tag: u32) -> Lookup<'a> {
        let optional = |object: &'a Option<Vec<u8>>| match object {
            Some(bytes) => Lookup::Public(bytes),
            None => Lookup::Absent,
        };
        match tag {
            tag::DISCOVERY => Lookup::Public(&self.discovery),
            tag::CCC => Lookup::Public(&self.ccc),
            tag::CHUID => Lookup::Public(&self.chuid),
            tag::KEY_HISTORY => Lookup::Public(&self.key_history),
            tag::AUTH_CERT => optional(&self.auth_cert),
            tag::SIGN_CERT => optional(&self.sign_cert),
            tag::PRINTED_INFO => Lookup::PinProtected(&self.printed_info),
            _ => Lookup::Absent,
        }
    }
}

/// Application property template (SP 800-73-4 Part 1 Table 3):
/// `61 { 4F PIX, 79 { 4F NIST RID }, 50 label, AC { 80 alg.. 06 00 } }`.
fn fci() -> Vec<u8> {
    let mut body = Vec::new();
    // the PIX: the AID without the 5-byte RID (OpenSC accepts this or the full AID)
    tlv::put(&mut body, &[0x4F], PIV_AID.get(5..).unwrap_or_default());
    // coexistent tag allocation authority: the NIST RID
    let rid = tlv::wrap(&[0x4F], PIV_AID.get(..5).unwrap_or_default());
    tlv::put(&mut body, &[0x79], &rid);
    tlv::put(&mut body, &[0x50], APPLICATION_LABEL);
    // cryptographic algorithms supported: 3DES (the 9B challenge), RSA 2048, ECC P-256,
    // then the object identifier element, whose value is 00
    let mut algs = Vec::new();
    for id in [0x03, 0x07, 0x11] {
        tlv::put(&mut algs, &[0x80], &[id]);
    }
    tlv::put(&mut algs, &[0x06], &[0x00]);
    tlv::put(&mut body, &[0xAC], &algs);
    tlv::wrap(&[0x61], &body)
}

/// Discovery object (Table 18): the AID and the PIN usage policy `40 00` (PIV Card Application
/// PIN only; no global PIN, no OCC).
fn discovery() -> Vec<u8> {
    let mut body = tlv::wrap(&[0x4F], PIV_AID);
    tlv::put(&mut body, &[0x5F, 0x2F], &[0x40, 0x00]);
    tlv::wrap(&[0x7E], &body)
}

/// Card Capability Container (Table 8). The card identifier is the GSC-IS RID, manufacturer
/// `FF` (unassigned), card type `02`, and 14 bytes of the GUID.
fn ccc(guid: &[u8; 16]) -> Vec<u8> {
    let mut card_id = vec![0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02];
    card_id.extend_from_slice(guid.get(..14).unwrap_or_default());
    let mut body = tlv::wrap(&[0xF0], &card_id);
    tlv::put(&mut body, &[0xF1], &[0x21]); // capability container version
    tlv::put(&mut body, &[0xF2], &[0x21]); // capability grammar version
    tlv::put(&mut body, &[0xF3], &[]); // applications CardURL
    tlv::put(&mut body, &[0xF4], &[0x00]); // PKCS#15: not present
    tlv::put(&mut body, &[0xF5], &[0x10]); // registered data model number
    for tag in [0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE] {
        tlv::put(&mut body, &[tag], &[]);
    }
    tlv::wrap(&[0x53], &body)
}

/// CHUID (Table 9): FASC-N, GUID, expiry, an empty issuer signature and the error detection
/// code. The signature is empty because nothing verifies it: the certificates carry the trust.
fn chuid(guid: &[u8; 16]) -> Vec<u8> {
    let mut body = tlv::wrap(&[0x30], &fasc_n());
    tlv::put(&mut body, &[0x34], guid);
    tlv::put(&mut body, &[0x35], CHUID_EXPIRY);
    tlv::put(&mut body, &[0x3E], &[]);
    tlv::put(&mut body, &[0xFE], &[]);
    tlv::wrap(&[0x53], &body)
}

/// Key History (Table 19): no retired keys on or off the card.
fn key_history() -> Vec<u8> {
    let mut body = tlv::wrap(&[0xC1], &[0x00]);
    tlv::put(&mut body, &[0xC2], &[0x00]);
    tlv::put(&mut body, &[0xFE], &[]);
    tlv::wrap(&[0x53], &body)
}

/// A certificate object (Table 10): `53 { 70 DER, 71 01 00 (uncompressed), FE 00 }`; `None`
/// when there is no certificate.
fn certificate(der: &[u8]) -> Option<Vec<u8>> {
    if der.is_empty() {
        return None;
    }
    let mut body = tlv::wrap(&[0x70], der);
    tlv::put(&mut body, &[0x71], &[0x00]);
    tlv::put(&mut body, &[0xFE], &[]);
    Some(tlv::wrap(&[0x53], &body))
}

/// Printed Information (Table 13), with each field cut to its maximum length on a character
/// boundary: name (125), employee affiliation (20, empty), expiry, card serial number (the
/// decimal serial), issuer (`vsc`), organisation affiliation lines 1 and 2 (20 each).
fn printed_info(config: &CardConfig) -> Vec<u8> {
    let mut body = Vec::new();
    tlv::put(
        &mut body,
        &[0x01],
        utf8_prefix(&config.holder_name, 125).as_bytes(),
    );
    tlv::put(&mut body, &[0x02], &[]);
    tlv::put(&mut body, &[0x04], PRINTED_EXPIRY);
    tlv::put(&mut body, &[0x05], config.serial.to_string().as_bytes());
    tlv::put(&mut body, &[0x06], b"vsc");
    let line1 = utf8_prefix(&config.organisation, 20);
    tlv::put(&mut body, &[0x07], line1.as_bytes());
    let rest = config.organisation.get(line1.len()..).unwrap_or_default();
    let line2 = utf8_prefix(rest.trim_start(), 20);
    if !line2.is_empty() {
        tlv::put(&mut body, &[0x08], line2.as_bytes());
    }
    tlv::put(&mut body, &[0xFE], &[]);
    tlv::wrap(&[0x53], &body)
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
fn utf8_prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The FASC-N of a card issued outside the US federal system (SP 800-73-4 Part 1 §3.1.2 and the
/// TIG SCEPACS): agency code 9999, system code 9999, credential number 999999, credential series
/// 0, individual credential issue 1, person identifier 0000000000, organisational category 3,
/// organisational identifier 0000, person/organisation association 1.
///
/// Each character is four BCD bits, least significant first, followed by an odd parity bit;
/// the string is framed by start (`B`), field separator (`D`) and end (`F`) sentinels and closed
/// by a longitudinal redundancy character.
pub(crate) fn fasc_n() -> [u8; 25] {
    const SS: u8 = 0xB;
    const FS: u8 = 0xD;
    const ES: u8 = 0xF;
    let digits = |s: &'static str| s.bytes().map(|b| b.wrapping_sub(b'0'));
    let mut chars: Vec<u8> = Vec::with_capacity(40);
    chars.push(SS);
    chars.extend(digits("9999"));
    chars.push(FS);
    chars.extend(digits("9999"));
    chars.push(FS);
    chars.extend(digits("999999"));
    chars.push(FS);
    chars.extend(digits("0"));
    chars.push(FS);
    chars.extend(digits("1"));
    chars.push(FS);
    chars.extend(digits("0000000000"));
    chars.extend(digits("3"));
    chars.extend(digits("0000"));
    chars.extend(digits("1"));
    chars.push(ES);
    let lrc = chars.iter().fold(0u8, |acc, c| acc ^ c);
    chars.push(lrc);

    let mut out = [0u8; 25];
    let mut bit = 0usize;
    for c in chars {
        let parity = u8::from((c & 0x0F).count_ones() % 2 == 0);
        let code = [c & 1, (c >> 1) & 1, (c >> 2) & 1, (c >> 3) & 1, parity];
        for b in code {
            if let Some(byte) = out.get_mut(bit / 8) {
                *byte |= b << (7 - bit % 8);
            }
            bit += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyAlgorithm;

    fn config() -> CardConfig {
        CardConfig {
            guid: [0x11; 16],
            serial: 1234567,
            auth_certificate: vec![0x30, 0x03, 0x02, 0x01, 0x01],
            auth_algorithm: KeyAlgorithm::EccP256,
            sign_certificate: Vec::new(),
            sign_algorithm: KeyAlgorithm::Rsa2048,
            holder_name: "Ada Lovelace".into(),
            organisation: "Example Health NHS Foundation Trust".into(),
            pin_tries_left: 3,
        }
    }

    #[test]
    fn fasc_n_is_the_standard_non_federal_value() {
        // the value every non-federal PIV issuer uses, e.g. yubico-piv-tool's CHUID template
        assert_eq!(
            hex::encode(fasc_n()),
            "d4e739da739ced39ce739d836858210842108421c84210c3eb"
        );
    }

    #[test]
    fn fci_layout() {
        let expected = [
            "6131",
            "4f06000010000100",
            "79074f05a000000308",
            "5010",
            &hex::encode("vsc virtual card"),
            "ac0c800103800107800111060100",
        ]
        .concat();
        assert_eq!(hex::encode(fci()), expected);
    }

    #[test]
    fn discovery_layout() {
        assert_eq!(
            hex::encode(discovery()),
            "7e124f0ba0000003080000100001005f2f024000"
        );
    }

    #[test]
    fn key_history_layout() {
        assert_eq!(hex::encode(key_history()), "5308c10100c20100fe00");
    }

    #[test]
    fn chuid_layout() {
        let chuid = chuid(&[0xAB; 16]);
        let outer = tlv::read_single(&chuid).expect("53");
        assert_eq!(outer.tag, 0x53);
        let items = tlv::read_all(outer.value).expect("elements");
        let tags: Vec<u32> = items.iter().map(|t| t.tag).collect();
        assert_eq!(tags, [0x30, 0x34, 0x35, 0x3E, 0xFE]);
        assert_eq!(items[0].value, fasc_n());
        assert_eq!(items[1].value, [0xAB; 16]);
        assert_eq!(items[2].value, b"99991231");
    }

    #[test]
    fn ccc_layout() {
        let ccc = ccc(&[0x42; 16]);
        let outer = tlv::read_single(&ccc).expect("53");
        let items = tlv::read_all(outer.value).expect("elements");
        assert_eq!(items[0].tag, 0xF0);
        assert_eq!(items[0].value.len(), 21);
        assert_eq!(items.last().map(|t| t.tag), Some(0xFE));
    }

    #[test]
    fn certificate_objects() {
        let objects = Objects::new(&config());
        let Lookup::Public(auth) = objects.get(tag::AUTH_CERT) else {
            panic!("9A certificate present");
        };
        assert_eq!(hex::encode(auth), "530c70053003020101710100fe00");
        assert_eq!(
            objects.get(tag::SIGN_CERT),
            Lookup::Absent,
            "empty DER is absent"
        );
        assert_eq!(objects.get(0x5F_C1_01), Lookup::Absent);
    }

    #[test]
    fn printed_information_splits_the_organisation() {
        let objects = Objects::new(&config());
        let Lookup::PinProtected(pi) = objects.get(tag::PRINTED_INFO) else {
            panic!("printed information is PIN-protected");
        };
        let outer = tlv::read_single(pi).expect("53");
        let items = tlv::read_all(outer.value).expect("elements");
        let find = |t: u32| items.iter().find(|i| i.tag == t).map(|i| i.value);
        assert_eq!(find(0x01), Some(&b"Ada Lovelace"[..]));
        assert_eq!(find(0x05), Some(&b"1234567"[..]));
        assert_eq!(find(0x07), Some(&b"Example Health NHS F"[..]));
        assert_eq!(find(0x08), Some(&b"oundation Trust"[..]));
    }

    #[test]
    fn long_names_are_cut_on_character_boundaries() {
        assert_eq!(utf8_prefix("abc", 10), "abc");
        assert_eq!(utf8_prefix("héllo", 2), "h");
        assert_eq!(utf8_prefix("héllo", 3), "hé");
        assert_eq!(utf8_prefix("", 0), "");
        let mut cfg = config();
        cfg.holder_name = "é".repeat(100);
        cfg.organisation = "ü".repeat(30);
        let objects = Objects::new(&cfg);
        let Lookup::PinProtected(pi) = objects.get(tag::PRINTED_INFO) else {
            panic!("present");
        };
        let outer = tlv::read_single(pi).expect("53");
        for item in tlv::read_all(outer.value).expect("elements") {
            assert!(std::str::from_utf8(item.value).is_ok());
        }
    }
}

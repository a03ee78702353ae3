//! The card: a resumable state machine over command APDUs.
//!
//! ## State
//!
//! * **Selection.** After [`Card::new`] and [`Card::reset`] no application is selected and every
//!   command except SELECT and GET RESPONSE answers `6D 00`, as a card whose default application
//!   is not PIV would (OpenSC and yubico-piv-tool then SELECT). SELECT of another AID answers
//!   `6A 82` and leaves the PIV application selected, with its PIN state: this card has no other
//!   application to switch to. Selecting PIV again also keeps the PIN state.
//! * **PIN.** VERIFY asks the host ([`HostRequest::VerifyPin`]); the result sets or clears the
//!   verified state. The card also remembers the last known number of tries to answer an empty
//!   VERIFY; when it believes the PIN is blocked it still passes a VERIFY on to the host, because
//!   the server (where the counter lives) may have reset it.
//! * **Pending host request.** While a [`HostRequest`] is outstanding, [`Card::process`] answers
//!   every APDU with `69 85` (conditions of use not satisfied) and changes nothing, so a late
//!   [`Card::resume`] can never be applied to a different command than the one that asked.
//!   [`Card::reset`] abandons the request; a host must then drop its result (a `resume` with
//!   nothing pending answers `6F 00`). A host that gives up waiting resumes with
//!   [`HostResult::Failed`]. A result of the wrong kind (a signature for a PIN check, a PIN
//!   verdict for a signature) answers `6F 00`; a failed VERIFY of any kind clears the verified
//!   state, a failed signature keeps it.
//! * **Chaining and GET RESPONSE.** Command data sent with CLA `10` is collected (up to
//!   [`MAX_CHAIN_DATA`] bytes) until the CLA `00` command with the same INS P1 P2. A response longer
//!   than Ne (or than 256 bytes) is cut, the rest kept for GET RESPONSE and announced with
//!   `61 xx`; any command other than GET RESPONSE discards it.
//!
//! ## Deliberate limits
//!
//! * Extended-length APDUs are parsed but answered `67 00`: the ATR does not offer them and
//!   neither OpenSC's PIV driver nor yubico-piv-tool sends them (both chain short APDUs).
//! * CHANGE REFERENCE DATA, RESET RETRY COUNTER, GENERATE ASYMMETRIC KEY PAIR and PUT DATA answer
//!   `6A 81` (function not supported): the PIN is changed on the phone and unblocked by the RA,
//!   and the keys and certificates are made at enrolment. `69 82` would wrongly tell OpenSC to log
//!   in and try again.
//! * The management key (`9B`) exists only to hand out random bytes (OpenSC's GET CHALLENGE):
//!   a request for a witness or challenge returns 8 random bytes; any attempt to complete a
//!   management-key authentication answers `69 82`.
//! * The digital signature key (`9C`) is usable whenever the PIN is verified; the "PIN always"
//!   policy of SP 800-73-4 is left to the phone, which confirms every signature with the person.

use crate::apdu::{Command, status, sw};
use crate::objects::{Lookup, Objects};
use crate::{CardConfig, HostRequest, HostResult, KeyAlgorithm, PIV_AID, Slot, Step, tlv};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The most command data a chain of CLA `10` APDUs may collect (`67 00` beyond it).
pub const MAX_CHAIN_DATA: usize = 4096;

/// What Yubico's GET VERSION reports: 5.4.3. yubico-piv-tool reads the serial number with GET
/// SERIAL only from major version 5, and from 5.4.3 it ends a PIN session with VERIFY `P1 = FF`
/// (which this card supports) instead of selecting Yubico's management application (which it
/// does not have). It stays below 5.7.0, which would announce RSA 3072/4096 and Curve25519.
pub const YUBICO_VERSION: [u8; 3] = [5, 4, 3];

const INS_VERIFY: u8 = 0x20;
const INS_CHANGE_REFERENCE_DATA: u8 = 0x24;
const INS_RESET_RETRY_COUNTER: u8 = 0x2C;
const INS_GENERATE_KEY_PAIR: u8 = 0x47;
const INS_GENERAL_AUTHENTICATE: u8 = 0x87;
const INS_SELECT: u8 = 0xA4;
const INS_GET_RESPONSE: u8 = 0xC0;
const INS_GET_DATA: u8 = 0xCB;
const INS_PUT_DATA: u8 = 0xDB;
const INS_YUBICO_GET_SERIAL: u8 = 0xF8;
const INS_YUBICO_GET_VERSION: u8 = 0xFD;

/// The CLA bit that marks "more command data follows" (ISO 7816-4 §5.4.1).
const CLA_CHAINING: u8 = 0x10;
/// PIV key reference of the PIV Card Application PIN.
const PIN_REFERENCE: u8 = 0x80;
/// PIV key reference of the card management key.
const MANAGEMENT_KEY: u8 = 0x9B;

/// Command data collected from CLA `10` APDUs.
struct Chain {
    ins: u8,
    p1: u8,
    p2: u8,
    data: Zeroizing<Vec<u8>>,
}

/// The host request the card is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    VerifyPin,
    Sign { algorithm: KeyAlgorithm, ne: usize },
}

/// A virtual PIV card. See the [module documentation](self) for its states.
pub struct Card {
    config: CardConfig,
    objects: Objects,
    selected: bool,
    verified: bool,
    tries_left: u8,
    /// The highest try count we have reason to believe in: what a correct PIN restores.
    max_tries: u8,
    chain: Option<Chain>,
    /// Response bytes still to be fetched with GET RESPONSE.
    response: Vec<u8>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("serial", &self.config.serial)
            .field("selected", &self.selected)
            .field("verified", &self.verified)
            .field("tries_left", &self.tries_left)
            .field("chaining", &self.chain.is_some())
            .field("response_waiting", &self.response.len())
            .field("pending", &self.pending)
            .finish()
    }
}

impl Card {
    /// A card in the power-on state: nothing selected, PIN not verified.
    pub fn new(config: CardConfig) -> Card {
        Card {
            objects: Objects::new(&config),
            selected: false,
            verified: false,
            tries_left: config.pin_tries_left,
            max_tries: config.pin_tries_left,
            chain: None,
            response: Vec::new(),
            pending: None,
            config,
        }
    }

    /// Processes one command APDU.
    pub fn process(&mut self, apdu: &[u8]) -> Step {
        if self.pending.is_some() {
            return Step::Reply(status(sw::CONDITIONS_OF_USE));
        }
        let Some(cmd) = Command::parse(apdu) else {
            self.chain = None;
            self.response.clear();
            return Step::Reply(status(sw::WRONG_LENGTH));
        };
        if cmd.ins != INS_GET_RESPONSE {
            self.response.clear();
        }
        if cmd.cla & !CLA_CHAINING != 0 {
            self.chain = None;
            return Step::Reply(status(sw::CLA_NOT_SUPPORTED));
        }
        if cmd.extended {
            self.chain = None;
            return Step::Reply(status(sw::WRONG_LENGTH));
        }
        if cmd.cla & CLA_CHAINING != 0 {
            return Step::Reply(self.collect_chain(&cmd));
        }
        match self.chain.take() {
            Some(chain) if (chain.ins, chain.p1, chain.p2) == (cmd.ins, cmd.p1, cmd.p2) => {
                let mut data = chain.data;
                if data.len().saturating_add(cmd.data.len()) > MAX_CHAIN_DATA {
                    return Step::Reply(status(sw::WRONG_LENGTH));
                }
                data.extend_from_slice(cmd.data);
                self.dispatch(&Command {
                    data: data.as_slice(),
                    ..cmd
                })
            }
            // a chain interrupted by another command is dropped
            _ => self.dispatch(&cmd),
        }
    }

    /// Finishes the command that returned [`Step::Host`], returning its response APDU. With
    /// nothing pending (never asked, or abandoned by [`Card::reset`]) it answers `6F 00`.
    pub fn resume(&mut self, result: HostResult) -> Vec<u8> {
        match self.pending.take() {
            None => status(sw::UNKNOWN),
            Some(Pending::VerifyPin) => self.finish_verify(result),
            Some(Pending::Sign { algorithm, ne }) => self.finish_sign(algorithm, ne, result),
        }
    }

    /// Power-off/on or reset: forgets the verified PIN, the selection, a half-collected chain,
    /// response bytes waiting for GET RESPONSE and any pending host request. The known number of
    /// PIN tries is kept: it describes the server's counter, not the session.
    pub fn reset(&mut self) {
        self.selected = false;
        self.verified = false;
        self.chain = None;
        self.response.clear();
        self.pending = None;
    }

    /// Whether the PIN has been verified since the last reset.
    pub fn pin_verified(&self) -> bool {
        self.verified
    }

    /// Whether the card is waiting for [`Card::resume`].
    pub fn has_pending_request(&self) -> bool {
        self.pending.is_some()
    }

    /// The number of PIN tries the card believes are left (what an empty VERIFY reports).
    pub fn pin_tries_left(&self) -> u8 {
        self.tries_left
    }

    /// Tells the card what the server now says about the PIN tries left (for example after the
    /// RA unblocked the PIN, or when the host polls the server).
    pub fn set_pin_tries_left(&mut self, tries_left: u8) {
        self.tries_left = tries_left;
        self.max_tries = self.max_tries.max(tries_left);
    }

    fn collect_chain(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        if !matches!(
            cmd.ins,
            INS_SELECT | INS_GET_DATA | INS_VERIFY | INS_GENERAL_AUTHENTICATE
        ) {
            self.chain = None;
            return status(sw::CHAINING_NOT_SUPPORTED);
        }
        let mut chain = match self.chain.take() {
            Some(chain) if (chain.ins, chain.p1, chain.p2) == (cmd.ins, cmd.p1, cmd.p2) => chain,
            // a new header starts a new chain
            _ => Chain {
                ins: cmd.ins,
                p1: cmd.p1,
                p2: cmd.p2,
                data: Zeroizing::new(Vec::new()),
            },
        };
        if chain.data.len().saturating_add(cmd.data.len()) > MAX_CHAIN_DATA {
            return status(sw::WRONG_LENGTH);
        }
        chain.data.extend_from_slice(cmd.data);
        self.chain = Some(chain);
        status(sw::OK)
    }

    fn dispatch(&mut self, cmd: &Command<'_>) -> Step {
        let reply = match cmd.ins {
            INS_SELECT => self.select(cmd),
            INS_GET_RESPONSE => self.get_response(cmd),
            _ if !self.selected => status(sw::INS_NOT_SUPPORTED),
            INS_GET_DATA => self.get_data(cmd),
            INS_VERIFY => return self.verify(cmd),
            INS_GENERAL_AUTHENTICATE => return self.general_authenticate(cmd),
            INS_CHANGE_REFERENCE_DATA
            | INS_RESET_RETRY_COUNTER
            | INS_GENERATE_KEY_PAIR
            | INS_PUT_DATA => status(sw::FUNCTION_NOT_SUPPORTED),
            INS_YUBICO_GET_VERSION => self.fixed_data(cmd, YUBICO_VERSION.to_vec()),
            INS_YUBICO_GET_SERIAL => {
                self.fixed_data(cmd, self.config.serial.to_be_bytes().to_vec())
            }
            _ => status(sw::INS_NOT_SUPPORTED),
        };
        Step::Reply(reply)
    }

    /// Response data with `90 00`, or its first Ne bytes (at most 256) with `61 xx` and the rest
    /// kept for GET RESPONSE.
    fn respond(&mut self, data: Vec<u8>, ne: usize) -> Vec<u8> {
        let ne = ne.min(256);
        match data.split_at_checked(ne) {
            Some((now, later)) if !later.is_empty() => {
                let mut out = now.to_vec();
                self.response = later.to_vec();
                let more = u8::try_from(later.len()).unwrap_or(0); // 00: 256 or more
                out.extend_from_slice(&(sw::MORE_DATA | u16::from(more)).to_be_bytes());
                out
            }
            _ => {
                let mut out = data;
                out.extend_from_slice(&sw::OK.to_be_bytes());
                out
            }
        }
    }

    /// SELECT by DF name (`P1 = 04`, `P2 = 00`): the PIV AID or any prefix of it of at least
    /// five bytes.
    fn select(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        if cmd.p1 != 0x04 {
            return status(sw::FUNCTION_NOT_SUPPORTED);
        }
        if cmd.p2 != 0x00 {
            return status(sw::WRONG_P1P2);
        }
        if cmd.data.len() < 5 || !PIV_AID.starts_with(cmd.data) {
            return status(sw::NOT_FOUND);
        }
        self.selected = true;
        let fci = self.objects.fci.clone();
        self.respond(fci, cmd.ne())
    }

    fn get_response(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        if (cmd.p1, cmd.p2) != (0x00, 0x00) {
            return status(sw::WRONG_P1P2);
        }
        if !cmd.data.is_empty() {
            return status(sw::WRONG_LENGTH);
        }
        if self.response.is_empty() {
            return status(sw::CONDITIONS_OF_USE);
        }
        let data = std::mem::take(&mut self.response);
        self.respond(data, cmd.ne())
    }

    /// GET DATA (`00 CB 3F FF`, data `5C len tag`).
    fn get_data(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return status(sw::WRONG_P1P2);
        }
        let Some(list) = tlv::read_single(cmd.data)
            .filter(|t| t.tag == 0x5C && (1..=3).contains(&t.value.len()))
        else {
            return status(sw::WRONG_DATA);
        };
        let tag = list
            .value
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let object = match self.objects.get(tag) {
            Lookup::Public(bytes) => bytes.to_vec(),
            Lookup::PinProtected(bytes) if self.verified => bytes.to_vec(),
            Lookup::PinProtected(_) => return status(sw::SECURITY_STATUS),
            Lookup::Absent => return status(sw::NOT_FOUND),
        };
        self.respond(object, cmd.ne())
    }

    /// VERIFY the PIV PIN (`P2 = 80`): with data, ask the host; without, report the state;
    /// with `P1 = FF`, forget the verification.
    fn verify(&mut self, cmd: &Command<'_>) -> Step {
        let reply = |sw: u16| Step::Reply(status(sw));
        if !matches!(cmd.p1, 0x00 | 0xFF) {
            return reply(sw::WRONG_P1P2);
        }
        if cmd.p2 != PIN_REFERENCE {
            return reply(sw::REFERENCE_NOT_FOUND);
        }
        if cmd.p1 == 0xFF {
            if !cmd.data.is_empty() {
                return reply(sw::WRONG_LENGTH);
            }
            self.verified = false;
            return reply(sw::OK);
        }
        if cmd.data.is_empty() {
            return reply(if self.verified {
                sw::OK
            } else if self.tries_left == 0 {
                sw::PIN_BLOCKED
            } else {
                tries_left_status(self.tries_left)
            });
        }
        if cmd.data.len() != 8 {
            return reply(sw::WRONG_LENGTH);
        }
        let digits_len = cmd.data.iter().take_while(|b| **b != 0xFF).count();
        let Some((digits, padding)) = cmd.data.split_at_checked(digits_len) else {
            return reply(sw::WRONG_DATA);
        };
        if !(6..=8).contains(&digits.len())
            || !digits.iter().all(u8::is_ascii_digit)
            || !padding.iter().all(|b| *b == 0xFF)
        {
            return reply(sw::WRONG_DATA);
        }
        self.pending = Some(Pending::VerifyPin);
        Step::Host(HostRequest::VerifyPin {
            pin: Zeroizing::new(digits.to_vec()),
        })
    }

    fn finish_verify(&mut self, result: HostResult) -> Vec<u8> {
        self.verified = false;
        match result {
            HostResult::PinCorrect => {
                self.verified = true;
                self.tries_left = self.max_tries;
                status(sw::OK)
            }
            HostResult::PinWrong { tries_left } => {
                self.tries_left = tries_left;
                self.max_tries = self.max_tries.max(tries_left.saturating_add(1));
                status(tries_left_status(tries_left))
            }
            HostResult::PinBlocked => {
                self.tries_left = 0;
                status(sw::PIN_BLOCKED)
            }
            HostResult::Denied => status(sw::SECURITY_STATUS),
            HostResult::Failed | HostResult::Signature(_) => status(sw::UNKNOWN),
        }
    }

    /// GENERAL AUTHENTICATE (`00 87 alg key`): a signature with 9A or 9C, or random bytes from
    /// the management key reference 9B.
    fn general_authenticate(&mut self, cmd: &Command<'_>) -> Step {
        let reply = |sw: u16| Step::Reply(status(sw));
        if cmd.p2 == MANAGEMENT_KEY {
            return Step::Reply(self.management_challenge(cmd));
        }
        let Some(slot) = Slot::from_key_reference(cmd.p2) else {
            return reply(sw::REFERENCE_NOT_FOUND);
        };
        let algorithm = match slot {
            Slot::Authentication => self.config.auth_algorithm,
            Slot::Signature => self.config.sign_algorithm,
        };
        if cmd.p1 != algorithm.piv_id() {
            return reply(sw::WRONG_P1P2);
        }
        if !self.verified {
            return reply(sw::SECURITY_STATUS);
        }
        // a signature: 7C { 82 00, 81 input } in either order, nothing else
        let Some(DynamicAuth {
            witness: None,
            challenge: Some(challenge),
            response: Some([]),
            exponentiation: None,
        }) = DynamicAuth::parse(cmd.data)
        else {
            return reply(sw::WRONG_DATA);
        };
        let input = match algorithm {
            KeyAlgorithm::EccP256 => {
                if challenge.is_empty() || challenge.len() > 32 {
                    return reply(sw::WRONG_DATA);
                }
                let mut input = vec![0u8; 32usize.saturating_sub(challenge.len())];
                input.extend_from_slice(challenge);
                input
            }
            KeyAlgorithm::Rsa2048 => {
                if challenge.len() != 256 {
                    return reply(sw::WRONG_DATA);
                }
                challenge.to_vec()
            }
        };
        self.pending = Some(Pending::Sign {
            algorithm,
            ne: cmd.ne(),
        });
        Step::Host(HostRequest::Sign {
            slot,
            algorithm,
            input,
        })
    }

    fn finish_sign(&mut self, algorithm: KeyAlgorithm, ne: usize, result: HostResult) -> Vec<u8> {
        match result {
            HostResult::Signature(signature) => match checked_signature(algorithm, signature) {
                Some(signature) => {
                    let body = tlv::wrap(&[0x82], &signature);
                    self.respond(tlv::wrap(&[0x7C], &body), ne)
                }
                None => status(sw::UNKNOWN),
            },
            HostResult::Denied => status(sw::SECURITY_STATUS),
            _ => status(sw::UNKNOWN),
        }
    }

    /// `7C { 80 00 }` (witness) or `7C { 81 00 }` (challenge) for key 9B with 3DES (`00` or
    /// `03`): 8 random bytes in the same tag.
    fn management_challenge(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        if !matches!(cmd.p1, 0x00 | 0x03) {
            return status(sw::WRONG_P1P2);
        }
        let Some(template) = DynamicAuth::parse(cmd.data) else {
            return status(sw::WRONG_DATA);
        };
        let tag = match template {
            DynamicAuth {
                witness: Some([]),
                challenge: None,
                response: None,
                exponentiation: None,
            } => 0x80,
            DynamicAuth {
                witness: None,
                challenge: Some([]),
                response: None,
                exponentiation: None,
            } => 0x81,
            // the second step of a management-key authentication: there is no key to check it
            _ => return status(sw::SECURITY_STATUS),
        };
        let mut random = [0u8; 8];
        if SystemRandom::new().fill(&mut random).is_err() {
            return status(sw::UNKNOWN);
        }
        let body = tlv::wrap(&[tag], &random);
        self.respond(tlv::wrap(&[0x7C], &body), cmd.ne())
    }

    /// GET VERSION and GET SERIAL: no data in, fixed data out.
    fn fixed_data(&mut self, cmd: &Command<'_>, data: Vec<u8>) -> Vec<u8> {
        if !cmd.data.is_empty() {
            return status(sw::WRONG_LENGTH);
        }
        self.respond(data, cmd.ne())
    }
}

/// `63 Cx` with x = tries left, at most 15.
fn tries_left_status(tries_left: u8) -> u16 {
    sw::TRIES_LEFT | u16::from(tries_left.min(15))
}

/// The host's signature if it has the shape the algorithm produces: a DER
/// `SEQUENCE { INTEGER r, INTEGER s }` with each integer at most 33 bytes for P-256, at most 256
/// bytes for RSA (left-padded with zeros to 256).
fn checked_signature(algorithm: KeyAlgorithm, signature: Vec<u8>) -> Option<Vec<u8>> {
    match algorithm {
        KeyAlgorithm::EccP256 => {
            let sequence = tlv::read_single(&signature).filter(|t| t.tag == 0x30)?;
            match tlv::read_all(sequence.value)?.as_slice() {
                [r, s]
                    if [r, s]
                        .iter()
                        .all(|i| i.tag == 0x02 && (1..=33).contains(&i.value.len())) => {}
                _ => return None,
            }
            Some(signature)
        }
        KeyAlgorithm::Rsa2048 => {
            if signature.is_empty() || signature.len() > 256 {
                return None;
            }
            let mut padded = vec![0u8; 256usize.saturating_sub(signature.len())];
            padded.extend_from_slice(&signature);
            Some(padded)
        }
    }
}

/// The elements of a dynamic authentication template (`7C`, SP 800-73-4 Part 2 Table 7).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct DynamicAuth<'a> {
    /// `80`: witness.
    witness: Option<&'a [u8]>,
    /// `81`: challenge (the input to sign).
    challenge: Option<&'a [u8]>,
    /// `82`: response (empty in a request).
    response: Option<&'a [u8]>,
    /// `85`: exponentiation (ECDH), which this card does not offer.
    exponentiation: Option<&'a [u8]>,
}

impl<'a> DynamicAuth<'a> {
    /// `None` unless `data` is exactly one `7C` holding only `80`, `81`, `82`, `85`, each at most
    /// once.
    fn parse(data: &'a [u8]) -> Option<Self> {
        let outer = tlv::read_single(data).filter(|t| t.tag == 0x7C)?;
        let mut template = DynamicAuth::default();
        for item in tlv::read_all(outer.value)? {
            let field = match item.tag {
                0x80 => &mut template.witness,
                0x81 => &mut template.challenge,
                0x82 => &mut template.response,
                0x85 => &mut template.exponentiation,
                _ => return None,
            };
            if field.replace(item.value).is_some() {
                return None;
            }
        }
        Some(template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_auth_templates() {
        let t = DynamicAuth::parse(&[0x7C, 0x05, 0x82, 0x00, 0x81, 0x01, 0xAA]).expect("sign");
        assert_eq!(t.response, Some(&[][..]));
        assert_eq!(t.challenge, Some(&[0xAA][..]));
        assert_eq!(
            DynamicAuth::parse(&[0x7C, 0x04, 0x81, 0x00, 0x81, 0x00]),
            None
        );
        assert_eq!(DynamicAuth::parse(&[0x7C, 0x02, 0x83, 0x00]), None);
        assert_eq!(DynamicAuth::parse(&[0x7D, 0x02, 0x81, 0x00]), None);
        assert_eq!(DynamicAuth::parse(&[0x7C, 0x02, 0x81, 0x00, 0x00]), None);
        assert_eq!(
            DynamicAuth::parse(&[0x7C, 0x00]),
            Some(DynamicAuth::default())
        );
    }

    #[test]
    fn signature_shapes() {
        let der = |r: usize, s: usize| {
            let mut body = tlv::wrap(&[0x02], &vec![1; r]);
            tlv::put(&mut body, &[0x02], &vec![1; s]);
            tlv::wrap(&[0x30], &body)
        };
        let ec = KeyAlgorithm::EccP256;
        assert!(checked_signature(ec, der(32, 33)).is_some());
        assert!(checked_signature(ec, der(1, 1)).is_some());
        assert!(checked_signature(ec, der(34, 32)).is_none());
        assert!(checked_signature(ec, der(0, 32)).is_none());
        assert!(checked_signature(ec, vec![0x30, 0x00]).is_none());
        assert!(checked_signature(ec, vec![0x31, 0x00]).is_none());
        assert!(checked_signature(ec, vec![]).is_none());

        let rsa = KeyAlgorithm::Rsa2048;
        assert_eq!(checked_signature(rsa, vec![7; 256]), Some(vec![7; 256]));
        let short = checked_signature(rsa, vec![7; 255]).expect("padded");
        assert_eq!((short.len(), short[0], short[1]), (256, 0, 7));
        assert!(checked_signature(rsa, vec![7; 257]).is_none());
        assert!(checked_signature(rsa, vec![]).is_none());
    }

    #[test]
    fn tries_left_saturates_at_fifteen() {
        assert_eq!(tries_left_status(0), 0x63C0);
        assert_eq!(tries_left_status(3), 0x63C3);
        assert_eq!(tries_left_status(200), 0x63CF);
    }
}

//! The PIV card application of the vsc virtual smartcard: command APDU bytes in, response APDU
//! bytes out, no I/O and no panics on any input.
//!
//! It implements the part of NIST SP 800-73-4 that OpenSC (0.23 and later, `card-piv.c`) and
//! yubico-piv-tool (2.2 and later) use: SELECT, GET DATA, VERIFY, GENERAL AUTHENTICATE, GET
//! RESPONSE and command chaining, plus Yubico's GET VERSION and GET SERIAL.
//!
//! The PIN try counter lives on the server and the private keys live on the person's phone, so
//! the card cannot finish every command by itself. [`Card::process`] either returns the response
//! ([`Step::Reply`]) or asks the host to do something ([`Step::Host`]); the host does it
//! (asynchronously, over the network) and hands the outcome back with [`Card::resume`], which
//! returns the response APDU.
//!
//! ```
//! use vsc_piv::{Card, CardConfig, HostRequest, HostResult, KeyAlgorithm, Step};
//!
//! let mut card = Card::new(CardConfig {
//!     guid: [7; 16],
//!     serial: 42,
//!     auth_certificate: vec![0x30, 0x00],
//!     auth_algorithm: KeyAlgorithm::EccP256,
//!     sign_certificate: vec![0x30, 0x00],
//!     sign_algorithm: KeyAlgorithm::Rsa2048,
//!     holder_name: "Ada Lovelace".into(),
//!     organisation: "Example Trust".into(),
//!     pin_tries_left: 3,
//! });
//! // SELECT the PIV application as OpenSC does (9-byte AID prefix)
//! let select = [0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00];
//! let Step::Reply(fci) = card.process(&select) else { unreachable!() };
//! assert_eq!(fci[fci.len() - 2..], [0x90, 0x00]);
//!
//! // VERIFY "123456": the card asks the host, which asks the server
//! let verify = [0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF];
//! let Step::Host(HostRequest::VerifyPin { pin }) = card.process(&verify) else { unreachable!() };
//! assert_eq!(pin.as_slice(), b"123456");
//! assert_eq!(card.resume(HostResult::PinCorrect), [0x90, 0x00]);
//! assert!(card.pin_verified());
//! ```
//!
//! Modules: [`card`] is the state machine; `apdu` parses command APDUs; `tlv` reads and writes
//! BER-TLV; `objects` builds the data objects; [`fuzzing`] is the byte-script driver shared by
//! the fuzz target and the tests.

mod apdu;
pub mod card;
pub mod fuzzing;
mod objects;
mod tlv;

pub use card::Card;

/// The PIV application identifier (NIST RID `A0 00 00 03 08`, PIX `00 00 10 00 01 00`).
///
/// SELECT accepts any prefix of it that is at least the 5-byte RID long: OpenSC sends the first
/// nine bytes, yubico-piv-tool the first five.
pub const PIV_AID: &[u8] = &[
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

/// The answer-to-reset; see [`atr`].
const ATR: [u8; 12] = {
    let mut atr = [
        0x3B, // TS: direct convention
        0x85, // T0: TD1 follows, 5 historical bytes
        0x81, // TD1: TD2 follows, T=1
        0x31, // TD2: TA3 and TB3 follow, T=1
        0xFE, // TA3: IFSC 254
        0x45, // TB3: BWI 4, CWI 5
        0x80, 0x53, b'v', b's', b'c', // historical bytes
        0x00, // TCK, computed below
    ];
    // TCK: the XOR of every byte from T0 to the last historical byte
    let mut tck = 0u8;
    let mut i = 1;
    while i < 11 {
        tck ^= atr[i];
        i += 1;
    }
    atr[11] = tck;
    atr
};

/// The card's answer-to-reset, `3B 85 81 31 FE 45 80 53 76 73 63 3B`: direct convention, T=1
/// only (IFSC 254, BWI 4, CWI 5), historical bytes `80 53 "vsc"` (compact-TLV, card issuer's
/// data), and the check byte TCK. It names no vendor, so OpenSC treats the card as a generic
/// PIV card.
pub fn atr() -> &'static [u8] {
    &ATR
}

/// The key algorithms a slot can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (PIV algorithm identifier `11`).
    EccP256,
    /// RSA with a 2048-bit modulus (PIV algorithm identifier `07`).
    Rsa2048,
}

impl KeyAlgorithm {
    /// The PIV cryptographic algorithm identifier (SP 800-78-4 Table 6-2).
    pub fn piv_id(self) -> u8 {
        match self {
            KeyAlgorithm::EccP256 => 0x11,
            KeyAlgorithm::Rsa2048 => 0x07,
        }
    }

    /// The algorithm for a PIV algorithm identifier, if it is one of ours.
    pub fn from_piv_id(id: u8) -> Option<Self> {
        match id {
            0x11 => Some(KeyAlgorithm::EccP256),
            0x07 => Some(KeyAlgorithm::Rsa2048),
            _ => None,
        }
    }
}

/// The key slots this card has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// PIV Authentication, key reference `9A`.
    Authentication,
    /// Digital Signature, key reference `9C`.
    Signature,
}

impl Slot {
    /// The PIV key reference.
    pub fn key_reference(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
        }
    }

    /// The slot for a key reference, if it is one of ours.
    pub fn from_key_reference(reference: u8) -> Option<Self> {
        match reference {
            0x9A => Some(Slot::Authentication),
            0x9C => Some(Slot::Signature),
            _ => None,
        }
    }
}

/// Everything the card needs to know about the person's card. The host builds it from what the
/// server and the phone report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardConfig {
    /// The CHUID GUID: stable per card (OpenSC uses it as the card's serial number).
    pub guid: [u8; 16],
    /// The serial number that Yubico's GET SERIAL returns.
    pub serial: u32,
    /// The DER certificate for slot 9A; empty means absent.
    pub auth_certificate: Vec<u8>,
    /// The algorithm of the slot 9A key.
    pub auth_algorithm: KeyAlgorithm,
    /// The DER certificate for slot 9C; empty means absent.
    pub sign_certificate: Vec<u8>,
    /// The algorithm of the slot 9C key.
    pub sign_algorithm: KeyAlgorithm,
    /// The cardholder's name, for the Printed Information object.
    pub holder_name: String,
    /// The cardholder's organisation, for the Printed Information object.
    pub organisation: String,
    /// How many PIN tries the server said were left when the card was built.
    pub pin_tries_left: u8,
}

/// The outcome of [`Card::process`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The response APDU (data and SW1 SW2), to send back to the reader now.
    Reply(Vec<u8>),
    /// The card needs the host to do something first; answer with [`Card::resume`].
    Host(HostRequest),
}

/// Something only the host can do.
#[derive(Clone, PartialEq, Eq)]
pub enum HostRequest {
    /// Check the PIN against the server's try counter.
    VerifyPin {
        /// The PIN: 6 to 8 ASCII digits, the `FF` padding removed.
        pin: zeroize::Zeroizing<Vec<u8>>,
    },
    /// Have the phone sign with the key in `slot`.
    Sign {
        /// The slot whose key signs.
        slot: Slot,
        /// The slot's algorithm.
        algorithm: KeyAlgorithm,
        /// For EC P-256, the digest left-padded with zeros to exactly 32 bytes (OpenSC sends the
        /// hash cut to 32 bytes, so SHA-1's 20 bytes arrive as 20; padding does not change the
        /// ECDSA result). For RSA 2048, the 256-byte block to raise to the private exponent,
        /// already padded by the host application (PKCS#1 v1.5 type 1 for OpenSC's
        /// `CKM_RSA_PKCS`; the card cannot see the padding policy, the phone decides).
        input: Vec<u8>,
    },
}

impl std::fmt::Debug for HostRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostRequest::VerifyPin { pin } => f
                .debug_struct("VerifyPin")
                .field("pin", &format_args!("<{} digits>", pin.len()))
                .finish(),
            HostRequest::Sign {
                slot,
                algorithm,
                input,
            } => f
                .debug_struct("Sign")
                .field("slot", slot)
                .field("algorithm", algorithm)
                .field("input_len", &input.len())
                .finish(),
        }
    }
}

/// What the host reports back for a [`HostRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostResult {
    /// The PIN was right (answer `90 00`).
    PinCorrect,
    /// The PIN was wrong (answer `63 Cx`, x = tries left, at most 15).
    PinWrong {
        /// Tries left on the server's counter.
        tries_left: u8,
    },
    /// The PIN is blocked (answer `69 83`).
    PinBlocked,
    /// The phone's signature: for EC a DER `ECDSA-Sig-Value`, for RSA the result (256 bytes;
    /// shorter results are left-padded with zeros). The card answers `7C { 82 sig }`.
    Signature(Vec<u8>),
    /// The phone declined or there is no session (answer `69 82`, security status not
    /// satisfied).
    Denied,
    /// Anything else went wrong (answer `6F 00`).
    Failed,
}

//! Helpers shared by the integration tests: a card configuration, APDU builders and shortcuts
//! for the usual SELECT and VERIFY steps.
#![allow(dead_code)]

use vsc_piv::{Card, CardConfig, HostRequest, HostResult, KeyAlgorithm, Step};

pub const GUID: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
];
pub const SERIAL: u32 = 0x00BC_614E;

/// A certificate-shaped blob of `len` bytes (the card never parses it).
pub fn fake_der(len: usize, fill: u8) -> Vec<u8> {
    let mut der = vec![0x30, 0x82];
    der.extend_from_slice(&u16::try_from(len - 4).expect("small").to_be_bytes());
    der.resize(len, fill);
    der
}

/// 9A: EC P-256 with a 600-byte certificate; 9C: RSA 2048 with a 1300-byte certificate.
pub fn config() -> CardConfig {
    CardConfig {
        guid: GUID,
        serial: SERIAL,
        auth_certificate: fake_der(600, 0xAA),
        auth_algorithm: KeyAlgorithm::EccP256,
        sign_certificate: fake_der(1300, 0xCC),
        sign_algorithm: KeyAlgorithm::Rsa2048,
        holder_name: "Ada Lovelace".into(),
        organisation: "Example Health NHS Trust".into(),
        pin_tries_left: 3,
    }
}

/// A short APDU: header, then Lc and data if there is data, then Le if given.
pub fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut out = vec![cla, ins, p1, p2];
    if !data.is_empty() {
        out.push(u8::try_from(data.len()).expect("short APDU"));
        out.extend_from_slice(data);
    }
    out.extend(le);
    out
}

/// Bytes from a hex string with spaces.
pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

/// Processes an APDU that must be answered at once.
pub fn reply(card: &mut Card, apdu: &[u8]) -> Vec<u8> {
    match card.process(apdu) {
        Step::Reply(r) => r,
        Step::Host(req) => panic!("unexpected host request {req:?} for {}", hex::encode(apdu)),
    }
}

/// Processes an APDU that must ask the host.
pub fn host(card: &mut Card, apdu: &[u8]) -> HostRequest {
    match card.process(apdu) {
        Step::Host(req) => req,
        Step::Reply(r) => panic!("expected a host request, got {}", hex::encode(r)),
    }
}

/// The status word of a response.
pub fn sw(response: &[u8]) -> u16 {
    let [.., a, b] = response else {
        panic!("response too short")
    };
    u16::from_be_bytes([*a, *b])
}

/// The data part of a response.
pub fn data(response: &[u8]) -> &[u8] {
    &response[..response.len() - 2]
}

/// SELECT as OpenSC sends it.
pub fn select_apdu() -> Vec<u8> {
    h("00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00")
}

/// VERIFY with `pin` padded with FF.
pub fn verify_apdu(pin: &[u8]) -> Vec<u8> {
    let mut padded = pin.to_vec();
    padded.resize(8, 0xFF);
    apdu(0x00, 0x20, 0x00, 0x80, &padded, None)
}

/// GET DATA for `tag` with Le.
pub fn get_data_apdu(tag: &[u8], le: u8) -> Vec<u8> {
    let mut list = vec![0x5C, u8::try_from(tag.len()).expect("short")];
    list.extend_from_slice(tag);
    apdu(0x00, 0xCB, 0x3F, 0xFF, &list, Some(le))
}

/// A card with the PIV application selected.
pub fn selected_card() -> Card {
    let mut card = Card::new(config());
    let r = reply(&mut card, &select_apdu());
    assert_eq!(sw(&r), 0x9000);
    card
}

/// A card with the PIV application selected and the PIN verified.
pub fn verified_card() -> Card {
    let mut card = selected_card();
    host(&mut card, &verify_apdu(b"123456"));
    assert_eq!(card.resume(HostResult::PinCorrect), [0x90, 0x00]);
    card
}

/// Sends `apdu`, then GET RESPONSE while the card says `61 xx`; returns all data and the last
/// status word.
pub fn read_all(card: &mut Card, apdu: &[u8]) -> (Vec<u8>, u16) {
    let first = reply(card, apdu);
    collect(card, first)
}

/// Follows `61 xx` from an existing response.
pub fn collect(card: &mut Card, first: Vec<u8>) -> (Vec<u8>, u16) {
    let mut out = data(&first).to_vec();
    let mut status = sw(&first);
    while status >> 8 == 0x61 {
        let le = (status & 0xFF) as u8;
        let next = reply(card, &[0x00, 0xC0, 0x00, 0x00, le]);
        assert!(next.len() <= 258);
        out.extend_from_slice(data(&next));
        status = sw(&next);
    }
    (out, status)
}

/// A DER ECDSA signature shape with 32-byte r and 33-byte s.
pub fn der_signature() -> Vec<u8> {
    let mut der = vec![0x30, 0x45, 0x02, 0x20];
    der.extend_from_slice(&[0x11; 32]);
    der.extend_from_slice(&[0x02, 0x21, 0x00]);
    der.extend_from_slice(&[0x99; 32]);
    der
}

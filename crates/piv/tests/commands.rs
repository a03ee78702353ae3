//! Every command and status word of the card, one behaviour per test.

mod common;

use common::*;
use vsc_piv::{Card, HostRequest, HostResult, KeyAlgorithm, PIV_AID, Slot, Step, atr};

// ---------------------------------------------------------------- ATR

/// Walks the ATR's interface bytes (ISO 7816-3 §8.2) and checks K and TCK.
#[test]
fn atr_is_valid_t1_with_correct_tck() {
    let atr = atr();
    assert_eq!(atr[0], 0x3B, "direct convention");
    let t0 = atr[1];
    let k = usize::from(t0 & 0x0F);
    let mut i = 2;
    let mut y = t0 >> 4;
    let mut protocols = Vec::new();
    loop {
        // TAi, TBi, TCi, then TDi
        i += (y & 0x7).count_ones() as usize;
        if y & 0x8 == 0 {
            break;
        }
        let td = atr[i];
        protocols.push(td & 0x0F);
        y = td >> 4;
        i += 1;
    }
    assert_eq!(protocols, [1, 1], "T=1 only");
    let historical = &atr[i..i + k];
    assert_eq!(historical, b"\x80\x53vsc");
    assert_eq!(atr.len(), i + k + 1, "TCK closes the ATR");
    let xor = atr[1..].iter().fold(0u8, |a, b| a ^ b);
    assert_eq!(xor, 0, "TCK makes the XOR of T0..TCK zero");
    assert!(atr.len() <= 33);
    assert_eq!(atr, h("3B 85 81 31 FE 45 80 53 76 73 63 3B"));
}

// ---------------------------------------------------------------- SELECT

#[test]
fn select_opensc_prefix_returns_the_application_property_template() {
    let mut card = Card::new(config());
    let r = reply(&mut card, &select_apdu());
    assert_eq!(sw(&r), 0x9000);
    let fci = data(&r);
    assert_eq!(fci[0], 0x61);
    assert_eq!(usize::from(fci[1]), fci.len() - 2);
    // what OpenSC looks for: 4F with the PIX 00 00 10 00
    assert_eq!(&fci[2..10], h("4F 06 00 00 10 00 01 00"));
    assert_eq!(&fci[10..19], h("79 07 4F 05 A0 00 00 03 08"));
    assert!(fci.windows(16).any(|w| w == b"vsc virtual card"));
    assert!(fci.ends_with(&h("AC 0C 80 01 03 80 01 07 80 01 11 06 01 00")));
}

#[test]
fn select_accepts_the_rid_and_the_full_aid() {
    for aid in [&PIV_AID[..5], &PIV_AID[..9], PIV_AID] {
        let mut card = Card::new(config());
        let r = reply(&mut card, &apdu(0x00, 0xA4, 0x04, 0x00, aid, None));
        assert_eq!(sw(&r), 0x9000, "{}", hex::encode(aid));
        assert_eq!(data(&r)[0], 0x61);
    }
}

#[test]
fn select_of_anything_else_is_not_found() {
    let mut card = Card::new(config());
    for aid in [
        h("A0 00 00 03"),                         // shorter than the RID
        h("A0 00 00 03 08 00 00 10 00 02 00"),    // another version
        h("A0 00 00 03 08 00 00 10 00 01 00 00"), // longer than the AID
        h("D2 76 00 01 24 01"),                   // OpenPGP
        h("A0 00 00 05 27 47 11 17"),             // Yubico management
    ] {
        let r = reply(&mut card, &apdu(0x00, 0xA4, 0x04, 0x00, &aid, Some(0)));
        assert_eq!(r, [0x6A, 0x82], "{}", hex::encode(&aid));
    }
    // SELECT without data (the MF) is not found either
    assert_eq!(reply(&mut card, &h("00 A4 04 00 00")), [0x6A, 0x82]);
}

#[test]
fn select_with_other_parameters() {
    let mut card = Card::new(config());
    // by file identifier (MF) and by path: not supported
    assert_eq!(reply(&mut card, &h("00 A4 00 00 02 3F 00")), [0x6A, 0x81]);
    assert_eq!(reply(&mut card, &h("00 A4 08 00 02 3F 00")), [0x6A, 0x81]);
    // by name, but asking for FCP or no response: wrong P2
    let mut aid = h("00 A4 04 0C 09");
    aid.extend_from_slice(&PIV_AID[..9]);
    assert_eq!(reply(&mut card, &aid), [0x6A, 0x86]);
}

#[test]
fn failed_select_keeps_piv_selected_and_the_pin_state() {
    let mut card = verified_card();
    let r = reply(&mut card, &h("00 A4 04 00 06 D2 76 00 01 24 01 00"));
    assert_eq!(r, [0x6A, 0x82]);
    assert!(card.pin_verified());
    let r = reply(&mut card, &get_data_apdu(&[0x7E], 0));
    assert_eq!(sw(&r), 0x9000);
    // selecting PIV again keeps the PIN state too
    assert_eq!(sw(&reply(&mut card, &select_apdu())), 0x9000);
    assert!(card.pin_verified());
}

#[test]
fn select_response_respects_le() {
    let mut card = Card::new(config());
    let mut select = select_apdu();
    *select.last_mut().expect("Le") = 0x10;
    let first = reply(&mut card, &select);
    assert_eq!(first.len(), 0x10 + 2);
    assert_eq!(first[first.len() - 2], 0x61);
    let (fci, status) = collect(&mut card, first);
    assert_eq!(status, 0x9000);
    assert_eq!(fci.len(), 0x33);
}

#[test]
fn nothing_but_select_before_selection() {
    let mut card = Card::new(config());
    for cmd in [
        get_data_apdu(&[0x7E], 0),
        h("00 20 00 80"),
        h("00 FD 00 00 00"),
        h("00 87 11 9A 04 7C 02 81 00 00"),
        h("00 24 00 80 10 31 32 33 34 35 36 FF FF 31 32 33 34 35 36 FF FF"),
    ] {
        assert_eq!(
            reply(&mut card, &cmd),
            [0x6D, 0x00],
            "{}",
            hex::encode(&cmd)
        );
    }
}

// ---------------------------------------------------------------- GET DATA

#[test]
fn get_data_discovery() {
    let mut card = selected_card();
    let r = reply(&mut card, &get_data_apdu(&[0x7E], 0));
    assert_eq!(
        r,
        h("7E 12 4F 0B A0 00 00 03 08 00 00 10 00 01 00 5F 2F 02 40 00 90 00")
    );
}

#[test]
fn get_data_ccc_chuid_and_key_history() {
    let mut card = selected_card();

    let ccc = reply(&mut card, &get_data_apdu(&h("5F C1 07"), 0));
    assert_eq!(sw(&ccc), 0x9000);
    assert_eq!(&data(&ccc)[..4], h("53 33 F0 15"));
    assert_eq!(&data(&ccc)[4..11], h("A0 00 00 01 16 FF 02"));
    assert_eq!(&data(&ccc)[11..25], &GUID[..14]);

    let chuid = reply(&mut card, &get_data_apdu(&h("5F C1 02"), 0));
    assert_eq!(sw(&chuid), 0x9000);
    let mut expected = h(
        "53 3B 30 19 D4 E7 39 DA 73 9C ED 39 CE 73 9D 83 68 58 21 08 42 10 84 21 C8 42 10 C3 EB 34 10",
    );
    expected.extend_from_slice(&GUID);
    expected.extend_from_slice(&h("35 08"));
    expected.extend_from_slice(b"99991231");
    expected.extend_from_slice(&h("3E 00 FE 00"));
    assert_eq!(data(&chuid), expected);

    let history = reply(&mut card, &get_data_apdu(&h("5F C1 0C"), 0));
    assert_eq!(history, h("53 08 C1 01 00 C2 01 00 FE 00 90 00"));
}

#[test]
fn get_data_certificate_9a_fits_after_get_response() {
    let mut card = selected_card();
    let (object, status) = read_all(&mut card, &get_data_apdu(&h("5F C1 05"), 0));
    assert_eq!(status, 0x9000);
    let mut expected = h("53 82 02 61 70 82 02 58");
    expected.extend_from_slice(&config().auth_certificate);
    expected.extend_from_slice(&h("71 01 00 FE 00"));
    assert_eq!(object, expected);
}

#[test]
fn get_data_certificate_9c_in_256_byte_pieces() {
    let mut card = selected_card();
    let first = reply(&mut card, &get_data_apdu(&h("5F C1 0A"), 0));
    assert_eq!(first.len(), 258);
    assert_eq!(sw(&first), 0x6100, "at least 256 more");
    let (object, status) = collect(&mut card, first);
    assert_eq!(status, 0x9000);
    assert_eq!(&object[..4], h("53 82 05 1D"));
    assert_eq!(object.len(), 4 + 0x51D);
    assert_eq!(&object[8..8 + 1300], &config().sign_certificate[..]);
}

#[test]
fn get_data_length_probe_as_opensc_does() {
    // OpenSC first asks for 8 bytes to learn the length, then reads the whole object
    let mut card = selected_card();
    let probe = reply(&mut card, &get_data_apdu(&h("5F C1 0A"), 8));
    assert_eq!(&probe[..8], h("53 82 05 1D 70 82 05 14"));
    assert_eq!(sw(&probe), 0x6100);
    let (object, status) = read_all(&mut card, &get_data_apdu(&h("5F C1 0A"), 0));
    assert_eq!((object.len(), status), (0x521, 0x9000));
}

#[test]
fn get_data_without_le_still_returns_data() {
    // yubico-piv-tool sends GET DATA as a case 3 APDU
    let mut card = selected_card();
    let r = reply(&mut card, &h("00 CB 3F FF 03 5C 01 7E"));
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(data(&r)[0], 0x7E);
}

#[test]
fn printed_information_needs_the_pin() {
    let mut card = selected_card();
    let pi = get_data_apdu(&h("5F C1 09"), 0);
    assert_eq!(reply(&mut card, &pi), [0x69, 0x82]);
    host(&mut card, &verify_apdu(b"123456"));
    card.resume(HostResult::PinCorrect);
    let r = reply(&mut card, &pi);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(data(&r)[0], 0x53);
    assert!(data(&r).windows(12).any(|w| w == b"Ada Lovelace"));
    // VERIFY P1=FF forgets again
    assert_eq!(reply(&mut card, &h("00 20 FF 80")), [0x90, 0x00]);
    assert_eq!(reply(&mut card, &pi), [0x69, 0x82]);
}

#[test]
fn absent_objects_are_not_found() {
    let mut card = verified_card();
    for tag in [
        h("5F C1 01"), // card authentication certificate
        h("5F C1 0B"), // key management certificate
        h("5F C1 06"), // security object
        h("5F C1 03"), // fingerprints
        h("5F C1 08"), // facial image
        h("5F C1 0D"), // retired key 1
        h("5F C1 20"), // retired key 20
        h("5F C1 21"), // iris
        h("7F 61"),    // biometric information templates group template
        h("5F FF 00"), // Yubico admin data
        h("5F FF 01"), // Yubico attestation
    ] {
        let r = reply(&mut card, &get_data_apdu(&tag, 0));
        assert_eq!(r, [0x6A, 0x82], "{}", hex::encode(&tag));
    }
}

#[test]
fn a_missing_certificate_is_absent() {
    let mut cfg = config();
    cfg.sign_certificate.clear();
    let mut card = Card::new(cfg);
    reply(&mut card, &select_apdu());
    assert_eq!(
        reply(&mut card, &get_data_apdu(&h("5F C1 0A"), 0)),
        [0x6A, 0x82]
    );
}

#[test]
fn get_data_with_bad_parameters_or_data() {
    let mut card = selected_card();
    assert_eq!(
        reply(&mut card, &h("00 CB 3F FE 03 5C 01 7E 00")),
        [0x6A, 0x86]
    );
    assert_eq!(
        reply(&mut card, &h("00 CB 00 00 03 5C 01 7E 00")),
        [0x6A, 0x86]
    );
    for bad in [
        h("00 CB 3F FF 00"),                      // no data
        h("00 CB 3F FF 03 5D 01 7E 00"),          // not a tag list
        h("00 CB 3F FF 02 5C 00 00"),             // empty tag
        h("00 CB 3F FF 06 5C 04 5F C1 05 01 00"), // four-byte tag
        h("00 CB 3F FF 04 5C 01 7E 00 00"),       // trailing byte
        h("00 CB 3F FF 03 5C 02 7E 00"),          // truncated
    ] {
        assert_eq!(
            reply(&mut card, &bad),
            [0x6A, 0x80],
            "{}",
            hex::encode(&bad)
        );
    }
}

// ---------------------------------------------------------------- VERIFY

#[test]
fn empty_verify_reports_tries_left_or_verified() {
    let mut card = selected_card();
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x63, 0xC3]);
    // yubico-piv-tool's form: case 2 with Le = 00
    assert_eq!(reply(&mut card, &h("00 20 00 80 00")), [0x63, 0xC3]);
    let mut card = verified_card();
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x90, 0x00]);
    assert_eq!(reply(&mut card, &h("00 20 00 80 00")), [0x90, 0x00]);
}

#[test]
fn empty_verify_with_no_tries_left_says_blocked() {
    let mut cfg = config();
    cfg.pin_tries_left = 0;
    let mut card = Card::new(cfg);
    reply(&mut card, &select_apdu());
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x69, 0x83]);
    // the server owns the counter, so a VERIFY is still passed on
    assert!(matches!(
        card.process(&verify_apdu(b"123456")),
        Step::Host(HostRequest::VerifyPin { .. })
    ));
}

#[test]
fn verify_asks_the_host_with_the_digits_only() {
    let mut card = selected_card();
    for pin in [&b"123456"[..], b"1234567", b"12345678"] {
        let HostRequest::VerifyPin { pin: got } = host(&mut card, &verify_apdu(pin)) else {
            panic!("a PIN request");
        };
        assert_eq!(got.as_slice(), pin);
        assert!(card.has_pending_request());
        assert_eq!(card.resume(HostResult::PinCorrect), [0x90, 0x00]);
        assert!(card.pin_verified());
    }
}

#[test]
fn verify_results_map_to_status_words() {
    let cases = [
        (HostResult::PinWrong { tries_left: 2 }, vec![0x63, 0xC2]),
        (HostResult::PinWrong { tries_left: 0 }, vec![0x63, 0xC0]),
        (HostResult::PinWrong { tries_left: 99 }, vec![0x63, 0xCF]),
        (HostResult::PinBlocked, vec![0x69, 0x83]),
        (HostResult::Denied, vec![0x69, 0x82]),
        (HostResult::Failed, vec![0x6F, 0x00]),
        (HostResult::Signature(vec![1, 2, 3]), vec![0x6F, 0x00]),
    ];
    for (result, expected) in cases {
        // starting verified: a failed VERIFY clears the verified state
        let mut card = verified_card();
        host(&mut card, &verify_apdu(b"654321"));
        assert_eq!(card.resume(result.clone()), expected, "{result:?}");
        assert!(!card.pin_verified(), "{result:?}");
        assert!(!card.has_pending_request());
    }
}

#[test]
fn the_card_remembers_tries_left() {
    let mut card = selected_card();
    host(&mut card, &verify_apdu(b"111111"));
    card.resume(HostResult::PinWrong { tries_left: 2 });
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x63, 0xC2]);
    assert_eq!(card.pin_tries_left(), 2);
    host(&mut card, &verify_apdu(b"111111"));
    card.resume(HostResult::PinBlocked);
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x69, 0x83]);
    // a correct PIN restores the highest count seen (3), which survives a reset
    host(&mut card, &verify_apdu(b"123456"));
    card.resume(HostResult::PinCorrect);
    card.reset();
    reply(&mut card, &select_apdu());
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x63, 0xC3]);
    // the host can correct the card's knowledge
    card.set_pin_tries_left(5);
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x63, 0xC5]);
}

#[test]
fn malformed_pins_are_refused_before_asking() {
    let mut card = selected_card();
    for data in [
        h("31 32 33 34 35 FF FF FF"), // five digits
        h("31 32 33 34 35 36 37 41"), // a letter
        h("31 32 33 FF 34 35 36 FF"), // padding in the middle
        h("31 32 33 34 35 36 00 00"), // zero padding
        h("FF FF FF FF FF FF FF FF"), // nothing
    ] {
        let r = reply(&mut card, &apdu(0x00, 0x20, 0x00, 0x80, &data, None));
        assert_eq!(r, [0x6A, 0x80], "{}", hex::encode(&data));
    }
    for data in [h("31 32 33 34 35 36"), h("31 32 33 34 35 36 FF FF FF")] {
        let r = reply(&mut card, &apdu(0x00, 0x20, 0x00, 0x80, &data, None));
        assert_eq!(r, [0x67, 0x00], "{}", hex::encode(&data));
    }
    assert!(!card.has_pending_request());
}

#[test]
fn verify_other_references_and_parameters() {
    let mut card = selected_card();
    let pin = h("31 32 33 34 35 36 FF FF");
    // PUK, global PIN, anything else
    for p2 in [0x81, 0x00, 0x9A] {
        let r = reply(&mut card, &apdu(0x00, 0x20, 0x00, p2, &pin, None));
        assert_eq!(r, [0x6A, 0x88]);
    }
    assert_eq!(
        reply(&mut card, &apdu(0x00, 0x20, 0x01, 0x80, &pin, None)),
        [0x6A, 0x86]
    );
    // P1 = FF takes no data
    assert_eq!(
        reply(&mut card, &apdu(0x00, 0x20, 0xFF, 0x80, &pin, None)),
        [0x67, 0x00]
    );
    // yubico-piv-tool's form of it (Le = 00)
    assert_eq!(reply(&mut card, &h("00 20 FF 80 00")), [0x90, 0x00]);
}

// ---------------------------------------------------------------- PIN management

#[test]
fn pin_management_and_key_management_are_not_offered() {
    let mut card = verified_card();
    let change = h("00 24 00 80 10 31 32 33 34 35 36 FF FF 36 35 34 33 32 31 FF FF");
    let reset_retry = h("00 2C 00 80 10 31 32 33 34 35 36 37 38 31 32 33 34 35 36 FF FF");
    let generate = h("00 47 00 9A 05 AC 03 80 01 11");
    let put_data = h("00 DB 3F FF 06 5C 03 5F C1 05 53 00");
    for cmd in [change, reset_retry, generate, put_data] {
        assert_eq!(
            reply(&mut card, &cmd),
            [0x6A, 0x81],
            "{}",
            hex::encode(&cmd)
        );
    }
    assert!(card.pin_verified(), "a refused change does not log out");
}

// ---------------------------------------------------------------- GENERAL AUTHENTICATE

fn sign_apdu(alg: u8, key: u8, input: &[u8]) -> Vec<u8> {
    let mut inner = h("82 00 81");
    inner.push(u8::try_from(input.len()).expect("short"));
    inner.extend_from_slice(input);
    let mut template = vec![0x7C, u8::try_from(inner.len()).expect("short")];
    template.extend_from_slice(&inner);
    apdu(0x00, 0x87, alg, key, &template, Some(0))
}

#[test]
fn ec_signature_round_trip() {
    let mut card = verified_card();
    let digest = [0x5A; 32];
    let request = host(&mut card, &sign_apdu(0x11, 0x9A, &digest));
    assert_eq!(
        request,
        HostRequest::Sign {
            slot: Slot::Authentication,
            algorithm: KeyAlgorithm::EccP256,
            input: digest.to_vec(),
        }
    );
    let r = card.resume(HostResult::Signature(der_signature()));
    let mut expected = h("7C 49 82 47");
    expected.extend_from_slice(&der_signature());
    expected.extend_from_slice(&[0x90, 0x00]);
    assert_eq!(r, expected);
}

#[test]
fn short_ec_digests_are_left_padded() {
    let mut card = verified_card();
    let sha1 = [0x77; 20];
    let HostRequest::Sign { input, .. } = host(&mut card, &sign_apdu(0x11, 0x9A, &sha1)) else {
        panic!("a signature request");
    };
    assert_eq!(input.len(), 32);
    assert_eq!(&input[..12], [0; 12]);
    assert_eq!(&input[12..], sha1);
}

#[test]
fn ec_input_too_long_or_empty() {
    let mut card = verified_card();
    assert_eq!(
        reply(&mut card, &sign_apdu(0x11, 0x9A, &[1; 33])),
        [0x6A, 0x80]
    );
    assert_eq!(reply(&mut card, &sign_apdu(0x11, 0x9A, &[])), [0x6A, 0x80]);
}

#[test]
fn rsa_signature_with_chaining_and_get_response() {
    let mut card = verified_card();
    let block = {
        let mut b = vec![0x00, 0x01];
        b.resize(256 - 20, 0xFF);
        b.push(0x00);
        b.resize(256, 0x42);
        b
    };
    // 7C 82 01 06 82 00 81 82 01 00 <256>: 266 bytes, sent as OpenSC does (255 + 11)
    let mut template = h("7C 82 01 06 82 00 81 82 01 00");
    template.extend_from_slice(&block);
    let (part1, part2) = template.split_at(255);
    let r = reply(&mut card, &apdu(0x10, 0x87, 0x07, 0x9C, part1, None));
    assert_eq!(r, [0x90, 0x00]);
    let request = host(&mut card, &apdu(0x00, 0x87, 0x07, 0x9C, part2, Some(0)));
    assert_eq!(
        request,
        HostRequest::Sign {
            slot: Slot::Signature,
            algorithm: KeyAlgorithm::Rsa2048,
            input: block,
        }
    );
    let signature = vec![0xE7; 256];
    let first = card.resume(HostResult::Signature(signature.clone()));
    assert_eq!(first.len(), 258);
    assert_eq!(sw(&first), 0x6108);
    let (all, status) = collect(&mut card, first);
    assert_eq!(status, 0x9000);
    let mut expected = h("7C 82 01 04 82 82 01 00");
    expected.extend_from_slice(&signature);
    assert_eq!(all, expected);
}

#[test]
fn rsa_input_must_be_256_bytes_and_short_results_are_padded() {
    let mut card = verified_card();
    let mut template = h("7C 82 01 05 82 00 81 82 00 FF");
    template.extend_from_slice(&[0x01; 255]);
    let (a, b) = template.split_at(200);
    reply(&mut card, &apdu(0x10, 0x87, 0x07, 0x9C, a, None));
    assert_eq!(
        reply(&mut card, &apdu(0x00, 0x87, 0x07, 0x9C, b, None)),
        [0x6A, 0x80]
    );

    let mut template = h("7C 82 01 06 82 00 81 82 01 00");
    template.extend_from_slice(&[0x01; 256]);
    let (a, b) = template.split_at(255);
    reply(&mut card, &apdu(0x10, 0x87, 0x07, 0x9C, a, None));
    host(&mut card, &apdu(0x00, 0x87, 0x07, 0x9C, b, None));
    let first = card.resume(HostResult::Signature(vec![0x33; 250]));
    let (all, status) = collect(&mut card, first);
    assert_eq!(status, 0x9000);
    assert_eq!(&all[8..14], [0; 6]);
    assert_eq!(&all[14..], [0x33; 250]);
}

#[test]
fn signing_needs_the_pin() {
    let mut card = selected_card();
    assert_eq!(
        reply(&mut card, &sign_apdu(0x11, 0x9A, &[1; 32])),
        [0x69, 0x82]
    );
}

#[test]
fn algorithm_must_match_the_slot() {
    let mut card = verified_card();
    assert_eq!(
        reply(&mut card, &sign_apdu(0x07, 0x9A, &[1; 32])),
        [0x6A, 0x86]
    );
    assert_eq!(
        reply(&mut card, &sign_apdu(0x11, 0x9C, &[1; 32])),
        [0x6A, 0x86]
    );
    assert_eq!(
        reply(&mut card, &sign_apdu(0x14, 0x9A, &[1; 32])),
        [0x6A, 0x86]
    );
    assert_eq!(
        reply(&mut card, &sign_apdu(0x00, 0x9A, &[1; 32])),
        [0x6A, 0x86]
    );
}

#[test]
fn other_key_references_are_not_found() {
    let mut card = verified_card();
    for key in [0x9D, 0x9E, 0x82, 0x95, 0x80, 0x00, 0xF9] {
        let r = reply(&mut card, &sign_apdu(0x11, key, &[1; 32]));
        assert_eq!(r, [0x6A, 0x88], "key {key:02X}");
    }
}

#[test]
fn malformed_templates() {
    let mut card = verified_card();
    for data in [
        h("7C 22 81 20") // no 82
            .into_iter()
            .chain([1; 32])
            .collect::<Vec<u8>>(),
        h("7C 05 82 01 00 81 00"),          // 82 not empty, 81 empty
        h("7C 06 82 00 81 02 01 02 00"),    // trailing byte inside... (bad length)
        h("7D 06 82 00 81 02 01 02"),       // not 7C
        h("7C 08 80 00 82 00 81 02 01 02"), // stray witness (and bad length)
        h("7C 08 82 00 85 02 01 02 81 00"), // ECDH point
        h("7C 06 82 00 83 02 01 02"),       // unknown tag
        h("7C 04 81 00 82 00"),             // a challenge request on an asymmetric key
        h("7C"),
    ] {
        let r = reply(&mut card, &apdu(0x00, 0x87, 0x11, 0x9A, &data, Some(0)));
        assert_eq!(r, [0x6A, 0x80], "{}", hex::encode(&data));
    }
    assert!(!card.has_pending_request());
}

#[test]
fn sign_results_map_to_status_words() {
    let cases = [
        (HostResult::Denied, vec![0x69, 0x82]),
        (HostResult::Failed, vec![0x6F, 0x00]),
        (HostResult::PinCorrect, vec![0x6F, 0x00]),
        (HostResult::PinBlocked, vec![0x6F, 0x00]),
        (HostResult::Signature(vec![]), vec![0x6F, 0x00]),
        (HostResult::Signature(vec![0x30, 0x00]), vec![0x6F, 0x00]),
        (HostResult::Signature(vec![0x11; 64]), vec![0x6F, 0x00]),
    ];
    for (result, expected) in cases {
        let mut card = verified_card();
        host(&mut card, &sign_apdu(0x11, 0x9A, &[1; 32]));
        assert_eq!(card.resume(result.clone()), expected, "{result:?}");
        assert!(
            card.pin_verified(),
            "a failed signature keeps the PIN state"
        );
    }
}

#[test]
fn challenge_from_the_management_key_reference() {
    // OpenSC's GET CHALLENGE: no PIN needed
    let mut card = selected_card();
    let a = reply(&mut card, &h("00 87 00 9B 04 7C 02 81 00 00"));
    let b = reply(&mut card, &h("00 87 00 9B 04 7C 02 81 00 00"));
    assert_eq!(a.len(), 12 + 2);
    assert_eq!(&a[..4], h("7C 0A 81 08"));
    assert_eq!(sw(&a), 0x9000);
    assert_ne!(a, b, "random");
    // a witness request with 3DES as yubico-piv-tool sends it
    let w = reply(&mut card, &h("00 87 03 9B 04 7C 02 80 00"));
    assert_eq!((&w[..4], sw(&w)), (&h("7C 0A 80 08")[..], 0x9000));
    // the second step cannot succeed
    let step2 =
        h("00 87 03 9B 16 7C 14 80 08 01 02 03 04 05 06 07 08 81 08 01 02 03 04 05 06 07 08");
    assert_eq!(reply(&mut card, &step2), [0x69, 0x82]);
    // AES management key algorithms are not offered
    assert_eq!(
        reply(&mut card, &h("00 87 0C 9B 04 7C 02 81 00 00")),
        [0x6A, 0x86]
    );
    assert_eq!(
        reply(&mut card, &h("00 87 00 9B 03 7C 01 81 00")),
        [0x6A, 0x80]
    );
}

// ---------------------------------------------------------------- pending host requests

#[test]
fn commands_while_a_request_is_pending_are_refused() {
    let mut card = selected_card();
    host(&mut card, &verify_apdu(b"123456"));
    for cmd in [
        select_apdu(),
        get_data_apdu(&[0x7E], 0),
        verify_apdu(b"999999"),
        vec![],
    ] {
        assert_eq!(reply(&mut card, &cmd), [0x69, 0x85]);
    }
    assert!(card.has_pending_request());
    // the original request still completes
    assert_eq!(card.resume(HostResult::PinCorrect), [0x90, 0x00]);
    assert!(card.pin_verified());
}

#[test]
fn resume_with_nothing_pending() {
    let mut card = Card::new(config());
    assert_eq!(card.resume(HostResult::PinCorrect), [0x6F, 0x00]);
    assert!(!card.pin_verified());
    let mut card = selected_card();
    host(&mut card, &verify_apdu(b"123456"));
    assert_eq!(card.resume(HostResult::PinCorrect), [0x90, 0x00]);
    assert_eq!(
        card.resume(HostResult::PinCorrect),
        [0x6F, 0x00],
        "only once"
    );
}

#[test]
fn reset_abandons_a_pending_request() {
    let mut card = verified_card();
    host(&mut card, &sign_apdu(0x11, 0x9A, &[1; 32]));
    card.reset();
    assert!(!card.has_pending_request());
    assert!(!card.pin_verified());
    assert_eq!(
        card.resume(HostResult::Signature(der_signature())),
        [0x6F, 0x00]
    );
    assert_eq!(reply(&mut card, &get_data_apdu(&[0x7E], 0)), [0x6D, 0x00]);
}

// ---------------------------------------------------------------- chaining and GET RESPONSE

#[test]
fn chained_get_data_and_verify() {
    let mut card = selected_card();
    assert_eq!(reply(&mut card, &h("10 CB 3F FF 02 5C 03")), [0x90, 0x00]);
    let r = reply(&mut card, &h("00 CB 3F FF 03 5F C1 02 00"));
    assert_eq!(&r[..2], [0x53, 0x3B]);

    assert_eq!(
        reply(&mut card, &h("10 20 00 80 03 31 32 33")),
        [0x90, 0x00]
    );
    let HostRequest::VerifyPin { pin } = host(&mut card, &h("00 20 00 80 05 34 35 36 FF FF"))
    else {
        panic!("a PIN request");
    };
    assert_eq!(pin.as_slice(), b"123456");
}

#[test]
fn an_interrupted_chain_is_dropped() {
    let mut card = selected_card();
    assert_eq!(reply(&mut card, &h("10 CB 3F FF 02 5C 03")), [0x90, 0x00]);
    // another command: processed on its own
    assert_eq!(sw(&reply(&mut card, &h("00 FD 00 00 00"))), 0x9000);
    // the tail of the old chain alone is malformed
    assert_eq!(
        reply(&mut card, &h("00 CB 3F FF 03 5F C1 02 00")),
        [0x6A, 0x80]
    );
    // a chain with another header replaces the first
    reply(&mut card, &h("10 CB 3F FF 02 5C 03"));
    reply(&mut card, &h("10 87 11 9A 02 7C 22"));
    assert_eq!(
        reply(&mut card, &h("00 CB 3F FF 03 5F C1 02 00")),
        [0x6A, 0x80]
    );
}

#[test]
fn chains_are_bounded() {
    let mut card = verified_card();
    let chunk = vec![0xAB; 255];
    for _ in 0..16 {
        assert_eq!(
            reply(&mut card, &apdu(0x10, 0x87, 0x07, 0x9C, &chunk, None)),
            [0x90, 0x00]
        );
    }
    // 16 * 255 = 4080; one more chunk passes 4096
    assert_eq!(
        reply(&mut card, &apdu(0x10, 0x87, 0x07, 0x9C, &chunk, None)),
        [0x67, 0x00]
    );
    // and the chain is gone: the last command alone is judged on its own
    assert_eq!(
        reply(&mut card, &apdu(0x00, 0x87, 0x07, 0x9C, &chunk, None)),
        [0x6A, 0x80]
    );
    // the same through the final command
    for _ in 0..16 {
        reply(&mut card, &apdu(0x10, 0x87, 0x07, 0x9C, &chunk, None));
    }
    assert_eq!(
        reply(&mut card, &apdu(0x00, 0x87, 0x07, 0x9C, &chunk, None)),
        [0x67, 0x00]
    );
}

#[test]
fn chaining_only_where_it_makes_sense() {
    let mut card = selected_card();
    for cmd in [
        h("10 C0 00 00 00"),
        h("10 FD 00 00 00"),
        h("10 24 00 80 01 31"),
    ] {
        assert_eq!(
            reply(&mut card, &cmd),
            [0x68, 0x84],
            "{}",
            hex::encode(&cmd)
        );
    }
}

#[test]
fn get_response_rules() {
    let mut card = selected_card();
    // nothing waiting
    assert_eq!(reply(&mut card, &h("00 C0 00 00 00")), [0x69, 0x85]);
    // something waiting, then discarded by another command
    let first = reply(&mut card, &get_data_apdu(&h("5F C1 05"), 0));
    assert_eq!(sw(&first), 0x6100);
    assert_eq!(reply(&mut card, &h("00 C0 00 01 00")), [0x6A, 0x86]);
    assert_eq!(reply(&mut card, &h("00 C0 00 00 01 00 00")), [0x67, 0x00]);
    let next = reply(&mut card, &h("00 C0 00 00 10"));
    assert_eq!((next.len(), sw(&next) >> 8), (0x12, 0x61));
    reply(&mut card, &h("00 FD 00 00 00"));
    assert_eq!(reply(&mut card, &h("00 C0 00 00 00")), [0x69, 0x85]);
}

// ---------------------------------------------------------------- Yubico extensions

#[test]
fn yubico_version_and_serial() {
    let mut card = selected_card();
    assert_eq!(reply(&mut card, &h("00 FD 00 00 00")), h("05 04 03 90 00"));
    // OpenSC asks with Le = 3
    assert_eq!(reply(&mut card, &h("00 FD 00 00 03")), h("05 04 03 90 00"));
    assert_eq!(reply(&mut card, &h("00 FD 00 00")), h("05 04 03 90 00"));
    assert_eq!(
        reply(&mut card, &h("00 F8 00 00 00")),
        h("00 BC 61 4E 90 00")
    );
    assert_eq!(reply(&mut card, &h("00 F8 00 00 01 00")), [0x67, 0x00]);
}

#[test]
fn yubico_piv_tool_session() {
    let mut card = Card::new(config());
    // ykpiv: SELECT with the 5-byte RID and no Le, VERIFY status, version, serial
    assert_eq!(
        sw(&reply(&mut card, &h("00 A4 04 00 05 A0 00 00 03 08"))),
        0x9000
    );
    assert_eq!(reply(&mut card, &h("00 20 00 80 00")), [0x63, 0xC3]);
    assert_eq!(reply(&mut card, &h("00 FD 00 00 00")), h("05 04 03 90 00"));
    assert_eq!(
        reply(&mut card, &h("00 F8 00 00 00")),
        h("00 BC 61 4E 90 00")
    );
    // metadata (5.3+) is not offered; ykpiv treats that as "no metadata"
    assert_eq!(reply(&mut card, &h("00 F7 00 9A 00")), [0x6D, 0x00]);
    let (chuid, status) = read_all(&mut card, &h("00 CB 3F FF 05 5C 03 5F C1 02"));
    assert_eq!((chuid[0], status), (0x53, 0x9000));
}

// ---------------------------------------------------------------- generic errors

#[test]
fn unknown_instruction_class_and_malformed_apdus() {
    let mut card = selected_card();
    assert_eq!(reply(&mut card, &h("00 B0 00 00 00")), [0x6D, 0x00]);
    assert_eq!(reply(&mut card, &h("00 F7 00 9A 00")), [0x6D, 0x00]);
    assert_eq!(
        reply(&mut card, &h("80 CB 3F FF 03 5C 01 7E 00")),
        [0x6E, 0x00]
    );
    assert_eq!(
        reply(&mut card, &h("0C CB 3F FF 03 5C 01 7E 00")),
        [0x6E, 0x00]
    );
    assert_eq!(
        reply(&mut card, &h("01 CB 3F FF 03 5C 01 7E 00")),
        [0x6E, 0x00]
    );
    assert_eq!(reply(&mut card, &h("FF FF FF FF")), [0x6E, 0x00]);
    for bad in [
        h(""),
        h("00"),
        h("00 CB 3F"),
        h("00 CB 3F FF 05 5C 01 7E"),
        h("00 CB 3F FF 02 5C 01 7E 00"),
    ] {
        assert_eq!(
            reply(&mut card, &bad),
            [0x67, 0x00],
            "{}",
            hex::encode(&bad)
        );
    }
    // extended length: parsed, refused
    assert_eq!(
        reply(&mut card, &h("00 CB 3F FF 00 00 03 5C 01 7E 00 00")),
        [0x67, 0x00]
    );
    assert_eq!(reply(&mut card, &h("00 FD 00 00 00 00 00")), [0x67, 0x00]);
    // the card still works
    assert_eq!(sw(&reply(&mut card, &get_data_apdu(&[0x7E], 0))), 0x9000);
}

#[test]
fn reset_forgets_the_session() {
    let mut card = verified_card();
    let first = reply(&mut card, &get_data_apdu(&h("5F C1 0A"), 0));
    assert_eq!(sw(&first), 0x6100);
    card.reset();
    assert!(!card.pin_verified());
    assert_eq!(reply(&mut card, &h("00 C0 00 00 00")), [0x69, 0x85]);
    assert_eq!(reply(&mut card, &get_data_apdu(&[0x7E], 0)), [0x6D, 0x00]);
    reply(&mut card, &h("10 CB 3F FF 02 5C 03"));
    card.reset();
    reply(&mut card, &select_apdu());
    assert_eq!(
        reply(&mut card, &h("00 CB 3F FF 03 5F C1 02 00")),
        [0x6A, 0x80]
    );
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x63, 0xC3]);
}

#[test]
fn debug_output_hides_the_pin() {
    let mut card = selected_card();
    let request = host(&mut card, &verify_apdu(b"864213"));
    let shown = format!("{request:?} {card:?}");
    assert!(!shown.contains("864213"), "{shown}");
    assert!(!shown.contains("56, 54"), "{shown}");
    assert!(shown.contains("<6 digits>"));
}

#[test]
fn identifiers_round_trip() {
    for alg in [KeyAlgorithm::EccP256, KeyAlgorithm::Rsa2048] {
        assert_eq!(KeyAlgorithm::from_piv_id(alg.piv_id()), Some(alg));
    }
    assert_eq!(KeyAlgorithm::from_piv_id(0x14), None);
    for slot in [Slot::Authentication, Slot::Signature] {
        assert_eq!(Slot::from_key_reference(slot.key_reference()), Some(slot));
    }
    assert_eq!(Slot::from_key_reference(0x9E), None);
    // the host drives the card from async tasks
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Card>();
    send_and_sync::<Step>();
}

// ---------------------------------------------------------------- a whole OpenSC session

#[test]
fn opensc_session() {
    let mut card = Card::new(config());
    // piv_match_card: discovery first (not selected yet), then SELECT, CCC, discovery again
    assert_eq!(reply(&mut card, &get_data_apdu(&[0x7E], 0)), [0x6D, 0x00]);
    assert_eq!(sw(&reply(&mut card, &select_apdu())), 0x9000);
    assert_eq!(
        sw(&reply(&mut card, &get_data_apdu(&h("5F C1 07"), 8))),
        0x6100 | 0x2D
    );
    assert_eq!(
        sw(&reply(&mut card, &get_data_apdu(&h("5F C1 07"), 0x35))),
        0x9000
    );
    assert_eq!(sw(&reply(&mut card, &get_data_apdu(&[0x7E], 0))), 0x9000);
    // piv_init: key history and discovery
    assert_eq!(
        sw(&reply(&mut card, &get_data_apdu(&h("5F C1 0C"), 0))),
        0x9000
    );
    // pkcs15-piv: CHUID for the serial, certificates
    assert_eq!(
        sw(&reply(&mut card, &get_data_apdu(&h("5F C1 02"), 0))),
        0x9000
    );
    let (cert, status) = read_all(&mut card, &get_data_apdu(&h("5F C1 05"), 0));
    assert_eq!((cert.len(), status), (0x265, 0x9000));
    // login state: VERIFY with no data says 63 C3; printed information says 69 82
    assert_eq!(reply(&mut card, &h("00 20 00 80")), [0x63, 0xC3]);
    assert_eq!(
        reply(&mut card, &get_data_apdu(&h("5F C1 09"), 8)),
        [0x69, 0x82]
    );
    // C_Login
    host(&mut card, &verify_apdu(b"2468013"));
    assert_eq!(card.resume(HostResult::PinCorrect), [0x90, 0x00]);
    // C_Sign with CKM_ECDSA on a SHA-256 digest
    let request = host(&mut card, &sign_apdu(0x11, 0x9A, &[0xD1; 32]));
    assert!(matches!(
        request,
        HostRequest::Sign {
            slot: Slot::Authentication,
            ..
        }
    ));
    let r = card.resume(HostResult::Signature(der_signature()));
    assert_eq!((&r[..2], sw(&r)), (&[0x7C, 0x49][..], 0x9000));
    // C_GenerateRandom
    assert_eq!(
        sw(&reply(&mut card, &h("00 87 00 9B 04 7C 02 81 00 00"))),
        0x9000
    );
}

//! Property tests: no input makes the card panic or answer with a malformed response, whatever
//! the interleaving of APDUs, host results and resets; and long objects come back intact for
//! any Le. The interleavings run through [`vsc_piv::fuzzing::run`], the driver the fuzz target
//! uses, so its invariants are checked here on every `cargo test`.

mod common;

use common::*;
use proptest::prelude::*;
use vsc_piv::fuzzing;
use vsc_piv::{Card, Step};

/// One step of a session, encoded as a frame of a fuzzing script.
#[derive(Debug, Clone)]
enum Op {
    Apdu(Vec<u8>),
    Resume(u8),
    Reset,
}

fn encode(selector: u8, prelude: &[Op], ops: &[Op]) -> Vec<u8> {
    let mut script = vec![selector];
    for op in prelude.iter().chain(ops) {
        match op {
            Op::Apdu(apdu) => {
                match u8::try_from(apdu.len()) {
                    Ok(n) if n < 0xFD => script.push(n),
                    _ => {
                        script.push(0xFD);
                        let n = u16::try_from(apdu.len()).expect("short");
                        script.extend_from_slice(&n.to_be_bytes());
                    }
                }
                script.extend_from_slice(apdu);
            }
            Op::Resume(r) => script.extend([0xFE, *r]),
            Op::Reset => script.push(0xFF),
        }
    }
    script
}

/// Data fields that reach the interesting paths: tag lists, authentication templates, PINs,
/// AIDs, and junk.
fn data_field() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop_oneof![
        Just(vec![0x7E]),
        Just(vec![0x5F, 0xC1, 0x02]),
        Just(vec![0x5F, 0xC1, 0x05]),
        Just(vec![0x5F, 0xC1, 0x07]),
        Just(vec![0x5F, 0xC1, 0x09]),
        Just(vec![0x5F, 0xC1, 0x0A]),
        Just(vec![0x5F, 0xC1, 0x0C]),
        proptest::collection::vec(any::<u8>(), 0..5),
    ];
    let template = (
        proptest::sample::select(vec![0x80u8, 0x81, 0x82, 0x85, 0x83]),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(tag, value, with_response)| {
            let mut inner = Vec::new();
            if with_response {
                inner.extend([0x82, 0x00]);
            }
            inner.push(tag);
            inner.push(u8::try_from(value.len()).expect("short"));
            inner.extend(value);
            let mut out = vec![0x7C, u8::try_from(inner.len()).expect("short")];
            out.extend(inner);
            out
        });
    let pin =
        (proptest::collection::vec(b'0'..=b'9', 4..10), 0usize..4).prop_map(|(mut p, pad)| {
            p.extend(std::iter::repeat_n(0xFF, pad));
            p
        });
    prop_oneof![
        Just(Vec::new()),
        tag.prop_map(|t| {
            let mut out = vec![0x5C, u8::try_from(t.len()).expect("short")];
            out.extend(t);
            out
        }),
        template,
        pin,
        Just(vsc_piv::PIV_AID[..9].to_vec()),
        Just(vec![0x7C, 0x02, 0x81, 0x00]),
        Just(
            vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20]
                .into_iter()
                .chain([0x11; 32])
                .collect()
        ),
        proptest::collection::vec(any::<u8>(), 0..250),
    ]
}

/// APDUs built from the real CLA, INS, P1 and P2 values (mixed with random ones), or raw bytes.
fn structured_apdu() -> impl Strategy<Value = Vec<u8>> {
    let cla = prop_oneof![
        Just(0x00u8),
        Just(0x10),
        Just(0x80),
        Just(0x0C),
        any::<u8>()
    ];
    let ins = prop_oneof![
        proptest::sample::select(vec![
            0xA4u8, 0xCB, 0x20, 0x87, 0xC0, 0xFD, 0xF8, 0x24, 0x2C, 0x47, 0xDB, 0xF7
        ]),
        any::<u8>(),
    ];
    let p1 = prop_oneof![
        proptest::sample::select(vec![0x00u8, 0x04, 0x3F, 0x07, 0x11, 0x03, 0xFF]),
        any::<u8>(),
    ];
    let p2 = prop_oneof![
        proptest::sample::select(vec![0x00u8, 0x80, 0x81, 0x9A, 0x9B, 0x9C, 0x9E, 0xFF]),
        any::<u8>(),
    ];
    let le = proptest::option::of(any::<u8>());
    prop_oneof![
        4 => (cla, ins, p1, p2, data_field(), le)
            .prop_map(|(cla, ins, p1, p2, data, le)| apdu(cla, ins, p1, p2, &data, le)),
        1 => proptest::collection::vec(any::<u8>(), 0..260),
    ]
}

/// The commands OpenSC and yubico-piv-tool send, with their variable parts random: one APDU, or
/// a chain of them for an RSA signature.
fn known_command() -> impl Strategy<Value = Vec<Op>> {
    let one = |a: Vec<u8>| vec![Op::Apdu(a)];
    let get_data = (
        proptest::sample::select(vec![
            vec![0x7E],
            vec![0x5F, 0xC1, 0x02],
            vec![0x5F, 0xC1, 0x05],
            vec![0x5F, 0xC1, 0x07],
            vec![0x5F, 0xC1, 0x09],
            vec![0x5F, 0xC1, 0x0A],
            vec![0x5F, 0xC1, 0x0C],
            vec![0x5F, 0xC1, 0x01],
        ]),
        any::<u8>(),
    )
        .prop_map(move |(tag, le)| one(get_data_apdu(&tag, le)));
    let verify = proptest::collection::vec(b'0'..=b'9', 5..=9)
        .prop_map(move |pin| one(verify_apdu(&pin[..pin.len().min(8)])));
    let sign = (
        proptest::sample::select(vec![0x07u8, 0x11]),
        proptest::sample::select(vec![0x9Au8, 0x9C]),
        proptest::sample::select(vec![20usize, 32, 32, 33, 255, 256, 256]),
        1usize..260,
        any::<u8>(),
    )
        .prop_map(|(alg, key, len, split, fill)| {
            let mut inner = vec![0x82, 0x00, 0x81];
            inner.extend(ber_len(len));
            inner.resize(inner.len() + len, fill);
            let mut template = vec![0x7C];
            template.extend(ber_len(inner.len()));
            template.extend(inner);
            // the last APDU carries `split` bytes (1..=255), the rest goes before it in chunks
            let last_len = split.clamp(1, 255).min(template.len());
            let (first, last) = template.split_at(template.len() - last_len);
            let mut ops: Vec<Op> = first
                .chunks(255)
                .map(|c| Op::Apdu(apdu(0x10, 0x87, alg, key, c, None)))
                .collect();
            ops.push(Op::Apdu(apdu(0x00, 0x87, alg, key, last, Some(0))));
            ops
        });
    let get_response = any::<u8>().prop_map(move |le| one(vec![0x00, 0xC0, 0x00, 0x00, le]));
    prop_oneof![
        1 => Just(vec![Op::Apdu(select_apdu())]),
        1 => Just(logged_in()),
        1 => get_data,
        1 => verify,
        4 => sign,
        1 => get_response,
        1 => Just(vec![Op::Apdu(h("00 20 00 80"))]),
        1 => Just(vec![Op::Apdu(h("00 20 FF 80"))]),
        1 => Just(vec![Op::Apdu(h("00 87 00 9B 04 7C 02 81 00 00"))]),
        1 => Just(vec![Op::Apdu(h("00 FD 00 00 00"))]),
        1 => Just(vec![Op::Apdu(h("00 F8 00 00 00"))]),
    ]
}

fn ber_len(n: usize) -> Vec<u8> {
    match u8::try_from(n) {
        Ok(n) if n < 0x80 => vec![n],
        Ok(n) => vec![0x81, n],
        Err(_) => [0x82]
            .into_iter()
            .chain(u16::try_from(n).expect("short").to_be_bytes())
            .collect(),
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let step = prop_oneof![
        8 => known_command(),
        6 => structured_apdu().prop_map(|a| vec![Op::Apdu(a)]),
        6 => any::<u8>().prop_map(|r| vec![Op::Resume(r)]),
        1 => Just(vec![Op::Reset]),
    ];
    proptest::collection::vec(step, 0..40).prop_map(|steps| steps.concat())
}

/// SELECT, VERIFY and a correct PIN, so that sessions start deep inside the card.
fn logged_in() -> Vec<Op> {
    vec![
        Op::Apdu(select_apdu()),
        Op::Apdu(verify_apdu(b"123456")),
        Op::Resume(0),
    ]
}

fn well_formed(response: &[u8]) -> bool {
    (2..=258).contains(&response.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_break_a_fresh_card(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut card = Card::new(config());
        match card.process(&bytes) {
            Step::Reply(r) => prop_assert!(well_formed(&r)),
            Step::Host(_) => prop_assert!(false, "a host request from a fresh card"),
        }
    }

    #[test]
    fn random_bytes_never_break_a_logged_in_card(bytes in proptest::collection::vec(any::<u8>(), 0..300), r in any::<u8>()) {
        let mut card = verified_card();
        match card.process(&bytes) {
            Step::Reply(reply) => prop_assert!(well_formed(&reply)),
            Step::Host(_) => prop_assert!(well_formed(&card.resume(fuzzing::host_result(r)))),
        }
    }

    #[test]
    fn random_scripts_keep_the_invariants(script in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert_eq!(fuzzing::run(&script).err(), None);
    }

    #[test]
    fn structured_sessions_keep_the_invariants(
        selector in any::<u8>(),
        start_logged_in in any::<bool>(),
        ops in ops(),
    ) {
        let prelude = if start_logged_in { logged_in() } else { Vec::new() };
        let script = encode(selector, &prelude, &ops);
        prop_assert_eq!(fuzzing::run(&script).err(), None);
    }

    #[test]
    fn objects_come_back_intact_for_any_le(le in 1u8..=255, zero in any::<bool>()) {
        let le = if zero { 0 } else { le };
        let mut card = selected_card();
        let (reference, _) = read_all(&mut card, &get_data_apdu(&[0x5F, 0xC1, 0x0A], 0));
        let first = reply(&mut card, &get_data_apdu(&[0x5F, 0xC1, 0x0A], le));
        let mut out = data(&first).to_vec();
        let mut status = sw(&first);
        while status >> 8 == 0x61 {
            let next = reply(&mut card, &[0x00, 0xC0, 0x00, 0x00, le]);
            prop_assert!(well_formed(&next));
            out.extend_from_slice(data(&next));
            status = sw(&next);
        }
        prop_assert_eq!(status, 0x9000);
        prop_assert_eq!(out, reference);
    }

    #[test]
    fn chaining_is_transparent(split in 1usize..64) {
        // GENERAL AUTHENTICATE split anywhere gives the same request as sent whole
        let mut template = h("7C 24 82 00 81 20");
        template.extend_from_slice(&[0x3C; 32]);
        let split = split.min(template.len() - 1);
        let mut whole = verified_card();
        let expected = whole.process(&apdu(0x00, 0x87, 0x11, 0x9A, &template, Some(0)));
        let mut chained = verified_card();
        let (a, b) = template.split_at(split);
        prop_assert_eq!(reply(&mut chained, &apdu(0x10, 0x87, 0x11, 0x9A, a, None)), vec![0x90, 0x00]);
        prop_assert_eq!(chained.process(&apdu(0x00, 0x87, 0x11, 0x9A, b, Some(0))), expected);
    }
}

/// The seed corpus of the fuzz target runs cleanly.
#[test]
fn fuzz_corpus_runs_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/apdu");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/apdu exists") {
        let path = entry.expect("entry").path();
        let script = std::fs::read(&path).expect("readable");
        let summary = fuzzing::run(&script).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(summary.responses > 0, "{} does nothing", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.contains("sign") {
            assert!(summary.sign_requests > 0, "{name} never reaches the phone");
        }
        if name.contains("login") || name.contains("pending") {
            assert!(summary.pin_requests > 0, "{name} never verifies the PIN");
        }
        count += 1;
    }
    assert!(count >= 5, "seed corpus has {count} files");
}

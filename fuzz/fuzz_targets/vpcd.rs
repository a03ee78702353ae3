//! Fuzz target `vpcd`: the vpcd link's frame reader, fed in pieces and cancelled mid-frame.
//! Body, input format and properties: `crates/fuzz-harness/src` (`vsc_fuzz_harness::TARGETS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vsc_fuzz_harness::run("vpcd", data));
});

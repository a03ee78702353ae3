//! Fuzz target `json`: the JSON bodies of the HTTP API, and the checks that follow reading them.
//! Body, input format and properties: `crates/fuzz-harness/src` (`vsc_fuzz_harness::TARGETS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vsc_fuzz_harness::run("json", data));
});

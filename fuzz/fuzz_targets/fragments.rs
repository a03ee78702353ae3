//! Fuzz target `fragments`: a FragmentsToBeHashed document as the phone reads it, and the SignedInfo check.
//! Body, input format and properties: `crates/fuzz-harness/src` (`vsc_fuzz_harness::TARGETS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vsc_fuzz_harness::run("fragments", data));
});

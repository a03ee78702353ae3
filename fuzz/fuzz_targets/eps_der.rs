//! Fuzz target `eps_der`: certificates and CRLs read by the EPS verifier.
//! Body, input format and properties: `crates/fuzz-harness/src` (`vsc_fuzz_harness::TARGETS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vsc_fuzz_harness::run("eps_der", data));
});

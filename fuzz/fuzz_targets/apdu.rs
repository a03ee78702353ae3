//! Fuzz target `apdu`: byte scripts of APDUs, host results and resets fed to the PIV card.
//! Body, input format and properties: `crates/fuzz-harness/src` (`vsc_fuzz_harness::TARGETS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vsc_fuzz_harness::run("apdu", data));
});

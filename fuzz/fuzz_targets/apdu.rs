//! Feeds byte scripts (APDUs, host results and resets; format in `vsc_piv::fuzzing`) to the PIV
//! card and crashes on the first broken invariant.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    if let Err(broken) = vsc_piv::fuzzing::run(script) {
        panic!("invariant broken: {broken}");
    }
});

//! Fuzz target `c14n`: XML reading with EPS's limits, and exclusive C14N of documents and subtrees.
//! Body, input format and properties: `crates/fuzz-harness/src` (`vsc_fuzz_harness::TARGETS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vsc_fuzz_harness::run("c14n", data));
});

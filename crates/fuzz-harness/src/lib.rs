//! The bodies of the cargo-fuzz targets in `fuzz/`, one function per target, so each target
//! has exactly one implementation: `fuzz/fuzz_targets/<name>.rs` calls [`run`] (through the
//! function named in [`TARGETS`]), and this crate's test `tests/corpus.rs` replays every seed
//! in `fuzz/corpus/<name>/` through the same function under `cargo test` on stable.
//!
//! Every parser that reads input from outside the process has a target:
//!
//! | target | parser | attacker |
//! |---|---|---|
//! | `apdu` | the PIV card (`vsc_piv::fuzzing`) | any local PC/SC client |
//! | `vpcd` | vpcd frames (`vsc_vpcd::frame`) | whoever connects to the link's port |
//! | `sse` | the phone's event-stream parser | the network path to the server |
//! | `c14n` | XML reading + exclusive C14N | a prescribing system |
//! | `prescription` | fragments, summary, verification, signing preparation of a prescription | a prescribing system |
//! | `fragments` | what the phone parses: fragments summary and digest, `SignedInfo` check | the server, a prescribing system |
//! | `eps_der` | certificates and CRLs the EPS verifier reads | whoever supplies them to `vsc eps verify` |
//! | `csr` | CSR and public-key validation | a phone enrolling |
//! | `link` | activation and unlock links, typed activation codes | anyone handing a link to a phone |
//! | `json` | the JSON bodies of the HTTP API and what is checked right after | anyone reaching the server |
//!
//! A target returns normally for any input the parser refuses; it panics (a fuzzer crash)
//! on a panic inside the parser, a stack overflow or allocation failure, or when a property
//! that must hold for every input does not (each module says which).

pub mod c14n;
pub mod csr;
pub mod eps_der;
pub mod fragments;
pub mod json;
pub mod link;
pub mod prescription;
pub mod sse;
pub mod vpcd;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` binary and the
/// `fuzz/corpus/<name>/` directory) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("apdu", apdu),
    ("vpcd", vpcd::run),
    ("sse", sse::run),
    ("c14n", c14n::run),
    ("prescription", prescription::run),
    ("fragments", fragments::run),
    ("eps_der", eps_der::run),
    ("csr", csr::run),
    ("link", link::run),
    ("json", json::run),
];

/// Runs the target called `name` on `data`; `false` when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, target)) => {
            target(data);
            true
        }
        None => false,
    }
}

/// `apdu`: byte scripts of APDUs, host results and resets fed to the PIV card (format and
/// invariants in `vsc_piv::fuzzing`); panics on the first broken invariant.
pub fn apdu(data: &[u8]) {
    if let Err(broken) = vsc_piv::fuzzing::run(data) {
        panic!("invariant broken: {broken}");
    }
}

/// The input as text when it is UTF-8 (the XML and JSON parsers take `&str`; a Rust caller
/// has one, so non-UTF-8 input never reaches them).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

//! The WebAssembly build the app ships (`crates/server/app/pkg`, which `scripts/build-app
//! --check` proves is what these sources build) run in Node.js with its WebCrypto: the core's
//! exports work in a JS engine as the app calls them (random numbers from WebCrypto, Argon2id,
//! sealing, CSRs and signatures checked by WebCrypto and OpenSSL), not only natively.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_shipped_wasm_build_works_in_node() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pkg = root.join("../server/app/pkg");
    assert!(
        pkg.join("vsc_phone_web_bg.wasm").exists(),
        "{} has no WebAssembly build: run scripts/build-app",
        pkg.display()
    );
    let script = root.join("tests/node_smoke.mjs");
    // Every `ok('…')` line of the script is one check; all of them must pass.
    let source = std::fs::read_to_string(&script).expect("read node_smoke.mjs");
    let checks = source
        .lines()
        .filter(|line| line.trim_start().starts_with("ok('"))
        .count();
    assert!(checks > 10, "the script has {checks} checks");
    let output = Command::new("node")
        .arg(&script)
        .arg(&pkg)
        .output()
        .unwrap_or_else(|e| panic!("run node (Node.js, on the machine image): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the smoke test failed in Node.js:\n{stdout}\n{stderr}"
    );
    let summary = stdout
        .lines()
        .rev()
        .find_map(|line| {
            let (passed, failed) = line.trim().split_once(" passed, ")?;
            let failed = failed.strip_suffix(" failed")?;
            Some((passed.parse::<usize>().ok()?, failed.parse::<usize>().ok()?))
        })
        .unwrap_or_else(|| panic!("no \"N passed, M failed\" line:\n{stdout}\n{stderr}"));
    assert_eq!(
        summary,
        (checks, 0),
        "(passed, failed) in Node.js, against the script's {checks} checks:\n{stdout}\n{stderr}"
    );
}

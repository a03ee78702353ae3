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
    let output = Command::new("node")
        .arg(root.join("tests/node_smoke.mjs"))
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
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

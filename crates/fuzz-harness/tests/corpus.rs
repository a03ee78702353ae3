//! Replays every seed of every fuzz target (`fuzz/corpus/<target>/*`) through the target's
//! body, so the seeds stay valid inputs and the properties hold on them under `cargo test` on
//! stable — without a nightly toolchain or cargo-fuzz.
//!
//! Also checks that `fuzz/Cargo.toml` declares a binary for exactly the targets in
//! `vsc_fuzz_harness::TARGETS`, each calling its body, and that each has a seed corpus.

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let files = seeds(target);
    assert!(
        files.len() >= 5,
        "fuzz/corpus/{target} has {} seeds; seeds.py writes them",
        files.len()
    );
    for path in files {
        let data = fs::read(&path).expect("readable seed");
        let outcome = std::panic::catch_unwind(|| vsc_fuzz_harness::run(target, &data));
        match outcome {
            Ok(found) => assert!(found, "no target {target}"),
            Err(_) => panic!("seed {} crashes target {target}", path.display()),
        }
    }
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let replayed = [$(stringify!($target)),*];
            let targets: Vec<&str> = vsc_fuzz_harness::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(replayed.as_slice(), targets.as_slice());
        }
    };
}

replay_tests!(
    apdu,
    vpcd,
    sse,
    c14n,
    prescription,
    fragments,
    eps_der,
    csr,
    link,
    json
);

/// The `json` seeds named after a type are valid bodies of that type (so a change to the wire
/// types shows up here, and `fuzz/seeds.py` needs the same change).
#[test]
fn json_seeds_named_after_a_type_read() {
    let mut named = 0;
    for path in seeds("json") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if vsc_fuzz_harness::json::TYPES.contains(&name) {
            let data = fs::read(&path).expect("readable seed");
            assert!(
                vsc_fuzz_harness::json::reads(&data),
                "fuzz/corpus/json/{name} is no longer a valid {name}: update fuzz/seeds.py"
            );
            named += 1;
        }
    }
    assert!(
        named >= 10,
        "only {named} json seeds are named after a type"
    );
}

#[test]
fn fuzz_crate_declares_exactly_the_targets() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "vsc-fuzz")
        .collect();
    let targets: Vec<&str> = vsc_fuzz_harness::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(declared, targets, "fuzz/Cargo.toml [[bin]] names");
    for target in targets {
        let source =
            fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{target}.rs")))
                .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{target}.rs: {e}"));
        assert!(
            source.contains(&format!("vsc_fuzz_harness::run(\"{target}\", data)")),
            "fuzz/fuzz_targets/{target}.rs does not call its body"
        );
    }
    let total: u64 = fs::read_dir(fuzz_dir().join("corpus"))
        .expect("fuzz/corpus")
        .flat_map(|d| fs::read_dir(d.expect("entry").path()).expect("corpus dir"))
        .map(|f| f.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert!(
        total < 1024 * 1024,
        "the committed seed corpus is {total} bytes (keep it < 1 MiB)"
    );
}

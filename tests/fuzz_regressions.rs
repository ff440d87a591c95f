//! Replays every input kept under `fuzz/regressions/<target>/` through the
//! same calls as that fuzz target, on stable, so an input that once crashed
//! a target stays fixed without nightly or libFuzzer.
//!
//! The inputs are hostile counts and lengths, and the broker may run under a
//! memory limit: this test binary limits its own address space first, so an
//! allocation sized from a claim aborts it here as it would abort the broker
//! (without a limit, a lazily committed mapping can hide one).

use std::path::{Path, PathBuf};

use gregor::properties::{batch_validator, request_decoder};

/// Far above what the test binary needs, far below what the inputs claim
/// (the smallest claim is 4 GiB of snappy output; the others are 38 GB and
/// up).
const ADDRESS_SPACE_LIMIT: u64 = 3 << 30;

fn limit_address_space() {
    let limit = libc::rlimit {
        rlim_cur: ADDRESS_SPACE_LIMIT,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given and has no other
    // preconditions; lowering a soft limit is always permitted.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_AS) failed");
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    inputs
}

// One test, so the limit is in place before any replay starts.
#[test]
fn kept_fuzz_inputs_are_refused_without_crashing() {
    limit_address_space();
    for (path, data) in inputs("request_decoder") {
        eprintln!("request_decoder {}", path.display());
        request_decoder(&data);
    }
    for (path, data) in inputs("batch_validator") {
        eprintln!("batch_validator {}", path.display());
        batch_validator(&data);
    }
}

//! Replays, as a normal test, every input the fuzzers were seeded with
//! (fuzz/seeds/TARGET/) or ever found crashing (fuzz/regressions/TARGET/)
//! through the fuzz targets' own checks (fuzz/checks.rs), so a fixed
//! crash stays fixed without cargo-fuzz. The metadata_plan seeds are the
//! hostile corpus, replayed by tests/hostile.rs.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::path::Path;

/// Every file under fuzz/seeds/TARGET and fuzz/regressions/TARGET but
/// the READMEs, with its name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut found = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = top.join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "md") {
                continue;
            }
            let name = format!(
                "{kind}/{target}/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            found.push((name, fs::read(&path).unwrap()));
        }
    }
    found.sort();
    found
}

#[test]
fn metadata_plan_regressions() {
    for (name, data) in inputs("metadata_plan") {
        println!("{name}");
        let _ = checks::metadata_plan(&data);
    }
}

#[test]
fn wire_decode_regressions() {
    let all = inputs("wire_decode");
    assert!(!all.is_empty(), "no wire_decode seeds in fuzz/seeds");
    for (name, data) in all {
        println!("{name}");
        checks::wire_decode(&data);
    }
}

/// The golden kernel messages that seed wire_decode are real messages,
/// so each must decode: a seed the decoder refuses would only teach the
/// fuzzer the error path.
#[test]
fn wire_decode_seeds_decode() {
    for (name, data) in inputs("wire_decode") {
        if name.starts_with("seeds/") {
            assert!(
                scwd::net::wire::decode(&data).is_ok(),
                "{name}: {:?}",
                scwd::net::wire::decode(&data)
            );
        }
    }
}

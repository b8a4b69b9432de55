//! The hostile metadata corpus: every input in tests/hostile/ goes through
//! metadata::parse and plan::from_metadata and must end exactly as its
//! `.expect` file beside it says. New hostile cases go there, as files;
//! tests/hostile/README.md says how.
//!
//! Every outcome is also held to the fuzzers' invariants (fuzz/checks.rs):
//! an error is one safe log line, a plan validates, crosses the privsep
//! channel unchanged and encodes into kernel requests that decode back.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

use scwd::plan::Built;

/// What a case's `.expect` file asks for.
#[derive(Debug)]
enum Expect {
    /// The error line contains this text.
    Error(String),
    /// This plan, written as [`describe`] writes one, and exactly these notes.
    Plan(String, Vec<String>),
}

fn read_expect(path: &Path) -> Expect {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("{}: empty", path.display()));
    let rest: Vec<&str> = lines.collect();
    if let Some(want) = first.strip_prefix("error: ") {
        assert!(
            rest.is_empty(),
            "{}: nothing may follow an error line",
            path.display()
        );
        return Expect::Error(want.to_string());
    }
    let Some(plan) = first.strip_prefix("plan: ") else {
        panic!(
            "{}: first line must be \"error: TEXT\" or \"plan: PLAN\"",
            path.display()
        );
    };
    let notes = rest
        .iter()
        .map(|l| {
            l.strip_prefix("note: ")
                .unwrap_or_else(|| panic!("{}: {l:?}: expected \"note: TEXT\"", path.display()))
                .to_string()
        })
        .collect();
    Expect::Plan(plan.to_string(), notes)
}

/// A plan in one line: its addresses, then `via GATEWAY`; `none` when it
/// configures nothing.
fn describe(built: &Built) -> String {
    let p = &built.plan;
    let mut words: Vec<String> = p.addresses.iter().map(|n| n.to_string()).collect();
    if let Some(gw) = p.default_gateway {
        words.push(format!("via {gw}"));
    }
    if words.is_empty() {
        "none".to_string()
    } else {
        words.join(" ")
    }
}

fn corpus() -> Vec<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut cases = Vec::new();
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json" | "bin") => {
                let expect = path.with_extension("expect");
                assert!(expect.exists(), "{}: no .expect beside it", path.display());
                cases.push((path.clone(), expect));
            }
            Some("expect") => {
                let has_input = ["json", "bin"]
                    .iter()
                    .any(|ext| path.with_extension(ext).exists());
                assert!(has_input, "{}: no input beside it", path.display());
            }
            _ => assert!(
                path.file_name().is_some_and(|n| n == "README.md"),
                "{}: not a case (.json or .bin with an .expect)",
                path.display()
            ),
        }
    }
    cases
}

#[test]
fn every_case_ends_as_expected() {
    let cases = corpus();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failed = Vec::new();
    for (input, expect) in &cases {
        let name = input.file_name().unwrap().to_string_lossy();
        let body = fs::read(input).unwrap();
        let got = checks::metadata_plan(&body);
        let ok = match (read_expect(expect), &got) {
            (Expect::Error(want), Err(e)) => e.contains(&want),
            (Expect::Plan(want, notes), Ok(b)) => describe(b) == want && b.notes == notes,
            _ => false,
        };
        if !ok {
            let got = match got {
                Ok(b) => format!("plan: {} notes {:?}", describe(&b), b.notes),
                Err(e) => format!("error: {e}"),
            };
            failed.push(format!("{name}: got {got}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

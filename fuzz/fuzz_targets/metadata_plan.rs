//! Bytes from the metadata service → metadata::parse → plan::from_metadata;
//! any plan must validate, cross the privsep channel unchanged and encode
//! into kernel requests that decode back (fuzz/checks.rs).

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::metadata_plan(data);
});

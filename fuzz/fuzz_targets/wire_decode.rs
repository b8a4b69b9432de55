//! Bytes from a routing socket → the kernel-message decoder, which must
//! never panic and must agree with the bytes; the same bytes drive the
//! route encoder, whose output must decode back (fuzz/checks.rs).

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::wire_decode(data);
});

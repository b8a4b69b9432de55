//! The floor `make bench` measures scwd against: the least a Rust program
//! can do to send the boot signal. Connect, PATCH /state with the same
//! body, read the answer, exit 0 on 2xx. No configuration, no
//! privilege drop, no HTTP library, no metadata fetch.
//!
//! Not part of the product: tests/lab/bench.sh compiles this one file with
//! `rustc -O`, the toolchain and C library scwd is built with, so the
//! difference between the two is scwd's own cost, not the C library's
//! start-up (which the lab's VM makes expensive).
//!
//! usage: minclient [ADDRESS:PORT]   (default 169.254.42.42:80)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

const BODY: &str = r#"{"state_detail":"booted"}"#;

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "169.254.42.42:80".to_string());
    match patch(&addr) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("minclient: {addr}: not a 2xx answer");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("minclient: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One PATCH /state; true when the answer's status is 2xx.
fn patch(addr: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(addr)?;
    let request = format!(
        "PATCH /state HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(request.as_bytes())?;
    // To the end, which the service marks by closing (as scwd-metad does
    // after every answer): hanging up with unread bytes would be a reset.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer.starts_with(b"HTTP/1.") && answer.get(9) == Some(&b'2'))
}

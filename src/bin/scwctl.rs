//! scwctl(8): ask scwd(8) what it did, read the metadata it fetched,
//! print SSH keys for sshd's AuthorizedKeysCommand, or have it fetch
//! again. One request, one answer, over the control socket.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use scwd::control::proto::{self, MAX_REPLY, Request};
use scwd::control::socket::DEFAULT_PATH;
use scwd::sandbox;

const USAGE: &str = "usage: scwctl [-s socket] command [argument ...]";

/// How long scwctl waits for the daemon: the control process answers
/// from memory, so anything longer is a daemon in trouble.
const TIMEOUT: Duration = Duration::from_secs(10);

/// getopt(3) with "s:", then the command and its arguments.
fn parse(args: impl IntoIterator<Item = OsString>) -> Option<(PathBuf, Vec<String>)> {
    let mut socket = PathBuf::from(DEFAULT_PATH);
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.peek() {
        let arg = arg.to_str()?.to_string();
        if arg == "--" {
            args.next();
            break;
        }
        let Some(opt) = arg.strip_prefix("-s") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return None;
            }
            break;
        };
        args.next();
        socket = PathBuf::from(if opt.is_empty() {
            args.next()?.into_string().ok()?
        } else {
            opt.to_string()
        });
    }
    let words: Vec<String> = args.map(|a| a.into_string().ok()).collect::<Option<_>>()?;
    (!words.is_empty()).then_some((socket, words))
}

fn main() -> ExitCode {
    let Some((socket, words)) = parse(std::env::args_os().skip(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let request = match Request::from_words(&words) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scwctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match ask(&socket, &request) {
        Ok(body) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scwctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the request and returns the answer's body.
fn ask(socket: &std::path::Path, request: &Request) -> Result<String, String> {
    let io = |e: std::io::Error| format!("{}: {}", socket.display(), scwd::strerror(&e));
    let mut sock = UnixStream::connect(socket).map_err(io)?;
    // SO_RCVTIMEO and SO_SNDTIMEO are no "stdio" socket options
    // (kern_pledge.c pledge_sockopt): set them first.
    sock.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    sock.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // Connected: nothing on the file system and no new socket from here.
    sandbox::unveil_lock().map_err(|e| format!("unveil: {e}"))?;
    sandbox::pledge("stdio").map_err(|e| format!("pledge: {e}"))?;
    sock.write_all(request.to_line().as_bytes()).map_err(io)?;
    let _ = sock.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    (&mut sock)
        .take(MAX_REPLY as u64 + 64)
        .read_to_end(&mut reply)
        .map_err(io)?;
    let body = proto::parse_reply(&reply)?;
    // The daemon refuses such values already; a script must not be
    // fooled even by a daemon that did not.
    if body.chars().any(|c| c.is_control() && c != '\n') {
        return Err("answer holds a control character, not printed".to_string());
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Option<(PathBuf, Vec<String>)> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn command_lines() {
        let (s, w) = p(&["get", "IPV6_ADDRESS"]).unwrap();
        assert_eq!(s, PathBuf::from(DEFAULT_PATH));
        assert_eq!(w, ["get", "IPV6_ADDRESS"]);
        let (s, w) = p(&["-s", "/tmp/x.sock", "show"]).unwrap();
        assert_eq!(
            (s, w),
            (PathBuf::from("/tmp/x.sock"), vec!["show".to_string()])
        );
        let (s, _) = p(&["-s/tmp/y", "--", "show"]).unwrap();
        assert_eq!(s, PathBuf::from("/tmp/y"));
        for bad in [&[][..], &["-s"], &["-x", "show"], &["-s", "/x"]] {
            assert!(p(bad).is_none(), "{bad:?}");
        }
    }
}

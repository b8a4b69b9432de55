//! Logging through the `log` facade: to stderr in the foreground (`-d`,
//! `-o`), to syslog(3) with the daemon facility otherwise.
//!
//! syslog(3) rather than a socket of our own: on OpenBSD it goes through
//! sendsyslog(2), which every pledge allows and which survives syslogd
//! restarts (crates.md §3). openlog is called with LOG_NDELAY before the
//! fork and the chroot, so on other systems the /dev/log socket is
//! already open in both processes.

use std::ffi::CString;
use std::fmt;
use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard error, one line each, no decoration.
    Stderr,
    /// syslog(3), facility daemon, tagged `scwd` with the pid.
    Syslog,
}

struct Logger {
    target: Target,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // Dependencies (reqwest, hyper, rustls) speak only at -vvv.
        if !r.target().starts_with("scwd") && log::max_level() < LevelFilter::Trace {
            return;
        }
        match self.target {
            Target::Stderr => {
                // Standard error is unbuffered: formatting straight into it
                // would cost a write(2) per piece of the message.
                let line = stderr_line(r.level(), r.args());
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Target::Syslog => {
                let pri = match r.level() {
                    Level::Error => libc::LOG_ERR,
                    Level::Warn => libc::LOG_WARNING,
                    Level::Info => libc::LOG_INFO,
                    Level::Debug | Level::Trace => libc::LOG_DEBUG,
                };
                let text = r.args().to_string().replace('\0', "\\0");
                let msg = CString::new(text).expect("NULs were replaced");
                // SAFETY: both strings are NUL-terminated; the format
                // consumes exactly one string argument.
                unsafe { libc::syslog(pri, c"%s".as_ptr(), msg.as_ptr()) };
            }
        }
    }

    fn flush(&self) {}
}

/// One line for standard error, whole, so it goes out in one write(2).
/// Errors read like err(3): "scwd: vio0: RTM_ADD ...: ...".
fn stderr_line(level: Level, args: &fmt::Arguments) -> String {
    let tag = if level == Level::Error { "scwd: " } else { "" };
    format!("{tag}{args}\n")
}

/// Installs the logger. `verbose` is the number of `-v` flags: 0 logs
/// info and above, 1 adds debug, 2 and more trace.
pub fn init(target: Target, verbose: u8) {
    if target == Target::Syslog {
        // SAFETY: the ident is a static NUL-terminated string, as
        // openlog(3) requires (it keeps the pointer).
        unsafe {
            libc::openlog(
                c"scwd".as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_DAEMON,
            )
        };
    }
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger { target }));
    // A second init (tests) keeps the first logger; that is harmless.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_are_whole_and_tagged_like_err3() {
        let (iface, errno) = ("vio0", "Invalid argument");
        assert_eq!(
            stderr_line(
                Level::Error,
                &format_args!("{iface}: SIOCAIFADDR_IN6: {errno}")
            ),
            "scwd: vio0: SIOCAIFADDR_IN6: Invalid argument\n"
        );
        for level in [Level::Warn, Level::Info, Level::Debug, Level::Trace] {
            assert_eq!(
                stderr_line(level, &format_args!("{iface}: added {}", 1)),
                "vio0: added 1\n"
            );
        }
    }
}

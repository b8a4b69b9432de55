//! pledge(2) and unveil(2); no-ops elsewhere.
//!
//! Direct `libc::pledge`/`libc::unveil` rather than the `pledge` and
//! `unveil` crates: those add nothing beyond a `CString` conversion, are
//! unmaintained (2021/2022, edition 2015) and return errors on Linux, where
//! scwd wants the same call sites to succeed as no-ops.
//!
//! Promises scwd uses, and what each one is for:
//!
//! | promise | needed for |
//! |---|---|
//! | `stdio` | everything basic: read/write on open sockets (the routing socket included: route messages need root, not a promise), poll, clocks, getentropy, syslog(3) via sendsyslog(2) |
//! | `inet` | the fetcher's `socket`/`connect` to the metadata service (IP literals, so no `dns`) |
//! | `route` | the parent reading the routing table (`sysctl(NET_RT_DUMP)`, kern_pledge.c 813–817) and the interface's addresses (`getifaddrs(3)`, 894–899) before each apply and after `RTM_DESYNC`: read only |
//! | `wroute` | `ioctl(SIOCAIFADDR_IN6/SIOCDIFADDR_IN6)` on the parent's inet6 socket |
//!
//! Not needed, on purpose: `proc`/`id` (fork and privilege drop happen before pledging), `unveil`
//! (the filesystem is hidden and locked before pledging).
//!
//! Sockets on `AF_ROUTE` and their `setsockopt` cannot be done under any
//! promise: open them before the first pledge.

use std::ffi::CString;
use std::io;

/// Restricts the process to `promises` (space-separated, see the module
/// doc); exec promises are left unchanged. A later call can only narrow.
/// Returns `Ok` without doing anything on systems other than OpenBSD.
pub fn pledge(promises: &str) -> io::Result<()> {
    let promises = c_string(promises)?;
    sys::pledge(&promises)
}

/// Hides the whole filesystem and forbids further unveil(2) calls:
/// `unveil("/", "")` then `unveil(NULL, NULL)`, as slaacd's children do.
/// Returns `Ok` without doing anything on systems other than OpenBSD.
pub fn unveil_lock() -> io::Result<()> {
    sys::unveil_lock()
}

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in pledge promises"))
}

#[cfg(target_os = "openbsd")]
mod sys {
    use std::ffi::CStr;
    use std::io;
    use std::ptr;

    fn check(ret: libc::c_int) -> io::Result<()> {
        if ret == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn pledge(promises: &CStr) -> io::Result<()> {
        // SAFETY: `promises` is a valid NUL-terminated string for the
        // duration of the call; a NULL execpromises leaves them unchanged.
        check(unsafe { libc::pledge(promises.as_ptr(), ptr::null()) })
    }

    pub fn unveil_lock() -> io::Result<()> {
        // SAFETY: both arguments are NUL-terminated string literals.
        check(unsafe { libc::unveil(c"/".as_ptr(), c"".as_ptr()) })?;
        // SAFETY: NULL, NULL is the documented way to lock unveil.
        check(unsafe { libc::unveil(ptr::null(), ptr::null()) })
    }
}

#[cfg(not(target_os = "openbsd"))]
mod sys {
    use std::ffi::CStr;
    use std::io;

    pub fn pledge(_promises: &CStr) -> io::Result<()> {
        Ok(())
    }

    pub fn unveil_lock() -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promises_with_nul_are_refused_everywhere() {
        let err = pledge("stdio\0inet").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[cfg(not(target_os = "openbsd"))]
    #[test]
    fn no_ops_elsewhere() {
        pledge("stdio inet").unwrap();
        unveil_lock().unwrap();
        // Still able to open files: nothing was restricted.
        std::fs::metadata("/").unwrap();
    }
}

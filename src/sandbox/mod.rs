//! pledge(2) and unveil(2): the kernel's own on OpenBSD, seccomp-bpf and
//! Landlock on Linux, so the namespace lab runs scwd under a sandbox that
//! bites as OpenBSD's does.
//!
//! On OpenBSD this is a direct `libc::pledge`/`libc::unveil`, rather than
//! the `pledge` and `unveil` crates: those add nothing beyond a `CString`
//! conversion and are unmaintained (2021/2022, edition 2015).
//!
//! On Linux (x86_64) `pledge` builds a seccomp-bpf filter from the same
//! promise string ([`seccomp`]: one system call list per promise, each
//! naming the OpenBSD rule it mirrors) and `unveil_lock` applies a
//! Landlock ruleset that allows no file system access at all
//! ([`landlock`]). Both are raw `libc` calls and a BPF assembler of a
//! hundred lines, not the `seccompiler`/`libseccomp`/`landlock` crates:
//! every crate in Cargo.lock, Linux-only ones included, lands in the
//! OpenBSD port's crate list, and the whole job is four system calls and
//! a straight-line program of five instruction kinds; `libseccomp` would
//! also link a C library the port does not need. Cosmopolitan's pledge for Linux
//! (jart/cosmopolitan, libc/calls/pledge-linux.c) is the model for the
//! promise-to-syscall mapping and the Landlock-for-unveil idea.
//!
//! Nothing in scwd can switch the sandbox off. On a Linux architecture
//! without a syscall table here `pledge` fails, and scwd with it; where
//! the kernel has no Landlock, `unveil_lock` says so once in the log and
//! goes on (the seccomp filter still has no path call at all). On other
//! systems both are no-ops.
//!
//! Promises scwd uses, and what each one is for:
//!
//! | promise | needed for |
//! |---|---|
//! | `stdio` | everything basic: read/write on open sockets (the routing socket included: route messages need root, not a promise), poll, clocks, getentropy, syslog(3) via sendsyslog(2) |
//! | `inet` | the fetcher's `socket`/`connect` to the metadata service (IP literals, so no `dns`) |
//! | `route` | the parent reading the routing table (`sysctl(NET_RT_DUMP)`, kern_pledge.c 813–817) and the interface's addresses (`getifaddrs(3)`, 894–899) before each apply and after `RTM_DESYNC`: read only (Linux: netlink dump requests addressed to the kernel) |
//! | `wroute` | `ioctl(SIOCAIFADDR_IN6/SIOCDIFADDR_IN6)` on the parent's inet6 socket (Linux: netlink requests addressed to the kernel) |
//!
//! Also understood on Linux, for a process scwd may grow: `unix` (a
//! control socket).
//!
//! Not needed, on purpose: `proc`/`id` (fork and privilege drop happen
//! before pledging), `unveil` (the filesystem is hidden and locked before
//! pledging).
//!
//! Sockets on `AF_ROUTE` and their `setsockopt` cannot be done under any
//! promise: open them before the first pledge.

use std::ffi::CString;
use std::io;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod seccomp;

#[cfg(target_os = "linux")]
pub mod landlock;

/// Restricts the process to `promises` (space-separated, see the module
/// doc); exec promises are left unchanged. A later call can only narrow:
/// asking for a promise not held fails with `EPERM`, as on OpenBSD.
/// On Linux every thread of the process is covered, and a call outside
/// the promises kills the process with SIGSYS (OpenBSD: SIGABRT).
/// Returns `Ok` without doing anything on systems other than OpenBSD and
/// Linux.
pub fn pledge(promises: &str) -> io::Result<()> {
    let c_promises = c_string(promises)?;
    // Also how tests/lab/strace-record.sh tells the processes apart.
    log::debug!("pledge \"{promises}\"");
    sys::pledge(promises, &c_promises)
}

/// Hides the whole filesystem and forbids further unveil(2) calls:
/// `unveil("/", "")` then `unveil(NULL, NULL)`, as slaacd's children do.
/// On Linux, a Landlock ruleset that handles every file system right the
/// kernel knows and grants none; it covers the calling thread and the
/// threads it starts later.
/// Returns `Ok` without doing anything on systems other than OpenBSD and
/// Linux.
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

    pub fn pledge(_promises: &str, c_promises: &CStr) -> io::Result<()> {
        // SAFETY: `c_promises` is a valid NUL-terminated string for the
        // duration of the call; a NULL execpromises leaves them unchanged.
        check(unsafe { libc::pledge(c_promises.as_ptr(), ptr::null()) })
    }

    pub fn unveil_lock() -> io::Result<()> {
        // SAFETY: both arguments are NUL-terminated string literals.
        check(unsafe { libc::unveil(c"/".as_ptr(), c"".as_ptr()) })?;
        // SAFETY: NULL, NULL is the documented way to lock unveil.
        check(unsafe { libc::unveil(ptr::null(), ptr::null()) })
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::CStr;
    use std::io;

    #[cfg(target_arch = "x86_64")]
    pub fn pledge(promises: &str, _c_promises: &CStr) -> io::Result<()> {
        super::seccomp::pledge(promises)
    }

    // Fail closed: a sandbox that is silently absent is worse than none.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn pledge(_promises: &str, _c_promises: &CStr) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no seccomp syscall table for this architecture",
        ))
    }

    pub fn unveil_lock() -> io::Result<()> {
        super::landlock::lock()
    }
}

/// PR_SET_NO_NEW_PRIVS, pledge's first step on Linux: seccomp and
/// Landlock need it from an unprivileged process, and no later execve
/// could gain privileges.
#[cfg(target_os = "linux")]
fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(any(target_os = "openbsd", target_os = "linux")))]
mod sys {
    use std::ffi::CStr;
    use std::io;

    pub fn pledge(_promises: &str, _c_promises: &CStr) -> io::Result<()> {
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
}

//! What `main` does before anything else, and the checks a start and
//! `scwd -n` share: descriptors inherited from whatever started scwd are
//! closed, the signals the parent handles are held until its handlers
//! exist, and the identity and chroot the fetcher will take are checked
//! once, by the same code for both.

use std::io;

use crate::config::{self, Config};
use crate::privsep::{self, Identity};

/// The signals the parent turns into events (`parent::SignalPipe`).
/// Until its handlers are installed, their default action would end
/// scwd without a word: rc.d(8) may send SIGHUP or SIGTERM at any time.
const HELD: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];

/// Everything `main` does first, in this order: close inherited
/// descriptors (before anything opens one of its own), then block
/// SIGHUP, SIGINT and SIGTERM. Either failing is fatal.
pub fn begin() -> io::Result<()> {
    close_inherited()?;
    set_held(libc::SIG_BLOCK)
}

/// Unblocks the held signals; a signal that arrived while they were
/// blocked is delivered now, to the handlers just installed (or, in the
/// fetcher, to the disposition it chose). Call once handlers exist.
pub fn release_signals() -> io::Result<()> {
    set_held(libc::SIG_UNBLOCK)
}

fn set_held(how: libc::c_int) -> io::Result<()> {
    // SAFETY: set is a valid sigset_t, initialised by sigemptyset before
    // use; sigprocmask only reads it and the old mask pointer may be NULL.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HELD {
            libc::sigaddset(&mut set, sig);
        }
        if libc::sigprocmask(how, &set, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Closes every descriptor but 0, 1 and 2: a socket or file left open by
/// whatever started scwd would otherwise reach the chrooted fetcher.
#[cfg(target_os = "openbsd")]
fn close_inherited() -> io::Result<()> {
    // SAFETY: nothing in this process owns a descriptor above 2 yet.
    if unsafe { libc::closefrom(3) } == -1 {
        let e = io::Error::last_os_error();
        // EBADF: there was nothing to close.
        if e.raw_os_error() != Some(libc::EBADF) {
            return Err(e);
        }
    }
    Ok(())
}

/// Closes every descriptor but 0, 1 and 2: a socket or file left open by
/// whatever started scwd would otherwise reach the chrooted fetcher.
/// close_range(2) (Linux 5.9), else each descriptor /proc lists.
#[cfg(target_os = "linux")]
fn close_inherited() -> io::Result<()> {
    // SAFETY: nothing in this process owns a descriptor above 2 yet;
    // close_range takes plain integers.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in open {
        // SAFETY: nothing in this process owns these descriptors; the
        // directory's own, already closed, gives EBADF, which is fine.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Elsewhere (type-checking only): nothing to close with.
#[cfg(not(any(target_os = "linux", target_os = "openbsd")))]
fn close_inherited() -> io::Result<()> {
    Ok(())
}

/// Everything a start refuses about the configuration before it signals
/// "booted", checked by `scwd -n` too: the fetcher's user exists and is
/// not root, and its chroot is a directory. Returns the identity the
/// fetcher takes.
pub fn check(conf: &Config) -> Result<Identity, String> {
    let id = privsep::lookup_user(&conf.user, &conf.chroot).map_err(|e| e.to_string())?;
    let chroot = config::quote(&conf.chroot);
    match std::fs::metadata(&conf.chroot) {
        Ok(m) if m.is_dir() => Ok(id),
        Ok(_) => Err(format!("chroot {chroot}: not a directory")),
        Err(e) => Err(format!("chroot {chroot}: {}", crate::strerror(&e))),
    }
}

//! daemon(3), with a readiness pipe: the process rc(8) started returns
//! once the first configuration is settled, or after a fixed budget, as
//! ntpd holds boot until the clock is set or SETTIME_TIMEOUT runs out.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::privsep::{self, Forked};

/// Detaches from the terminal. Returns, in the daemon, the descriptor to
/// write one byte to when ready; the original process waits up to
/// `budget` for it and exits 0 (ready or out of time) or 1 (the daemon
/// died first, having logged why).
pub fn detach(budget: Duration) -> io::Result<OwnedFd> {
    let (read, write) = privsep::pipe()?;
    match privsep::fork()? {
        Forked::Parent(_) => {
            drop(write);
            let ms = i32::try_from(budget.as_millis()).unwrap_or(i32::MAX);
            let status = match privsep::wait_readable(&[read.as_raw_fd()], ms) {
                Ok(r) if r[0] => {
                    let mut byte = [0u8; 1];
                    match std::fs::File::from(read).read(&mut byte) {
                        Ok(1) => 0,
                        _ => 1,
                    }
                }
                _ => 0,
            };
            std::process::exit(status);
        }
        Forked::Child => {
            drop(read);
            // SAFETY: setsid takes no arguments; it fails only if we lead a
            // process group, which a fresh child does not.
            if unsafe { libc::setsid() } == -1 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a static NUL-terminated path.
            if unsafe { libc::chdir(c"/".as_ptr()) } == -1 {
                return Err(io::Error::last_os_error());
            }
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            for fd in 0..=2 {
                // SAFETY: null is open; dup2 onto the standard descriptors
                // is what daemon(3) does.
                if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(write)
        }
    }
}

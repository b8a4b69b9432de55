//! daemon(3), with a readiness pipe: the process rc(8) started returns
//! once the outcome of the first configuration is known, or after a fixed
//! budget, as ntpd holds boot until the clock is set or SETTIME_TIMEOUT
//! runs out; its exit status says which, so `rcctl start` prints `ok`
//! only for a daemon that did its job.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::privsep::{self, Forked};

/// Exit status of the process that started the daemon when the budget
/// ran out before the outcome was known: the daemon goes on trying.
pub const STILL_TRYING: i32 = 2;

/// Detaches from the terminal. Returns, in the daemon, the descriptor to
/// write the outcome to: `0` ready, `1` failed. The original process
/// waits up to `budget` for it and exits with its status: 0 when the
/// daemon is ready, 1 when it failed or died first (having logged why),
/// [`STILL_TRYING`] when the budget ran out.
pub fn detach(budget: Duration) -> io::Result<OwnedFd> {
    let (read, write) = privsep::pipe()?;
    match privsep::fork()? {
        Forked::Parent(_) => {
            drop(write);
            std::process::exit(wait_for_outcome(read, budget));
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

/// What the daemon wrote on the readiness pipe, as an exit status.
fn wait_for_outcome(read: OwnedFd, budget: Duration) -> i32 {
    let end = Instant::now() + budget;
    let mut byte = [0u8; 1];
    let mut pipe = std::fs::File::from(read);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        match privsep::wait_readable(&[pipe.as_raw_fd()], ms) {
            Ok(r) if r[0] => break,
            // A signal: wait for what is left of the budget.
            Ok(_) if !left.is_zero() => continue,
            _ => {
                eprintln!(
                    "scwd: not configured after {} s, still trying (see the system log)",
                    budget.as_secs()
                );
                return STILL_TRYING;
            }
        }
    }
    match pipe.read(&mut byte) {
        Ok(1) if byte[0] == b'0' => 0,
        Ok(1) => {
            eprintln!("scwd: first configuration failed (see the system log)");
            1
        }
        // Closed without a word: the daemon died, and logged why.
        _ => {
            eprintln!("scwd: exited before it was configured (see the system log)");
            1
        }
    }
}

//! The process title, so that ps(1) shows `scwd: fetcher` beside the
//! parent, as base daemons' privsep children show `ntpd: ntp engine`.
//!
//! It also keeps rc.d(8) off the children: rc.subr matches processes with
//! `pgrep -xf "${daemon} ${daemon_flags}"`, an exact match on the whole
//! command line, and a child that kept the parent's would be signalled
//! and counted with it.
//!
//! OpenBSD: setproctitle(3), which prefixes the program name. Linux (the
//! test bed): the argv strings are overwritten in place, as setproctitle
//! implementations there do, so that `/proc/PID/cmdline` (what ps and
//! `pgrep -f` read) says `scwd: fetcher` and the rc.subr match can be
//! tested; `prctl(PR_SET_NAME)` sets the short name that `ps -o comm` and
//! `pgrep` without `-f` read. Neither needs a privilege, and both run
//! before the sandbox is installed.

use std::io;

/// Sets the title to `scwd: <title>`. On Linux it reads /proc/self/stat,
/// so call it before the chroot.
pub fn set(title: &str) -> io::Result<()> {
    let full = format!("scwd: {title}");
    if full.contains('\0') {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    sys::set(title, &full)
}

#[cfg(target_os = "openbsd")]
mod sys {
    use std::ffi::CString;
    use std::io;

    pub fn set(title: &str, _full: &str) -> io::Result<()> {
        let title = CString::new(title).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a constant "%s" format with one NUL-terminated string
        // argument, as setproctitle(3) expects; libc copies it.
        unsafe { libc::setproctitle(c"%s".as_ptr(), title.as_ptr()) };
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;

    pub fn set(_title: &str, full: &str) -> io::Result<()> {
        // The kernel keeps 15 bytes and a NUL; "scwd: fetcher" fits.
        let mut comm = [0u8; 16];
        let n = full.len().min(15);
        comm[..n].copy_from_slice(&full.as_bytes()[..n]);
        // SAFETY: PR_SET_NAME reads 16 bytes from a live, NUL-terminated
        // buffer; the other arguments are unused.
        if unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr(), 0, 0, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }

        let (start, end) = argv_area()?;
        let len = end - start;
        if len == 0 {
            return Ok(());
        }
        // The title and a NUL, cut to the area; the rest filled with
        // blanks, so that the area's last byte is not NUL: the kernel then
        // reports the command line up to the first NUL, as it does after
        // a setproctitle(3) that outgrew argv.
        let mut area = vec![b' '; len];
        let n = full.len().min(len - 1);
        area[..n].copy_from_slice(&full.as_bytes()[..n]);
        area[n] = 0;
        // SAFETY: [start, end) is this process's argv strings, which the
        // kernel placed in its (writable) stack at exec; no Rust reference
        // points into them (std keeps raw pointers and copies on
        // `env::args()`), and the fetcher never reads its arguments again.
        unsafe { std::ptr::copy_nonoverlapping(area.as_ptr(), start as *mut u8, len) };
        Ok(())
    }

    /// `arg_start` and `arg_end` of this process, fields 48 and 49 of
    /// /proc/self/stat (proc(5)), counted after the parenthesised name.
    fn argv_area() -> io::Result<(usize, usize)> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "/proc/self/stat: no argv range");
        let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
        // `rest` starts at field 3.
        let mut fields = rest.split_whitespace().skip(48 - 3);
        let mut next =
            || -> io::Result<usize> { fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad) };
        let (start, end) = (next()?, next()?);
        if start == 0 || end < start {
            return Err(bad());
        }
        Ok((start, end))
    }
}

#[cfg(not(any(target_os = "openbsd", target_os = "linux")))]
mod sys {
    use std::io;

    pub fn set(_title: &str, _full: &str) -> io::Result<()> {
        Ok(())
    }
}

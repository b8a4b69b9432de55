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

    /// `arg_start` and `arg_end` of this process (proc(5)).
    fn argv_area() -> io::Result<(usize, usize)> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        parse_argv_area(&stat).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "/proc/self/stat: no argv range")
        })
    }

    /// Fields 48 and 49 of a /proc/PID/stat line, counted after the
    /// parenthesised name, which may itself hold blanks and parentheses.
    pub(super) fn parse_argv_area(stat: &str) -> Option<(usize, usize)> {
        let rest = stat.rsplit_once(')')?.1;
        // `rest` starts at field 3.
        let mut fields = rest.split_whitespace().skip(48 - 3);
        let start: usize = fields.next()?.parse().ok()?;
        let end: usize = fields.next()?.parse().ok()?;
        (start != 0 && end >= start).then_some((start, end))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::sys::parse_argv_area;

    /// A /proc/PID/stat line: pid, name, then fields 3 to 52, each its
    /// own number so that an off-by-one shows.
    fn stat_line(name: &str) -> String {
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        format!("4242 ({name}) {}\n", fields.join(" "))
    }

    #[test]
    fn argv_area_is_fields_48_and_49() {
        assert_eq!(parse_argv_area(&stat_line("scwd")), Some((48, 49)));
    }

    #[test]
    fn a_name_with_blanks_and_parentheses_does_not_shift_the_fields() {
        assert_eq!(parse_argv_area(&stat_line("a) (b c")), Some((48, 49)));
        assert_eq!(parse_argv_area(&stat_line("scwd: fetcher")), Some((48, 49)));
    }

    #[test]
    fn a_short_or_empty_range_is_refused() {
        assert_eq!(parse_argv_area("1 (x) 3 4"), None);
        assert_eq!(parse_argv_area("no parenthesis"), None);
        let zero = stat_line("x").replace(" 48 49 ", " 0 0 ");
        assert_eq!(parse_argv_area(&zero), None);
        let backwards = stat_line("x").replace(" 48 49 ", " 49 48 ");
        assert_eq!(parse_argv_area(&backwards), None);
    }

    #[test]
    fn this_process_has_an_argv_area() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
        let (start, end) = parse_argv_area(&stat).expect("argv range");
        // The test binary's own path at least.
        assert!(end - start > 1, "{start}..{end}");
    }
}

#[cfg(not(any(target_os = "openbsd", target_os = "linux")))]
mod sys {
    use std::io;

    pub fn set(_title: &str, _full: &str) -> io::Result<()> {
        Ok(())
    }
}

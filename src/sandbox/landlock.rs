//! unveil(2)'s lock on Linux: a Landlock ruleset that handles every file
//! system access right the running kernel knows and grants none, so no
//! path can be opened, created, removed, executed or truncated, and (ABI
//! 6 on) no abstract Unix socket outside the process can be reached: on
//! OpenBSD every Unix socket address is a path, under unveil.
//!
//! Landlock restricts the calling thread and the threads it starts
//! afterwards. A thread already running (reqwest's, for an `https://`
//! endpoint) keeps its file system, but it is under the seccomp filter
//! of the pledge that follows, which has no path call at all.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Once;

// linux/landlock.h.
const CREATE_RULESET_VERSION: u32 = 1;
/// LANDLOCK_ACCESS_FS_EXECUTE .. MAKE_SYM: ABI 1.
const FS_ABI1: u64 = (1 << 13) - 1;
/// + LANDLOCK_ACCESS_FS_REFER: ABI 2.
const FS_REFER: u64 = 1 << 13;
/// + LANDLOCK_ACCESS_FS_TRUNCATE: ABI 3.
const FS_TRUNCATE: u64 = 1 << 14;
/// + LANDLOCK_ACCESS_FS_IOCTL_DEV: ABI 5.
const FS_IOCTL_DEV: u64 = 1 << 15;
/// LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: ABI 6.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;

/// struct landlock_ruleset_attr, as of ABI 6.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// The file system rights Landlock ABI `abi` knows.
pub fn fs_rights(abi: i64) -> u64 {
    let mut rights = FS_ABI1;
    if abi >= 2 {
        rights |= FS_REFER;
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= FS_IOCTL_DEV;
    }
    rights
}

/// The running kernel's Landlock ABI; `Err` when it has none (not built
/// in: ENOSYS; not enabled at boot: EOPNOTSUPP).
pub fn abi() -> io::Result<i64> {
    // SAFETY: a NULL attribute with size 0 and the VERSION flag only
    // asks for the ABI number.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if abi < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(abi)
    }
}

static MISSING: Once = Once::new();

/// Applies the ruleset; without Landlock, says so once and returns `Ok`.
pub fn lock() -> io::Result<()> {
    let abi = match abi() {
        Ok(abi) => abi,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EOPNOTSUPP)) => {
            MISSING.call_once(|| {
                log::warn!(
                    "unveil: no Landlock in this kernel ({}); the file system stays visible",
                    crate::strerror(&e)
                );
            });
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let attr = RulesetAttr {
        handled_access_fs: fs_rights(abi),
        handled_access_net: 0,
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET
        } else {
            0
        },
    };
    // Older kernels refuse a larger struct than they know.
    let size = if abi >= 6 {
        std::mem::size_of::<RulesetAttr>()
    } else {
        std::mem::size_of::<u64>()
    };
    // SAFETY: attr is a live landlock_ruleset_attr of at least `size`
    // bytes; flags 0 creates a ruleset.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    super::no_new_privs()?;
    // SAFETY: a ruleset descriptor and flags 0; no rule was added, so
    // every handled access is denied.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            std::os::fd::AsRawFd::as_raw_fd(&ruleset),
            0u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_right_of_each_abi_is_handled() {
        // linux/landlock.h: EXECUTE (1 << 0) .. MAKE_SYM (1 << 12) in ABI
        // 1, REFER in 2, TRUNCATE in 3, none in 4 (network), IOCTL_DEV
        // in 5, none since (scopes, logging).
        assert_eq!(fs_rights(1), 0x1fff);
        assert_eq!(fs_rights(2), 0x3fff);
        assert_eq!(fs_rights(3), 0x7fff);
        assert_eq!(fs_rights(4), 0x7fff);
        assert_eq!(fs_rights(5), 0xffff);
        assert_eq!(fs_rights(7), 0xffff);
    }
}

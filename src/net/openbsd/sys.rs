//! The system calls of the OpenBSD backend, and nothing else: every byte
//! they carry is built and read by the logic in `mod.rs` and `wire`.

use std::ffi::{CStr, CString, c_int};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

use super::{IfAddr, Kernel};
use crate::net::wire;

/// The inet6 socket for the address ioctls and the routing socket, both
/// created by root: the ioctls need the socket's `SS_PRIV` (in6.c
/// 200–201), and no pledge allows creating an `AF_ROUTE` socket.
#[derive(Debug)]
pub struct System {
    inet6: OwnedFd,
    route: OwnedFd,
}

/// The one place where a C return value of -1 becomes `errno`.
fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn socket(domain: c_int, kind: c_int, protocol: c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes only integers.
    let fd = cvt(unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: `fd` was just returned by socket(2) and has no other owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets a `u_int` option at level `AF_ROUTE`.
fn route_option(fd: &OwnedFd, option: c_int, value: u32) -> io::Result<()> {
    let len = size_of::<u32>() as libc::socklen_t;
    let level = c_int::from(wire::AF_ROUTE);
    let value = ptr::from_ref(&value).cast();
    // SAFETY: `value` is readable for `len` bytes during the call.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), level, option, value, len) }).map(drop)
}

impl System {
    /// Opens both sockets and sets the route socket's filters; on error,
    /// names the call that failed.
    pub fn open(msgs: u32, flags: u32) -> Result<Self, (&'static str, io::Error)> {
        let inet6 =
            socket(libc::AF_INET6, libc::SOCK_DGRAM, 0).map_err(|e| ("socket(AF_INET6)", e))?;
        let route = socket(libc::PF_ROUTE, libc::SOCK_RAW, libc::AF_INET6)
            .map_err(|e| ("socket(PF_ROUTE)", e))?;
        route_option(&route, wire::ROUTE_MSGFILTER, msgs)
            .map_err(|e| ("setsockopt(ROUTE_MSGFILTER)", e))?;
        // Only a fuller buffer is at stake: not worth failing for.
        if let Err(e) = route_option(&route, wire::ROUTE_FLAGFILTER, flags) {
            log::debug!("setsockopt(ROUTE_FLAGFILTER): {e}");
        }
        Ok(System { inet6, route })
    }
}

impl Kernel for System {
    fn if_index(&mut self, interface: &str) -> io::Result<Option<u16>> {
        let Ok(name) = CString::new(interface) else {
            return Ok(None);
        };
        // SAFETY: `name` is a valid NUL-terminated string during the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        Ok(u16::try_from(index).ok().filter(|&i| i != 0))
    }

    fn inet6_addresses(&mut self, interface: &str) -> io::Result<Vec<IfAddr>> {
        let mut head: *mut libc::ifaddrs = ptr::null_mut();
        // SAFETY: getifaddrs stores a list in `head`, freed below.
        cvt(unsafe { libc::getifaddrs(&mut head) })?;
        let mut found = Vec::new();
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            // SAFETY: every entry has a NUL-terminated interface name.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            // SAFETY: a non-null sockaddr is at least a struct sockaddr, and an
            // AF_INET6 one (ifa_addr, and then its ifa_netmask) a sockaddr_in6.
            let sin6 = |sa: *mut libc::sockaddr| unsafe {
                (!sa.is_null() && c_int::from((*sa).sa_family) == libc::AF_INET6)
                    .then(|| (*sa.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr)
            };
            if let (Some(addr), true) =
                (sin6(ifa.ifa_addr), name.to_bytes() == interface.as_bytes())
            {
                let mask = sin6(ifa.ifa_netmask).unwrap_or([0; 16]);
                found.push(IfAddr { addr, mask });
            }
        }
        // SAFETY: `head` came from getifaddrs and is freed exactly once.
        unsafe { libc::freeifaddrs(head) };
        Ok(found)
    }

    fn route_dump(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let af = c_int::from(wire::AF_INET6);
        let mut mib = [
            wire::CTL_NET,
            c_int::from(wire::AF_ROUTE),
            0,
            af,
            wire::NET_RT_DUMP,
            0,
            0,
        ];
        let mut len = buf.len();
        let out = if buf.is_empty() {
            ptr::null_mut()
        } else {
            buf.as_mut_ptr().cast()
        };
        // SAFETY: `out` is null (a size query) or writable for `len` bytes.
        cvt(unsafe { libc::sysctl(mib.as_mut_ptr(), 7, out, &mut len, ptr::null_mut(), 0) })?;
        Ok(len)
    }

    fn ioctl(&mut self, request: u32, arg: &mut [u8]) -> io::Result<()> {
        // The kernel copies in and out the length encoded in the request.
        if (request >> 16) as usize & 0x1fff != arg.len() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let (fd, request) = (self.inet6.as_raw_fd(), libc::c_ulong::from(request));
        // SAFETY: `arg` is writable for that length during the call.
        cvt(unsafe { libc::ioctl(fd, request, arg.as_mut_ptr()) }).map(drop)
    }

    fn route_write(&mut self, msg: &[u8]) -> io::Result<usize> {
        let fd = self.route.as_raw_fd();
        // SAFETY: `msg` is readable for `msg.len()` bytes during the call.
        Ok(cvt(unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) })? as usize)
    }

    fn route_recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (fd, flags) = (self.route.as_raw_fd(), libc::MSG_DONTWAIT);
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        Ok(cvt(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })? as usize)
    }

    fn route_wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let (fd, events) = (self.route.as_raw_fd(), libc::POLLIN);
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: one valid, writable pollfd.
        Ok(cvt(unsafe { libc::poll(&mut pfd, 1, ms) })? > 0)
    }

    fn route_fd(&self) -> RawFd {
        self.route.as_raw_fd()
    }
}

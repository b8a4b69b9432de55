//! OpenBSD backend: ioctl and routing socket.
//!
//! Addresses go through `ioctl(SIOCAIFADDR_IN6/SIOCDIFADDR_IN6)` on an
//! `AF_INET6` datagram socket, the default route through `RTM_ADD` and
//! `RTM_DELETE` written to a `PF_ROUTE` socket, as slaacd's parent does.
//! Every byte handed to the kernel comes from [`wire`]; this file only
//! makes the system calls. Everything is opened in [`OpenBsdBackend::open`],
//! before pledge: a pledged process can neither create an `AF_ROUTE`
//! socket nor set its options, nor read the interface list.

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_int};
use std::io;
use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant};

use crate::net::wire::{self, Message, WireError};
use crate::net::{Added, Backend, DefaultRoute, NetError};
use crate::plan::Ipv6Net;

/// How long to wait for the kernel's echo of a route request that
/// `write(2)` already accepted; the echo only confirms, so a missing one
/// is not an error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Routing messages the route socket receives: replies to scwd's own
/// requests, and address changes that keep [`OpenBsdBackend`]'s view of
/// the interface current. `RTM_DESYNC` cannot be filtered out.
const MSG_FILTER: [u8; 4] = [
    wire::RTM_ADD,
    wire::RTM_DELETE,
    wire::RTM_NEWADDR,
    wire::RTM_DELADDR,
];

/// Routes that come and go with traffic (neighbour cache, local and
/// broadcast routes, clones) would only fill the socket buffer.
const FLAG_FILTER: i32 =
    wire::RTF_LLINFO | wire::RTF_LOCAL | wire::RTF_BROADCAST | wire::RTF_CLONED;

/// The IPv6 address and default route of one interface, through the
/// OpenBSD kernel.
#[derive(Debug)]
pub struct OpenBsdBackend {
    interface: String,
    ifindex: u16,
    /// `AF_INET6` datagram socket created by root: the ioctls need both.
    inet6: OwnedFd,
    /// `PF_ROUTE` socket for `AF_INET6`, filtered, reads its own replies.
    route: OwnedFd,
    seq: i32,
    /// The interface's IPv6 addresses as the kernel has them: taken with
    /// getifaddrs(3) at open (impossible after pledge), then kept current
    /// from scwd's own calls and `RTM_NEWADDR`/`RTM_DELADDR`. This is what
    /// makes [`Added`] truthful: `SIOCAIFADDR_IN6` does not say whether the
    /// address was already there.
    present: HashSet<Ipv6Addr>,
    /// Default routes this process added: until the routing table is
    /// listed (adoption of labelled routes), what `default_routes` knows.
    added_routes: Vec<Ipv6Addr>,
}

/// The one place where a C return value of -1 becomes `errno`.
fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// An ioctl argument aligned as the kernel structs are.
#[repr(C, align(8))]
struct Request<const N: usize>([u8; N]);

impl OpenBsdBackend {
    /// Resolves `interface`, opens the ioctl and routing sockets and takes
    /// the snapshot of the interface's IPv6 addresses. Call as root,
    /// before pledge(2).
    pub fn open(interface: &str) -> Result<Self, NetError> {
        let fail = |call: &str, e: io::Error| NetError::new(interface, call, e);
        let ifindex = if_index(interface).map_err(|e| fail("if_nametoindex", e))?;
        let inet6 =
            socket(libc::AF_INET6, libc::SOCK_DGRAM, 0).map_err(|e| fail("socket(AF_INET6)", e))?;
        let route = socket(libc::PF_ROUTE, libc::SOCK_RAW, libc::AF_INET6)
            .map_err(|e| fail("socket(PF_ROUTE)", e))?;
        let msgs = MSG_FILTER.iter().fold(0u32, |f, &t| f | 1 << t);
        route_option(&route, wire::ROUTE_MSGFILTER, msgs)
            .map_err(|e| fail("setsockopt(ROUTE_MSGFILTER)", e))?;
        // Only a smaller buffer is at stake, and kernels before
        // ROUTE_FLAGFILTER still work without it.
        if let Err(e) = route_option(&route, wire::ROUTE_FLAGFILTER, FLAG_FILTER as u32) {
            log::debug!("{interface}: setsockopt(ROUTE_FLAGFILTER): {e}");
        }
        let present = inet6_addresses(interface).map_err(|e| fail("getifaddrs", e))?;
        Ok(OpenBsdBackend {
            interface: interface.to_string(),
            ifindex,
            inet6,
            route,
            seq: 0,
            present,
            added_routes: Vec::new(),
        })
    }

    fn error(&self, operation: String, e: io::Error) -> NetError {
        NetError::new(&self.interface, operation, e)
    }

    /// `ioctl` on the inet6 socket with a request from [`wire`].
    fn ioctl<const N: usize>(&self, request: u32, bytes: [u8; N]) -> io::Result<()> {
        // The parameter length is encoded in the request number.
        debug_assert_eq!((request >> 16) as usize & 0x1fff, N);
        let mut req = Request(bytes);
        // SAFETY: `req` is N writable bytes, the size the request number
        // tells the kernel to copy, and outlives the call.
        let ret = unsafe {
            libc::ioctl(
                self.inet6.as_raw_fd(),
                libc::c_ulong::from(request),
                req.0.as_mut_ptr(),
            )
        };
        cvt(ret).map(drop)
    }

    /// Writes a route message built for the next sequence number and our
    /// pid, then waits for the kernel's echo of it.
    fn route_request(
        &mut self,
        msg_type: u8,
        build: impl FnOnce(i32, i32) -> Vec<u8>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let msg = build(seq, pid);
        // SAFETY: `msg` is readable for `msg.len()` bytes during the call.
        let ret = unsafe { libc::write(self.route.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
        // route_output() returns its error from write(2); an echo carrying
        // rtm_errno may follow, and is skipped later by its sequence number.
        if cvt(ret)? as usize != msg.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        self.await_reply(msg_type, seq, pid)
    }

    fn await_reply(&mut self, msg_type: u8, seq: i32, pid: i32) -> io::Result<()> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::debug!("{}: no reply to routing message {seq}", self.interface);
                return Ok(());
            }
            if !self.wait_readable(left)? {
                continue;
            }
            match self.next_message()? {
                Some(Ok(Message::Route(m)))
                    if m.msg_type == msg_type && m.seq == seq && m.pid == pid =>
                {
                    return match m.errno {
                        0 => Ok(()),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                Some(Ok(other)) => self.note(&other),
                Some(Err(e)) => log::warn!("{}: route socket: {e}", self.interface),
                None => {}
            }
        }
    }

    /// Waits until the route socket is readable; false on timeout or a
    /// signal.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.route.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: one valid, writable pollfd.
        match cvt(unsafe { libc::poll(&mut pfd, 1, ms) }) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads one pending routing message without waiting; None when
    /// nothing is pending.
    fn next_message(&self) -> io::Result<Option<Result<Message, WireError>>> {
        // Longer than any message: the kernel builds them in one cluster.
        let mut buf = [0u8; 2 * wire::RTM_MAXSIZE];
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        let ret = unsafe {
            libc::recv(
                self.route.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match cvt(ret) {
            Ok(n) => Ok(Some(wire::decode(&buf[..n as usize]))),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Brings the view of the interface's addresses up to date with what
    /// the kernel reported since the last call.
    fn drain(&mut self) {
        loop {
            match self.next_message() {
                Ok(Some(Ok(msg))) => self.note(&msg),
                Ok(Some(Err(e))) => log::warn!("{}: route socket: {e}", self.interface),
                Ok(None) => return,
                Err(e) => {
                    log::warn!("{}: route socket: {e}", self.interface);
                    return;
                }
            }
        }
    }

    fn note(&mut self, msg: &Message) {
        match msg {
            Message::Address(m) if m.index == self.ifindex => match (m.msg_type, m.address()) {
                (wire::RTM_NEWADDR, Some(addr)) => {
                    self.present.insert(addr);
                }
                (wire::RTM_DELADDR, Some(addr)) => {
                    self.present.remove(&addr);
                }
                _ => {}
            },
            Message::Route(m) if m.msg_type == wire::RTM_DESYNC => {
                log::warn!(
                    "{}: route socket overflowed, address changes may be missed",
                    self.interface
                );
            }
            _ => {}
        }
    }
}

impl Backend for OpenBsdBackend {
    fn interface(&self) -> &str {
        &self.interface
    }

    fn ifindex(&self) -> Option<u32> {
        Some(u32::from(self.ifindex))
    }

    /// The interface was resolved at open, which still requires it.
    fn resolve(&mut self) -> Result<bool, NetError> {
        Ok(true)
    }

    fn events_fd(&self) -> RawFd {
        self.route.as_raw_fd()
    }

    fn take_events(&mut self) -> bool {
        self.drain();
        false
    }

    fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, NetError> {
        let ours = |&gateway: &Ipv6Addr| DefaultRoute {
            gateway,
            ours: true,
        };
        Ok(self.added_routes.iter().map(ours).collect())
    }

    fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError> {
        let op = format!("SIOCAIFADDR_IN6 {net}");
        let req = wire::siocaifaddr_in6(&self.interface, net)
            .map_err(|e| self.error(op.clone(), invalid(e)))?;
        self.drain();
        let existed = self.present.contains(&net.addr);
        // Re-issuing an existing address only refreshes its lifetimes.
        self.ioctl(wire::SIOCAIFADDR_IN6, req)
            .map_err(|e| self.error(op, e))?;
        self.present.insert(net.addr);
        Ok(if existed { Added::Existing } else { Added::New })
    }

    fn delete_address(&mut self, net: &Ipv6Net) -> Result<(), NetError> {
        let op = format!("SIOCDIFADDR_IN6 {net}");
        let req = wire::siocdifaddr_in6(&self.interface, net.addr)
            .map_err(|e| self.error(op.clone(), invalid(e)))?;
        match self.ioctl(wire::SIOCDIFADDR_IN6, req) {
            Err(e) if e.raw_os_error() != Some(libc::EADDRNOTAVAIL) => {
                return Err(self.error(op, e));
            }
            _ => {}
        }
        self.present.remove(&net.addr);
        Ok(())
    }

    fn add_default_route(&mut self, gateway: Ipv6Addr) -> Result<Added, NetError> {
        let ifindex = self.ifindex;
        let result = self.route_request(wire::RTM_ADD, |seq, pid| {
            wire::rtm_add_default(ifindex, gateway, seq, pid)
        });
        match result {
            Ok(()) => {
                self.added_routes.push(gateway);
                Ok(Added::New)
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Added::Existing),
            Err(e) => Err(self.error(format!("RTM_ADD default via {gateway}"), e)),
        }
    }

    fn delete_default_route(&mut self, gateway: Ipv6Addr) -> Result<(), NetError> {
        let ifindex = self.ifindex;
        let result = self.route_request(wire::RTM_DELETE, |seq, pid| {
            wire::rtm_delete_default(ifindex, gateway, seq, pid)
        });
        match result {
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                Err(self.error(format!("RTM_DELETE default via {gateway}"), e))
            }
            _ => {
                self.added_routes.retain(|g| *g != gateway);
                Ok(())
            }
        }
    }
}

/// The interface's index, which fits the 16 bits routing messages carry.
fn if_index(interface: &str) -> io::Result<u16> {
    let missing = || io::Error::new(io::ErrorKind::NotFound, "no such interface");
    let name = CString::new(interface).map_err(|_| missing())?;
    // SAFETY: `name` is a valid NUL-terminated string during the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    match u16::try_from(index) {
        Ok(0) | Err(_) => Err(missing()),
        Ok(index) => Ok(index),
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
    // SAFETY: `value` is readable for the size passed, during the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            c_int::from(wire::AF_ROUTE),
            option,
            ptr::from_ref(&value).cast(),
            size_of::<u32>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// The IPv6 addresses configured on `interface`, without embedded scope.
fn inet6_addresses(interface: &str) -> io::Result<HashSet<Ipv6Addr>> {
    let mut head: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs stores a list in `head`, freed below.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = HashSet::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        // SAFETY: every entry has a NUL-terminated interface name.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: a non-null ifa_addr points to at least a struct sockaddr.
        let is_inet6 = !ifa.ifa_addr.is_null()
            && c_int::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET6;
        if is_inet6 && name.to_bytes() == interface.as_bytes() {
            // SAFETY: an AF_INET6 ifa_addr is a struct sockaddr_in6.
            let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
            found.insert(wire::strip_scope(sin6.sin6_addr.s6_addr).0);
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

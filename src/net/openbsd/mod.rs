//! OpenBSD backend: ioctl and routing socket.
//!
//! Addresses go through `ioctl(SIOCAIFADDR_IN6/SIOCDIFADDR_IN6)` on an
//! `AF_INET6` datagram socket, the default route through `RTM_ADD` and
//! `RTM_DELETE` written to a `PF_ROUTE` socket, as slaacd's parent does.
//!
//! This file is the backend's logic and runs on every host: which request
//! answers which echo, what an errno means, which addresses the interface
//! has, which routes are scwd's. The system calls sit behind [`Kernel`];
//! its only real implementation, `sys.rs`, is compiled for OpenBSD alone,
//! and tests drive this logic through a simulated kernel instead. Errors
//! come back in OpenBSD's errno numbering on every host, so they are
//! compared with [`wire`]'s constants, never with `libc`'s.
//!
//! What scwd knows about the kernel, and how it stays true:
//! - The interface's IPv6 addresses: listed at open (and after an
//!   overflow), then kept current from `RTM_NEWADDR`/`RTM_DELADDR` and
//!   scwd's own calls. `SIOCAIFADDR_IN6` is never issued for an address
//!   the interface already has: the kernel would overwrite its flags and
//!   lifetimes (in6.c 709, 731), turning slaacd's temporary address into
//!   a permanent one.
//! - scwd's default routes: the interface's `::/0` routes labelled
//!   `scwd`, adopted from the routing table at open (so ownership
//!   survives a restart), then from the echoes of scwd's own `RTM_ADD`,
//!   each with the priority the kernel gave it. A delete first asks the
//!   kernel (`RTM_GET`) whether the route it would remove carries the
//!   label, and names that priority: `RTM_DELETE` matches on destination,
//!   gateway and priority only (rtsock.c 959–962, rtable.c 462–471).
//! - Addresses carry no label: an address already present is never
//!   scwd's, whoever added it. After a restart scwd therefore owns no
//!   address; it leaves the ones it finds, never removes them.
//! - On `RTM_DESYNC` the socket dropped messages (rtsock.c 585–595):
//!   both views are taken again before the next decision.

use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::net::wire::{self, Message, RouteMessage, WireError};
use crate::net::{Added, Backend, DefaultRoute, NetError};
use crate::plan::Ipv6Net;

#[cfg(target_os = "openbsd")]
mod sys;

/// The backend on the running OpenBSD kernel.
#[cfg(target_os = "openbsd")]
pub type SystemBackend = OpenBsdBackend<sys::System>;

/// How long to wait for the kernel's echo of a route request that
/// `write(2)` already accepted; the echo only confirms, so a missing one
/// is not an error.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Routing messages the route socket receives (`ROUTE_MSGFILTER`, bit
/// `1 << type`, rtsock.c 522–523): replies to scwd's own requests, route
/// and address changes that keep the backend's view current, and the
/// interface coming and going. `RTM_DESYNC` cannot be filtered out.
pub const MSG_FILTER: u32 = 1 << wire::RTM_ADD
    | 1 << wire::RTM_DELETE
    | 1 << wire::RTM_GET
    | 1 << wire::RTM_NEWADDR
    | 1 << wire::RTM_DELADDR
    | 1 << wire::RTM_IFANNOUNCE;

/// Routes that come and go with traffic (neighbour cache, local and
/// broadcast routes, clones) would only fill the socket buffer
/// (`ROUTE_FLAGFILTER`, rtsock.c 525).
pub const FLAG_FILTER: u32 =
    (wire::RTF_LLINFO | wire::RTF_LOCAL | wire::RTF_BROADCAST | wire::RTF_CLONED) as u32;

/// One IPv6 address of an interface as getifaddrs(3) returns it: the
/// address with its KAME-embedded scope, and its netmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// `sin6_addr` of `ifa_addr`.
    pub addr: [u8; 16],
    /// `sin6_addr` of `ifa_netmask`, zero when there is none.
    pub mask: [u8; 16],
}

/// The system calls the backend makes, on descriptors opened as root
/// before pledge. Errors carry OpenBSD's errno numbering; the calls
/// neither retry nor interpret them.
pub trait Kernel {
    /// if_nametoindex(3); None when there is no such interface.
    fn if_index(&mut self, interface: &str) -> io::Result<Option<u16>>;
    /// getifaddrs(3): the `AF_INET6` addresses of `interface`.
    fn inet6_addresses(&mut self, interface: &str) -> io::Result<Vec<IfAddr>>;
    /// `sysctl(CTL_NET, PF_ROUTE, 0, AF_INET6, NET_RT_DUMP, 0, 0)` into
    /// `buf`: the IPv6 routing table as `RTM_GET` messages laid end to
    /// end. Returns the bytes written, or with an empty `buf` the size
    /// needed; `ENOMEM` when `buf` is too small.
    fn route_dump(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// `ioctl(2)` on the `AF_INET6` socket; `arg` is the whole request, of
    /// the length encoded in `request`.
    fn ioctl(&mut self, request: u32, arg: &mut [u8]) -> io::Result<()>;
    /// `write(2)` of one message to the route socket.
    fn route_write(&mut self, msg: &[u8]) -> io::Result<usize>;
    /// `recv(2, MSG_DONTWAIT)` of one message; `EAGAIN` when none is pending.
    fn route_recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// `poll(2)` for the route socket to be readable; false on timeout.
    fn route_wait(&mut self, timeout: Duration) -> io::Result<bool>;
    /// The route socket, for the caller's poll loop.
    fn route_fd(&self) -> RawFd;
}

/// What the kernel answered to one route request.
#[derive(Debug)]
struct Reply {
    /// The echo, when it came in time.
    echo: Option<RouteMessage>,
}

/// The IPv6 address and default route of one interface, through the
/// OpenBSD kernel behind `K`.
#[derive(Debug)]
pub struct OpenBsdBackend<K> {
    kernel: K,
    interface: String,
    /// None while the interface does not exist.
    ifindex: Option<u16>,
    seq: i32,
    /// The interface's IPv6 addresses with their prefix lengths.
    present: HashMap<Ipv6Addr, u8>,
    /// scwd's `::/0` routes on the interface: gateway → priority.
    routes: HashMap<Ipv6Addr, u8>,
    /// `RTM_DESYNC` came: both views must be taken again.
    stale: bool,
    /// The interface appeared, vanished or was recreated since the last
    /// [`OpenBsdBackend::take_events`].
    changed: bool,
}

#[cfg(target_os = "openbsd")]
impl OpenBsdBackend<sys::System> {
    /// Opens the ioctl and routing sockets, and takes the view of the
    /// interface's addresses and of scwd's routes. A missing interface is
    /// no error: it is looked for again later. Call as root, before
    /// pledge(2): neither the sockets nor the routing table dump are
    /// possible after `pledge("stdio wroute")`.
    pub fn open(interface: &str) -> Result<Self, NetError> {
        let kernel = sys::System::open(MSG_FILTER, FLAG_FILTER)
            .map_err(|(call, e)| NetError::new(interface, call, e))?;
        OpenBsdBackend::with_kernel(kernel, interface)
    }
}

/// `e` for a message: on OpenBSD as it is; elsewhere an OpenBSD errno
/// would print as the host's text for that number, so it becomes
/// OpenBSD's text.
fn readable(e: io::Error) -> io::Error {
    if cfg!(target_os = "openbsd") {
        return e;
    }
    match e.raw_os_error().and_then(wire::strerror) {
        Some(text) => io::Error::other(text),
        None => e,
    }
}

fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

impl<K: Kernel> OpenBsdBackend<K> {
    /// The backend over `kernel`, whose descriptors are already open:
    /// resolves `interface` and takes the views.
    pub fn with_kernel(kernel: K, interface: &str) -> Result<Self, NetError> {
        let mut backend = OpenBsdBackend {
            kernel,
            interface: interface.to_string(),
            ifindex: None,
            seq: 0,
            present: HashMap::new(),
            routes: HashMap::new(),
            stale: false,
            changed: false,
        };
        backend.ifindex = backend.lookup()?;
        // Nothing here may stop scwd before its boot signal: tables that
        // cannot be read now are read again before the first change.
        if let Err(e) = backend.retake() {
            log::warn!("{e}");
            backend.stale = true;
        }
        Ok(backend)
    }

    /// The kernel, for inspection.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// scwd's default routes as the backend knows them: gateway and the
    /// priority the kernel gave it.
    pub fn own_routes(&self) -> Vec<(Ipv6Addr, u8)> {
        let mut v: Vec<_> = self.routes.iter().map(|(g, p)| (*g, *p)).collect();
        v.sort();
        v
    }

    fn error(&self, operation: impl Into<String>, e: io::Error) -> NetError {
        NetError::new(&self.interface, operation, readable(e))
    }

    fn lookup(&mut self) -> Result<Option<u16>, NetError> {
        let name = self.interface.clone();
        self.kernel
            .if_index(&name)
            .map_err(|e| self.error("if_nametoindex", e))
    }

    /// Takes the view of the interface's addresses and of scwd's routes
    /// from the kernel's tables.
    fn retake(&mut self) -> Result<(), NetError> {
        self.present.clear();
        self.routes.clear();
        // Until this succeeds, the views are known to be wrong.
        self.stale = true;
        let Some(index) = self.ifindex else {
            self.stale = false;
            return Ok(());
        };
        let name = self.interface.clone();
        let addrs = self
            .kernel
            .inet6_addresses(&name)
            .map_err(|e| self.error("getifaddrs", e))?;
        for a in addrs {
            let (addr, _) = wire::strip_scope(a.addr);
            let prefixlen = wire::mask_prefixlen(a.mask).unwrap_or(128);
            self.present.insert(addr, prefixlen);
        }
        for msg in self.dump()? {
            if let Some((gw, prio, true)) = default_route_of(&msg, index) {
                self.routes.insert(gw, prio);
            }
        }
        self.stale = false;
        Ok(())
    }

    fn dump(&mut self) -> Result<Vec<RouteMessage>, NetError> {
        let buf = self
            .table()
            .map_err(|e| self.error("sysctl(NET_RT_DUMP)", e))?;
        let mut out = Vec::new();
        for m in wire::decode_all(&buf) {
            match m {
                Ok(Message::Route(r)) => out.push(r),
                Ok(_) => {}
                Err(e) => log::warn!("{}: routing table: {e}", self.interface),
            }
        }
        Ok(out)
    }

    /// The routing table's bytes; routes added between the size query
    /// and the copy make the copy fail with `ENOMEM`, so ask again.
    fn table(&mut self) -> io::Result<Vec<u8>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let len = self.kernel.route_dump(&mut [])?;
            let mut buf = vec![0u8; len + len / 8 + 1024];
            match self.kernel.route_dump(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if errno(&e) == Some(wire::ENOMEM) && tries < 8 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Brings the views up to date before a decision.
    fn sync(&mut self) -> Result<(), NetError> {
        self.drain();
        if self.stale {
            log::info!(
                "{}: reading the routing table and addresses again",
                self.interface
            );
            self.retake()?;
        }
        Ok(())
    }

    /// Reads one pending routing message; None when nothing is pending.
    fn next_message(&mut self) -> io::Result<Option<Result<Message, WireError>>> {
        // Longer than any message: the kernel builds them in one cluster.
        let mut buf = [0u8; 2 * wire::RTM_MAXSIZE];
        match self.kernel.route_recv(&mut buf) {
            Ok(n) => Ok(Some(wire::decode(&buf[..n.min(buf.len())]))),
            Err(e) if matches!(errno(&e), Some(wire::EAGAIN | wire::EINTR)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Handles every message pending.
    fn drain(&mut self) {
        loop {
            match self.next_message() {
                Ok(Some(Ok(msg))) => self.note(&msg),
                Ok(Some(Err(e))) => log::warn!("{}: route socket: {e}", self.interface),
                Ok(None) => return,
                Err(e) => {
                    log::warn!("{}: route socket: {}", self.interface, readable(e));
                    return;
                }
            }
        }
    }

    /// Updates the views from one message the kernel sent.
    fn note(&mut self, msg: &Message) {
        match msg {
            Message::Address(m) if Some(m.index) == self.ifindex => {
                let Some(addr) = m.address() else { return };
                match m.msg_type {
                    wire::RTM_NEWADDR => {
                        let plen = m.addrs.prefixlen().unwrap_or(128);
                        self.present.insert(addr, plen);
                    }
                    wire::RTM_DELADDR => {
                        self.present.remove(&addr);
                    }
                    _ => {}
                }
            }
            Message::Announce(m) if m.name == self.interface => {
                self.changed = true;
                // if_detach() takes the interface's addresses and routes
                // with it; a new one starts empty.
                self.present.clear();
                self.routes.clear();
                self.ifindex = (m.what == wire::IFAN_ARRIVAL).then_some(m.index);
                // What it got between its arrival and this read is in
                // its tables, not necessarily in messages still queued.
                self.stale = self.ifindex.is_some();
            }
            Message::Route(m) if m.msg_type == wire::RTM_DESYNC => self.stale = true,
            Message::Route(m) if m.errno == 0 => {
                let Some(index) = self.ifindex else { return };
                let Some((gw, prio, ours)) = default_route_of(m, index) else {
                    return;
                };
                match m.msg_type {
                    wire::RTM_ADD if ours => {
                        self.routes.insert(gw, prio);
                    }
                    wire::RTM_DELETE if self.routes.get(&gw) == Some(&prio) => {
                        self.routes.remove(&gw);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Writes a route message built for the next sequence number and our
    /// pid, then waits for the kernel's echo of it. A refused request
    /// gives the error of `write(2)`; its echo, which carries the same
    /// `rtm_errno` (rtsock.c 872, 893), is skipped later by its seq.
    fn route_request(
        &mut self,
        msg_type: u8,
        build: impl FnOnce(i32, i32) -> Vec<u8>,
    ) -> io::Result<Reply> {
        self.seq = self.seq.wrapping_add(1);
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let seq = self.seq;
        let msg = build(seq, pid);
        if self.kernel.route_write(&msg)? != msg.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::debug!("{}: no reply to routing message {seq}", self.interface);
                return Ok(Reply { echo: None });
            }
            match self.kernel.route_wait(left) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) if errno(&e) == Some(wire::EINTR) => continue,
                Err(e) => return Err(e),
            }
            match self.next_message()? {
                Some(Ok(Message::Route(m)))
                    if m.msg_type == msg_type && m.seq == seq && m.pid == pid =>
                {
                    if m.errno != 0 {
                        return Err(io::Error::from_raw_os_error(m.errno));
                    }
                    self.note(&Message::Route(m.clone()));
                    return Ok(Reply { echo: Some(m) });
                }
                Some(Ok(other)) => self.note(&other),
                Some(Err(e)) => log::warn!("{}: route socket: {e}", self.interface),
                None => {}
            }
        }
    }

    fn ioctl(&mut self, request: u32, arg: &mut [u8]) -> io::Result<()> {
        self.kernel.ioctl(request, arg)
    }

    /// The interface's index, or the error a request for a missing
    /// interface gets.
    fn index_for(&self, operation: &str) -> Result<u16, NetError> {
        self.ifindex
            .ok_or_else(|| self.error(operation, io::Error::from_raw_os_error(wire::ENXIO)))
    }

    /// Asks the kernel which `::/0` route via `gateway` at `priority`
    /// (0: any) a delete would remove: its priority if it is labelled
    /// scwd, None if there is none or it is someone else's.
    fn own_route_at(
        &mut self,
        index: u16,
        gateway: Ipv6Addr,
        priority: u8,
    ) -> Result<Option<u8>, NetError> {
        let req = self.route_request(wire::RTM_GET, |seq, pid| {
            wire::rtm_get_default_via(index, gateway, priority, seq, pid)
        });
        match req {
            Ok(Reply { echo: Some(m) }) => match default_route_of(&m, index) {
                Some((gw, prio, true)) if gw == gateway => Ok(Some(prio)),
                _ => Ok(None),
            },
            // No answer, no proof: leave the route.
            Ok(Reply { echo: None }) => Ok(None),
            Err(e) if errno(&e) == Some(wire::ESRCH) => Ok(None),
            Err(e) => Err(self.error(format!("RTM_GET default via {gateway}"), e)),
        }
    }
}

/// `(gateway, priority, labelled scwd)` if `m` is about a `::/0` route
/// via a gateway on interface `index`.
fn default_route_of(m: &RouteMessage, index: u16) -> Option<(Ipv6Addr, u8, bool)> {
    use wire::{RTAX_DST, RTAX_GATEWAY, RTF_GATEWAY};
    if m.index != index || m.flags & RTF_GATEWAY == 0 || m.tableid != 0 {
        return None;
    }
    let (dst, _) = m.addrs.inet6(RTAX_DST)?;
    if !dst.is_unspecified() || m.addrs.prefixlen() != Some(0) {
        return None;
    }
    let (gw, _) = m.addrs.inet6(RTAX_GATEWAY)?;
    let ours = m.addrs.label() == Some(wire::ROUTE_LABEL);
    Some((gw, m.priority, ours))
}

impl<K: Kernel> Backend for OpenBsdBackend<K> {
    fn interface(&self) -> &str {
        &self.interface
    }

    fn ifindex(&self) -> Option<u32> {
        self.ifindex.map(u32::from)
    }

    /// Looks the interface up again; when its index changed, both views
    /// are taken again.
    fn resolve(&mut self) -> Result<bool, NetError> {
        let index = self.lookup()?;
        if index != self.ifindex {
            self.ifindex = index;
            self.retake()?;
        }
        Ok(index.is_some())
    }

    /// The route socket: `RTM_IFANNOUNCE` is in its filter.
    fn events_fd(&self) -> RawFd {
        self.kernel.route_fd()
    }

    fn take_events(&mut self) -> bool {
        self.drain();
        std::mem::take(&mut self.changed)
    }

    /// From the routing table itself (sysctl `NET_RT_DUMP`, which needs
    /// the `route` promise after pledge): `ours` is the label `scwd`.
    fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, NetError> {
        self.sync()?;
        let Some(index) = self.ifindex else {
            return Ok(Vec::new());
        };
        let table = self.dump()?;
        // Every interface's: one through another interface is `elsewhere`.
        Ok(table
            .iter()
            .filter_map(|m| {
                let (gateway, _, ours) = default_route_of(m, m.index)?;
                let elsewhere = m.index != index;
                Some(DefaultRoute {
                    gateway,
                    ours,
                    elsewhere,
                })
            })
            .collect())
    }

    fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError> {
        let op = format!("SIOCAIFADDR_IN6 {net}");
        let mut req = wire::siocaifaddr_in6(&self.interface, net)
            .map_err(|e| self.error(op.clone(), invalid(e)))?;
        self.sync()?;
        match self.present.get(&net.addr) {
            // Issuing it again would rewrite the address's flags and
            // lifetimes (in6.c 709, 731): whoever added it keeps it as is.
            Some(&plen) if plen == net.prefixlen => return Ok(Added::Existing),
            // The kernel would refuse it (in6.c 673); the address is not
            // scwd's to replace.
            Some(&plen) => {
                let why = format!("already configured with prefix length {plen}");
                return Err(self.error(op, io::Error::other(why)));
            }
            None => {}
        }
        self.ioctl(wire::SIOCAIFADDR_IN6, &mut req)
            .map_err(|e| self.error(op, e))?;
        self.present.insert(net.addr, net.prefixlen);
        Ok(Added::New)
    }

    fn delete_address(&mut self, net: &Ipv6Net) -> Result<(), NetError> {
        let op = format!("SIOCDIFADDR_IN6 {net}");
        let mut req = wire::siocdifaddr_in6(&self.interface, net.addr)
            .map_err(|e| self.error(op.clone(), invalid(e)))?;
        self.sync()?;
        match self.present.get(&net.addr) {
            None => return Ok(()),
            // The same address with another prefix is not the one scwd
            // added: SIOCDIFADDR_IN6 matches on the address alone.
            Some(&plen) if plen != net.prefixlen => {
                log::info!(
                    "{}: {} is now /{plen}, not scwd's; left alone",
                    self.interface,
                    net.addr
                );
                return Ok(());
            }
            Some(_) => {}
        }
        match self.ioctl(wire::SIOCDIFADDR_IN6, &mut req) {
            Err(e) if errno(&e) != Some(wire::EADDRNOTAVAIL) => return Err(self.error(op, e)),
            _ => {}
        }
        self.present.remove(&net.addr);
        Ok(())
    }

    fn add_default_route(&mut self, gateway: Ipv6Addr) -> Result<Added, NetError> {
        let op = format!("RTM_ADD default via {gateway}");
        self.sync()?;
        let index = self.index_for(&op)?;
        if self.routes.contains_key(&gateway) {
            return Ok(Added::Existing);
        }
        let result = self.route_request(wire::RTM_ADD, |seq, pid| {
            wire::rtm_add_default(index, gateway, seq, pid)
        });
        match result {
            Ok(Reply { echo }) => {
                // The echo carries the priority the kernel chose (8 for a
                // static route on a default interface, route.c 996–997);
                // without it, 0 makes a later delete ask at any priority.
                let prio = echo.map_or(0, |m| m.priority);
                self.routes.insert(gateway, prio);
                Ok(Added::New)
            }
            // The same gateway at the same priority is there: scwd's own
            // from before, or slaacd's (rtable.c 601–613). Either way
            // nothing changed, and it stays whose it was.
            Err(e) if errno(&e) == Some(wire::EEXIST) => Ok(Added::Existing),
            Err(e) => Err(self.error(op, e)),
        }
    }

    fn delete_default_route(&mut self, gateway: Ipv6Addr) -> Result<(), NetError> {
        let op = format!("RTM_DELETE default via {gateway}");
        self.sync()?;
        // The interface went and took its routes along (if_detach()).
        let Some(index) = self.ifindex else {
            self.routes.remove(&gateway);
            return Ok(());
        };
        let known = self.routes.remove(&gateway).unwrap_or(0);
        let Some(prio) = self.own_route_at(index, gateway, known)? else {
            log::debug!(
                "{}: no route via {gateway} labelled {}; nothing to delete",
                self.interface,
                wire::ROUTE_LABEL
            );
            return Ok(());
        };
        let result = self.route_request(wire::RTM_DELETE, |seq, pid| {
            wire::rtm_delete_default_at(index, gateway, prio, seq, pid)
        });
        match result {
            Err(e) if errno(&e) != Some(wire::ESRCH) => {
                self.routes.insert(gateway, prio);
                Err(self.error(op, e))
            }
            _ => Ok(()),
        }
    }
}

//! Linux backend over rtnetlink.
//!
//! The test bed's counterpart of the OpenBSD ioctl and routing-socket
//! backend: the same [`Plan`](crate::plan::Plan) applied through one
//! `NETLINK_ROUTE` socket, synchronously. Messages are built by pure
//! `create_*` functions and replies read by a pure `read_replies`; one
//! `transact` method is the only place that does I/O.
//!
//! scwd marks the default routes it adds with its own routing protocol
//! number, [`RTPROT_SCWD`] (the equivalent of OpenBSD's route label
//! `scwd`), and deletes only routes carrying it.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{Added, Backend, DefaultRoute, NetError};
use crate::plan::Ipv6Net;

/// Routing protocol number scwd puts on the routes it adds (`proto 83` in
/// `ip -6 route`). Not one of the kernel's or iproute2's assigned numbers.
pub const RTPROT_SCWD: u8 = 0x53;

/// Adding an address: `EEXIST` if the interface already has it.
const ADD_ADDRESS_FLAGS: u16 = NLM_F_CREATE | NLM_F_EXCL;

/// Adding a route: `NLM_F_APPEND`, not `NLM_F_EXCL`. With EXCL the kernel
/// answers `EEXIST` for any default route of the same metric, whatever its
/// gateway or interface. Appending answers `EEXIST` only when this gateway
/// on this interface already is a default route, but it first rewrites
/// that route (a router advertisement's loses its expiry), and it joins a
/// static route via another gateway as a multipath sibling. So the
/// [`Applier`](super::Applier) lists the interface's default routes first
/// and adds scwd's only where there is none.
const ADD_ROUTE_FLAGS: u16 = NLM_F_CREATE | NLM_F_APPEND;

/// Receive buffer: an ACK or one address message is well under 200
/// bytes; a route dump or a burst of link events comes in datagrams of
/// at most a page or two.
const RECV_BUF_LEN: usize = 32768;

/// The rtnetlink multicast group of link changes (`RTMGRP_LINK`).
const RTMGRP_LINK: u32 = 1;

/// Adds, deletes and looks up IPv6 addresses and default routes on one
/// interface through rtnetlink.
#[derive(Debug)]
pub struct LinuxBackend {
    interface: String,
    /// The interface's index while it exists and is up; `None` otherwise.
    ifindex: Option<u32>,
    /// Requests and their answers.
    socket: Socket,
    /// Subscribed to the link group: interfaces created, deleted,
    /// renamed, brought up or down. Non-blocking.
    events: Socket,
    seq: u32,
}

impl LinuxBackend {
    /// Opens the `NETLINK_ROUTE` sockets, in the calling thread's network
    /// namespace, and looks the interface up. Done once, while still
    /// privileged. An interface that does not exist (yet) is no error:
    /// [`Backend::take_events`] says when it appears.
    pub fn open(interface: &str) -> Result<LinuxBackend, NetError> {
        let fail = |call: &str, e: io::Error| NetError::new(interface, call, e);
        // The kernel would cut a name at a NUL or at IFNAMSIZ and answer
        // for another interface.
        if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains('\0') {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not an interface name");
            return Err(fail("open", e));
        }
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| fail("socket NETLINK_ROUTE", e))?;
        socket
            .bind_auto()
            .map_err(|e| fail("bind NETLINK_ROUTE", e))?;
        // An NLMSG_ERROR then echoes only the request's header, not its body.
        socket
            .set_cap_ack(true)
            .map_err(|e| fail("setsockopt NETLINK_CAP_ACK", e))?;
        // Subscribed before the lookup, so a link that appears in between
        // is not missed.
        let mut events = Socket::new(NETLINK_ROUTE).map_err(|e| fail("socket NETLINK_ROUTE", e))?;
        events
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|e| fail("bind NETLINK_ROUTE RTMGRP_LINK", e))?;
        events
            .set_non_blocking(true)
            .map_err(|e| fail("fcntl O_NONBLOCK", e))?;
        let mut backend = LinuxBackend {
            interface: interface.to_string(),
            ifindex: None,
            socket,
            events,
            seq: 0,
        };
        backend.resolve()?;
        Ok(backend)
    }

    /// The index or, while the interface cannot be configured, `ENODEV`
    /// for `operation`.
    fn index_for(&self, operation: impl FnOnce() -> String) -> Result<u32, NetError> {
        self.ifindex
            .ok_or_else(|| self.error(operation(), io::Error::from_raw_os_error(libc::ENODEV)))
    }

    /// Sends one request with `NLM_F_REQUEST|NLM_F_ACK|flags` and returns
    /// the messages the kernel answered before its ACK, or the errno of
    /// its `NLMSG_ERROR`.
    fn transact(
        &mut self,
        flags: u16,
        message: RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let request = create_request(seq, flags, message);
        let kernel = SocketAddr::new(0, 0);
        let sent = retry_eintr(|| self.socket.send_to(&request, &kernel, 0))?;
        if sent != request.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short netlink write ({sent} of {} bytes)", request.len()),
            ));
        }
        let mut replies = Vec::new();
        let mut buf = Vec::with_capacity(RECV_BUF_LEN);
        loop {
            buf.clear();
            let (len, from) = retry_eintr(|| self.socket.recv_from(&mut buf, libc::MSG_TRUNC))?;
            if len > buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink reply truncated ({len} bytes)"),
                ));
            }
            // Only the kernel speaks for the kernel.
            if from.port_number() != 0 {
                log::debug!("netlink: ignored message from port {}", from.port_number());
                continue;
            }
            if read_replies(&buf, seq, &mut replies)? {
                return Ok(replies);
            }
        }
    }

    /// Prefix length of `addr` on the interface, `None` if it is not there.
    fn address_prefixlen(&mut self, ifindex: u32, addr: Ipv6Addr) -> io::Result<Option<u8>> {
        let msg = RouteNetlinkMessage::GetAddress(create_addr_msg(
            ifindex,
            &Ipv6Net { addr, prefixlen: 0 },
        ));
        match self.transact(0, msg) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == ifindex => {
                    Some(a.header.prefix_len)
                }
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn error(&self, operation: String, source: io::Error) -> NetError {
        NetError::new(&self.interface, operation, source)
    }
}

impl Backend for LinuxBackend {
    fn interface(&self) -> &str {
        &self.interface
    }

    fn ifindex(&self) -> Option<u32> {
        self.ifindex
    }

    /// `RTM_GETLINK` by name on the request socket (no ioctl socket
    /// needed). An interface that is down counts as absent: the kernel
    /// refuses routes through it (`ENETDOWN`), and bringing it down
    /// flushed its addresses; it is configured once it comes up.
    fn resolve(&mut self) -> Result<bool, NetError> {
        let msg = RouteNetlinkMessage::GetLink(create_getlink_msg(&self.interface));
        self.ifindex = match self.transact(0, msg) {
            Ok(replies) => replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) if l.header.flags.contains(LinkFlags::Up) => {
                    Some(l.header.index)
                }
                _ => None,
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => None,
            Err(e) => return Err(self.error("RTM_GETLINK".into(), e)),
        };
        Ok(self.ifindex.is_some())
    }

    fn events_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    fn take_events(&mut self) -> bool {
        let mut changed = false;
        let mut buf = Vec::with_capacity(RECV_BUF_LEN);
        loop {
            buf.clear();
            match self.events.recv_from(&mut buf, 0) {
                Ok((_, from)) if from.port_number() != 0 => continue,
                Ok(_) => {
                    changed |= link_changed(&buf, &self.interface, self.ifindex);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return changed,
                // Events were lost: look again.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => changed = true,
                Err(e) => {
                    log::warn!("{}: netlink link events: {e}", self.interface);
                    return true;
                }
            }
        }
    }

    fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, NetError> {
        let msg = RouteNetlinkMessage::GetRoute(create_route_dump_msg());
        let replies = self
            .transact(NLM_F_DUMP, msg)
            .map_err(|e| self.error("RTM_GETROUTE".into(), e))?;
        let ifindex = self.ifindex;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Some(m),
                _ => None,
            })
            .flat_map(|m| default_routes_of(m, ifindex))
            .collect())
    }

    fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError> {
        let op = format!("RTM_NEWADDR {net}");
        let ifindex = self.index_for(|| op.clone())?;
        let msg = RouteNetlinkMessage::NewAddress(create_addr_msg(ifindex, net));
        match self.transact(ADD_ADDRESS_FLAGS, msg) {
            Ok(_) => Ok(Added::New),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Linux knows an address by its value alone: make sure the
                // one that exists has the prefix length asked for.
                let found = self
                    .address_prefixlen(ifindex, net.addr)
                    .map_err(|e| self.error(op.clone(), e))?;
                match found {
                    Some(plen) if plen != net.prefixlen => Err(self.error(
                        op,
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("address exists as {}/{plen}", net.addr),
                        ),
                    )),
                    _ => Ok(Added::Existing),
                }
            }
            Err(e) => Err(self.error(op, e)),
        }
    }

    fn delete_address(&mut self, net: &Ipv6Net) -> Result<(), NetError> {
        // The interface gone took its addresses with it.
        let Some(ifindex) = self.ifindex else {
            return Ok(());
        };
        let msg = RouteNetlinkMessage::DelAddress(create_addr_msg(ifindex, net));
        match self.transact(0, msg) {
            Ok(_) => Ok(()),
            // Not on the interface, or the interface itself is gone.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {
                Ok(())
            }
            Err(e) => Err(self.error(format!("RTM_DELADDR {net}"), e)),
        }
    }

    fn add_default_route(&mut self, gateway: Ipv6Addr) -> Result<Added, NetError> {
        let op = || format!("RTM_NEWROUTE default via {gateway}");
        let ifindex = self.index_for(op)?;
        let msg = RouteNetlinkMessage::NewRoute(create_route_msg(ifindex, gateway));
        match self.transact(ADD_ROUTE_FLAGS, msg) {
            Ok(_) => Ok(Added::New),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Added::Existing),
            Err(e) => Err(self.error(op(), e)),
        }
    }

    fn delete_default_route(&mut self, gateway: Ipv6Addr) -> Result<(), NetError> {
        let Some(ifindex) = self.ifindex else {
            return Ok(());
        };
        // Destination, gateway, interface and protocol must all match:
        // a default route scwd did not add is never removed.
        let msg = RouteNetlinkMessage::DelRoute(create_route_msg(ifindex, gateway));
        match self.transact(0, msg) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH | libc::ENODEV)) => Ok(()),
            Err(e) => Err(self.error(format!("RTM_DELROUTE default via {gateway}"), e)),
        }
    }
}

/// Whether one datagram of link events concerns the interface: it
/// appeared or came up (named so, with an index other than the one
/// known), or the known one went down, was renamed away or deleted.
/// Any other change of any other link is none of scwd's business.
fn link_changed(mut buf: &[u8], interface: &str, known: Option<u32>) -> bool {
    let mut changed = false;
    while !buf.is_empty() {
        let Ok(header) = NetlinkBuffer::new_checked(buf) else {
            // Unreadable: resolving again costs one request.
            return true;
        };
        let len = header.length() as usize;
        let message = &buf[..len];
        buf = buf.get(align4(len)..).unwrap_or_default();
        let Ok(packet) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(message) else {
            return true;
        };
        let NetlinkPayload::InnerMessage(m) = packet.payload else {
            continue;
        };
        changed |= match m {
            RouteNetlinkMessage::NewLink(l) => {
                let named = l
                    .attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::IfName(n) if n == interface));
                let up = l.header.flags.contains(LinkFlags::Up);
                let same = known == Some(l.header.index);
                (named && up && !same) || (same && (!named || !up))
            }
            RouteNetlinkMessage::DelLink(l) => known == Some(l.header.index),
            _ => false,
        };
    }
    changed
}

/// The `::/0` routes of the main table, each plain route or next hop of
/// a multipath route, `elsewhere` unless it leaves through `ifindex`.
/// The kernel lists a multipath route with one protocol, that of its
/// first hop: a hop of scwd's joined to another's by whoever added the
/// other reads as not scwd's, and is then left alone.
fn default_routes_of(m: &RouteMessage, ifindex: Option<u32>) -> Vec<DefaultRoute> {
    let h = &m.header;
    let table = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    if h.address_family != AddressFamily::Inet6
        || h.destination_prefix_length != 0
        || h.kind != RouteType::Unicast
        || table != u32::from(RouteHeader::RT_TABLE_MAIN)
    {
        return Vec::new();
    }
    let ours = h.protocol == RouteProtocol::Other(RTPROT_SCWD);
    let gateway = |attrs: &[RouteAttribute]| {
        attrs.iter().find_map(|a| match a {
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(*g),
            _ => None,
        })
    };
    let oif = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    let route = |gateway, index| DefaultRoute {
        gateway,
        ours,
        elsewhere: ifindex.is_none() || index != ifindex,
    };
    let mut found = Vec::new();
    if let Some(g) = gateway(&m.attributes) {
        found.push(route(g, oif));
    }
    for a in &m.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            for hop in hops {
                if let Some(g) = gateway(&hop.attributes) {
                    found.push(route(g, Some(hop.interface_index)));
                }
            }
        }
    }
    found
}

fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The address message for RTM_NEWADDR, RTM_DELADDR and RTM_GETADDR: no
/// `IFA_CACHEINFO`, so the kernel gives the address infinite lifetimes.
fn create_addr_msg(ifindex: u32, net: &Ipv6Net) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet6;
    msg.header.prefix_len = net.prefixlen;
    msg.header.scope = AddressScope::Universe;
    msg.header.index = ifindex;
    msg.attributes = vec![
        AddressAttribute::Local(IpAddr::V6(net.addr)),
        AddressAttribute::Address(IpAddr::V6(net.addr)),
    ];
    msg
}

/// The route message for RTM_NEWROUTE and RTM_DELROUTE: `::/0` via
/// `gateway` out of `ifindex` (which a link-local gateway needs), main
/// table, protocol [`RTPROT_SCWD`].
fn create_route_msg(ifindex: u32, gateway: Ipv6Addr) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet6;
    msg.header.destination_prefix_length = 0;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Other(RTPROT_SCWD);
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::Inet6(gateway)),
        RouteAttribute::Oif(ifindex),
    ];
    msg
}

/// `RTM_GETLINK` for the interface named `name`.
fn create_getlink_msg(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes = vec![LinkAttribute::IfName(name.to_string())];
    msg
}

/// `RTM_GETROUTE` dump of the IPv6 routes; filtered on reading.
fn create_route_dump_msg() -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet6;
    msg
}

/// Serializes `message` as a request with sequence number `seq`.
fn create_request(seq: u32, flags: u16, message: RouteNetlinkMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// Reads one datagram from the kernel. Messages answering request `seq`
/// are appended to `replies`; anything else (a late answer to an earlier
/// request) is skipped. Returns true once the request's ACK was read, and
/// the errno if the kernel refused the request.
fn read_replies(
    mut buf: &[u8],
    seq: u32,
    replies: &mut Vec<RouteNetlinkMessage>,
) -> io::Result<bool> {
    while !buf.is_empty() {
        let header = NetlinkBuffer::new_checked(buf).map_err(malformed)?;
        let (len, reply_seq) = (header.length() as usize, header.sequence_number());
        let message = &buf[..len];
        buf = buf.get(align4(len)..).unwrap_or_default();
        if reply_seq != seq {
            log::debug!("netlink: skipped reply to request {reply_seq} (want {seq})");
            continue;
        }
        let packet =
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(message).map_err(malformed)?;
        match packet.payload {
            NetlinkPayload::Error(e) => match e.code {
                None => return Ok(true),
                Some(code) => {
                    return Err(io::Error::from_raw_os_error(code.get().saturating_abs()));
                }
            },
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::InnerMessage(m) => replies.push(m),
            NetlinkPayload::Overrun(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink overrun",
                ));
            }
            _ => {}
        }
    }
    Ok(false)
}

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn malformed(e: netlink_packet_core::DecodeError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink reply: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const NET: Ipv6Net = Ipv6Net {
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        prefixlen: 64,
    };
    const NET_BYTES: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const GW_BYTES: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    fn nlmsghdr(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v
    }

    fn rtattr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        v
    }

    /// An `NLMSG_ERROR` as a `NETLINK_CAP_ACK` socket gets it.
    fn nlmsgerr(seq: u32, code: i32) -> Vec<u8> {
        let mut v = nlmsghdr(36, 2, 0x100, seq);
        v.extend_from_slice(&code.to_ne_bytes());
        v.extend_from_slice(&nlmsghdr(64, 20, 0x605, seq));
        v
    }

    #[test]
    fn new_address_request_bytes() {
        let msg = RouteNetlinkMessage::NewAddress(create_addr_msg(2, &NET));
        let got = create_request(1, ADD_ADDRESS_FLAGS, msg);
        // RTM_NEWADDR, NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE
        let mut want = nlmsghdr(64, 20, 0x605, 1);
        // ifaddrmsg: AF_INET6, /64, flags 0, RT_SCOPE_UNIVERSE, index 2
        want.extend_from_slice(&[10, 64, 0, 0]);
        want.extend_from_slice(&2u32.to_ne_bytes());
        want.extend(rtattr(2, &NET_BYTES)); // IFA_LOCAL
        want.extend(rtattr(1, &NET_BYTES)); // IFA_ADDRESS
        assert_eq!(got, want);
    }

    #[test]
    fn del_address_request_bytes() {
        let msg = RouteNetlinkMessage::DelAddress(create_addr_msg(7, &NET));
        let got = create_request(9, 0, msg);
        // RTM_DELADDR, NLM_F_REQUEST|NLM_F_ACK; no IFA_CACHEINFO anywhere
        let mut want = nlmsghdr(64, 21, 0x5, 9);
        want.extend_from_slice(&[10, 64, 0, 0]);
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend(rtattr(2, &NET_BYTES));
        want.extend(rtattr(1, &NET_BYTES));
        assert_eq!(got, want);
    }

    fn route_body(ifindex: u32) -> Vec<u8> {
        // rtmsg: AF_INET6, dst_len 0, src_len 0, tos 0, RT_TABLE_MAIN,
        // RTPROT_SCWD, RT_SCOPE_UNIVERSE, RTN_UNICAST, flags 0
        let mut v = vec![10, 0, 0, 0, 254, 0x53, 0, 1, 0, 0, 0, 0];
        v.extend(rtattr(5, &GW_BYTES)); // RTA_GATEWAY
        v.extend(rtattr(4, &ifindex.to_ne_bytes())); // RTA_OIF
        v
    }

    #[test]
    fn new_route_request_bytes() {
        let msg = RouteNetlinkMessage::NewRoute(create_route_msg(2, GW));
        let got = create_request(3, ADD_ROUTE_FLAGS, msg);
        // RTM_NEWROUTE, NLM_F_REQUEST|NLM_F_ACK|NLM_F_CREATE|NLM_F_APPEND
        let mut want = nlmsghdr(56, 24, 0xc05, 3);
        want.extend(route_body(2));
        assert_eq!(got, want);
    }

    #[test]
    fn del_route_request_bytes() {
        let msg = RouteNetlinkMessage::DelRoute(create_route_msg(4, GW));
        let got = create_request(5, 0, msg);
        // RTM_DELROUTE carries the protocol too, so the kernel matches on it.
        let mut want = nlmsghdr(56, 25, 0x5, 5);
        want.extend(route_body(4));
        assert_eq!(got, want);
    }

    #[test]
    fn ack_ends_the_request() {
        let mut replies = Vec::new();
        assert!(read_replies(&nlmsgerr(7, 0), 7, &mut replies).unwrap());
        assert!(replies.is_empty());
    }

    #[test]
    fn negative_error_becomes_errno() {
        let mut replies = Vec::new();
        let err = read_replies(&nlmsgerr(7, -libc::EEXIST), 7, &mut replies).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        let err = read_replies(&nlmsgerr(7, -libc::ENETUNREACH), 7, &mut replies).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH));
    }

    #[test]
    fn replies_to_other_requests_are_skipped() {
        let mut buf = nlmsgerr(6, -libc::EEXIST);
        buf.extend(nlmsgerr(8, 0));
        let mut replies = Vec::new();
        assert!(!read_replies(&buf, 7, &mut replies).unwrap());
        buf.extend(nlmsgerr(7, -libc::ESRCH));
        let err = read_replies(&buf, 7, &mut replies).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
        assert!(replies.is_empty());
    }

    #[test]
    fn answer_then_ack_in_one_datagram() {
        let answer = RouteNetlinkMessage::NewAddress(create_addr_msg(2, &NET));
        let mut buf = create_request(7, 0, answer);
        buf.extend(nlmsgerr(7, 0));
        let mut replies = Vec::new();
        assert!(read_replies(&buf, 7, &mut replies).unwrap());
        match replies.as_slice() {
            [RouteNetlinkMessage::NewAddress(a)] => {
                assert_eq!((a.header.index, a.header.prefix_len), (2, 64));
            }
            other => panic!("unexpected replies {other:?}"),
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut replies = Vec::new();
        // Length field beyond the datagram.
        let mut buf = nlmsgerr(7, 0);
        buf[0] = 200;
        let err = read_replies(&buf, 7, &mut replies).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Shorter than a header.
        let err = read_replies(&buf[..10], 7, &mut replies).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // NLMSG_ERROR without room for its code.
        let err = read_replies(&nlmsghdr(18, 2, 0, 7)[..], 7, &mut replies);
        assert!(err.is_err());
        // Nothing at all: not done, not an error.
        assert!(!read_replies(&[], 7, &mut replies).unwrap());
    }
}

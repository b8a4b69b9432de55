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

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{Added, Backend, NetError};
use crate::plan::Ipv6Net;

/// Routing protocol number scwd puts on the routes it adds (`proto 83` in
/// `ip -6 route`). Not one of the kernel's or iproute2's assigned numbers.
pub const RTPROT_SCWD: u8 = 0x53;

/// Adding an address: `EEXIST` if the interface already has it.
const ADD_ADDRESS_FLAGS: u16 = NLM_F_CREATE | NLM_F_EXCL;

/// Adding a route: `NLM_F_APPEND`, not `NLM_F_EXCL`. With EXCL the kernel
/// answers `EEXIST` for any default route of the same metric, whatever its
/// gateway. Appending answers `EEXIST` only when this gateway on this
/// interface already is a default route, and otherwise adds scwd's beside
/// the others, like OpenBSD's `RTF_MPATH`.
const ADD_ROUTE_FLAGS: u16 = NLM_F_CREATE | NLM_F_APPEND;

/// Receive buffer: an ACK or one address message is well under 200 bytes.
const RECV_BUF_LEN: usize = 8192;

/// Adds, deletes and looks up IPv6 addresses and default routes on one
/// interface through rtnetlink.
#[derive(Debug)]
pub struct LinuxBackend {
    interface: String,
    ifindex: u32,
    socket: Socket,
    seq: u32,
}

impl LinuxBackend {
    /// Resolves `interface` to its index and opens the `NETLINK_ROUTE`
    /// socket, in the calling thread's network namespace. Done once, while
    /// still privileged; the index stays fixed for the backend's life.
    pub fn open(interface: &str) -> Result<LinuxBackend, NetError> {
        let ifindex =
            ifindex(interface).map_err(|e| NetError::new(interface, "if_nametoindex", e))?;
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(|e| NetError::new(interface, "socket NETLINK_ROUTE", e))?;
        socket
            .bind_auto()
            .map_err(|e| NetError::new(interface, "bind NETLINK_ROUTE", e))?;
        // An NLMSG_ERROR then echoes only the request's header, not its body.
        socket
            .set_cap_ack(true)
            .map_err(|e| NetError::new(interface, "setsockopt NETLINK_CAP_ACK", e))?;
        Ok(LinuxBackend {
            interface: interface.to_string(),
            ifindex,
            socket,
            seq: 0,
        })
    }

    /// Index of the interface, as resolved by [`LinuxBackend::open`].
    pub fn ifindex(&self) -> u32 {
        self.ifindex
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
    fn address_prefixlen(&mut self, addr: Ipv6Addr) -> io::Result<Option<u8>> {
        let msg = RouteNetlinkMessage::GetAddress(create_addr_msg(
            self.ifindex,
            &Ipv6Net { addr, prefixlen: 0 },
        ));
        match self.transact(0, msg) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == self.ifindex => {
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

    fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError> {
        let op = format!("RTM_NEWADDR {net}");
        let msg = RouteNetlinkMessage::NewAddress(create_addr_msg(self.ifindex, net));
        match self.transact(ADD_ADDRESS_FLAGS, msg) {
            Ok(_) => Ok(Added::New),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Linux knows an address by its value alone: make sure the
                // one that exists has the prefix length asked for.
                let found = self
                    .address_prefixlen(net.addr)
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
        let msg = RouteNetlinkMessage::DelAddress(create_addr_msg(self.ifindex, net));
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
        let msg = RouteNetlinkMessage::NewRoute(create_route_msg(self.ifindex, gateway));
        match self.transact(ADD_ROUTE_FLAGS, msg) {
            Ok(_) => Ok(Added::New),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Added::Existing),
            Err(e) => Err(self.error(format!("RTM_NEWROUTE default via {gateway}"), e)),
        }
    }

    fn delete_default_route(&mut self, gateway: Ipv6Addr) -> Result<(), NetError> {
        // Destination, gateway, interface and protocol must all match:
        // a default route scwd did not add is never removed.
        let msg = RouteNetlinkMessage::DelRoute(create_route_msg(self.ifindex, gateway));
        match self.transact(0, msg) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(self.error(format!("RTM_DELROUTE default via {gateway}"), e)),
        }
    }
}

/// `if_nametoindex(3)`.
fn ifindex(interface: &str) -> io::Result<u32> {
    let name = CString::new(interface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
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

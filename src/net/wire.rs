//! OpenBSD kernel structures and routing messages, pure and host-tested.
//!
//! Everything scwd hands to `ioctl(2)` or writes to a `PF_ROUTE` socket
//! is built here from plain inputs, and everything it reads back from the
//! routing socket is parsed here, so that the bytes can be compared with
//! the golden vectors on any host. Only the system calls themselves live
//! in the OpenBSD backend.
//!
//! Layouts and constants are OpenBSD/amd64 (shared/openbsd-abi.md). libc
//! lacks most of them for OpenBSD, so the `#[repr(C)]` definitions below
//! carry compile-time size and offset guards; the encoders place every
//! field at the `offset_of!` of those definitions. Integers are written
//! in host byte order, addresses and ports in network order, as the
//! kernel expects.

use std::fmt;
use std::mem::{align_of, offset_of, size_of};
use std::net::Ipv6Addr;

use crate::plan::Ipv6Net;

/// `AF_UNSPEC`, as stored in `sa_family`.
pub const AF_UNSPEC: u8 = 0;
/// `AF_INET`, as stored in `sa_family`.
pub const AF_INET: u8 = 2;
/// `AF_ROUTE` (= `PF_ROUTE`), also the `setsockopt` level of route sockets.
pub const AF_ROUTE: u8 = 17;
/// `AF_LINK`, as stored in `sa_family`.
pub const AF_LINK: u8 = 18;
/// `AF_INET6`, as stored in `sa_family`.
pub const AF_INET6: u8 = 24;
/// `IFNAMSIZ`: interface names are NUL-terminated within this many bytes.
pub const IFNAMSIZ: usize = 16;
/// `RTLABEL_LEN`: route labels are NUL-terminated within this many bytes.
pub const RTLABEL_LEN: usize = 32;
/// `ND6_INFINITE_LIFETIME`.
pub const ND6_INFINITE_LIFETIME: u32 = 0xffff_ffff;

/// `IN6_IFF_ANYCAST`.
pub const IN6_IFF_ANYCAST: i32 = 0x01;
/// `IN6_IFF_TENTATIVE`: set by the kernel while DAD runs.
pub const IN6_IFF_TENTATIVE: i32 = 0x02;
/// `IN6_IFF_DUPLICATED`: read-only, `EINVAL` if passed in.
pub const IN6_IFF_DUPLICATED: i32 = 0x04;
/// `IN6_IFF_DETACHED`: read-only, `EINVAL` if passed in.
pub const IN6_IFF_DETACHED: i32 = 0x08;
/// `IN6_IFF_DEPRECATED`: read-only, `EINVAL` if passed in.
pub const IN6_IFF_DEPRECATED: i32 = 0x10;
/// `IN6_IFF_AUTOCONF`.
pub const IN6_IFF_AUTOCONF: i32 = 0x40;

const IOC_IN: u32 = 0x8000_0000;
const IOC_OUT: u32 = 0x4000_0000;
const IOCPARM_MASK: u32 = 0x1fff;

/// `_IOW(group, num, len)` from sys/sys/ioccom.h.
const fn iow(group: u8, num: u8, len: usize) -> u32 {
    IOC_IN | ((len as u32 & IOCPARM_MASK) << 16) | ((group as u32) << 8) | num as u32
}

/// `_IOWR(group, num, len)` from sys/sys/ioccom.h.
const fn iowr(group: u8, num: u8, len: usize) -> u32 {
    iow(group, num, len) | IOC_OUT
}

/// `SIOCAIFADDR_IN6`: add or update an IPv6 address (`struct in6_aliasreq`).
/// The request type is `c_ulong` on OpenBSD; the value fits in 32 bits.
pub const SIOCAIFADDR_IN6: u32 = 0x8080_691a;
/// `SIOCDIFADDR_IN6`: delete an IPv6 address (`struct in6_ifreq`).
pub const SIOCDIFADDR_IN6: u32 = 0x8120_6919;
/// `SIOCGIFAFLAG_IN6`: read an address's `IN6_IFF_*` flags.
pub const SIOCGIFAFLAG_IN6: u32 = 0xc120_6949;

const _: () = assert!(SIOCAIFADDR_IN6 == iow(b'i', 26, size_of::<In6Aliasreq>()));
const _: () = assert!(SIOCDIFADDR_IN6 == iow(b'i', 25, size_of::<In6Ifreq>()));
const _: () = assert!(SIOCGIFAFLAG_IN6 == iowr(b'i', 73, size_of::<In6Ifreq>()));

/// `RTM_VERSION`: the only routing message version the kernel accepts.
pub const RTM_VERSION: u8 = 5;
/// `RTM_MAXSIZE`: longest message userland may write.
pub const RTM_MAXSIZE: usize = 2048;
/// `RTM_ADD`.
pub const RTM_ADD: u8 = 0x1;
/// `RTM_DELETE`.
pub const RTM_DELETE: u8 = 0x2;
/// `RTM_CHANGE`.
pub const RTM_CHANGE: u8 = 0x3;
/// `RTM_GET`.
pub const RTM_GET: u8 = 0x4;
/// `RTM_NEWADDR`: an address was added (`ifa_msghdr`).
pub const RTM_NEWADDR: u8 = 0xc;
/// `RTM_DELADDR`: an address was removed (`ifa_msghdr`).
pub const RTM_DELADDR: u8 = 0xd;
/// `RTM_IFINFO`: interface state changed (`if_msghdr`).
pub const RTM_IFINFO: u8 = 0xe;
/// `RTM_IFANNOUNCE`: interface arrived or departed (`if_announcemsghdr`).
pub const RTM_IFANNOUNCE: u8 = 0xf;
/// `RTM_DESYNC`: the socket overflowed and messages were lost.
pub const RTM_DESYNC: u8 = 0x10;
/// `RTM_BFD` (own header, not decoded).
pub const RTM_BFD: u8 = 0x12;
/// `RTM_PROPOSAL`.
pub const RTM_PROPOSAL: u8 = 0x13;
/// `RTM_CHGADDRATTR`: address flags changed (`ifa_msghdr`).
pub const RTM_CHGADDRATTR: u8 = 0x14;
/// `RTM_80211INFO` (own header, not decoded).
pub const RTM_80211INFO: u8 = 0x15;
/// `RTM_SOURCE`.
pub const RTM_SOURCE: u8 = 0x16;

/// `RTA_DST`.
pub const RTA_DST: i32 = 0x1;
/// `RTA_GATEWAY`.
pub const RTA_GATEWAY: i32 = 0x2;
/// `RTA_NETMASK`.
pub const RTA_NETMASK: i32 = 0x4;
/// `RTA_GENMASK`.
pub const RTA_GENMASK: i32 = 0x8;
/// `RTA_IFP`.
pub const RTA_IFP: i32 = 0x10;
/// `RTA_IFA`.
pub const RTA_IFA: i32 = 0x20;
/// `RTA_AUTHOR`.
pub const RTA_AUTHOR: i32 = 0x40;
/// `RTA_BRD`.
pub const RTA_BRD: i32 = 0x80;
/// `RTA_SRC`.
pub const RTA_SRC: i32 = 0x100;
/// `RTA_SRCMASK`.
pub const RTA_SRCMASK: i32 = 0x200;
/// `RTA_LABEL`.
pub const RTA_LABEL: i32 = 0x400;
/// `RTA_BFD`.
pub const RTA_BFD: i32 = 0x800;
/// `RTA_DNS`.
pub const RTA_DNS: i32 = 0x1000;
/// `RTA_STATIC`.
pub const RTA_STATIC: i32 = 0x2000;
/// `RTA_SEARCH`.
pub const RTA_SEARCH: i32 = 0x4000;

/// `RTAX_DST`: index of the destination in [`Addrs`].
pub const RTAX_DST: usize = 0;
/// `RTAX_GATEWAY`.
pub const RTAX_GATEWAY: usize = 1;
/// `RTAX_NETMASK`.
pub const RTAX_NETMASK: usize = 2;
/// `RTAX_GENMASK`.
pub const RTAX_GENMASK: usize = 3;
/// `RTAX_IFP`.
pub const RTAX_IFP: usize = 4;
/// `RTAX_IFA`.
pub const RTAX_IFA: usize = 5;
/// `RTAX_AUTHOR`.
pub const RTAX_AUTHOR: usize = 6;
/// `RTAX_BRD`.
pub const RTAX_BRD: usize = 7;
/// `RTAX_SRC`.
pub const RTAX_SRC: usize = 8;
/// `RTAX_SRCMASK`.
pub const RTAX_SRCMASK: usize = 9;
/// `RTAX_LABEL`.
pub const RTAX_LABEL: usize = 10;
/// `RTAX_MAX`: number of sockaddr slots.
pub const RTAX_MAX: usize = 15;

/// `RTF_UP`.
pub const RTF_UP: i32 = 0x1;
/// `RTF_GATEWAY`.
pub const RTF_GATEWAY: i32 = 0x2;
/// `RTF_HOST`.
pub const RTF_HOST: i32 = 0x4;
/// `RTF_DONE`: set by the kernel on a successful reply.
pub const RTF_DONE: i32 = 0x40;
/// `RTF_CLONING`.
pub const RTF_CLONING: i32 = 0x100;
/// `RTF_LLINFO`: neighbour cache entries.
pub const RTF_LLINFO: i32 = 0x400;
/// `RTF_STATIC`.
pub const RTF_STATIC: i32 = 0x800;
/// `RTF_CLONED`.
pub const RTF_CLONED: i32 = 0x10000;
/// `RTF_CACHED`.
pub const RTF_CACHED: i32 = 0x20000;
/// `RTF_MPATH`.
pub const RTF_MPATH: i32 = 0x40000;
/// `RTF_MPLS`.
pub const RTF_MPLS: i32 = 0x100000;
/// `RTF_LOCAL`: kernel-only, `EINVAL` from userland.
pub const RTF_LOCAL: i32 = 0x200000;
/// `RTF_BROADCAST`: kernel-only, `EINVAL` from userland.
pub const RTF_BROADCAST: i32 = 0x400000;
/// `RTF_CONNECTED`.
pub const RTF_CONNECTED: i32 = 0x800000;
/// `RTF_BFD`.
pub const RTF_BFD: i32 = 0x1000000;

/// `RTP_NONE`: let the kernel pick the priority.
pub const RTP_NONE: u8 = 0;
/// `RTP_LOCAL`: reserved, `EINVAL` from userland.
pub const RTP_LOCAL: u8 = 1;
/// `RTP_STATIC`.
pub const RTP_STATIC: u8 = 8;
/// `RTP_DEFAULT`.
pub const RTP_DEFAULT: u8 = 56;
/// `RTP_MAX`: highest priority userland may ask for.
pub const RTP_MAX: u8 = 63;
/// `RTP_ANY`.
pub const RTP_ANY: u8 = 64;
/// `RTP_MASK`.
pub const RTP_MASK: u8 = 0x7f;

/// `ROUTE_MSGFILTER`: `setsockopt` option, a `u_int` of `1 << RTM_*` bits.
pub const ROUTE_MSGFILTER: i32 = 1;
/// `ROUTE_TABLEFILTER`: `setsockopt` option, a routing table id.
pub const ROUTE_TABLEFILTER: i32 = 2;
/// `ROUTE_PRIOFILTER`: `setsockopt` option.
pub const ROUTE_PRIOFILTER: i32 = 3;
/// `ROUTE_FLAGFILTER`: `setsockopt` option, drop messages with any of these `RTF_*`.
pub const ROUTE_FLAGFILTER: i32 = 4;

/// `IFF_UP`.
pub const IFF_UP: i32 = 0x1;
/// `IFF_RUNNING`.
pub const IFF_RUNNING: i32 = 0x40;
/// `IFXF_AUTOCONF6`; test `IFXF_*` bits one at a time.
pub const IFXF_AUTOCONF6: i32 = 0x20;
/// `LINK_STATE_UNKNOWN`.
pub const LINK_STATE_UNKNOWN: u8 = 0;
/// `LINK_STATE_DOWN`.
pub const LINK_STATE_DOWN: u8 = 2;
/// `LINK_STATE_UP`; higher values are up too.
pub const LINK_STATE_UP: u8 = 4;
/// `IFAN_ARRIVAL`.
pub const IFAN_ARRIVAL: u16 = 0;
/// `IFAN_DEPARTURE`.
pub const IFAN_DEPARTURE: u16 = 1;

/// The label scwd puts on its routes, so it only ever touches its own.
pub const ROUTE_LABEL: &str = "scwd";

/// `CTL_NET`, first level of the sysctl(2) name of the routing table.
pub const CTL_NET: i32 = 4;
/// `NET_RT_DUMP`: the routing table as `RTM_GET` messages.
pub const NET_RT_DUMP: i32 = 1;

// errno values in OpenBSD's numbering (sys/sys/errno.h). The OpenBSD
// backend's logic runs on every host, where libc's constants differ
// (Linux's ENETUNREACH is 101), so it must compare with these.

/// `ENOENT`.
pub const ENOENT: i32 = 2;
/// `ESRCH`: no such route.
pub const ESRCH: i32 = 3;
/// `EINTR`.
pub const EINTR: i32 = 4;
/// `ENOMEM`: a sysctl buffer too small.
pub const ENOMEM: i32 = 12;
/// `EAGAIN`: nothing to read on a non-blocking socket.
pub const EAGAIN: i32 = 35;
/// `ENXIO`: no such interface.
pub const ENXIO: i32 = 6;
/// `EEXIST`: the same route is already there.
pub const EEXIST: i32 = 17;
/// `EINVAL`.
pub const EINVAL: i32 = 22;
/// `EAFNOSUPPORT`.
pub const EAFNOSUPPORT: i32 = 47;
/// `EADDRNOTAVAIL`: no such address on the interface.
pub const EADDRNOTAVAIL: i32 = 49;
/// `ENETUNREACH`.
pub const ENETUNREACH: i32 = 51;
/// `ENOBUFS`.
pub const ENOBUFS: i32 = 55;
/// `EHOSTUNREACH`.
pub const EHOSTUNREACH: i32 = 65;

/// OpenBSD's `strerror(3)` text for the errno values above, so that a
/// message reads the same whichever host the backend logic runs on.
pub fn strerror(errno: i32) -> Option<&'static str> {
    Some(match errno {
        ENOENT => "No such file or directory",
        ESRCH => "No such process",
        ENXIO => "Device not configured",
        EEXIST => "File exists",
        EINVAL => "Invalid argument",
        EAFNOSUPPORT => "Address family not supported by protocol family",
        EADDRNOTAVAIL => "Can't assign requested address",
        ENETUNREACH => "Network is unreachable",
        ENOBUFS => "No buffer space available",
        EHOSTUNREACH => "No route to host",
        _ => return None,
    })
}

/// `struct sockaddr_in6` with the BSD `sin6_len` byte (Linux's has none).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockaddrIn6 {
    /// Length of the structure, 28.
    pub sin6_len: u8,
    /// `AF_INET6`.
    pub sin6_family: u8,
    /// Port, network order.
    pub sin6_port: u16,
    /// Flow information, network order.
    pub sin6_flowinfo: u32,
    /// The address, network order.
    pub sin6_addr: [u8; 16],
    /// Scope (interface index) for link-local addresses.
    pub sin6_scope_id: u32,
}

/// `struct sockaddr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sockaddr {
    /// Total length.
    pub sa_len: u8,
    /// Address family.
    pub sa_family: u8,
    /// Family-specific bytes.
    pub sa_data: [u8; 14],
}

/// `struct sockaddr_dl` (link-level address, `RTA_IFP`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockaddrDl {
    /// Total length.
    pub sdl_len: u8,
    /// `AF_LINK`.
    pub sdl_family: u8,
    /// Interface index.
    pub sdl_index: u16,
    /// Interface type (`IFT_*`).
    pub sdl_type: u8,
    /// Length of the name in `sdl_data`.
    pub sdl_nlen: u8,
    /// Length of the link-level address after the name.
    pub sdl_alen: u8,
    /// Length of the link-layer selector.
    pub sdl_slen: u8,
    /// Name, then address, then selector.
    pub sdl_data: [u8; 24],
}

/// `struct sockaddr_rtlabel` (`RTA_LABEL`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockaddrRtlabel {
    /// Total length, 34.
    pub sr_len: u8,
    /// `AF_UNSPEC`.
    pub sr_family: u8,
    /// NUL-terminated label.
    pub sr_label: [u8; RTLABEL_LEN],
}

/// `struct in6_addrlifetime`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct In6Addrlifetime {
    /// Valid lifetime expiration time.
    pub ia6t_expire: i64,
    /// Preferred lifetime expiration time.
    pub ia6t_preferred: i64,
    /// Valid lifetime, seconds.
    pub ia6t_vltime: u32,
    /// Preferred lifetime, seconds.
    pub ia6t_pltime: u32,
}

/// `struct in6_aliasreq`, the argument of `SIOCAIFADDR_IN6`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct In6Aliasreq {
    /// Interface name, NUL-terminated.
    pub ifra_name: [u8; IFNAMSIZ],
    /// The address.
    pub ifra_addr: SockaddrIn6,
    /// Destination (point-to-point only); all zero otherwise.
    pub ifra_dstaddr: SockaddrIn6,
    /// Prefix mask.
    pub ifra_prefixmask: SockaddrIn6,
    /// `IN6_IFF_*`.
    pub ifra_flags: i32,
    /// Lifetimes.
    pub ifra_lifetime: In6Addrlifetime,
}

/// The `ifr_ifru` union of `struct in6_ifreq`; its largest member is
/// `struct icmp6_ifstat` (34 counters).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub union In6IfreqData {
    /// `ifru_addr`.
    pub ifru_addr: SockaddrIn6,
    /// `ifru_flags6`.
    pub ifru_flags6: i32,
    /// `ifru_lifetime`.
    pub ifru_lifetime: In6Addrlifetime,
    /// `ifru_icmp6stat`, which sets the size.
    pub ifru_icmp6stat: [u64; 34],
}

/// `struct in6_ifreq`, the argument of `SIOCDIFADDR_IN6` and `SIOCGIFAFLAG_IN6`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct In6Ifreq {
    /// Interface name, NUL-terminated.
    pub ifr_name: [u8; IFNAMSIZ],
    /// Request data.
    pub ifr_ifru: In6IfreqData,
}

/// `struct rt_metrics`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMetrics {
    /// Packets sent (`rtm_use`).
    pub rmx_pksent: u64,
    /// Expiration time.
    pub rmx_expire: i64,
    /// Locked metrics (`RTV_*`).
    pub rmx_locks: u32,
    /// MTU.
    pub rmx_mtu: u32,
    /// References.
    pub rmx_refcnt: u32,
    /// Hop count.
    pub rmx_hopcount: u32,
    /// Receive pipe.
    pub rmx_recvpipe: u32,
    /// Send pipe.
    pub rmx_sendpipe: u32,
    /// Slow start threshold.
    pub rmx_ssthresh: u32,
    /// Round trip time.
    pub rmx_rtt: u32,
    /// RTT variance.
    pub rmx_rttvar: u32,
    /// Padding.
    pub rmx_pad: u32,
}

/// `struct rt_msghdr`, the header of route messages.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMsghdr {
    /// Length of the whole message.
    pub rtm_msglen: u16,
    /// `RTM_VERSION`.
    pub rtm_version: u8,
    /// `RTM_*`.
    pub rtm_type: u8,
    /// Length of this header.
    pub rtm_hdrlen: u16,
    /// Interface index.
    pub rtm_index: u16,
    /// Routing table id.
    pub rtm_tableid: u16,
    /// `RTP_*`.
    pub rtm_priority: u8,
    /// MPLS operation.
    pub rtm_mpls: u8,
    /// `RTA_*` bits: which sockaddrs follow.
    pub rtm_addrs: i32,
    /// `RTF_*`.
    pub rtm_flags: i32,
    /// Flags to change (`RTM_CHANGE`).
    pub rtm_fmask: i32,
    /// Sender's pid, set by the kernel.
    pub rtm_pid: i32,
    /// Sender's sequence number, echoed back.
    pub rtm_seq: i32,
    /// Why the request failed.
    pub rtm_errno: i32,
    /// Which metrics are set (`RTV_*`).
    pub rtm_inits: u32,
    /// Metrics.
    pub rtm_rmx: RtMetrics,
}

/// `struct timeval` with OpenBSD's 64-bit `time_t` and `long`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeval {
    /// Seconds.
    pub tv_sec: i64,
    /// Microseconds.
    pub tv_usec: i64,
}

/// `struct if_data`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfData {
    /// `IFT_*`.
    pub ifi_type: u8,
    /// Link-level address length.
    pub ifi_addrlen: u8,
    /// Link-level header length.
    pub ifi_hdrlen: u8,
    /// `LINK_STATE_*`.
    pub ifi_link_state: u8,
    /// MTU.
    pub ifi_mtu: u32,
    /// Metric.
    pub ifi_metric: u32,
    /// Routing domain.
    pub ifi_rdomain: u32,
    /// Line speed.
    pub ifi_baudrate: u64,
    /// Packets received.
    pub ifi_ipackets: u64,
    /// Input errors.
    pub ifi_ierrors: u64,
    /// Packets sent.
    pub ifi_opackets: u64,
    /// Output errors.
    pub ifi_oerrors: u64,
    /// Collisions.
    pub ifi_collisions: u64,
    /// Bytes received.
    pub ifi_ibytes: u64,
    /// Bytes sent.
    pub ifi_obytes: u64,
    /// Multicast packets received.
    pub ifi_imcasts: u64,
    /// Multicast packets sent.
    pub ifi_omcasts: u64,
    /// Input queue drops.
    pub ifi_iqdrops: u64,
    /// Output queue drops.
    pub ifi_oqdrops: u64,
    /// Packets for unknown protocols.
    pub ifi_noproto: u64,
    /// `IFCAP_*`.
    pub ifi_capabilities: u32,
    /// Time of last change.
    pub ifi_lastchange: Timeval,
}

/// `struct if_msghdr`, the header of `RTM_IFINFO`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfMsghdr {
    /// Length of the whole message.
    pub ifm_msglen: u16,
    /// `RTM_VERSION`.
    pub ifm_version: u8,
    /// `RTM_IFINFO`.
    pub ifm_type: u8,
    /// Length of this header.
    pub ifm_hdrlen: u16,
    /// Interface index.
    pub ifm_index: u16,
    /// Routing domain.
    pub ifm_tableid: u16,
    /// Padding.
    pub ifm_pad1: u8,
    /// Padding.
    pub ifm_pad2: u8,
    /// `RTA_*` bits.
    pub ifm_addrs: i32,
    /// `IFF_*`.
    pub ifm_flags: i32,
    /// Raw `IFXF_*` (including `IFXF_MPSAFE`).
    pub ifm_xflags: i32,
    /// Interface data.
    pub ifm_data: IfData,
}

/// `struct ifa_msghdr`, the header of `RTM_NEWADDR`, `RTM_DELADDR`, `RTM_CHGADDRATTR`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfaMsghdr {
    /// Length of the whole message.
    pub ifam_msglen: u16,
    /// `RTM_VERSION`.
    pub ifam_version: u8,
    /// `RTM_*`.
    pub ifam_type: u8,
    /// Length of this header.
    pub ifam_hdrlen: u16,
    /// Interface index.
    pub ifam_index: u16,
    /// Routing domain.
    pub ifam_tableid: u16,
    /// Padding.
    pub ifam_pad1: u8,
    /// Padding.
    pub ifam_pad2: u8,
    /// `RTA_*` bits.
    pub ifam_addrs: i32,
    /// `ifa_flags` (not `IN6_IFF_*`).
    pub ifam_flags: i32,
    /// Metric.
    pub ifam_metric: i32,
}

/// `struct if_announcemsghdr`, the header of `RTM_IFANNOUNCE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfAnnouncemsghdr {
    /// Length of the whole message.
    pub ifan_msglen: u16,
    /// `RTM_VERSION`.
    pub ifan_version: u8,
    /// `RTM_IFANNOUNCE`.
    pub ifan_type: u8,
    /// Length of this header.
    pub ifan_hdrlen: u16,
    /// Interface index.
    pub ifan_index: u16,
    /// `IFAN_ARRIVAL` or `IFAN_DEPARTURE`.
    pub ifan_what: u16,
    /// Interface name, NUL-terminated.
    pub ifan_name: [u8; IFNAMSIZ],
}

/// Asserts size, alignment and field offsets of a struct at compile time,
/// so a wrong hand-written layout does not build.
macro_rules! layout {
    ($t:ty, $size:expr, $align:expr, { $($field:ident @ $off:expr),* $(,)? }) => {
        const _: () = {
            assert!(size_of::<$t>() == $size);
            assert!(align_of::<$t>() == $align);
            $(assert!(offset_of!($t, $field) == $off);)*
        };
    };
}

layout!(SockaddrIn6, 28, 4, {
    sin6_len @ 0, sin6_family @ 1, sin6_port @ 2, sin6_flowinfo @ 4,
    sin6_addr @ 8, sin6_scope_id @ 24,
});
layout!(Sockaddr, 16, 1, { sa_len @ 0, sa_family @ 1, sa_data @ 2 });
layout!(SockaddrDl, 32, 2, {
    sdl_len @ 0, sdl_family @ 1, sdl_index @ 2, sdl_type @ 4, sdl_nlen @ 5,
    sdl_alen @ 6, sdl_slen @ 7, sdl_data @ 8,
});
layout!(SockaddrRtlabel, 34, 1, { sr_len @ 0, sr_family @ 1, sr_label @ 2 });
layout!(In6Addrlifetime, 24, 8, {
    ia6t_expire @ 0, ia6t_preferred @ 8, ia6t_vltime @ 16, ia6t_pltime @ 20,
});
layout!(In6Aliasreq, 128, 8, {
    ifra_name @ 0, ifra_addr @ 16, ifra_dstaddr @ 44, ifra_prefixmask @ 72,
    ifra_flags @ 100, ifra_lifetime @ 104,
});
layout!(In6IfreqData, 272, 8, {});
layout!(In6Ifreq, 288, 8, { ifr_name @ 0, ifr_ifru @ 16 });
layout!(RtMetrics, 56, 8, {
    rmx_pksent @ 0, rmx_expire @ 8, rmx_locks @ 16, rmx_mtu @ 20, rmx_refcnt @ 24,
    rmx_hopcount @ 28, rmx_recvpipe @ 32, rmx_sendpipe @ 36, rmx_ssthresh @ 40,
    rmx_rtt @ 44, rmx_rttvar @ 48, rmx_pad @ 52,
});
layout!(RtMsghdr, 96, 8, {
    rtm_msglen @ 0, rtm_version @ 2, rtm_type @ 3, rtm_hdrlen @ 4, rtm_index @ 6,
    rtm_tableid @ 8, rtm_priority @ 10, rtm_mpls @ 11, rtm_addrs @ 12, rtm_flags @ 16,
    rtm_fmask @ 20, rtm_pid @ 24, rtm_seq @ 28, rtm_errno @ 32, rtm_inits @ 36,
    rtm_rmx @ 40,
});
layout!(Timeval, 16, 8, { tv_sec @ 0, tv_usec @ 8 });
layout!(IfData, 144, 8, {
    ifi_type @ 0, ifi_addrlen @ 1, ifi_hdrlen @ 2, ifi_link_state @ 3, ifi_mtu @ 4,
    ifi_metric @ 8, ifi_rdomain @ 12, ifi_baudrate @ 16, ifi_ipackets @ 24,
    ifi_ierrors @ 32, ifi_opackets @ 40, ifi_oerrors @ 48, ifi_collisions @ 56,
    ifi_ibytes @ 64, ifi_obytes @ 72, ifi_imcasts @ 80, ifi_omcasts @ 88,
    ifi_iqdrops @ 96, ifi_oqdrops @ 104, ifi_noproto @ 112, ifi_capabilities @ 120,
    ifi_lastchange @ 128,
});
layout!(IfMsghdr, 168, 8, {
    ifm_msglen @ 0, ifm_version @ 2, ifm_type @ 3, ifm_hdrlen @ 4, ifm_index @ 6,
    ifm_tableid @ 8, ifm_pad1 @ 10, ifm_pad2 @ 11, ifm_addrs @ 12, ifm_flags @ 16,
    ifm_xflags @ 20, ifm_data @ 24,
});
layout!(IfaMsghdr, 24, 4, {
    ifam_msglen @ 0, ifam_version @ 2, ifam_type @ 3, ifam_hdrlen @ 4, ifam_index @ 6,
    ifam_tableid @ 8, ifam_pad1 @ 10, ifam_pad2 @ 11, ifam_addrs @ 12, ifam_flags @ 16,
    ifam_metric @ 20,
});
layout!(IfAnnouncemsghdr, 26, 2, {
    ifan_msglen @ 0, ifan_version @ 2, ifan_type @ 3, ifan_hdrlen @ 4, ifan_index @ 6,
    ifan_what @ 8, ifan_name @ 10,
});

/// Size of a `SIOCAIFADDR_IN6` request.
pub const IN6_ALIASREQ_LEN: usize = size_of::<In6Aliasreq>();
/// Size of a `SIOCDIFADDR_IN6` request.
pub const IN6_IFREQ_LEN: usize = size_of::<In6Ifreq>();
const SIN6_LEN: usize = size_of::<SockaddrIn6>();
const RT_MSGHDR_LEN: usize = size_of::<RtMsghdr>();
const SDL_LEN: usize = size_of::<SockaddrDl>();
const RTLABEL_SA_LEN: usize = size_of::<SockaddrRtlabel>();

/// Why bytes could not be built or a kernel message could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The interface name does not fit `IFNAMSIZ` or contains a NUL.
    InterfaceName(String),
    /// A prefix length outside 1..=128.
    PrefixLength(u8),
    /// Fewer bytes than the common message header.
    Short(usize),
    /// `msglen` disagrees with the number of bytes read.
    Length {
        /// What the message says.
        msglen: usize,
        /// What was read.
        read: usize,
    },
    /// A routing message version other than `RTM_VERSION`.
    Version(u8),
    /// A header length below the header's size or beyond the message.
    HeaderLength {
        /// Message type.
        msg_type: u8,
        /// The header length it claims.
        hdrlen: usize,
    },
    /// A sockaddr that is malformed or runs past the message.
    Sockaddr {
        /// `RTAX_*` slot.
        slot: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::InterfaceName(name) => write!(f, "invalid interface name \"{name}\""),
            WireError::PrefixLength(len) => write!(f, "prefix length {len} out of range 1-128"),
            WireError::Short(len) => write!(f, "routing message too short: {len} bytes"),
            WireError::Length { msglen, read } => {
                write!(f, "routing message length {msglen}, {read} bytes read")
            }
            WireError::Version(v) => write!(f, "routing message version {v}, expected 5"),
            WireError::HeaderLength { msg_type, hdrlen } => {
                write!(
                    f,
                    "routing message type {msg_type}: bad header length {hdrlen}"
                )
            }
            WireError::Sockaddr { slot, reason } => {
                write!(f, "routing message sockaddr {}: {reason}", slot_name(*slot))
            }
        }
    }
}

impl std::error::Error for WireError {}

fn slot_name(slot: usize) -> &'static str {
    const NAMES: [&str; RTAX_MAX] = [
        "dst", "gateway", "netmask", "genmask", "ifp", "ifa", "author", "brd", "src", "srcmask",
        "label", "bfd", "dns", "static", "search",
    ];
    NAMES.get(slot).copied().unwrap_or("unknown")
}

/// `ROUNDUP` from rtsock.c: sockaddrs are padded to `sizeof(long)`, and an
/// empty one still takes a whole `long`.
pub const fn roundup(sa_len: usize) -> usize {
    if sa_len == 0 {
        8
    } else {
        1 + ((sa_len - 1) | 7)
    }
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Writes `bytes` at the offset of field `$f` of struct `$t` in `$buf`.
macro_rules! set {
    ($buf:ident, $t:ident . $f:ident, $bytes:expr) => {
        put(&mut $buf, offset_of!($t, $f), &$bytes)
    };
}

fn ifname(interface: &str) -> Result<[u8; IFNAMSIZ], WireError> {
    let bytes = interface.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(WireError::InterfaceName(interface.to_string()));
    }
    let mut name = [0u8; IFNAMSIZ];
    name[..bytes.len()].copy_from_slice(bytes);
    Ok(name)
}

/// Bytes of a `sockaddr_in6` with `sin6_len` 28 and the given family,
/// port, flow information and scope id zero.
fn sockaddr_in6(family: u8, addr: [u8; 16]) -> [u8; SIN6_LEN] {
    let mut sa = [0u8; SIN6_LEN];
    set!(sa, SockaddrIn6.sin6_len, [SIN6_LEN as u8]);
    set!(sa, SockaddrIn6.sin6_family, [family]);
    set!(sa, SockaddrIn6.sin6_addr, addr);
    sa
}

/// The mask of a prefix length, as 16 address bytes.
fn prefix_mask(prefixlen: u8) -> [u8; 16] {
    let shift = 128 - u32::from(prefixlen);
    u128::MAX.checked_shl(shift).unwrap_or(0).to_be_bytes()
}

/// The `SIOCAIFADDR_IN6` request adding `net` to `interface` the way
/// `ifconfig vio0 inet6 ADDR/LEN` does: no flags, infinite lifetimes, no
/// destination, prefix mask with family 0 (golden 1a/1b).
pub fn siocaifaddr_in6(
    interface: &str,
    net: &Ipv6Net,
) -> Result<[u8; IN6_ALIASREQ_LEN], WireError> {
    if net.prefixlen == 0 || net.prefixlen > 128 {
        return Err(WireError::PrefixLength(net.prefixlen));
    }
    let mut req = [0u8; IN6_ALIASREQ_LEN];
    set!(req, In6Aliasreq.ifra_name, ifname(interface)?);
    let addr = sockaddr_in6(AF_INET6, net.addr.octets());
    set!(req, In6Aliasreq.ifra_addr, addr);
    let mask = sockaddr_in6(AF_UNSPEC, prefix_mask(net.prefixlen));
    set!(req, In6Aliasreq.ifra_prefixmask, mask);
    let mut lifetime = [0u8; size_of::<In6Addrlifetime>()];
    let infinite = ND6_INFINITE_LIFETIME.to_ne_bytes();
    set!(lifetime, In6Addrlifetime.ia6t_vltime, infinite);
    set!(lifetime, In6Addrlifetime.ia6t_pltime, infinite);
    set!(req, In6Aliasreq.ifra_lifetime, lifetime);
    Ok(req)
}

/// The `SIOCDIFADDR_IN6` request removing `addr` from `interface`.
pub fn siocdifaddr_in6(interface: &str, addr: Ipv6Addr) -> Result<[u8; IN6_IFREQ_LEN], WireError> {
    let mut req = [0u8; IN6_IFREQ_LEN];
    set!(req, In6Ifreq.ifr_name, ifname(interface)?);
    let sa = sockaddr_in6(AF_INET6, addr.octets());
    set!(req, In6Ifreq.ifr_ifru, sa);
    Ok(req)
}

/// The address as the kernel wants it in a route: a link-local address
/// carries its interface index in bytes 2-3 (KAME scope), as route(8)
/// `getaddr()` does; any other address is left alone, since writing
/// bytes 2-3 of a global address would change it.
pub fn embed_scope(addr: Ipv6Addr, ifindex: u16) -> [u8; 16] {
    let mut bytes = addr.octets();
    if addr.is_unicast_link_local() {
        bytes[2..4].copy_from_slice(&ifindex.to_be_bytes());
    }
    bytes
}

/// The reverse of [`embed_scope`]: a link-local address with an index in
/// bytes 2-3 becomes the plain address and that index; anything else is
/// returned as is with scope 0.
pub fn strip_scope(bytes: [u8; 16]) -> (Ipv6Addr, u16) {
    let addr = Ipv6Addr::from(bytes);
    if !addr.is_unicast_link_local() {
        return (addr, 0);
    }
    let scope = u16::from_be_bytes([bytes[2], bytes[3]]);
    let mut plain = bytes;
    plain[2] = 0;
    plain[3] = 0;
    (Ipv6Addr::from(plain), scope)
}

/// Bytes of the `sockaddr_dl` naming interface `ifindex` (`RTA_IFP`).
fn sockaddr_dl(ifindex: u16) -> [u8; SDL_LEN] {
    let mut sa = [0u8; SDL_LEN];
    set!(sa, SockaddrDl.sdl_len, [SDL_LEN as u8]);
    set!(sa, SockaddrDl.sdl_family, [AF_LINK]);
    set!(sa, SockaddrDl.sdl_index, ifindex.to_ne_bytes());
    sa
}

/// Bytes of the `sockaddr_rtlabel` carrying scwd's label.
fn sockaddr_rtlabel() -> [u8; RTLABEL_SA_LEN] {
    let mut sa = [0u8; RTLABEL_SA_LEN];
    set!(sa, SockaddrRtlabel.sr_len, [RTLABEL_SA_LEN as u8]);
    set!(sa, SockaddrRtlabel.sr_family, [AF_UNSPEC]);
    set!(sa, SockaddrRtlabel.sr_label, ROUTE_LABEL.as_bytes());
    sa
}

const _: () = assert!(ROUTE_LABEL.len() < RTLABEL_LEN);

/// The fixed fields of a route message scwd writes.
struct RouteHeader {
    rtm_type: u8,
    index: u16,
    priority: u8,
    flags: i32,
    seq: i32,
    pid: i32,
}

/// A route message: the header, then one sockaddr per `RTA_*` bit in
/// ascending order, each padded with zeros to [`roundup`] of its length.
fn route_message(hdr: &RouteHeader, addrs: &[(i32, &[u8])]) -> Vec<u8> {
    let len = RT_MSGHDR_LEN + addrs.iter().map(|(_, sa)| roundup(sa.len())).sum::<usize>();
    debug_assert!(len <= RTM_MAXSIZE);
    debug_assert!(addrs.windows(2).all(|w| w[0].0 < w[1].0));
    let mut msg = vec![0u8; len];
    set!(msg, RtMsghdr.rtm_msglen, (len as u16).to_ne_bytes());
    set!(msg, RtMsghdr.rtm_version, [RTM_VERSION]);
    set!(msg, RtMsghdr.rtm_type, [hdr.rtm_type]);
    set!(
        msg,
        RtMsghdr.rtm_hdrlen,
        (RT_MSGHDR_LEN as u16).to_ne_bytes()
    );
    set!(msg, RtMsghdr.rtm_index, hdr.index.to_ne_bytes());
    set!(msg, RtMsghdr.rtm_priority, [hdr.priority]);
    let mask = addrs.iter().fold(0, |mask, (bit, _)| mask | bit);
    set!(msg, RtMsghdr.rtm_addrs, mask.to_ne_bytes());
    set!(msg, RtMsghdr.rtm_flags, hdr.flags.to_ne_bytes());
    set!(msg, RtMsghdr.rtm_pid, hdr.pid.to_ne_bytes());
    set!(msg, RtMsghdr.rtm_seq, hdr.seq.to_ne_bytes());
    let mut off = RT_MSGHDR_LEN;
    for (_, sa) in addrs {
        put(&mut msg, off, sa);
        off += roundup(sa.len());
    }
    msg
}

/// Flags of scwd's default route, as slaacd and dhcpleased set them.
pub const DEFAULT_ROUTE_FLAGS: i32 = RTF_UP | RTF_GATEWAY | RTF_STATIC | RTF_MPATH;
/// Sockaddrs of scwd's default route messages.
pub const DEFAULT_ROUTE_ADDRS: i32 = RTA_DST | RTA_GATEWAY | RTA_NETMASK | RTA_IFP | RTA_LABEL;

fn default_route(
    rtm_type: u8,
    ifindex: u16,
    gateway: Ipv6Addr,
    priority: u8,
    seq: i32,
    pid: i32,
) -> Vec<u8> {
    let hdr = RouteHeader {
        rtm_type,
        index: ifindex,
        priority,
        flags: DEFAULT_ROUTE_FLAGS,
        seq,
        pid,
    };
    let any = sockaddr_in6(AF_INET6, [0; 16]);
    let gw = sockaddr_in6(AF_INET6, embed_scope(gateway, ifindex));
    let ifp = sockaddr_dl(ifindex);
    let label = sockaddr_rtlabel();
    route_message(
        &hdr,
        &[
            (RTA_DST, &any),
            (RTA_GATEWAY, &gw),
            (RTA_NETMASK, &any),
            (RTA_IFP, &ifp),
            (RTA_LABEL, &label),
        ],
    )
}

/// `RTM_ADD ::/0 via gateway` on interface `ifindex`, labelled "scwd",
/// priority left to the kernel (golden 2a/2b). The kernel overwrites
/// `pid`; replies echo `seq`.
pub fn rtm_add_default(ifindex: u16, gateway: Ipv6Addr, seq: i32, pid: i32) -> Vec<u8> {
    default_route(RTM_ADD, ifindex, gateway, RTP_NONE, seq, pid)
}

/// `RTM_DELETE` of the route [`rtm_add_default`] added: the same bytes
/// but the type, since the kernel matches the gateway byte for byte
/// (golden 3).
pub fn rtm_delete_default(ifindex: u16, gateway: Ipv6Addr, seq: i32, pid: i32) -> Vec<u8> {
    default_route(RTM_DELETE, ifindex, gateway, RTP_NONE, seq, pid)
}

/// [`rtm_delete_default`] at one `priority`: with 0 (`RTP_ANY` on
/// delete, rtsock.c 792–793) the kernel removes the first `::/0` via
/// that gateway at any priority, whoever added it (rtable.c 462–471).
pub fn rtm_delete_default_at(
    ifindex: u16,
    gateway: Ipv6Addr,
    priority: u8,
    seq: i32,
    pid: i32,
) -> Vec<u8> {
    default_route(RTM_DELETE, ifindex, gateway, priority, seq, pid)
}

/// `RTM_GET ::/0 via gateway` at `priority`: the kernel answers with the
/// route it would delete for the same arguments, label included
/// (rtsock.c 1185–1189, rtm_report 603–665), or `ESRCH`.
pub fn rtm_get_default_via(
    ifindex: u16,
    gateway: Ipv6Addr,
    priority: u8,
    seq: i32,
    pid: i32,
) -> Vec<u8> {
    let hdr = RouteHeader {
        rtm_type: RTM_GET,
        index: ifindex,
        priority,
        flags: RTF_UP | RTF_GATEWAY | RTF_STATIC,
        seq,
        pid,
    };
    let any = sockaddr_in6(AF_INET6, [0; 16]);
    let gw = sockaddr_in6(AF_INET6, embed_scope(gateway, ifindex));
    route_message(
        &hdr,
        &[(RTA_DST, &any), (RTA_GATEWAY, &gw), (RTA_NETMASK, &any)],
    )
}

/// `RTM_GET ::/0` with a full zero netmask (golden 4c).
pub fn rtm_get_default(seq: i32, pid: i32) -> Vec<u8> {
    let hdr = RouteHeader {
        rtm_type: RTM_GET,
        index: 0,
        priority: RTP_NONE,
        flags: RTF_UP | RTF_GATEWAY | RTF_STATIC,
        seq,
        pid,
    };
    let any = sockaddr_in6(AF_INET6, [0; 16]);
    route_message(&hdr, &[(RTA_DST, &any), (RTA_NETMASK, &any)])
}

/// One sockaddr of a kernel message, read according to its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// An IPv6 address; a KAME-embedded link-local scope is moved to `scope_id`.
    Inet6 {
        /// The address without embedded scope.
        addr: Ipv6Addr,
        /// Interface index of a link-local address, else 0.
        scope_id: u32,
    },
    /// An IPv6 netmask (netmask slots; family 0 or `AF_INET6`).
    Netmask {
        /// Its prefix length.
        prefixlen: u8,
    },
    /// A link-level address (`sockaddr_dl`).
    Link {
        /// Interface index.
        index: u16,
        /// Interface name.
        name: String,
        /// Link-level address, e.g. the MAC.
        lladdr: Vec<u8>,
    },
    /// A route label.
    Label(String),
    /// A zero-length sockaddr.
    Empty,
    /// Any other family, kept opaque.
    Other {
        /// Its `sa_family`.
        family: u8,
    },
}

/// The sockaddrs of a message, by `RTAX_*` slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addrs([Option<SockAddr>; RTAX_MAX]);

impl Addrs {
    /// The sockaddr in slot `rtax`, if the message carried one.
    pub fn get(&self, rtax: usize) -> Option<&SockAddr> {
        self.0.get(rtax).and_then(Option::as_ref)
    }

    /// The IPv6 address in slot `rtax`, with its scope.
    pub fn inet6(&self, rtax: usize) -> Option<(Ipv6Addr, u32)> {
        match self.get(rtax) {
            Some(SockAddr::Inet6 { addr, scope_id }) => Some((*addr, *scope_id)),
            _ => None,
        }
    }

    /// The prefix length of the netmask, if it is an IPv6 one.
    pub fn prefixlen(&self) -> Option<u8> {
        match self.get(RTAX_NETMASK) {
            Some(SockAddr::Netmask { prefixlen }) => Some(*prefixlen),
            _ => None,
        }
    }

    /// The route label, if any.
    pub fn label(&self) -> Option<&str> {
        match self.get(RTAX_LABEL) {
            Some(SockAddr::Label(label)) => Some(label),
            _ => None,
        }
    }
}

/// A message with an `rt_msghdr`: replies to scwd's own requests and
/// route changes by others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMessage {
    /// `RTM_*`.
    pub msg_type: u8,
    /// Interface index.
    pub index: u16,
    /// Routing table.
    pub tableid: u16,
    /// `RTP_*`.
    pub priority: u8,
    /// `RTF_*`.
    pub flags: i32,
    /// Pid of the process that sent the request.
    pub pid: i32,
    /// Its sequence number.
    pub seq: i32,
    /// Why the request failed, 0 if it did not.
    pub errno: i32,
    /// Sockaddrs.
    pub addrs: Addrs,
}

/// `RTM_NEWADDR`, `RTM_DELADDR` or `RTM_CHGADDRATTR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressMessage {
    /// `RTM_*`.
    pub msg_type: u8,
    /// Interface index.
    pub index: u16,
    /// Routing domain.
    pub tableid: u16,
    /// `ifa_flags`.
    pub flags: i32,
    /// Sockaddrs: `RTAX_IFA` is the address, `RTAX_NETMASK` its mask.
    pub addrs: Addrs,
}

impl AddressMessage {
    /// The IPv6 address the message is about.
    pub fn address(&self) -> Option<Ipv6Addr> {
        self.addrs.inet6(RTAX_IFA).map(|(addr, _)| addr)
    }
}

/// `RTM_IFINFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceMessage {
    /// Interface index.
    pub index: u16,
    /// Routing domain.
    pub tableid: u16,
    /// `IFF_*`.
    pub flags: i32,
    /// Raw `IFXF_*`.
    pub xflags: i32,
    /// `LINK_STATE_*`.
    pub link_state: u8,
    /// MTU.
    pub mtu: u32,
    /// Sockaddrs (`RTAX_IFP`).
    pub addrs: Addrs,
}

/// `RTM_IFANNOUNCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceMessage {
    /// Interface index.
    pub index: u16,
    /// `IFAN_ARRIVAL` or `IFAN_DEPARTURE`.
    pub what: u16,
    /// Interface name.
    pub name: String,
}

/// A decoded routing-socket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Any type built on `rt_msghdr` (`RTM_ADD`, `RTM_DELETE`, `RTM_GET`,
    /// `RTM_DESYNC`, …).
    Route(RouteMessage),
    /// An address change.
    Address(AddressMessage),
    /// An interface change.
    Interface(InterfaceMessage),
    /// An interface arrival or departure.
    Announce(AnnounceMessage),
    /// A type with its own header that scwd does not read (`RTM_80211INFO`,
    /// `RTM_BFD`).
    Other(u8),
}

/// Bounds-checked reads; a lie in a length field becomes an error here,
/// never a panic.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.0.get(off..off + N) {
            out.copy_from_slice(src);
        }
        out
    }
    fn u8(&self, off: usize) -> u8 {
        self.0.get(off).copied().unwrap_or(0)
    }
    fn u16(&self, off: usize) -> u16 {
        u16::from_ne_bytes(self.bytes(off))
    }
    fn i32(&self, off: usize) -> i32 {
        i32::from_ne_bytes(self.bytes(off))
    }
    fn u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.bytes(off))
    }
}

/// Bytes every routing message starts with: msglen, version, type, hdrlen.
const COMMON_HEADER_LEN: usize = 6;

/// Decodes one message read from a routing socket. `buf` must be exactly
/// the message (one `read(2)` returns one message); every length in it is
/// checked against the bytes actually there.
pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
    if buf.len() < COMMON_HEADER_LEN {
        return Err(WireError::Short(buf.len()));
    }
    let r = Reader(buf);
    let msglen = usize::from(r.u16(offset_of!(RtMsghdr, rtm_msglen)));
    if msglen != buf.len() {
        return Err(WireError::Length {
            msglen,
            read: buf.len(),
        });
    }
    let version = r.u8(offset_of!(RtMsghdr, rtm_version));
    if version != RTM_VERSION {
        return Err(WireError::Version(version));
    }
    let msg_type = r.u8(offset_of!(RtMsghdr, rtm_type));
    let hdrlen = usize::from(r.u16(offset_of!(RtMsghdr, rtm_hdrlen)));
    let min = match msg_type {
        RTM_NEWADDR | RTM_DELADDR | RTM_CHGADDRATTR => size_of::<IfaMsghdr>(),
        RTM_IFINFO => size_of::<IfMsghdr>(),
        RTM_IFANNOUNCE => size_of::<IfAnnouncemsghdr>(),
        RTM_80211INFO | RTM_BFD => COMMON_HEADER_LEN,
        _ => RT_MSGHDR_LEN,
    };
    if hdrlen < min || hdrlen > msglen {
        return Err(WireError::HeaderLength { msg_type, hdrlen });
    }
    let sockaddrs = &buf[hdrlen..];
    Ok(match msg_type {
        RTM_NEWADDR | RTM_DELADDR | RTM_CHGADDRATTR => Message::Address(AddressMessage {
            msg_type,
            index: r.u16(offset_of!(IfaMsghdr, ifam_index)),
            tableid: r.u16(offset_of!(IfaMsghdr, ifam_tableid)),
            flags: r.i32(offset_of!(IfaMsghdr, ifam_flags)),
            addrs: decode_addrs(r.i32(offset_of!(IfaMsghdr, ifam_addrs)), sockaddrs)?,
        }),
        RTM_IFINFO => {
            let data = offset_of!(IfMsghdr, ifm_data);
            Message::Interface(InterfaceMessage {
                index: r.u16(offset_of!(IfMsghdr, ifm_index)),
                tableid: r.u16(offset_of!(IfMsghdr, ifm_tableid)),
                flags: r.i32(offset_of!(IfMsghdr, ifm_flags)),
                xflags: r.i32(offset_of!(IfMsghdr, ifm_xflags)),
                link_state: r.u8(data + offset_of!(IfData, ifi_link_state)),
                mtu: r.u32(data + offset_of!(IfData, ifi_mtu)),
                addrs: decode_addrs(r.i32(offset_of!(IfMsghdr, ifm_addrs)), sockaddrs)?,
            })
        }
        RTM_IFANNOUNCE => {
            let name: [u8; IFNAMSIZ] = r.bytes(offset_of!(IfAnnouncemsghdr, ifan_name));
            Message::Announce(AnnounceMessage {
                index: r.u16(offset_of!(IfAnnouncemsghdr, ifan_index)),
                what: r.u16(offset_of!(IfAnnouncemsghdr, ifan_what)),
                name: c_string(&name),
            })
        }
        RTM_80211INFO | RTM_BFD => Message::Other(msg_type),
        _ => Message::Route(RouteMessage {
            msg_type,
            index: r.u16(offset_of!(RtMsghdr, rtm_index)),
            tableid: r.u16(offset_of!(RtMsghdr, rtm_tableid)),
            priority: r.u8(offset_of!(RtMsghdr, rtm_priority)),
            flags: r.i32(offset_of!(RtMsghdr, rtm_flags)),
            pid: r.i32(offset_of!(RtMsghdr, rtm_pid)),
            seq: r.i32(offset_of!(RtMsghdr, rtm_seq)),
            errno: r.i32(offset_of!(RtMsghdr, rtm_errno)),
            addrs: decode_addrs(r.i32(offset_of!(RtMsghdr, rtm_addrs)), sockaddrs)?,
        }),
    })
}

/// Decodes a buffer of messages laid end to end, as `sysctl(NET_RT_DUMP)`
/// returns them; stops at the first length that does not fit.
pub fn decode_all(mut buf: &[u8]) -> Vec<Result<Message, WireError>> {
    let mut out = Vec::new();
    while buf.len() >= COMMON_HEADER_LEN {
        let len = usize::from(Reader(buf).u16(offset_of!(RtMsghdr, rtm_msglen)));
        let Some(msg) = buf.get(..len).filter(|_| len >= COMMON_HEADER_LEN) else {
            out.push(Err(WireError::Length {
                msglen: len,
                read: buf.len(),
            }));
            break;
        };
        out.push(decode(msg));
        buf = &buf[len..];
    }
    out
}

/// The prefix length of a 16-byte IPv6 mask, None if not contiguous.
pub fn mask_prefixlen(mask: [u8; 16]) -> Option<u8> {
    let mask = u128::from_be_bytes(mask);
    let len = mask.leading_ones();
    if mask.checked_shl(len).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(len).ok()
}

/// Text up to the first NUL (or the end), lossily as UTF-8.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Walks the sockaddrs after the header as `rtm_xaddrs()` does: one per
/// bit of `mask` in ascending order, each advancing by [`roundup`] of its
/// own `sa_len`.
fn decode_addrs(mask: i32, mut buf: &[u8]) -> Result<Addrs, WireError> {
    let mut addrs = Addrs::default();
    let mask = mask as u32;
    for slot in 0..32 {
        if mask & (1 << slot) == 0 {
            continue;
        }
        if slot >= RTAX_MAX {
            return Err(WireError::Sockaddr {
                slot,
                reason: "unknown address bit",
            });
        }
        let Some(&sa_len) = buf.first() else {
            return Err(WireError::Sockaddr {
                slot,
                reason: "missing",
            });
        };
        let sa_len = usize::from(sa_len);
        let Some(sa) = buf.get(..sa_len) else {
            return Err(WireError::Sockaddr {
                slot,
                reason: "runs past the message",
            });
        };
        addrs.0[slot] = Some(decode_sockaddr(slot, sa)?);
        buf = buf.get(roundup(sa_len)..).unwrap_or(&[]);
    }
    Ok(addrs)
}

fn decode_sockaddr(slot: usize, sa: &[u8]) -> Result<SockAddr, WireError> {
    let bad = |reason| WireError::Sockaddr { slot, reason };
    if sa.is_empty() {
        return Ok(match slot {
            RTAX_NETMASK | RTAX_GENMASK | RTAX_SRCMASK => SockAddr::Netmask { prefixlen: 0 },
            _ => SockAddr::Empty,
        });
    }
    let family = sa.get(1).copied().unwrap_or(AF_UNSPEC);
    match slot {
        RTAX_NETMASK | RTAX_GENMASK | RTAX_SRCMASK => {
            if family != AF_UNSPEC && family != AF_INET6 {
                return Ok(SockAddr::Other { family });
            }
            netmask(sa)
                .map(|prefixlen| SockAddr::Netmask { prefixlen })
                .ok_or(bad("bad netmask"))
        }
        RTAX_LABEL => {
            let label = sa
                .get(offset_of!(SockaddrRtlabel, sr_label)..)
                .unwrap_or(&[]);
            let label = &label[..label.len().min(RTLABEL_LEN)];
            if !label.contains(&0) && label.len() >= RTLABEL_LEN {
                return Err(bad("label not terminated"));
            }
            Ok(SockAddr::Label(c_string(label)))
        }
        _ => match family {
            AF_INET6 => {
                if sa.len() < SIN6_LEN {
                    return Err(bad("sockaddr_in6 too short"));
                }
                let r = Reader(sa);
                let (addr, scope) = strip_scope(r.bytes(offset_of!(SockaddrIn6, sin6_addr)));
                let scope_id = match r.u32(offset_of!(SockaddrIn6, sin6_scope_id)) {
                    0 => u32::from(scope),
                    id => id,
                };
                Ok(SockAddr::Inet6 { addr, scope_id })
            }
            AF_LINK => link(sa).ok_or(bad("bad sockaddr_dl")),
            _ => Ok(SockAddr::Other { family }),
        },
    }
}

/// Prefix length of an IPv6 mask of `sa_len` bytes (missing trailing
/// bytes are zero), or None if it is not contiguous or cannot hold one.
fn netmask(sa: &[u8]) -> Option<u8> {
    let start = offset_of!(SockaddrIn6, sin6_addr);
    if sa.len() < start || sa.len() > SIN6_LEN {
        return None;
    }
    let mut bytes = [0u8; 16];
    let end = sa.len().min(start + 16);
    bytes[..end - start].copy_from_slice(&sa[start..end]);
    let mask = u128::from_be_bytes(bytes);
    let prefixlen = mask.leading_ones();
    if mask.checked_shl(prefixlen).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(prefixlen).ok()
}

fn link(sa: &[u8]) -> Option<SockAddr> {
    let data = offset_of!(SockaddrDl, sdl_data);
    let r = Reader(sa);
    let nlen = usize::from(r.u8(offset_of!(SockaddrDl, sdl_nlen)));
    let alen = usize::from(r.u8(offset_of!(SockaddrDl, sdl_alen)));
    let slen = usize::from(r.u8(offset_of!(SockaddrDl, sdl_slen)));
    if sa.len() < data || data + nlen + alen + slen > sa.len() {
        return None;
    }
    Some(SockAddr::Link {
        index: r.u16(offset_of!(SockaddrDl, sdl_index)),
        name: String::from_utf8_lossy(&sa[data..data + nlen]).into_owned(),
        lladdr: sa[data + nlen..data + nlen + alen].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundup_matches_rtsock() {
        assert_eq!(roundup(0), 8);
        assert_eq!(roundup(1), 8);
        assert_eq!(roundup(8), 8);
        assert_eq!(roundup(28), 32);
        assert_eq!(roundup(32), 32);
        assert_eq!(roundup(34), 40);
    }

    #[test]
    fn prefix_masks() {
        assert_eq!(prefix_mask(128), [0xff; 16]);
        assert_eq!(
            prefix_mask(64)[..9],
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]
        );
        assert_eq!(prefix_mask(1)[0], 0x80);
        assert_eq!(prefix_mask(0), [0; 16]);
        for len in 0..=128u8 {
            let mut sa = [0u8; SIN6_LEN];
            sa[8..24].copy_from_slice(&prefix_mask(len));
            assert_eq!(netmask(&sa), Some(len));
        }
    }

    #[test]
    fn netmask_rejects_holes_and_bad_lengths() {
        let mut sa = [0u8; SIN6_LEN];
        sa[8] = 0xff;
        sa[9] = 0x01;
        assert_eq!(netmask(&sa), None);
        assert_eq!(netmask(&sa[..4]), None);
        assert_eq!(netmask(&[0u8; 29]), None);
        // A short mask: missing bytes are zero.
        assert_eq!(netmask(&[0x0a, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xf0]), Some(12));
    }

    #[test]
    fn interface_names() {
        assert!(ifname("vio0").is_ok());
        assert!(ifname("").is_err());
        assert!(ifname("a23456789012345").is_ok());
        assert!(ifname("a234567890123456").is_err());
        assert!(ifname("vio\u{0}").is_err());
    }

    #[test]
    fn scope_round_trip() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let embedded = embed_scope(ll, 7);
        assert_eq!(&embedded[..4], &[0xfe, 0x80, 0, 7]);
        assert_eq!(strip_scope(embedded), (ll, 7));
        let global: Ipv6Addr = "2001:bc8::1".parse().unwrap();
        assert_eq!(embed_scope(global, 7), global.octets());
        assert_eq!(strip_scope(global.octets()), (global, 0));
    }
}

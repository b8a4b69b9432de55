//! A model of what the OpenBSD kernel accepts from scwd: the header checks
//! of `route_output()` and the sockaddr walk of `rtm_xaddrs()`
//! (sys/net/rtsock.c), `rtable_satoplen()` (sys/net/rtable.c),
//! `in6_mask2len()` and the checks of `in6_ioctl_change_ifaddr()` /
//! `in6_update_ifa()` (sys/netinet6/in6.c), written from
//! shared/openbsd-abi.md and the kernel functions it cites. Numbers are
//! the model's own, taken from openbsd-abi.md, not wire.rs's: a wrong
//! constant there cannot hide here. On top of kernel acceptance, a second
//! layer checks intent: the message the kernel takes must also be the one
//! scwd means (a default route and not a host route, the right gateway,
//! label and interface; the right address and prefix with infinite
//! lifetimes).
//!
//! Used by tests/kernel_model.rs (the model against scwd's messages and
//! the golden vectors) and by the simulated kernel in openbsd_sim.rs.

use std::net::Ipv6Addr;

use scwd::plan::Ipv6Net;

// OpenBSD errno values.
pub const ESRCH: i32 = 3;
pub const ENXIO: i32 = 6;
pub const EINVAL: i32 = 22;
pub const EMSGSIZE: i32 = 40;
pub const EPROTONOSUPPORT: i32 = 43;
pub const EOPNOTSUPP: i32 = 45;
pub const EAFNOSUPPORT: i32 = 47;
pub const EADDRNOTAVAIL: i32 = 49;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_LINK: u8 = 18;
pub const AF_INET6: u8 = 24;
pub const AF_MAX: u8 = 36;

pub const RTM_VERSION: u8 = 5;
pub const RTM_MAXSIZE: usize = 2048;
pub const RTM_ADD: u8 = 1;
pub const RTM_DELETE: u8 = 2;
pub const RTM_CHANGE: u8 = 3;
pub const RTM_GET: u8 = 4;
pub const RTM_PROPOSAL: u8 = 0x13;
pub const RTM_SOURCE: u8 = 0x16;
pub const RT_MSGHDR: usize = 96;

pub const RTAX_DST: usize = 0;
pub const RTAX_GATEWAY: usize = 1;
pub const RTAX_NETMASK: usize = 2;
pub const RTAX_GENMASK: usize = 3;
pub const RTAX_IFP: usize = 4;
pub const RTAX_IFA: usize = 5;
pub const RTAX_SRC: usize = 8;
pub const RTAX_LABEL: usize = 10;
pub const RTAX_MAX: usize = 15;

pub const RTF_UP: i32 = 0x1;
pub const RTF_GATEWAY: i32 = 0x2;
pub const RTF_STATIC: i32 = 0x800;
pub const RTF_MPATH: i32 = 0x40000;
pub const RTF_LOCAL: i32 = 0x200000;
pub const RTF_BROADCAST: i32 = 0x400000;
pub const RTP_LOCAL: u8 = 1;
pub const RTP_MAX: u8 = 63;
pub const RTP_MASK: u8 = 0x7f;
pub const RTP_ANY: u8 = 64;
pub const RTLABEL_LEN: usize = 32;
pub const RTV_MTU: u32 = 0x1;
pub const RTV_EXPIRE: u32 = 0x4;

pub const IN6_IFF_DUPLICATED: i32 = 0x04;
pub const IN6_IFF_DETACHED: i32 = 0x08;
pub const IN6_IFF_DEPRECATED: i32 = 0x10;
pub const IN6_IFF_AUTOCONF: i32 = 0x40;
pub const INFINITE: u32 = 0xffff_ffff;

/// Why the model refuses a message. `errno` is what the kernel would
/// return; 0 means the kernel would take it (or silently ignore it) but
/// it is not what scwd means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub errno: i32,
    pub reason: &'static str,
}

pub fn reject<T>(errno: i32, reason: &'static str) -> Result<T, Reject> {
    Err(Reject { errno, reason })
}

pub fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// `ROUNDUP(a)` of rtsock.c with `sizeof(long)` 8.
pub fn roundup(a: usize) -> usize {
    if a > 0 { 1 + ((a - 1) | 7) } else { 8 }
}

/// One sockaddr found by the walk: where it starts and its `sa_len`.
#[derive(Debug, Clone, Copy)]
pub struct Sa<'a> {
    pub at: &'a [u8],
    pub len: usize,
}

impl<'a> Sa<'a> {
    pub fn family(&self) -> u8 {
        self.at[1]
    }
    pub fn bytes(&self) -> &'a [u8] {
        &self.at[..self.len]
    }
}

/// `rtm_xaddrs()`: splits the sockaddrs after the header by `rti_addrs`,
/// then checks each slot's family and size.
pub fn rtm_xaddrs(buf: &[u8], rti_addrs: u32) -> Result<[Option<Sa<'_>>; RTAX_MAX], Reject> {
    let mut info = [None; RTAX_MAX];
    let mut cp = 0;
    for i in 0..32 {
        if rti_addrs & (1 << i) == 0 {
            continue;
        }
        let Some(slot) = info.get_mut(i) else {
            return reject(EINVAL, "rtm_addrs has a bit beyond RTAX_MAX");
        };
        // cp + sizeof(socklen_t) > cplim
        if cp + 4 > buf.len() {
            return reject(EINVAL, "sockaddr starts past the end of the message");
        }
        let len = usize::from(buf[cp]);
        if cp + len > buf.len() {
            return reject(EINVAL, "sockaddr sa_len runs past the end of the message");
        }
        *slot = Some(Sa {
            at: &buf[cp..],
            len,
        });
        cp += roundup(len);
    }
    for (i, sa) in info.iter().enumerate() {
        let Some(sa) = sa else { continue };
        let (mut size, mut maxlen) = (0, 0);
        match i {
            RTAX_DST | RTAX_GATEWAY | RTAX_SRC => {
                size = match sa.family() {
                    AF_INET => 16,
                    AF_LINK => 32,
                    AF_INET6 => 28,
                    _ => 0,
                }
            }
            RTAX_IFP => {
                if sa.family() != AF_LINK {
                    return reject(EAFNOSUPPORT, "RTA_IFP is not AF_LINK");
                }
                size = 4;
            }
            RTAX_IFA => {
                size = match sa.family() {
                    AF_INET => 16,
                    AF_INET6 => 28,
                    _ => return reject(EAFNOSUPPORT, "RTA_IFA is neither AF_INET nor AF_INET6"),
                }
            }
            RTAX_LABEL => {
                if sa.family() != AF_UNSPEC {
                    return reject(EAFNOSUPPORT, "RTA_LABEL is not AF_UNSPEC");
                }
                maxlen = RTLABEL_LEN;
                size = 34;
            }
            11..=14 => return reject(0, "RTA_BFD/DNS/STATIC/SEARCH are not modelled"),
            _ => {}
        }
        if size != 0 && sa.len < size {
            return reject(EINVAL, "sockaddr shorter than its family's struct");
        }
        if maxlen != 0 {
            let data = &sa.at[2..2 + maxlen];
            let len = data.iter().position(|&b| b == 0).unwrap_or(maxlen);
            if len >= maxlen || 2 + len >= sa.len {
                return reject(EINVAL, "label not NUL-terminated within the sockaddr");
            }
            // rtsock.c breaks out of the whole loop here.
            break;
        }
    }
    Ok(info)
}

/// `rtable_satoplen()`: the prefix length of a netmask for `af`, -1 if
/// it is not one.
pub fn rtable_satoplen(af: u8, mask: Option<Sa<'_>>) -> i32 {
    let (offset, maxplen) = match af {
        AF_INET => (4, 32),
        AF_INET6 => (8, 128),
        _ => return -1,
    };
    let Some(mask) = mask else { return maxplen };
    if mask.len == 0 {
        return 0;
    }
    if offset > mask.len {
        return -1;
    }
    let mut bytes = &mask.at[offset..mask.len];
    while let [rest @ .., 0] = bytes {
        bytes = rest;
    }
    let mut plen = 0;
    let mut used = 0;
    for &b in bytes {
        used += 1;
        match b {
            0xff => plen += 8,
            0xfe | 0xfc | 0xf8 | 0xf0 | 0xe0 | 0xc0 | 0x80 => {
                plen += b.leading_ones() as i32;
                break;
            }
            _ => return -1,
        }
    }
    if plen > maxplen || used != bytes.len() {
        return -1;
    }
    plen
}

/// What `route_output()` took from a message.
#[derive(Debug)]
pub struct RouteRequest<'a> {
    pub msg_type: u8,
    pub flags: i32,
    /// The priority the kernel uses: 0 lets `rtrequest()` pick
    /// `if_priority + RTP_STATIC` for a static route.
    pub prio: u8,
    pub plen: i32,
    pub addrs: [Option<Sa<'a>>; RTAX_MAX],
    /// Offsets of the sockaddrs, for comparison with the golden notes.
    pub offsets: Vec<(usize, usize)>,
}

/// `route_output()` + `rtm_output()`'s first checks, for root, with only
/// routing table 0 existing.
pub fn route_output(msg: &[u8]) -> Result<RouteRequest<'_>, Reject> {
    let len = msg.len();
    if len < 6 {
        return reject(EINVAL, "shorter than the rtm_hdrlen field");
    }
    if usize::from(u16_at(msg, 0)) != len {
        return reject(EINVAL, "rtm_msglen differs from the bytes written");
    }
    if msg[2] != RTM_VERSION {
        return reject(EPROTONOSUPPORT, "rtm_version is not RTM_VERSION");
    }
    if len < RT_MSGHDR {
        return reject(EINVAL, "shorter than struct rt_msghdr");
    }
    if len > RTM_MAXSIZE {
        return reject(EMSGSIZE, "longer than RTM_MAXSIZE");
    }
    let msg_type = msg[3];
    if ![
        RTM_ADD,
        RTM_DELETE,
        RTM_GET,
        RTM_CHANGE,
        RTM_PROPOSAL,
        RTM_SOURCE,
    ]
    .contains(&msg_type)
    {
        return reject(EOPNOTSUPP, "rtm_type not accepted from userland");
    }
    let hdrlen = match usize::from(u16_at(msg, 4)) {
        0 => RT_MSGHDR,
        n => n,
    };
    if hdrlen < RT_MSGHDR || len < hdrlen {
        return reject(EINVAL, "rtm_hdrlen below rt_msghdr or beyond the message");
    }
    if u16_at(msg, 8) != 0 && msg_type != RTM_ADD {
        return reject(EINVAL, "routing table does not exist");
    }
    let flags = i32_at(msg, 16);
    if flags & (RTF_LOCAL | RTF_BROADCAST) != 0 {
        return reject(EINVAL, "kernel-only flag RTF_LOCAL or RTF_BROADCAST");
    }
    let priority = msg[10] & RTP_MASK;
    if priority != 0 && (priority > RTP_MAX || priority == RTP_LOCAL) {
        return reject(EINVAL, "rtm_priority above RTP_MAX or RTP_LOCAL");
    }
    let prio = match (priority, msg_type) {
        (0, RTM_ADD) if flags & RTF_STATIC != 0 => 0,
        (0, RTM_ADD) => 56,
        (0, _) => RTP_ANY,
        (p, _) => p,
    };
    let addrs = rtm_xaddrs(&msg[hdrlen..], i32_at(msg, 12) as u32)?;
    let Some(dst) = addrs[RTAX_DST] else {
        return reject(EINVAL, "no RTA_DST");
    };
    if dst.family() >= AF_MAX || addrs[RTAX_GATEWAY].is_some_and(|g| g.family() >= AF_MAX) {
        return reject(EINVAL, "address family beyond AF_MAX");
    }
    if addrs[RTAX_GENMASK].is_some() {
        return reject(EINVAL, "RTA_GENMASK given");
    }
    if msg_type == RTM_ADD && addrs[RTAX_GATEWAY].is_none() {
        return reject(EINVAL, "RTM_ADD without RTA_GATEWAY");
    }
    let plen = rtable_satoplen(dst.family(), addrs[RTAX_NETMASK]);
    if plen == -1 {
        // rtrequest() refuses the add; the lookup of the others finds nothing.
        let errno = if msg_type == RTM_ADD { EINVAL } else { ESRCH };
        return reject(errno, "netmask is not a prefix");
    }
    let base = msg.as_ptr() as usize;
    let offsets = addrs
        .iter()
        .enumerate()
        .filter_map(|(i, sa)| sa.map(|sa| (i, sa.at.as_ptr() as usize - base)))
        .collect();
    Ok(RouteRequest {
        msg_type,
        flags,
        prio,
        plen,
        addrs,
        offsets,
    })
}

/// `in6_mask2len()` with a limit pointer, as `in6_update_ifa()` calls it.
pub fn in6_mask2len(mask: &[u8; 16], lim: usize) -> i32 {
    let lim = lim.min(16);
    let mut x = 0;
    while x < lim && mask[x] == 0xff {
        x += 1;
    }
    let mut y = 0;
    if x < lim {
        while y < 8 && mask[x] & (0x80 >> y) != 0 {
            y += 1;
        }
        if y != 0 && mask[x] & (0xff >> y) != 0 {
            return -1;
        }
        if mask[x + 1..lim].iter().any(|&b| b != 0) {
            return -1;
        }
    }
    (x * 8 + y) as i32
}

/// The interface the model's kernel has: name, index and addresses with
/// their prefix lengths. Not point-to-point, not loopback.
pub struct Interface {
    pub name: String,
    pub index: u16,
    pub addrs: Vec<(Ipv6Addr, i32)>,
}

/// What `SIOCAIFADDR_IN6` did.
#[derive(Debug, PartialEq, Eq)]
pub struct AliasAccepted {
    pub addr: Ipv6Addr,
    pub plen: i32,
    pub new: bool,
    pub flags: i32,
    pub vltime: u32,
    pub pltime: u32,
}

/// `ifunit()` on the request's name.
pub fn check_name(req: &[u8], iface: &Interface) -> Result<(), Reject> {
    let name = &req[..16];
    let Some(end) = name.iter().position(|&b| b == 0) else {
        return reject(ENXIO, "interface name not NUL-terminated");
    };
    if &name[..end] != iface.name.as_bytes() {
        return reject(ENXIO, "no such interface");
    }
    Ok(())
}

/// `in6_ioctl_change_ifaddr()`'s common part: the sockaddr_in6 at `sa`,
/// scope checked and cleared; None if it is not AF_INET6.
pub fn request_address(sa: &[u8], iface: &Interface) -> Result<Option<Ipv6Addr>, Reject> {
    if sa[1] != AF_INET6 {
        return Ok(None);
    }
    if sa[0] != 28 {
        return reject(EINVAL, "address sin6_len is not 28");
    }
    let mut addr: [u8; 16] = sa[8..24].try_into().unwrap();
    if addr[0] == 0xfe && addr[1] & 0xc0 == 0x80 {
        let embedded = u16::from_be_bytes([addr[2], addr[3]]);
        if embedded != 0 && embedded != iface.index {
            return reject(EINVAL, "embedded scope contradicts the interface");
        }
        let scope_id = u32_at(sa, 24);
        if scope_id != 0 && scope_id != u32::from(iface.index) {
            return reject(EINVAL, "sin6_scope_id contradicts the interface");
        }
        addr[2..4].copy_from_slice(&iface.index.to_be_bytes());
    }
    Ok(Some(Ipv6Addr::from(addr)))
}

/// `ioctl(SIOCAIFADDR_IN6)` on `iface`.
pub fn siocaifaddr_in6(req: &[u8], iface: &Interface) -> Result<AliasAccepted, Reject> {
    if req.len() != 128 {
        return reject(EINVAL, "request is not sizeof(struct in6_aliasreq)");
    }
    check_name(req, iface)?;
    let addr = request_address(&req[16..44], iface)?;
    let Some(addr) = addr.filter(|_| req[16] == 28) else {
        return reject(EAFNOSUPPORT, "ifra_addr is not a 28-byte AF_INET6 sockaddr");
    };
    let flags = i32_at(req, 100);
    if flags & (IN6_IFF_DUPLICATED | IN6_IFF_DETACHED | IN6_IFF_DEPRECATED) != 0 {
        return reject(EINVAL, "read-only IN6_IFF flag");
    }
    let existing = iface
        .addrs
        .iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, p)| *p);
    // in6_update_ifa()
    let dst_family = req[45];
    if flags & IN6_IFF_AUTOCONF != 0 {
        if dst_family != AF_INET6 && dst_family != AF_UNSPEC {
            return reject(EAFNOSUPPORT, "ifra_dstaddr family");
        }
    } else if dst_family != AF_UNSPEC {
        return reject(EINVAL, "ifra_dstaddr set on a non-point-to-point interface");
    }
    let mask_len = usize::from(req[72]);
    if mask_len > 28 {
        return reject(EINVAL, "prefix mask sin6_len above 28");
    }
    if existing.is_none() && mask_len == 0 {
        return reject(EINVAL, "no prefix mask for a new address");
    }
    let plen = if mask_len != 0 {
        let mask: [u8; 16] = req[80..96].try_into().unwrap();
        let plen = in6_mask2len(&mask, mask_len.saturating_sub(8));
        if plen <= 0 {
            return reject(EINVAL, "prefix mask not contiguous or prefix length 0");
        }
        plen
    } else {
        existing.unwrap()
    };
    let (vltime, pltime) = (u32_at(req, 120), u32_at(req, 124));
    if pltime > vltime {
        return reject(EINVAL, "preferred lifetime above valid lifetime");
    }
    if vltime == 0 && existing.is_none() {
        return reject(0, "valid lifetime 0: the kernel does nothing");
    }
    if existing.is_some_and(|p| p != plen) {
        return reject(EINVAL, "prefix length of an existing address changed");
    }
    Ok(AliasAccepted {
        addr,
        plen,
        new: existing.is_none(),
        flags,
        vltime,
        pltime,
    })
}

/// `ioctl(SIOCDIFADDR_IN6)` on `iface`: the address it would remove.
pub fn siocdifaddr_in6(req: &[u8], iface: &Interface) -> Result<Ipv6Addr, Reject> {
    if req.len() != 288 {
        return reject(EINVAL, "request is not sizeof(struct in6_ifreq)");
    }
    check_name(req, iface)?;
    match request_address(&req[16..44], iface)? {
        Some(addr) if iface.addrs.iter().any(|(a, _)| *a == addr) => Ok(addr),
        _ => reject(EADDRNOTAVAIL, "no such address on the interface"),
    }
}

// The intent layer.

/// The default route scwd means: ::/0 via `gateway` (KAME scope if
/// link-local) on interface `ifindex`, static, multipath, labelled scwd.
/// `want_prio` is the priority the kernel is to use: 0 (its choice) on
/// an add, the route's own on a delete.
pub fn check_default_route(
    msg: &[u8],
    msg_type: u8,
    ifindex: u16,
    gateway: Ipv6Addr,
    want_prio: u8,
) -> Result<RouteRequest<'_>, Reject> {
    let req = route_output(msg)?;
    if req.msg_type != msg_type {
        return reject(0, "wrong message type");
    }
    // RTM_ADD creates a missing table rather than failing.
    if u16_at(msg, 8) != 0 {
        return reject(0, "not routing table 0");
    }
    if u32_at(msg, 36) & (RTV_MTU | RTV_EXPIRE) != 0 {
        return reject(0, "rtm_inits sets route metrics");
    }
    let dst = req.addrs[RTAX_DST].unwrap();
    if dst.family() != AF_INET6 || dst.bytes()[8..24] != [0; 16] {
        return reject(0, "destination is not ::");
    }
    if req.addrs[RTAX_NETMASK].is_none() {
        return reject(0, "no netmask: a host route, not the default route");
    }
    if req.plen != 0 {
        return reject(0, "netmask is not /0");
    }
    let mut want = [0u8; 28];
    want[0] = 28;
    want[1] = AF_INET6;
    want[8..24].copy_from_slice(&gateway.octets());
    if gateway.is_unicast_link_local() {
        want[10..12].copy_from_slice(&ifindex.to_be_bytes());
    }
    if req.addrs[RTAX_GATEWAY].unwrap().bytes() != want {
        return reject(0, "gateway is not the plan's, KAME-scoped if link-local");
    }
    match req.addrs[RTAX_IFP] {
        Some(ifp) if u16_at(ifp.bytes(), 2) == ifindex => {}
        _ => return reject(0, "RTA_IFP does not name the interface"),
    }
    let label = req.addrs[RTAX_LABEL].map(|sa| &sa.at[2..6]);
    if label != Some(b"scwd") || req.addrs[RTAX_LABEL].unwrap().at[6] != 0 {
        return reject(0, "route not labelled scwd");
    }
    let want_flags = RTF_UP | RTF_GATEWAY | RTF_STATIC | RTF_MPATH;
    if req.flags != want_flags {
        return reject(0, "flags are not UP|GATEWAY|STATIC|MPATH");
    }
    if req.prio != want_prio {
        return reject(0, "not the priority meant");
    }
    Ok(req)
}

/// The address scwd means: `net`, static, infinite lifetimes.
pub fn check_address(
    req: &[u8],
    iface: &Interface,
    net: &Ipv6Net,
) -> Result<AliasAccepted, Reject> {
    let got = siocaifaddr_in6(req, iface)?;
    if got.addr != net.addr || got.plen != i32::from(net.prefixlen) {
        return reject(0, "not the plan's address and prefix length");
    }
    if got.flags != 0 || got.vltime != INFINITE || got.pltime != INFINITE {
        return reject(0, "not a static address with infinite lifetimes");
    }
    Ok(got)
}

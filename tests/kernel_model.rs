//! A model of what the OpenBSD kernel accepts, run against every message
//! the OpenBSD backend would send for a few plans.
//!
//! Written from shared/openbsd-abi.md and the kernel functions it cites:
//! the header checks of `route_output()` and the sockaddr walk of
//! `rtm_xaddrs()` (sys/net/rtsock.c), `rtable_satoplen()` (sys/net/rtable.c),
//! `in6_mask2len()` and the checks of `in6_ioctl_change_ifaddr()` /
//! `in6_update_ifa()` (sys/netinet6/in6.c). Numbers are the model's own,
//! taken from openbsd-abi.md, not wire.rs's: a wrong constant there cannot
//! hide here. On top of kernel acceptance, a second layer checks intent:
//! the message the kernel takes must also be the one scwd means (a
//! default route and not a host route, the right gateway, label and
//! interface; the right address and prefix with infinite lifetimes).

use std::net::Ipv6Addr;

use scwd::net::wire;
use scwd::plan::{Ipv6Net, Plan};

// OpenBSD errno values.
const ESRCH: i32 = 3;
const ENXIO: i32 = 6;
const EINVAL: i32 = 22;
const EMSGSIZE: i32 = 40;
const EPROTONOSUPPORT: i32 = 43;
const EOPNOTSUPP: i32 = 45;
const EAFNOSUPPORT: i32 = 47;
const EADDRNOTAVAIL: i32 = 49;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_LINK: u8 = 18;
const AF_INET6: u8 = 24;
const AF_MAX: u8 = 36;

const RTM_VERSION: u8 = 5;
const RTM_MAXSIZE: usize = 2048;
const RTM_ADD: u8 = 1;
const RTM_DELETE: u8 = 2;
const RTM_CHANGE: u8 = 3;
const RTM_GET: u8 = 4;
const RTM_PROPOSAL: u8 = 0x13;
const RTM_SOURCE: u8 = 0x16;
const RT_MSGHDR: usize = 96;

const RTAX_DST: usize = 0;
const RTAX_GATEWAY: usize = 1;
const RTAX_NETMASK: usize = 2;
const RTAX_GENMASK: usize = 3;
const RTAX_IFP: usize = 4;
const RTAX_IFA: usize = 5;
const RTAX_SRC: usize = 8;
const RTAX_LABEL: usize = 10;
const RTAX_MAX: usize = 15;

const RTF_UP: i32 = 0x1;
const RTF_GATEWAY: i32 = 0x2;
const RTF_STATIC: i32 = 0x800;
const RTF_MPATH: i32 = 0x40000;
const RTF_LOCAL: i32 = 0x200000;
const RTF_BROADCAST: i32 = 0x400000;
const RTP_LOCAL: u8 = 1;
const RTP_MAX: u8 = 63;
const RTP_MASK: u8 = 0x7f;
const RTP_ANY: u8 = 64;
const RTLABEL_LEN: usize = 32;
const RTV_MTU: u32 = 0x1;
const RTV_EXPIRE: u32 = 0x4;

const IN6_IFF_DUPLICATED: i32 = 0x04;
const IN6_IFF_DETACHED: i32 = 0x08;
const IN6_IFF_DEPRECATED: i32 = 0x10;
const IN6_IFF_AUTOCONF: i32 = 0x40;
const INFINITE: u32 = 0xffff_ffff;

/// Why the model refuses a message. `errno` is what the kernel would
/// return; 0 means the kernel would take it (or silently ignore it) but
/// it is not what scwd means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reject {
    errno: i32,
    reason: &'static str,
}

fn reject<T>(errno: i32, reason: &'static str) -> Result<T, Reject> {
    Err(Reject { errno, reason })
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// `ROUNDUP(a)` of rtsock.c with `sizeof(long)` 8.
fn roundup(a: usize) -> usize {
    if a > 0 { 1 + ((a - 1) | 7) } else { 8 }
}

/// One sockaddr found by the walk: where it starts and its `sa_len`.
#[derive(Debug, Clone, Copy)]
struct Sa<'a> {
    at: &'a [u8],
    len: usize,
}

impl<'a> Sa<'a> {
    fn family(&self) -> u8 {
        self.at[1]
    }
    fn bytes(&self) -> &'a [u8] {
        &self.at[..self.len]
    }
}

/// `rtm_xaddrs()`: splits the sockaddrs after the header by `rti_addrs`,
/// then checks each slot's family and size.
fn rtm_xaddrs(buf: &[u8], rti_addrs: u32) -> Result<[Option<Sa<'_>>; RTAX_MAX], Reject> {
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
fn rtable_satoplen(af: u8, mask: Option<Sa<'_>>) -> i32 {
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
struct RouteRequest<'a> {
    msg_type: u8,
    flags: i32,
    /// The priority the kernel uses: 0 lets `rtrequest()` pick
    /// `if_priority + RTP_STATIC` for a static route.
    prio: u8,
    plen: i32,
    addrs: [Option<Sa<'a>>; RTAX_MAX],
    /// Offsets of the sockaddrs, for comparison with the golden notes.
    offsets: Vec<(usize, usize)>,
}

/// `route_output()` + `rtm_output()`'s first checks, for root, with only
/// routing table 0 existing.
fn route_output(msg: &[u8]) -> Result<RouteRequest<'_>, Reject> {
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
fn in6_mask2len(mask: &[u8; 16], lim: usize) -> i32 {
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
struct Interface {
    name: &'static str,
    index: u16,
    addrs: Vec<(Ipv6Addr, i32)>,
}

/// What `SIOCAIFADDR_IN6` did.
#[derive(Debug, PartialEq, Eq)]
struct AliasAccepted {
    addr: Ipv6Addr,
    plen: i32,
    new: bool,
    flags: i32,
    vltime: u32,
    pltime: u32,
}

/// `ifunit()` on the request's name.
fn check_name(req: &[u8], iface: &Interface) -> Result<(), Reject> {
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
fn request_address(sa: &[u8], iface: &Interface) -> Result<Option<Ipv6Addr>, Reject> {
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
fn siocaifaddr_in6(req: &[u8], iface: &Interface) -> Result<AliasAccepted, Reject> {
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
fn siocdifaddr_in6(req: &[u8], iface: &Interface) -> Result<Ipv6Addr, Reject> {
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
fn check_default_route(
    msg: &[u8],
    msg_type: u8,
    ifindex: u16,
    gateway: Ipv6Addr,
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
    let want_prio = if msg_type == RTM_ADD { 0 } else { RTP_ANY };
    if req.prio != want_prio {
        return reject(0, "priority not left to the kernel");
    }
    Ok(req)
}

/// The address scwd means: `net`, static, infinite lifetimes.
fn check_address(req: &[u8], iface: &Interface, net: &Ipv6Net) -> Result<AliasAccepted, Reject> {
    let got = siocaifaddr_in6(req, iface)?;
    if got.addr != net.addr || got.plen != i32::from(net.prefixlen) {
        return reject(0, "not the plan's address and prefix length");
    }
    if got.flags != 0 || got.vltime != INFINITE || got.pltime != INFINITE {
        return reject(0, "not a static address with infinite lifetimes");
    }
    Ok(got)
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn net(s: &str, prefixlen: u8) -> Ipv6Net {
    Ipv6Net {
        addr: ip(s),
        prefixlen,
    }
}

/// The three shapes of Scaleway IPv6 configuration.
fn plans() -> Vec<Plan> {
    vec![
        // Legacy: a /127 with a global gateway.
        Plan {
            interface: "vio0".into(),
            addresses: vec![net("2001:bc8:4700:2100::302d", 127)],
            default_gateway: Some(ip("2001:bc8:4700:2100::302c")),
        },
        // Routed: a /64 via a link-local gateway.
        Plan {
            interface: "vio0".into(),
            addresses: vec![net("2001:bc8:1234:5678:dc00:1ff:fe14:a73b", 64)],
            default_gateway: Some(ip("fe80::dc00:ff:fe12:3456")),
        },
        // IPv6-only.
        Plan {
            interface: "vio0".into(),
            addresses: vec![net("2001:111:222:3333::1", 64)],
            default_gateway: Some(ip("fe80::dc00:ff:fe12:3456")),
        },
    ]
}

#[test]
fn every_message_for_every_plan_passes() {
    let mut checked = 0;
    for plan in plans() {
        for ifindex in [1u16, 2, 300] {
            let mut iface = Interface {
                name: "vio0",
                index: ifindex,
                addrs: vec![],
            };
            for n in &plan.addresses {
                let add = wire::siocaifaddr_in6(&plan.interface, n).unwrap();
                let got = check_address(&add, &iface, n).unwrap();
                assert!(got.new, "{n}");
                iface.addrs.push((n.addr, i32::from(n.prefixlen)));
                // Re-issuing it (a refresh) is accepted and changes nothing.
                assert!(!check_address(&add, &iface, n).unwrap().new, "{n}");
                let del = wire::siocdifaddr_in6(&plan.interface, n.addr).unwrap();
                assert_eq!(siocdifaddr_in6(&del, &iface), Ok(n.addr));
                iface.addrs.clear();
                // Gone already: the backend takes EADDRNOTAVAIL as success.
                assert_eq!(
                    siocdifaddr_in6(&del, &iface).unwrap_err().errno,
                    EADDRNOTAVAIL
                );
                checked += 1;
            }
            let gw = plan.default_gateway.unwrap();
            for seq in [1, 2, i32::MAX] {
                let add = wire::rtm_add_default(ifindex, gw, seq, 4242);
                check_default_route(&add, RTM_ADD, ifindex, gw).unwrap();
                let del = wire::rtm_delete_default(ifindex, gw, seq, 4242);
                check_default_route(&del, RTM_DELETE, ifindex, gw).unwrap();
                // The kernel matches the delete's gateway byte for byte.
                assert_eq!(add[128..160], del[128..160]);
                checked += 2;
            }
        }
    }
    assert_eq!(checked, 3 * 3 * (1 + 6));
}

fn golden(id: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openbsd/golden.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hex = g["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()["hex"]
        .as_str()
        .unwrap()
        .to_string();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn vio0() -> Interface {
    Interface {
        name: "vio0",
        index: 1,
        addrs: vec![],
    }
}

/// The model agrees with the kernel-code check of openbsd-golden.md.
#[test]
fn golden_vectors_pass_as_the_kernel_code_said() {
    assert_eq!(siocaifaddr_in6(&golden("1a"), &vio0()).unwrap().plen, 127);
    assert_eq!(siocaifaddr_in6(&golden("1b"), &vio0()).unwrap().plen, 64);
    let full = [(0, 96), (1, 128), (2, 160), (4, 192), (10, 224)];
    for id in ["2a", "2b", "3"] {
        let msg = golden(id);
        let req = route_output(&msg).unwrap();
        assert_eq!(
            (req.offsets.as_slice(), req.plen),
            (full.as_slice(), 0),
            "{id}"
        );
    }
    let msg = golden("4a");
    let req = route_output(&msg).unwrap();
    assert_eq!(
        (req.offsets, req.plen),
        (vec![(0, 96), (2, 128), (4, 136)], 0)
    );
    for id in ["4b", "4c"] {
        let msg = golden(id);
        let req = route_output(&msg).unwrap();
        assert_eq!(
            (req.offsets.as_slice(), req.plen),
            ([(0, 96), (2, 128)].as_slice(), 0)
        );
    }
    let ll = ip("fe80::dc00:ff:fe12:3456");
    check_default_route(&golden("2a"), RTM_ADD, 1, ip("2001:bc8:4700:2100::302c")).unwrap();
    check_default_route(&golden("2b"), RTM_ADD, 1, ll).unwrap();
    check_default_route(&golden("3"), RTM_DELETE, 1, ll).unwrap();
}

/// openbsd-golden.md's negative controls: msglen+1 -> 22, label AF_INET6
/// -> 47, IFP AF_INET6 -> 47, aliasreq dst AF_INET6 -> 22, mask ..fffd -> 22.
#[test]
fn golden_negative_controls() {
    let mut msg = golden("2b");
    msg[0] += 1;
    assert_eq!(route_output(&msg).unwrap_err().errno, EINVAL);
    let mut msg = golden("2b");
    msg[225] = AF_INET6;
    assert_eq!(route_output(&msg).unwrap_err().errno, EAFNOSUPPORT);
    let mut msg = golden("2b");
    msg[193] = AF_INET6;
    assert_eq!(route_output(&msg).unwrap_err().errno, EAFNOSUPPORT);
    let mut req = golden("1a");
    req[44] = 28;
    req[45] = AF_INET6;
    assert_eq!(siocaifaddr_in6(&req, &vio0()).unwrap_err().errno, EINVAL);
    let mut req = golden("1a");
    req[95] = 0xfd;
    assert_eq!(siocaifaddr_in6(&req, &vio0()).unwrap_err().errno, EINVAL);
}

fn set_u16(msg: &mut [u8], off: usize, v: u16) {
    msg[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn set_i32(msg: &mut [u8], off: usize, v: i32) {
    msg[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Each broken route message fails with its own reason.
#[test]
fn broken_route_messages_fail() {
    let gw = ip("fe80::dc00:ff:fe12:3456");
    let good = wire::rtm_add_default(1, gw, 1, 0);
    check_default_route(&good, RTM_ADD, 1, gw).unwrap();
    let fails = |msg: &[u8]| check_default_route(msg, RTM_ADD, 1, gw).unwrap_err();
    let case = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut msg = good.clone();
        edit(&mut msg);
        fails(&msg)
    };
    let r = |errno, reason| Reject { errno, reason };

    assert_eq!(
        case(&|m| m[2] = 4),
        r(EPROTONOSUPPORT, "rtm_version is not RTM_VERSION")
    );
    assert_eq!(
        case(&|m| m.push(0)),
        r(EINVAL, "rtm_msglen differs from the bytes written")
    );
    assert_eq!(
        case(&|m| set_u16(m, 0, 263)),
        r(EINVAL, "rtm_msglen differs from the bytes written")
    );
    assert_eq!(
        fails(&good[..4]),
        r(EINVAL, "shorter than the rtm_hdrlen field")
    );
    assert_eq!(
        case(&|m| {
            m.truncate(64);
            set_u16(m, 0, 64);
        }),
        r(EINVAL, "shorter than struct rt_msghdr")
    );
    assert_eq!(
        case(&|m| {
            m.resize(3000, 0);
            set_u16(m, 0, 3000);
        }),
        r(EMSGSIZE, "longer than RTM_MAXSIZE")
    );
    assert_eq!(
        case(&|m| m[3] = 0xe),
        r(EOPNOTSUPP, "rtm_type not accepted from userland")
    );
    let bad_hdrlen = r(EINVAL, "rtm_hdrlen below rt_msghdr or beyond the message");
    assert_eq!(case(&|m| set_u16(m, 4, 24)), bad_hdrlen);
    assert_eq!(case(&|m| set_u16(m, 4, 300)), bad_hdrlen);
    // rtm_hdrlen 0 is an old client: taken as 96.
    let mut old = good.clone();
    set_u16(&mut old, 4, 0);
    check_default_route(&old, RTM_ADD, 1, gw).unwrap();
    assert_eq!(
        case(&|m| set_i32(m, 16, RTF_UP | RTF_GATEWAY | RTF_LOCAL)),
        r(EINVAL, "kernel-only flag RTF_LOCAL or RTF_BROADCAST")
    );
    assert_eq!(
        case(&|m| m[10] = 1),
        r(EINVAL, "rtm_priority above RTP_MAX or RTP_LOCAL")
    );
    assert_eq!(
        case(&|m| m[10] = 64),
        r(EINVAL, "rtm_priority above RTP_MAX or RTP_LOCAL")
    );
    // A label sa_len reaching past the end.
    assert_eq!(
        case(&|m| m[224] = 41),
        r(EINVAL, "sockaddr sa_len runs past the end of the message")
    );
    // A gateway sockaddr_in6 with sa_len 24.
    assert_eq!(
        case(&|m| m[128] = 24),
        r(EINVAL, "sockaddr shorter than its family's struct")
    );
    // A label sockaddr of 20 bytes: shorter than sockaddr_rtlabel.
    assert_eq!(
        case(&|m| m[224] = 20),
        r(EINVAL, "sockaddr shorter than its family's struct")
    );
    assert_eq!(
        case(&|m| m[226..258].fill(b'x')),
        r(EINVAL, "label not NUL-terminated within the sockaddr")
    );
    assert_eq!(
        case(&|m| set_i32(m, 12, 0x417 | 1 << 20)),
        r(EINVAL, "rtm_addrs has a bit beyond RTAX_MAX")
    );
    assert_eq!(
        case(&|m| set_i32(m, 12, 0x417 | 0x100)),
        r(EINVAL, "sockaddr starts past the end of the message")
    );
    // Without RTA_DST (and its 32 bytes).
    let mut msg = good[..96].to_vec();
    msg.extend_from_slice(&good[128..]);
    let len = msg.len() as u16;
    set_u16(&mut msg, 0, len);
    set_i32(&mut msg, 12, 0x416);
    assert_eq!(fails(&msg), r(EINVAL, "no RTA_DST"));
    assert_eq!(
        case(&|m| m[97] = 40),
        r(EINVAL, "address family beyond AF_MAX")
    );
    // The prefix length is read with the destination's family: the
    // netmask's own family byte does not matter.
    let mut msg = good.clone();
    msg[161] = AF_INET;
    check_default_route(&msg, RTM_ADD, 1, gw).unwrap();
    assert_eq!(case(&|m| m[8] = 1), r(0, "not routing table 0"));
    assert_eq!(case(&|m| m[36] = 1), r(0, "rtm_inits sets route metrics"));
    assert_eq!(
        case(&|m| m[168] = 0x0f),
        r(EINVAL, "netmask is not a prefix")
    );
    assert_eq!(case(&|m| m[168] = 0xff), r(0, "netmask is not /0"));
    // Without RTA_GATEWAY (and its 32 bytes), an add is refused.
    let mut msg = good[..128].to_vec();
    msg.extend_from_slice(&good[160..]);
    let len = msg.len() as u16;
    set_u16(&mut msg, 0, len);
    set_i32(&mut msg, 12, 0x415);
    assert_eq!(fails(&msg), r(EINVAL, "RTM_ADD without RTA_GATEWAY"));
    // Without RTA_NETMASK the kernel takes a host route.
    let mut msg = good[..160].to_vec();
    msg.extend_from_slice(&good[192..]);
    let len = msg.len() as u16;
    set_u16(&mut msg, 0, len);
    set_i32(&mut msg, 12, 0x413);
    assert_eq!(route_output(&msg).unwrap().plen, 128);
    assert_eq!(
        fails(&msg),
        r(0, "no netmask: a host route, not the default route")
    );
    // RTA_IFP of another family.
    assert_eq!(
        case(&|m| m[193] = AF_INET6),
        r(EAFNOSUPPORT, "RTA_IFP is not AF_LINK")
    );
    // Intent: the gateway without its scope, the wrong interface, label, flags.
    assert_eq!(
        case(&|m| m[138..140].fill(0)),
        r(0, "gateway is not the plan's, KAME-scoped if link-local")
    );
    assert_eq!(
        case(&|m| m[194] = 2),
        r(0, "RTA_IFP does not name the interface")
    );
    assert_eq!(case(&|m| m[226] = b'S'), r(0, "route not labelled scwd"));
    assert_eq!(
        case(&|m| set_i32(m, 16, RTF_UP | RTF_GATEWAY | RTF_STATIC)),
        r(0, "flags are not UP|GATEWAY|STATIC|MPATH")
    );
    assert_eq!(
        case(&|m| m[10] = 8),
        r(0, "priority not left to the kernel")
    );
    assert_eq!(
        check_default_route(&good, RTM_DELETE, 1, gw).unwrap_err(),
        r(0, "wrong message type")
    );
    // A global gateway must not be scoped: 2001:0000:... is another address.
    let global = ip("2001:bc8:4700:2100::302c");
    let mut msg = wire::rtm_add_default(1, global, 1, 0);
    msg[138..140].copy_from_slice(&[0, 1]);
    assert_eq!(
        check_default_route(&msg, RTM_ADD, 1, global).unwrap_err(),
        r(0, "gateway is not the plan's, KAME-scoped if link-local")
    );
}

/// Each broken address request fails with its own reason.
#[test]
fn broken_address_requests_fail() {
    let n = net("2001:bc8:4700:2100::302d", 127);
    let good = wire::siocaifaddr_in6("vio0", &n).unwrap();
    let iface = vio0();
    check_address(&good, &iface, &n).unwrap();
    let case = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut req = good.to_vec();
        edit(&mut req);
        check_address(&req, &iface, &n).unwrap_err()
    };
    let r = |errno, reason| Reject { errno, reason };

    assert_eq!(
        case(&|q| q.push(0)),
        r(EINVAL, "request is not sizeof(struct in6_aliasreq)")
    );
    assert_eq!(case(&|q| q[3] = b'1'), r(ENXIO, "no such interface"));
    assert_eq!(
        case(&|q| q[..16].fill(b'v')),
        r(ENXIO, "interface name not NUL-terminated")
    );
    assert_eq!(
        case(&|q| q[16] = 24),
        r(EINVAL, "address sin6_len is not 28")
    );
    assert_eq!(
        case(&|q| q[17] = AF_INET),
        r(EAFNOSUPPORT, "ifra_addr is not a 28-byte AF_INET6 sockaddr")
    );
    assert_eq!(
        case(&|q| q[100] = 0x04),
        r(EINVAL, "read-only IN6_IFF flag")
    );
    assert_eq!(
        case(&|q| q[45] = AF_INET6),
        r(EINVAL, "ifra_dstaddr set on a non-point-to-point interface")
    );
    assert_eq!(
        case(&|q| q[72] = 29),
        r(EINVAL, "prefix mask sin6_len above 28")
    );
    assert_eq!(
        case(&|q| q[72] = 0),
        r(EINVAL, "no prefix mask for a new address")
    );
    let bad_mask = r(EINVAL, "prefix mask not contiguous or prefix length 0");
    // Prefix length 0: an all-zero mask.
    assert_eq!(case(&|q| q[80..96].fill(0)), bad_mask);
    // Non-contiguous masks.
    assert_eq!(case(&|q| q[95] = 0xfd), bad_mask);
    assert_eq!(case(&|q| q[84] = 0x7f), bad_mask);
    // A mask cut short by its sin6_len: in6_mask2len sees no bits.
    assert_eq!(case(&|q| q[72] = 8), bad_mask);
    // vltime 3600, pltime still infinite.
    assert_eq!(
        case(&|q| set_i32(q, 120, 3600)),
        r(EINVAL, "preferred lifetime above valid lifetime")
    );
    assert_eq!(
        case(&|q| {
            set_i32(q, 120, 0);
            set_i32(q, 124, 0);
        }),
        r(0, "valid lifetime 0: the kernel does nothing")
    );
    assert_eq!(
        case(&|q| {
            set_i32(q, 120, 3600);
            set_i32(q, 124, 3600);
        }),
        r(0, "not a static address with infinite lifetimes")
    );
    assert_eq!(
        case(&|q| q[39] = 0x2c),
        r(0, "not the plan's address and prefix length")
    );
    // /126 instead of /127: the kernel takes it, scwd did not mean it.
    assert_eq!(
        case(&|q| q[95] = 0xfc),
        r(0, "not the plan's address and prefix length")
    );
    // And an existing address cannot change its prefix length.
    let existing = Interface {
        addrs: vec![(n.addr, 64)],
        ..vio0()
    };
    assert_eq!(
        siocaifaddr_in6(&good, &existing).unwrap_err(),
        r(EINVAL, "prefix length of an existing address changed")
    );

    // SIOCDIFADDR_IN6.
    let del = wire::siocdifaddr_in6("vio0", n.addr).unwrap();
    let present = Interface {
        addrs: vec![(n.addr, 127)],
        ..vio0()
    };
    assert_eq!(siocdifaddr_in6(&del, &present), Ok(n.addr));
    let mut bad = del;
    bad[16] = 24;
    assert_eq!(
        siocdifaddr_in6(&bad, &present).unwrap_err(),
        r(EINVAL, "address sin6_len is not 28")
    );
    let mut bad = del;
    bad[17] = AF_INET;
    assert_eq!(
        siocdifaddr_in6(&bad, &present).unwrap_err().errno,
        EADDRNOTAVAIL
    );
    assert_eq!(
        siocdifaddr_in6(&del[..200], &present).unwrap_err(),
        r(EINVAL, "request is not sizeof(struct in6_ifreq)")
    );
}

/// Offsets where changing a byte still passes, as inclusive ranges.
fn passing_flips(good: &[u8], passes: impl Fn(&[u8]) -> bool) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = vec![];
    for at in 0..good.len() {
        let mut msg = good.to_vec();
        msg[at] ^= 0xff;
        if passes(&msg) {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == at => *end = at,
                _ => ranges.push((at, at)),
            }
        }
    }
    ranges
}

/// The model is not a rubber stamp: changing any byte of a good message
/// makes it fail, except the bytes the kernel ignores or that carry no
/// meaning for scwd, listed here.
#[test]
fn the_model_can_fail() {
    let gw = ip("fe80::dc00:ff:fe12:3456");
    let add = wire::rtm_add_default(1, gw, 1, 0);
    let dont_care = vec![
        (6, 7),     // rtm_index: not used by route_output
        (11, 11),   // rtm_mpls: only with RTF_MPLS
        (20, 35),   // rtm_fmask (RTM_CHANGE only), rtm_pid, rtm_seq, rtm_errno
        (37, 95),   // rtm_inits beyond RTV_MTU|RTV_EXPIRE, rtm_rmx: only those two apply
        (98, 103),  // DST sin6_port, sin6_flowinfo
        (120, 127), // DST sin6_scope_id, padding
        (156, 159), // GATEWAY padding
        (161, 167), // NETMASK family, port, flowinfo
        (188, 191), // NETMASK padding
        (196, 223), // RTA_IFP beyond sdl_len, sdl_family, sdl_index
        (231, 263), // label bytes after its NUL, padding
    ];
    assert_eq!(
        passing_flips(&add, |m| check_default_route(m, RTM_ADD, 1, gw).is_ok()),
        dont_care
    );

    let n = net("2001:bc8:4700:2100::302d", 127);
    let req = wire::siocaifaddr_in6("vio0", &n).unwrap();
    let dont_care = vec![
        (5, 15),    // ifra_name after its NUL
        (18, 23),   // ifra_addr sin6_port, sin6_flowinfo
        (40, 44),   // ifra_addr sin6_scope_id (global address), ifra_dstaddr sin6_len
        (46, 71),   // the rest of an AF_UNSPEC ifra_dstaddr
        (73, 79),   // ifra_prefixmask family, port, flowinfo
        (96, 99),   // ifra_prefixmask sin6_scope_id
        (104, 119), // ia6t_expire, ia6t_preferred: recomputed from the lifetimes
    ];
    assert_eq!(
        passing_flips(&req, |q| check_address(q, &vio0(), &n).is_ok()),
        dont_care
    );

    assert!(route_output(&[0u8; 96]).is_err());
    assert!(siocaifaddr_in6(&[0u8; 128], &vio0()).is_err());
}

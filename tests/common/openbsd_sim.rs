//! A simulated OpenBSD 7.8 kernel, behind the same `Kernel` trait the
//! OpenBSD backend's syscall layer implements, so that the backend's
//! logic runs here exactly as it would there.
//!
//! Each rule names the source it was read from (the 7.8 tree as in
//! shared/openbsd-kernel-behaviour.md: rtsock.c 1.388, route.c 1.450,
//! rtable.c 1.95, in6.c 1.273, slaacd.c 1.81, sbin/route/route.c 1.267).
//! What is accepted at all is decided by the model of
//! tests/common/kernel_model.rs, whose checks run on every message and
//! request scwd makes; scwd sending anything the model's intent layer
//! rejects fails the test.
//!
//! Simplifications, on purpose: one routing table (0), one address
//! family (inet6); the routing table holds the `::/0` routes, connected
//! routes are derived from the addresses; socket buffer space counts
//! message bytes, not mbufs.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::mem::{offset_of, size_of};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use scwd::net::openbsd::{IfAddr, Kernel};
use scwd::net::wire::{self, IfAnnouncemsghdr, IfaMsghdr, RtMsghdr};

use super::kernel_model::{self as model, Reject};

/// `ROUTERCVQ` (rtsock.c 95).
pub const RCVQ: usize = 8192;
/// `MSIZE` on amd64; rtm_sendup wants `2 * MSIZE` free (rtsock.c 585).
const MSIZE: usize = 256;
/// `ND6_INFINITE_LIFETIME`.
pub const INFINITE: u32 = u32::MAX;
/// Pid of the simulated slaacd, and of an administrator's route(8).
pub const SLAACD_PID: i32 = 61;
pub const ROUTE8_PID: i32 = 62;

/// One IPv6 address of an interface (`struct in6_ifaddr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub addr: Ipv6Addr,
    pub prefixlen: u8,
    /// `ia6_flags`: `IN6_IFF_*`.
    pub flags: i32,
    pub vltime: u32,
    pub pltime: u32,
}

/// One `::/0` route (`struct rtentry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub ifindex: u16,
    /// `rt_gateway`, the sockaddr_in6 bytes as given (route.c 1147):
    /// embedded scope for a link-local gateway.
    pub gateway: [u8; 28],
    pub priority: u8,
    pub flags: i32,
    pub label: Option<String>,
}

impl Route {
    /// The gateway without its embedded scope.
    pub fn gw(&self) -> Ipv6Addr {
        wire::strip_scope(self.gateway[8..24].try_into().unwrap()).0
    }
}

#[derive(Debug)]
pub struct Iface {
    pub name: String,
    pub index: u16,
    pub addrs: Vec<Addr>,
}

/// A route socket (`struct rtpcb`).
#[derive(Debug)]
struct Socket {
    open: bool,
    msgfilter: u32,
    flagfilter: u32,
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    desync: bool,
    flush: bool,
    /// The pipe whose read end is `route_fd`, holding one byte while
    /// the queue is not empty.
    bell: (UnixStream, UnixStream),
}

/// The kernel's state, shared by every simulated process.
#[derive(Debug, Default)]
pub struct Sim {
    pub ifaces: Vec<Iface>,
    pub routes: Vec<Route>,
    sockets: Vec<Socket>,
    next_index: u16,
    /// Every SIOCAIFADDR_IN6 / SIOCDIFADDR_IN6 scwd issued.
    pub ioctls: Vec<(u32, Ipv6Addr)>,
    /// Every route message scwd wrote: (type, priority field).
    pub writes: Vec<(u8, u8)>,
    /// The next RTM_ADD fails with this errno, as rt_setgate's malloc
    /// does (route.c 1141: ENOBUFS).
    pub fail_next_add: Option<i32>,
    /// The next routing table dumps fail with this errno.
    pub fail_dump: Option<(i32, usize)>,
    /// Messages dropped because a socket was full or flushing.
    pub dropped: usize,
}

/// The kernel, shared.
pub type Shared = Rc<RefCell<Sim>>;

fn net(addr: Ipv6Addr, prefixlen: u8) -> u128 {
    let bits = u128::from(addr);
    if prefixlen == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefixlen)))
    }
}

fn sin6(addr: [u8; 16]) -> Vec<u8> {
    let mut sa = vec![0u8; size_of::<wire::SockaddrIn6>()];
    sa[0] = sa.len() as u8;
    sa[1] = wire::AF_INET6;
    sa[8..24].copy_from_slice(&addr);
    sa
}

fn mask(prefixlen: u8) -> Vec<u8> {
    let m = if prefixlen == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefixlen))
    };
    sin6(m.to_be_bytes())
}

fn sdl(index: u16, name: &str) -> Vec<u8> {
    let data = offset_of!(wire::SockaddrDl, sdl_data);
    let mut sa = vec![0u8; data + name.len() + 6];
    sa[0] = sa.len() as u8;
    sa[1] = wire::AF_LINK;
    sa[2..4].copy_from_slice(&index.to_ne_bytes());
    sa[4] = 6; // IFT_ETHER
    sa[5] = name.len() as u8;
    sa[6] = 6;
    sa[data..data + name.len()].copy_from_slice(name.as_bytes());
    sa[data + name.len()..].copy_from_slice(&[0xde, 0, 0, 0, 0, index as u8]);
    sa
}

fn rtlabel(label: &str) -> Vec<u8> {
    let mut sa = vec![0u8; size_of::<wire::SockaddrRtlabel>()];
    sa[0] = sa.len() as u8;
    sa[2..2 + label.len()].copy_from_slice(label.as_bytes());
    sa
}

/// Header bytes, then each sockaddr padded to ROUNDUP (rtsock.c).
fn with_sockaddrs(mut hdr: Vec<u8>, addrs: &[(i32, Vec<u8>)]) -> (Vec<u8>, i32) {
    let mut bits = 0;
    for (bit, sa) in addrs {
        bits |= bit;
        let start = hdr.len();
        hdr.extend_from_slice(sa);
        hdr.resize(start + wire::roundup(sa.len()), 0);
    }
    (hdr, bits)
}

fn put<const N: usize>(msg: &mut [u8], off: usize, bytes: [u8; N]) {
    msg[off..off + N].copy_from_slice(&bytes);
}

struct RtHeader {
    msg_type: u8,
    index: u16,
    priority: u8,
    flags: i32,
    pid: i32,
    seq: i32,
    errno: i32,
}

fn rt_msg(h: &RtHeader, addrs: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let len = size_of::<RtMsghdr>();
    let (mut msg, bits) = with_sockaddrs(vec![0u8; len], addrs);
    let total = msg.len() as u16;
    put(
        &mut msg,
        offset_of!(RtMsghdr, rtm_msglen),
        total.to_ne_bytes(),
    );
    msg[offset_of!(RtMsghdr, rtm_version)] = wire::RTM_VERSION;
    msg[offset_of!(RtMsghdr, rtm_type)] = h.msg_type;
    put(
        &mut msg,
        offset_of!(RtMsghdr, rtm_hdrlen),
        (len as u16).to_ne_bytes(),
    );
    put(
        &mut msg,
        offset_of!(RtMsghdr, rtm_index),
        h.index.to_ne_bytes(),
    );
    msg[offset_of!(RtMsghdr, rtm_priority)] = h.priority;
    put(
        &mut msg,
        offset_of!(RtMsghdr, rtm_addrs),
        bits.to_ne_bytes(),
    );
    put(
        &mut msg,
        offset_of!(RtMsghdr, rtm_flags),
        h.flags.to_ne_bytes(),
    );
    put(&mut msg, offset_of!(RtMsghdr, rtm_pid), h.pid.to_ne_bytes());
    put(&mut msg, offset_of!(RtMsghdr, rtm_seq), h.seq.to_ne_bytes());
    put(
        &mut msg,
        offset_of!(RtMsghdr, rtm_errno),
        h.errno.to_ne_bytes(),
    );
    msg
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

impl Sim {
    /// A kernel with `vio0` (index 1) attached, holding its link-local
    /// address as in6_ifattach() gives it.
    pub fn new() -> Shared {
        let sim = Rc::new(RefCell::new(Sim::default()));
        sim.borrow_mut().attach("vio0");
        sim
    }

    /// A kernel where `vio0` does not exist yet.
    pub fn without_interface() -> Shared {
        Rc::new(RefCell::new(Sim::default()))
    }

    fn iface(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    fn iface_mut(&mut self, name: &str) -> Option<&mut Iface> {
        self.ifaces.iter_mut().find(|i| i.name == name)
    }

    fn by_index(&self, index: u16) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.index == index)
    }

    /// The addresses of `name`, for assertions.
    pub fn addrs(&self, name: &str) -> Vec<Addr> {
        self.iface(name)
            .map(|i| i.addrs.clone())
            .unwrap_or_default()
    }

    /// The global addresses of `name` as `addr/len`, sorted.
    pub fn globals(&self, name: &str) -> Vec<String> {
        let mut v: Vec<_> = self
            .addrs(name)
            .iter()
            .filter(|a| !a.addr.is_unicast_link_local())
            .map(|a| format!("{}/{}", a.addr, a.prefixlen))
            .collect();
        v.sort();
        v
    }

    /// The `::/0` routes as `gateway prio label`, sorted.
    pub fn defaults(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .routes
            .iter()
            .map(|r| {
                let label = r.label.as_deref().unwrap_or("-");
                format!("{} {} {label}", r.gw(), r.priority)
            })
            .collect();
        v.sort();
        v
    }

    /// Count of scwd's ioctls of `request`.
    pub fn ioctl_count(&self, request: u32) -> usize {
        self.ioctls.iter().filter(|(r, _)| *r == request).count()
    }

    /// An interface attaches: next index, link-local address (in6.c
    /// 349, in6_ifattach), `RTM_IFANNOUNCE` (rtsock.c 1840).
    pub fn attach(&mut self, name: &str) -> u16 {
        self.next_index += 1;
        let index = self.next_index;
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[8..16].copy_from_slice(&[0xdc, 0, 0, 0xff, 0xfe, 0, 0, index as u8]);
        self.ifaces.push(Iface {
            name: name.to_string(),
            index,
            addrs: vec![Addr {
                addr: Ipv6Addr::from(ll),
                prefixlen: 64,
                flags: 0,
                vltime: INFINITE,
                pltime: INFINITE,
            }],
        });
        self.announce(index, name, wire::IFAN_ARRIVAL);
        index
    }

    /// An interface detaches: its addresses and routes go with it
    /// (if.c if_detach), `RTM_IFANNOUNCE` departure.
    pub fn detach(&mut self, name: &str) {
        let Some(pos) = self.ifaces.iter().position(|i| i.name == name) else {
            return;
        };
        let iface = self.ifaces.remove(pos);
        self.routes.retain(|r| r.ifindex != iface.index);
        self.announce(iface.index, name, wire::IFAN_DEPARTURE);
    }

    fn announce(&mut self, index: u16, name: &str, what: u16) {
        let len = size_of::<IfAnnouncemsghdr>();
        let mut msg = vec![0u8; len];
        put(
            &mut msg,
            offset_of!(IfAnnouncemsghdr, ifan_msglen),
            (len as u16).to_ne_bytes(),
        );
        msg[offset_of!(IfAnnouncemsghdr, ifan_version)] = wire::RTM_VERSION;
        msg[offset_of!(IfAnnouncemsghdr, ifan_type)] = wire::RTM_IFANNOUNCE;
        put(
            &mut msg,
            offset_of!(IfAnnouncemsghdr, ifan_hdrlen),
            (len as u16).to_ne_bytes(),
        );
        put(
            &mut msg,
            offset_of!(IfAnnouncemsghdr, ifan_index),
            index.to_ne_bytes(),
        );
        put(
            &mut msg,
            offset_of!(IfAnnouncemsghdr, ifan_what),
            what.to_ne_bytes(),
        );
        let name_at = offset_of!(IfAnnouncemsghdr, ifan_name);
        msg[name_at..name_at + name.len()].copy_from_slice(name.as_bytes());
        self.broadcast(&msg);
    }

    /// `RTM_NEWADDR`/`RTM_DELADDR`/`RTM_CHGADDRATTR` (rtm_addr, rtsock.c
    /// 1807): netmask, interface, address.
    fn addr_msg(&mut self, msg_type: u8, index: u16, a: &Addr) {
        let name = self
            .by_index(index)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let len = size_of::<IfaMsghdr>();
        let addr = wire::embed_scope(a.addr, index);
        let (mut msg, bits) = with_sockaddrs(
            vec![0u8; len],
            &[
                (wire::RTA_NETMASK, mask(a.prefixlen)),
                (wire::RTA_IFP, sdl(index, &name)),
                (wire::RTA_IFA, sin6(addr)),
            ],
        );
        let total = msg.len() as u16;
        put(
            &mut msg,
            offset_of!(IfaMsghdr, ifam_msglen),
            total.to_ne_bytes(),
        );
        msg[offset_of!(IfaMsghdr, ifam_version)] = wire::RTM_VERSION;
        msg[offset_of!(IfaMsghdr, ifam_type)] = msg_type;
        put(
            &mut msg,
            offset_of!(IfaMsghdr, ifam_hdrlen),
            (len as u16).to_ne_bytes(),
        );
        put(
            &mut msg,
            offset_of!(IfaMsghdr, ifam_index),
            index.to_ne_bytes(),
        );
        put(
            &mut msg,
            offset_of!(IfaMsghdr, ifam_addrs),
            bits.to_ne_bytes(),
        );
        self.broadcast(&msg);
    }

    /// route_input (rtsock.c 500–560) to every open socket, then
    /// rtm_sendup (585–595).
    fn broadcast(&mut self, msg: &[u8]) {
        let msg_type = msg[3];
        for i in 0..self.sockets.len() {
            let s = &self.sockets[i];
            if !s.open {
                continue;
            }
            // RTM_DESYNC can't be filtered (rtsock.c 522–526); the flag
            // filter tests the word at rtm_flags' offset, whatever the
            // header (ISSET(rop_flagfilter, rtm->rtm_flags)).
            if msg_type != wire::RTM_DESYNC {
                if s.msgfilter != 0 && s.msgfilter & (1u32 << msg_type) == 0 {
                    continue;
                }
                if (i32_at(msg, offset_of!(RtMsghdr, rtm_flags)) as u32) & s.flagfilter != 0 {
                    continue;
                }
            }
            self.sendup(i, msg);
        }
    }

    fn sendup(&mut self, i: usize, msg: &[u8]) {
        let s = &mut self.sockets[i];
        // FLUSH: nothing is queued until the reader drained the buffer
        // (rtsock.c 575–578, route_rcvd 285–300).
        if s.flush {
            self.dropped += 1;
            return;
        }
        let space = RCVQ - s.bytes;
        if space < 2 * MSIZE || msg.len() > space {
            s.desync = true;
            s.flush = true;
            self.dropped += 1;
            Self::send_desync(s);
            return;
        }
        Self::enqueue(s, msg.to_vec());
    }

    fn enqueue(s: &mut Socket, msg: Vec<u8>) {
        if s.queue.is_empty() {
            s.bell.0.write_all(&[1]).unwrap();
        }
        s.bytes += msg.len();
        s.queue.push_back(msg);
    }

    /// rtm_senddesync (rtsock.c 437–478): appended if it fits, else
    /// retried later (the timer; here: at the next read).
    fn send_desync(s: &mut Socket) {
        if !s.desync {
            return;
        }
        let h = RtHeader {
            msg_type: wire::RTM_DESYNC,
            index: 0,
            priority: 0,
            flags: 0,
            pid: 0,
            seq: 0,
            errno: 0,
        };
        let msg = rt_msg(&h, &[]);
        if msg.len() <= RCVQ - s.bytes {
            s.desync = false;
            Self::enqueue(s, msg);
        }
    }

    /// The model's view of an interface, for its ioctl checks.
    fn model_iface(&self, name: &str) -> model::Interface {
        match self.iface(name) {
            Some(i) => model::Interface {
                name: i.name.clone(),
                index: i.index,
                addrs: i
                    .addrs
                    .iter()
                    .map(|a| {
                        let addr = Ipv6Addr::from(wire::embed_scope(a.addr, i.index));
                        (addr, i32::from(a.prefixlen))
                    })
                    .collect(),
            },
            // ifunit() finds nothing: ENXIO from check_name.
            None => model::Interface {
                name: String::new(),
                index: 0,
                addrs: vec![],
            },
        }
    }

    fn ioctl(&mut self, request: u32, arg: &[u8]) -> Result<(), i32> {
        let name_end = arg[..16].iter().position(|&b| b == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&arg[..name_end]).into_owned();
        let view = self.model_iface(&name);
        match request {
            wire::SIOCAIFADDR_IN6 => {
                let got = model::siocaifaddr_in6(arg, &view).map_err(kernel_errno)?;
                // What scwd means: a static address, infinite lifetimes.
                assert_eq!(
                    (got.flags, got.vltime, got.pltime),
                    (0, INFINITE, INFINITE),
                    "scwd's SIOCAIFADDR_IN6 is not a static address"
                );
                let addr = wire::strip_scope(got.addr.octets()).0;
                self.ioctls.push((request, addr));
                let plen = got.plen as u8;
                let index = view.index;
                let iface = self.iface_mut(&name).unwrap();
                let new = Addr {
                    addr,
                    prefixlen: plen,
                    flags: got.flags,
                    vltime: got.vltime,
                    pltime: got.pltime,
                };
                if let Some(old) = iface.addrs.iter_mut().find(|a| a.addr == addr) {
                    // An existing address takes the request's flags and
                    // lifetimes (in6.c 709, 731): RTM_CHGADDRATTR (741).
                    *old = new.clone();
                    self.addr_msg(wire::RTM_CHGADDRATTR, index, &new);
                } else {
                    iface.addrs.push(new.clone());
                    // in6.c 995; route.c 1394.
                    self.addr_msg(wire::RTM_NEWADDR, index, &new);
                }
                Ok(())
            }
            wire::SIOCDIFADDR_IN6 => {
                // EADDRNOTAVAIL for an absent address (in6.c 311).
                let got = model::siocdifaddr_in6(arg, &view).map_err(kernel_errno)?;
                let addr = wire::strip_scope(got.octets()).0;
                self.ioctls.push((request, addr));
                let index = view.index;
                let iface = self.iface_mut(&name).unwrap();
                let pos = iface.addrs.iter().position(|a| a.addr == addr).unwrap();
                let gone = iface.addrs.remove(pos);
                // route.c 1347.
                self.addr_msg(wire::RTM_DELADDR, index, &gone);
                Ok(())
            }
            _ => panic!("ioctl {request:#x} is not modelled"),
        }
    }

    /// Whether the next hop `gw` (sockaddr bytes) of a route on `index`
    /// is reachable: rt_setgwroute (route.c 495–551). A link-local one
    /// needs the interface's own fe80::/64, a global one a connected
    /// prefix on it; otherwise rt_match finds a default route (a gateway
    /// route: ENETUNREACH, 549–551) or nothing (ENOENT, 504–506).
    fn next_hop(&self, index: u16, gw: &[u8; 28]) -> Result<(), i32> {
        let (addr, scope) = wire::strip_scope(gw[8..24].try_into().unwrap());
        let iface = self.by_index(index).ok_or(wire::ENETUNREACH)?;
        let on_link = if addr.is_unicast_link_local() {
            scope == index && iface.addrs.iter().any(|a| a.addr.is_unicast_link_local())
        } else {
            iface.addrs.iter().any(|a| {
                !a.addr.is_unicast_link_local()
                    && net(a.addr, a.prefixlen) == net(addr, a.prefixlen)
            })
        };
        match (on_link, self.routes.is_empty()) {
            (true, _) => Ok(()),
            (false, false) => Err(wire::ENETUNREACH),
            (false, true) => Err(wire::ENOENT),
        }
    }

    /// rtable_lookup (rtable.c 430–478) of `::/0`: priority (unless
    /// RTP_ANY) and gateway bytes; the label plays no part.
    fn lookup(&self, gw: Option<&[u8; 28]>, prio: u8) -> Option<usize> {
        self.routes.iter().position(|r| {
            (prio == wire::RTP_ANY || r.priority == prio) && gw.is_none_or(|g| r.gateway == *g)
        })
    }

    /// rtm_report (rtsock.c 603–665).
    fn report(&self, r: &Route, msg_type: u8, pid: i32, seq: i32) -> Vec<u8> {
        let name = self
            .by_index(r.ifindex)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let ifa = self
            .by_index(r.ifindex)
            .and_then(|i| i.addrs.first())
            .map(|a| wire::embed_scope(a.addr, r.ifindex))
            .unwrap_or([0; 16]);
        let mut addrs = vec![
            (wire::RTA_DST, sin6([0; 16])),
            (wire::RTA_GATEWAY, r.gateway.to_vec()),
            (wire::RTA_NETMASK, mask(0)),
            (wire::RTA_IFP, sdl(r.ifindex, &name)),
            (wire::RTA_IFA, sin6(ifa)),
        ];
        if let Some(l) = &r.label {
            addrs.push((wire::RTA_LABEL, rtlabel(l)));
        }
        let h = RtHeader {
            msg_type,
            index: r.ifindex,
            priority: r.priority,
            // route_output sets RTF_DONE on success (rtsock.c 877), the
            // dump on every entry (2011).
            flags: r.flags | wire::RTF_DONE,
            pid,
            seq,
            errno: 0,
        };
        rt_msg(&h, &addrs)
    }

    /// route_output + rtm_output for a `::/0` request already checked by
    /// the model; `req` is what the model took from `msg`.
    fn route_request(
        &mut self,
        pid: i32,
        msg: &[u8],
        req: &model::RouteRequest,
    ) -> Result<Vec<u8>, i32> {
        let gw: Option<[u8; 28]> = req.addrs[model::RTAX_GATEWAY].map(|g| {
            let mut b = [0u8; 28];
            b.copy_from_slice(&g.bytes()[..28]);
            b
        });
        let seq = i32_at(msg, offset_of!(RtMsghdr, rtm_seq));
        let label = req.addrs[model::RTAX_LABEL].map(|sa| {
            let l = &sa.bytes()[2..];
            String::from_utf8_lossy(&l[..l.iter().position(|&b| b == 0).unwrap()]).into_owned()
        });
        match req.msg_type {
            model::RTM_ADD => {
                let gw = gw.unwrap();
                let index = match req.addrs[model::RTAX_IFP] {
                    Some(ifp) => u16::from_ne_bytes([ifp.bytes()[2], ifp.bytes()[3]]),
                    None => u16::from_ne_bytes([msg[4 + 2], msg[4 + 3]]),
                };
                // rtm_getifa: the interface must have an inet6 address
                // (rtsock.c 1274, 1301, 1316).
                if self.by_index(index).is_none_or(|i| i.addrs.is_empty()) {
                    return Err(wire::ENETUNREACH);
                }
                if let Some(errno) = self.fail_next_add.take() {
                    return Err(errno);
                }
                // Priority 0 on a static add: if_priority + RTP_STATIC
                // (rtsock.c 794–795, route.c 996–997).
                let prio = if req.prio == 0 {
                    wire::RTP_STATIC
                } else {
                    req.prio
                };
                self.next_hop(index, &gw)?;
                // rtable_insert (rtable.c 601–613): at the same priority,
                // EEXIST unless both are multipath via other gateways.
                let mpath = req.flags & model::RTF_MPATH != 0;
                if self
                    .routes
                    .iter()
                    .any(|r| r.priority == prio && (!mpath || r.gateway == gw))
                {
                    return Err(wire::EEXIST);
                }
                let route = Route {
                    ifindex: index,
                    gateway: gw,
                    priority: prio,
                    flags: req.flags & !wire::RTF_DONE,
                    label,
                };
                let echo = self.report(&route, model::RTM_ADD, pid, seq);
                self.routes.push(route);
                Ok(echo)
            }
            model::RTM_DELETE | model::RTM_GET => {
                // rtsock.c 959–962 / 1185–1189.
                let Some(pos) = self.lookup(gw.as_ref(), req.prio) else {
                    return Err(wire::ESRCH);
                };
                let route = self.routes[pos].clone();
                if req.msg_type == model::RTM_DELETE {
                    self.routes.remove(pos);
                }
                Ok(self.report(&route, req.msg_type, pid, seq))
            }
            t => panic!("route message type {t} is not modelled"),
        }
    }

    /// A route message written by process `pid`. The model validates it
    /// first: a refusal there is `goto fail` (rtsock.c 780–815), the
    /// write(2) error alone. A refusal by rtm_output is both the write(2)
    /// error and an echo carrying it (rtsock.c 872, 893).
    fn write_route(&mut self, pid: i32, msg: &[u8]) -> Result<(), i32> {
        let req = model::route_output(msg).map_err(kernel_errno)?;
        let mut echo = msg.to_vec();
        put(&mut echo, offset_of!(RtMsghdr, rtm_pid), pid.to_ne_bytes());
        match self.route_request(pid, msg, &req) {
            Ok(report) => {
                self.broadcast(&report);
                Ok(())
            }
            Err(errno) => {
                put(
                    &mut echo,
                    offset_of!(RtMsghdr, rtm_errno),
                    errno.to_ne_bytes(),
                );
                self.broadcast(&echo);
                Err(errno)
            }
        }
    }

    fn dump(&self) -> Vec<u8> {
        // sysctl_dumpentry: each route as RTM_GET (rtsock.c 2006); the
        // connected routes of the addresses come along.
        let mut out = Vec::new();
        for i in &self.ifaces {
            for a in i.addrs.iter().filter(|a| a.prefixlen < 128) {
                let dst = net(a.addr, a.prefixlen).to_be_bytes();
                let h = RtHeader {
                    msg_type: wire::RTM_GET,
                    index: i.index,
                    priority: 4, // RTP_CONNECTED
                    flags: wire::RTF_UP | wire::RTF_CLONING | wire::RTF_CONNECTED,
                    pid: 0,
                    seq: 0,
                    errno: 0,
                };
                let dst = wire::embed_scope(Ipv6Addr::from(dst), i.index);
                out.extend(rt_msg(
                    &h,
                    &[
                        (wire::RTA_DST, sin6(dst)),
                        (wire::RTA_GATEWAY, sdl(i.index, &i.name)),
                        (wire::RTA_NETMASK, mask(a.prefixlen)),
                    ],
                ));
            }
        }
        for r in &self.routes {
            out.extend(self.report(r, wire::RTM_GET, 0, 0));
        }
        out
    }

    // Other actors.

    /// slaacd configures an autoconf address (slaacd.c 672: flags
    /// IN6_IFF_AUTOCONF, finite lifetimes).
    pub fn slaacd_address(&mut self, name: &str, addr: &str, prefixlen: u8) {
        let a = Addr {
            addr: addr.parse().unwrap(),
            prefixlen,
            flags: wire::IN6_IFF_AUTOCONF,
            vltime: 2_592_000,
            pltime: 604_800,
        };
        let iface = self.iface_mut(name).unwrap();
        iface.addrs.push(a.clone());
        let index = iface.index;
        self.addr_msg(wire::RTM_NEWADDR, index, &a);
    }

    /// slaacd's default route (slaacd.c 735–770): RTP_NONE → 8, static,
    /// multipath, embedded scope, label "slaacd".
    pub fn slaacd_route(&mut self, name: &str, gw: &str) {
        let index = self.iface(name).unwrap().index;
        self.actor_route(index, gw, wire::RTF_MPATH, Some("slaacd"), SLAACD_PID);
    }

    /// An administrator's `route add -inet6 default gw`: static, no
    /// label, multipath only with -mpath (sbin/route/route.c 739).
    pub fn admin_route(&mut self, name: &str, gw: &str) {
        let index = self.iface(name).unwrap().index;
        self.actor_route(index, gw, 0, None, ROUTE8_PID);
    }

    fn actor_route(&mut self, index: u16, gw: &str, mpath: i32, label: Option<&str>, pid: i32) {
        let gw: Ipv6Addr = gw.parse().unwrap();
        let mut gateway = [0u8; 28];
        gateway.copy_from_slice(&sin6(wire::embed_scope(gw, index)));
        let route = Route {
            ifindex: index,
            gateway,
            priority: wire::RTP_STATIC,
            flags: wire::RTF_UP | wire::RTF_GATEWAY | wire::RTF_STATIC | mpath,
            label: label.map(str::to_string),
        };
        assert!(
            self.next_hop(index, &gateway).is_ok(),
            "actor's gateway unreachable"
        );
        let echo = self.report(&route, wire::RTM_ADD, pid, 1);
        self.routes.push(route);
        self.broadcast(&echo);
    }

    /// An administrator's `route delete -inet6 default gw` (priority 0:
    /// RTP_ANY, the first route via that gateway, label ignored).
    pub fn admin_delete_route(&mut self, name: &str, gw: &str) {
        let index = self.iface(name).unwrap().index;
        let gw: Ipv6Addr = gw.parse().unwrap();
        let mut gateway = [0u8; 28];
        gateway.copy_from_slice(&sin6(wire::embed_scope(gw, index)));
        let pos = self.lookup(Some(&gateway), wire::RTP_ANY).unwrap();
        let route = self.routes.remove(pos);
        let echo = self.report(&route, wire::RTM_DELETE, ROUTE8_PID, 1);
        self.broadcast(&echo);
    }

    /// An administrator's `ifconfig name inet6 addr delete`.
    pub fn admin_delete_address(&mut self, name: &str, addr: &str) {
        let addr: Ipv6Addr = addr.parse().unwrap();
        let iface = self.iface_mut(name).unwrap();
        let pos = iface.addrs.iter().position(|a| a.addr == addr).unwrap();
        let gone = iface.addrs.remove(pos);
        let index = iface.index;
        self.addr_msg(wire::RTM_DELADDR, index, &gone);
    }

    /// An administrator's `ifconfig name inet6 addr/len`: a static address.
    pub fn admin_address(&mut self, name: &str, addr: &str, prefixlen: u8) {
        let a = Addr {
            addr: addr.parse().unwrap(),
            prefixlen,
            flags: 0,
            vltime: INFINITE,
            pltime: INFINITE,
        };
        let iface = self.iface_mut(name).unwrap();
        iface.addrs.push(a.clone());
        let index = iface.index;
        self.addr_msg(wire::RTM_NEWADDR, index, &a);
    }

    /// Address churn on another interface, `n` add/delete pairs: each
    /// one a message to every route socket.
    pub fn churn(&mut self, name: &str, n: usize) {
        if self.iface(name).is_none() {
            self.attach(name);
        }
        for i in 0..n {
            let addr = format!("2001:db8:ffff::{:x}", i + 1);
            self.admin_address(name, &addr, 64);
            self.admin_delete_address(name, &addr);
        }
    }

    /// A request as another process would write it, for tests of the
    /// simulator's own rules.
    pub fn write_as(&mut self, pid: i32, msg: &[u8]) -> Result<(), i32> {
        self.write_route(pid, msg)
    }

    /// A raw ioctl, as another root process would issue it.
    pub fn ioctl_as(&mut self, request: u32, arg: &[u8]) -> Result<(), i32> {
        let n = self.ioctls.len();
        let r = self.ioctl(request, arg);
        self.ioctls.truncate(n);
        r
    }

    /// Bytes queued on socket `i`, and whether it is flushing.
    pub fn socket_state(&self, i: usize) -> (usize, bool) {
        (self.sockets[i].bytes, self.sockets[i].flush)
    }
}

/// The errno a model refusal stands for; 0 means the kernel would take
/// the message but it is not what scwd means, a defect in scwd.
fn kernel_errno(r: Reject) -> i32 {
    assert_ne!(r.errno, 0, "scwd sent what it does not mean: {}", r.reason);
    r.errno
}

/// One process's descriptors on the simulated kernel: the inet6 socket
/// and a route socket with its filters, as `sys::System::open` sets them.
#[derive(Debug)]
pub struct SimKernel {
    pub sim: Shared,
    sock: usize,
}

impl SimKernel {
    /// Opens a route socket filtered like the real one.
    pub fn open(sim: &Shared) -> SimKernel {
        let mut s = sim.borrow_mut();
        let bell = UnixStream::pair().unwrap();
        bell.1.set_nonblocking(true).unwrap();
        s.sockets.push(Socket {
            open: true,
            msgfilter: scwd::net::openbsd::MSG_FILTER,
            flagfilter: scwd::net::openbsd::FLAG_FILTER,
            queue: VecDeque::new(),
            bytes: 0,
            desync: false,
            flush: false,
            bell,
        });
        SimKernel {
            sim: Rc::clone(sim),
            sock: s.sockets.len() - 1,
        }
    }

    /// This socket's index, for [`Sim::socket_state`].
    pub fn socket(&self) -> usize {
        self.sock
    }
}

impl Drop for SimKernel {
    fn drop(&mut self) {
        let mut s = self.sim.borrow_mut();
        let sock = &mut s.sockets[self.sock];
        sock.open = false;
        sock.queue.clear();
        sock.bytes = 0;
    }
}

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl Kernel for SimKernel {
    fn if_index(&mut self, interface: &str) -> io::Result<Option<u16>> {
        Ok(self.sim.borrow().iface(interface).map(|i| i.index))
    }

    fn inet6_addresses(&mut self, interface: &str) -> io::Result<Vec<IfAddr>> {
        let s = self.sim.borrow();
        let Some(i) = s.iface(interface) else {
            return Ok(vec![]);
        };
        // getifaddrs hands out the kernel's sockaddrs: embedded scope.
        Ok(i.addrs
            .iter()
            .map(|a| IfAddr {
                addr: wire::embed_scope(a.addr, i.index),
                mask: mask(a.prefixlen)[8..24].try_into().unwrap(),
            })
            .collect())
    }

    fn route_dump(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((errno, n)) = self.sim.borrow_mut().fail_dump.as_mut() {
            if *n > 0 {
                *n -= 1;
                return Err(os(*errno));
            }
        }
        let table = self.sim.borrow().dump();
        if buf.is_empty() {
            return Ok(table.len());
        }
        if buf.len() < table.len() {
            return Err(os(wire::ENOMEM));
        }
        buf[..table.len()].copy_from_slice(&table);
        Ok(table.len())
    }

    fn ioctl(&mut self, request: u32, arg: &mut [u8]) -> io::Result<()> {
        self.sim.borrow_mut().ioctl(request, arg).map_err(os)
    }

    fn route_write(&mut self, msg: &[u8]) -> io::Result<usize> {
        let pid = i32::try_from(std::process::id()).unwrap();
        let mut s = self.sim.borrow_mut();
        // The intent layer on what scwd writes: its default route as meant.
        if let Ok(req) = model::route_output(msg) {
            if req.msg_type != model::RTM_GET {
                let gw = req.addrs[model::RTAX_GATEWAY].unwrap().bytes();
                let (gw, _) = wire::strip_scope(gw[8..24].try_into().unwrap());
                let index = u16::from_ne_bytes([msg[4 + 2], msg[4 + 3]]);
                let want = if req.msg_type == model::RTM_ADD {
                    0
                } else {
                    msg[10]
                };
                if let Err(r) = model::check_default_route(msg, req.msg_type, index, gw, want) {
                    panic!("scwd's route message is not what it means: {}", r.reason);
                }
            }
        }
        s.writes.push((msg[3], msg[10]));
        s.write_route(pid, msg).map_err(os)?;
        Ok(msg.len())
    }

    fn route_recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.sim.borrow_mut();
        let sock = &mut s.sockets[self.sock];
        let Some(msg) = sock.queue.pop_front() else {
            return Err(os(wire::EAGAIN));
        };
        sock.bytes -= msg.len();
        if sock.queue.is_empty() {
            let mut b = [0u8; 1];
            let _ = sock.bell.1.read(&mut b);
            // route_rcvd: an empty buffer ends FLUSH (rtsock.c 285–300).
            sock.flush = false;
        }
        Sim::send_desync(sock);
        let n = msg.len().min(buf.len());
        buf[..n].copy_from_slice(&msg[..n]);
        Ok(n)
    }

    fn route_wait(&mut self, timeout: Duration) -> io::Result<bool> {
        if !self.sim.borrow().sockets[self.sock].queue.is_empty() {
            return Ok(true);
        }
        // Nothing else runs while scwd waits: it would time out.
        std::thread::sleep(timeout);
        Ok(false)
    }

    fn route_fd(&self) -> RawFd {
        self.sim.borrow().sockets[self.sock].bell.1.as_raw_fd()
    }
}

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
//!
//! The model itself is in tests/common/kernel_model.rs, shared with the
//! simulated kernel of tests/openbsd_sim.rs.

mod common;

use std::net::Ipv6Addr;

use common::kernel_model::*;
use scwd::net::wire;
use scwd::plan::{Ipv6Net, Plan};

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
                name: "vio0".into(),
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
                check_default_route(&add, RTM_ADD, ifindex, gw, 0).unwrap();
                let del = wire::rtm_delete_default(ifindex, gw, seq, 4242);
                check_default_route(&del, RTM_DELETE, ifindex, gw, RTP_ANY).unwrap();
                // The kernel matches the delete's gateway byte for byte.
                assert_eq!(add[128..160], del[128..160]);
                // scwd deletes at the priority the add's echo reported.
                let del = wire::rtm_delete_default_at(ifindex, gw, 8, seq, 4242);
                check_default_route(&del, RTM_DELETE, ifindex, gw, 8).unwrap();
                let get = wire::rtm_get_default_via(ifindex, gw, 8, seq, 4242);
                assert_eq!(route_output(&get).unwrap().prio, 8);
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
        name: "vio0".into(),
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
    check_default_route(&golden("2a"), RTM_ADD, 1, ip("2001:bc8:4700:2100::302c"), 0).unwrap();
    check_default_route(&golden("2b"), RTM_ADD, 1, ll, 0).unwrap();
    check_default_route(&golden("3"), RTM_DELETE, 1, ll, RTP_ANY).unwrap();
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
    check_default_route(&good, RTM_ADD, 1, gw, 0).unwrap();
    let fails = |msg: &[u8]| check_default_route(msg, RTM_ADD, 1, gw, 0).unwrap_err();
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
    check_default_route(&old, RTM_ADD, 1, gw, 0).unwrap();
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
    check_default_route(&msg, RTM_ADD, 1, gw, 0).unwrap();
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
    assert_eq!(case(&|m| m[10] = 8), r(0, "not the priority meant"));
    assert_eq!(
        check_default_route(&good, RTM_DELETE, 1, gw, RTP_ANY).unwrap_err(),
        r(0, "wrong message type")
    );
    // A global gateway must not be scoped: 2001:0000:... is another address.
    let global = ip("2001:bc8:4700:2100::302c");
    let mut msg = wire::rtm_add_default(1, global, 1, 0);
    msg[138..140].copy_from_slice(&[0, 1]);
    assert_eq!(
        check_default_route(&msg, RTM_ADD, 1, global, 0).unwrap_err(),
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
        passing_flips(&add, |m| check_default_route(m, RTM_ADD, 1, gw, 0).is_ok()),
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

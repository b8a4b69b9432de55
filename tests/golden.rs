//! The OpenBSD wire encoders and decoder against the golden vectors of
//! shared/openbsd-golden.md (tests/fixtures/openbsd/golden.json), built
//! from the real OpenBSD headers. The vectors are little-endian amd64.

use std::collections::BTreeMap;
use std::fs;
use std::mem::{offset_of, size_of};
use std::net::Ipv6Addr;
use std::path::Path;

use serde_json::Value;

use scwd::net::wire::{self, *};
use scwd::plan::Ipv6Net;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openbsd/golden.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden.json parses")
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn vector(id: &str) -> Vec<u8> {
    let g = golden();
    let msg = g["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no golden vector {id}"));
    unhex(msg["hex"].as_str().expect("hex"))
}

/// Shows the first differing byte and its golden annotation.
fn assert_bytes(id: &str, got: &[u8]) {
    let want = vector(id);
    if got == want.as_slice() {
        return;
    }
    let at = got
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let g = golden();
    let field = g["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .and_then(|m| {
            m["ann"].as_array().unwrap().iter().find(|a| {
                let off = a[0].as_u64().unwrap() as usize;
                let len = a[1].as_u64().unwrap() as usize;
                (off..off + len).contains(&at)
            })
        })
        .map(|a| format!("{} {}", a[2], a[3]))
        .unwrap_or_default();
    panic!(
        "vector {id}: {} bytes vs {} golden; first difference at {at} ({field}): {:02x?} vs {:02x?}",
        got.len(),
        want.len(),
        got.get(at),
        want.get(at)
    );
}

fn net(addr: &str, prefixlen: u8) -> Ipv6Net {
    Ipv6Net {
        addr: addr.parse().unwrap(),
        prefixlen,
    }
}

fn ip(addr: &str) -> Ipv6Addr {
    addr.parse().unwrap()
}

const LL_GW: &str = "fe80::dc00:ff:fe12:3456";
const GLOBAL_GW: &str = "2001:bc8:4700:2100::302c";

#[test]
fn vector_1a_siocaifaddr_in6_127() {
    let req = siocaifaddr_in6("vio0", &net("2001:bc8:4700:2100::302d", 127)).unwrap();
    assert_bytes("1a", &req);
}

#[test]
fn vector_1b_siocaifaddr_in6_64() {
    let req = siocaifaddr_in6("vio0", &net("2001:bc8:1234:5678:dc00:1ff:fe14:a73b", 64)).unwrap();
    assert_bytes("1b", &req);
}

#[test]
fn vector_2a_rtm_add_global_gateway() {
    assert_bytes("2a", &rtm_add_default(1, ip(GLOBAL_GW), 1, 0));
}

#[test]
fn vector_2b_rtm_add_link_local_gateway() {
    assert_bytes("2b", &rtm_add_default(1, ip(LL_GW), 1, 0));
}

#[test]
fn vector_3_rtm_delete() {
    assert_bytes("3", &rtm_delete_default(1, ip(LL_GW), 2, 0));
}

#[test]
fn vector_4c_rtm_get() {
    assert_bytes("4c", &rtm_get_default(1, 0));
}

#[test]
fn encoders_refuse_what_the_kernel_would() {
    for len in [0u8, 129, 255] {
        assert_eq!(
            siocaifaddr_in6("vio0", &net("2001:db8::1", len)),
            Err(WireError::PrefixLength(len))
        );
    }
    for name in ["", "vio0vio0vio0vio0", "v\0"] {
        assert!(matches!(
            siocaifaddr_in6(name, &net("2001:db8::1", 64)),
            Err(WireError::InterfaceName(_))
        ));
        assert!(matches!(
            siocdifaddr_in6(name, ip("2001:db8::1")),
            Err(WireError::InterfaceName(_))
        ));
    }
}

#[test]
fn siocdifaddr_in6_layout() {
    let req = siocdifaddr_in6("vio0", ip("2001:bc8:4700:2100::302d")).unwrap();
    assert_eq!(req.len(), 288);
    assert_eq!(&req[..16], b"vio0\0\0\0\0\0\0\0\0\0\0\0\0");
    // ifr_addr is a sockaddr_in6 with sin6_len 28, family AF_INET6.
    assert_eq!(&req[16..18], &[28, 24]);
    assert_eq!(&req[24..40], &ip("2001:bc8:4700:2100::302d").octets());
    assert!(req[18..24].iter().chain(&req[40..]).all(|&b| b == 0));
    // The same sockaddr_in6 bytes as SIOCAIFADDR_IN6's ifra_addr (golden 1a).
    assert_eq!(&req[16..44], &vector("1a")[16..44]);
}

#[test]
fn link_local_gateway_embeds_the_interface_index() {
    let msg = rtm_add_default(0x1234, ip(LL_GW), 1, 0);
    assert_eq!(&msg[136..140], &[0xfe, 0x80, 0x12, 0x34]);
    assert_eq!(&msg[194..196], &0x1234u16.to_ne_bytes(), "sdl_index");
    assert_eq!(&msg[6..8], &0x1234u16.to_ne_bytes(), "rtm_index");
    // A global gateway's bytes 2-3 are its own.
    let msg = rtm_add_default(0x1234, ip(GLOBAL_GW), 1, 0);
    assert_eq!(&msg[136..152], &ip(GLOBAL_GW).octets());
}

#[test]
fn seq_and_pid_land_in_the_header() {
    let msg = rtm_add_default(1, ip(LL_GW), 0x0a0b0c0d, 4242);
    assert_eq!(&msg[24..28], &4242i32.to_ne_bytes());
    assert_eq!(&msg[28..32], &0x0a0b0c0di32.to_ne_bytes());
    let Message::Route(m) = decode(&msg).unwrap() else {
        panic!("not a route message")
    };
    assert_eq!((m.seq, m.pid), (0x0a0b0c0d, 4242));
}

fn route(msg: &[u8]) -> RouteMessage {
    match decode(msg) {
        Ok(Message::Route(m)) => m,
        other => panic!("expected a route message, got {other:?}"),
    }
}

#[test]
fn encoded_route_messages_decode_back() {
    for (gw, ifindex) in [(LL_GW, 1u16), (GLOBAL_GW, 1), (LL_GW, 7), ("fe80::1", 300)] {
        for (msg, msg_type) in [
            (rtm_add_default(ifindex, ip(gw), 9, 99), RTM_ADD),
            (rtm_delete_default(ifindex, ip(gw), 10, 99), RTM_DELETE),
        ] {
            let m = route(&msg);
            assert_eq!(m.msg_type, msg_type);
            assert_eq!(m.index, ifindex);
            assert_eq!(m.flags, RTF_UP | RTF_GATEWAY | RTF_STATIC | RTF_MPATH);
            assert_eq!(m.priority, RTP_NONE);
            assert_eq!(m.errno, 0);
            assert_eq!(m.addrs.inet6(RTAX_DST), Some((Ipv6Addr::UNSPECIFIED, 0)));
            let scope = if ip(gw).is_unicast_link_local() {
                u32::from(ifindex)
            } else {
                0
            };
            assert_eq!(m.addrs.inet6(RTAX_GATEWAY), Some((ip(gw), scope)));
            assert_eq!(m.addrs.prefixlen(), Some(0));
            assert_eq!(m.addrs.label(), Some("scwd"));
            assert_eq!(
                m.addrs.get(RTAX_IFP),
                Some(&SockAddr::Link {
                    index: ifindex,
                    name: String::new(),
                    lladdr: vec![]
                })
            );
            for slot in [RTAX_GENMASK, RTAX_IFA, RTAX_BRD, RTAX_SRC] {
                assert_eq!(m.addrs.get(slot), None);
            }
        }
    }
    let m = route(&rtm_get_default(3, 0));
    assert_eq!((m.msg_type, m.seq), (RTM_GET, 3));
    assert_eq!(m.addrs.prefixlen(), Some(0));
}

#[test]
fn vectors_4a_4b_4c_decode() {
    for id in ["4a", "4b", "4c"] {
        let m = route(&vector(id));
        assert_eq!(
            (m.msg_type, m.seq, m.pid, m.errno),
            (RTM_GET, 1, 0, 0),
            "{id}"
        );
        assert_eq!(m.flags, RTF_UP | RTF_GATEWAY | RTF_STATIC, "{id}");
        assert_eq!(
            m.addrs.inet6(RTAX_DST),
            Some((Ipv6Addr::UNSPECIFIED, 0)),
            "{id}"
        );
        assert_eq!(
            m.addrs.prefixlen(),
            Some(0),
            "{id}: zero-length and full zero masks are /0"
        );
        assert_eq!(m.addrs.get(RTAX_GATEWAY), None, "{id}");
    }
    let m = route(&vector("4a"));
    assert_eq!(
        m.addrs.get(RTAX_IFP),
        Some(&SockAddr::Link {
            index: 0,
            name: String::new(),
            lladdr: vec![]
        })
    );
    assert_eq!(route(&vector("4b")).addrs.get(RTAX_IFP), None);
}

fn vio0_link() -> SockAddr {
    SockAddr::Link {
        index: 1,
        name: "vio0".into(),
        lladdr: vec![0xde, 0x00, 0x01, 0x14, 0xa7, 0x3b],
    }
}

#[test]
fn vector_5a_rtm_deladdr_decodes() {
    let Message::Address(m) = decode(&vector("5a")).unwrap() else {
        panic!("not an address")
    };
    assert_eq!(
        (m.msg_type, m.index, m.tableid, m.flags),
        (RTM_DELADDR, 1, 0, 0)
    );
    assert_eq!(m.address(), Some(ip("2001:bc8:4700:2100::302d")));
    // ifconfig's netmask has family 0: still a /127.
    assert_eq!(m.addrs.prefixlen(), Some(127));
    assert_eq!(m.addrs.get(RTAX_IFP), Some(&vio0_link()));
    assert_eq!(m.addrs.get(RTAX_BRD), None);

    // RTM_NEWADDR and RTM_CHGADDRATTR share the layout; only byte 3 differs.
    for msg_type in [RTM_NEWADDR, RTM_CHGADDRATTR] {
        let mut msg = vector("5a");
        msg[3] = msg_type;
        let Message::Address(n) = decode(&msg).unwrap() else {
            panic!("not an address")
        };
        assert_eq!(n.msg_type, msg_type);
        assert_eq!(n.address(), m.address());
    }
    // slaacd-style mask with family AF_INET6.
    let mut msg = vector("5a");
    msg[25] = 24;
    let Message::Address(n) = decode(&msg).unwrap() else {
        panic!("not an address")
    };
    assert_eq!(n.addrs.prefixlen(), Some(127));
}

#[test]
fn vector_5b_rtm_ifinfo_decodes() {
    let Message::Interface(m) = decode(&vector("5b")).unwrap() else {
        panic!("not ifinfo")
    };
    assert_eq!((m.index, m.tableid), (1, 0));
    assert_eq!(m.flags, 0x8843);
    assert_ne!(m.flags & IFF_UP, 0);
    assert_ne!(m.flags & IFF_RUNNING, 0);
    assert_eq!(m.xflags, 1, "raw xflags include IFXF_MPSAFE");
    assert_eq!(m.xflags & IFXF_AUTOCONF6, 0);
    assert_eq!(m.link_state, LINK_STATE_DOWN);
    assert_eq!(m.mtu, 1500);
    assert_eq!(m.addrs.get(RTAX_IFP), Some(&vio0_link()));
}

/// An `if_announcemsghdr` as `rtm_ifannounce()` builds it (no golden vector).
fn announce(index: u16, what: u16, name: &str) -> Vec<u8> {
    let mut msg = vec![0u8; 26];
    msg[0..2].copy_from_slice(&26u16.to_ne_bytes());
    msg[2] = RTM_VERSION;
    msg[3] = RTM_IFANNOUNCE;
    msg[4..6].copy_from_slice(&26u16.to_ne_bytes());
    msg[6..8].copy_from_slice(&index.to_ne_bytes());
    msg[8..10].copy_from_slice(&what.to_ne_bytes());
    msg[10..10 + name.len()].copy_from_slice(name.as_bytes());
    msg
}

#[test]
fn rtm_ifannounce_decodes() {
    let expected = AnnounceMessage {
        index: 3,
        what: IFAN_DEPARTURE,
        name: "vio1".into(),
    };
    assert_eq!(
        decode(&announce(3, IFAN_DEPARTURE, "vio1")),
        Ok(Message::Announce(expected))
    );
    // A name filling all 16 bytes without NUL is cut at the field.
    let Ok(Message::Announce(m)) = decode(&announce(1, IFAN_ARRIVAL, "abcdefghijklmnop")) else {
        panic!("not an announcement")
    };
    assert_eq!(m.name, "abcdefghijklmnop");
    assert_eq!(m.what, IFAN_ARRIVAL);
}

/// The kernel's echo of a request: its pid, `rtm_errno` or `RTF_DONE`.
fn reply(request: &[u8], pid: i32, errno: i32) -> Vec<u8> {
    let mut msg = request.to_vec();
    msg[24..28].copy_from_slice(&pid.to_ne_bytes());
    msg[32..36].copy_from_slice(&errno.to_ne_bytes());
    if errno == 0 {
        let flags = i32::from_ne_bytes(msg[16..20].try_into().unwrap()) | RTF_DONE;
        msg[16..20].copy_from_slice(&flags.to_ne_bytes());
    }
    msg
}

#[test]
fn replies_carry_errno_seq_and_pid() {
    const EEXIST: i32 = 17;
    let add = rtm_add_default(1, ip(LL_GW), 5, 0);
    let m = route(&reply(&add, 4711, EEXIST));
    assert_eq!(
        (m.msg_type, m.seq, m.pid, m.errno),
        (RTM_ADD, 5, 4711, EEXIST)
    );
    assert_eq!(m.flags & RTF_DONE, 0);
    let m = route(&reply(&add, 4711, 0));
    assert_eq!(m.errno, 0);
    assert_ne!(m.flags & RTF_DONE, 0);
}

#[test]
fn rtm_desync_decodes_as_a_bare_route_message() {
    let mut msg = vec![0u8; 96];
    msg[0] = 96;
    msg[2] = RTM_VERSION;
    msg[3] = RTM_DESYNC;
    msg[4] = 96;
    let m = route(&msg);
    assert_eq!(m.msg_type, RTM_DESYNC);
    assert_eq!(m.addrs, Addrs::default());
}

fn all_vectors() -> Vec<(String, Vec<u8>)> {
    let g = golden();
    g["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"].as_str().unwrap() >= "2")
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                unhex(m["hex"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn every_routing_vector_decodes() {
    let ids: Vec<_> = all_vectors()
        .into_iter()
        .map(|(id, msg)| (decode(&msg).is_ok(), id))
        .collect();
    assert_eq!(ids.len(), 8, "2a 2b 3 4a 4b 4c 5a 5b");
    assert!(ids.iter().all(|(ok, _)| *ok), "{ids:?}");
}

#[test]
fn short_and_truncated_messages_are_rejected() {
    for (id, msg) in all_vectors() {
        for len in 0..msg.len() {
            let err = decode(&msg[..len]).expect_err(&format!("{id} cut to {len} bytes"));
            if len < 6 {
                assert_eq!(err, WireError::Short(len));
            } else {
                assert_eq!(
                    err,
                    WireError::Length {
                        msglen: msg.len(),
                        read: len
                    }
                );
            }
        }
        // Extra bytes after the message are a lie too.
        let mut long = msg.clone();
        long.push(0);
        assert!(decode(&long).is_err(), "{id} with a trailing byte");
    }
}

fn set_u16(msg: &mut [u8], off: usize, v: u16) {
    msg[off..off + 2].copy_from_slice(&v.to_ne_bytes());
}

#[test]
fn lying_headers_are_rejected() {
    let add = rtm_add_default(1, ip(LL_GW), 1, 0);

    let mut msg = add.clone();
    msg[2] = 4;
    assert_eq!(decode(&msg), Err(WireError::Version(4)));

    // msglen that claims less or more than was read.
    for msglen in [0u16, 5, 96, 263, 265, 0xffff] {
        let mut msg = add.clone();
        set_u16(&mut msg, 0, msglen);
        assert!(
            matches!(decode(&msg), Err(WireError::Length { .. })),
            "msglen {msglen}"
        );
    }
    // hdrlen below the rt_msghdr or beyond the message.
    for hdrlen in [0u16, 24, 95, 265] {
        let mut msg = add.clone();
        set_u16(&mut msg, 4, hdrlen);
        assert_eq!(
            decode(&msg),
            Err(WireError::HeaderLength {
                msg_type: RTM_ADD,
                hdrlen: usize::from(hdrlen)
            }),
        );
    }
    // An ifa_msghdr message claiming a shorter header than its own.
    let mut msg = vector("5a");
    set_u16(&mut msg, 4, 20);
    assert!(matches!(decode(&msg), Err(WireError::HeaderLength { .. })));
    // An if_msghdr cut short: header beyond the message.
    let mut msg = vector("5b");
    msg.truncate(100);
    set_u16(&mut msg, 0, 100);
    assert!(matches!(decode(&msg), Err(WireError::HeaderLength { .. })));
}

#[test]
fn lying_sockaddrs_are_rejected() {
    let add = rtm_add_default(1, ip(LL_GW), 1, 0);
    let sockaddr_err = |msg: &[u8]| match decode(msg) {
        Err(WireError::Sockaddr { slot, reason }) => (slot, reason),
        other => panic!("expected a sockaddr error, got {other:?}"),
    };

    // The label's sa_len runs past the message.
    let mut msg = add.clone();
    msg[224] = 50;
    assert_eq!(sockaddr_err(&msg), (RTAX_LABEL, "runs past the message"));
    // A gateway too short for a sockaddr_in6.
    let mut msg = add.clone();
    msg[128] = 20;
    assert_eq!(sockaddr_err(&msg).0, RTAX_GATEWAY);
    // A non-contiguous netmask.
    let mut msg = add.clone();
    msg[168] = 0xff;
    msg[169] = 0x0f;
    assert_eq!(sockaddr_err(&msg), (RTAX_NETMASK, "bad netmask"));
    // A netmask longer than a sockaddr_in6.
    let mut msg = add.clone();
    msg[160] = 30;
    assert_eq!(sockaddr_err(&msg), (RTAX_NETMASK, "bad netmask"));
    // More address bits than sockaddrs.
    let mut msg = add.clone();
    msg[12..16].copy_from_slice(&(DEFAULT_ROUTE_ADDRS | RTA_BFD).to_ne_bytes());
    assert_eq!(sockaddr_err(&msg), (RTAX_LABEL + 1, "missing"));
    // A bit beyond RTAX_MAX.
    let mut msg = add.clone();
    msg[12..16].copy_from_slice(&(DEFAULT_ROUTE_ADDRS | 1 << 20).to_ne_bytes());
    assert_eq!(sockaddr_err(&msg), (20, "unknown address bit"));
    // A sockaddr_dl whose name and address lengths exceed its sdl_len.
    let mut msg = vector("5a");
    msg[61] = 30;
    assert_eq!(sockaddr_err(&msg), (RTAX_IFP, "bad sockaddr_dl"));
    // A label without NUL in its 32 bytes.
    let mut msg = add.clone();
    msg[226..258].fill(b'x');
    assert_eq!(sockaddr_err(&msg), (RTAX_LABEL, "label not terminated"));
}

/// Random corruption of every vector: the decoder returns, never panics.
#[test]
fn corrupted_messages_never_panic() {
    let vectors = all_vectors();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded = 0;
    for round in 0..20_000 {
        let (_, base) = &vectors[round % vectors.len()];
        let mut msg = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % msg.len();
            msg[at] = next() as u8;
        }
        if next() % 4 == 0 {
            let len = (next() as usize) % (msg.len() + 1);
            msg.truncate(len);
            if len >= 2 {
                set_u16(&mut msg, 0, len as u16);
            }
        }
        if decode(&msg).is_ok() {
            decoded += 1;
        }
    }
    // Corrupting padding or values keeps some messages valid; corrupting
    // lengths must not: both paths ran.
    assert!(
        decoded > 1000 && decoded < 19_000,
        "{decoded} of 20000 decoded"
    );
}

/// (name, offset, size) of each field of a struct.
type Fields = Vec<(&'static str, usize, usize)>;

/// `size_of` a field, from an accessor.
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// A golden.json layout entry for one of wire.rs's structs.
macro_rules! layout {
    ($name:literal, $t:ty: $($f:ident),* $(,)?) => {
        (
            $name,
            (size_of::<$t>(), vec![$((
                stringify!($f),
                offset_of!($t, $f),
                field_size::<$t, _>(|s| &s.$f),
            )),*] as Fields),
        )
    };
}

#[test]
fn struct_layouts_match_the_headers() {
    #[rustfmt::skip]
    let ours = BTreeMap::from([
        layout!("sockaddr_in6", SockaddrIn6: sin6_len, sin6_family, sin6_port, sin6_flowinfo,
            sin6_addr, sin6_scope_id),
        layout!("sockaddr", Sockaddr: sa_len, sa_family, sa_data),
        layout!("sockaddr_dl", SockaddrDl: sdl_len, sdl_family, sdl_index, sdl_type, sdl_nlen,
            sdl_alen, sdl_slen, sdl_data),
        layout!("sockaddr_rtlabel", SockaddrRtlabel: sr_len, sr_family, sr_label),
        layout!("in6_addrlifetime", In6Addrlifetime: ia6t_expire, ia6t_preferred, ia6t_vltime,
            ia6t_pltime),
        layout!("in6_aliasreq", In6Aliasreq: ifra_name, ifra_addr, ifra_dstaddr,
            ifra_prefixmask, ifra_flags, ifra_lifetime),
        layout!("in6_ifreq", In6Ifreq: ifr_name, ifr_ifru),
        layout!("rt_metrics", RtMetrics: rmx_pksent, rmx_expire, rmx_locks, rmx_mtu, rmx_refcnt,
            rmx_hopcount, rmx_recvpipe, rmx_sendpipe, rmx_ssthresh, rmx_rtt, rmx_rttvar, rmx_pad),
        layout!("rt_msghdr", RtMsghdr: rtm_msglen, rtm_version, rtm_type, rtm_hdrlen, rtm_index,
            rtm_tableid, rtm_priority, rtm_mpls, rtm_addrs, rtm_flags, rtm_fmask, rtm_pid,
            rtm_seq, rtm_errno, rtm_inits, rtm_rmx),
        layout!("if_data", IfData: ifi_type, ifi_addrlen, ifi_hdrlen, ifi_link_state, ifi_mtu,
            ifi_metric, ifi_rdomain, ifi_baudrate, ifi_ipackets, ifi_ierrors, ifi_opackets,
            ifi_oerrors, ifi_collisions, ifi_ibytes, ifi_obytes, ifi_imcasts, ifi_omcasts,
            ifi_iqdrops, ifi_oqdrops, ifi_noproto, ifi_capabilities, ifi_lastchange),
        layout!("if_msghdr", IfMsghdr: ifm_msglen, ifm_version, ifm_type, ifm_hdrlen, ifm_index,
            ifm_tableid, ifm_pad1, ifm_pad2, ifm_addrs, ifm_flags, ifm_xflags, ifm_data),
        layout!("ifa_msghdr", IfaMsghdr: ifam_msglen, ifam_version, ifam_type, ifam_hdrlen,
            ifam_index, ifam_tableid, ifam_pad1, ifam_pad2, ifam_addrs, ifam_flags, ifam_metric),
        layout!("if_announcemsghdr", IfAnnouncemsghdr: ifan_msglen, ifan_version, ifan_type,
            ifan_hdrlen, ifan_index, ifan_what, ifan_name),
    ]);
    // Structs in golden.json that scwd never builds or reads.
    let unused = ["ifreq", "sockaddr_in"];

    let g = golden();
    let layouts = g["layouts"].as_object().unwrap();
    for (name, layout) in layouts {
        if unused.contains(&name.as_str()) {
            continue;
        }
        let (size, fields) = ours
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(
            *size as u64,
            layout["size"].as_u64().unwrap(),
            "sizeof {name}"
        );
        let golden_fields: Vec<(&str, usize, usize)> = layout["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let n = |i: usize| f[i].as_u64().unwrap() as usize;
                // wire.rs names the ifra_ifrau union by its only member.
                let name = f[0].as_str().unwrap();
                let name = if name == "ifra_ifrau" {
                    "ifra_addr"
                } else {
                    name
                };
                (name, n(1), n(2))
            })
            .collect();
        assert_eq!(fields, &golden_fields, "{name}");
    }
    assert_eq!(ours.len() + unused.len(), layouts.len());
}

#[test]
fn constants_match_the_headers() {
    let ours: BTreeMap<&str, i64> = BTreeMap::from([
        ("AF_UNSPEC", AF_UNSPEC.into()),
        ("AF_INET", AF_INET.into()),
        ("AF_ROUTE", AF_ROUTE.into()),
        ("AF_LINK", AF_LINK.into()),
        ("AF_INET6", AF_INET6.into()),
        ("IFNAMSIZ", IFNAMSIZ as i64),
        ("RTLABEL_LEN", RTLABEL_LEN as i64),
        ("ND6_INFINITE_LIFETIME", ND6_INFINITE_LIFETIME.into()),
        ("SIOCAIFADDR_IN6", SIOCAIFADDR_IN6.into()),
        ("SIOCDIFADDR_IN6", SIOCDIFADDR_IN6.into()),
        ("RTM_VERSION", RTM_VERSION.into()),
        ("RTM_ADD", RTM_ADD.into()),
        ("RTM_DELETE", RTM_DELETE.into()),
        ("RTM_CHANGE", RTM_CHANGE.into()),
        ("RTM_GET", RTM_GET.into()),
        ("RTM_NEWADDR", RTM_NEWADDR.into()),
        ("RTM_DELADDR", RTM_DELADDR.into()),
        ("RTM_IFINFO", RTM_IFINFO.into()),
        ("RTM_IFANNOUNCE", RTM_IFANNOUNCE.into()),
        ("RTM_CHGADDRATTR", RTM_CHGADDRATTR.into()),
        ("RTM_MAXSIZE", RTM_MAXSIZE as i64),
        ("RTA_DST", RTA_DST.into()),
        ("RTA_GATEWAY", RTA_GATEWAY.into()),
        ("RTA_NETMASK", RTA_NETMASK.into()),
        ("RTA_GENMASK", RTA_GENMASK.into()),
        ("RTA_IFP", RTA_IFP.into()),
        ("RTA_IFA", RTA_IFA.into()),
        ("RTA_AUTHOR", RTA_AUTHOR.into()),
        ("RTA_BRD", RTA_BRD.into()),
        ("RTA_SRC", RTA_SRC.into()),
        ("RTA_SRCMASK", RTA_SRCMASK.into()),
        ("RTA_LABEL", RTA_LABEL.into()),
        ("RTA_BFD", RTA_BFD.into()),
        ("RTA_DNS", RTA_DNS.into()),
        ("RTA_STATIC", RTA_STATIC.into()),
        ("RTA_SEARCH", RTA_SEARCH.into()),
        ("RTAX_MAX", RTAX_MAX as i64),
        ("RTF_UP", RTF_UP.into()),
        ("RTF_GATEWAY", RTF_GATEWAY.into()),
        ("RTF_HOST", RTF_HOST.into()),
        ("RTF_STATIC", RTF_STATIC.into()),
        ("RTF_MPATH", RTF_MPATH.into()),
        ("RTF_DONE", RTF_DONE.into()),
        ("RTF_LOCAL", RTF_LOCAL.into()),
        ("RTF_BROADCAST", RTF_BROADCAST.into()),
        ("RTF_CLONING", RTF_CLONING.into()),
        ("RTF_CONNECTED", RTF_CONNECTED.into()),
        ("RTF_LLINFO", RTF_LLINFO.into()),
        ("RTF_BFD", RTF_BFD.into()),
        ("RTF_MPLS", RTF_MPLS.into()),
        ("RTP_NONE", RTP_NONE.into()),
        ("RTP_LOCAL", RTP_LOCAL.into()),
        ("RTP_STATIC", RTP_STATIC.into()),
        ("RTP_DEFAULT", RTP_DEFAULT.into()),
        ("RTP_MAX", RTP_MAX.into()),
        ("RTP_ANY", RTP_ANY.into()),
        ("IFF_UP", IFF_UP.into()),
        ("IFF_RUNNING", IFF_RUNNING.into()),
        ("IFXF_AUTOCONF6", IFXF_AUTOCONF6.into()),
        ("LINK_STATE_UNKNOWN", LINK_STATE_UNKNOWN.into()),
        ("LINK_STATE_DOWN", LINK_STATE_DOWN.into()),
        ("LINK_STATE_UP", LINK_STATE_UP.into()),
        ("IN6_IFF_AUTOCONF", IN6_IFF_AUTOCONF.into()),
    ]);
    let g = golden();
    let consts = g["consts"].as_object().unwrap();
    let mut checked = 0;
    for (name, value) in consts {
        if let Some(ours) = ours.get(name.as_str()) {
            assert_eq!(*ours, value.as_i64().unwrap(), "{name}");
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        ours.len(),
        "every constant above is in golden.json"
    );
    // Cross-check the ioctl numbers against their definitions.
    assert_eq!(
        SIOCAIFADDR_IN6,
        0x8000_0000 | (128 << 16) | (u32::from(b'i') << 8) | 26
    );
    assert_eq!(
        SIOCDIFADDR_IN6,
        0x8000_0000 | (288 << 16) | (u32::from(b'i') << 8) | 25
    );
    assert_eq!(wire::IN6_ALIASREQ_LEN, 128);
    assert_eq!(wire::IN6_IFREQ_LEN, 288);
}

//! What must hold for any input, whatever the bytes: the fuzz targets
//! call these on every input libFuzzer makes, and the normal test suite
//! calls them on the hostile corpus (tests/hostile.rs) and on every input
//! the fuzzers ever found (tests/fuzz_regressions.rs). A violated
//! invariant panics, which is what libFuzzer and `cargo test` both catch.
//!
//! Included with `#[path]` by the fuzz targets and the tests, so it uses
//! only scwd's public API.

#![allow(dead_code)]

use std::net::Ipv6Addr;

use scwd::metadata;
use scwd::net::wire::{self, Message as Wire, SockAddr};
use scwd::plan::{self, Built, MAX_ADDRESSES};
use scwd::privsep::Message;

/// Interface index used when a plan's route is encoded.
const IFINDEX: u16 = 1;

/// A line for the log must stay one line and must not be able to
/// rewrite the terminal or reorder what a reader sees: no control
/// characters, no bidirectional overrides or isolates.
pub fn assert_safe_line(what: &str, line: &str) {
    for c in line.chars() {
        let bidi = matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !c.is_control() && !bidi,
            "{what}: {c:?} in a log line: {line:?}"
        );
    }
}

/// Bytes → metadata → plan, and for a plan: it validates as the parent
/// will validate it, it crosses the privsep channel unchanged, and every
/// kernel request built from it encodes and decodes back to it. Returns
/// the outcome as the daemon would log it.
pub fn metadata_plan(data: &[u8]) -> Result<Built, String> {
    let built = match metadata::parse(data) {
        Err(e) => Err(e.to_string()),
        Ok(meta) => plan::from_metadata(&meta, "vio0").map_err(|e| e.to_string()),
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            assert_safe_line("error", &e);
            return Err(e);
        }
    };
    for note in &built.notes {
        assert_safe_line("note", note);
    }
    let p = &built.plan;
    assert_eq!(p.validate(), Ok(()), "built plan does not validate: {p:?}");
    assert!(p.addresses.len() <= MAX_ADDRESSES);
    let msg = Message::Plan(p.clone());
    assert_eq!(
        Message::decode(&msg.encode()),
        Ok(msg),
        "plan does not round-trip through privsep"
    );
    for net in &p.addresses {
        wire::siocaifaddr_in6(&p.interface, net)
            .unwrap_or_else(|e| panic!("{net}: no SIOCAIFADDR_IN6 request: {e}"));
        wire::siocdifaddr_in6(&p.interface, net.addr)
            .unwrap_or_else(|e| panic!("{net}: no SIOCDIFADDR_IN6 request: {e}"));
    }
    if let Some(gw) = p.default_gateway {
        let route = route_round_trip(IFINDEX, gw, 1, 0);
        assert_eq!(route.0, gw, "gateway changed on the way to the kernel");
    }
    Ok(built)
}

/// Encodes scwd's default route both ways and decodes it again: the
/// decoder must read back exactly what the encoder wrote. Returns the
/// gateway and scope as decoded.
pub fn route_round_trip(ifindex: u16, gateway: Ipv6Addr, seq: i32, pid: i32) -> (Ipv6Addr, u32) {
    let mut seen = None;
    for (rtm_type, bytes) in [
        (
            wire::RTM_ADD,
            wire::rtm_add_default(ifindex, gateway, seq, pid),
        ),
        (
            wire::RTM_DELETE,
            wire::rtm_delete_default(ifindex, gateway, seq, pid),
        ),
    ] {
        assert!(bytes.len() <= wire::RTM_MAXSIZE);
        let Ok(Wire::Route(r)) = wire::decode(&bytes) else {
            panic!(
                "own route message does not decode: {:?}",
                wire::decode(&bytes)
            );
        };
        assert_eq!(r.msg_type, rtm_type);
        assert_eq!(r.index, ifindex);
        assert_eq!(r.flags, wire::DEFAULT_ROUTE_FLAGS);
        assert_eq!((r.seq, r.pid, r.errno), (seq, pid, 0));
        assert_eq!(
            r.addrs.inet6(wire::RTAX_DST),
            Some((Ipv6Addr::UNSPECIFIED, 0))
        );
        assert_eq!(r.addrs.prefixlen(), Some(0));
        assert_eq!(r.addrs.label(), Some(wire::ROUTE_LABEL));
        match r.addrs.get(wire::RTAX_IFP) {
            Some(SockAddr::Link { index, .. }) => assert_eq!(*index, ifindex),
            other => panic!("RTAX_IFP is {other:?}"),
        }
        let gw = r.addrs.inet6(wire::RTAX_GATEWAY).expect("a gateway");
        let want = if gateway.is_unicast_link_local() {
            // The scope travels in bytes 2-3; whatever the plan had
            // there is replaced by it.
            (wire::strip_scope(gateway.octets()).0, u32::from(ifindex))
        } else {
            (gateway, 0)
        };
        assert_eq!(gw, want, "gateway {gateway} via index {ifindex}");
        seen = Some(gw);
    }
    let get = wire::rtm_get_default(seq, pid);
    let Ok(Wire::Route(r)) = wire::decode(&get) else {
        panic!("own RTM_GET does not decode");
    };
    assert_eq!((r.msg_type, r.seq, r.pid), (wire::RTM_GET, seq, pid));
    assert_eq!(r.addrs.prefixlen(), Some(0));
    seen.expect("two messages")
}

/// Bytes → the routing-socket decoder: it never panics, and what it
/// returns is consistent with the bytes (lengths, slots, masks, scope).
/// The first 24 bytes also drive the encoder, whose output must decode
/// back to its inputs.
pub fn wire_decode(data: &[u8]) {
    if let Some(p) = data.get(..24) {
        let ifindex = u16::from_ne_bytes([p[0], p[1]]);
        let gw = Ipv6Addr::from(<[u8; 16]>::try_from(&p[2..18]).expect("16 bytes"));
        let seq = i32::from_ne_bytes([p[18], p[19], p[20], p[21]]);
        let pid = i32::from(u16::from_ne_bytes([p[22], p[23]]));
        route_round_trip(ifindex, gw, seq, pid);
    }
    let msg = match wire::decode(data) {
        Ok(m) => m,
        Err(e) => {
            assert_safe_line("wire error", &e.to_string());
            return;
        }
    };
    // One message is one read: its length is the buffer's.
    assert!(data.len() >= 6);
    assert_eq!(
        usize::from(u16::from_ne_bytes([data[0], data[1]])),
        data.len()
    );
    assert_eq!(data[2], wire::RTM_VERSION);
    let addrs = match &msg {
        Wire::Route(r) => {
            assert_eq!(r.msg_type, data[3]);
            Some(&r.addrs)
        }
        Wire::Address(a) => {
            assert_eq!(a.msg_type, data[3]);
            Some(&a.addrs)
        }
        Wire::Interface(i) => Some(&i.addrs),
        Wire::Announce(a) => {
            assert!(!a.name.contains('\0'));
            None
        }
        Wire::Other(t) => {
            assert_eq!(*t, data[3]);
            None
        }
    };
    let Some(addrs) = addrs else { return };
    for slot in 0..32 {
        let Some(sa) = addrs.get(slot) else { continue };
        assert!(slot < wire::RTAX_MAX, "slot {slot} decoded");
        match sa {
            SockAddr::Netmask { prefixlen } => assert!(*prefixlen <= 128),
            SockAddr::Inet6 { addr, scope_id } => {
                // An embedded scope is always moved out of the address.
                if addr.is_unicast_link_local() {
                    assert_eq!(&addr.octets()[2..4], &[0, 0], "{addr}");
                }
                if *scope_id != 0 {
                    assert!(slot != wire::RTAX_NETMASK);
                }
            }
            SockAddr::Label(label) => {
                assert!(!label.contains('\0'));
                assert!(label.chars().count() < wire::RTLABEL_LEN);
            }
            SockAddr::Link { name, lladdr, .. } => {
                assert!(name.chars().count() + lladdr.len() <= data.len());
            }
            SockAddr::Empty | SockAddr::Other { .. } => {}
        }
    }
}

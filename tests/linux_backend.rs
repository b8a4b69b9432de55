//! `LinuxBackend` against the real kernel: each test builds its own pair of
//! network namespaces (the instance with `vio0`, a peer holding the
//! gateway on the other end of a veth), drives the backend there and
//! checks the result with `ip -j`. Needs root; without it each test says
//! SKIPPED on stderr.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::Write;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use scwd::net::linux::{LinuxBackend, RTPROT_SCWD};
use scwd::net::{Added, Backend, DefaultRoute, NetError};
use scwd::plan::Ipv6Net;

/// The instance's address, in the /127 it shares with the gateway.
const ADDR: &str = "2001:db8:1::2";
/// The peer's end of the /127.
const GW: &str = "2001:db8:1::3";
/// The peer's link-local address.
const GW_LL: &str = "fe80::1";

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

fn net(addr: &str, prefixlen: u8) -> Ipv6Net {
    Ipv6Net {
        addr: ip6(addr),
        prefixlen,
    }
}

/// Two namespaces joined by a veth pair: `vio0` in the instance, `gw0`
/// in the peer. Dropping it deletes both namespaces, also after a
/// failed assertion.
struct Lab {
    ns: String,
    peer: String,
}

/// A lab for `test`, or `None` (after saying SKIPPED) when not root.
fn lab(test: &str) -> Option<Lab> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Straight to stderr: eprintln! would be swallowed by the test
        // harness's capture, and a skip must be seen.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: needs root");
        return None;
    }
    let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
    let id = std::process::id();
    let lab = Lab {
        ns: format!("scwd-t-{id}-{n}"),
        peer: format!("scwd-tp-{id}-{n}"),
    };
    run(&["netns", "add", &lab.ns]);
    run(&["netns", "add", &lab.peer]);
    lab.ip(&["link", "set", "lo", "up"]);
    lab.ip(&[
        "link", "add", "vio0", "type", "veth", "peer", "name", "gw0", "netns", &lab.peer,
    ]);
    lab.ip(&["link", "set", "vio0", "up"]);
    lab.peer_ip(&["link", "set", "gw0", "up"]);
    lab.peer_ip(&[
        "-6",
        "addr",
        "add",
        &format!("{GW}/127"),
        "dev",
        "gw0",
        "nodad",
    ]);
    lab.peer_ip(&[
        "-6",
        "addr",
        "add",
        &format!("{GW_LL}/64"),
        "dev",
        "gw0",
        "nodad",
    ]);
    Some(lab)
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.ns, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `ip args` and returns its output; any failure fails the test.
fn run(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One default route as `ip -j` shows it: gateway, device, protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    gateway: String,
    dev: String,
    protocol: String,
}

impl Lab {
    fn ip(&self, args: &[&str]) -> String {
        run(&[&["-n", self.ns.as_str()], args].concat())
    }

    fn peer_ip(&self, args: &[&str]) -> String {
        run(&[&["-n", self.peer.as_str()], args].concat())
    }

    /// Opens the backend for `vio0` from inside the instance namespace.
    fn backend(&self) -> Result<LinuxBackend, NetError> {
        self.open("vio0")
    }

    fn open(&self, interface: &str) -> Result<LinuxBackend, NetError> {
        let path = format!("/run/netns/{}", self.ns);
        let interface = interface.to_string();
        // The socket stays in the namespace it was created in, so only a
        // short-lived thread needs to enter it.
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: `ns` is an open network namespace file; setns only
            // changes this thread's namespace, and the thread ends here.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            LinuxBackend::open(&interface)
        })
        .join()
        .expect("namespace thread")
    }

    /// Global addresses on vio0 as `(address, prefixlen)`, checking on the
    /// way that each has infinite lifetimes.
    fn addresses(&self) -> Vec<(String, u8)> {
        let json = self.ip(&["-j", "-6", "addr", "show", "dev", "vio0"]);
        let links: serde_json::Value = serde_json::from_str(&json).expect("ip -j addr");
        let mut found = Vec::new();
        for info in links[0]["addr_info"].as_array().into_iter().flatten() {
            if info["scope"] != "global" {
                continue;
            }
            assert_eq!(info["valid_life_time"], u32::MAX, "{info}");
            assert_eq!(info["preferred_life_time"], u32::MAX, "{info}");
            let addr = info["local"].as_str().expect("local").to_string();
            let plen = info["prefixlen"].as_u64().expect("prefixlen");
            found.push((addr, u8::try_from(plen).expect("prefixlen")));
        }
        found.sort();
        found
    }

    /// Default routes in the main table, one per next hop. A multipath
    /// route shows one protocol for all its next hops (the first one's).
    fn default_routes(&self) -> Vec<Route> {
        let json = self.ip(&["-j", "-6", "route", "show", "default"]);
        let routes: serde_json::Value = serde_json::from_str(&json).expect("ip -j route");
        let mut found = Vec::new();
        for r in routes.as_array().expect("route list") {
            let protocol = r["protocol"].as_str().unwrap_or("").to_string();
            let hops = match r["nexthops"].as_array() {
                Some(hops) => hops.clone(),
                None => vec![r.clone()],
            };
            for hop in hops {
                found.push(Route {
                    gateway: hop["gateway"].as_str().unwrap_or("").to_string(),
                    dev: hop["dev"].as_str().unwrap_or("").to_string(),
                    protocol: protocol.clone(),
                });
            }
        }
        found.sort();
        found
    }
}

fn scwd_route(gateway: &str) -> Route {
    Route {
        gateway: gateway.to_string(),
        dev: "vio0".to_string(),
        protocol: RTPROT_SCWD.to_string(),
    }
}

#[test]
fn address_added_once_and_deleted() {
    let Some(lab) = lab("address_added_once_and_deleted") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    let a = net(ADDR, 127);
    let b = net("2001:db8:2::5", 64);

    assert_eq!(nl.add_address(&a).expect("add"), Added::New);
    assert_eq!(nl.add_address(&b).expect("add"), Added::New);
    let both = vec![(ADDR.to_string(), 127), ("2001:db8:2::5".to_string(), 64)];
    assert_eq!(lab.addresses(), both);

    assert_eq!(nl.add_address(&a).expect("re-add"), Added::Existing);
    assert_eq!(lab.addresses(), both);

    nl.delete_address(&a).expect("delete");
    assert_eq!(lab.addresses(), vec![("2001:db8:2::5".to_string(), 64)]);
    nl.delete_address(&a)
        .expect("delete again: already gone is success");
    nl.delete_address(&b).expect("delete");
    assert_eq!(lab.addresses(), vec![]);
}

#[test]
fn address_with_other_prefix_is_refused_and_kept() {
    let Some(lab) = lab("address_with_other_prefix_is_refused_and_kept") else {
        return;
    };
    lab.ip(&["-6", "addr", "add", &format!("{ADDR}/64"), "dev", "vio0"]);
    let mut nl = lab.backend().expect("open");

    let err = nl.add_address(&net(ADDR, 127)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("vio0: RTM_NEWADDR {ADDR}/127: address exists as {ADDR}/64")
    );
    // The /127 is not there to delete; the /64 is not scwd's to touch.
    nl.delete_address(&net(ADDR, 127)).expect("delete");
    assert_eq!(lab.addresses(), vec![(ADDR.to_string(), 64)]);
}

/// Adds scwd's default route via `gw` twice (New, then Existing with no
/// change), deletes it twice (gone, then still success).
fn route_added_once_and_deleted(lab: &Lab, nl: &mut LinuxBackend, gw: &str) {
    assert_eq!(nl.add_default_route(ip6(gw)).expect("add"), Added::New);
    assert_eq!(lab.default_routes(), vec![scwd_route(gw)]);
    assert_eq!(
        nl.add_default_route(ip6(gw)).expect("re-add"),
        Added::Existing
    );
    assert_eq!(lab.default_routes(), vec![scwd_route(gw)]);

    nl.delete_default_route(ip6(gw)).expect("delete");
    assert_eq!(lab.default_routes(), vec![]);
    nl.delete_default_route(ip6(gw))
        .expect("delete again: already gone is success");
}

#[test]
fn route_via_global_gateway() {
    let Some(lab) = lab("route_via_global_gateway") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    nl.add_address(&net(ADDR, 127)).expect("add address");
    route_added_once_and_deleted(&lab, &mut nl, GW);
}

#[test]
fn route_via_link_local_gateway() {
    let Some(lab) = lab("route_via_link_local_gateway") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    // No global address needed: the output interface makes fe80::1 usable.
    route_added_once_and_deleted(&lab, &mut nl, GW_LL);
}

#[test]
fn route_of_another_protocol_is_never_deleted() {
    let Some(lab) = lab("route_of_another_protocol_is_never_deleted") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    nl.add_address(&net(ADDR, 127)).expect("add address");
    lab.ip(&[
        "-6", "route", "add", "default", "via", GW, "dev", "vio0", "proto", "static",
    ]);
    let theirs = vec![Route {
        protocol: "static".to_string(),
        ..scwd_route(GW)
    }];
    assert_eq!(lab.default_routes(), theirs);

    // The same next hop exists already: scwd did not add it.
    assert_eq!(nl.add_default_route(ip6(GW)).expect("add"), Added::Existing);
    nl.delete_default_route(ip6(GW)).expect("delete");
    assert_eq!(lab.default_routes(), theirs);
}

#[test]
fn route_beside_another_default_route() {
    let Some(lab) = lab("route_beside_another_default_route") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    lab.ip(&[
        "-6", "route", "add", "default", "via", "fe80::2", "dev", "vio0", "proto", "static",
    ]);

    assert_eq!(nl.add_default_route(ip6(GW_LL)).expect("add"), Added::New);
    let gateways = |lab: &Lab| -> Vec<String> {
        lab.default_routes()
            .into_iter()
            .map(|r| r.gateway)
            .collect()
    };
    assert_eq!(
        gateways(&lab),
        vec![GW_LL.to_string(), "fe80::2".to_string()]
    );

    nl.delete_default_route(ip6(GW_LL)).expect("delete");
    let left = lab.default_routes();
    assert_eq!(
        left,
        vec![Route {
            gateway: "fe80::2".to_string(),
            dev: "vio0".to_string(),
            protocol: "static".to_string(),
        }]
    );
}

#[test]
fn off_link_gateway_is_refused() {
    let Some(lab) = lab("off_link_gateway_is_refused") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    nl.add_address(&net(ADDR, 127)).expect("add address");

    let err = nl.add_default_route(ip6("2001:db8:99::1")).unwrap_err();
    let errno = err.source.raw_os_error();
    assert!(
        errno == Some(libc::EHOSTUNREACH) || errno == Some(libc::ENETUNREACH),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("vio0: RTM_NEWROUTE default via 2001:db8:99::1: No route to host")
            || msg.starts_with(
                "vio0: RTM_NEWROUTE default via 2001:db8:99::1: Network is unreachable"
            ),
        "{msg}"
    );
    assert_eq!(lab.default_routes(), vec![]);
}

#[test]
fn interface_down_or_gone_is_an_error() {
    let Some(lab) = lab("interface_down_or_gone_is_an_error") else {
        return;
    };
    let mut nl = lab.backend().expect("open");

    lab.ip(&["link", "set", "vio0", "down"]);
    let err = nl.add_default_route(ip6(GW_LL)).unwrap_err();
    assert_eq!(err.source.raw_os_error(), Some(libc::ENETDOWN), "{err}");
    assert!(
        err.to_string()
            .starts_with("vio0: RTM_NEWROUTE default via fe80::1: Network is down"),
        "{err}"
    );

    lab.ip(&["link", "del", "vio0"]);
    let err = nl.add_address(&net(ADDR, 127)).unwrap_err();
    assert_eq!(err.source.raw_os_error(), Some(libc::ENODEV), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("vio0: RTM_NEWADDR {ADDR}/127: No such device")),
        "{err}"
    );
    // Whatever was on it went with it: deleting is not an error.
    nl.delete_address(&net(ADDR, 127)).expect("delete address");
    nl.delete_default_route(ip6(GW_LL)).expect("delete route");
    // Opening without the interface is no error; using it is.
    let mut nl = lab.backend().expect("open without vio0");
    assert_eq!(nl.ifindex(), None);
    assert_eq!(nl.default_routes().expect("routes"), vec![]);
    let err = nl.add_address(&net(ADDR, 127)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("vio0: RTM_NEWADDR {ADDR}/127: No such device")),
        "{err}"
    );
}

/// Waits for the backend's event descriptor and takes what is pending.
fn events_say_changed(nl: &mut LinuxBackend) -> bool {
    let mut pfd = libc::pollfd {
        fd: nl.events_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut changed = false;
    // Events come one datagram at a time: read for a moment.
    for _ in 0..5 {
        // SAFETY: one valid pollfd, for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, 200) };
        changed |= nl.take_events();
    }
    changed
}

#[test]
fn an_interface_that_appears_later_is_reported_and_resolved() {
    let Some(lab) = lab("an_interface_that_appears_later_is_reported_and_resolved") else {
        return;
    };
    let mut nl = lab.open("vio1").expect("open without vio1");
    assert_eq!(nl.ifindex(), None);
    assert!(!nl.resolve().expect("resolve"));
    // Another interface changing is not vio1's business.
    lab.ip(&["link", "set", "vio0", "down"]);
    assert!(!events_say_changed(&mut nl));

    lab.ip(&[
        "link", "add", "vio1", "type", "veth", "peer", "name", "vio1p",
    ]);
    // Created down: routes cannot use it yet, so it is not reported.
    assert!(!events_say_changed(&mut nl));
    lab.ip(&["link", "set", "vio1", "up"]);
    assert!(events_say_changed(&mut nl));
    assert!(nl.resolve().expect("resolve"));
    let first = nl.ifindex().expect("index");
    assert_eq!(nl.add_address(&net(ADDR, 127)).expect("add"), Added::New);

    // Deleted and created again: a new index.
    lab.ip(&["link", "del", "vio1"]);
    assert!(events_say_changed(&mut nl));
    assert!(!nl.resolve().expect("resolve"));
    lab.ip(&[
        "link", "add", "vio1", "type", "veth", "peer", "name", "vio1p",
    ]);
    lab.ip(&["link", "set", "vio1", "up"]);
    assert!(events_say_changed(&mut nl));
    assert!(nl.resolve().expect("resolve"));
    assert_ne!(nl.ifindex(), Some(first));
    assert_eq!(nl.add_address(&net(ADDR, 127)).expect("add"), Added::New);
}

#[test]
fn default_routes_are_listed_with_their_owner() {
    let Some(lab) = lab("default_routes_are_listed_with_their_owner") else {
        return;
    };
    let mut nl = lab.backend().expect("open");
    assert_eq!(nl.default_routes().expect("routes"), vec![]);
    // Another metric: at the same one the kernel would list the two as
    // one multipath route.
    lab.ip(&[
        "-6", "route", "add", "default", "via", GW_LL, "dev", "vio0", "proto", "ra", "metric",
        "2048", "expires", "600",
    ]);
    nl.add_address(&net(ADDR, 127)).expect("add address");
    assert_eq!(nl.add_default_route(ip6(GW)).expect("add"), Added::New);
    let mut routes = nl.default_routes().expect("routes");
    routes.sort_by_key(|r| r.gateway);
    assert_eq!(
        routes,
        vec![
            DefaultRoute {
                gateway: ip6(GW),
                ours: true,
                elsewhere: false,
            },
            DefaultRoute {
                gateway: ip6(GW_LL),
                ours: false,
                elsewhere: false,
            },
        ]
    );
    // Another interface's default route is listed as such; one without
    // a gateway is not listed (it cannot become a multipath sibling).
    lab.ip(&[
        "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p",
    ]);
    lab.ip(&["link", "set", "eth9", "up"]);
    lab.ip(&[
        "-6", "route", "add", "default", "via", "fe80::9", "dev", "eth9", "metric", "5",
    ]);
    lab.ip(&[
        "-6", "route", "add", "default", "dev", "eth9", "metric", "6",
    ]);
    let routes = nl.default_routes().expect("routes");
    assert_eq!(routes.len(), 3, "{routes:?}");
    assert!(
        routes.contains(&DefaultRoute {
            gateway: ip6("fe80::9"),
            ours: false,
            elsewhere: true,
        }),
        "{routes:?}"
    );
}

#[test]
fn open_refuses_what_is_not_an_interface_name() {
    // Needs no privilege: refused before any socket is opened.
    for name in ["vio\0", "", "a-name-that-is-too-long0"] {
        let err = LinuxBackend::open(name).unwrap_err();
        assert_eq!(
            err.source.kind(),
            std::io::ErrorKind::InvalidInput,
            "{name:?}"
        );
    }
}

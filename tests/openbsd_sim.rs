//! The OpenBSD backend's logic, through the real `Applier`, against the
//! simulated OpenBSD kernel of tests/common/openbsd_sim.rs. Every request
//! it makes is also checked by the kernel model (tests/common/
//! kernel_model.rs). The cases of the Linux namespace lab (tests/lab.rs)
//! have their counterpart here, so both backends are held to one
//! behaviour.

mod common;

use std::fs;
use std::net::Ipv6Addr;
use std::path::Path;

use common::openbsd_sim::{INFINITE, Shared, Sim, SimKernel};
use scwd::metadata;
use scwd::net::openbsd::OpenBsdBackend;
use scwd::net::{Applier, Backend, wire};
use scwd::plan::{self, Ipv6Net, Plan};

type Obsd = OpenBsdBackend<SimKernel>;

const ADDR: &str = "2001:bc8:1234:5678:dc00:1ff:fe14:a73b";
const GW: &str = "fe80::dc00:ff:fe12:3456";
const GW2: &str = "fe80::dc00:ff:fe12:9999";

fn backend(sim: &Shared) -> Obsd {
    OpenBsdBackend::with_kernel(SimKernel::open(sim), "vio0").unwrap()
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn net(addr: &str, prefixlen: u8) -> Ipv6Net {
    Ipv6Net {
        addr: ip(addr),
        prefixlen,
    }
}

fn plan(addrs: &[(&str, u8)], gw: Option<&str>) -> Plan {
    Plan {
        interface: "vio0".into(),
        addresses: addrs.iter().map(|(a, p)| net(a, *p)).collect(),
        default_gateway: gw.map(ip),
    }
}

fn routed() -> Plan {
    plan(&[(ADDR, 64)], Some(GW))
}

/// `gateway prio label` as Sim::defaults lists a route.
fn route(gw: &str, prio: u8, label: &str) -> String {
    format!("{gw} {prio} {label}")
}

/// Every plan the metadata fixtures (those of the Linux lab included)
/// give for vio0.
fn fixture_plans() -> Vec<(String, Plan)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in ["scaleway", "lab"] {
        let mut names: Vec<_> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        for path in names {
            let body = fs::read(&path).unwrap();
            let Ok(meta) = metadata::parse(&body) else {
                continue;
            };
            if let Ok(built) = plan::from_metadata(&meta, "vio0") {
                out.push((path.display().to_string(), built.plan));
            }
        }
    }
    out
}

/// The kernel holds `plan` as scwd configures it: its addresses, static
/// with infinite lifetimes, and one default route labelled scwd at the
/// priority the kernel gives a static route.
fn assert_holds(sim: &Shared, plan: &Plan, what: &str) {
    let s = sim.borrow();
    let mut want: Vec<_> = plan.addresses.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(s.globals("vio0"), want, "{what}");
    for a in s.addrs("vio0") {
        assert_eq!(
            (a.flags, a.vltime, a.pltime),
            (0, INFINITE, INFINITE),
            "{what}"
        );
    }
    let routes: Vec<_> = plan
        .default_gateway
        .map(|g| route(&g.to_string(), 8, "scwd"))
        .into_iter()
        .collect();
    assert_eq!(s.defaults(), routes, "{what}");
}

#[test]
fn every_fixture_plan_is_applied_once_and_only_once() {
    let plans = fixture_plans();
    let configuring = plans
        .iter()
        .filter(|(_, p)| !p.addresses.is_empty())
        .count();
    assert!(configuring >= 4, "too few fixture plans: {plans:?}");
    for (name, p) in &plans {
        let sim = Sim::new();
        let mut a = Applier::new(backend(&sim));
        a.apply(p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_holds(&sim, p, name);
        let ioctls = sim.borrow().ioctls.len();
        let writes = sim.borrow().writes.len();
        // Idempotence: nothing issued again for what is present.
        let c = a.apply(p).unwrap();
        assert!(c.is_empty(), "{name}: {c:?}");
        assert_eq!(sim.borrow().ioctls.len(), ioctls, "{name}");
        assert_eq!(sim.borrow().writes.len(), writes, "{name}");
        assert_holds(&sim, p, name);
        // No IPv6 any more: scwd's own go; the link-local stays.
        a.apply(&plan(&[], None)).unwrap();
        assert_holds(&sim, &plan(&[], None), name);
        assert_eq!(sim.borrow().addrs("vio0").len(), 1, "{name}");
    }
}

#[test]
fn legacy_127_with_a_global_gateway() {
    let sim = Sim::new();
    let p = plan(
        &[("2001:bc8:4700:2100::302d", 127)],
        Some("2001:bc8:4700:2100::302c"),
    );
    Applier::new(backend(&sim)).apply(&p).unwrap();
    assert_holds(&sim, &p, "legacy");
}

#[test]
fn a_global_gateway_off_every_prefix_is_unreachable() {
    // rt_setgwroute: no connected route covers the gateway and no other
    // default route exists: ENOENT; the address added for it goes again.
    let sim = Sim::new();
    let p = plan(&[("2001:db8::2", 127)], Some("2001:db8:1::1"));
    let err = Applier::new(backend(&sim)).apply(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vio0: RTM_ADD default via 2001:db8:1::1: No such file or directory"
    );
    assert!(sim.borrow().globals("vio0").is_empty());
}

#[test]
fn no_ioctl_for_an_address_already_present() {
    let sim = Sim::new();
    sim.borrow_mut().admin_address("vio0", ADDR, 64);
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    assert_eq!(sim.borrow().ioctl_count(wire::SIOCAIFADDR_IN6), 0);
    // Not scwd's: still there when the metadata drops it.
    a.apply(&plan(&[], None)).unwrap();
    assert_eq!(sim.borrow().globals("vio0"), [format!("{ADDR}/64")]);
    assert_eq!(sim.borrow().ioctl_count(wire::SIOCDIFADDR_IN6), 0);
}

#[test]
fn slaacds_address_and_route_are_left_exactly_as_they_were() {
    let sim = Sim::new();
    sim.borrow_mut().slaacd_address("vio0", ADDR, 64);
    sim.borrow_mut().slaacd_route("vio0", GW);
    let before = (sim.borrow().addrs("vio0"), sim.borrow().defaults());
    assert_eq!(before.1, [route(GW, 8, "slaacd")]);
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    a.apply(&routed()).unwrap();
    a.apply(&plan(&[], None)).unwrap();
    let after = (sim.borrow().addrs("vio0"), sim.borrow().defaults());
    // SIOCAIFADDR_IN6 again would have stripped IN6_IFF_AUTOCONF and made
    // the lifetimes infinite (in6.c 709, 731).
    assert_eq!(after, before);
    assert_eq!(sim.borrow().ioctls, []);
}

#[test]
fn reconcile_on_gateway_change() {
    let sim = Sim::new();
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    let p = plan(&[(ADDR, 64)], Some(GW2));
    a.apply(&p).unwrap();
    assert_holds(&sim, &p, "new gateway");
    assert_eq!(sim.borrow().ioctl_count(wire::SIOCAIFADDR_IN6), 1);
    // The delete named the priority the add's echo reported.
    let deletes: Vec<_> = sim
        .borrow()
        .writes
        .iter()
        .filter(|(t, _)| *t == wire::RTM_DELETE)
        .copied()
        .collect();
    assert_eq!(deletes, [(wire::RTM_DELETE, 8)]);
}

#[test]
fn reconcile_on_address_and_prefix_change() {
    let sim = Sim::new();
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    let renumbered = plan(&[("2001:bc8:1234:9999::1", 64)], Some(GW));
    a.apply(&renumbered).unwrap();
    assert_holds(&sim, &renumbered, "renumbered");
    let reprefixed = plan(&[("2001:bc8:1234:9999::1", 127)], Some(GW));
    a.apply(&reprefixed).unwrap();
    assert_holds(&sim, &reprefixed, "new prefix length");
}

#[test]
fn a_failed_route_rolls_the_addresses_back() {
    let sim = Sim::new();
    let mut a = Applier::new(backend(&sim));
    sim.borrow_mut().fail_next_add = Some(wire::ENOBUFS);
    let err = a
        .apply(&plan(
            &[(ADDR, 64), ("2001:bc8:1234:5678::2", 64)],
            Some(GW),
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("vio0: RTM_ADD default via {GW}: No buffer space available")
    );
    assert_holds(&sim, &plan(&[], None), "rolled back");
    // And it works the next time.
    a.apply(&routed()).unwrap();
    assert_holds(&sim, &routed(), "retried");
}

#[test]
fn a_failed_refresh_leaves_the_previous_configuration() {
    let sim = Sim::new();
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    sim.borrow_mut().fail_next_add = Some(wire::ENOBUFS);
    a.apply(&plan(&[("2001:bc8:1234:9999::1", 64)], Some(GW2)))
        .unwrap_err();
    assert_holds(&sim, &routed(), "previous configuration");
}

#[test]
fn an_admins_default_route_via_another_gateway_is_left_alone() {
    // Applier's policy: a default route scwd did not add is left exactly
    // as it is, and none of scwd's is added beside it.
    let sim = Sim::new();
    sim.borrow_mut().admin_route("vio0", GW2);
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    assert_eq!(sim.borrow().globals("vio0"), [format!("{ADDR}/64")]);
    assert_eq!(sim.borrow().defaults(), [route(GW2, 8, "-")]);
    a.apply(&plan(&[], None)).unwrap();
    assert_eq!(sim.borrow().defaults(), [route(GW2, 8, "-")]);
    let writes = sim.borrow().writes.clone();
    assert!(
        writes.iter().all(|(t, _)| *t == wire::RTM_GET),
        "{writes:?}"
    );
}

#[test]
fn delete_removes_only_a_route_labelled_scwd() {
    // scwd's route via GW is replaced behind its back by slaacd's, via
    // the same gateway at the same priority: RTM_DELETE alone would match
    // it (label ignored, rtable.c 462–471); the RTM_GET proof does not.
    let sim = Sim::new();
    let mut b = backend(&sim);
    b.add_default_route(ip(GW)).unwrap();
    sim.borrow_mut().admin_delete_route("vio0", GW);
    sim.borrow_mut().slaacd_route("vio0", GW);
    b.delete_default_route(ip(GW)).unwrap();
    assert_eq!(sim.borrow().defaults(), [route(GW, 8, "slaacd")]);
    let deletes = sim
        .borrow()
        .writes
        .iter()
        .filter(|(t, _)| *t == wire::RTM_DELETE)
        .count();
    assert_eq!(deletes, 0);
}

#[test]
fn a_route_without_an_inet6_address_is_unreachable() {
    // rtm_getifa: no inet6 address on the interface (rtsock.c 1316).
    let sim = Sim::new();
    let ll = sim.borrow().addrs("vio0")[0].addr.to_string();
    sim.borrow_mut().admin_delete_address("vio0", &ll);
    let mut b = backend(&sim);
    let err = b.add_default_route(ip(GW)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("vio0: RTM_ADD default via {GW}: Network is unreachable")
    );
}

#[test]
fn a_restart_adopts_scwds_labelled_route_and_no_address() {
    // The Linux lab's restart case: scwd -o with one gateway, the
    // metadata changes gateway, a new scwd -o.
    let sim = Sim::new();
    Applier::new(backend(&sim)).apply(&routed()).unwrap();
    let b = backend(&sim);
    // Adopted at open from the routing table: label scwd, priority 8.
    assert_eq!(b.own_routes(), [(ip(GW), 8)]);
    let mut a = Applier::adopt(b);
    let moved = plan(&[(ADDR, 64)], Some(GW2));
    let c = a.apply(&moved).unwrap();
    assert_eq!(c.route_removed, [ip(GW)]);
    // Exactly one default route, via the new gateway; the address kept,
    // never issued again.
    assert_holds(&sim, &moved, "after the restart");
    assert_eq!(sim.borrow().ioctls.len(), 1);
    // The address is not scwd's for this run: kept when the metadata
    // drops it.
    a.apply(&plan(&[], None)).unwrap();
    assert_eq!(sim.borrow().globals("vio0"), [format!("{ADDR}/64")]);
    assert_eq!(sim.borrow().defaults(), Vec::<String>::new());
}

#[test]
fn a_restart_lists_foreign_routes_as_not_scwds() {
    let sim = Sim::new();
    sim.borrow_mut().slaacd_route("vio0", GW2);
    let mut first = backend(&sim);
    first.add_default_route(ip(GW)).unwrap();
    drop(first);
    let mut b = backend(&sim);
    let mut listed = b.default_routes().unwrap();
    listed.sort_by_key(|r| r.gateway);
    let listed: Vec<_> = listed.iter().map(|r| (r.gateway, r.ours)).collect();
    assert_eq!(listed, [(ip(GW), true), (ip(GW2), false)]);
    b.delete_default_route(ip(GW)).unwrap();
    assert_eq!(sim.borrow().defaults(), [route(GW2, 8, "slaacd")]);
}

#[test]
fn an_overflowed_socket_makes_the_backend_read_the_tables_again() {
    let sim = Sim::new();
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    // Churn elsewhere fills scwd's 8 KB socket buffer; the DELADDR of
    // scwd's own address, removed by hand meanwhile, is among the
    // messages dropped (rtsock.c 585–595).
    sim.borrow_mut().churn("vio1", 60);
    let dropped = sim.borrow().dropped;
    sim.borrow_mut().admin_delete_address("vio0", ADDR);
    assert!(
        sim.borrow().dropped > dropped,
        "the DELADDR was not dropped"
    );
    // Only RTM_DESYNC says so: the address is missing, so it is added again.
    a.apply(&routed()).unwrap();
    assert_holds(&sim, &routed(), "after the overflow");
    assert_eq!(sim.borrow().ioctl_count(wire::SIOCAIFADDR_IN6), 2);
}

#[test]
fn an_interface_that_appears_late() {
    let sim = Sim::without_interface();
    let mut b = backend(&sim);
    assert_eq!(b.ifindex(), None);
    assert!(!b.take_events());
    let err = b.add_default_route(ip(GW)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("vio0: RTM_ADD default via {GW}: Device not configured")
    );
    sim.borrow_mut().attach("vio1");
    assert!(!b.take_events(), "another interface is no news");
    let index = sim.borrow_mut().attach("vio0");
    assert!(b.take_events());
    assert!(b.resolve().unwrap());
    assert_eq!(b.ifindex(), Some(u32::from(index)));
    let mut a = Applier::new(b);
    a.apply(&routed()).unwrap();
    assert_holds(&sim, &routed(), "late interface");
}

#[test]
fn an_interface_that_vanishes_and_comes_back() {
    let sim = Sim::new();
    let mut b = backend(&sim);
    b.add_address(&net(ADDR, 64)).unwrap();
    b.add_default_route(ip(GW)).unwrap();
    sim.borrow_mut().detach("vio0");
    assert!(b.take_events());
    assert!(!b.resolve().unwrap());
    assert_eq!(b.own_routes(), []);
    let index = sim.borrow_mut().attach("vio0");
    assert!(b.take_events());
    assert!(b.resolve().unwrap());
    assert_eq!(b.ifindex(), Some(u32::from(index)));
    // A new interface holds nothing: the address is added anew.
    assert_eq!(
        b.add_address(&net(ADDR, 64)).unwrap(),
        scwd::net::Added::New
    );
    assert_eq!(b.add_default_route(ip(GW)).unwrap(), scwd::net::Added::New);
}

#[test]
fn the_simulated_kernel_keeps_to_its_sources() {
    let sim = Sim::new();
    sim.borrow_mut().slaacd_address("vio0", ADDR, 64);
    let mut s = sim.borrow_mut();
    let again = wire::siocaifaddr_in6("vio0", &net(ADDR, 64)).unwrap();
    // SIOCAIFADDR_IN6 on a present address rewrites flags and lifetimes
    // (in6.c 709, 731): slaacd's AUTOCONF and finite lifetimes are gone.
    s.ioctl_as(wire::SIOCAIFADDR_IN6, &again).unwrap();
    let a = s
        .addrs("vio0")
        .into_iter()
        .find(|a| a.addr == ip(ADDR))
        .unwrap();
    assert_eq!((a.flags, a.vltime, a.pltime), (0, INFINITE, INFINITE));
    // Another prefix length for it: EINVAL (in6.c 673).
    let other = wire::siocaifaddr_in6("vio0", &net(ADDR, 127)).unwrap();
    assert_eq!(s.ioctl_as(wire::SIOCAIFADDR_IN6, &other), Err(wire::EINVAL));
    // Deleting an absent address: EADDRNOTAVAIL (in6.c 311).
    let absent = wire::siocdifaddr_in6("vio0", ip("2001:db8::9")).unwrap();
    assert_eq!(
        s.ioctl_as(wire::SIOCDIFADDR_IN6, &absent),
        Err(wire::EADDRNOTAVAIL)
    );
    // No such interface: ENXIO.
    let nowhere = wire::siocaifaddr_in6("vio9", &net(ADDR, 64)).unwrap();
    assert_eq!(
        s.ioctl_as(wire::SIOCAIFADDR_IN6, &nowhere),
        Err(wire::ENXIO)
    );
    // A static add at priority 0 becomes 8 (route.c 996–997); the same
    // gateway at the same priority again: EEXIST (rtable.c 601–613).
    let add = wire::rtm_add_default(1, ip(GW), 1, 7);
    s.write_as(7, &add).unwrap();
    assert_eq!(s.defaults(), [route(GW, 8, "scwd")]);
    assert_eq!(s.write_as(7, &add), Err(wire::EEXIST));
    // Another gateway, multipath: beside it.
    s.write_as(7, &wire::rtm_add_default(1, ip(GW2), 2, 7))
        .unwrap();
    assert_eq!(s.defaults().len(), 2);
    // A delete at the wrong priority: ESRCH; at 0 (RTP_ANY) it matches.
    let del9 = wire::rtm_delete_default_at(1, ip(GW), 9, 3, 7);
    assert_eq!(s.write_as(7, &del9), Err(wire::ESRCH));
    s.write_as(7, &wire::rtm_delete_default(1, ip(GW), 4, 7))
        .unwrap();
    assert_eq!(s.defaults(), [route(GW2, 8, "scwd")]);
    // An early refusal (goto fail): the write(2) error alone,
    // EPROTONOSUPPORT for a wrong version.
    let mut bad = wire::rtm_add_default(1, ip(GW), 5, 7);
    bad[2] = 4;
    assert_eq!(s.write_as(7, &bad), Err(43));
}

#[test]
fn a_refused_add_answers_with_its_errno_and_the_next_request_still_matches() {
    // slaacd's route via the same gateway: EEXIST, as write(2) error and
    // as an echo carrying rtm_errno (rtsock.c 872, 893). The echo is
    // skipped, not taken for the reply to the next request.
    let sim = Sim::new();
    sim.borrow_mut().slaacd_route("vio0", GW);
    let mut b = backend(&sim);
    assert_eq!(
        b.add_default_route(ip(GW)).unwrap(),
        scwd::net::Added::Existing
    );
    assert_eq!(b.own_routes(), []);
    assert_eq!(b.add_default_route(ip(GW2)).unwrap(), scwd::net::Added::New);
    assert_eq!(b.own_routes(), [(ip(GW2), 8)]);
    b.delete_default_route(ip(GW)).unwrap();
    assert_eq!(
        sim.borrow().defaults(),
        [route(GW, 8, "slaacd"), route(GW2, 8, "scwd")]
    );
}

#[test]
fn the_events_descriptor_is_readable_when_the_kernel_reported() {
    let readable = |fd| {
        let mut p = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd, on a descriptor the backend keeps open.
        unsafe { libc::poll(p.as_mut_ptr(), 1, 0) == 1 }
    };
    let sim = Sim::without_interface();
    let mut b = backend(&sim);
    assert!(!readable(b.events_fd()));
    sim.borrow_mut().attach("vio0");
    assert!(readable(b.events_fd()));
    assert!(b.take_events());
    assert!(!readable(b.events_fd()));
}

#[test]
fn tables_unreadable_at_open_are_read_before_the_first_change() {
    let sim = Sim::new();
    Applier::new(backend(&sim)).apply(&routed()).unwrap();
    // The dump fails at open and for Applier::adopt's listing: scwd
    // starts all the same (its boot signal must go out), and the first
    // apply reads the tables.
    sim.borrow_mut().fail_dump = Some((wire::ENOMEM, 2));
    let b = backend(&sim);
    assert_eq!(b.own_routes(), []);
    let mut a = Applier::adopt(b);
    let moved = plan(&[(ADDR, 64)], Some(GW2));
    a.apply(&moved).unwrap();
    assert_holds(&sim, &moved, "adopted late");
    assert_eq!(sim.borrow().ioctls.len(), 1);
}

#[test]
fn an_admins_default_route_through_another_interface_is_left_alone() {
    // The Linux lab's case: the kernel would join scwd's route and the
    // administrator's into one multipath route; Applier adds none.
    let sim = Sim::new();
    sim.borrow_mut().attach("vio1");
    sim.borrow_mut().admin_route("vio1", GW2);
    let mut a = Applier::new(backend(&sim));
    a.apply(&routed()).unwrap();
    assert_eq!(sim.borrow().defaults(), [route(GW2, 8, "-")]);
    assert_eq!(sim.borrow().globals("vio0"), [format!("{ADDR}/64")]);
    let mut b = backend(&sim);
    let listed: Vec<_> = b
        .default_routes()
        .unwrap()
        .iter()
        .map(|r| (r.gateway, r.ours, r.elsewhere))
        .collect();
    assert_eq!(listed, [(ip(GW2), false, true)]);
}

//! Applying a [`Plan`] to the kernel.
//!
//! A [`Backend`] knows how to add and delete one address or one default
//! route on the interface it was opened for, and nothing about Scaleway.
//! [`Applier`] owns the policy on top of it: all or nothing within one
//! plan, and reconciling against what scwd itself added earlier.

use std::fmt;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;

use crate::plan::{Ipv6Net, Plan};

#[cfg(target_os = "linux")]
pub mod linux;
pub mod openbsd;
pub mod wire;

/// What an add operation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The kernel did not have it; this call created it.
    New,
    /// It was already there (`EEXIST` or equivalent); nothing changed.
    Existing,
}

/// A kernel operation that failed, named the way `ifconfig` and `route`
/// would name it: `vio0: RTM_ADD default via fe80::1: Network is unreachable`.
#[derive(Debug)]
pub struct NetError {
    /// Interface the operation was for.
    pub interface: String,
    /// The call and its object, e.g. `SIOCAIFADDR_IN6 2001:db8::1/64`.
    pub operation: String,
    /// What the kernel said.
    pub source: io::Error,
}

impl NetError {
    /// Builds an error for `operation` on `interface`.
    pub fn new(interface: &str, operation: impl Into<String>, source: io::Error) -> Self {
        NetError {
            interface: interface.to_string(),
            operation: operation.into(),
            source,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = crate::strerror(&self.source);
        write!(f, "{}: {}: {}", self.interface, self.operation, why)
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// One `::/0` route of the main routing table, as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    /// Its next hop.
    pub gateway: Ipv6Addr,
    /// Whether scwd added it: label `scwd` (OpenBSD) or protocol 83
    /// (Linux). A route that is not ours is never modified or removed.
    pub ours: bool,
    /// It leaves through another interface than the backend's. scwd
    /// never removes such a route, but adds none beside it either: the
    /// kernel would make the two one multipath route.
    pub elsewhere: bool,
}

/// The kernel operations scwd needs, on one interface named when the
/// backend is opened (before any privilege is dropped).
///
/// The interface need not exist at open: the backend opens its sockets
/// and looks the interface up again in [`Backend::resolve`] whenever
/// [`Backend::take_events`] says it changed. Route flags, priority, label
/// or protocol are the backend's own constants: the plan only says which
/// gateway.
pub trait Backend {
    /// Name of the interface this backend configures.
    fn interface(&self) -> &str;
    /// Index of the interface as last resolved; `None` while it cannot be
    /// configured (absent; on Linux also when down: routes need it up).
    fn ifindex(&self) -> Option<u32>;
    /// Looks the interface up again; `Ok(true)` when it exists now and
    /// can be configured (its index may be new).
    fn resolve(&mut self) -> Result<bool, NetError>;
    /// A descriptor that becomes readable when the kernel reports an
    /// interface (or address) change: poll it, then call
    /// [`Backend::take_events`].
    fn events_fd(&self) -> RawFd;
    /// Reads what is pending on [`Backend::events_fd`] without blocking;
    /// true when the interface appeared, vanished, was recreated or came
    /// up, so the caller resolves it and applies the last plan again.
    fn take_events(&mut self) -> bool;
    /// The `::/0` routes of the main routing table: those through the
    /// interface, and those through any other (`elsewhere`).
    fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, NetError>;
    /// Adds `net` to the interface with infinite lifetimes.
    fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError>;
    /// Removes `net` from the interface; an address already gone is success.
    fn delete_address(&mut self, net: &Ipv6Net) -> Result<(), NetError>;
    /// Adds scwd's default route via `gateway` on the interface.
    fn add_default_route(&mut self, gateway: Ipv6Addr) -> Result<Added, NetError>;
    /// Removes scwd's default route via `gateway`; a route already gone is success.
    fn delete_default_route(&mut self, gateway: Ipv6Addr) -> Result<(), NetError>;
}

/// What one [`Applier::apply`] changed, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Addresses this call added.
    pub added: Vec<Ipv6Net>,
    /// Addresses scwd had added earlier and the plan no longer holds.
    pub removed: Vec<Ipv6Net>,
    /// The default route this call added.
    pub route_added: Option<Ipv6Addr>,
    /// scwd's earlier default routes, removed because the gateway changed
    /// (also those an earlier scwd left behind).
    pub route_removed: Vec<Ipv6Addr>,
}

impl Changes {
    /// Whether the kernel was left as it was.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// What to do about the plan's default route, decided from the kernel's
/// list before anything is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteStep {
    /// The plan has no gateway.
    Nothing,
    /// scwd's route via the plan's gateway is there.
    Ours,
    /// No default route on the interface: add scwd's.
    Add(Ipv6Addr),
    /// A default route scwd did not add is there, via the plan's gateway
    /// or (`same` false) another one, maybe through another interface:
    /// it is left exactly as it is and scwd adds none beside it.
    Foreign {
        gateway: Ipv6Addr,
        same: bool,
        elsewhere: bool,
    },
}

/// The default-route policy: look before adding; never modify a route
/// that is not scwd's, and never join one as a multipath sibling (that
/// would move part of its flows to the other gateway).
fn route_step(routes: &[DefaultRoute], want: Option<Ipv6Addr>) -> RouteStep {
    let Some(gw) = want else {
        return RouteStep::Nothing;
    };
    let here = |r: &&DefaultRoute| !r.elsewhere;
    if routes
        .iter()
        .filter(here)
        .any(|r| r.ours && r.gateway == gw)
    {
        return RouteStep::Ours;
    }
    if routes
        .iter()
        .filter(here)
        .any(|r| !r.ours && r.gateway == gw)
    {
        return RouteStep::Foreign {
            gateway: gw,
            same: true,
            elsewhere: false,
        };
    }
    // Through another interface, even scwd's (from a configuration that
    // named another interface) is not this backend's to remove.
    match routes.iter().find(|r| !r.ours || r.elsewhere) {
        Some(r) => RouteStep::Foreign {
            gateway: r.gateway,
            same: false,
            elsewhere: r.elsewhere,
        },
        None => RouteStep::Add(gw),
    }
}

/// Applies plans through a [`Backend`], remembering what scwd itself
/// added so that a later plan removes only that, never anything else.
///
/// Routes carry scwd's mark in the kernel, so they are known from the
/// kernel's list at every apply, also after a restart. Addresses carry
/// none: an address scwd finds already present is never taken for its
/// own, whoever added it (it may be the administrator's), and is left
/// in place when the metadata drops it, with one log line.
#[derive(Debug)]
pub struct Applier<B> {
    backend: B,
    /// Addresses scwd added and has not removed.
    owned: Vec<Ipv6Net>,
    /// Addresses a plan held that were present already: not scwd's.
    found: Vec<Ipv6Net>,
    /// The last foreign-route situation logged, so it is logged once.
    noted: Option<RouteStep>,
    /// scwd's default route as the last applied plan left it.
    our_route: Option<Ipv6Addr>,
}

impl<B: Backend> Applier<B> {
    /// Wraps an open backend; scwd owns nothing yet.
    pub fn new(backend: B) -> Self {
        Applier {
            backend,
            owned: Vec::new(),
            found: Vec::new(),
            noted: None,
            our_route: None,
        }
    }

    /// Wraps a backend just opened, taking over the default routes an
    /// earlier scwd left on the interface (protocol 83, label `scwd`):
    /// the first plan keeps the one via its gateway and removes the rest.
    /// Call before pledge: listing the routing table may need it.
    pub fn adopt(mut backend: B) -> Self {
        if backend.ifindex().is_some() {
            match backend.default_routes() {
                Ok(routes) => {
                    for r in routes.iter().filter(|r| r.ours && !r.elsewhere) {
                        log::info!(
                            "{}: default route via {} is scwd's, from an earlier run",
                            backend.interface(),
                            r.gateway
                        );
                    }
                }
                Err(e) => log::warn!("{e}"),
            }
        }
        Applier::new(backend)
    }

    /// The backend, for inspection.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Whether the interface exists and can be configured now.
    pub fn present(&self) -> bool {
        self.backend.ifindex().is_some()
    }

    /// See [`Backend::events_fd`].
    pub fn events_fd(&self) -> RawFd {
        self.backend.events_fd()
    }

    /// See [`Backend::take_events`].
    pub fn take_events(&mut self) -> bool {
        self.backend.take_events()
    }

    /// Looks the interface up again after [`Applier::take_events`]; true
    /// when it can be configured. An interface that vanished took scwd's
    /// addresses with it: a new one (or the same back) owns nothing yet.
    pub fn relink(&mut self) -> Result<bool, NetError> {
        let before = self.backend.ifindex();
        let present = self.backend.resolve();
        if !matches!(present, Ok(true)) || self.backend.ifindex() != before {
            self.owned.clear();
            self.found.clear();
            self.noted = None;
            self.our_route = None;
        }
        present
    }

    /// What scwd owns now, for `scwctl show`: the addresses it added and
    /// has not removed, and its default route.
    pub fn owned(&self) -> (&[Ipv6Net], Option<Ipv6Addr>) {
        (&self.owned, self.our_route)
    }

    /// Makes the kernel hold `plan`, all or nothing: if an address or the
    /// route cannot be added, the addresses this call added are removed
    /// again and the error is returned. Only then is what scwd added for
    /// an earlier plan and this one no longer holds taken away.
    pub fn apply(&mut self, plan: &Plan) -> Result<Changes, NetError> {
        // Look before adding: nothing is changed if the list fails.
        let routes = self.backend.default_routes()?;
        let step = route_step(&routes, plan.default_gateway);
        let mut changes = Changes::default();
        let mut found = Vec::new();
        // scwd's own addresses that come back with another prefix length:
        // both kernels refuse the same address twice, so the old one goes
        // first, and comes back if this call gives up.
        let mut replaced = Vec::new();
        for net in &plan.addresses {
            let stale = |o: &Ipv6Net| o.addr == net.addr && o.prefixlen != net.prefixlen;
            if let Some(pos) = self.owned.iter().position(stale) {
                let old = self.owned.remove(pos);
                if let Err(e) = self.backend.delete_address(&old) {
                    self.owned.push(old);
                    return Err(self.roll_back(&changes.added, &replaced, e));
                }
                replaced.push(old);
            }
            match self.backend.add_address(net) {
                Ok(Added::New) => changes.added.push(*net),
                Ok(Added::Existing) if !self.owned.contains(net) => found.push(*net),
                Ok(Added::Existing) => {}
                Err(e) => return Err(self.roll_back(&changes.added, &replaced, e)),
            }
        }
        if let RouteStep::Add(gw) = step {
            match self.backend.add_default_route(gw) {
                Ok(Added::New) => changes.route_added = Some(gw),
                Ok(Added::Existing) => {}
                Err(e) => return Err(self.roll_back(&changes.added, &replaced, e)),
            }
        }
        changes.removed.extend(&replaced);
        self.note_route(step, plan.default_gateway);
        self.our_route = match step {
            RouteStep::Ours => plan.default_gateway,
            RouteStep::Add(gw) => Some(gw),
            RouteStep::Nothing | RouteStep::Foreign { .. } => None,
        };

        // The new configuration is in place; now retire the old one.
        for r in &routes {
            if r.ours && !r.elsewhere && plan.default_gateway != Some(r.gateway) {
                match self.backend.delete_default_route(r.gateway) {
                    Ok(()) => changes.route_removed.push(r.gateway),
                    Err(e) => log::warn!("{e}"),
                }
            }
        }
        let mut kept = Vec::new();
        for net in std::mem::take(&mut self.owned) {
            if plan.addresses.contains(&net) {
                kept.push(net);
            } else {
                match self.backend.delete_address(&net) {
                    Ok(()) => changes.removed.push(net),
                    Err(e) => {
                        log::warn!("{e}");
                        kept.push(net);
                    }
                }
            }
        }
        for net in &changes.added {
            if !kept.contains(net) {
                kept.push(*net);
            }
        }
        self.owned = kept;
        for net in std::mem::take(&mut self.found) {
            if !plan.addresses.contains(&net) {
                log::info!(
                    "{}: {net} is no longer in the metadata; left in place, scwd did not add it",
                    self.backend.interface()
                );
            } else if !found.contains(&net) {
                found.push(net);
            }
        }
        self.found = found;
        Ok(changes)
    }

    /// One log line when a route scwd does not own decides what it does,
    /// and not again on every refresh while nothing changes.
    fn note_route(&mut self, step: RouteStep, want: Option<Ipv6Addr>) {
        if self.noted == Some(step) {
            return;
        }
        self.noted = Some(step);
        let iface = self.backend.interface();
        let RouteStep::Foreign {
            gateway,
            same,
            elsewhere,
        } = step
        else {
            return;
        };
        if same {
            log::info!(
                "{iface}: default route via {gateway} exists and is not scwd's; left as it is"
            );
        } else if let Some(gw) = want {
            let through = if elsewhere {
                " through another interface"
            } else {
                ""
            };
            log::warn!(
                "{iface}: default route via {gateway}{through} is not scwd's; left as it is, \
                 no default route via {gw} added"
            );
        }
    }

    /// Removes what this call added and puts back what it replaced, then
    /// hands back the error that made it give up. A failed step is only
    /// logged: there is nothing more to do.
    fn roll_back(&mut self, added: &[Ipv6Net], replaced: &[Ipv6Net], err: NetError) -> NetError {
        for net in added.iter().rev() {
            if let Err(e) = self.backend.delete_address(net) {
                log::warn!("rollback: {e}");
            }
        }
        for net in replaced {
            match self.backend.add_address(net) {
                Ok(_) => self.owned.push(*net),
                Err(e) => log::warn!("rollback: {e}"),
            }
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel table in memory: what the policy in Applier is tested
    /// against here; the real kernels are tested in tests/.
    #[derive(Default)]
    struct Table {
        addrs: Vec<Ipv6Net>,
        routes: Vec<DefaultRoute>,
        fail_route: bool,
        gone: bool,
        index: u32,
        calls: Vec<String>,
    }

    impl Table {
        fn gateways(&self) -> Vec<(Ipv6Addr, bool)> {
            self.routes.iter().map(|r| (r.gateway, r.ours)).collect()
        }
    }

    impl Backend for Table {
        fn interface(&self) -> &str {
            "vio0"
        }
        fn ifindex(&self) -> Option<u32> {
            (!self.gone).then_some(self.index)
        }
        fn resolve(&mut self) -> Result<bool, NetError> {
            Ok(!self.gone)
        }
        fn events_fd(&self) -> RawFd {
            -1
        }
        fn take_events(&mut self) -> bool {
            false
        }
        fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, NetError> {
            self.calls.push("list routes".into());
            Ok(self.routes.clone())
        }
        fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError> {
            self.calls.push(format!("add {net}"));
            if self.addrs.contains(net) {
                return Ok(Added::Existing);
            }
            if self.addrs.iter().any(|a| a.addr == net.addr) {
                let e = io::Error::from_raw_os_error(libc::EINVAL);
                return Err(NetError::new("vio0", format!("SIOCAIFADDR_IN6 {net}"), e));
            }
            self.addrs.push(*net);
            Ok(Added::New)
        }
        fn delete_address(&mut self, net: &Ipv6Net) -> Result<(), NetError> {
            self.calls.push(format!("delete {net}"));
            self.addrs.retain(|n| n != net);
            Ok(())
        }
        fn add_default_route(&mut self, gw: Ipv6Addr) -> Result<Added, NetError> {
            self.calls.push(format!("route add {gw}"));
            if self.fail_route {
                let e = io::Error::from_raw_os_error(libc::ENETUNREACH);
                return Err(NetError::new(
                    "vio0",
                    format!("RTM_ADD default via {gw}"),
                    e,
                ));
            }
            // Like Linux: a route via the same gateway is "there",
            // whoever added it (and the real kernel would modify it).
            if self.routes.iter().any(|r| r.gateway == gw) {
                return Ok(Added::Existing);
            }
            self.routes.push(DefaultRoute {
                gateway: gw,
                ours: true,
                elsewhere: false,
            });
            Ok(Added::New)
        }
        fn delete_default_route(&mut self, gw: Ipv6Addr) -> Result<(), NetError> {
            self.calls.push(format!("route delete {gw}"));
            self.routes.retain(|r| !(r.ours && r.gateway == gw));
            Ok(())
        }
    }

    fn net(s: &str) -> Ipv6Net {
        let (a, p) = s.split_once('/').unwrap();
        Ipv6Net {
            addr: a.parse().unwrap(),
            prefixlen: p.parse().unwrap(),
        }
    }

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn route(gw: &str, ours: bool) -> DefaultRoute {
        DefaultRoute {
            gateway: ip(gw),
            ours,
            elsewhere: false,
        }
    }

    fn plan(addrs: &[&str], gw: Option<&str>) -> Plan {
        Plan {
            interface: "vio0".into(),
            addresses: addrs.iter().map(|a| net(a)).collect(),
            default_gateway: gw.map(ip),
        }
    }

    #[test]
    fn a_second_apply_changes_nothing() {
        let mut a = Applier::new(Table::default());
        let p = plan(&["2001:db8::1/64"], Some("fe80::1"));
        let c = a.apply(&p).unwrap();
        assert_eq!(c.added, vec![net("2001:db8::1/64")]);
        assert_eq!(c.route_added, Some(ip("fe80::1")));
        assert!(a.apply(&p).unwrap().is_empty());
        assert_eq!(a.backend().addrs, vec![net("2001:db8::1/64")]);
        assert_eq!(a.backend().gateways(), vec![(ip("fe80::1"), true)]);
        let adds = a
            .backend()
            .calls
            .iter()
            .filter(|c| c.starts_with("route add"));
        assert_eq!(adds.count(), 1, "scwd's route is seen, not added again");
    }

    #[test]
    fn a_failed_route_removes_the_addresses_this_call_added_only() {
        let mut t = Table::default();
        t.addrs.push(net("2001:db8::1/64")); // the administrator's
        t.fail_route = true;
        let mut a = Applier::new(t);
        let err = a
            .apply(&plan(
                &["2001:db8::1/64", "2001:db8::2/64"],
                Some("fe80::1"),
            ))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "vio0: RTM_ADD default via fe80::1: Network is unreachable"
        );
        assert_eq!(a.backend().addrs, vec![net("2001:db8::1/64")]);
        assert_eq!(a.backend().calls.last().unwrap(), "delete 2001:db8::2/64");
    }

    #[test]
    fn reconcile_removes_only_what_scwd_added() {
        let mut t = Table::default();
        t.addrs.push(net("2001:db8:ff::1/64")); // not scwd's
        let mut a = Applier::new(t);
        a.apply(&plan(
            &["2001:db8::1/64", "2001:db8:ff::1/64"],
            Some("fe80::1"),
        ))
        .unwrap();
        let c = a
            .apply(&plan(&["2001:db8::2/64"], Some("fe80::2")))
            .unwrap();
        assert_eq!(c.added, vec![net("2001:db8::2/64")]);
        assert_eq!(c.removed, vec![net("2001:db8::1/64")]);
        assert_eq!(c.route_added, Some(ip("fe80::2")));
        assert_eq!(c.route_removed, vec![ip("fe80::1")]);
        let t = a.backend();
        assert_eq!(
            t.addrs,
            vec![net("2001:db8:ff::1/64"), net("2001:db8::2/64")]
        );
        assert_eq!(t.gateways(), vec![(ip("fe80::2"), true)]);

        // No IPv6 any more: scwd's own go, the rest stays.
        let c = a.apply(&plan(&[], None)).unwrap();
        assert_eq!(c.removed, vec![net("2001:db8::2/64")]);
        assert_eq!(c.route_removed, vec![ip("fe80::2")]);
        assert_eq!(a.backend().addrs, vec![net("2001:db8:ff::1/64")]);
        assert!(a.backend().routes.is_empty());
    }

    #[test]
    fn a_new_prefix_length_replaces_scwds_own_address() {
        let mut a = Applier::new(Table::default());
        a.apply(&plan(&["2001:db8::1/64"], Some("fe80::1")))
            .unwrap();
        let c = a
            .apply(&plan(&["2001:db8::1/127"], Some("fe80::1")))
            .unwrap();
        assert_eq!(c.added, vec![net("2001:db8::1/127")]);
        assert_eq!(c.removed, vec![net("2001:db8::1/64")]);
        assert_eq!(a.backend().addrs, vec![net("2001:db8::1/127")]);

        // Given up: the /127 comes back.
        a.backend.fail_route = true;
        a.apply(&plan(&["2001:db8::1/64"], Some("fe80::2")))
            .unwrap_err();
        assert_eq!(a.backend().addrs, vec![net("2001:db8::1/127")]);
        a.backend.fail_route = false;
        let c = a.apply(&plan(&[], None)).unwrap();
        assert_eq!(c.removed, vec![net("2001:db8::1/127")]);
    }

    #[test]
    fn a_failed_refresh_leaves_the_previous_configuration() {
        let mut a = Applier::new(Table::default());
        a.apply(&plan(&["2001:db8::1/64"], Some("fe80::1")))
            .unwrap();
        a.backend.fail_route = true;
        a.apply(&plan(&["2001:db8::2/64"], Some("fe80::2")))
            .unwrap_err();
        assert_eq!(a.backend().addrs, vec![net("2001:db8::1/64")]);
        assert_eq!(a.backend().gateways(), vec![(ip("fe80::1"), true)]);
    }

    /// A new scwd over the kernel an earlier one configured: its route
    /// is scwd's and goes when the gateway changes; the address, which
    /// carries no mark, is kept while the plan holds it and is never
    /// taken for scwd's own.
    #[test]
    fn after_a_restart_scwds_route_is_replaced_and_the_address_kept() {
        let mut t = Table::default();
        t.addrs.push(net("2001:db8::1/64"));
        t.routes.push(route("fe80::1", true));
        let mut a = Applier::adopt(t);
        let c = a
            .apply(&plan(&["2001:db8::1/64"], Some("fe80::2")))
            .unwrap();
        assert_eq!(c.route_added, Some(ip("fe80::2")));
        assert_eq!(c.route_removed, vec![ip("fe80::1")]);
        assert!(c.added.is_empty() && c.removed.is_empty());
        assert_eq!(a.backend().gateways(), vec![(ip("fe80::2"), true)]);

        // Renumbered: the address found present is not scwd's to remove.
        let c = a
            .apply(&plan(&["2001:db8::2/64"], Some("fe80::2")))
            .unwrap();
        assert!(c.removed.is_empty());
        assert_eq!(
            a.backend().addrs,
            vec![net("2001:db8::1/64"), net("2001:db8::2/64")]
        );
    }

    #[test]
    fn a_foreign_route_via_the_same_gateway_is_not_touched() {
        let mut t = Table::default();
        t.routes.push(route("fe80::1", false)); // a router advertisement's
        let mut a = Applier::new(t);
        let p = plan(&["2001:db8::1/64"], Some("fe80::1"));
        let c = a.apply(&p).unwrap();
        assert_eq!(c.route_added, None);
        a.apply(&p).unwrap();
        assert_eq!(a.backend().gateways(), vec![(ip("fe80::1"), false)]);
        assert!(!a.backend().calls.iter().any(|c| c.starts_with("route ")));
    }

    #[test]
    fn a_foreign_route_via_another_gateway_is_left_alone_and_not_joined() {
        let mut t = Table::default();
        t.routes.push(route("fe80::ff", false)); // the administrator's
        t.routes.push(route("fe80::1", true)); // scwd's, from before
        let mut a = Applier::new(t);
        let c = a
            .apply(&plan(&["2001:db8::1/64"], Some("fe80::2")))
            .unwrap();
        assert_eq!(c.added, vec![net("2001:db8::1/64")]);
        assert_eq!(c.route_added, None);
        assert_eq!(c.route_removed, vec![ip("fe80::1")]);
        assert_eq!(a.backend().gateways(), vec![(ip("fe80::ff"), false)]);

        // Once the administrator's route is gone, a refresh adds scwd's.
        a.backend.routes.clear();
        let c = a
            .apply(&plan(&["2001:db8::1/64"], Some("fe80::2")))
            .unwrap();
        assert_eq!(c.route_added, Some(ip("fe80::2")));
    }

    #[test]
    fn a_default_route_through_another_interface_is_not_joined() {
        let mut t = Table::default();
        t.routes.push(DefaultRoute {
            elsewhere: true,
            ..route("fe80::ff", false)
        });
        t.routes.push(DefaultRoute {
            elsewhere: true,
            ..route("fe80::1", true)
        });
        let mut a = Applier::new(t);
        let c = a
            .apply(&plan(&["2001:db8::1/64"], Some("fe80::1")))
            .unwrap();
        assert_eq!(c.route_added, None);
        assert!(c.route_removed.is_empty());
        assert_eq!(a.backend().routes.len(), 2);
        assert!(!a.backend().calls.iter().any(|c| c.starts_with("route ")));
    }

    #[test]
    fn a_recreated_interface_is_configured_again() {
        let mut a = Applier::new(Table::default());
        let p = plan(&["2001:db8::1/64"], Some("fe80::1"));
        a.apply(&p).unwrap();
        // Deleted: the kernel took the address and the route with it.
        a.backend.gone = true;
        a.backend.addrs.clear();
        a.backend.routes.clear();
        assert!(!a.relink().unwrap());
        assert!(!a.present());
        // Back, with a new index.
        a.backend.gone = false;
        a.backend.index = 7;
        assert!(a.relink().unwrap());
        let c = a.apply(&p).unwrap();
        assert_eq!(c.added, vec![net("2001:db8::1/64")]);
        assert_eq!(c.route_added, Some(ip("fe80::1")));
        assert!(c.removed.is_empty() && c.route_removed.is_empty());
        // And it is scwd's again: a renumbering removes it.
        let c = a
            .apply(&plan(&["2001:db8::2/64"], Some("fe80::1")))
            .unwrap();
        assert_eq!(c.removed, vec![net("2001:db8::1/64")]);
    }

    #[test]
    fn a_failed_route_list_changes_nothing() {
        struct NoList(Table);
        impl Backend for NoList {
            fn interface(&self) -> &str {
                "vio0"
            }
            fn ifindex(&self) -> Option<u32> {
                Some(1)
            }
            fn resolve(&mut self) -> Result<bool, NetError> {
                Ok(true)
            }
            fn events_fd(&self) -> RawFd {
                -1
            }
            fn take_events(&mut self) -> bool {
                false
            }
            fn default_routes(&mut self) -> Result<Vec<DefaultRoute>, NetError> {
                let e = io::Error::from_raw_os_error(libc::ENOBUFS);
                Err(NetError::new("vio0", "RTM_GETROUTE", e))
            }
            fn add_address(&mut self, net: &Ipv6Net) -> Result<Added, NetError> {
                self.0.add_address(net)
            }
            fn delete_address(&mut self, net: &Ipv6Net) -> Result<(), NetError> {
                self.0.delete_address(net)
            }
            fn add_default_route(&mut self, gw: Ipv6Addr) -> Result<Added, NetError> {
                self.0.add_default_route(gw)
            }
            fn delete_default_route(&mut self, gw: Ipv6Addr) -> Result<(), NetError> {
                self.0.delete_default_route(gw)
            }
        }
        let mut a = Applier::new(NoList(Table::default()));
        a.apply(&plan(&["2001:db8::1/64"], Some("fe80::1")))
            .unwrap_err();
        assert!(a.backend().0.calls.is_empty());
    }
}

//! Applying a [`Plan`] to the kernel.
//!
//! A [`Backend`] knows how to add and delete one address or one default
//! route on the interface it was opened for, and nothing about Scaleway.
//! [`Applier`] owns the policy on top of it: all or nothing within one
//! plan, and reconciling against what scwd itself added earlier.

use std::fmt;
use std::io;
use std::net::Ipv6Addr;

use crate::plan::{Ipv6Net, Plan};

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "openbsd")]
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

/// The kernel operations scwd needs, on one interface fixed when the
/// backend is opened (before any privilege is dropped).
///
/// Route flags, priority, label or protocol are the backend's own
/// constants: the plan only says which gateway.
pub trait Backend {
    /// Name of the interface this backend configures.
    fn interface(&self) -> &str;
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
    /// scwd's earlier default route, removed because the gateway changed.
    pub route_removed: Option<Ipv6Addr>,
}

impl Changes {
    /// Whether the kernel was left as it was.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// Applies plans through a [`Backend`], remembering what scwd itself
/// added so that a later plan removes only that, never anything else.
#[derive(Debug)]
pub struct Applier<B> {
    backend: B,
    /// Addresses scwd added and has not removed.
    owned: Vec<Ipv6Net>,
    /// The default route scwd added and has not removed.
    owned_route: Option<Ipv6Addr>,
}

impl<B: Backend> Applier<B> {
    /// Wraps an open backend; scwd owns nothing yet.
    pub fn new(backend: B) -> Self {
        Applier {
            backend,
            owned: Vec::new(),
            owned_route: None,
        }
    }

    /// The backend, for inspection.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Makes the kernel hold `plan`, all or nothing: if an address or the
    /// route cannot be added, the addresses this call added are removed
    /// again and the error is returned. Only then is what scwd added for
    /// an earlier plan and this one no longer holds taken away.
    pub fn apply(&mut self, plan: &Plan) -> Result<Changes, NetError> {
        let mut changes = Changes::default();
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
                Ok(Added::Existing) => {}
                Err(e) => return Err(self.roll_back(&changes.added, &replaced, e)),
            }
        }
        if let Some(gw) = plan.default_gateway {
            match self.backend.add_default_route(gw) {
                Ok(Added::New) => changes.route_added = Some(gw),
                Ok(Added::Existing) => {}
                Err(e) => return Err(self.roll_back(&changes.added, &replaced, e)),
            }
        }
        changes.removed.extend(&replaced);

        // The new configuration is in place; now retire the old one.
        if let Some(old) = self.owned_route {
            if plan.default_gateway != Some(old) {
                match self.backend.delete_default_route(old) {
                    Ok(()) => changes.route_removed = Some(old),
                    Err(e) => log::warn!("{e}"),
                }
            }
        }
        if changes.route_added.is_some() || changes.route_removed.is_some() {
            self.owned_route = changes.route_added;
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
        kept.extend(&changes.added);
        self.owned = kept;
        Ok(changes)
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
        routes: Vec<Ipv6Addr>,
        fail_route: bool,
        calls: Vec<String>,
    }

    impl Backend for Table {
        fn interface(&self) -> &str {
            "vio0"
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
            if self.routes.contains(&gw) {
                return Ok(Added::Existing);
            }
            self.routes.push(gw);
            Ok(Added::New)
        }
        fn delete_default_route(&mut self, gw: Ipv6Addr) -> Result<(), NetError> {
            self.calls.push(format!("route delete {gw}"));
            self.routes.retain(|r| *r != gw);
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

    fn plan(addrs: &[&str], gw: Option<&str>) -> Plan {
        Plan {
            interface: "vio0".into(),
            addresses: addrs.iter().map(|a| net(a)).collect(),
            default_gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn a_second_apply_changes_nothing() {
        let mut a = Applier::new(Table::default());
        let p = plan(&["2001:db8::1/64"], Some("fe80::1"));
        let c = a.apply(&p).unwrap();
        assert_eq!(c.added, vec![net("2001:db8::1/64")]);
        assert_eq!(c.route_added, Some("fe80::1".parse().unwrap()));
        assert!(a.apply(&p).unwrap().is_empty());
        assert_eq!(a.backend().addrs, vec![net("2001:db8::1/64")]);
        assert_eq!(a.backend().routes.len(), 1);
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
        t.routes.push("fe80::ff".parse().unwrap()); // not scwd's
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
        assert_eq!(c.route_removed, Some("fe80::1".parse().unwrap()));
        let t = a.backend();
        assert_eq!(
            t.addrs,
            vec![net("2001:db8:ff::1/64"), net("2001:db8::2/64")]
        );
        assert_eq!(
            t.routes,
            vec![
                "fe80::ff".parse::<Ipv6Addr>().unwrap(),
                "fe80::2".parse().unwrap()
            ]
        );

        // No IPv6 any more: scwd's own go, the rest stays.
        let c = a.apply(&plan(&[], None)).unwrap();
        assert_eq!(c.removed, vec![net("2001:db8::2/64")]);
        assert_eq!(a.backend().addrs, vec![net("2001:db8:ff::1/64")]);
        assert_eq!(
            a.backend().routes,
            vec!["fe80::ff".parse::<Ipv6Addr>().unwrap()]
        );
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
        assert_eq!(
            a.backend().routes,
            vec!["fe80::1".parse::<Ipv6Addr>().unwrap()]
        );
    }
}

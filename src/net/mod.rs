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
        write!(f, "{}: {}: {}", self.interface, self.operation, self.source)
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

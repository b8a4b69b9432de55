//! The plan: what scwd will configure, validated, and nothing else.

use std::fmt;
use std::net::Ipv6Addr;

/// Most addresses one plan may hold; a Scaleway instance has a handful.
pub const MAX_ADDRESSES: usize = 16;

/// An IPv6 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    /// The interface address.
    pub addr: Ipv6Addr,
    /// Prefix length, 1..=128.
    pub prefixlen: u8,
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefixlen)
    }
}

/// Everything scwd will configure on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Interface name, e.g. `vio0`.
    pub interface: String,
    /// Addresses to configure, in metadata order, without duplicates.
    pub addresses: Vec<Ipv6Net>,
    /// The IPv6 default gateway; may be link-local.
    pub default_gateway: Option<Ipv6Addr>,
}

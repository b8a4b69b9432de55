//! The plan: what scwd will configure, validated, and nothing else.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;

use serde_json::Value;

use crate::metadata::{IpEntry, IpFields, Metadata};

/// Most addresses one plan may hold; a Scaleway instance has a handful.
pub const MAX_ADDRESSES: usize = 16;

/// Most notes kept from one document; the rest are counted.
pub const MAX_NOTES: usize = 8;

/// Shortest prefix an instance address may have. Scaleway hands out /64
/// (routed IPv6) and /127 (the legacy object); a /64 is also the shortest
/// prefix IPv6 puts on one link (RFC 4291 §2.5.1, RFC 7421). A shorter
/// one would declare other subnets, up to half the Internet for a /1,
/// on-link on vio0: no address the service means can need it.
pub const MIN_PREFIX: u8 = 64;

/// The prefix lengths an instance address may have.
pub const PREFIX_LENGTHS: std::ops::RangeInclusive<u8> = MIN_PREFIX..=128;

/// An IPv6 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    /// The interface address.
    pub addr: Ipv6Addr,
    /// Prefix length, within [`PREFIX_LENGTHS`].
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

/// Why metadata could not be turned into a plan. `source` names the entry,
/// e.g. `public_ips[2]` or `ipv6`; values from the service are quoted and
/// escaped so a hostile one cannot forge log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// An IPv6 entry that is not a JSON object.
    NotAnObject {
        /// Which entry.
        source: String,
    },
    /// A field scwd needs is absent or null.
    Missing {
        /// Which entry.
        source: String,
        /// Which field.
        field: &'static str,
    },
    /// `address` is not an IPv6 address.
    BadAddress {
        /// Which entry.
        source: String,
        /// The value, escaped.
        value: String,
    },
    /// `address` is an IPv6 address but not a global unicast one.
    NotGlobal {
        /// Which entry.
        source: String,
        /// The address.
        addr: Ipv6Addr,
        /// What it is instead, e.g. `link-local`.
        kind: &'static str,
    },
    /// `netmask` is not a prefix length within [`PREFIX_LENGTHS`], in
    /// canonical decimal.
    BadPrefix {
        /// Which entry.
        source: String,
        /// The value, escaped.
        value: String,
    },
    /// `gateway` is not an IPv6 address.
    BadGateway {
        /// Which entry.
        source: String,
        /// The value, escaped.
        value: String,
    },
    /// `gateway` is unspecified, multicast, loopback or IPv4-mapped:
    /// nothing a neighbour on vio0 can be.
    GatewayNotUnicast {
        /// Which entry.
        source: String,
        /// The gateway.
        gateway: Ipv6Addr,
        /// What it is instead, e.g. `multicast`.
        kind: &'static str,
    },
    /// `gateway` is the address itself.
    GatewayIsAddress {
        /// Which entry.
        source: String,
        /// The gateway.
        gateway: Ipv6Addr,
    },
    /// A global `gateway` outside the address's prefix: not on-link.
    GatewayOffLink {
        /// Which entry.
        source: String,
        /// The gateway.
        gateway: Ipv6Addr,
        /// The address and prefix it should be in.
        net: Ipv6Net,
    },
    /// More distinct addresses than [`MAX_ADDRESSES`].
    TooManyAddresses(usize),
    /// The interface name in a plan is not a valid one.
    BadInterface(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotAnObject { source } => write!(f, "{source}: not an object"),
            PlanError::Missing { source, field } => write!(f, "{source}: no {field}"),
            PlanError::BadAddress { source, value } => {
                write!(f, "{source}: address {value}: not an IPv6 address")
            }
            PlanError::NotGlobal { source, addr, kind } => {
                write!(
                    f,
                    "{source}: address {addr}: {kind}, not a global unicast address"
                )
            }
            PlanError::BadPrefix { source, value } => {
                write!(
                    f,
                    "{source}: netmask {value}: not a prefix length {} to {}",
                    PREFIX_LENGTHS.start(),
                    PREFIX_LENGTHS.end()
                )
            }
            PlanError::BadGateway { source, value } => {
                write!(f, "{source}: gateway {value}: not an IPv6 address")
            }
            PlanError::GatewayNotUnicast {
                source,
                gateway,
                kind,
            } => {
                write!(
                    f,
                    "{source}: gateway {gateway}: {kind}, not a unicast address"
                )
            }
            PlanError::GatewayIsAddress { source, gateway } => {
                write!(f, "{source}: gateway {gateway}: is the address itself")
            }
            PlanError::GatewayOffLink {
                source,
                gateway,
                net,
            } => {
                write!(
                    f,
                    "{source}: gateway {gateway}: neither link-local nor inside {net}"
                )
            }
            PlanError::TooManyAddresses(n) => {
                write!(
                    f,
                    "{n} IPv6 addresses, more than the {MAX_ADDRESSES} scwd configures"
                )
            }
            PlanError::BadInterface(name) => write!(f, "invalid interface name {name:?}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// A plan and the remarks made while building it (a skipped entry, a
/// different gateway on a later entry, an address listed twice), for
/// the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The validated plan.
    pub plan: Plan,
    /// One line each, lower case, no trailing period.
    pub notes: Vec<String>,
    /// How many entries were skipped as not IPv6 (IPv4 entries of
    /// `public_ips` excepted), so that "no IPv6 in metadata" is only
    /// said when it is true.
    pub skipped: usize,
}

/// Notes, at most [`MAX_NOTES`] of them formatted: a hostile document
/// may earn tens of thousands.
#[derive(Default)]
struct Notes {
    lines: Vec<String>,
    more: usize,
}

impl Notes {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.lines.len() < MAX_NOTES {
            self.lines.push(line());
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.lines
                .push(format!("and {} more such entries", self.more));
        }
        self.lines
    }
}

/// Why an entry whose family is not `inet6` is skipped, for its note.
fn skipped_family(source: &str, family: Option<&Value>) -> String {
    match family.filter(|v| !v.is_null()) {
        None => format!("{source}: no family, entry skipped"),
        Some(v) => format!("{source}: family {}: not inet6, entry skipped", quote(v)),
    }
}

/// Turns metadata into a plan for `interface`. Pure: no I/O, no logging.
///
/// Sources, in this order: `public_ips` entries of family `inet6`, then
/// `public_ips_v6`, then the legacy `ipv6` object. One bad IPv6 entry
/// refuses the whole plan, so the machine is never half-configured.
/// An entry that is not used is noted as skipped, except the IPv4
/// entries (`"family": "inet"`) of `public_ips`, which are not scwd's.
pub fn from_metadata(meta: &Metadata, interface: &str) -> Result<Built, PlanError> {
    if !valid_interface(interface) {
        return Err(PlanError::BadInterface(interface.to_string()));
    }
    let mut notes = Notes::default();
    let mut skipped = 0;
    let mut entries: Vec<(String, &IpFields)> = Vec::new();
    for (i, e) in meta.public_ips.iter().flatten().enumerate() {
        let source = || format!("public_ips[{i}]");
        match e {
            IpEntry::Object(f) => match f.family.as_ref().and_then(Value::as_str) {
                Some("inet6") => entries.push((source(), f)),
                // Entries of other families are not ours to judge.
                Some("inet") => {}
                _ => {
                    skipped += 1;
                    notes.push(|| skipped_family(&source(), f.family.as_ref()));
                }
            },
            IpEntry::NotObject => {
                skipped += 1;
                notes.push(|| format!("{}: not an object, entry skipped", source()));
            }
        }
    }
    for (i, e) in meta.public_ips_v6.iter().flatten().enumerate() {
        let source = format!("public_ips_v6[{i}]");
        match e {
            IpEntry::Object(f) => match f.family.as_ref().filter(|v| !v.is_null()) {
                None => entries.push((source, f)),
                Some(v) if v.as_str() == Some("inet6") => entries.push((source, f)),
                Some(v) => {
                    skipped += 1;
                    notes.push(|| skipped_family(&source, Some(v)));
                }
            },
            IpEntry::NotObject => return Err(PlanError::NotAnObject { source }),
        }
    }
    match &meta.ipv6 {
        Some(IpEntry::Object(f)) => entries.push(("ipv6".to_string(), f)),
        Some(IpEntry::NotObject) => {
            return Err(PlanError::NotAnObject {
                source: "ipv6".to_string(),
            });
        }
        None => {}
    }

    let mut plan = Plan {
        interface: interface.to_string(),
        addresses: Vec::new(),
        default_gateway: None,
    };
    let mut gateway_source = "";
    // Address to the prefix length it was first listed with: a hostile
    // document may list tens of thousands.
    let mut seen: HashMap<Ipv6Addr, u8> = HashMap::new();
    for (source, fields) in &entries {
        let (net, gateway) = read_entry(source, fields)?;
        match seen.get(&net.addr) {
            Some(&first) if first != net.prefixlen => notes.push(|| {
                format!(
                    "{source}: {} listed again as /{}, keeping /{first}",
                    net.addr, net.prefixlen
                )
            }),
            Some(_) => {}
            None => {
                seen.insert(net.addr, net.prefixlen);
                plan.addresses.push(net);
            }
        }
        match (plan.default_gateway, gateway) {
            (None, Some(gw)) => {
                plan.default_gateway = Some(gw);
                gateway_source = source;
            }
            (Some(first), Some(gw)) if first != gw => {
                notes.push(|| format!("{source}: gateway {gw} ignored, default route via {first}"))
            }
            _ => {}
        }
    }
    if plan.addresses.len() > MAX_ADDRESSES {
        return Err(PlanError::TooManyAddresses(plan.addresses.len()));
    }
    // Each entry's gateway was checked against its own address; the
    // default route must also hold against the plan as a whole, as the
    // parent's Plan::validate checks it: not another entry's address, and
    // on-link for an address kept (a repeated address keeps its first
    // prefix, which may not hold the gateway).
    if let Some(gw) = plan.default_gateway {
        check_gateway(gw, &plan.addresses).map_err(|e| e.at(gateway_source))?;
    }
    // Every note is logged on every fetch: a few say it all.
    Ok(Built {
        plan,
        notes: notes.finish(),
        skipped,
    })
}

/// Reads and checks one IPv6 entry: address and netmask required,
/// gateway optional.
fn read_entry(source: &str, f: &IpFields) -> Result<(Ipv6Net, Option<Ipv6Addr>), PlanError> {
    let src = || source.to_string();
    let missing = |field| PlanError::Missing {
        source: src(),
        field,
    };
    let address = f
        .address
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or(missing("address"))?;
    let addr = address
        .as_str()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .ok_or_else(|| PlanError::BadAddress {
            source: src(),
            value: quote(address),
        })?;
    if let Some(kind) = not_global(addr) {
        return Err(PlanError::NotGlobal {
            source: src(),
            addr,
            kind,
        });
    }
    let netmask = f
        .netmask
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or(missing("netmask"))?;
    let prefixlen = prefix_length(netmask).ok_or_else(|| PlanError::BadPrefix {
        source: src(),
        value: quote(netmask),
    })?;
    let net = Ipv6Net { addr, prefixlen };
    let gateway = match f.gateway.as_ref().filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            let gw = v
                .as_str()
                .and_then(|s| s.parse::<Ipv6Addr>().ok())
                .ok_or_else(|| PlanError::BadGateway {
                    source: src(),
                    value: quote(v),
                })?;
            check_gateway(gw, &[net]).map_err(|e| e.at(source))?;
            Some(gw)
        }
    };
    Ok((net, gateway))
}

/// A prefix length from a JSON integer or a string in canonical decimal,
/// the form the service writes (`"64"`): digits only, no sign, blank or
/// leading zero, so `"064"`, `"+64"` and `" 64"` are all refused alike.
fn prefix_length(v: &Value) -> Option<u8> {
    let n = match v {
        Value::String(s)
            if (1..=3).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_digit())
                && !s.starts_with('0') =>
        {
            s.parse::<u8>().ok()?
        }
        Value::Number(n) => u8::try_from(n.as_u64()?).ok()?,
        _ => return None,
    };
    PREFIX_LENGTHS.contains(&n).then_some(n)
}

/// What `addr` is when it is not a global unicast address.
fn not_global(addr: Ipv6Addr) -> Option<&'static str> {
    let s = addr.segments();
    if addr.is_unspecified() {
        Some("unspecified")
    } else if addr.is_loopback() {
        Some("loopback")
    } else if addr.is_multicast() {
        Some("multicast")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("IPv4-mapped")
    } else {
        None
    }
}

fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `addr` lies inside `net`'s prefix.
fn contains(net: &Ipv6Net, addr: Ipv6Addr) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(net.prefixlen))
        .unwrap_or(0);
    u128::from(net.addr) & mask == u128::from(addr) & mask
}

/// What `gw` is when no neighbour can have it as its address: anything
/// but a global or link-local unicast address. An IPv4-mapped address
/// names an IPv4 host (RFC 4291 §2.5.5.2) and is refused whatever the
/// prefix, even one that would put it on-link.
fn not_a_gateway(gw: Ipv6Addr) -> Option<&'static str> {
    not_global(gw).filter(|&kind| kind != "link-local")
}

/// The gateway rule, without the entry name: unicast, not one of our
/// addresses, and link-local or on-link for one of them.
fn check_gateway(gw: Ipv6Addr, nets: &[Ipv6Net]) -> Result<(), PlanError> {
    let source = String::new();
    if let Some(kind) = not_a_gateway(gw) {
        return Err(PlanError::GatewayNotUnicast {
            source,
            gateway: gw,
            kind,
        });
    }
    if nets.iter().any(|n| n.addr == gw) {
        return Err(PlanError::GatewayIsAddress {
            source,
            gateway: gw,
        });
    }
    if is_link_local(gw) || nets.iter().any(|n| contains(n, gw)) {
        return Ok(());
    }
    Err(PlanError::GatewayOffLink {
        source,
        gateway: gw,
        net: nets[0],
    })
}

impl PlanError {
    /// Names the entry an error came from.
    fn at(mut self, entry: &str) -> Self {
        match &mut self {
            PlanError::GatewayNotUnicast { source, .. }
            | PlanError::GatewayIsAddress { source, .. }
            | PlanError::GatewayOffLink { source, .. } => *source = entry.to_string(),
            _ => {}
        }
        self
    }
}

/// Escapes a value from the service for an error line: JSON form, at most
/// 64 characters, so it stays one printable line.
fn quote(v: &Value) -> String {
    escape(&v.to_string(), 64)
}

/// Escapes untrusted text for a log line, as metadata values are: every
/// character but the space and printable ASCII (NUL, ESC, newlines,
/// bidirectional overrides, any non-ASCII) as a Rust escape, at most `max`
/// characters then `...`. Also used for configuration values.
pub fn escape(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().take(max) {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    if s.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// Whether `name` can be an interface name: shorter than IFNAMSIZ, and
/// letters, digits, `_` and `.` only, so it is also safe in a log line.
pub fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() < crate::net::wire::IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

impl Plan {
    /// Checks a plan that crossed a process boundary as strictly as
    /// [`from_metadata`] built it: the parent trusts nothing the
    /// unprivileged fetcher sends.
    pub fn validate(&self) -> Result<(), PlanError> {
        let source = || "plan".to_string();
        if !valid_interface(&self.interface) {
            return Err(PlanError::BadInterface(self.interface.clone()));
        }
        if self.addresses.len() > MAX_ADDRESSES {
            return Err(PlanError::TooManyAddresses(self.addresses.len()));
        }
        for (i, net) in self.addresses.iter().enumerate() {
            if let Some(kind) = not_global(net.addr) {
                return Err(PlanError::NotGlobal {
                    source: source(),
                    addr: net.addr,
                    kind,
                });
            }
            if !PREFIX_LENGTHS.contains(&net.prefixlen) {
                return Err(PlanError::BadPrefix {
                    source: source(),
                    value: net.prefixlen.to_string(),
                });
            }
            if self.addresses[..i].iter().any(|n| n.addr == net.addr) {
                return Err(PlanError::BadAddress {
                    source: source(),
                    value: format!("{} (twice)", net.addr),
                });
            }
        }
        if let Some(gw) = self.default_gateway {
            if self.addresses.is_empty() {
                return Err(PlanError::Missing {
                    source: source(),
                    field: "address",
                });
            }
            check_gateway(gw, &self.addresses).map_err(|e| e.at("plan"))?;
        }
        Ok(())
    }
}

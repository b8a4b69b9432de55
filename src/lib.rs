//! scwd: signal "booted" to the Scaleway metadata service and configure
//! the instance's IPv6 address and default route, the OpenBSD way.
//!
//! Data flows one way: HTTP bytes ([`fetch`]) → [`metadata`] → a validated
//! [`plan::Plan`] → a [`net::Backend`] that talks to the kernel. The plan
//! is the only thing that crosses the process boundary ([`privsep`]).

#![deny(missing_docs)]

pub mod conf_text;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fetch;
pub mod fetcher;
pub mod logger;
pub mod metadata;
pub mod net;
pub mod parent;
pub mod plan;
pub mod privsep;
pub mod proctitle;
pub mod sandbox;
pub mod ssh_keys;
pub mod startup;

/// An I/O error the way strerror(3) says it, without Rust's
/// " (os error N)" suffix: `Network is unreachable`.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match e.raw_os_error() {
        Some(n) => s.trim_end_matches(&format!(" (os error {n})")).to_string(),
        None => s,
    }
}

//! scwd(8): signal "booted" to the Scaleway metadata service and configure IPv6.

fn main() {}

//! scwd-metad: the project's own Scaleway metadata service, for the lab.

fn main() {}

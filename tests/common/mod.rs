//! Code shared by the integration tests; each test binary uses a part.
#![allow(dead_code)]

pub mod kernel_model;
pub mod openbsd_sim;

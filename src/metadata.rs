//! The metadata document, as much of it as scwd reads.

//! OpenBSD kernel structures and routing messages, pure and host-tested.

//! Parser for /etc/scwd.conf.

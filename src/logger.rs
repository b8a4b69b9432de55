//! Logging to stderr or syslog(3).

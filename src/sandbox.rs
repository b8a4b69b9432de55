//! pledge(2) and unveil(2); no-ops elsewhere.

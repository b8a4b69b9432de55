//! HTTP client for the metadata service.

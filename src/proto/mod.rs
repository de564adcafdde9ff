//! The vocabulary both the HTTP framework and the cache speak, and nothing else:
//! HTTP dates, request paths, address ranges, status reason phrases and `Via` entries.
//!
//! The framework ([`crate::http`]) re-exports these modules as `http::date`,
//! `http::path` and `http::access::Cidr`; the cache ([`crate::cache`]) uses them
//! directly and never imports the framework.

pub mod cidr;
pub mod date;
pub mod path;
pub mod reason;
pub mod via;

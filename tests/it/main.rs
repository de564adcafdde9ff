//! The integration tests: one binary, a module per concern (the way ripgrep and cargo
//! lay theirs out), so that the crate and the shared helpers in `support` are linked
//! once instead of once per concern.
//!
//! `cargo test` runs them with the unit tests; `cargo test --test it NAME` runs the
//! tests whose path contains NAME (`cargo test --test it soak`, `… properties::date`).
//!
//! A new concern is a file `tests/it/NAME.rs` (or a folder `tests/it/NAME/mod.rs` once
//! it needs several files) and one `mod NAME;` line below. It reaches the helpers
//! through `use crate::support::*;`. Loopback only; every wait is bounded.

mod support;

mod chains;
mod cli;
mod coalescing;
mod contrib;
mod disk_full;
mod distros;
mod ebuild;
mod failover;
mod faults;
mod field_faults;
mod framework;
mod generations;
mod gentoo;
mod gentoo_known;
mod gentoo_repo;
mod hostile;
mod http_semantics;
mod keepalive;
mod miss_and_hit;
mod operations;
mod portage;
mod prefixes;
mod properties;
mod shard;
mod shared_dir;
mod slow_clients;
mod soak;
mod upstream_proxy;
mod upstream_tls;

//! package-cache: a caching proxy for package downloads.
//!
//! Clients (portage, pkgcore, wget, curl, another package-cache) ask us for files as if
//! we were a mirror. On a miss the file is fetched from the first configured source
//! that has it and streamed to every client asking for it while it is written to disk;
//! once complete it is renamed into place and later requests are served from disk.
//!
//! - [`http`]: the WSGI-style framework (Handler, Router, Server); knows nothing of caching.
//! - [`cache`]: the store, the upstream client, coalesced downloads; knows nothing of tiny_http.
//! - [`mirror`]: the handler that glues them into a mirror.
//! - [`gentoo`]: what a Gentoo repository says about distfiles (SRC_URI, RESTRICT,
//!   Manifest digests), binhost `Packages`, a streaming digest verifier.
//! - [`app`], [`cli`], [`config`]: the program around them.

#![warn(missing_docs)]

pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod distfiles;
pub mod gentoo;
pub mod http;
pub mod layout;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod signals;
pub mod size;
pub mod status;

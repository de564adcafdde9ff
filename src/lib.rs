//! package-cache: a caching proxy for package downloads.
//!
//! Clients (portage, pkgcore, wget, curl, another package-cache) ask us for files as if
//! we were a mirror. On a miss the file is fetched from the first configured source
//! that has it and streamed to every client asking for it while it is written to disk;
//! once complete it is renamed into place and later requests are served from disk.
//!
//! # Modules
//!
//! - [`http`]: the WSGI-style framework (Handler, Router, Server on tiny_http, a fixed
//!   worker pool); knows nothing of caching.
//! - [`proto`]: the vocabulary the framework and the cache share (HTTP dates, request
//!   paths, CIDR ranges, reason phrases, `Via` entries).
//! - [`cache`]: the cache behind one door, [`cache::Cache::get`]: store, LRU index,
//!   sources (each serving every path, or those below a `--source /PREFIX=URL`; and
//!   ad-hoc origins for a file's own URLs), coalesced downloads, freshness by
//!   repository generation, checks against what a file must be ([`cache::verify`]);
//!   never imports [`http`].
//! - [`gentoo`]: GLEP 75 layouts and the distfile mapping; the ebuild repository's
//!   index ([`gentoo::repo`], `--repo`) and what it tells the cache about a file
//!   ([`gentoo::known`]: Manifest size and digests, `SRC_URI`; binhost `Packages`).
//! - [`repos`]: which files of each repository format (Debian, Arch, RPM, Alpine,
//!   FreeBSD, Gentoo) change in place, and the anchor of each generation: the one
//!   table the cache's freshness rules ([`cache::generations`]) follow.
//! - [`mirror`]: the handler: request → [`mirror::route()`] (which sources serve the
//!   path) → [`mirror::Target`] → [`cache::Query`] → [`cache::Answer`] →
//!   [`http::Response`].
//! - [`status`], [`metrics`]: `/-/status` and `/-/metrics`, fed by the server's observer
//!   and the cache's [`cache::CacheStatus`].
//! - [`cli`] → [`config`] → [`app`]: flags, defaults (written once in
//!   [`config::Config::default`]), and the running program; [`logging`], [`signals`],
//!   [`size`] serve them.
//!
//! # A cold request, traced
//!
//! `GET /distfiles/MooseX-OneArgNew-0.007.tar.gz`, not in the cache:
//!
//! 1. tiny_http parses it on its connection thread; the server's pump hands it to the
//!    most recently idle worker (`http::pool`), which decodes and checks the path once
//!    ([`proto::path::parse_target`]) and calls the [`http::Router`]: `/` →
//!    [`http::access::Allow`] → [`mirror::Mirror`].
//! 2. [`mirror::route()`] finds no `--source /PREFIX=URL` claiming the path: the plain
//!    sources serve it. [`mirror::target`] maps it to the entry
//!    `distfiles/0a/MooseX-OneArgNew-0.007.tar.gz`
//!    (plus the flat path as an alternate); [`mirror::want`] reads the range and
//!    conditions; with `--repo`, the [`cache::verify::Knowledge`]
//!    ([`gentoo::known`]) looks the name up in the repository index: the Manifest's
//!    size and digests, and how to list the `SRC_URI` URLs ([`cache::verify::Known`];
//!    listed only when a download is planned). The handler asks
//!    [`cache::Cache::get`] once.
//! 3. The cache finds no file ([`cache::store::Store::lookup`]) and calls
//!    `Fetcher::obtain`: `Flights::join` creates the entry's flight and a download
//!    thread, which takes the entry's fs2 lock ([`cache::store::Store::claim`]), asks
//!    the sources in order ([`cache::upstream::Upstream::fetch`], each in its own GLEP
//!    75 layout via [`gentoo::distfiles::SourceLayouts`]; a source announcing another
//!    size than the Manifest's is skipped, and when none has the file its `SRC_URI`
//!    URLs are asked; every request carries `Via`, the client's entries then ours),
//!    creates the part file and runs [`cache::tee::copy`]: upstream → part file,
//!    waking readers on every block, with a syncer beside it ([`cache::durable`]) that
//!    `fdatasync`s the part file every 16 MiB or 250 ms and writes the durable length
//!    into the lock file. The body is digested on the way
//!    ([`cache::verify::Checked`]) and its last byte reaches the part file only once
//!    the digests matched, so no reader, here or in another process, sees the whole
//!    file before that; a mismatch breaks the download and nothing is stored.
//! 4. `obtain` returns as soon as the client's first byte is on disk (retrying a
//!    download that broke before it); the cache answers
//!    [`cache::Answer::Found`] with [`cache::CacheStatus::Miss`] and a
//!    [`cache::Content`] that follows the growing file
//!    ([`cache::tee::GrowingReader`]).
//! 5. [`mirror::respond`] evaluates conditions and ranges
//!    ([`http::conditional::answer`]), slices the content and tags the response
//!    (`X-Cache: MISS`, and the status as an extension for the metrics); the worker
//!    writes it (`http::wire`), and the observer counts it.
//! 6. On the download thread, the complete file is fsynced, stamped with the source's
//!    Last-Modified and renamed into place ([`cache::store::Lease::commit`]), then
//!    recorded in the LRU index ([`cache::index::Index::stored`]).
//!
//! Other clients asking meanwhile join the same flight (`COALESCED`); clients in other
//! processes find the lock held and follow the part file, up to the durable length.
//! A request whose `Via` already names this instance never gets past step 1: the
//! mirror answers `508 Loop Detected`.
//!
//! # A hot request, traced
//!
//! The same request later: steps 1–2 as above; [`cache::Cache::get`] opens the file
//! ([`cache::store::Store::lookup`]; with a Manifest entry, its size is compared and
//! its digests were checked once, [`cache::verify::StoredChecks`]),
//! [`cache::policy::Policy::freshness`] says a
//! distfile is always fresh, [`cache::index::Index::used`] records the use (and keeps
//! the file from eviction while it is sent), and the answer is the open file
//! ([`cache::Slice::File`]) with [`cache::CacheStatus::Hit`]. The worker sends it with
//! the headers in one write when small, with `sendfile(2)` when large. A file that
//! changes in place (`Packages`, `*-latest.*`) past its TTL takes one conditional
//! request first (`REVALIDATED`, or `STALE` when every source fails): the TTL applies
//! to a repository's anchor (`InRelease`, `core.db`, `Packages`, `*-latest.*`), and
//! its members (`Packages.xz`, `core.db.sig`) are served from the anchor's
//! generation, confirmed once after a new anchor ([`cache::generations`]).

#![warn(missing_docs)]

pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod gentoo;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod proto;
pub mod repos;
pub mod signals;
pub mod size;
pub mod status;

//! The Gentoo domain: how Gentoo's mirrors lay distfiles out (GLEP 75), how a request
//! for a distfile maps to one cache entry, and what an ebuild repository says about
//! each distfile. None of it depends on HTTP or on the cache's store.
//!
//! - [`layout`]: `layout.conf` parsing and the filename-hash mapping (pure).
//! - [`distfiles`]: request classification, the store path of a distfile, and each
//!   source's own layout, learned from its `layout.conf`.
//! - [`repo`]: what an ebuild repository (`/var/db/repos/gentoo`, overlays) says about
//!   distfiles: their `SRC_URI` URLs (from `metadata/md5-cache`), `RESTRICT`, and the
//!   size and digests `Manifest` files promise; binhost `Packages` indexes; a streaming
//!   verifier for those digests; an index that follows `emerge --sync` while running;
//!   and the core of `cull --unreferenced`.
//! - [`known`]: what the repository and binhost indexes tell the cache about a
//!   requested file (what it must be, where else to get it).
//!
//! Sources: GLEP 75 for layouts; PMS (the Package Manager Specification) for `SRC_URI`
//! and `RESTRICT` syntax, GLEP 74 for `Manifest` lines, and portage itself
//! (`portage.dep.use_reduce`, `portage.dbapi.porttree._parse_uri_map`,
//! `portage.package.ebuild.fetch`, `portage.dbapi.bintree`) wherever they could disagree.

pub mod distfiles;
pub mod known;
pub mod layout;
pub mod repo;

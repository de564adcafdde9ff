//! Gentoo knowledge that does not depend on HTTP or on the cache's store.
//!
//! - [`repo`]: what an ebuild repository (`/var/db/repos/gentoo`, overlays) says about
//!   distfiles: their `SRC_URI` URLs (from `metadata/md5-cache`), `RESTRICT`, and the
//!   size and digests `Manifest` files promise; binhost `Packages` indexes; a streaming
//!   verifier for those digests; an index that follows `emerge --sync` while running;
//!   and the core of `cull --unreferenced`.
//!
//! Sources: PMS (the Package Manager Specification) for `SRC_URI` and `RESTRICT`
//! syntax, GLEP 74 for `Manifest` lines, and portage itself (`portage.dep.use_reduce`,
//! `portage.dbapi.porttree._parse_uri_map`, `portage.package.ebuild.fetch`,
//! `portage.dbapi.bintree`) wherever the two could disagree.

pub mod repo;

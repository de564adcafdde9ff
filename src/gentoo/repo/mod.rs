//! The Gentoo repository as a source of truth about distfiles.
//!
//! Pure parsers (no I/O, never panic on any input):
//! - [`md5_cache`]: `metadata/md5-cache/CAT/PF` entries, their `SRC_URI` flattened to
//!   (distfile name, URI) pairs and their `RESTRICT` tokens;
//! - [`mirrors`]: `profiles/thirdpartymirrors`, and `mirror://NAME/path` expansion;
//! - [`manifest`]: `DIST` lines of `CAT/PN/Manifest`;
//! - [`packages`]: a binhost's `Packages` index.
//!
//! Digests and checking them: [`digest`] (bytes, not hex) and [`verify`] (a
//! streaming verifier fed while a file downloads).
//!
//! The index: [`RepoIndex`] reads one or more repositories in a background thread,
//! maps every distfile name to its size, digests, fetch URLs and restrictions, and
//! follows changes made by `emerge --sync` while running ([`index`] documents how).
//! [`cull`] lists or removes stored distfiles that no `Manifest` references.
//!
//! [`synth`] generates synthetic repositories for tests and benchmarks.

pub mod cull;
pub mod digest;
mod follow;
pub mod index;
pub mod manifest;
pub mod md5_cache;
pub mod mirrors;
pub mod packages;
mod records;
mod strings;
#[doc(hidden)]
pub mod synth;
pub mod verify;

pub use digest::Digests;
pub use index::{Distfile, IndexStats, Lookup, RepoIndex, RepoOptions, Update};
pub use md5_cache::Restrict;
pub use verify::{Expected, Mismatch, Verified, Verifier};

//! The Gentoo domain: how Gentoo's mirrors lay distfiles out (GLEP 75) and how a
//! request for a distfile, in any of its forms, maps to one cache entry.
//!
//! - [`layout`]: `layout.conf` parsing and the filename-hash mapping (pure).
//! - [`distfiles`]: request classification, the store path of a distfile, and each
//!   source's own layout, learned from its `layout.conf`.

pub mod distfiles;
pub mod layout;

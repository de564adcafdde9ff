//! A binhost's `Packages` index (portage's `bintree.py` and `getbinpkg.py`).
//!
//! The file is blocks of `KEY: VALUE` lines separated by blank lines: first a header
//! (`VERSION`, `TIMESTAMP`, `PACKAGES`, `URI`, `ARCH`, …), then one block per binary
//! package with `CPV`, `PATH`, `SIZE` (bytes), digests (`SHA1` and `MD5` are
//! portage's `_pkgindex_hashes`; some binhosts add `BLAKE2B`/`SHA512`), `BUILD_ID`,
//! `BUILD_TIME`, `EAPI`, dependencies and so on. A line without `:` is skipped.
//!
//! `PATH` is the package's location relative to the binhost's base URI
//! (`dev-libs/foo/foo-1.0-1.gpkg.tar`). Current portage requires it
//! (`BinpkgFetcher`: "PATH not found in the binpkg index"); older indexes lack it, and
//! portage then fetches `CPV + ".tbz2"`, which [`Package::path`] reproduces. The
//! format (xpak `.tbz2`/`.xpak` or `.gpkg.tar`) follows from the path's suffix.

use std::borrow::Cow;

use super::digest::{Digests, from_hex};
use super::verify::Expected;

/// One package block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package<'a> {
    /// `CPV` (`dev-libs/foo-1.0`); empty if missing.
    pub cpv: &'a str,
    /// `PATH`, or `CPV.tbz2` when absent (portage's fallback for old indexes).
    pub path: Cow<'a, str>,
    /// `SIZE` in bytes, if given and numeric.
    pub size: Option<u64>,
    /// `SHA1`, `BLAKE2B`, `SHA512`, when given and well-formed.
    pub digests: Digests,
    /// `MD5` (16 bytes): read but not checked by [`super::verify`].
    pub md5: Option<[u8; 16]>,
    /// `BUILD_ID`, if given.
    pub build_id: Option<&'a str>,
    /// Every `KEY: VALUE` line of the block, in order.
    pub fields: Vec<(&'a str, &'a str)>,
}

impl Package<'_> {
    /// What a download of this package must match (`SIZE` and the digests given;
    /// `MD5` is not checked).
    pub fn expected(&self) -> Expected {
        Expected {
            size: self.size,
            digests: self.digests.clone(),
        }
    }

    /// The value of `key` in this block.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// A parsed `Packages` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index<'a> {
    /// The header's `KEY: VALUE` lines.
    pub header: Vec<(&'a str, &'a str)>,
    /// The package blocks; blocks without `CPV` and `PATH` are dropped.
    pub packages: Vec<Package<'a>>,
}

impl Index<'_> {
    /// The header value of `key` (`TIMESTAMP`, `URI`, …).
    pub fn header(&self, key: &str) -> Option<&str> {
        self.header.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The package stored at `path` (relative to the binhost root, no leading `/`).
    pub fn by_path(&self, path: &str) -> Option<&Package<'_>> {
        let path = path.trim_start_matches('/');
        self.packages
            .iter()
            .find(|p| p.path.trim_start_matches('/') == path)
    }
}

/// Parses a `Packages` file.
pub fn parse(text: &str) -> Index<'_> {
    let mut index = Index::default();
    let mut block: Vec<(&str, &str)> = Vec::new();
    let mut in_header = true;
    let mut lines = text.lines().peekable();
    while lines.peek().is_some() || !block.is_empty() {
        let line = lines.next();
        if let Some(line) = line.filter(|l| !l.trim().is_empty()) {
            if let Some((k, v)) = line.split_once(':') {
                block.push((k.trim(), v.trim()));
            }
            continue;
        }
        // A blank line or the end: close the block, if any.
        if block.is_empty() {
            continue;
        }
        let fields = std::mem::take(&mut block);
        if in_header {
            index.header = fields;
            in_header = false;
        } else if let Some(p) = package(fields) {
            index.packages.push(p);
        }
    }
    index
}

fn package<'a>(fields: Vec<(&'a str, &'a str)>) -> Option<Package<'a>> {
    let get = |key: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    };
    let cpv = get("CPV").unwrap_or("");
    let path = match get("PATH").filter(|p| !p.is_empty()) {
        Some(p) => Cow::Borrowed(p),
        None if !cpv.is_empty() => Cow::Owned(format!("{cpv}.tbz2")),
        None => return None,
    };
    let mut digests = Digests::default();
    for algo in ["SHA1", "BLAKE2B", "SHA512"] {
        if let Some(hex) = get(algo) {
            let _ = digests.set_hex(algo, hex);
        }
    }
    Some(Package {
        cpv,
        path,
        size: get("SIZE").and_then(|s| s.parse().ok()),
        md5: get("MD5").and_then(from_hex),
        build_id: get("BUILD_ID"),
        digests,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGES: &str = "\
ACCEPT_KEYWORDS: amd64
ARCH: amd64
CBUILD: x86_64-pc-linux-gnu
PACKAGES: 3
TIMESTAMP: 1718000000
URI: https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64
VERSION: 0

BUILD_ID: 2
BUILD_TIME: 1717990000
CPV: app-arch/zstd-1.5.6
DEFINED_PHASES: compile configure install prepare test
EAPI: 8
MD5: 0123456789abcdef0123456789abcdef
PATH: app-arch/zstd/zstd-1.5.6-2.gpkg.tar
SHA1: 00112233445566778899aabbccddeeff00112233
SIZE: 716800
USE: abi_x86_64 amd64 lzma

CPV: sys-apps/which-2.21
SHA1: zz
SIZE: big


CPV: dev-lang/x-1
PATH: dev-lang/x/x-1-1.xpak
BLAKE2B: 22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222
";

    #[test]
    fn reads_header_and_blocks() {
        let index = parse(PACKAGES);
        assert_eq!(index.header("TIMESTAMP"), Some("1718000000"));
        assert_eq!(index.packages.len(), 3);
        let zstd = &index.packages[0];
        assert_eq!(zstd.cpv, "app-arch/zstd-1.5.6");
        assert_eq!(zstd.path, "app-arch/zstd/zstd-1.5.6-2.gpkg.tar");
        assert_eq!(zstd.size, Some(716_800));
        assert_eq!(zstd.build_id, Some("2"));
        assert_eq!(zstd.digests.sha1.map(|d| d[1]), Some(0x11));
        assert_eq!(zstd.md5.map(|d| d[0]), Some(0x01));
        assert_eq!(zstd.get("EAPI"), Some("8"));
        assert_eq!(zstd.expected().size, Some(716_800));
        let which = &index.packages[1];
        assert_eq!(which.path, "sys-apps/which-2.21.tbz2", "portage's fallback");
        assert_eq!((which.size, which.digests.is_empty()), (None, true));
        let x = index.by_path("/dev-lang/x/x-1-1.xpak").map(|p| p.cpv);
        assert_eq!(x, Some("dev-lang/x-1"));
        assert_eq!(index.packages[2].digests.blake2b, Some([0x22; 64]));
    }

    #[test]
    fn odd_inputs() {
        assert_eq!(parse(""), Index::default());
        let only_header = parse("VERSION: 0\n");
        assert_eq!(
            (only_header.header.len(), only_header.packages.len()),
            (1, 0)
        );
        let no_cpv = parse("VERSION: 0\n\nSIZE: 1\n\nPATH: a/b.gpkg.tar\n");
        assert_eq!(no_cpv.packages.len(), 1);
        for s in ["\n\n\n", ":", "a:\n\n:b", "\0: \0\n\n\0"] {
            let _ = parse(s);
        }
    }
}

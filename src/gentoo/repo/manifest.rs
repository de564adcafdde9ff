//! `CATEGORY/PN/Manifest`: the `DIST` lines.
//!
//! GLEP 74 (and portage's `manifest.py`): `TYPE NAME SIZE [HASHNAME HEX]…`, with
//! `TYPE` one of `DIST`, `EBUILD`, `AUX`, `MISC`, … Only `DIST` lines describe
//! distfiles; the others are skipped, so full and thin Manifests (`thin-manifests =
//! true` in `metadata/layout.conf`, DIST lines only) read the same, and so do the lines
//! of a PGP-signed Manifest. `SIZE` is in bytes. Hash names come in any number and
//! order; BLAKE2B, SHA512 (and SHA1) are kept as bytes, any other name (`SHA256`,
//! `RMD160`, `WHIRLPOOL` of old Manifests) is listed in [`Dist::others`] and not kept.
//!
//! A malformed `DIST` line (no size, a size that is not a number, an odd number of
//! hash tokens, bad hex for a kept digest) is skipped and counted: portage would
//! refuse it, and a wrong digest must never be trusted. A name given twice keeps its
//! last line, as portage's dictionary does.

use std::collections::HashMap;

use super::digest::Digests;

/// One `DIST` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dist<'a> {
    /// The distfile's name.
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// The digests we keep.
    pub digests: Digests,
    /// Names of digests listed but not kept.
    pub others: Vec<&'a str>,
}

/// The `DIST` lines of a Manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest<'a> {
    /// One per distfile name, in the order of their last line.
    pub dists: Vec<Dist<'a>>,
    /// `DIST` lines that could not be read.
    pub malformed: usize,
}

/// Reads the `DIST` lines of a Manifest.
pub fn parse(text: &str) -> Manifest<'_> {
    let mut m = Manifest::default();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("DIST") {
            continue;
        }
        match parse_dist(words) {
            Some(dist) => match at.get(dist.name) {
                Some(&i) => m.dists[i] = dist,
                None => {
                    at.insert(dist.name, m.dists.len());
                    m.dists.push(dist);
                }
            },
            None => m.malformed += 1,
        }
    }
    m
}

fn parse_dist<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<Dist<'a>> {
    let name = words.next()?;
    let size = words.next()?.parse().ok()?;
    let mut dist = Dist {
        name,
        size,
        digests: Digests::default(),
        others: Vec::new(),
    };
    while let Some(algo) = words.next() {
        let hex = words.next()?;
        if !dist.digests.set_hex(algo, hex)? {
            dist.others.push(algo);
        }
    }
    Some(dist)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gentoo::repo::digest::to_hex;

    fn hex(byte: u8, n: usize) -> String {
        to_hex(&vec![byte; n])
    }

    #[test]
    fn reads_dist_lines_of_a_full_manifest() {
        let text = format!(
            "AUX fix.patch 120 BLAKE2B {b} SHA512 {s}\n\
             DIST afio-2.5.2.tar.gz 271323 BLAKE2B {b} SHA512 {s}\n\
             DIST old.tar.bz2 10 SHA256 {h} RMD160 {r} SHA512 {s} BLAKE2B {b}\n\
             EBUILD afio-2.5.2.ebuild 1000 BLAKE2B {b} SHA512 {s}\n\
             MISC metadata.xml 300 BLAKE2B {b} SHA512 {s}\n",
            b = hex(0xb2, 64),
            s = hex(0x51, 64),
            h = hex(0x25, 32),
            r = hex(0x16, 20),
        );
        let m = parse(&text);
        assert_eq!(m.malformed, 0);
        assert_eq!(m.dists.len(), 2);
        let afio = &m.dists[0];
        assert_eq!((afio.name, afio.size), ("afio-2.5.2.tar.gz", 271_323));
        assert_eq!(afio.digests.blake2b, Some([0xb2; 64]));
        assert_eq!(afio.digests.sha512, Some([0x51; 64]));
        assert!(afio.others.is_empty());
        let old = &m.dists[1];
        assert_eq!(old.others, vec!["SHA256", "RMD160"]);
        assert_eq!(old.digests.blake2b, Some([0xb2; 64]), "any order");
    }

    #[test]
    fn thin_signed_and_malformed() {
        let b = hex(0xb2, 64);
        let text = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n\
             DIST a.tar.gz 5 BLAKE2B {b}\n\
             DIST a.tar.gz 6 BLAKE2B {b}\n\
             DIST b.tar.gz x BLAKE2B {b}\n\
             DIST c.tar.gz 7 BLAKE2B\n\
             DIST d.tar.gz 8 BLAKE2B abc\n\
             DIST e.tar.gz\n\
             DIST f.tar.gz 0\n\
             -----BEGIN PGP SIGNATURE-----\n"
        );
        let m = parse(&text);
        assert_eq!(m.malformed, 4);
        let got: Vec<(&str, u64)> = m.dists.iter().map(|d| (d.name, d.size)).collect();
        assert_eq!(
            got,
            vec![("a.tar.gz", 6), ("f.tar.gz", 0)],
            "last line wins"
        );
        assert!(m.dists[1].digests.is_empty());
    }

    #[test]
    fn never_panics() {
        for s in [
            "",
            "DIST",
            "DIST  ",
            "DIST a 1 B",
            "DIST a 99999999999999999999",
            "\0",
        ] {
            let _ = parse(s);
        }
    }
}

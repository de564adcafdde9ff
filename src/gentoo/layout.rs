//! GLEP 75 mirror layouts: parsing `layout.conf` and mapping distfile names to paths.
//! Pure: no I/O.
//!
//! A `layout.conf` has a `[structure]` section with keys `0`, `1`, … in order of
//! preference. Each value is `flat` or `filename-hash ALGO CUTOFFS`, where CUTOFFS is a
//! colon-separated list of bit counts (multiples of 4); each level of directories is the
//! next `cutoff / 4` hex digits of the file name's digest. Gentoo's mirrors use
//! `filename-hash BLAKE2B 8`, so `MooseX-OneArgNew-0.007.tar.gz` lives under `0a/`.
//!
//! We follow portage exactly where it matters for agreeing on paths: algorithm names
//! are case-sensitive, entries we cannot use are skipped, and when none is usable the
//! layout is flat. Supported algorithms: BLAKE2B, BLAKE2S, SHA512 and SHA256.

use std::fmt;

use blake2::{Blake2b512, Blake2s256, Digest};
use sha2::{Sha256, Sha512};

/// A digest a filename-hash layout can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algo {
    /// BLAKE2b-512, Gentoo's default.
    Blake2b,
    /// BLAKE2s-256.
    Blake2s,
    /// SHA-512.
    Sha512,
    /// SHA-256.
    Sha256,
}

impl Algo {
    /// Every supported algorithm.
    pub const ALL: [Algo; 4] = [Algo::Blake2b, Algo::Blake2s, Algo::Sha512, Algo::Sha256];

    /// The name as written in `layout.conf` (exact case, as portage requires).
    pub fn parse(name: &str) -> Option<Algo> {
        match name {
            "BLAKE2B" => Some(Algo::Blake2b),
            "BLAKE2S" => Some(Algo::Blake2s),
            "SHA512" => Some(Algo::Sha512),
            "SHA256" => Some(Algo::Sha256),
            _ => None,
        }
    }

    /// The `layout.conf` name.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Blake2b => "BLAKE2B",
            Algo::Blake2s => "BLAKE2S",
            Algo::Sha512 => "SHA512",
            Algo::Sha256 => "SHA256",
        }
    }

    /// Digest length in bits.
    pub fn bits(self) -> u32 {
        match self {
            Algo::Blake2b | Algo::Sha512 => 512,
            Algo::Blake2s | Algo::Sha256 => 256,
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        let bytes: Vec<u8> = match self {
            Algo::Blake2b => Blake2b512::digest(data).to_vec(),
            Algo::Blake2s => Blake2s256::digest(data).to_vec(),
            Algo::Sha512 => Sha512::digest(data).to_vec(),
            Algo::Sha256 => Sha256::digest(data).to_vec(),
        };
        super::repo::digest::to_hex(&bytes)
    }
}

/// Checksum names portage knows (whether or not we can compute them): an entry using
/// one of these is valid to portage, so it may be the entry portage picks.
const PORTAGE_ALGOS: &[&str] = &[
    "BLAKE2B",
    "BLAKE2S",
    "SHA256",
    "SHA512",
    "SHA3_256",
    "SHA3_512",
    "STREEBOG256",
    "STREEBOG512",
    "WHIRLPOOL",
    "RMD160",
    "MD5",
    "SHA1",
];

/// How a mirror arranges distfiles.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Every file directly under `distfiles/`.
    Flat,
    /// Files under directories named by their name's digest.
    FilenameHash {
        /// The digest.
        algo: Algo,
        /// Bits per directory level (each a positive multiple of 4).
        cutoffs: Vec<u32>,
    },
}

/// Gentoo's mirror layout, and ours: `filename-hash BLAKE2B 8`.
pub fn gentoo() -> Layout {
    Layout::FilenameHash {
        algo: Algo::Blake2b,
        cutoffs: vec![8],
    }
}

impl Layout {
    /// Parses one `[structure]` value; `None` for entries we cannot use.
    pub fn parse_entry(value: &str) -> Option<Layout> {
        let words: Vec<&str> = value.split_whitespace().collect();
        match words.as_slice() {
            ["flat"] => Some(Layout::Flat),
            ["filename-hash", algo, cutoffs] => {
                let algo = Algo::parse(algo)?;
                let cutoffs = parse_cutoffs(cutoffs)?;
                // Summed in u64: huge cutoffs must not wrap around to a small total.
                let total: u64 = cutoffs.iter().map(|&c| u64::from(c)).sum();
                (total <= u64::from(algo.bits())).then_some(Layout::FilenameHash { algo, cutoffs })
            }
            _ => None,
        }
    }

    /// The directories for `name` (`0a/`, `e/d5/`, or empty for flat).
    pub fn dirs(&self, name: &str) -> String {
        match self {
            Layout::Flat => String::new(),
            Layout::FilenameHash { algo, cutoffs } => {
                let digest = algo.hex(name.as_bytes());
                let mut rest = digest.as_str();
                let mut out = String::new();
                for c in cutoffs {
                    let (level, tail) = rest.split_at((*c / 4) as usize);
                    out.push_str(level);
                    out.push('/');
                    rest = tail;
                }
                out
            }
        }
    }

    /// The path of `name` below `distfiles/`.
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.dirs(name))
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Flat => f.write_str("flat"),
            Layout::FilenameHash { algo, cutoffs } => {
                let cutoffs: Vec<String> = cutoffs.iter().map(u32::to_string).collect();
                write!(f, "filename-hash {} {}", algo.name(), cutoffs.join(":"))
            }
        }
    }
}

fn parse_cutoffs(text: &str) -> Option<Vec<u32>> {
    let cutoffs: Option<Vec<u32>> = text
        .split(':')
        .map(|c| {
            let c: u32 = c.parse().ok()?;
            (c > 0 && c.is_multiple_of(4)).then_some(c)
        })
        .collect();
    cutoffs.filter(|c| !c.is_empty())
}

/// Why a `layout.conf` could not be read (portage then treats the mirror as flat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfError {
    /// A key appears twice in one section.
    DuplicateKey(String),
    /// A line that is neither a section, a `key = value`, a comment nor blank.
    BadLine(usize),
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfError::DuplicateKey(k) => write!(f, "duplicate key {k:?} in [structure]"),
            ConfError::BadLine(n) => write!(f, "line {n} is not a section or key = value"),
        }
    }
}

impl std::error::Error for ConfError {}

/// The `[structure]` values of a `layout.conf`, in key order (`0`, `1`, … up to the
/// first missing key), as portage's config parser reads them.
pub fn parse_structure(text: &str) -> Result<Vec<String>, ConfError> {
    let mut section = String::new();
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut last_key: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        // An indented line continues the previous value.
        if line.starts_with([' ', '\t'])
            && let Some(k) = last_key
        {
            entries[k].1.push(' ');
            entries[k].1.push_str(trimmed);
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.to_owned();
            last_key = None;
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(ConfError::BadLine(i + 1));
        };
        let (key, value) = (trimmed[..split].trim(), trimmed[split + 1..].trim());
        if section != "structure" {
            last_key = None;
            continue;
        }
        let key = key.to_ascii_lowercase();
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(ConfError::DuplicateKey(key));
        }
        entries.push((key, value.to_owned()));
        last_key = Some(entries.len() - 1);
    }
    let mut out = Vec::new();
    for n in 0.. {
        match entries.iter().find(|(k, _)| *k == n.to_string()) {
            Some((_, v)) => out.push(v.clone()),
            None => break,
        }
    }
    Ok(out)
}

/// The layout to use for a mirror with these `[structure]` values: the first one we
/// can use, else flat (portage's fallback).
pub fn best(structure: &[String]) -> Layout {
    structure
        .iter()
        .find_map(|v| Layout::parse_entry(v))
        .unwrap_or(Layout::Flat)
}

/// The entry portage would pick from these values (the first it considers valid),
/// whether or not we can use it.
pub fn portage_choice(structure: &[String]) -> Option<&str> {
    structure.iter().map(String::as_str).find(|v| {
        let words: Vec<&str> = v.split_whitespace().collect();
        match words.as_slice() {
            ["flat"] => true,
            ["filename-hash", algo, cutoffs] => {
                PORTAGE_ALGOS.contains(algo) && parse_cutoffs(cutoffs).is_some()
            }
            ["content-hash", algo, cutoffs] => {
                PORTAGE_ALGOS.contains(&algo.to_ascii_uppercase().as_str())
                    && parse_cutoffs(cutoffs).is_some()
            }
            _ => false,
        }
    })
}

/// Whether a client that read this `layout.conf` will ask for paths we can map: the
/// entry portage picks is one we support (or there is none and it falls back to flat).
pub fn usable_by_us(structure: &[String]) -> bool {
    portage_choice(structure).is_none_or(|v| Layout::parse_entry(v).is_some())
}

/// A `layout.conf` describing `layouts` in order.
pub fn render(layouts: &[Layout]) -> String {
    let mut out = String::from(
        "# package-cache: distfiles are stored as Gentoo's mirrors store them (GLEP 75),\n\
         # and requests in any of these forms reach the same file.\n[structure]\n",
    );
    for (i, l) in layouts.iter().enumerate() {
        out.push_str(&format!("{i}={l}\n"));
    }
    out
}

/// Whether `dirs` (the directories between `distfiles/` and `name`) are the
/// filename-hash directories of `name` under some supported algorithm, reading each
/// directory's length as its cutoff.
pub fn dirs_match(name: &str, dirs: &[&str]) -> bool {
    if dirs.is_empty() {
        return true;
    }
    let well_formed = dirs.iter().all(|d| {
        !d.is_empty()
            && d.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !well_formed {
        return false;
    }
    let prefix = dirs.concat();
    Algo::ALL.iter().any(|a| {
        prefix.len() * 4 <= a.bits() as usize && a.hex(name.as_bytes()).starts_with(&prefix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fh(algo: Algo, cutoffs: &[u32]) -> Layout {
        Layout::FilenameHash {
            algo,
            cutoffs: cutoffs.to_vec(),
        }
    }

    #[test]
    fn design_vectors() {
        let g = gentoo();
        assert_eq!(
            g.path("MooseX-OneArgNew-0.007.tar.gz"),
            "0a/MooseX-OneArgNew-0.007.tar.gz"
        );
        assert_eq!(g.path("which-2.23.tar.gz"), "80/which-2.23.tar.gz");
        assert_eq!(g.path("psmisc-23.7.tar.xz"), "28/psmisc-23.7.tar.xz");
        assert_eq!(
            fh(Algo::Sha512, &[4, 8]).path("MooseX-OneArgNew-0.007.tar.gz"),
            "e/d5/MooseX-OneArgNew-0.007.tar.gz"
        );
        assert_eq!(Layout::Flat.path("x"), "x");
    }

    #[test]
    fn entries_parse_like_portage() {
        assert_eq!(Layout::parse_entry("flat"), Some(Layout::Flat));
        assert_eq!(
            Layout::parse_entry("filename-hash BLAKE2B 8"),
            Some(gentoo())
        );
        assert_eq!(
            Layout::parse_entry("filename-hash SHA512 4:8"),
            Some(fh(Algo::Sha512, &[4, 8]))
        );
        for bad in [
            "filename-hash blake2b 8",   // case-sensitive, as portage
            "filename-hash WHIRLPOOL 8", // valid for portage, not computable here
            "filename-hash BLAKE2B 6",   // not a multiple of 4
            "filename-hash BLAKE2B 0",
            "filename-hash BLAKE2B 8:x",
            "filename-hash BLAKE2B 256:256:256",
            "filename-hash BLAKE2B 4294967292:8", // wrapped to 4 when summed in u32
            "filename-hash BLAKE2B",
            "content-hash SHA512 8:8:8",
            "flat extra",
            "",
        ] {
            assert_eq!(Layout::parse_entry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn structure_sections() {
        let text = "# comment\n[other]\n0 = flat\n[structure]\n1=flat\n0 = filename-hash BLAKE2B 8\n; x\n3=flat\n";
        assert_eq!(
            parse_structure(text).unwrap(),
            ["filename-hash BLAKE2B 8", "flat"],
            "keys in order, stopping at the first gap"
        );
        assert_eq!(
            parse_structure("[structure]\n0: filename-hash\n   BLAKE2B 8\n").unwrap(),
            ["filename-hash BLAKE2B 8"]
        );
        assert_eq!(
            parse_structure("[structure]\n0=flat\n0=flat\n"),
            Err(ConfError::DuplicateKey("0".into()))
        );
        assert_eq!(
            parse_structure("[structure]\nnonsense\n"),
            Err(ConfError::BadLine(2))
        );
        assert_eq!(parse_structure("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn best_skips_what_we_cannot_use() {
        let s: Vec<String> = [
            "content-hash SHA512 8:8:8",
            "filename-hash WHIRLPOOL 8",
            "filename-hash BLAKE2S 4:4",
            "flat",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(best(&s), fh(Algo::Blake2s, &[4, 4]));
        assert_eq!(best(&[]), Layout::Flat);
        assert_eq!(best(&["bogus".into()]), Layout::Flat);
        assert_eq!(portage_choice(&s), Some("content-hash SHA512 8:8:8"));
        assert!(!usable_by_us(&s));
        assert!(usable_by_us(&[
            "filename-hash BLAKE2B 8".into(),
            "flat".into()
        ]));
        assert!(usable_by_us(&[]));
    }

    #[test]
    fn render_round_trips() {
        let layouts = vec![gentoo(), fh(Algo::Sha512, &[4, 8]), Layout::Flat];
        let text = render(&layouts);
        let parsed: Vec<Layout> = parse_structure(&text)
            .unwrap()
            .iter()
            .filter_map(|v| Layout::parse_entry(v))
            .collect();
        assert_eq!(parsed, layouts);
    }

    /// Deterministic pseudo-random names for property tests.
    fn names(n: usize) -> Vec<String> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                let len = 1 + (x % 60) as usize;
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let set =
                            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+~";
                        set[(x % set.len() as u64) as usize] as char
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn property_paths_are_digest_prefixes_ending_in_the_name() {
        let layouts = [
            gentoo(),
            fh(Algo::Blake2s, &[4, 8]),
            fh(Algo::Sha512, &[8, 8, 8]),
            fh(Algo::Sha256, &[12]),
        ];
        for name in names(500) {
            for layout in &layouts {
                let Layout::FilenameHash { algo, cutoffs } = layout else {
                    unreachable!()
                };
                let path = layout.path(&name);
                assert!(path.ends_with(&format!("/{name}")));
                let dirs: Vec<&str> = path[..path.len() - name.len() - 1].split('/').collect();
                assert_eq!(dirs.len(), cutoffs.len());
                for (d, c) in dirs.iter().zip(cutoffs) {
                    assert_eq!(d.len() as u32 * 4, *c);
                }
                assert!(algo.hex(name.as_bytes()).starts_with(&dirs.concat()));
                assert!(dirs_match(&name, &dirs), "{layout} {name}");
            }
            assert!(dirs_match(&name, &[]));
        }
    }

    #[test]
    fn property_wrong_dirs_do_not_match() {
        for name in names(300) {
            let right = gentoo().dirs(&name);
            let right = right.trim_end_matches('/');
            // Flip the last hex digit: no supported digest of this name starts so,
            // except by a coincidence the test checks for.
            let mut wrong = right.to_owned();
            let last = wrong.pop().unwrap();
            wrong.push(if last == '0' { '1' } else { '0' });
            let coincidence = Algo::ALL
                .iter()
                .any(|a| a.hex(name.as_bytes()).starts_with(&wrong));
            assert_eq!(dirs_match(&name, &[&wrong]), coincidence, "{name}");
        }
        assert!(!dirs_match("x", &["zz"]));
        assert!(
            !dirs_match("x", &["0A"]),
            "upper case is not a hash directory"
        );
        assert!(!dirs_match("x", &[""]));
    }
}

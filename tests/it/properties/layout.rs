//! GLEP 75 layouts: `filename-hash` paths, cutoffs, and `layout.conf` token soups and
//! structured confs.

use package_cache::gentoo::layout::{self, Algo, Layout};

use super::{check, invariants};
use crate::support::rng::Rng;

/// Random valid cutoffs for `algo`: multiples of 4 summing to at most its bits.
fn random_cutoffs(rng: &mut Rng, algo: Algo) -> Vec<u32> {
    let mut left = algo.bits();
    let mut cutoffs = Vec::new();
    for _ in 0..1 + rng.index(4) {
        if left < 4 {
            break;
        }
        let c = 4 * (1 + rng.below(u64::from(left.min(32)) / 4) as u32);
        cutoffs.push(c);
        left -= c;
    }
    cutoffs
}

fn random_name(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => rng.string(40),
        1 => {
            let set = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+~";
            (0..1 + rng.index(60))
                .map(|_| set[rng.index(set.len())] as char)
                .collect()
        }
        _ => format!(
            "{}-{}.{}.tar.{}",
            rng.pick(&["foo", "MooseX-OneArgNew", "which", "psmisc", "g++"]),
            rng.below(30),
            rng.below(100),
            rng.pick(&["gz", "xz", "bz2", "zst"])
        ),
    }
}

#[test]
fn layout_filename_hash_paths_are_dirs_then_name() {
    check("layout_paths", 1500, |rng| {
        let name = random_name(rng);
        for algo in Algo::ALL {
            let cutoffs = random_cutoffs(rng, algo);
            let text: Vec<String> = cutoffs.iter().map(u32::to_string).collect();
            let entry = format!("filename-hash {} {}", algo.name(), text.join(":"));
            let l = Layout::parse_entry(&entry).expect("valid entry parses");
            assert_eq!(
                l,
                Layout::FilenameHash {
                    algo,
                    cutoffs: cutoffs.clone()
                }
            );
            assert_eq!(l.to_string(), entry);
            let parts = invariants::check_layout_maps(&l, &name);

            // Change one hex digit of one directory: no supported digest of the name
            // starts so, except by a coincidence checked for here.
            let mut wrong = parts.clone();
            let d = rng.index(wrong.len());
            let i = rng.index(wrong[d].len());
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let old = wrong[d].as_bytes()[i];
            let at = HEX.iter().position(|h| *h == old).expect("lower-case hex");
            let new = HEX[(at + 1 + rng.index(15)) % 16];
            assert_ne!(old, new);
            wrong[d].replace_range(i..=i, &char::from(new).to_string());
            let prefix = wrong.concat();
            let coincidence = Algo::ALL
                .iter()
                .any(|a| a.hex(name.as_bytes()).starts_with(&prefix));
            let refs: Vec<&str> = wrong.iter().map(String::as_str).collect();
            assert_eq!(
                layout::dirs_match(&name, &refs),
                coincidence,
                "{name:?} {refs:?}"
            );
            // Upper case, empty or non-hex directories never match.
            let mut upper = parts.clone();
            upper[d] = upper[d].to_ascii_uppercase();
            if upper != parts {
                let refs: Vec<&str> = upper.iter().map(String::as_str).collect();
                assert!(!layout::dirs_match(&name, &refs));
            }
            let mut bad = parts.clone();
            bad[d] = rng.pick(&["", "g", "0x", "../", "0a/"]).to_owned();
            let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
            assert!(!layout::dirs_match(&name, &refs), "{refs:?}");
        }
        assert!(layout::dirs_match(&name, &[]));
    });
}

#[test]
fn layout_cutoffs_that_overflow_are_refused() {
    // Regression: the cutoffs were summed in u32, so huge ones wrapped around below
    // the digest length and `dirs` then sliced past the end of the digest.
    for entry in [
        "filename-hash BLAKE2B 4294967292:8",
        "filename-hash BLAKE2B 4294967292:4294967292:16",
        "filename-hash SHA256 2147483648:2147483648:8",
        "filename-hash SHA512 4294967292:4294967292:4294967292:4294967292:12",
    ] {
        assert_eq!(Layout::parse_entry(entry), None, "{entry:?}");
        let structure = vec![entry.to_owned()];
        assert_eq!(layout::best(&structure), Layout::Flat);
        assert!(!layout::usable_by_us(&structure));
    }
}

const CONF_TOKENS: &[&str] = &[
    "[structure]",
    "[structure]",
    "[other]",
    "[structure",
    "\n",
    "\n",
    "\n",
    "\r\n",
    "0",
    "1",
    "2",
    "00",
    "=",
    "=",
    ":",
    " = ",
    " ",
    "  ",
    "\t",
    "flat",
    "filename-hash",
    "content-hash",
    "#",
    ";",
    "\u{e9}",
];

/// Digest names in `layout.conf`: supported, in the wrong case, unsupported.
const CONF_ALGOS: &[&str] = &[
    "BLAKE2B",
    "BLAKE2S",
    "SHA512",
    "SHA256",
    "blake2b",
    "WHIRLPOOL",
];

/// Cutoff lists: valid, too long, overflowing, not multiples of 4, signed.
const CONF_CUTOFFS: &[&str] = &[
    "8",
    "4:8",
    "8:8:8",
    "256:256:256",
    "4294967292:8",
    "4294967296",
    "6",
    "0",
    "-4",
    "+8",
];

/// What a token soup of `layout.conf` is made of.
const CONF_SOUP: &[&[&str]] = &[CONF_TOKENS, CONF_ALGOS, CONF_CUTOFFS];

#[test]
fn layout_conf_token_soup_is_consistent() {
    check("layout_conf_soup", 6000, |rng| {
        let mut text = String::new();
        if !rng.one_in(5) {
            text.push_str("[structure]\n");
        }
        if rng.one_in(3) {
            text.push_str(&rng.tokens_among(CONF_SOUP, 30));
        } else {
            // Line by line: mostly `key = value` with plausible values.
            for key in 0..rng.index(6) {
                match rng.below(8) {
                    0 => text.push_str(rng.pick(&["[structure]", "[other]", "# c", "; c"])),
                    1 => text.push_str(&rng.tokens_among(CONF_SOUP, 4)),
                    _ => {
                        // Keys in order mostly; sometimes repeated, indented or skipped.
                        let key = if rng.one_in(5) {
                            rng.pick(&["0", "1", " 0", "\t1", "3"]).to_owned()
                        } else {
                            key.to_string()
                        };
                        text.push_str(&key);
                        text.push_str(rng.pick(&["=", " = ", ":", " : "]));
                        if rng.one_in(4) {
                            text.push_str("flat");
                        } else {
                            let kind =
                                rng.pick(&["filename-hash", "filename-hash", "content-hash"]);
                            let algo = rng.pick(CONF_ALGOS);
                            let cutoffs = rng.pick(CONF_CUTOFFS);
                            let more = rng.pick(&["", "", ":8", ":4:4", ":x"]);
                            let gap = rng.pick(&[" ", " ", "  ", "\n  ", "\t"]);
                            text.push_str(&format!("{kind}{gap}{algo} {cutoffs}{more}"));
                        }
                    }
                }
                text.push_str(rng.pick(&["\n", "\n", "\r\n", "\n\n"]));
            }
        }
        if let Ok(values) = layout::parse_structure(&text) {
            invariants::check_structure(&text, &values);
        }
        invariants::check_layout_entry(&text);
    });
}

#[test]
fn layout_structured_confs_read_back_in_key_order() {
    check("layout_structured_confs", 1500, |rng| {
        let layouts: Vec<Layout> = (0..rng.index(5))
            .map(|_| {
                if rng.one_in(4) {
                    Layout::Flat
                } else {
                    let algo = Algo::ALL[rng.index(4)];
                    Layout::FilenameHash {
                        algo,
                        cutoffs: random_cutoffs(rng, algo),
                    }
                }
            })
            .collect();
        // Written in a shuffled key order, with comments, odd spacing and an
        // unrelated section in between.
        let mut order: Vec<usize> = (0..layouts.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.index(i + 1));
        }
        let mut text = String::from("# mirror layout\n[structure]\n");
        for i in order {
            let sep = rng.pick(&["=", " = ", ": ", "\t=\t"]);
            text.push_str(&format!("{i}{sep}{}\n", layouts[i]));
            if rng.one_in(4) {
                text.push_str("; comment\n\n");
            }
        }
        if rng.one_in(3) {
            text.push_str("[other]\n0=flat\n9 = x\n");
        }
        let values = layout::parse_structure(&text).expect("parses");
        let parsed: Vec<Layout> = values
            .iter()
            .map(|v| Layout::parse_entry(v).expect("each entry parses"))
            .collect();
        assert_eq!(parsed, layouts, "{text:?}");
        invariants::check_structure(&text, &values);
        let rendered = layout::render(&layouts);
        let values = layout::parse_structure(&rendered).unwrap();
        assert_eq!(
            layout::best(&values),
            layouts.first().cloned().unwrap_or(Layout::Flat)
        );
    });
}

#[test]
fn layout_random_bytes_never_panic() {
    check("layout_random_bytes", 3000, |rng| {
        let raw = rng.bytes(80);
        // As a `[structure]` value, a layout.conf and newline-separated directories.
        invariants::check_layout(&raw);
        let text = String::from_utf8_lossy(&raw);
        let parts: Vec<&str> = text.split('/').collect();
        invariants::check_dirs("x", &parts);
    });
}

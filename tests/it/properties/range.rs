//! `Range` headers: `range::parse` and `select` on token soups, random bytes and
//! structured ranges.

use package_cache::http::range::{self, ByteRange};

use super::{check, invariants};
use crate::support::rng::Rng;

pub const RANGE_TOKENS: &[&str] = &[
    "bytes",
    "bytes",
    "Bytes",
    "BYTES",
    "items",
    "=",
    "=",
    "-",
    "-",
    "-",
    ",",
    ",",
    " ",
    "\t",
    "0",
    "1",
    "9",
    "10",
    "499",
    "500",
    "9500",
    "18446744073709551615",
    "18446744073709551614",
    "18446744073709551616",
    "99999999999999999999999",
    "+1",
    "-0",
    "00",
    ";",
    "\u{3000}",
    "\u{e9}",
];

/// A representation length: tiny, 10 000, or any (often near a power of two).
pub fn random_length(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.below(3),
        1 => 10_000,
        _ => rng.interesting_u64(),
    }
}

#[test]
fn range_headers_from_tokens_select_within_bounds() {
    check("range_headers_from_tokens", 8000, |rng| {
        let header = if rng.one_in(3) {
            rng.tokens(RANGE_TOKENS, 12)
        } else {
            // Mostly well-formed: a unit, then specs made of number tokens.
            const NUMBERS: &[&str] = &[
                "0",
                "1",
                "9",
                "10",
                "499",
                "9500",
                "18446744073709551615",
                "18446744073709551616",
                "99999999999999999999999",
                "00",
                "+1",
                " 7",
            ];
            let specs: Vec<String> = (0..rng.index(4))
                .map(|_| {
                    let mut spec = String::new();
                    if !rng.one_in(3) {
                        spec.push_str(rng.pick(NUMBERS));
                    }
                    spec.push_str(rng.pick(&["-", "-", "-", " - ", "--", ""]));
                    if !rng.one_in(3) {
                        spec.push_str(rng.pick(NUMBERS));
                    }
                    spec
                })
                .collect();
            let unit = rng.pick(&["bytes", "bytes", "Bytes ", "items"]);
            let sep = rng.pick(&[",", ", ", ",,", " ,"]);
            format!("{unit}={}", specs.join(sep))
        };
        invariants::check_range_header(&header, random_length(rng));
    });
}

#[test]
fn range_random_bytes_never_panic() {
    check("range_random_bytes", 3000, |rng| {
        let raw = rng.bytes(30);
        // As the fuzz target reads them, and as a header for a random length.
        invariants::check_range(&raw);
        let header = String::from_utf8_lossy(&raw).into_owned();
        invariants::check_range_header(&header, random_length(rng));
    });
}

#[test]
fn range_structured_ranges_format_parse_and_select() {
    check("range_structured", 8000, |rng| {
        let ranges: Vec<ByteRange> = (0..1 + rng.index(3))
            .map(|_| match rng.below(3) {
                0 => {
                    let a = rng.interesting_u64();
                    let b = a.saturating_add(rng.interesting_u64());
                    ByteRange::FromTo(a, b)
                }
                1 => ByteRange::From(rng.interesting_u64()),
                _ => ByteRange::Suffix(rng.interesting_u64()),
            })
            .collect();
        let specs: Vec<String> = ranges
            .iter()
            .map(|r| match r {
                ByteRange::FromTo(a, b) => format!("{a}-{b}"),
                ByteRange::From(a) => format!("{a}-"),
                ByteRange::Suffix(n) => format!("-{n}"),
            })
            .collect();
        let sep = rng.pick(&[",", ", ", " , "]);
        let header = format!("bytes={}", specs.join(sep));
        assert_eq!(range::parse(&header).as_deref(), Some(ranges.as_slice()));
        for len in [0, 1, rng.interesting_u64(), u64::MAX] {
            invariants::check_range_header(&header, len);
        }
    });
}

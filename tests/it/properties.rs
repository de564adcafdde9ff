//! Property tests for every parser that sees client or upstream input: request
//! targets, `Range`, HTTP dates, conditional headers, GLEP 75 `layout.conf` and size
//! suffixes.
//!
//! No property-testing crate: a tiny deterministic PRNG (SplitMix64) generates
//! thousands of random and structured inputs per property, built from raw bytes and
//! from mixes of the tokens that make parsers trip ("%2e", "..", "//", "bytes=", huge
//! numbers, ...). Every case has its own seed; a failure names the property and the
//! seed, and `PROPERTY_SEED=<seed> cargo test --test it <name>` replays that case
//! first.
//!
//! The invariants themselves are in `properties/invariants.rs`, shared with the fuzz
//! targets in `fuzz/`: this file generates inputs and adds the properties that need to
//! know how an input was made (round trips of generated values, regressions).

mod invariants;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use package_cache::http::date;
use package_cache::http::path::{self, PathError};
use package_cache::http::range::{self, ByteRange};
use package_cache::layout::{self, Algo, Layout};
use package_cache::size;

use crate::support::rng::{Rng, fnv1a};

// ---------------------------------------------------------------------------------
// The runner (the generator is `support::rng::Rng`).

/// Runs `property` on `cases` generated inputs, each from its own seed; a failure
/// reports the property and seed. `PROPERTY_SEED` replays one seed first.
fn check(name: &str, cases: u64, mut property: impl FnMut(&mut Rng)) {
    let base = fnv1a(name.as_bytes());
    let replay = std::env::var("PROPERTY_SEED").ok().map(|s| {
        let s = s.trim_start_matches("0x");
        u64::from_str_radix(s, 16).expect("PROPERTY_SEED is hex")
    });
    let seeds = replay
        .into_iter()
        .chain((0..cases).map(|i| Rng::new(base ^ i).next_u64()));
    for seed in seeds {
        let result = catch_unwind(AssertUnwindSafe(|| property(&mut Rng::new(seed))));
        if result.is_err() {
            // libtest names the thread after the test.
            let test = std::thread::current().name().unwrap_or("").to_owned();
            panic!(
                "property {name:?} failed for seed {seed:#x}; replay with \
                 PROPERTY_SEED={seed:x} cargo test --test it -- --exact {test}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// Request targets.

const PATH_TOKENS: &[&str] = &[
    "/",
    "/",
    "/",
    "a",
    "distfiles",
    "foo-1.0.tar.gz",
    ".",
    "..",
    "//",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%0a",
    "%",
    "%4",
    "%zz",
    "%25",
    "%252e",
    "%C3%A9",
    "%c2%85",
    "%ff",
    "\u{e9}",
    "\u{85}",
    "\u{1f600}",
    "+",
    " ",
    "%20",
    "~",
    "?",
    "#",
    "&",
    "=",
    "http://",
    "HTTPS://",
    "http:/",
    "host:80",
    "*",
];

#[test]
fn path_targets_from_tokens_are_safe_or_refused() {
    check("path_targets_from_tokens", 6000, |rng| {
        let mut target = rng.tokens(PATH_TOKENS, 14);
        if rng.one_in(2) {
            target.insert(0, '/');
        }
        invariants::check_path_str(&target);
    });
}

#[test]
fn path_random_strings_never_panic() {
    check("path_random_strings", 4000, |rng| {
        let raw = rng.bytes(40);
        if rng.one_in(2) {
            invariants::check_path(&raw);
        } else {
            invariants::check_path_str(&rng.string(40));
        }
    });
}

#[test]
fn path_encode_then_decode_is_identity() {
    check("path_encode_decode", 5000, |rng| {
        invariants::check_path_encode(&rng.string(60));
    });
}

#[test]
fn path_valid_paths_round_trip_and_one_bad_segment_spoils_them() {
    check("path_valid_paths", 4000, |rng| {
        let n = 1 + rng.index(6);
        let mut segments: Vec<String> = (0..n)
            .map(|_| {
                let s: String = (0..1 + rng.index(20))
                    .map(|_| {
                        let c = rng.char();
                        if c == '/' || c == '\\' || c.is_control() {
                            'x'
                        } else {
                            c
                        }
                    })
                    .collect();
                if s == "." || s == ".." {
                    "dot".into()
                } else {
                    s
                }
            })
            .collect();
        let trailing = if rng.one_in(3) { "/" } else { "" };
        let good = format!("/{}{trailing}", segments.join("/"));
        assert_eq!(path::check(&good), Ok(()), "{good:?}");
        invariants::assert_safe_path(&good, &good);
        let t = path::parse_target(&format!("{}?q=1", path::encode(&good))).unwrap();
        assert_eq!(
            (t.path.as_str(), t.query.as_deref()),
            (good.as_str(), Some("q=1"))
        );

        let i = rng.index(segments.len());
        let mut bad = rng.pick(&["", ".", ".."]);
        if bad.is_empty() && i == segments.len() - 1 && trailing.is_empty() {
            bad = ".."; // "/a/" is a directory, not an empty segment
        }
        segments[i] = bad.to_owned();
        let spoiled = format!("/{}{trailing}", segments.join("/"));
        assert_eq!(
            path::check(&spoiled),
            Err(PathError::BadSegment),
            "{spoiled:?}"
        );
        let encoded = path::encode(&spoiled).replace('.', "%2e");
        assert_eq!(
            path::parse_target(&encoded),
            Err(PathError::BadSegment),
            "{encoded:?}"
        );
    });
}

#[test]
fn path_absolute_form_with_non_ascii_does_not_panic() {
    // Regression: the scheme was compared by slicing the target at a byte offset that
    // could fall inside a multi-byte character.
    for target in [
        "http:/\u{e9}",
        "http:/\u{e9}x/y",
        "https:/\u{e9}",
        "htt\u{e9}://x/",
        "\u{1f600}\u{1f600}",
        "http://\u{e9}/a",
    ] {
        let got = path::parse_target(target).map(|t| t.path);
        let want = if target == "http://\u{e9}/a" {
            Ok("/a".to_owned())
        } else {
            Err(PathError::NotAbsolute)
        };
        assert_eq!(got, want, "{target:?}");
    }
}

// ---------------------------------------------------------------------------------
// Range.

const RANGE_TOKENS: &[&str] = &[
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

fn random_length(rng: &mut Rng) -> u64 {
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

// ---------------------------------------------------------------------------------
// HTTP dates.

use invariants::MAX_DATE_SECS;

/// 2100-01-01T00:00:00Z.
const YEAR_2100: u64 = 4_102_444_800;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The same instant in RFC 850 and asctime form, from its IMF-fixdate.
fn other_forms(imf: &str) -> (String, String) {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (day, rest) = imf.split_once(", ").unwrap();
    let f: Vec<&str> = rest.split(' ').collect();
    let long_day = match day {
        "Sun" => "Sunday",
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        _ => "Saturday",
    };
    let rfc850 = format!(
        "{long_day}, {}-{}-{} {} GMT",
        f[0],
        f[1],
        &f[2][f[2].len() - 2..],
        f[3]
    );
    let asctime = format!(
        "{day} {} {:>2} {} {}",
        f[1],
        f[0].trim_start_matches('0'),
        f[3],
        f[2]
    );
    (rfc850, asctime)
}

#[test]
fn date_format_parse_round_trips_1970_to_2100_in_all_three_forms() {
    check("date_round_trip", 6000, |rng| {
        let secs = rng.below(YEAR_2100);
        let t = at(secs);
        let imf = date::format(t);
        assert_eq!(imf.len(), 29, "{imf:?}");
        assert_eq!(date::parse(&imf), Some(t), "{imf:?}");
        let (rfc850, asctime) = other_forms(&imf);
        assert_eq!(date::parse(&asctime), Some(t), "{asctime:?}");
        // Two-digit years read as 1970..2069.
        if secs < 3_155_760_000 {
            assert_eq!(date::parse(&rfc850), Some(t), "{rfc850:?}");
        }
        // Sub-second parts are dropped, never rounded up.
        let nanos = Duration::from_nanos(rng.below(1_000_000_000));
        assert_eq!(date::format(t + nanos), imf);
    });
}

#[test]
fn date_any_second_formats_and_the_range_ends_at_9999() {
    check("date_any_second", 4000, |rng| {
        let secs = match rng.below(3) {
            0 => rng.below(MAX_DATE_SECS + 1),
            1 => MAX_DATE_SECS - 5 + rng.below(10),
            _ => rng.next_u64() >> rng.below(30),
        };
        invariants::check_date_secs(secs);
    });
    assert_eq!(
        date::format(UNIX_EPOCH - Duration::from_secs(1)),
        date::format(UNIX_EPOCH)
    );
}

const DATE_TOKENS: &[&str] = &[
    "Sun",
    "Sunday",
    ", ",
    ",",
    " ",
    " ",
    " ",
    "  ",
    "-",
    ":",
    "GMT",
    "PST",
    "Nov",
    "nov",
    "Feb",
    "Dec",
    "Foo",
    "06",
    "6",
    "29",
    "31",
    "00",
    "1994",
    "94",
    "1969",
    "9999",
    "10000",
    "08:49:37",
    "23:59:60",
    "24:00:00",
    "-1",
    "+1",
    "+6",
    "-01",
    "1",
    "7",
    "00:00:00",
    "\t",
    "99999999999999999999",
];

#[test]
fn date_token_soup_is_read_as_written_or_refused() {
    check("date_token_soup", 10_000, |rng| {
        let text = rng.tokens(DATE_TOKENS, 12);
        invariants::check_date_text(&text);
    });
}

#[test]
fn date_mutated_valid_dates_are_read_as_written_or_refused() {
    check("date_mutations", 10_000, |rng| {
        let imf = date::format(at(rng.below(YEAR_2100)));
        let (rfc850, asctime) = other_forms(&imf);
        let mut text = match rng.below(3) {
            0 => imf,
            1 => rfc850,
            _ => asctime,
        };
        for _ in 0..1 + rng.index(3) {
            if text.is_empty() {
                break;
            }
            let mut at = rng.index(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => text.insert_str(at, rng.pick(&["-", "+", " ", "0", "9", ":", ",", "\u{e9}"])),
                1 => {
                    text.remove(at);
                }
                _ => {
                    text.remove(at);
                    text.insert_str(at, rng.pick(&["-", "+", "0", "5", "9", " "]));
                }
            }
        }
        invariants::check_date_text(&text);
    });
}

#[test]
fn date_fuzz_inputs_are_read_as_the_fuzz_target_reads_them() {
    check("date_fuzz_inputs", 3000, |rng| {
        // Eight bytes of seconds (when there are eight), then text.
        let mut data = rng.interesting_u64().to_le_bytes().to_vec();
        data.truncate(rng.index(9));
        data.extend(rng.tokens(DATE_TOKENS, 12).bytes());
        invariants::check_date(&data);
    });
}

#[test]
fn date_signed_fields_are_refused() {
    // Regression: fields were read with `str::parse`, which takes a sign, so an
    // asctime hour of "-1" meant the day before and "+6" was a day of the month.
    for bad in [
        "Sun Nov  6 -1:49:37 1994",
        "Sun Nov  6 08:-1:37 1994",
        "Sun Nov  6 08:49:-1 1994",
        "Sun Nov +6 08:49:37 1994",
        "Sun Nov  6 +8:49:37 1994",
        "Sun, +6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 +8:49:37 GMT",
        "Sun, 06 Nov 1994 08:+9:37 GMT",
        "Sunday, 06-Nov-+4 08:49:37 GMT",
        "Sun Nov  6 08:49:37 +994",
    ] {
        assert_eq!(date::parse(bad), None, "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------
// Conditional requests.

/// Header values for conditional requests: ranges, dates, tags; "" leaves the header out.
const CONDITIONAL_VALUES: &[&str] = &[
    "",
    "bytes=0-499",
    "bytes=10-",
    "bytes=-10",
    "bytes=0-0,-1",
    "bytes=18446744073709551615-",
    "bytes=-18446744073709551615",
    "bytes=0-18446744073709551615",
    "bytes=5-1",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:38 GMT",
    "Sun, 06 Nov 1994 08:49:36 GMT",
    "Sun Nov  6 08:49:37 1994",
    "\"abc\"",
    "W/\"abc\"",
    "\"x\", W/\"abc\"",
    "\"other\"",
    "*",
    " * ",
    "garbage",
];

#[test]
fn conditional_outcomes_stay_within_the_representation() {
    check("conditional_outcomes", 6000, |rng| {
        let len = random_length(rng);
        let rep = invariants::representation(len, !rng.one_in(4), !rng.one_in(4));
        let method = invariants::method_from(rng.below(4));
        // Each header is absent (an empty value) half the time.
        let headers: Vec<String> = invariants::CONDITIONAL_HEADERS
            .iter()
            .map(|_| {
                let value = if rng.one_in(8) {
                    rng.tokens(RANGE_TOKENS, 6)
                } else {
                    rng.pick(CONDITIONAL_VALUES).to_owned()
                };
                if !value.is_empty() && rng.one_in(2) {
                    value
                } else {
                    String::new()
                }
            })
            .collect();
        let req = invariants::conditional_request(method, &headers);
        invariants::check_conditional_request(&req, &rep);
    });
}

#[test]
fn conditional_fuzz_inputs_are_read_as_the_fuzz_target_reads_them() {
    check("conditional_fuzz_inputs", 3000, |rng| {
        // Flags, length, then the four header values separated by newlines.
        let mut data = vec![rng.next_u64() as u8];
        data.extend(rng.interesting_u64().to_le_bytes());
        let values: Vec<&str> = (0..rng.index(5))
            .map(|_| rng.pick(CONDITIONAL_VALUES))
            .collect();
        data.extend(values.join("\n").bytes());
        invariants::check_conditional(&data);
    });
}

// ---------------------------------------------------------------------------------
// GLEP 75 layouts.

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

// ---------------------------------------------------------------------------------
// Sizes.

#[test]
fn size_plain_numbers_and_suffixes_scale_exactly() {
    check("size_suffixes", 6000, |rng| {
        let n = rng.interesting_u64();
        invariants::check_size_value(n);
        let (suffix, shift) = [
            ("", 0),
            ("B", 0),
            ("k", 10),
            ("KiB", 10),
            ("M", 20),
            ("mb", 20),
            ("G", 30),
            ("GiB", 30),
            ("T", 40),
            ("tB", 40),
        ][rng.index(10)];
        let want = n.checked_mul(1 << shift);
        let text = format!(
            "{}{n}{suffix}{}",
            rng.pick(&["", " "]),
            rng.pick(&["", " \t"])
        );
        assert_eq!(size::parse(&text).ok(), want, "{text:?}");
    });
}

#[test]
fn size_fractions_lie_between_whole_units() {
    check("size_fractions", 6000, |rng| {
        let whole = rng.below(1 << 20);
        let frac: String = (0..1 + rng.index(12))
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        let (suffix, shift) = [("K", 10), ("M", 20), ("G", 30), ("T", 40)][rng.index(4)];
        let text = format!("{whole}.{frac}{suffix}");
        let n = size::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            n >= whole << shift && n < (whole + 1) << shift,
            "{text:?} -> {n}"
        );
        // More fraction digits never make it smaller.
        let more = format!("{whole}.{frac}9{suffix}");
        assert!(size::parse(&more).unwrap() >= n, "{more:?}");
        // Exact for what nine digits say: floor(0.frac × unit).
        let digits = &frac[..frac.len().min(9)];
        let scaled = (digits.parse::<u128>().unwrap() << shift) / 10u128.pow(digits.len() as u32);
        assert_eq!(
            u128::from(n),
            (u128::from(whole) << shift) + scaled,
            "{text:?}"
        );
    });
}

#[test]
fn size_format_is_monotonic_and_close() {
    let mut values: Vec<u64> = vec![0, 1, 1023, 1024, 1025, 1536, (1 << 20) - 1, 1 << 20];
    for shift in [10, 20, 30, 40, 50, 60] {
        values.extend([(1u64 << shift) - 1, 1 << shift, (1 << shift) + 1]);
    }
    values.push(u64::MAX);
    let mut rng = Rng::new(fnv1a(b"size_format"));
    values.extend((0..5000).map(|_| rng.interesting_u64()));
    values.sort_unstable();
    for &n in &values {
        invariants::check_size_value(n);
    }
    for pair in values.windows(2) {
        invariants::check_size_order(pair[0], pair[1]);
    }
}

const SIZE_TOKENS: &[&str] = &[
    "0",
    "1",
    "5",
    "9",
    "00",
    ".",
    ".",
    "K",
    "k",
    "M",
    "G",
    "g",
    "T",
    "P",
    "B",
    "b",
    "iB",
    "i",
    " ",
    "\t",
    "-",
    "+",
    "e",
    "E3",
    "_",
    ",",
    "99999999999999999999",
    "18446744073709551615",
    "\u{e9}",
    "\u{ff11}",
];

#[test]
fn size_token_soup_is_read_as_written_or_refused() {
    check("size_token_soup", 10_000, |rng| {
        invariants::check_size_text(&rng.tokens(SIZE_TOKENS, 8));
    });
}

#[test]
fn size_fuzz_inputs_are_read_as_the_fuzz_target_reads_them() {
    check("size_fuzz_inputs", 3000, |rng| {
        // Sixteen bytes of two numbers (or not), then text.
        let mut data = Vec::new();
        if !rng.one_in(3) {
            data.extend(rng.interesting_u64().to_le_bytes());
            data.extend(rng.interesting_u64().to_le_bytes());
        }
        data.extend(rng.tokens(SIZE_TOKENS, 8).bytes());
        invariants::check_size(&data);
    });
}

//! Size suffixes: `size::parse` and `format`.

use package_cache::size;

use super::{check, invariants};
use crate::support::rng::{Rng, fnv1a};

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

//! Conditional requests: `If-None-Match`, `If-Modified-Since`, `If-Range` and `Range`
//! evaluated against a representation.

use super::range::{RANGE_TOKENS, random_length};
use super::{check, invariants};

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

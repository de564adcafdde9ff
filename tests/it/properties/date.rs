//! HTTP dates: `date::format` and `parse` in the three forms, token soups, mutated dates
//! and the regressions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use package_cache::http::date;

use super::check;
use super::invariants::{self, MAX_DATE_SECS};

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

//! HTTP dates (RFC 9110 §5.6.7).
//!
//! Dates go out as IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); all three historical
//! forms are accepted coming in (IMF-fixdate, RFC 850 and asctime), because caches and
//! old clients still send them. Times are whole seconds since the Unix epoch; dates
//! before 1970 or after 9999 are refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `time` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// Sub-second precision is dropped; times before the epoch format as the epoch.
pub fn format(time: SystemTime) -> String {
    let secs = unix_seconds(time);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[((days + 4) % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Formats `time` as an RFC 3339 UTC timestamp, e.g. `1994-11-06T08:49:37Z`, for logs.
pub fn format_rfc3339(time: SystemTime) -> String {
    let secs = unix_seconds(time);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an HTTP date in any of the three forms RFC 9110 lists.
///
/// Returns `None` for anything else, including out-of-range fields; an invalid date in a
/// conditional header is ignored, as the RFC asks.
pub fn parse(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (y, mo, d, h, mi, s) = if let Some((_, rest)) = text.split_once(", ") {
        let fields: Vec<&str> = rest.split([' ', '-']).filter(|f| !f.is_empty()).collect();
        match fields.as_slice() {
            // IMF-fixdate: 06 Nov 1994 08:49:37 GMT; RFC 850: 06-Nov-94 08:49:37 GMT
            [d, mo, y, time, "GMT"] => {
                let year = match y.len() {
                    4 => number(y)?,
                    // RFC 850 two-digit years: the RFC asks to read a year more than 50
                    // years in the future as the past; for HTTP's purposes 70..99 is the
                    // 1900s and the rest the 2000s.
                    2 => {
                        let yy = number(y)?;
                        if yy >= 70 { 1900 + yy } else { 2000 + yy }
                    }
                    _ => return None,
                };
                let (h, mi, s) = parse_time(time)?;
                (year, month(mo)?, number(d)?, h, mi, s)
            }
            _ => return None,
        }
    } else {
        // asctime: Sun Nov  6 08:49:37 1994
        let fields: Vec<&str> = text.split(' ').filter(|f| !f.is_empty()).collect();
        match fields.as_slice() {
            [_, mo, d, time, y] if y.len() == 4 => {
                let (h, mi, s) = parse_time(time)?;
                (number(y)?, month(mo)?, number(d)?, h, mi, s)
            }
            _ => return None,
        }
    };
    if !(1970..=9999).contains(&y) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Whole seconds since the epoch; 0 for earlier times.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn parse_time(t: &str) -> Option<(i64, i64, i64)> {
    let mut it = t.split(':');
    let (h, m, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    // A leap second (60) is read as the last second of the minute.
    (h < 24 && m < 60 && s <= 60).then_some((h, m, s.min(59)))
}

/// A field of ASCII digits (`str::parse` alone would also take a sign: `-1`, `+6`).
fn number(field: &str) -> Option<i64> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

fn month(name: &str) -> Option<i64> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as i64 + 1)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's algorithms, http://howardhinnant.github.io/date_algorithms.html
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_the_rfc_example() {
        assert_eq!(format(at(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_rfc3339(at(784_111_777)), "1994-11-06T08:49:37Z");
    }

    #[test]
    fn parses_all_three_forms() {
        let want = Some(at(784_111_777));
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(parse("  Sun, 06 Nov 1994 08:49:37 GMT "), want);
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "yesterday",
            "Sun, 31 Feb 2021 00:00:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 19944 08:49:37 GMT",
            "Sun, 99999999999999999999 Nov 1994 08:49:37 GMT",
            // Signed fields: an asctime hour of -1 used to mean the day before.
            "Sun Nov  6 -1:49:37 1994",
            "Sun Nov +6 08:49:37 1994",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:+9:37 GMT",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_every_day_for_decades() {
        // One timestamp a day (at a varying second) from 1970 to 2100.
        let mut secs = 0u64;
        while secs < 4_102_444_800 {
            let t = at(secs);
            assert_eq!(parse(&format(t)), Some(t), "{secs}");
            secs += 86_400 + 3_607;
        }
    }

    #[test]
    fn leap_days() {
        assert_eq!(
            parse("Tue, 29 Feb 2000 12:00:00 GMT")
                .map(format)
                .as_deref(),
            Some("Tue, 29 Feb 2000 12:00:00 GMT")
        );
        assert_eq!(parse("Thu, 29 Feb 1900 12:00:00 GMT"), None);
    }
}

//! Byte sizes as people write them on a command line: `500M`, `1.5G`, `20000`.
//!
//! Suffixes are binary, as in nginx and du: `K` = 1024, `M` = 1024², `G` = 1024³,
//! `T` = 1024⁴, each optionally followed by `B` or `iB` (`10GiB`, `10GB`, `10g` are the
//! same). A bare number is bytes. A decimal fraction is allowed before a suffix.

use std::fmt;

/// Why a size did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for SizeError {}

/// Parses `text` (`500M`, `1.5G`, `20000`, `10GiB`) into bytes.
pub fn parse(text: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: text.to_owned(),
        reason,
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    if number.is_empty() {
        return Err(err("expected a number such as 500M or 20G"));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err("unknown suffix (use K, M, G or T)")),
    };
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
        return Err(err("expected a number such as 500M or 20G"));
    }
    let too_big = || err("too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let mut bytes = whole.checked_shl(shift).filter(|b| b >> shift == whole);
    if !frac.is_empty() {
        if shift == 0 {
            return Err(err("a fraction of a byte"));
        }
        // Up to 9 fractional digits are exact enough for any unit here.
        let digits = &frac[..frac.len().min(9)];
        let scale = 10u128.pow(digits.len() as u32);
        let f: u128 = digits.parse().map_err(|_| too_big())?;
        let part = (f << shift) / scale;
        bytes = bytes.and_then(|b| b.checked_add(u64::try_from(part).ok()?));
    }
    bytes.ok_or_else(too_big)
}

/// Formats `bytes` for people: `0 B`, `512 B`, `1.5 KiB`, `20.0 GiB`.
pub fn format(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary_and_case_insensitive() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("20000"), Ok(20000));
        assert_eq!(parse("1K"), Ok(1024));
        assert_eq!(parse("1k"), Ok(1024));
        assert_eq!(parse("500M"), Ok(500 << 20));
        assert_eq!(parse("10GiB"), Ok(10 << 30));
        assert_eq!(parse("10GB"), Ok(10 << 30));
        assert_eq!(parse("2T"), Ok(2 << 40));
        assert_eq!(parse("1.5G"), Ok(3 << 29));
        assert_eq!(parse(".5K"), Ok(512));
        assert_eq!(parse("100B"), Ok(100));
    }

    #[test]
    fn bad_sizes_say_why() {
        for bad in [
            "",
            "G",
            "1X",
            "1.2.3G",
            "1.5",
            "-1G",
            "1 G G",
            ".",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse("16777216T").unwrap_err().reason, "too large");
        assert!(parse("1Q").unwrap_err().to_string().contains("\"1Q\""));
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format(0), "0 B");
        assert_eq!(format(1023), "1023 B");
        assert_eq!(format(1536), "1.5 KiB");
        assert_eq!(format(20 << 30), "20.0 GiB");
    }
}

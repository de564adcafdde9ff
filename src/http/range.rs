//! The `Range` request header (RFC 9110 §14).
//!
//! Only byte ranges exist. A header that does not parse is ignored (the RFC lets a
//! server ignore `Range`), so a garbled header gets the whole representation. Several
//! ranges in one header are answered with the whole representation too: package
//! clients ask for one range (`wget -c` sends `bytes=N-`), and a client that asked for
//! several knows a 200 carries everything.

/// One `first-last`, `first-` or `-suffix` range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`: bytes a through b inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`: from byte a to the end.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// What a `Range` header asks of a representation of a known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// No usable range: send everything with 200.
    Full,
    /// Send `len` bytes from `start` with 206.
    Partial {
        /// The first byte.
        start: u64,
        /// How many bytes.
        len: u64,
    },
    /// No requested byte exists: 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// Parses a `Range` header value. `None` means the header must be ignored.
pub fn parse(value: &str) -> Option<Vec<ByteRange>> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut ranges = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        let range = match (first.is_empty(), last.is_empty()) {
            (true, true) => return None,
            (true, false) => ByteRange::Suffix(number(last)?),
            (false, true) => ByteRange::From(number(first)?),
            (false, false) => {
                let (a, b) = (number(first)?, number(last)?);
                if b < a {
                    return None;
                }
                ByteRange::FromTo(a, b)
            }
        };
        ranges.push(range);
    }
    (!ranges.is_empty()).then_some(ranges)
}

/// Decides what to send for `ranges` of a representation `len` bytes long.
pub fn select(ranges: &[ByteRange], len: u64) -> Selection {
    let satisfiable: Vec<(u64, u64)> = ranges.iter().filter_map(|r| resolve(*r, len)).collect();
    match satisfiable.as_slice() {
        [] => Selection::Unsatisfiable,
        [(start, len)] => Selection::Partial {
            start: *start,
            len: *len,
        },
        _ => Selection::Full,
    }
}

/// The `(start, len)` a single range covers, or `None` when no byte of it exists.
fn resolve(range: ByteRange, len: u64) -> Option<(u64, u64)> {
    match range {
        ByteRange::FromTo(a, _) | ByteRange::From(a) if a >= len => None,
        ByteRange::FromTo(a, b) => Some((a, b.min(len - 1) - a + 1)),
        ByteRange::From(a) => Some((a, len - a)),
        ByteRange::Suffix(0) => None,
        ByteRange::Suffix(_) if len == 0 => None,
        ByteRange::Suffix(n) => {
            let n = n.min(len);
            Some((len - n, n))
        }
    }
}

/// Digits only: no sign, no spaces, no overflow.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `Content-Range` value for `len` bytes from `start` of `total`.
pub fn content_range(start: u64, len: u64, total: u64) -> String {
    format!("bytes {}-{}/{}", start, start + len - 1, total)
}

#[cfg(test)]
mod tests {
    use super::ByteRange::*;
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse("bytes=0-499"), Some(vec![FromTo(0, 499)]));
        assert_eq!(parse("bytes=9500-"), Some(vec![From(9500)]));
        assert_eq!(parse("bytes=-500"), Some(vec![Suffix(500)]));
        assert_eq!(
            parse("Bytes = 0-0, -1"),
            Some(vec![FromTo(0, 0), Suffix(1)])
        );
    }

    #[test]
    fn ignores_what_does_not_parse() {
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn selects_against_a_length() {
        let one = |r| select(&[r], 10_000);
        assert_eq!(
            one(FromTo(0, 499)),
            Selection::Partial { start: 0, len: 500 }
        );
        assert_eq!(
            one(From(9500)),
            Selection::Partial {
                start: 9500,
                len: 500
            }
        );
        assert_eq!(
            one(Suffix(500)),
            Selection::Partial {
                start: 9500,
                len: 500
            }
        );
        assert_eq!(
            one(Suffix(20_000)),
            Selection::Partial {
                start: 0,
                len: 10_000
            }
        );
        assert_eq!(
            one(FromTo(9999, 20_000)),
            Selection::Partial {
                start: 9999,
                len: 1
            }
        );
        assert_eq!(one(From(10_000)), Selection::Unsatisfiable);
        assert_eq!(one(Suffix(0)), Selection::Unsatisfiable);
        assert_eq!(select(&[From(0)], 0), Selection::Unsatisfiable);
        assert_eq!(select(&[Suffix(3)], 0), Selection::Unsatisfiable);
        assert_eq!(select(&[FromTo(0, 1), From(5)], 10), Selection::Full);
        assert_eq!(
            select(&[From(50), FromTo(2, 3)], 10),
            Selection::Partial { start: 2, len: 2 }
        );
    }

    #[test]
    fn content_range_is_inclusive() {
        assert_eq!(content_range(0, 500, 10_000), "bytes 0-499/10000");
    }
}

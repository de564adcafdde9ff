//! Decoding a request target into a safe path, once, at the edge.
//!
//! The result is an absolute, percent-decoded UTF-8 path made of non-empty segments
//! that are neither `.` nor `..` and contain no NUL, backslash or control character.
//! An optional single trailing `/` is kept (it names a directory). Anything else is
//! refused with a [`PathError`] that says why; the server answers 400 or 414.
//!
//! Absolute-form targets (`GET http://host/path HTTP/1.1`, as sent to proxies) are
//! reduced to their path: the host in them is never a routing instruction.

use std::fmt;

/// Longest decoded path accepted (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Longest decoded segment accepted (Linux's `NAME_MAX`).
pub const MAX_SEGMENT: usize = 255;

/// Why a request target was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The target is not `/…` or `http(s)://host/…`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// NUL, backslash or another control character.
    ForbiddenCharacter,
    /// An empty (`//`), `.` or `..` segment.
    BadSegment,
    /// Longer than [`MAX_PATH`], or a segment longer than [`MAX_SEGMENT`].
    TooLong,
}

impl PathError {
    /// The status to answer with: 414 for [`PathError::TooLong`], else 400.
    pub fn status(&self) -> u16 {
        match self {
            PathError::TooLong => 414,
            _ => 400,
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "request target is not an absolute path",
            PathError::BadEscape => "bad percent-escape in path",
            PathError::NotUtf8 => "path is not utf-8",
            PathError::ForbiddenCharacter => "path contains a forbidden character",
            PathError::BadSegment => "path contains an empty, '.' or '..' segment",
            PathError::TooLong => "path too long",
        })
    }
}

impl std::error::Error for PathError {}

/// A request target split into its decoded path and raw query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The decoded, checked path; starts with `/`.
    pub path: String,
    /// The query string after `?`, still encoded, if there was one.
    pub query: Option<String>,
}

/// Decodes and checks a request target as received on the request line.
pub fn parse_target(target: &str) -> Result<Target, PathError> {
    let target = strip_origin(target).ok_or(PathError::NotAbsolute)?;
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    if !raw_path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw_path.len() > 3 * MAX_PATH {
        return Err(PathError::TooLong);
    }
    let path = decode(raw_path)?;
    check(&path)?;
    Ok(Target { path, query })
}

/// Checks an already decoded absolute path against the rules in the module docs.
pub fn check(path: &str) -> Result<(), PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if path.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(PathError::ForbiddenCharacter);
    }
    if path == "/" {
        return Ok(());
    }
    let inner = &path[1..];
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    for segment in inner.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(PathError::BadSegment);
        }
        if segment.len() > MAX_SEGMENT {
            return Err(PathError::TooLong);
        }
    }
    Ok(())
}

/// Percent-decodes `raw`; `+` stays `+` (it only means space in forms).
pub fn decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let value = (hex_value(hex[0]).ok_or(PathError::BadEscape)? << 4)
                | hex_value(hex[1]).ok_or(PathError::BadEscape)?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Percent-encodes a decoded path for use in a URL: every byte but the unreserved
/// characters (RFC 3986) and `/` is escaped, so `+` becomes `%2B` as portage sends it.
pub fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `http://host[:port]/path` → `/path`; `/path` stays; anything else is `None`.
fn strip_origin(target: &str) -> Option<&str> {
    // Compared as bytes: slicing the str could split a multi-byte character.
    let lower_scheme = |s: &str| {
        ["http://", "https://"]
            .into_iter()
            .find(|p| {
                s.as_bytes()
                    .get(..p.len())
                    .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
            })
            .map(str::len)
    };
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = &target[lower_scheme(target)?..];
    match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some(&rest[i..]),
        // `http://host?x` has an empty path, which means `/`.
        _ => Some("/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(t: &str) -> Result<String, PathError> {
        parse_target(t).map(|t| t.path)
    }

    #[test]
    fn decodes_once() {
        assert_eq!(
            path("/distfiles/foo%2Bbar-1.0.tar.gz"),
            Ok("/distfiles/foo+bar-1.0.tar.gz".into())
        );
        assert_eq!(path("/a+b"), Ok("/a+b".into()));
        // %252e is a literal "%2e" after one decode, which is an ordinary name.
        assert_eq!(path("/a/%252e%252e"), Ok("/a/%2e%2e".into()));
        assert_eq!(path("/caf%C3%A9"), Ok("/café".into()));
    }

    #[test]
    fn splits_query_and_fragment() {
        let t = parse_target("/x?a=1&b#frag").unwrap();
        assert_eq!(t.path, "/x");
        assert_eq!(t.query.as_deref(), Some("a=1&b"));
    }

    #[test]
    fn reduces_absolute_form_to_its_path() {
        assert_eq!(
            path("http://evil.example:8080/distfiles/x"),
            Ok("/distfiles/x".into())
        );
        assert_eq!(path("HTTPS://evil.example"), Ok("/".into()));
        assert_eq!(path("http://evil.example?x"), Ok("/".into()));
        assert_eq!(path("ftp://evil.example/x"), Err(PathError::NotAbsolute));
        assert_eq!(path("*"), Err(PathError::NotAbsolute));
        assert_eq!(path("evil.example:443"), Err(PathError::NotAbsolute));
        // Non-ASCII where the scheme would end must not split a character.
        assert_eq!(path("http:/\u{e9}"), Err(PathError::NotAbsolute));
        assert_eq!(path("https:/\u{e9}x"), Err(PathError::NotAbsolute));
        assert_eq!(path("http://\u{e9}/a"), Ok("/a".into()));
    }

    #[test]
    fn refuses_traversal_and_oddities() {
        for (target, want) in [
            ("/../etc/passwd", PathError::BadSegment),
            ("/a/%2e%2e/b", PathError::BadSegment),
            ("/a/%2E%2e", PathError::BadSegment),
            ("/a/./b", PathError::BadSegment),
            ("/a//b", PathError::BadSegment),
            ("//a", PathError::BadSegment),
            ("/a/%00b", PathError::ForbiddenCharacter),
            ("/a%5C..%5Cb", PathError::ForbiddenCharacter),
            ("/a\\b", PathError::ForbiddenCharacter),
            ("/a%0Ab", PathError::ForbiddenCharacter),
            ("/a%zz", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/%ff", PathError::NotUtf8),
            ("a/b", PathError::NotAbsolute),
        ] {
            assert_eq!(path(target), Err(want), "{target:?}");
        }
    }

    #[test]
    fn refuses_overlong_paths() {
        let long_segment = format!("/{}", "a".repeat(MAX_SEGMENT + 1));
        assert_eq!(path(&long_segment), Err(PathError::TooLong));
        let long_path = "/abcdefgh".repeat(MAX_PATH / 9 + 1);
        assert_eq!(path(&long_path), Err(PathError::TooLong));
        assert_eq!(PathError::TooLong.status(), 414);
        assert_eq!(PathError::BadSegment.status(), 400);
    }

    #[test]
    fn keeps_root_and_one_trailing_slash() {
        assert_eq!(path("/"), Ok("/".into()));
        assert_eq!(path("/distfiles/"), Ok("/distfiles/".into()));
    }

    #[test]
    fn encode_inverts_decode() {
        for p in ["/distfiles/foo+bar 1%.tar.gz", "/a/b~c_d-e.f", "/café/ü"] {
            assert_eq!(decode(&encode(p)).as_deref(), Ok(p));
        }
        assert_eq!(encode("/x+y z"), "/x%2By%20z");
    }
}

//! The `Via` header (RFC 9110 §7.6.3): which intermediaries a message passed through.
//!
//! A field value is a comma-separated list of entries, oldest first:
//! `1.1 site-cache:4000 (package-cache/0.2.0), 1.1 regional:4000 (package-cache/0.2.0)`.
//! Each entry is `[protocol-name/]protocol-version received-by [comment]`; a comment is
//! parenthesised and may itself contain commas and nested parentheses, so the list is
//! not split on every comma.
//!
//! Caches that chain use it twice: a request that already names this instance has gone
//! round in a loop (the mirror answers `508 Loop Detected`), and a response whose entry
//! carries our product comment came from another package-cache (whose downloads may be
//! waiting on ours).

/// The product named in our entries' comment (`(package-cache/0.2.0)`).
pub const PRODUCT: &str = "package-cache";

/// One entry of a `Via` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `1.1`, `HTTP/1.1`.
    pub protocol: &'a str,
    /// The intermediary's name: a host, `host:port`, or a pseudonym.
    pub received_by: &'a str,
    /// The comment without its parentheses, if any (`package-cache/0.2.0`).
    pub comment: Option<&'a str>,
}

/// The entries of one or more `Via` field values, in order. Malformed entries (no
/// received-by) are skipped.
pub fn entries<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Entry<'a>> {
    values
        .into_iter()
        .flat_map(split)
        .filter_map(entry)
        .collect()
}

/// Whether `values` name `name` as an intermediary (host names compare without regard
/// to case).
pub fn names<'a>(values: impl IntoIterator<Item = &'a str>, name: &str) -> bool {
    entries(values)
        .iter()
        .any(|e| e.received_by.eq_ignore_ascii_case(name))
}

/// Whether `values` hold an entry of a package-cache (by the comment our entries
/// carry).
pub fn from_package_cache<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    entries(values).iter().any(|e| {
        e.comment
            .is_some_and(|c| c.split('/').next() == Some(PRODUCT))
    })
}

/// Our entry for an instance called `name`: `1.1 NAME (package-cache/VERSION)`.
pub fn entry_for(name: &str) -> String {
    format!("1.1 {name} ({PRODUCT}/{})", env!("CARGO_PKG_VERSION"))
}

/// The entries of `values` rewritten in a canonical form, joined with `, `; `None`
/// when there are none. What is passed on upstream is built from what parsed, so
/// nothing a client sent reaches a source unless it reads as a Via entry.
pub fn normalise<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let list: Vec<String> = entries(values)
        .iter()
        .filter(|e| {
            e.protocol.bytes().all(is_token_or_slash)
                && e.received_by.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|e| match e.comment {
            Some(c) if c.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) => {
                format!("{} {} ({c})", e.protocol, e.received_by)
            }
            _ => format!("{} {}", e.protocol, e.received_by),
        })
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// Checks a name for `--name`: it goes into `Via` as a received-by, so it must be a
/// token-like word (a host name, `host:port`, a pseudonym): no spaces, commas,
/// parentheses or quotes.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 255 {
        return Err("longer than 255 characters");
    }
    if !name.bytes().all(is_name_byte) {
        return Err("only letters, digits and - . _ : [ ] are allowed");
    }
    Ok(())
}

/// The default name of an instance listening on `port`: this machine's host name and
/// the port (`build-host:4000`), so two instances on one machine differ.
pub fn default_name(port: u16) -> String {
    format!("{}:{port}", host_name())
}

/// This machine's host name (`localhost` if it has none that can be used).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(h) if rc == 0 && check_name(h).is_ok() => h.to_owned(),
        _ => "localhost".to_owned(),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
}

fn is_token_or_slash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

/// Splits a field value at the commas that are not inside a comment.
fn split(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut escaped) = (0usize, 0, false);
    for (i, b) in value.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if depth > 0 => escaped = true,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter()
}

/// Parses one entry: protocol, received-by, and the rest as a comment.
fn entry(text: &str) -> Option<Entry<'_>> {
    let text = text.trim_matches([' ', '\t']);
    let (protocol, rest) = text.split_once([' ', '\t'])?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let (received_by, comment) = match rest.split_once([' ', '\t']) {
        Some((by, c)) => (by, Some(c.trim())),
        None => (rest, None),
    };
    if protocol.is_empty() || received_by.is_empty() || received_by.starts_with('(') {
        return None;
    }
    let comment = comment
        .and_then(|c| c.strip_prefix('('))
        .and_then(|c| c.strip_suffix(')'));
    Some(Entry {
        protocol,
        received_by,
        comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_split_outside_comments() {
        let e = entries([
            "1.0 fred, 1.1 p.example.net:4000 (package-cache/0.2.0)",
            "HTTP/1.1 varnish (Varnish/6.0, with a comma (and parens)), 1.1 x",
        ]);
        let by: Vec<_> = e.iter().map(|e| e.received_by).collect();
        assert_eq!(by, ["fred", "p.example.net:4000", "varnish", "x"]);
        assert_eq!(e[1].comment, Some("package-cache/0.2.0"));
        assert_eq!(e[2].comment, Some("Varnish/6.0, with a comma (and parens)"));
        assert_eq!(e[2].protocol, "HTTP/1.1");
        assert!(entries(["", " , ,1.1", "(x)"]).is_empty());
    }

    #[test]
    fn names_and_products() {
        let v = ["1.1 a:4000 (package-cache/0.2.0), 1.1 B:4000"];
        assert!(names(v, "a:4000"));
        assert!(names(v, "b:4000"), "host names ignore case");
        assert!(!names(v, "a:4001"));
        assert!(!names(v, "a"));
        assert!(from_package_cache(v));
        assert!(!from_package_cache(["1.1 varnish (Varnish/6.0)"]));
        assert!(!from_package_cache(["1.1 package-cache"]));
    }

    #[test]
    fn normalised_values_keep_only_what_parsed() {
        assert_eq!(
            normalise(["1.0  fred ,1.1 a:1 (package-cache/1)", "garbage"]).as_deref(),
            Some("1.0 fred, 1.1 a:1 (package-cache/1)")
        );
        assert_eq!(normalise(["", " "]), None);
        assert_eq!(normalise(["1\u{1} x", "1.1 a\u{7f}"]), None);
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "build-1.example.org:4000", "[::1]:4000", "tier_2"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "a,b", "a(b)", "\"a\"", "ä"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let name = default_name(4000);
        assert!(
            name.ends_with(":4000") && check_name(&name).is_ok(),
            "{name}"
        );
        assert_eq!(
            entry_for("x:1"),
            format!("1.1 x:1 (package-cache/{})", env!("CARGO_PKG_VERSION"))
        );
    }
}

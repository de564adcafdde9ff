//! `metadata/md5-cache/CATEGORY/PF` entries: `SRC_URI` and `RESTRICT`.
//!
//! An entry is `KEY=VALUE` lines, one key per line, values unquoted and on one line
//! (portage's `md5-dict` cache format, written by `egencache`; the same format as the
//! `/var/cache/edb/dep` cache portage keeps for repositories without one). Keys we do
//! not need (`DEPEND`, `_eclasses_`, `_md5_`, …) are skipped.
//!
//! `SRC_URI` is a PMS dependency specification: URIs, `uri -> name` renames (EAPI 2+;
//! the distfile is called `name`, the arrow's target, which has no `/`), USE
//! conditionals `flag? ( … )` and `!flag? ( … )`, and groups `( … )`. Portage rejects
//! `|| ( … )` in `SRC_URI`; we flatten it like any group. **Every URI counts, whatever
//! its conditional**: a cache serves every USE configuration at once, so this is
//! portage's `use_reduce(matchall=True)`, what `emirrordist` and `repoman` use.
//! A token without a URI scheme (`foo-1.0.tar.gz`, usual in fetch-restricted
//! packages) names a distfile with no URL, as in portage's `_parse_uri_map`.
//! EAPI 8's `fetch+` and `mirror+` prefixes lift fetch and mirror restriction for
//! one URI (PMS 8.2.2); they are recorded in [`Lift`] and stripped from the URI.
//!
//! `RESTRICT` tokens that matter to fetching are `fetch`, `mirror` (portage also
//! accepts the old `nomirror`) and `primaryuri`. **A token under any USE conditional
//! counts** (`mirror? ( mirror )` is read as `mirror`): which USE flags a client
//! builds with is unknown here, and treating the file as restricted is the safe side.
//!
//! The parsers never panic and never fail: malformed pieces (an arrow without a file
//! name, a URI whose file name is empty) are skipped, as portage would refuse them.

/// The parts of an md5-cache entry this crate needs, borrowed from its text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `EAPI=`, if present.
    pub eapi: Option<&'a str>,
    /// `SRC_URI=` (empty when absent).
    pub src_uri: &'a str,
    /// `RESTRICT=` (empty when absent).
    pub restrict: &'a str,
}

/// Reads the `KEY=VALUE` lines of an md5-cache entry. Lines without `=` are skipped;
/// a key given twice keeps its last value.
pub fn parse_entry(text: &str) -> Entry<'_> {
    let mut entry = Entry::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "SRC_URI" => entry.src_uri = value,
            "RESTRICT" => entry.restrict = value,
            "EAPI" => entry.eapi = Some(value),
            _ => {}
        }
    }
    entry
}

/// Which restriction a `fetch+` or `mirror+` URI prefix lifts (EAPI 8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lift {
    /// No prefix.
    #[default]
    None,
    /// `fetch+URI`: fetch restriction does not apply to this URI; mirror restriction does.
    Fetch,
    /// `mirror+URI`: neither fetch nor mirror restriction applies to this URI.
    Mirror,
}

/// One distfile named by `SRC_URI`, with the URI it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrcUri<'a> {
    /// The distfile's name: the arrow's target, else the URI's last path component.
    pub name: &'a str,
    /// The URI without any `fetch+`/`mirror+` prefix; `None` for a bare file name.
    pub uri: Option<&'a str>,
    /// The restriction the URI's prefix lifts.
    pub lift: Lift,
}

/// Flattens a `SRC_URI` value into (name, URI) pairs in the order written, every USE
/// conditional taken. A name may appear more than once (several URIs for one file).
pub fn parse_src_uri(value: &str) -> Vec<SrcUri<'_>> {
    let tokens: Vec<&str> = value.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        i += 1;
        if is_operator(token) {
            continue;
        }
        let (lift, bare) = if let Some(rest) = token.strip_prefix("fetch+") {
            (Lift::Fetch, rest)
        } else if let Some(rest) = token.strip_prefix("mirror+") {
            (Lift::Mirror, rest)
        } else {
            (Lift::None, token)
        };
        let mut name = basename(bare);
        if tokens.get(i) == Some(&"->") {
            i += 1;
            match tokens.get(i) {
                Some(target) if !is_operator(target) && !target.contains('/') => {
                    name = target;
                    i += 1;
                }
                // `uri -> ( …`, `uri ->` at the end, `uri -> a/b`: portage refuses the
                // whole string; we drop the arrow and keep what is readable.
                _ => {}
            }
        }
        if name.is_empty() {
            continue;
        }
        let uri = has_scheme(bare).then_some(bare);
        out.push(SrcUri { name, uri, lift });
    }
    out
}

/// Whether `token` is syntax rather than a URI or file name.
fn is_operator(token: &str) -> bool {
    matches!(token, "(" | ")" | "||" | "^^" | "??" | "->") || token.ends_with('?')
}

/// The last path component, as Python's `os.path.basename`.
fn basename(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

/// Whether `s` starts with a URI scheme (`[A-Za-z][A-Za-z0-9+.-]*:`), as
/// `urllib.parse.urlparse(s).scheme` is non-empty.
pub fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The `RESTRICT` tokens that change how a distfile may be fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Restrict {
    /// `fetch`: the user must download the file by hand; portage fetches it only from
    /// `local` mirrors in `/etc/portage/mirrors` (and `fetch+`/`mirror+` URIs).
    pub fetch: bool,
    /// `mirror` (or `nomirror`): Gentoo's mirrors do not carry the file; portage skips
    /// `GENTOO_MIRRORS` and asks only `local` mirrors, then the URIs. Implied by
    /// `fetch` in portage; kept apart here, as written.
    pub mirror: bool,
    /// `primaryuri`: try the `SRC_URI` URIs before any mirror.
    pub primaryuri: bool,
}

/// Reads `RESTRICT`: every token counts, whatever its USE conditional.
pub fn parse_restrict(value: &str) -> Restrict {
    let mut r = Restrict::default();
    for token in value.split_whitespace() {
        match token {
            "fetch" => r.fetch = true,
            "mirror" | "nomirror" => r.mirror = true,
            "primaryuri" => r.primaryuri = true,
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri<'a>(name: &'a str, uri: &'a str) -> SrcUri<'a> {
        SrcUri {
            name,
            uri: Some(uri),
            lift: Lift::None,
        }
    }

    /// The shape of a real entry (app-arch/afio-2.5.2, trimmed).
    const AFIO: &str = "\
DEFINED_PHASES=compile install prepare
DESCRIPTION=Makes cpio-format archives and deals somewhat gracefully with input errors
EAPI=8
HOMEPAGE=https://github.com/kholtman/afio
IUSE=doc
KEYWORDS=~amd64 ~x86
LICENSE=Artistic LGPL-2
RESTRICT=!test? ( test ) mirror? ( mirror )
SLOT=0
SRC_URI=https://github.com/kholtman/afio/archive/refs/tags/v2.5.2.tar.gz -> afio-2.5.2.tar.gz doc? ( mirror://nongnu/acl/acl-2.3.2.tar.xz !doc? ( https://example.org/a/b/ ) ) || ( https://a.example/x.tar.gz https://b.example/x.tar.gz ) afio-extra.zip
_eclasses_=toolchain-funcs\t1e35039c2fbca2b96a9bb2e7d3e1b8b1
_md5_=0b5f2a0f0cfa0b0f0e1b0d1c1a1b1c1d
";

    #[test]
    fn a_real_looking_entry() {
        let e = parse_entry(AFIO);
        assert_eq!(e.eapi, Some("8"));
        assert!(e.restrict.starts_with("!test?"));
        let items = parse_src_uri(e.src_uri);
        assert_eq!(
            items,
            vec![
                uri(
                    "afio-2.5.2.tar.gz",
                    "https://github.com/kholtman/afio/archive/refs/tags/v2.5.2.tar.gz"
                ),
                uri("acl-2.3.2.tar.xz", "mirror://nongnu/acl/acl-2.3.2.tar.xz"),
                // https://example.org/a/b/ has no file name: skipped.
                uri("x.tar.gz", "https://a.example/x.tar.gz"),
                uri("x.tar.gz", "https://b.example/x.tar.gz"),
                SrcUri {
                    name: "afio-extra.zip",
                    uri: None,
                    lift: Lift::None
                },
            ]
        );
        let r = parse_restrict(e.restrict);
        assert_eq!(
            r,
            Restrict {
                fetch: false,
                mirror: true,
                primaryuri: false
            }
        );
    }

    #[test]
    fn prefixes_and_malformed_arrows() {
        let items = parse_src_uri(
            "fetch+https://h/a.tar.gz mirror+https://h/b.tar.gz -> bee.tar.gz \
             https://h/c.tar.gz -> ( https://h/d.tar.gz -> sub/e.tar.gz https://h/f.tar.gz ->",
        );
        let got: Vec<(&str, Option<&str>, Lift)> =
            items.iter().map(|s| (s.name, s.uri, s.lift)).collect();
        assert_eq!(
            got,
            vec![
                ("a.tar.gz", Some("https://h/a.tar.gz"), Lift::Fetch),
                ("bee.tar.gz", Some("https://h/b.tar.gz"), Lift::Mirror),
                ("c.tar.gz", Some("https://h/c.tar.gz"), Lift::None),
                ("d.tar.gz", Some("https://h/d.tar.gz"), Lift::None),
                // `sub/e.tar.gz` is not a file name: read as a (scheme-less) token.
                ("e.tar.gz", None, Lift::None),
                ("f.tar.gz", Some("https://h/f.tar.gz"), Lift::None),
            ]
        );
    }

    #[test]
    fn restrict_tokens() {
        assert_eq!(parse_restrict(""), Restrict::default());
        let r = parse_restrict("bindist? ( fetch ) nomirror primaryuri strip");
        assert!(r.fetch && r.mirror && r.primaryuri);
        assert_eq!(parse_restrict("mirrors fetchx test"), Restrict::default());
    }

    #[test]
    fn schemes() {
        assert!(has_scheme("https://x/y"));
        assert!(has_scheme("mirror://gnu/y"));
        assert!(has_scheme("svn+ssh://x"));
        assert!(!has_scheme("foo.tar.gz"));
        assert!(!has_scheme(":x"));
        assert!(!has_scheme("1http://x"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            "->",
            "-> ->",
            "(",
            ")",
            "( ) ) (",
            "a? b?",
            "/",
            "//",
            "x:",
            "x:/",
            "\0",
            "é -> ü",
            "https://é/ü -> ",
            "fetch+",
            "mirror+->",
        ] {
            let _ = parse_src_uri(s);
            let _ = parse_restrict(s);
            let _ = parse_entry(s);
        }
        // A deterministic byte soup.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b" ()?!|->/:+abcfhimoprstu.\n=#DIST0123456789";
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            }
            for item in parse_src_uri(&s) {
                assert!(!item.name.is_empty() && !item.name.contains('/'));
            }
            let _ = parse_entry(&s);
            // The other parsers get the same soup.
            let _ = super::super::manifest::parse(&format!("DIST {s}"));
            let _ = super::super::packages::parse(&s.replace('=', ": "));
            let _ = super::super::mirrors::parse(&s);
            let _ = super::super::mirrors::Mirrors::new().expand(&s);
        }
    }
}

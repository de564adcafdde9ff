//! Which sources serve a request path: those of the longest `--source /PREFIX=URL`
//! prefix the path is below, asked for the path without the prefix; or, when no
//! prefix claims it, the plain sources, asked for the path as it is. Pure: no I/O.
//!
//! The cache entry is always the path as requested (`/debian/pool/…` is stored at
//! `CACHE/debian/pool/…`), so two prefixes never share a file.

/// The sources a request goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The prefix that claimed the path, `None` for the plain sources.
    pub prefix: Option<String>,
    /// The path to ask each source for, by source index; `None` for the sources of
    /// other prefixes.
    pub paths: Vec<Option<String>>,
}

impl Route {
    /// Whether the plain sources serve the path (Gentoo's distfile mapping and
    /// `layout.conf` apply only to them).
    pub fn is_plain(&self) -> bool {
        self.prefix.is_none()
    }
}

/// Routes the decoded request `path` among sources with the `prefixes` given (by
/// source index, `None` for a plain source). `None` when no source serves it: no
/// prefix claims it and there is no plain source. A path equal to a prefix (the
/// directory itself) is not below it.
pub fn route<S: AsRef<str>>(path: &str, prefixes: &[Option<S>]) -> Option<Route> {
    let below = |p: &str| path.strip_prefix(p).filter(|rest| rest.starts_with('/'));
    let longest = prefixes
        .iter()
        .flatten()
        .map(AsRef::as_ref)
        .filter(|p| below(p).is_some())
        .max_by_key(|p| p.len());
    let paths: Vec<Option<String>> = prefixes
        .iter()
        .map(|p| match (p.as_ref().map(AsRef::as_ref), longest) {
            (Some(p), Some(l)) if p == l => below(p).map(str::to_owned),
            (None, None) => Some(path.to_owned()),
            _ => None,
        })
        .collect();
    paths.iter().any(Option::is_some).then(|| Route {
        prefix: longest.map(str::to_owned),
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(path: &str, prefixes: &[Option<&str>]) -> Option<Vec<Option<String>>> {
        route(path, prefixes).map(|r| r.paths)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn the_longest_prefix_wins_and_is_stripped() {
        let prefixes = [
            Some("/debian"),
            None,
            Some("/debian-security"),
            Some("/debian"),
            Some("/debian/extra"),
        ];
        assert_eq!(
            paths("/debian/dists/stable/InRelease", &prefixes),
            Some(vec![
                some("/dists/stable/InRelease"),
                None,
                None,
                some("/dists/stable/InRelease"),
                None
            ]),
            "failover within the prefix, in order"
        );
        assert_eq!(
            paths("/debian-security/dists/x/InRelease", &prefixes),
            Some(vec![None, None, some("/dists/x/InRelease"), None, None]),
            "a prefix matches whole segments"
        );
        assert_eq!(
            paths("/debian/extra/pool/a.deb", &prefixes),
            Some(vec![None, None, None, None, some("/pool/a.deb")])
        );
        let r = route("/debian/extra/pool/a.deb", &prefixes).unwrap();
        assert_eq!(
            (r.prefix.as_deref(), r.is_plain()),
            (Some("/debian/extra"), false)
        );
    }

    #[test]
    fn paths_under_no_prefix_go_to_the_plain_sources() {
        let prefixes = [Some("/debian"), None, None];
        let r = route("/distfiles/0a/foo.tar.gz", &prefixes).unwrap();
        assert!(r.is_plain());
        assert_eq!(
            r.paths,
            [
                None,
                some("/distfiles/0a/foo.tar.gz"),
                some("/distfiles/0a/foo.tar.gz")
            ]
        );
        assert_eq!(
            paths("/debianx/a", &prefixes),
            Some(vec![None, some("/debianx/a"), some("/debianx/a")])
        );
        // The prefix itself is a directory, not a file below it.
        assert_eq!(
            paths("/debian", &prefixes),
            Some(vec![None, some("/debian"), some("/debian")])
        );
        // Only plain sources (the Python original's command lines): every path.
        assert_eq!(
            paths("/a/b", &[None, None]),
            Some(vec![some("/a/b"), some("/a/b")])
        );
    }

    #[test]
    fn with_only_prefixed_sources_other_paths_have_none() {
        let prefixes = [Some("/debian"), Some("/archlinux")];
        assert_eq!(paths("/distfiles/foo.tar.gz", &prefixes), None);
        assert_eq!(paths("/debian", &prefixes), None);
        assert_eq!(paths("/", &prefixes), None);
        assert_eq!(
            paths("/archlinux/core/os/x86_64/core.db", &prefixes),
            Some(vec![None, some("/core/os/x86_64/core.db")])
        );
        assert_eq!(paths("/a", &[]), None);
    }
}

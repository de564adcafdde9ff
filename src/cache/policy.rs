//! Which files change in place, and when to ask the source about them again.
//!
//! Almost everything a package mirror serves is immutable: a distfile's name carries
//! its version, a dated snapshot never changes, a binary package is rebuilt under a new
//! name. Those are kept forever without asking. A few files are rewritten in place:
//!
//! - `layout.conf` (a mirror's GLEP 75 layout),
//! - binhost indexes `Packages` and `Packages.*`,
//! - `*-latest.*` (e.g. `gentoo-latest.tar.xz` and its `.md5sum`),
//! - `latest-*.txt` (release pointers under `releases/*/autobuilds/`),
//!
//! plus whatever `--mutable GLOB` adds. A copy of such a file is served without asking
//! for `--mutable-ttl` seconds after it was last fetched or confirmed; after that the
//! next request sends one conditional request (If-Modified-Since, and If-None-Match
//! when the source gave an ETag), shared by every client asking meanwhile.
//!
//! Globs: `*` matches within one path segment, `**` across segments, `?` one
//! character. A glob without `/` matches the file name; one with `/` matches the whole
//! path below the cache root (no leading `/`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::store::Key;

/// The built-in mutable globs.
pub const BUILTIN_MUTABLE: &[&str] = &[
    "layout.conf",
    "Packages",
    "Packages.*",
    "*-latest.*",
    "latest-*.txt",
];

/// The default for `--mutable-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Why a glob was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it cannot be used.
    pub reason: &'static str,
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pattern.is_empty() {
            f.write_str(self.reason)
        } else {
            write!(f, "{}: {}", self.pattern, self.reason)
        }
    }
}

impl std::error::Error for GlobError {}

/// A checked glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    whole_path: bool,
}

impl Glob {
    /// Checks `pattern`; refuses empty patterns and absolute paths.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let refuse = |reason| GlobError {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(refuse("empty pattern"));
        }
        if pattern.starts_with('/') {
            return Err(refuse(
                "patterns are relative to the cache root (drop the leading /)",
            ));
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            whole_path: pattern.contains('/'),
        })
    }

    /// Whether `path` (relative, no leading `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        glob_match(self.pattern.as_bytes(), subject.as_bytes())
    }
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&b| b == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| glob_match(rest, &s[i..]))
        }
        [b'?', rest @ ..] => matches!(s, [c, tail @ ..] if *c != b'/' && glob_match(rest, tail)),
        [c, rest @ ..] => matches!(s, [d, tail @ ..] if d == c && glob_match(rest, tail)),
    }
}

/// Whether a stored copy may be served without asking a source (RFC 9111 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Ask a source first with a conditional request (RFC 9111 §4.3); if every source
    /// fails, serve it anyway, marked stale.
    Revalidate,
}

#[derive(Debug, Clone)]
struct Checked {
    at: Instant,
    etag: Option<String>,
}

/// The freshness rules and what this process knows about each mutable file.
#[derive(Debug)]
pub struct Policy {
    globs: Vec<Glob>,
    ttl: Duration,
    checked: Mutex<HashMap<Key, Checked>>,
}

impl Policy {
    /// The built-in globs plus `extra`, with copies trusted for `ttl`.
    pub fn new(extra: &[String], ttl: Duration) -> Result<Policy, GlobError> {
        let mut globs: Vec<Glob> = BUILTIN_MUTABLE
            .iter()
            .map(|g| Glob::new(g))
            .collect::<Result<_, _>>()?;
        for g in extra {
            globs.push(Glob::new(g)?);
        }
        Ok(Policy {
            globs,
            ttl,
            checked: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `key` names a file that changes in place.
    pub fn is_mutable(&self, key: &Key) -> bool {
        self.globs.iter().any(|g| g.matches(key.as_str()))
    }

    /// Whether the copy of `key` we hold may be served as it is, or must first be
    /// confirmed with a source: always fresh for immutable files; for a mutable file,
    /// fresh for `ttl` after this process last fetched or confirmed it.
    pub fn freshness(&self, key: &Key) -> Freshness {
        if !self.is_mutable(key) {
            return Freshness::Fresh;
        }
        let checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.get(key).is_none_or(|c| c.at.elapsed() >= self.ttl) {
            Freshness::Revalidate
        } else {
            Freshness::Fresh
        }
    }

    /// Records that the copy of `key` is current as of now (fetched, confirmed, or
    /// kept after a failed check, so sources are not asked on every request).
    /// `etag` replaces the stored one when given.
    pub fn checked(&self, key: &Key, etag: Option<String>) {
        if !self.is_mutable(key) {
            return;
        }
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        let etag = etag.or_else(|| checked.get(key).and_then(|c| c.etag.clone()));
        checked.insert(
            key.clone(),
            Checked {
                at: Instant::now(),
                etag,
            },
        );
    }

    /// The source's ETag for `key`, if this process has seen one.
    pub fn etag(&self, key: &Key) -> Option<String> {
        let checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        checked.get(key).and_then(|c| c.etag.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> Key {
        Key::new(p).unwrap()
    }

    #[test]
    fn builtin_mutable_files() {
        let p = Policy::new(&[], DEFAULT_TTL).unwrap();
        for m in [
            "/distfiles/layout.conf",
            "/binpkgs/amd64/Packages",
            "/binpkgs/Packages.gz",
            "/snapshots/gentoo-latest.tar.xz",
            "/snapshots/gentoo-latest.tar.xz.md5sum",
            "/releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt",
        ] {
            assert!(p.is_mutable(&key(m)), "{m}");
        }
        for i in [
            "/distfiles/0a/MooseX-OneArgNew-0.007.tar.gz",
            "/snapshots/gentoo-20240101.tar.xz",
            "/snapshots/gentoo-20240101.tar.xz.md5sum",
            "/binpkgs/dev-lang/rust/rust-1.80.0-1.gpkg.tar",
            "/distfiles/Packages-manager-1.0.tar.gz",
        ] {
            assert!(!p.is_mutable(&key(i)), "{i}");
        }
    }

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
        assert!(g("*.sig", "a/b/c.sig"));
        assert!(!g("*.sig", "a/b/c.sig.x"));
        assert!(g("metadata/*", "metadata/timestamp.chk"));
        assert!(!g("metadata/*", "metadata/x/y"));
        assert!(g("metadata/**", "metadata/x/y"));
        assert!(g("**/timestamp.?", "gentoo/metadata/timestamp.x"));
        assert!(!g("a?c", "a/c"));
        assert!(Glob::new("/abs").is_err());
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn checks_expire_after_the_ttl_and_keep_etags() {
        let p = Policy::new(&["*.idx".into()], Duration::from_millis(50)).unwrap();
        let k = key("/x/a.idx");
        assert_eq!(p.freshness(&k), Freshness::Revalidate);
        p.checked(&k, Some("\"v1\"".into()));
        assert_eq!(p.freshness(&k), Freshness::Fresh);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.freshness(&k), Freshness::Revalidate);
        p.checked(&k, None);
        assert_eq!(p.etag(&k).as_deref(), Some("\"v1\""));
        assert_eq!(p.freshness(&key("/x/immutable.tar")), Freshness::Fresh);
    }
}

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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::Error;
use super::store::{Key, Meta};

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

/// The default for `--negative-ttl`: how long "no source has this file" is remembered.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);

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

/// What this process knows of one mutable file.
#[derive(Debug, Clone, Default)]
struct Checked {
    /// When a source last gave or confirmed our copy (or every source failed to).
    at: Option<Instant>,
    /// Each source's ETag for it: a source is only ever sent its own.
    etags: Vec<(usize, String)>,
    /// The newest Last-Modified served: never go back behind it.
    newest: Option<SystemTime>,
}

/// The most files remembered as missing (the oldest are forgotten first).
const MISSING_MAX: usize = 16_384;

/// The freshness rules and what this process knows about each mutable file and each
/// file every source said it does not have.
#[derive(Debug)]
pub struct Policy {
    globs: Vec<Glob>,
    ttl: Duration,
    negative_ttl: Duration,
    checked: Mutex<HashMap<Key, Checked>>,
    missing: Mutex<HashMap<Key, (Instant, Arc<Error>)>>,
}

impl Policy {
    /// The built-in globs plus `extra`, with copies trusted for `ttl`, and "no source
    /// has it" remembered for `negative_ttl` (zero: not remembered).
    pub fn new(
        extra: &[String],
        ttl: Duration,
        negative_ttl: Duration,
    ) -> Result<Policy, GlobError> {
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
            negative_ttl,
            checked: Mutex::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
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
        let checked = lock(&self.checked);
        let at = checked.get(key).and_then(|c| c.at);
        if at.is_none_or(|at| at.elapsed() >= self.ttl) {
            Freshness::Revalidate
        } else {
            Freshness::Fresh
        }
    }

    /// Records that our copy of `key` is current as of now: confirmed by a source, or
    /// kept after every source failed (so they are not asked on every request).
    pub fn checked(&self, key: &Key) {
        if self.is_mutable(key) {
            lock(&self.checked).entry(key.clone()).or_default().at = Some(Instant::now());
        }
    }

    /// Records a new copy of `key` from source `source` (when known) with `meta`: it is
    /// current as of now, that source's ETag is kept for it, and nothing older than
    /// its Last-Modified will be served after it.
    pub fn fetched(&self, key: &Key, source: Option<usize>, meta: &Meta) {
        if !self.is_mutable(key) {
            return;
        }
        let mut checked = lock(&self.checked);
        let c = checked.entry(key.clone()).or_default();
        c.at = Some(Instant::now());
        if let Some(i) = source {
            c.etags.retain(|(s, _)| *s != i);
            if let Some(tag) = &meta.etag {
                c.etags.push((i, tag.clone()));
            }
        }
        c.newest = c.newest.max(meta.modified);
    }

    /// The ETag each of `n` sources gave for `key`, by source index.
    pub fn etags(&self, key: &Key, n: usize) -> Vec<Option<String>> {
        let checked = lock(&self.checked);
        let mut out = vec![None; n];
        for (i, tag) in checked.get(key).map_or(&[][..], |c| &c.etags) {
            if let Some(slot) = out.get_mut(*i) {
                *slot = Some(tag.clone());
            }
        }
        out
    }

    /// The newest Last-Modified this process served for `key` (mutable files only).
    pub fn newest(&self, key: &Key) -> Option<SystemTime> {
        lock(&self.checked).get(key).and_then(|c| c.newest)
    }

    /// Why `key` is known to be missing everywhere, if a round of the sources said so
    /// within the negative TTL.
    pub fn missing(&self, key: &Key) -> Option<Arc<Error>> {
        let mut missing = lock(&self.missing);
        match missing.get(key) {
            Some((at, e)) if at.elapsed() < self.negative_ttl => Some(e.clone()),
            Some(_) => {
                missing.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that every source said `key` is missing (`error` says so).
    pub fn remember_missing(&self, key: &Key, error: Arc<Error>) {
        if self.negative_ttl.is_zero() {
            return;
        }
        let mut missing = lock(&self.missing);
        if missing.len() >= MISSING_MAX {
            let ttl = self.negative_ttl;
            missing.retain(|_, (at, _)| at.elapsed() < ttl);
            if missing.len() >= MISSING_MAX {
                missing.clear();
            }
        }
        missing.insert(key.clone(), (Instant::now(), error));
    }

    /// Forgets that `key` was missing (something learned where to get it).
    pub fn forget_missing(&self, key: &Key) {
        lock(&self.missing).remove(key);
    }

    /// Forgets every file remembered as missing.
    pub fn forget_all_missing(&self) {
        lock(&self.missing).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> Key {
        Key::new(p).unwrap()
    }

    #[test]
    fn builtin_mutable_files() {
        let p = Policy::new(&[], DEFAULT_TTL, DEFAULT_NEGATIVE_TTL).unwrap();
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
    fn checks_expire_after_the_ttl_and_keep_etags_per_source() {
        let p = Policy::new(&["*.idx".into()], Duration::from_millis(50), Duration::ZERO).unwrap();
        let k = key("/x/a.idx");
        assert_eq!(p.freshness(&k), Freshness::Revalidate);
        let t = |s| std::time::UNIX_EPOCH + Duration::from_secs(s);
        let v1 = Meta {
            len: Some(1),
            modified: Some(t(1000)),
            etag: Some("\"v1\"".into()),
        };
        p.fetched(&k, Some(1), &v1);
        assert_eq!(p.freshness(&k), Freshness::Fresh);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.freshness(&k), Freshness::Revalidate);
        p.checked(&k);
        assert_eq!(p.etags(&k, 3), [None, Some("\"v1\"".into()), None]);
        // Another source's copy: its own ETag; the newest date never goes back.
        let older = Meta {
            modified: Some(t(500)),
            etag: Some("\"a\"".into()),
            ..v1
        };
        p.fetched(&k, Some(0), &older);
        assert_eq!(
            p.etags(&k, 2),
            [Some("\"a\"".into()), Some("\"v1\"".into())]
        );
        assert_eq!(p.newest(&k), Some(t(1000)));
        assert_eq!(p.freshness(&key("/x/immutable.tar")), Freshness::Fresh);
    }

    #[test]
    fn missing_files_are_remembered_for_the_negative_ttl() {
        let e = || {
            Arc::new(Error::Interrupted {
                path: "/x".into(),
                reason: "r".into(),
            })
        };
        let k = key("/x/missing.tar");
        let p = Policy::new(&[], DEFAULT_TTL, Duration::from_millis(50)).unwrap();
        assert!(p.missing(&k).is_none());
        p.remember_missing(&k, e());
        assert!(p.missing(&k).is_some());
        p.forget_missing(&k);
        assert!(p.missing(&k).is_none());
        p.remember_missing(&k, e());
        std::thread::sleep(Duration::from_millis(60));
        assert!(p.missing(&k).is_none(), "expired");
        let off = Policy::new(&[], DEFAULT_TTL, Duration::ZERO).unwrap();
        off.remember_missing(&k, e());
        assert!(off.missing(&k).is_none(), "a zero TTL disables it");
    }
}

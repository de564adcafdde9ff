//! Which files change in place, and when to ask the source about them again.
//!
//! Almost everything a package mirror serves is immutable: a distfile's name carries
//! its version, a dated snapshot never changes, a binary package is rebuilt under a new
//! name. Those are kept forever without asking. Which files are rewritten in place is
//! one table, [`crate::repos::RULES`] (repository anchors such as `InRelease`,
//! `core.db`, `repomd.xml`, a binhost's `Packages` or `gentoo-latest.tar.xz`; their
//! members; files standing alone such as `layout.conf`), plus whatever
//! `--mutable GLOB` adds (standing alone).
//!
//! When such a copy is served as it is, and when it is first confirmed with one
//! conditional request (If-Modified-Since, and If-None-Match when the source gave an
//! ETag) shared by every client asking meanwhile, is decided in one place,
//! [`Policy::freshness`], by the rules of [`super::generations`]: `--mutable-ttl`
//! applies to anchors and standalone files; members are served from their anchor's
//! generation.
//!
//! Globs: `*` matches within one path segment, `**` across segments, `?` one
//! character. A glob without `/` matches the file name; one with `/` matches the whole
//! path below the cache root (no leading `/`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::Error;
pub use super::generations::Freshness;
use super::generations::{Copy, Generations, Role, Round};
use super::store::{Key, Meta};
use crate::repos;

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

/// What the sources said of one mutable file (when it was current, and in which
/// generation, is in [`Generations`]).
#[derive(Debug, Clone, Default)]
struct Checked {
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
    generations: Mutex<Generations>,
    missing: Mutex<HashMap<Key, (Instant, Arc<Error>)>>,
}

impl Policy {
    /// The table of [`crate::repos`] plus `extra` globs (files standing alone), with
    /// anchors and standalone copies trusted for `ttl`, and "no source has it"
    /// remembered for `negative_ttl` (zero: not remembered).
    pub fn new(
        extra: &[String],
        ttl: Duration,
        negative_ttl: Duration,
    ) -> Result<Policy, GlobError> {
        let globs = extra
            .iter()
            .map(|g| Glob::new(g))
            .collect::<Result<_, _>>()?;
        Ok(Policy {
            globs,
            ttl,
            negative_ttl,
            checked: Mutex::new(HashMap::new()),
            generations: Mutex::new(Generations::default()),
            missing: Mutex::new(HashMap::new()),
        })
    }

    /// What `key` is: the table's answer, or a standalone mutable file when only a
    /// `--mutable` glob names it.
    pub fn role(&self, key: &Key) -> Role {
        match Role::of(&repos::classify(key.as_str())) {
            Role::Immutable if self.globs.iter().any(|g| g.matches(key.as_str())) => Role::Alone,
            role => role,
        }
    }

    /// Whether `key` names a file that changes in place.
    #[cfg(test)]
    pub fn is_mutable(&self, key: &Key) -> bool {
        self.role(key).is_mutable()
    }

    /// Whether the copy of `key` (whose [`Policy::role`] is `role`) on disk
    /// (`stored`) may be served as it is, or must first be confirmed with a source:
    /// the one freshness decision (see [`super::generations`]). Immutable files are
    /// always fresh. `disk` gives the stored copy of another key (a member's
    /// anchors), `None` when there is none.
    pub fn freshness(
        &self,
        key: &Key,
        role: &Role,
        stored: &Copy,
        disk: &dyn Fn(&Key) -> Option<Copy>,
    ) -> Freshness {
        if *role == Role::Immutable {
            return Freshness::Fresh;
        }
        let anchors: Vec<Option<Copy>> = match role {
            Role::Member { anchors, .. } => anchors.iter().map(disk).collect(),
            _ => Vec::new(),
        };
        lock(&self.generations).freshness(key, role, stored, &anchors, self.ttl, Instant::now())
    }

    /// The round a request for a file of role `role` asks the sources in, taken
    /// before asking (`joined`: a download of it is already running).
    pub fn round(&self, role: &Role, joined: bool) -> Round {
        lock(&self.generations).round(role, joined)
    }

    /// Records that a source confirmed the stored copy `stored` of `key` (of role
    /// `role`; a 304 to a request asked in `round`).
    pub fn checked(&self, key: &Key, role: &Role, stored: Copy, round: Round) {
        if role.is_mutable() {
            lock(&self.generations).confirmed(key, role, stored, round, Instant::now());
        }
    }

    /// Records that every source failed to confirm the stored copy `stored` of `key`
    /// (of role `role`), which is served anyway: not asked again for a TTL.
    pub fn kept(&self, key: &Key, role: &Role, stored: Copy) {
        if role.is_mutable() {
            lock(&self.generations).kept(key, stored, Instant::now());
        }
    }

    /// Records a new copy of `key` (of role `role`) from source `source` (when known)
    /// with `meta`, asked for in `round`: it is current as of now (for an anchor, in
    /// a new generation), that source's ETag is kept for it, and nothing older than
    /// its Last-Modified will be served after it.
    pub fn fetched(
        &self,
        key: &Key,
        role: &Role,
        source: Option<usize>,
        meta: &Meta,
        round: Round,
    ) {
        if !role.is_mutable() {
            return;
        }
        {
            let mut checked = lock(&self.checked);
            let c = checked.entry(key.clone()).or_default();
            if let Some(i) = source {
                c.etags.retain(|(s, _)| *s != i);
                if let Some(tag) = &meta.etag {
                    c.etags.push((i, tag.clone()));
                }
            }
            c.newest = c.newest.max(meta.modified);
        }
        let copy = Copy::of(meta);
        lock(&self.generations).fetched(key, role, copy, round, Instant::now());
    }

    /// The ETag each of `n` sources gave for `key`, by source index; none when the
    /// stored copy (`stored`) is not the one they were given for (another process
    /// replaced it): the ETags would ask for a copy we no longer hold.
    pub fn etags(&self, key: &Key, n: usize, stored: &Copy) -> Vec<Option<String>> {
        let mut out = vec![None; n];
        if !lock(&self.generations).holds(key, stored) {
            return out;
        }
        let checked = lock(&self.checked);
        for (i, tag) in checked.get(key).map_or(&[][..], |c| &c.etags) {
            if let Some(slot) = out.get_mut(*i) {
                *slot = Some(tag.clone());
            }
        }
        out
    }

    /// Records that a copy of `key` (of role `role`) last modified at `modified` was
    /// served (from disk, or straight from a source): nothing older is served after
    /// it.
    pub fn served(&self, key: &Key, role: &Role, modified: SystemTime) {
        if !role.is_mutable() {
            return;
        }
        let mut checked = lock(&self.checked);
        // A file served before (every hit of it) needs no new key.
        if let Some(c) = checked.get_mut(key) {
            c.newest = c.newest.max(Some(modified));
            return;
        }
        let c = Checked {
            newest: Some(modified),
            ..Checked::default()
        };
        checked.insert(key.clone(), c);
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
    fn the_gentoo_files_that_change_in_place() {
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
    fn the_table_and_the_globs_give_each_file_its_role() {
        let p = Policy::new(
            &["metadata/*".into(), "*.idx".into()],
            DEFAULT_TTL,
            DEFAULT_NEGATIVE_TTL,
        )
        .unwrap();
        assert_eq!(p.role(&key("/metadata/timestamp.chk")), Role::Alone);
        assert_eq!(p.role(&key("/x/a.idx")), Role::Alone);
        assert!(matches!(
            p.role(&key("/debian/dists/sid/InRelease")),
            Role::Anchor { .. }
        ));
        assert!(matches!(
            p.role(&key("/debian/dists/sid/main/binary-all/Packages.xz")),
            Role::Member { .. }
        ));
        // A glob does not demote a file the table knows.
        let q = Policy::new(&["*.xz".into()], DEFAULT_TTL, DEFAULT_NEGATIVE_TTL).unwrap();
        assert!(matches!(
            q.role(&key("/debian/dists/sid/main/binary-all/Packages.xz")),
            Role::Member { .. }
        ));
        assert_eq!(q.role(&key("/debian/pool/a/a_1.tar.xz")), Role::Alone);
        assert_eq!(p.role(&key("/debian/pool/a/a_1.tar.xz")), Role::Immutable);
    }

    #[test]
    fn checks_expire_after_the_ttl_and_keep_etags_per_source() {
        let p = Policy::new(&["*.idx".into()], Duration::from_millis(50), Duration::ZERO).unwrap();
        let k = key("/x/a.idx");
        let r = p.role(&k);
        let none = |_: &Key| None;
        let t = |s| std::time::UNIX_EPOCH + Duration::from_secs(s);
        let stored = Copy::stored(1, t(1000));
        assert_eq!(p.freshness(&k, &r, &stored, &none), Freshness::Revalidate);
        let v1 = Meta {
            len: Some(1),
            modified: Some(t(1000)),
            etag: Some("\"v1\"".into()),
        };
        p.fetched(&k, &r, Some(1), &v1, p.round(&r, false));
        assert_eq!(p.freshness(&k, &r, &stored, &none), Freshness::Fresh);
        // Another copy on disk (another process's): confirmed first, without the
        // ETags of ours.
        let theirs = Copy::stored(2, t(1001));
        assert_eq!(p.freshness(&k, &r, &theirs, &none), Freshness::Revalidate);
        assert_eq!(p.etags(&k, 2, &theirs), [None, None]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.freshness(&k, &r, &stored, &none), Freshness::Revalidate);
        p.checked(&k, &r, stored.clone(), p.round(&r, false));
        assert_eq!(p.freshness(&k, &r, &stored, &none), Freshness::Fresh);
        assert_eq!(p.etags(&k, 3, &stored), [None, Some("\"v1\"".into()), None]);
        // Another source's copy: its own ETag; the newest date never goes back.
        let older = Meta {
            modified: Some(t(500)),
            etag: Some("\"a\"".into()),
            ..v1
        };
        p.fetched(&k, &r, Some(0), &older, p.round(&r, false));
        let older_stored = Copy::stored(1, t(500));
        assert_eq!(
            p.etags(&k, 2, &older_stored),
            [Some("\"a\"".into()), Some("\"v1\"".into())]
        );
        assert_eq!(p.newest(&k), Some(t(1000)));
        let immutable = key("/x/immutable.tar");
        assert_eq!(
            p.freshness(&immutable, &p.role(&immutable), &stored, &none),
            Freshness::Fresh
        );
    }

    #[test]
    fn served_copies_move_the_newest_date_of_mutable_files_only() {
        let p = Policy::new(&["*.idx".into()], DEFAULT_TTL, Duration::ZERO).unwrap();
        let t = |s| std::time::UNIX_EPOCH + Duration::from_secs(s);
        let k = key("/x/a.idx");
        let r = p.role(&k);
        p.served(&k, &r, t(10));
        assert_eq!(p.newest(&k), Some(t(10)));
        p.served(&k, &r, t(5));
        assert_eq!(p.newest(&k), Some(t(10)), "never back");
        p.served(&k, &r, t(20));
        assert_eq!(p.newest(&k), Some(t(20)));
        let immutable = key("/x/a.tar");
        p.served(&immutable, &p.role(&immutable), t(10));
        assert_eq!(p.newest(&immutable), None);
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

//! Repository generations: which stored copies of files that change in place may be
//! served together, and when a copy must be confirmed with a source first.
//!
//! [`crate::repos`] sorts a mirror's files. Most never change. Of those that do, a
//! repository's **anchor** (`InRelease`, `core.db`, `repomd.xml`, a binhost's
//! `Packages`, a `*-latest` tarball) names or signs its **members** (`Packages.xz`,
//! `core.db.sig`, hash-less `repodata/` files, `Packages.gz`, the tarball's
//! `.gpgsig`): a client reads the anchor first and checks each member against it. A
//! few files stand **alone** (`layout.conf`, FreeBSD's catalogues).
//!
//! The rules, per repository (one per anchor directory):
//!
//! - The TTL (`--mutable-ttl`) applies to the anchor: a copy of it is served for the
//!   TTL after this process fetched or confirmed it, then confirmed again.
//! - A new copy of an anchor (a 200 that is not provably the copy we had) starts a
//!   new **generation**. So does confirming a stored anchor that is not the copy this
//!   process last saw, and finding that a member's anchor on disk was replaced by
//!   another process sharing the directory.
//! - A member is served as it is while it was fetched or confirmed in the current
//!   generation, and the anchor was served or confirmed within the TTL (a client that
//!   just read the anchor is reading its members now). A member of an older
//!   generation is confirmed before it is served: it is never older than the anchor
//!   clients were last given. When nobody has asked for the anchor for a TTL, a member
//!   is revalidated on its own TTL, as a file standing alone, so a client that reads
//!   only a member (a `.md5sum`, to see whether the snapshot changed) still sees news.
//! - Alone files have their own TTL.
//!
//! In every case the stored copy must be the one this process fetched or confirmed
//! (the same length and Last-Modified): a copy another process put there is confirmed
//! before this process serves it.
//!
//! All of this is what **one process** knows; it starts empty. After a restart every
//! mutable file is asked about once (a conditional request, usually a 304) before it
//! is served. Processes sharing a cache directory share the files, not this state:
//! each confirms what the others stored, and notices (through the anchor's copy on
//! disk) when another process moved a repository to a new generation.
//!
//! Pure: the caller passes the time and what is on disk; [`Policy`](crate::cache::policy::Policy)
//! holds the lock and the clock.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::store::{Entry, Key, Meta};
use crate::proto::date;
use crate::repos::{Class, Kind};

/// Whether a stored copy may be served without asking a source (RFC 9111 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Ask a source first with a conditional request (RFC 9111 §4.3); if every source
    /// fails, serve it anyway, marked stale.
    Revalidate,
}

/// What a file is, for freshness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Never changes under its name.
    Immutable,
    /// Changes in place on its own: confirmed after the TTL.
    Alone,
    /// Its change starts a new generation of the repository at `root`.
    Anchor {
        /// The repository: the anchor's directory.
        root: String,
    },
    /// Changes with the repository at `root`, whose anchors are `anchors`.
    Member {
        /// The repository: its anchors' directory.
        root: String,
        /// The anchors that may name this file.
        anchors: Vec<Key>,
    },
}

impl Role {
    /// The role [`crate::repos::classify`] gives a key.
    pub fn of(class: &Class) -> Role {
        match (&class.kind, class.repo_root()) {
            (Kind::Immutable, _) => Role::Immutable,
            (Kind::Anchor { repo_root }, _) => Role::Anchor {
                root: repo_root.clone(),
            },
            (Kind::Mutable { anchors }, Some(root)) => Role::Member {
                root: root.to_owned(),
                anchors: anchors
                    .iter()
                    .filter_map(|a| Key::new(&format!("/{}", a.trim_start_matches('/'))).ok())
                    .collect(),
            },
            (Kind::Mutable { .. }, None) => Role::Alone,
        }
    }

    /// Whether the file changes in place.
    pub fn is_mutable(&self) -> bool {
        *self != Role::Immutable
    }

    fn root(&self) -> Option<&str> {
        match self {
            Role::Anchor { root } | Role::Member { root, .. } => Some(root),
            _ => None,
        }
    }
}

/// Which copy of a file: length, Last-Modified (whole seconds) and the source's ETag,
/// as far as known. A stored copy has length and date (the store keeps the source's
/// Last-Modified as the file's mtime), no ETag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copy {
    /// Length in bytes.
    pub len: Option<u64>,
    /// Last-Modified, in seconds since the epoch.
    pub modified: Option<u64>,
    /// The source's ETag.
    pub etag: Option<String>,
}

impl Copy {
    /// The copy a source announced.
    pub fn of(meta: &Meta) -> Copy {
        Copy {
            len: meta.len,
            modified: meta.modified.map(date::unix_seconds),
            etag: meta.etag.clone(),
        }
    }

    /// A copy on disk.
    pub fn stored(len: u64, modified: SystemTime) -> Copy {
        Copy {
            len: Some(len),
            modified: Some(date::unix_seconds(modified)),
            etag: None,
        }
    }

    /// Whether `other` may be this copy: the same length and date where both are
    /// known (what a file on disk can tell).
    pub fn matches(&self, other: &Copy) -> bool {
        fn agree<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            a.is_none() || b.is_none() || a == b
        }
        agree(&self.len, &other.len) && agree(&self.modified, &other.modified)
    }

    /// Whether a source's new copy `new` is provably this one: length, date and ETag
    /// all known and equal. Anything less counts as a change.
    fn same_version(&self, new: &Copy) -> bool {
        let known = |c: &Copy| c.len.is_some() && c.modified.is_some() && c.etag.is_some();
        known(self) && known(new) && self == new
    }
}

impl From<&Entry> for Copy {
    fn from(e: &Entry) -> Copy {
        Copy::stored(e.len, e.modified)
    }
}

/// The generation of a member's repository when a source was asked about it, taken
/// before asking: a copy is credited to the generation that was current when it was
/// asked for, never to one that started while the request was on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// Asked in this generation (`None`: no anchor of the repository known yet).
    At(Option<u64>),
    /// Joined a download already running, asked in a generation nobody recorded: the
    /// copy is not credited to any.
    Joined,
}

/// What this process knows of one file that changes in place.
#[derive(Clone, Debug, Default)]
struct Record {
    /// When a source last gave or confirmed the copy (or every source failed to).
    at: Option<Instant>,
    /// The copy a source gave or confirmed.
    copy: Option<Copy>,
    /// The generation of its repository it was given or confirmed in.
    generation: Option<u64>,
    /// The last attempt to confirm it failed; the copy was kept.
    kept: bool,
}

impl Record {
    fn holds(&self, stored: &Copy) -> bool {
        self.copy.as_ref().is_some_and(|c| c.matches(stored))
    }
}

/// One repository, once an anchor of it was fetched or confirmed.
#[derive(Clone, Copy, Debug)]
struct Repo {
    /// Starts at 1; one more for every new copy of an anchor.
    generation: u64,
    /// When an anchor was last served or confirmed.
    touched: Instant,
}

/// What this process knows: each mutable file's record, each repository's generation.
#[derive(Debug, Default)]
pub struct Generations {
    files: HashMap<Key, Record>,
    repos: HashMap<String, Repo>,
}

impl Generations {
    /// Whether the copy of `key` on disk (`stored`) may be served as it is, at `now`.
    /// `anchors_on_disk` are the stored copies of a member's anchors (in the order of
    /// its [`Role::Member::anchors`]; `None` when not stored, or being downloaded by
    /// this process).
    ///
    /// Asking is serving: for an anchor it records that a client is being given it
    /// (its members are then served from its generation for a TTL); for a member, an
    /// anchor that another process replaced starts a new generation here.
    pub fn freshness(
        &mut self,
        key: &Key,
        role: &Role,
        stored: &Copy,
        anchors_on_disk: &[Option<Copy>],
        ttl: Duration,
        now: Instant,
    ) -> Freshness {
        let within = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) < ttl);
        let fresh = match role {
            Role::Immutable => true,
            Role::Alone => self
                .files
                .get(key)
                .is_some_and(|r| r.holds(stored) && within(r.at)),
            Role::Anchor { root } => {
                let current = self.repos.get_mut(root).map(|repo| {
                    repo.touched = now;
                    repo.generation
                });
                self.files
                    .get(key)
                    .is_some_and(|r| r.holds(stored) && within(r.at) && r.generation == current)
            }
            Role::Member { root, anchors } => {
                self.notice_replaced_anchors(root, anchors, anchors_on_disk);
                let Some(r) = self.files.get(key).filter(|r| r.holds(stored)) else {
                    return Freshness::Revalidate;
                };
                match self.repos.get(root) {
                    // No anchor known here: on its own.
                    None => within(r.at),
                    Some(repo) => {
                        r.generation == Some(repo.generation)
                            && ((!r.kept && within(Some(repo.touched))) || within(r.at))
                    }
                }
            }
        };
        if fresh {
            Freshness::Fresh
        } else {
            Freshness::Revalidate
        }
    }

    /// The round a request for `key` asks the sources in (`joined`: a download of it
    /// is already running).
    pub fn round(&self, role: &Role, joined: bool) -> Round {
        if joined {
            return Round::Joined;
        }
        Round::At(
            role.root()
                .and_then(|root| self.repos.get(root))
                .map(|r| r.generation),
        )
    }

    /// A source gave a new copy of `key`, asked for in `round`. For an anchor this
    /// starts a new generation unless the copy is provably the one recorded.
    pub fn fetched(&mut self, key: &Key, role: &Role, copy: Copy, round: Round, now: Instant) {
        let record = self.files.entry(key.clone()).or_default();
        let same = record.copy.as_ref().is_some_and(|c| c.same_version(&copy));
        record.copy = Some(copy);
        self.credit(key, role, same, round, now);
    }

    /// A source confirmed the stored copy `stored` of `key` (a 304), asked for in
    /// `round`. For an anchor, a stored copy other than the one recorded (another
    /// process stored it, or this process never saw it) starts a new generation.
    pub fn confirmed(&mut self, key: &Key, role: &Role, stored: Copy, round: Round, now: Instant) {
        let record = self.files.entry(key.clone()).or_default();
        let same = record.holds(&stored);
        if !same {
            record.copy = Some(stored);
        }
        self.credit(key, role, same, round, now);
    }

    /// Every source failed to confirm the stored copy `stored` of `key`; it is served
    /// anyway. It counts as checked for a TTL, in the generation it had.
    pub fn kept(&mut self, key: &Key, stored: Copy, now: Instant) {
        let record = self.files.entry(key.clone()).or_default();
        if !record.holds(&stored) {
            record.copy = Some(stored);
        }
        record.at = Some(now);
        record.kept = true;
    }

    /// The generation of `root` as this process knows it.
    #[cfg(test)]
    pub fn generation(&self, root: &str) -> Option<u64> {
        self.repos.get(root).map(|r| r.generation)
    }

    /// Whether the stored copy `stored` of `key` is the one this process recorded.
    pub fn holds(&self, key: &Key, stored: &Copy) -> bool {
        self.files.get(key).is_some_and(|r| r.holds(stored))
    }

    /// Records `key` as current as of `now`: an anchor in its repository's current
    /// generation (a new one unless `same`), a member in `round`'s.
    fn credit(&mut self, key: &Key, role: &Role, same: bool, round: Round, now: Instant) {
        let generation = match role {
            Role::Anchor { root } => {
                let repo = self.repos.entry(root.clone()).or_insert(Repo {
                    generation: 0,
                    touched: now,
                });
                let known = repo.generation > 0;
                if !(same && known) {
                    repo.generation += 1;
                }
                repo.touched = now;
                Some(Some(repo.generation))
            }
            Role::Member { .. } | Role::Alone => match round {
                Round::At(generation) => Some(generation),
                Round::Joined => None,
            },
            Role::Immutable => None,
        };
        let record = self.files.entry(key.clone()).or_default();
        if let Some(g) = generation {
            record.generation = g;
        }
        record.at = Some(now);
        record.kept = false;
    }

    /// A member's anchor that this process recorded and that another process has
    /// since replaced on disk: the repository moved to a new generation. The anchor's
    /// record takes the stored copy, to be confirmed before it is served here.
    fn notice_replaced_anchors(&mut self, root: &str, anchors: &[Key], on_disk: &[Option<Copy>]) {
        let mut replaced = false;
        for (anchor, disk) in anchors.iter().zip(on_disk) {
            let (Some(disk), Some(record)) = (disk, self.files.get_mut(anchor)) else {
                continue;
            };
            if !record.holds(disk) {
                record.copy = Some(disk.clone());
                record.at = None;
                replaced = true;
            }
        }
        if replaced && let Some(repo) = self.repos.get_mut(root) {
            repo.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The generation rules, without sockets or sleeping: time is passed in.
    use super::*;
    use crate::repos::classify;

    const TTL: Duration = Duration::from_secs(60);

    fn key(p: &str) -> Key {
        Key::new(p).unwrap()
    }

    fn role(p: &str) -> Role {
        Role::of(&classify(key(p).as_str()))
    }

    fn copy(len: u64, modified: u64, etag: &str) -> Copy {
        Copy {
            len: Some(len),
            modified: Some(modified),
            etag: Some(etag.into()),
        }
    }

    fn on_disk(c: &Copy) -> Copy {
        Copy {
            etag: None,
            ..c.clone()
        }
    }

    /// A process's view of one apt suite, with the clock in its hands.
    struct Suite {
        g: Generations,
        t0: Instant,
        now: Duration,
        disk: HashMap<&'static str, Copy>,
    }

    const INRELEASE: &str = "/debian/dists/stable/InRelease";
    const PACKAGES: &str = "/debian/dists/stable/main/binary-amd64/Packages.xz";
    const TRANSLATION: &str = "/debian/dists/stable/main/i18n/Translation-en.xz";

    impl Suite {
        fn new() -> Suite {
            Suite {
                g: Generations::default(),
                t0: Instant::now(),
                now: Duration::ZERO,
                disk: HashMap::new(),
            }
        }

        fn at(&self) -> Instant {
            self.t0 + self.now
        }

        fn wait(&mut self, d: Duration) {
            self.now += d;
        }

        fn fresh(&mut self, path: &'static str) -> bool {
            let role = role(path);
            let anchors: Vec<Option<Copy>> = match &role {
                Role::Member { anchors, .. } => anchors
                    .iter()
                    .map(|a| {
                        self.disk
                            .iter()
                            .find(|(p, _)| key(p) == *a)
                            .map(|(_, c)| c.clone())
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let stored = self.disk.get(path).cloned().unwrap_or_default();
            let now = self.at();
            self.g
                .freshness(&key(path), &role, &stored, &anchors, TTL, now)
                == Freshness::Fresh
        }

        /// A new copy from the source, stored.
        fn fetch(&mut self, path: &'static str, c: Copy) {
            let role = role(path);
            let round = self.g.round(&role, false);
            let now = self.at();
            self.g.fetched(&key(path), &role, c.clone(), round, now);
            self.disk.insert(path, on_disk(&c));
        }

        /// The source confirmed the stored copy.
        fn confirm(&mut self, path: &'static str) {
            let role = role(path);
            let round = self.g.round(&role, false);
            let now = self.at();
            let stored = self.disk[path].clone();
            self.g.confirmed(&key(path), &role, stored, round, now);
        }

        fn generation(&self) -> Option<u64> {
            self.g.generation("debian/dists/stable/")
        }
    }

    #[test]
    fn roles_from_the_table() {
        assert_eq!(role("/distfiles/0a/foo-1.tar.gz"), Role::Immutable);
        assert_eq!(role("/distfiles/layout.conf"), Role::Alone);
        assert_eq!(
            role(INRELEASE),
            Role::Anchor {
                root: "debian/dists/stable/".into()
            }
        );
        assert_eq!(
            role(PACKAGES),
            Role::Member {
                root: "debian/dists/stable/".into(),
                anchors: vec![key(INRELEASE), key("/debian/dists/stable/Release")]
            }
        );
        assert!(role("/binpkgs/Packages.gz").is_mutable());
    }

    #[test]
    fn a_new_anchor_makes_every_member_of_the_old_generation_revalidate() {
        let mut s = Suite::new();
        assert!(!s.fresh(INRELEASE), "never seen: asked first");
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        assert_eq!(s.generation(), Some(1));
        s.fetch(PACKAGES, copy(10, 990, "p"));
        s.fetch(TRANSLATION, copy(20, 990, "t"));
        assert!(s.fresh(INRELEASE) && s.fresh(PACKAGES) && s.fresh(TRANSLATION));

        // Within the TTL nothing is asked; after it, the anchor is.
        s.wait(Duration::from_secs(30));
        assert!(s.fresh(INRELEASE) && s.fresh(PACKAGES));
        s.wait(Duration::from_secs(31));
        assert!(!s.fresh(INRELEASE));
        // Unchanged (304): the same generation, and the members with it.
        s.confirm(INRELEASE);
        assert_eq!(s.generation(), Some(1));
        assert!(s.fresh(INRELEASE) && s.fresh(PACKAGES) && s.fresh(TRANSLATION));

        // A new anchor: a new generation; members are asked before they are served,
        // each once.
        s.wait(Duration::from_secs(61));
        assert!(!s.fresh(INRELEASE));
        s.fetch(INRELEASE, copy(101, 2000, "b"));
        assert_eq!(s.generation(), Some(2));
        assert!(!s.fresh(PACKAGES) && !s.fresh(TRANSLATION));
        s.fetch(PACKAGES, copy(11, 1990, "p2"));
        s.confirm(TRANSLATION);
        assert!(s.fresh(PACKAGES) && s.fresh(TRANSLATION));
    }

    #[test]
    fn members_follow_the_anchor_a_client_just_read_not_the_clock() {
        let mut s = Suite::new();
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        s.fetch(PACKAGES, copy(10, 990, "p"));
        // A client reads the anchor at the end of its TTL, and its members after the
        // TTL: they are the anchor's generation, not asked on their own.
        s.wait(Duration::from_secs(59));
        assert!(s.fresh(INRELEASE));
        s.wait(Duration::from_secs(2));
        assert!(s.fresh(PACKAGES), "the anchor was served a moment ago");
        // Nobody read the anchor for a TTL: a member asked for alone is confirmed on
        // its own TTL (a client reading only it still sees a change).
        s.wait(Duration::from_secs(60));
        assert!(!s.fresh(PACKAGES));
        s.confirm(PACKAGES);
        assert!(s.fresh(PACKAGES));
        assert_eq!(s.generation(), Some(1));
    }

    #[test]
    fn a_member_before_any_anchor_stands_alone_until_one_is_seen() {
        let mut s = Suite::new();
        s.fetch(PACKAGES, copy(10, 990, "p"));
        assert!(s.fresh(PACKAGES));
        s.wait(Duration::from_secs(61));
        assert!(!s.fresh(PACKAGES), "its own TTL");
        s.confirm(PACKAGES);
        // The anchor appears: members confirmed before it are asked once more.
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        assert!(!s.fresh(PACKAGES));
        s.confirm(PACKAGES);
        assert!(s.fresh(PACKAGES));
    }

    #[test]
    fn an_unchanged_anchor_fetched_again_keeps_the_generation_only_when_provably_the_same() {
        let mut s = Suite::new();
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        s.fetch(PACKAGES, copy(10, 990, "p"));
        // The same length, date and ETag (a source that ignores conditions).
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        assert_eq!(s.generation(), Some(1));
        assert!(s.fresh(PACKAGES));
        // Without an ETag nothing proves it: a new generation.
        s.fetch(
            INRELEASE,
            Copy {
                etag: None,
                ..copy(100, 1000, "")
            },
        );
        assert_eq!(s.generation(), Some(2));
        assert!(!s.fresh(PACKAGES));
    }

    #[test]
    fn copies_never_credit_a_generation_that_started_after_they_were_asked_for() {
        let mut s = Suite::new();
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        s.fetch(PACKAGES, copy(10, 990, "p"));
        s.wait(Duration::from_secs(61));
        // A member revalidation starts in generation 1 ...
        let (k, r) = (key(PACKAGES), role(PACKAGES));
        let round = s.g.round(&r, false);
        assert_eq!(round, Round::At(Some(1)));
        // ... the anchor changes meanwhile ...
        s.fetch(INRELEASE, copy(101, 2000, "b"));
        // ... and a client of the new generation joins the running download.
        assert_eq!(s.g.round(&r, true), Round::Joined);
        let now = s.at();
        s.g.fetched(&k, &r, copy(10, 990, "p"), Round::Joined, now);
        s.g.fetched(&k, &r, copy(10, 990, "p"), round, now);
        assert!(
            !s.fresh(PACKAGES),
            "credited to generation 1, asked again in 2"
        );
    }

    #[test]
    fn stored_copies_this_process_did_not_see_are_confirmed_first() {
        let mut s = Suite::new();
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        s.fetch(PACKAGES, copy(10, 990, "p"));
        // Another process sharing the directory stores a new anchor and serves it.
        s.disk.insert(INRELEASE, on_disk(&copy(101, 2000, "b")));
        // This process notices it through the member's anchor on disk: a new
        // generation here too, the member confirmed before it is served.
        assert!(!s.fresh(PACKAGES));
        assert_eq!(s.generation(), Some(2));
        // The anchor itself is confirmed before this process serves it; its 304
        // keeps the generation the member noticed.
        assert!(!s.fresh(INRELEASE));
        s.confirm(INRELEASE);
        assert_eq!(s.generation(), Some(2));
        assert!(s.fresh(INRELEASE));
        // A member replaced behind our back is confirmed too.
        s.confirm(PACKAGES);
        assert!(s.fresh(PACKAGES));
        s.disk.insert(PACKAGES, on_disk(&copy(11, 1990, "p2")));
        assert!(!s.fresh(PACKAGES));
    }

    #[test]
    fn a_restarted_process_confirms_what_it_finds_once() {
        let mut s = Suite::new();
        s.disk.insert(INRELEASE, on_disk(&copy(100, 1000, "a")));
        s.disk.insert(PACKAGES, on_disk(&copy(10, 990, "p")));
        assert!(!s.fresh(INRELEASE) && !s.fresh(PACKAGES));
        s.confirm(INRELEASE);
        assert_eq!(s.generation(), Some(1));
        assert!(!s.fresh(PACKAGES));
        s.confirm(PACKAGES);
        assert!(s.fresh(INRELEASE) && s.fresh(PACKAGES));
    }

    #[test]
    fn sibling_anchors_share_a_generation() {
        let mut s = Suite::new();
        const RELEASE: &str = "/debian/dists/stable/Release";
        s.fetch(INRELEASE, copy(100, 1000, "a"));
        s.fetch(RELEASE, copy(90, 1000, "r"));
        s.fetch(PACKAGES, copy(10, 990, "p"));
        assert_eq!(s.generation(), Some(2));
        s.fetch(INRELEASE, copy(101, 2000, "b"));
        // Release belongs to the old generation: asked before it is served; a 304
        // does not start yet another one.
        assert!(!s.fresh(RELEASE));
        s.confirm(RELEASE);
        assert_eq!(s.generation(), Some(3));
        assert!(s.fresh(RELEASE) && s.fresh(INRELEASE));
    }

    #[test]
    fn a_kept_copy_is_not_asked_about_again_for_a_ttl() {
        let mut s = Suite::new();
        s.disk.insert("/distfiles/layout.conf", copy(5, 10, ""));
        let k = key("/distfiles/layout.conf");
        let now = s.at();
        s.g.kept(&k, copy(5, 10, ""), now);
        assert!(s.fresh("/distfiles/layout.conf"));
        s.wait(TTL);
        assert!(!s.fresh("/distfiles/layout.conf"));
    }
}

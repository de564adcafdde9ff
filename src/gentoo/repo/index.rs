//! [`RepoIndex`]: every distfile of one or more ebuild repositories, by name.
//!
//! # What it knows
//! For each distfile name: its size and digests (from `CAT/PN/Manifest` `DIST` lines),
//! the URLs it can be fetched from (from `SRC_URI` in `metadata/md5-cache/CAT/PF`,
//! `mirror://` expanded through `profiles/thirdpartymirrors`) and its restrictions
//! (`RESTRICT`). Repositories are given in priority order: the Gentoo repository
//! first, then overlays. A repository without `metadata/md5-cache` (an overlay synced
//! by git without a generated cache) is read from portage's own cache of it,
//! `/var/cache/edb/dep/<path>` (same format), when present; otherwise only its
//! Manifests are known (sizes and digests, no URLs).
//!
//! # Merging a name found in several places
//! Several versions of a package, or several packages (split packages sharing one
//! tarball), or an overlay and the Gentoo repository may all name one distfile.
//! - **URLs** are the union, deduplicated, from the first repository to the last
//!   (within a repository, the entry read last comes first).
//! - **Size and digests**: every Manifest listing the name should agree. When they do
//!   not, the first repository in the order given wins (an overlay cannot override
//!   the Gentoo repository's digests of a file), and within a repository the
//!   Manifest read last; [`Distfile::conflict`] says so, for a warning.
//! - **Restrictions**: a file is fetch-restricted (or mirror-restricted) only if every
//!   `SRC_URI` that names it is; if any package may fetch it, its URLs are usable.
//!   `primaryuri` applies if any package asks for it.
//!
//! # Following changes
//! A background thread reads everything once ([`Lookup::NotReady`] meanwhile), then
//! polls, by default every 2 seconds, for what `emerge --sync` changes. Both rsync
//! and git replace a changed file by a rename (rsync: a temporary `.name.XXXXXX`
//! renamed over it; git: unlink and create), which changes the **directory's
//! mtime**. So a poll costs one `stat` per directory of `metadata/md5-cache` (about
//! 170), one per category directory (new packages), one for `profiles/categories`
//! and one for each of a few files every sync rewrites (rsync's
//! `metadata/timestamp.chk`, git's `.git/index` and `.git/FETCH_HEAD`): a few
//! hundred `stat`s, well under a millisecond. Only a directory that changed is
//! listed, and only its files whose (mtime, size, inode) changed are read again.
//!
//! A Manifest sits in a per-package directory (19,000 of them), so it is not watched
//! through a directory: a category's Manifests are checked file by file at each poll
//! for a minute ([`RepoOptions::hot_for`]) after that category's md5-cache directory
//! changed, and every Manifest is, for a minute after a sync's marker file changed
//! (a sync changes an ebuild's cache entry and its Manifest together, in either
//! order, and may run for a while). Every file of every repository is checked once a
//! minute anyway ([`RepoOptions::full_check`]), which catches what has no marker: a
//! hand edit in a local overlay, even in place.
//!
//! Why not inotify: it needs a watch per directory (19,000+, above the 8,192 default
//! limit of older kernels), new directories race with their first files, and it sees
//! nothing on NFS, where a repository shared by several hosts is common. Directory
//! mtimes work on any local file system, and on NFS too, delayed by the client's
//! attribute cache (`acdirmin`, 30 s by default; mount with `actimeo=2` or
//! `lookupcache=positive` for faster pick-up).
//!
//! Every change bumps the index's generation. A name whose merged entry changed (or
//! appeared) gets that generation ([`RepoIndex::generation_of`]), and every listener
//! registered with [`RepoIndex::on_update`] is told the names, so that, for example,
//! a negative cache forgets them at once.
//!
//! # Memory
//! Strings live in one arena (interned, so a URL directory shared by several
//! versions is stored once); a URL is stored as (directory id, file name id), and the
//! file name is the distfile's own name unless an arrow renamed it; digests are bytes.
//! Dead strings and URLs left by updates are reclaimed by rebuilding the index in the
//! background (old answers are served meanwhile) once they make up about a third.
//! `examples/repo_index_bench.rs` measures it: see its header.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::digest::Digests;
use super::follow::{self, Tracker};
use super::md5_cache::Restrict;
use super::records::Data;
use super::verify::Expected;

/// How the index reads and follows repositories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoOptions {
    /// How often directories are checked for changes (default 2 s).
    pub poll: Duration,
    /// How often every file is checked, changed directory or not (default 60 s).
    pub full_check: Duration,
    /// How long a category's Manifests are checked file by file after its md5-cache
    /// directory changed (default 60 s).
    pub hot_for: Duration,
    /// Portage's metadata cache, used for repositories without `metadata/md5-cache`
    /// (default `/var/cache/edb/dep`).
    pub dep_cache: PathBuf,
}

impl Default for RepoOptions {
    fn default() -> RepoOptions {
        RepoOptions {
            poll: Duration::from_secs(2),
            full_check: Duration::from_secs(60),
            hot_for: Duration::from_secs(60),
            dep_cache: PathBuf::from("/var/cache/edb/dep"),
        }
    }
}

/// Everything the repositories say about one distfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distfile {
    /// The distfile's name.
    pub name: String,
    /// Size in bytes, from a Manifest `DIST` line (`None` if no Manifest lists it).
    pub size: Option<u64>,
    /// BLAKE2B and SHA512 from that line (either may be missing in old Manifests).
    pub digests: Digests,
    /// Where it may be fetched from, in portage's order: `mirror://` URIs expanded
    /// through thirdpartymirrors (each mirror in turn, in file order) first, then
    /// the other URIs in `SRC_URI` order; the other way round with
    /// `RESTRICT="primaryuri"`. Empty when fetch-restricted (only `fetch+`/`mirror+`
    /// URIs are kept then) or when no `SRC_URI` gives a URL.
    pub urls: Vec<String>,
    /// Restrictions, merged as the module documentation says. `mirror` is true when
    /// portage would skip `GENTOO_MIRRORS` for the file (`RESTRICT` `mirror` or
    /// `fetch`, not lifted by a `mirror+` URI).
    pub restrict: Restrict,
    /// Whether some md5-cache `SRC_URI` names it (false: known from a Manifest only).
    pub in_src_uri: bool,
    /// Whether Manifests disagree about its size or digests.
    pub conflict: bool,
    /// The index generation at which this entry last changed.
    pub generation: u64,
}

impl Distfile {
    /// What a download of this file must match, if a Manifest lists it.
    pub fn expected(&self) -> Option<Expected> {
        self.size.map(|size| Expected {
            size: Some(size),
            digests: self.digests.clone(),
        })
    }
}

/// The answer to a lookup.
// Returned once per cache miss and never stored in bulk: boxing would only cost.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The first reading of the repositories has not finished: nothing can be said.
    NotReady,
    /// No Manifest and no `SRC_URI` names it.
    Unknown,
    /// Known.
    Found(Distfile),
}

/// What changed, told to [`RepoIndex::on_update`] listeners after each change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The index generation after the change.
    pub generation: u64,
    /// Everything may have changed (the first reading finished, or a
    /// `thirdpartymirrors` file changed): forget whatever was remembered.
    pub full: bool,
    /// Names added or changed (empty when `full`).
    pub names: Vec<String>,
}

/// Counters for logs, the status page and the benchmark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// The first reading has finished.
    pub ready: bool,
    /// The current generation.
    pub generation: u64,
    /// Distfile names known.
    pub names: usize,
    /// Names listed by some Manifest.
    pub manifest_names: usize,
    /// Per-file records (a name in two files counts twice).
    pub records: usize,
    /// md5-cache entries and Manifests read and tracked.
    pub files: usize,
    /// Bytes the index holds on the heap (counted from capacities; the tracker of
    /// files and directories included).
    pub heap_bytes: usize,
    /// Times the index was rebuilt to reclaim dead strings.
    pub rebuilds: u64,
}

pub(crate) type Listener = Box<dyn Fn(&Update) + Send + Sync>;

/// A flag and a condition variable for the follower thread.
#[derive(Default)]
struct Control {
    stop: bool,
    wake: bool,
}

pub(crate) struct Shared {
    data: RwLock<Data>,
    ready: AtomicBool,
    listeners: Mutex<Vec<Listener>>,
    control: Mutex<Control>,
    cond: Condvar,
    tracker_bytes: Mutex<(usize, usize, u64)>,
}

impl Shared {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn with_data<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        let mut guard = self.data.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    pub(crate) fn listeners_push(&self, listener: Listener) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    pub(crate) fn notify(&self, update: &Update) {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for l in listeners.iter() {
            l(update);
        }
    }

    /// Waits up to `timeout` for a wake-up; returns whether to stop.
    pub(crate) fn sleep(&self, timeout: Duration) -> bool {
        let mut c = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        if !c.stop && !c.wake {
            c = self
                .cond
                .wait_timeout(c, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        c.wake = false;
        c.stop
    }

    pub(crate) fn stopping(&self) -> bool {
        self.control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub(crate) fn set_tracker_stats(&self, files: usize, bytes: usize, rebuilds: u64) {
        *self
            .tracker_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (files, bytes, rebuilds);
    }

    pub(crate) fn swap(&self, data: Data) -> Data {
        let mut guard = self.data.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut guard, data)
    }
}

/// The distfiles of one or more repositories, followed while running. See the
/// module documentation.
pub struct RepoIndex {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RepoIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoIndex")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RepoIndex {
    /// Starts indexing `repos` (repository roots, in priority order: the Gentoo
    /// repository first) in a background thread that then follows their changes.
    /// Returns at once; lookups answer [`Lookup::NotReady`] until the first reading
    /// is done. Errors: a path that is not a readable directory (`NotFound`,
    /// `NotADirectory`, `PermissionDenied`), or more than 255 repositories
    /// (`InvalidInput`).
    pub fn start(repos: &[PathBuf], options: RepoOptions) -> io::Result<RepoIndex> {
        let tracker = Tracker::new(repos, &options)?;
        let shared = Arc::new(Shared::new());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("repo-index".into())
            .spawn(move || follow::run(&thread_shared, tracker, &options))?;
        Ok(RepoIndex {
            shared,
            thread: Some(thread),
        })
    }

    /// Reads `repos` once, on this thread, without following changes (for one-shot
    /// commands such as `cull --unreferenced`). Errors as [`RepoIndex::start`].
    pub fn load(repos: &[PathBuf], options: RepoOptions) -> io::Result<RepoIndex> {
        let mut tracker = Tracker::new(repos, &options)?;
        let shared = Arc::new(Shared::new());
        tracker.first_pass(&shared);
        shared.set_ready();
        Ok(RepoIndex {
            shared,
            thread: None,
        })
    }

    /// Everything known about distfile `name`.
    pub fn lookup(&self, name: &str) -> Lookup {
        if !self.is_ready() {
            return Lookup::NotReady;
        }
        let data = self.shared.read();
        match data.distfile(name) {
            Some(d) => Lookup::Found(d),
            None => Lookup::Unknown,
        }
    }

    /// What [`RepoIndex::lookup`] says, but for the URLs ([`Distfile::urls`] is
    /// empty): the size, digests and restrictions, without formatting and expanding
    /// every URL. [`RepoIndex::urls`] gives the URLs when they are needed.
    pub fn lookup_without_urls(&self, name: &str) -> Lookup {
        if !self.is_ready() {
            return Lookup::NotReady;
        }
        let data = self.shared.read();
        match data.distfile_without_urls(name) {
            Some(d) => Lookup::Found(d),
            None => Lookup::Unknown,
        }
    }

    /// The URLs of distfile `name` ([`Distfile::urls`]); empty when it is unknown, or
    /// before the first reading finished.
    pub fn urls(&self, name: &str) -> Vec<String> {
        if !self.is_ready() {
            return Vec::new();
        }
        self.shared.read().urls(name)
    }

    /// Whether some Manifest lists `name`; `None` before the first reading is done.
    pub fn in_manifest(&self, name: &str) -> Option<bool> {
        if !self.is_ready() {
            return None;
        }
        let data = self.shared.read();
        Some(data.in_manifest(name))
    }

    /// Whether the first reading has finished.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// Waits until the first reading has finished, at most `timeout`; returns
    /// whether it has.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.is_ready() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// The current generation: it grows by one with every change picked up.
    pub fn generation(&self) -> u64 {
        u64::from(self.shared.read().generation)
    }

    /// The generation at which `name` was last added or changed; `None` if unknown
    /// (or not ready). A negative cache can remember the generation at which it
    /// recorded a miss and forget the miss when this is newer.
    pub fn generation_of(&self, name: &str) -> Option<u64> {
        if !self.is_ready() {
            return None;
        }
        let data = self.shared.read();
        data.generation_of(name).map(u64::from)
    }

    /// Calls `listener` after every change, on the index's thread, with the names
    /// added or changed (see [`Update`]). Keep it short: the next poll waits for it;
    /// and do not register another listener from inside one (it would deadlock).
    pub fn on_update(&self, listener: impl Fn(&Update) + Send + Sync + 'static) {
        self.shared.listeners_push(Box::new(listener));
    }

    /// Asks the follower thread to check for changes now rather than at its next
    /// poll (for a SIGHUP, or a hook run after `emerge --sync`).
    pub fn refresh(&self) {
        let mut c = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.wake = true;
        self.shared.cond.notify_all();
    }

    /// Counters.
    pub fn stats(&self) -> IndexStats {
        let (files, tracker_bytes, rebuilds) = *self
            .shared
            .tracker_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let data = self.shared.read();
        let mut stats = data.stats();
        stats.ready = self.is_ready();
        stats.files = files;
        stats.heap_bytes += tracker_bytes;
        stats.rebuilds = rebuilds;
        stats
    }

    /// Stops the follower thread and waits for it.
    pub fn stop(&mut self) {
        {
            let mut c = self
                .shared
                .control
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            c.stop = true;
            self.shared.cond.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RepoIndex {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            data: RwLock::new(Data::default()),
            ready: AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
            control: Mutex::new(Control::default()),
            cond: Condvar::new(),
            tracker_bytes: Mutex::new((0, 0, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_said_before_the_first_reading() {
        let index = RepoIndex {
            shared: Arc::new(Shared::new()),
            thread: None,
        };
        assert_eq!(index.lookup("a.tar.gz"), Lookup::NotReady);
        assert_eq!(index.in_manifest("a.tar.gz"), None);
        assert_eq!(index.generation_of("a.tar.gz"), None);
        assert!(!index.wait_ready(Duration::from_millis(20)));
        assert!(!index.stats().ready);
    }
}

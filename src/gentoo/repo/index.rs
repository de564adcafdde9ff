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

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::digest::Digests;
use super::md5_cache::Restrict;
use super::mirrors::{Mirrors, split_mirror_uri};
use super::strings::{NONE, Strings, reserve_gently};
use super::verify::Expected;

use super::follow::{self, Tracker};

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
        let id = data.strings.find(name)?;
        (data.heads.get(id as usize).copied().unwrap_or(NONE) != NONE)
            .then(|| u64::from(data.gens[id as usize]))
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

// ---------------------------------------------------------------------------------
// The data: records per (file, name), chained per name.

/// The record comes from a Manifest `DIST` line.
const MANIFEST: u8 = 1;
/// The record comes from an md5-cache `SRC_URI`.
const SRC_URI: u8 = 2;
/// That `SRC_URI`'s package fetch-restricts the file.
const R_FETCH: u8 = 4;
/// … mirror-restricts it (or fetch-restricts it).
const R_MIRROR: u8 = 8;
/// … asks for `primaryuri`.
const R_PRIMARY: u8 = 16;

/// What one file (a Manifest or an md5-cache entry) says about one name: 40 bytes.
#[derive(Clone, Copy, Debug)]
struct Record {
    name: u32,
    /// The next record of the same name.
    next: u32,
    /// The next record of the same file.
    next_in_file: u32,
    /// Manifest: size in bytes.
    size: u64,
    /// Manifest: index in `digests`, or `NONE`.
    digest: u32,
    /// md5-cache: URLs at `urls[url_off..url_off + url_len]`.
    url_off: u32,
    url_len: u16,
    repo: u8,
    flags: u8,
}

/// A URL: `strings[dir]` followed by `strings[file]`, or by the distfile's name when
/// `file` is `NONE` (no arrow: the URI's last component is the name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Url {
    dir: u32,
    file: u32,
}

/// A Manifest's BLAKE2B and SHA512.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Dig {
    blake2b: Option<[u8; 64]>,
    sha512: Option<[u8; 64]>,
}

/// One file's contribution, parsed off the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileData {
    /// A Manifest's `DIST` lines: (name, size, BLAKE2B, SHA512).
    Manifest(Vec<DistLine>),
    /// An md5-cache entry: per name, its usable URLs and restriction flags.
    Md5(Vec<SrcFile>),
}

/// A Manifest `DIST` line as the index keeps it: (name, size, BLAKE2B, SHA512).
pub(crate) type DistLine = (String, u64, Option<[u8; 64]>, Option<[u8; 64]>);

/// A name in one md5-cache entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrcFile {
    pub(crate) name: String,
    /// Usable URLs, split after their last `/`: (directory, file name or `None` when
    /// it is the distfile's name).
    pub(crate) urls: Vec<(String, Option<String>)>,
    pub(crate) fetch: bool,
    pub(crate) mirror: bool,
    pub(crate) primary: bool,
}

impl FileData {
    /// Reads an md5-cache entry's text.
    pub(crate) fn from_md5(text: &str) -> FileData {
        use super::md5_cache::{Lift, parse_entry, parse_restrict, parse_src_uri};
        let entry = parse_entry(text);
        let r = parse_restrict(entry.restrict);
        let mut files: Vec<SrcFile> = Vec::new();
        // Per file: whether some URI lifts fetch (resp. mirror) restriction.
        let mut lifts: Vec<(bool, bool)> = Vec::new();
        for item in parse_src_uri(entry.src_uri) {
            let i = match files.iter().position(|f| f.name == item.name) {
                Some(i) => i,
                None => {
                    files.push(SrcFile {
                        name: item.name.to_owned(),
                        urls: Vec::new(),
                        fetch: false,
                        mirror: false,
                        primary: r.primaryuri,
                    });
                    lifts.push((false, false));
                    files.len() - 1
                }
            };
            let lifted = item.lift != Lift::None;
            lifts[i].0 |= lifted;
            lifts[i].1 |= item.lift == Lift::Mirror;
            let Some(uri) = item.uri else { continue };
            if r.fetch && !lifted {
                continue; // fetch restriction: only lifted URIs may be fetched
            }
            let cut = uri.rfind('/').map_or(0, |i| i + 1);
            let (dir, file) = uri.split_at(cut);
            let file = (file != item.name).then(|| file.to_owned());
            let url = (dir.to_owned(), file);
            if !files[i].urls.contains(&url) {
                files[i].urls.push(url);
            }
        }
        for (f, (lift_fetch, lift_mirror)) in files.iter_mut().zip(lifts) {
            f.fetch = r.fetch && !lift_fetch;
            f.mirror = (r.fetch || r.mirror) && !lift_mirror;
        }
        FileData::Md5(files)
    }

    /// Reads a Manifest's text.
    pub(crate) fn from_manifest(text: &str) -> FileData {
        let m = super::manifest::parse(text);
        FileData::Manifest(
            m.dists
                .into_iter()
                .map(|d| {
                    (
                        d.name.to_owned(),
                        d.size,
                        d.digests.blake2b,
                        d.digests.sha512,
                    )
                })
                .collect(),
        )
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        let (a, b) = match self {
            FileData::Manifest(v) => (Some(v.iter().map(|d| d.0.as_str())), None),
            FileData::Md5(v) => (None, Some(v.iter().map(|f| f.name.as_str()))),
        };
        a.into_iter().flatten().chain(b.into_iter().flatten())
    }
}

/// The merged view of one name.
#[derive(Debug, Default, Hash)]
struct Merged {
    size: Option<u64>,
    dig: Option<Dig>,
    conflict: bool,
    urls: Vec<Url>,
    fetch: bool,
    mirror: bool,
    primary: bool,
    in_src_uri: bool,
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub(crate) struct Data {
    strings: Strings,
    /// By string id: the first record of that name, or `NONE`.
    heads: Vec<u32>,
    /// By string id: the generation at which that name last changed.
    gens: Vec<u32>,
    records: Vec<Record>,
    free_records: Vec<u32>,
    urls: Vec<Url>,
    dead_urls: usize,
    digests: Vec<Dig>,
    free_digests: Vec<u32>,
    pub(crate) mirrors: Mirrors,
    pub(crate) generation: u32,
    /// Strings interned when the data was last built from scratch.
    pub(crate) strings_at_build: usize,
}

impl Data {
    fn intern(&mut self, s: &str) -> u32 {
        let id = self.strings.intern(s);
        if self.heads.len() <= id as usize {
            self.heads.resize(id as usize + 1, NONE);
            self.gens.resize(id as usize + 1, 0);
        }
        id
    }

    /// Whether enough strings and URLs are dead that a rebuild is worth it.
    pub(crate) fn wants_rebuild(&self) -> bool {
        let grown = self.strings.len().saturating_sub(self.strings_at_build);
        grown > self.strings_at_build / 2 + 20_000 || self.dead_urls > self.urls.len() / 2 + 20_000
    }

    /// Replaces the records of one file: `old` is the first record of its previous
    /// contents (`NONE` if none), `new` its contents now (`None`: the file is gone).
    /// Returns the first record of the new contents. Names whose records changed are
    /// added to `touched` (with repetitions).
    pub(crate) fn replace_file(
        &mut self,
        repo: u8,
        old: u32,
        new: Option<&FileData>,
        touched: &mut Vec<u32>,
    ) -> u32 {
        self.remove_file(old, touched);
        match new {
            Some(data) => self.add_file(repo, data, touched),
            None => NONE,
        }
    }

    /// The names of the records of a file, and of what replaces them, before the
    /// change (to fingerprint them).
    pub(crate) fn names_of(&mut self, old: u32, new: Option<&FileData>, out: &mut Vec<u32>) {
        let mut r = old;
        while r != NONE {
            let rec = self.records[r as usize];
            out.push(rec.name);
            r = rec.next_in_file;
        }
        if let Some(new) = new {
            for name in new.names() {
                let id = self.intern(name);
                out.push(id);
            }
        }
    }

    fn remove_file(&mut self, mut r: u32, touched: &mut Vec<u32>) {
        while r != NONE {
            let rec = self.records[r as usize];
            touched.push(rec.name);
            // Unlink from the name's chain.
            let head = &mut self.heads[rec.name as usize];
            if *head == r {
                *head = rec.next;
            } else {
                let mut p = *head;
                while p != NONE {
                    let next = self.records[p as usize].next;
                    if next == r {
                        self.records[p as usize].next = rec.next;
                        break;
                    }
                    p = next;
                }
            }
            if rec.digest != NONE {
                self.free_digests.push(rec.digest);
            }
            self.dead_urls += usize::from(rec.url_len);
            self.free_records.push(r);
            r = rec.next_in_file;
        }
    }

    fn add_file(&mut self, repo: u8, data: &FileData, touched: &mut Vec<u32>) -> u32 {
        let mut first = NONE;
        let mut push = |this: &mut Data, rec: Record| {
            let rec = Record {
                next: this.heads[rec.name as usize],
                next_in_file: first,
                ..rec
            };
            let r = match this.free_records.pop() {
                Some(r) => {
                    this.records[r as usize] = rec;
                    r
                }
                None => {
                    reserve_gently(&mut this.records, 1);
                    this.records.push(rec);
                    (this.records.len() - 1) as u32
                }
            };
            this.heads[rec.name as usize] = r;
            first = r;
            touched.push(rec.name);
        };
        match data {
            FileData::Manifest(dists) => {
                for (name, size, blake2b, sha512) in dists {
                    let name = self.intern(name);
                    let dig = Dig {
                        blake2b: *blake2b,
                        sha512: *sha512,
                    };
                    let digest = if dig.blake2b.is_none() && dig.sha512.is_none() {
                        NONE
                    } else if let Some(d) = self.free_digests.pop() {
                        self.digests[d as usize] = dig;
                        d
                    } else {
                        reserve_gently(&mut self.digests, 1);
                        self.digests.push(dig);
                        (self.digests.len() - 1) as u32
                    };
                    let rec = Record {
                        name,
                        next: NONE,
                        next_in_file: NONE,
                        size: *size,
                        digest,
                        url_off: 0,
                        url_len: 0,
                        repo,
                        flags: MANIFEST,
                    };
                    push(self, rec);
                }
            }
            FileData::Md5(files) => {
                for f in files {
                    let name = self.intern(&f.name);
                    let url_off = self.urls.len() as u32;
                    let mut url_len: u16 = 0;
                    for (dir, file) in f.urls.iter().take(usize::from(u16::MAX)) {
                        let dir = self.intern(dir);
                        let file = file.as_deref().map_or(NONE, |s| self.intern(s));
                        reserve_gently(&mut self.urls, 1);
                        self.urls.push(Url { dir, file });
                        url_len += 1;
                    }
                    let mut flags = SRC_URI;
                    for (on, bit) in [
                        (f.fetch, R_FETCH),
                        (f.mirror, R_MIRROR),
                        (f.primary, R_PRIMARY),
                    ] {
                        if on {
                            flags |= bit;
                        }
                    }
                    let rec = Record {
                        name,
                        next: NONE,
                        next_in_file: NONE,
                        size: 0,
                        digest: NONE,
                        url_off,
                        url_len,
                        repo,
                        flags,
                    };
                    push(self, rec);
                }
            }
        }
        first
    }

    /// The merged view of name `id`, if any record names it.
    fn merge(&self, id: u32) -> Option<Merged> {
        let mut recs: Vec<Record> = Vec::new();
        let mut r = *self.heads.get(id as usize)?;
        while r != NONE {
            let rec = self.records[r as usize];
            recs.push(rec);
            r = rec.next;
        }
        if recs.is_empty() {
            return None;
        }
        recs.sort_by_key(|r| r.repo); // stable: within a repository, chain order
        let mut m = Merged::default();
        let mut voters = 0;
        let (mut all_fetch, mut all_mirror) = (true, true);
        for rec in &recs {
            if rec.flags & MANIFEST != 0 {
                let dig = (rec.digest != NONE).then(|| self.digests[rec.digest as usize]);
                match m.size {
                    None => {
                        m.size = Some(rec.size);
                        m.dig = dig;
                    }
                    Some(size) => m.conflict |= size != rec.size || m.dig != dig,
                }
            }
            if rec.flags & SRC_URI != 0 {
                voters += 1;
                all_fetch &= rec.flags & R_FETCH != 0;
                all_mirror &= rec.flags & R_MIRROR != 0;
                m.primary |= rec.flags & R_PRIMARY != 0;
                let urls = &self.urls[rec.url_off as usize..][..usize::from(rec.url_len)];
                for url in urls {
                    if !m.urls.contains(url) {
                        m.urls.push(*url);
                    }
                }
            }
        }
        m.in_src_uri = voters > 0;
        m.fetch = voters > 0 && all_fetch;
        m.mirror = voters > 0 && all_mirror;
        Some(m)
    }

    /// A fingerprint of name `id`'s merged view (0: unknown). Strings are hashed by
    /// content, so fingerprints compare across rebuilds.
    pub(crate) fn fingerprint(&self, id: u32) -> u64 {
        let Some(m) = self.merge(id) else { return 0 };
        let mut h = DefaultHasher::new();
        (
            m.size,
            m.dig,
            m.conflict,
            m.fetch,
            m.mirror,
            m.primary,
            m.in_src_uri,
        )
            .hash(&mut h);
        for u in &m.urls {
            self.strings.get(u.dir).hash(&mut h);
            (u.file != NONE).hash(&mut h);
            self.strings.get(u.file).hash(&mut h);
        }
        h.finish() | 1
    }

    /// Records that the names in `changed` changed at generation `generation`.
    pub(crate) fn stamp(&mut self, changed: &[u32], generation: u32) {
        for &id in changed {
            self.gens[id as usize] = generation;
        }
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.strings.get(id)
    }

    pub(crate) fn find(&self, name: &str) -> Option<u32> {
        self.strings.find(name)
    }

    /// The ids of every known name.
    pub(crate) fn name_ids(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.heads.len() as u32).filter(|&id| self.heads[id as usize] != NONE)
    }

    /// Copies the generation of name `id` from another data.
    pub(crate) fn set_gen(&mut self, id: u32, generation: u32) {
        self.gens[id as usize] = generation;
    }

    pub(crate) fn gen_of(&self, id: u32) -> u32 {
        self.gens.get(id as usize).copied().unwrap_or(0)
    }

    fn in_manifest(&self, name: &str) -> bool {
        let Some(id) = self.strings.find(name) else {
            return false;
        };
        let mut r = self.heads.get(id as usize).copied().unwrap_or(NONE);
        while r != NONE {
            let rec = &self.records[r as usize];
            if rec.flags & MANIFEST != 0 {
                return true;
            }
            r = rec.next;
        }
        false
    }

    fn distfile(&self, name: &str) -> Option<Distfile> {
        let id = self.strings.find(name)?;
        let m = self.merge(id)?;
        let mut mirrored = Vec::new();
        let mut direct = Vec::new();
        for u in &m.urls {
            let file = if u.file == NONE {
                name
            } else {
                self.strings.get(u.file)
            };
            let uri = format!("{}{file}", self.strings.get(u.dir));
            if split_mirror_uri(&uri).is_some() {
                mirrored.extend(self.mirrors.expand(&uri));
            } else if !uri.starts_with("mirror://") {
                direct.push(uri);
            }
        }
        let (first, second) = if m.primary {
            (direct, mirrored)
        } else {
            (mirrored, direct)
        };
        let mut urls: Vec<String> = Vec::with_capacity(first.len() + second.len());
        for u in first.into_iter().chain(second) {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        let dig = m.dig.unwrap_or(Dig {
            blake2b: None,
            sha512: None,
        });
        Some(Distfile {
            name: name.to_owned(),
            size: m.size,
            digests: Digests {
                blake2b: dig.blake2b,
                sha512: dig.sha512,
                sha1: None,
            },
            urls,
            restrict: Restrict {
                fetch: m.fetch,
                mirror: m.mirror,
                primaryuri: m.primary,
            },
            in_src_uri: m.in_src_uri,
            conflict: m.conflict,
            generation: u64::from(self.gens[id as usize]),
        })
    }

    /// Releases spare capacity (after a build).
    pub(crate) fn shrink(&mut self) {
        self.strings.shrink();
        self.heads.shrink_to_fit();
        self.gens.shrink_to_fit();
        self.records.shrink_to_fit();
        self.urls.shrink_to_fit();
        self.digests.shrink_to_fit();
        self.strings_at_build = self.strings.len();
    }

    fn stats(&self) -> IndexStats {
        let mut names = 0;
        let mut manifest_names = 0;
        for id in self.name_ids() {
            names += 1;
            let mut r = self.heads[id as usize];
            while r != NONE {
                let rec = &self.records[r as usize];
                if rec.flags & MANIFEST != 0 {
                    manifest_names += 1;
                    break;
                }
                r = rec.next;
            }
        }
        let heap_bytes = self.strings.heap_bytes()
            + (self.heads.capacity() + self.gens.capacity()) * 4
            + self.records.capacity() * size_of::<Record>()
            + self.free_records.capacity() * 4
            + self.urls.capacity() * size_of::<Url>()
            + self.digests.capacity() * size_of::<Dig>()
            + self.free_digests.capacity() * 4;
        IndexStats {
            ready: false,
            generation: u64::from(self.generation),
            names,
            manifest_names,
            records: self.records.len() - self.free_records.len(),
            files: 0,
            heap_bytes,
            rebuilds: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5(text: &str) -> FileData {
        FileData::from_md5(text)
    }

    fn manifest(lines: &[(&str, u64, u8)]) -> FileData {
        FileData::Manifest(
            lines
                .iter()
                .map(|(n, s, b)| (n.to_string(), *s, Some([*b; 64]), None))
                .collect(),
        )
    }

    #[test]
    fn md5_entries_keep_usable_urls_per_name() {
        let FileData::Md5(files) = md5(
            "RESTRICT=fetch\nSRC_URI=https://h/a.tar.gz fetch+https://h/b.tar.gz -> bee.tgz \
             mirror+https://h/c.zip c.zip\n",
        ) else {
            panic!()
        };
        let got: Vec<(&str, usize, bool, bool)> = files
            .iter()
            .map(|f| (f.name.as_str(), f.urls.len(), f.fetch, f.mirror))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.tar.gz", 0, true, true),
                ("bee.tgz", 1, false, true),
                ("c.zip", 1, false, false),
            ]
        );
        assert_eq!(
            files[1].urls,
            vec![("https://h/".to_string(), Some("b.tar.gz".to_string()))]
        );
        assert_eq!(files[2].urls, vec![("https://h/".to_string(), None)]);
    }

    #[test]
    fn merges_repositories_and_replaces_files() {
        let mut d = Data::default();
        d.mirrors.merge("gnu https://m1/gnu https://m2/gnu/\n");
        let mut touched = Vec::new();
        let gentoo = d.replace_file(
            0,
            NONE,
            Some(&manifest(&[("x.tar.gz", 10, 1)])),
            &mut touched,
        );
        let overlay = d.replace_file(
            1,
            NONE,
            Some(&manifest(&[("x.tar.gz", 11, 2)])),
            &mut touched,
        );
        let e1 = d.replace_file(
            0,
            NONE,
            Some(&md5("SRC_URI=https://h/x.tar.gz mirror://gnu/x/x.tar.gz\n")),
            &mut touched,
        );
        let _e2 = d.replace_file(
            1,
            NONE,
            Some(&md5(
                "RESTRICT=mirror\nSRC_URI=https://o/v1.tgz -> x.tar.gz\n",
            )),
            &mut touched,
        );
        let x = d.distfile("x.tar.gz").unwrap();
        assert_eq!(x.size, Some(10), "the first repository's Manifest wins");
        assert_eq!(x.digests.blake2b, Some([1; 64]));
        assert!(x.conflict);
        assert_eq!(
            x.urls,
            vec![
                "https://m1/gnu/x/x.tar.gz",
                "https://m2/gnu/x/x.tar.gz",
                "https://h/x.tar.gz",
                "https://o/v1.tgz"
            ]
        );
        assert!(!x.restrict.mirror, "not every SRC_URI restricts it");
        assert!(x.in_src_uri && d.in_manifest("x.tar.gz"));

        // The overlay's Manifest is fixed, the Gentoo entry removed.
        let fp = d.fingerprint(d.find("x.tar.gz").unwrap());
        d.replace_file(
            1,
            overlay,
            Some(&manifest(&[("x.tar.gz", 10, 1)])),
            &mut touched,
        );
        d.replace_file(0, e1, None, &mut touched);
        let x = d.distfile("x.tar.gz").unwrap();
        assert!(!x.conflict);
        assert_eq!(x.urls, vec!["https://o/v1.tgz"]);
        assert!(x.restrict.mirror, "the only SRC_URI left restricts it");
        assert_ne!(fp, d.fingerprint(d.find("x.tar.gz").unwrap()));

        d.replace_file(0, gentoo, None, &mut touched);
        assert!(d.distfile("x.tar.gz").is_some());
        let stats = d.stats();
        assert_eq!(
            (stats.names, stats.manifest_names, stats.records),
            (1, 1, 2)
        );
        assert_eq!(d.distfile("nope"), None);
    }

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

    #[test]
    fn primaryuri_puts_direct_urls_first() {
        let mut d = Data::default();
        d.mirrors.merge("sf https://sf/\n");
        let mut t = Vec::new();
        d.replace_file(
            0,
            NONE,
            Some(&md5(
                "RESTRICT=primaryuri\nSRC_URI=mirror://sf/p/a.zip https://h/a.zip\n",
            )),
            &mut t,
        );
        let a = d.distfile("a.zip").unwrap();
        assert_eq!(a.urls, vec!["https://h/a.zip", "https://sf/p/a.zip"]);
        assert!(a.restrict.primaryuri && a.size.is_none() && a.expected().is_none());
    }
}

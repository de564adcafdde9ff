//! The live LRU index: every complete file in the cache, by last use, and the size cap.
//!
//! The [`Index`] knows every complete file in the cache: its size and when it was last
//! used. "Used" is recorded by us on every hit, in memory and on disk as the file's
//! access time (set explicitly, since relatime and noatime mounts make the kernel's
//! atime unreliable; the disk copy is refreshed at most once a minute per file, so hot
//! small files cost no extra syscall). Start-up never waits for it: a background scan
//! fills the index from the directory while the server already answers, and eviction
//! starts when the scan is done.
//!
//! Eviction is incremental: files are kept in an ordered map by last use, so the
//! oldest is found without scanning, and a culler thread removes files only while the
//! total is over the cap (`--max-size`). Never evicted: a file being read by a client,
//! or one whose entry is being downloaded (a revalidation of a file that changes in
//! place); files being downloaded for the first time are not complete, hence not in the
//! index. A single file larger than the cap is served and then dropped.
//!
//! Files deleted behind our back (an admin culling by hand) are noticed when eviction
//! reaches them, and every hour a rescan brings the totals back in line with the disk.
//! Both scans also remove the temporary files of dead downloads they meet
//! ([`super::store::Store::sweep`]), so start-up walks the cache once.
//!
//! [`cull`](crate::cache::cull) is the one-shot form for the `package-cache cull` command.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, FileTimes};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};

use super::store::{self, Entry};

/// How stale the on-disk access time may get before a hit refreshes it.
const DISK_TOUCH_EVERY_MS: u64 = 60_000;
/// How often the index is rebuilt from the disk.
const RESCAN_EVERY: Duration = Duration::from_secs(3600);

/// One complete file.
#[derive(Clone, Debug)]
struct Item {
    size: u64,
    /// Last use, milliseconds since the epoch.
    used: u64,
    /// The last use written to disk.
    disk_used: u64,
    /// Tie-breaker in the order map.
    seq: u64,
    /// Clients reading it and downloads replacing it.
    busy: u32,
}

/// A path relative to the cache root, shared by the maps and the guards.
type Rel = Arc<str>;

#[derive(Debug, Default)]
struct State {
    items: HashMap<Rel, Item>,
    /// (last use, seq) → relative path: oldest first.
    order: BTreeMap<(u64, u64), Rel>,
    total: u64,
    seq: u64,
    /// The start-up scan has finished.
    ready: bool,
    stop: bool,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn insert(&mut self, rel: Rel, mut item: Item) {
        item.seq = self.next_seq();
        if let Some(old) = self.items.get(&rel) {
            item.busy = old.busy;
            let old_key = (old.used, old.seq);
            self.total -= old.size;
            self.order.remove(&old_key);
        }
        self.total += item.size;
        self.order.insert((item.used, item.seq), rel.clone());
        self.items.insert(rel, item);
    }

    fn remove(&mut self, rel: &str) -> Option<Item> {
        let item = self.items.remove(rel)?;
        self.order.remove(&(item.used, item.seq));
        self.total -= item.size;
        Some(item)
    }

    /// Moves `rel` to the young end and marks it busy; returns its shared name and
    /// whether the disk copy of the last use needs refreshing.
    fn touch(&mut self, rel: &str, now: u64) -> Option<(Rel, bool)> {
        let seq = self.next_seq();
        let (key, item) = self.items.get_key_value(rel)?;
        let key = key.clone();
        let old = (item.used, item.seq);
        let item = self.items.get_mut(rel)?;
        item.busy += 1;
        let stale = now.saturating_sub(item.disk_used) >= DISK_TOUCH_EVERY_MS;
        if stale {
            item.disk_used = now;
        }
        item.used = item.used.max(now);
        item.seq = seq;
        let new = (item.used, item.seq);
        self.order.remove(&old);
        self.order.insert(new, key.clone());
        Some((key, stale))
    }
}

/// A snapshot of the index, for metrics and the status page.
#[derive(Clone, Debug, Default)]
pub struct IndexStats {
    /// Complete files known.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The cap, if any.
    pub cap: Option<u64>,
    /// Whether the start-up scan has finished (before that, totals are partial).
    pub ready: bool,
    /// Files evicted since start.
    pub evictions: u64,
    /// Bytes evicted since start.
    pub evicted_bytes: u64,
}

/// The complete files of one cache directory, by last use.
#[derive(Debug)]
pub struct Index {
    root: PathBuf,
    /// The cap in bytes; 0 for none.
    cap: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
    warned_touch: AtomicBool,
}

/// Marks a file as in use (being read or replaced) until dropped; it is not evicted
/// meanwhile.
#[derive(Debug)]
pub struct Busy {
    index: Arc<Index>,
    rel: Option<Rel>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let Some(rel) = self.rel.take() else { return };
        let over = {
            let mut s = self.index.lock();
            if let Some(item) = s.items.get_mut(&*rel) {
                item.busy = item.busy.saturating_sub(1);
            }
            self.index.over_cap(&s)
        };
        if over {
            self.index.wake.notify_all();
        }
    }
}

impl Index {
    /// An empty index for the cache at `root`, without a cap.
    pub fn new(root: impl Into<PathBuf>) -> Arc<Index> {
        Arc::new(Index {
            root: root.into(),
            cap: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            evictions: AtomicU64::new(0),
            evicted_bytes: AtomicU64::new(0),
            warned_touch: AtomicBool::new(false),
        })
    }

    /// Sets the cap (`None` or 0: no cap).
    pub fn set_cap(&self, cap: Option<u64>) {
        self.cap.store(cap.unwrap_or(0), Ordering::Relaxed);
        self.wake.notify_all();
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<u64> {
        match self.cap.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn over_cap(&self, s: &State) -> bool {
        s.ready && self.cap().is_some_and(|cap| s.total > cap)
    }

    fn rel<'p>(&self, path: &'p Path) -> Option<&'p str> {
        path.strip_prefix(&self.root).ok()?.to_str()
    }

    /// Records a hit on `entry` and marks it busy until the returned guard is dropped
    /// (hold it for as long as the file is being sent).
    pub fn used(self: &Arc<Self>, entry: &Entry) -> Busy {
        let Some(rel) = self.rel(&entry.path) else {
            return self.idle_guard();
        };
        let now = now_ms();
        let (rel, refresh) = {
            let mut s = self.lock();
            match s.touch(rel, now) {
                Some(touched) => touched,
                None => {
                    // Stored by another process, or not scanned yet.
                    let key: Rel = Arc::from(rel);
                    let item = Item {
                        size: entry.len,
                        used: now,
                        disk_used: now,
                        seq: 0,
                        busy: 1,
                    };
                    s.insert(key.clone(), item);
                    (key, true)
                }
            }
        };
        if refresh {
            self.touch_disk(&entry.file, &entry.path);
        }
        Busy {
            index: self.clone(),
            rel: Some(rel),
        }
    }

    fn touch_disk(&self, file: &File, path: &Path) {
        let times = FileTimes::new().set_accessed(SystemTime::now());
        if let Err(e) = file.set_times(times)
            && !self.warned_touch.swap(true, Ordering::Relaxed)
        {
            warn!(
                "cannot record the last use of {} ({e}); the order of eviction after a \
                 restart will follow the file system's access times",
                path.display()
            );
        }
    }

    /// Marks the file at `path` busy (not evictable) until the guard is dropped, without
    /// counting a use: for a download that may replace it.
    pub fn busy(self: &Arc<Self>, path: &Path) -> Busy {
        let Some(rel) = self.rel(path) else {
            return self.idle_guard();
        };
        let mut s = self.lock();
        let Some((key, _)) = s.items.get_key_value(rel) else {
            return self.idle_guard();
        };
        let key = key.clone();
        if let Some(item) = s.items.get_mut(rel) {
            item.busy += 1;
        }
        Busy {
            index: self.clone(),
            rel: Some(key),
        }
    }

    fn idle_guard(self: &Arc<Self>) -> Busy {
        Busy {
            index: self.clone(),
            rel: None,
        }
    }

    /// Records a file just stored (or replaced) at `path`, `size` bytes, used now.
    pub fn stored(&self, path: &Path, size: u64) {
        let Some(rel) = self.rel(path) else { return };
        let now = now_ms();
        let over = {
            let mut s = self.lock();
            let item = Item {
                size,
                used: now,
                disk_used: now,
                seq: 0,
                busy: 0,
            };
            s.insert(Arc::from(rel), item);
            self.over_cap(&s)
        };
        if over {
            self.wake.notify_all();
        }
    }

    /// A snapshot of the totals.
    pub fn stats(&self) -> IndexStats {
        let s = self.lock();
        IndexStats {
            files: s.items.len() as u64,
            bytes: s.total,
            cap: self.cap(),
            ready: s.ready,
            evictions: self.evictions.load(Ordering::Relaxed),
            evicted_bytes: self.evicted_bytes.load(Ordering::Relaxed),
        }
    }

    /// Fills the index from the directory (files already recorded keep their newer
    /// use) and removes leftovers of dead downloads, then marks it ready. Returns how
    /// many files it found.
    pub fn scan(&self) -> usize {
        let started = Instant::now();
        let mut found = 0;
        let mut batch = Vec::with_capacity(1024);
        let merge = |batch: &mut Vec<(Rel, Item)>| {
            let mut s = self.lock();
            for (rel, item) in batch.drain(..) {
                let newer = s.items.get(&rel).is_some_and(|old| old.used >= item.used);
                if !newer {
                    s.insert(rel, item);
                }
            }
        };
        store::files(&self.root, true, &mut |path, meta| {
            found += 1;
            if let Some(rel) = self.rel(path) {
                batch.push((Arc::from(rel), item_from(meta)));
            }
            if batch.len() == batch.capacity() {
                merge(&mut batch);
            }
        });
        merge(&mut batch);
        let over = {
            let mut s = self.lock();
            s.ready = true;
            self.over_cap(&s)
        };
        info!(
            "cache index: {found} files, {} in {}ms",
            crate::size::format(self.stats().bytes),
            started.elapsed().as_millis()
        );
        if over {
            self.wake.notify_all();
        }
        found
    }

    /// Rebuilds the totals from the disk: files gone are forgotten, new ones added.
    fn rescan(&self) {
        let mut seen = HashMap::new();
        store::files(&self.root, true, &mut |path, meta| {
            if let Some(rel) = self.rel(path) {
                seen.insert(Rel::from(rel), item_from(meta));
            }
        });
        let mut s = self.lock();
        let gone: Vec<Rel> = s
            .items
            .iter()
            .filter(|(rel, item)| item.busy == 0 && !seen.contains_key(*rel))
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in &gone {
            s.remove(rel);
        }
        for (rel, item) in seen {
            if !s.items.contains_key(&rel) {
                s.insert(rel, item);
            }
        }
        debug!(
            "cache index rescanned: {} files, {} gone",
            s.items.len(),
            gone.len()
        );
    }

    /// Evicts least recently used files that are not busy until the total is under the
    /// cap (or only busy files are left). Returns (files, bytes) removed.
    pub fn evict(&self) -> (u64, u64) {
        let (mut files, mut bytes) = (0, 0);
        loop {
            let mut s = self.lock();
            let Some(cap) = self.cap() else { break };
            if !s.ready || s.total <= cap {
                break;
            }
            let victim = s
                .order
                .values()
                .find(|rel| s.items.get(*rel).is_some_and(|i| i.busy == 0))
                .cloned();
            let Some(rel) = victim else { break };
            let Some(item) = s.remove(&rel) else { break };
            // Unlinked under the lock, so a hit cannot pick the file up meanwhile.
            let path = self.root.join(&*rel);
            match fs::remove_file(&path) {
                Ok(()) => {
                    files += 1;
                    bytes += item.size;
                    // Counted as each file goes, so the totals never lag the disk.
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    self.evicted_bytes.fetch_add(item.size, Ordering::Relaxed);
                    drop(s);
                    info!(
                        "evicted {rel} ({}, last used {} ago)",
                        crate::size::format(item.size),
                        ago(item.used)
                    );
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    drop(s);
                    warn!("cannot evict {}: {e}", path.display());
                }
            }
        }
        (files, bytes)
    }

    /// The culler: scans the directory, then evicts whenever the cap is exceeded and
    /// rescans every hour, until [`Index::stop`].
    pub fn run(&self) {
        self.scan();
        let mut last_scan = Instant::now();
        loop {
            self.evict();
            let mut s = self.lock();
            loop {
                if s.stop {
                    return;
                }
                let over = self.over_cap(&s);
                if last_scan.elapsed() >= RESCAN_EVERY || (over && self.has_idle(&s)) {
                    break;
                }
                // Over the cap with only busy files: look again when one is released
                // (or in a second).
                let wait = if over {
                    Duration::from_secs(1)
                } else {
                    RESCAN_EVERY.saturating_sub(last_scan.elapsed())
                };
                s = self
                    .wake
                    .wait_timeout(s, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            drop(s);
            if last_scan.elapsed() >= RESCAN_EVERY {
                self.rescan();
                last_scan = Instant::now();
            }
        }
    }

    fn has_idle(&self, s: &State) -> bool {
        s.items.values().any(|i| i.busy == 0)
    }

    /// Ends [`Index::run`].
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }
}

/// When a file was last used, in milliseconds since the epoch: its access time, which
/// [`Index::used`] keeps current.
pub(crate) fn last_use(meta: &fs::Metadata) -> u64 {
    u64::try_from(meta.atime()).unwrap_or(0) * 1000
        + u64::try_from(meta.atime_nsec()).unwrap_or(0) / 1_000_000
}

fn item_from(meta: &fs::Metadata) -> Item {
    let used = last_use(meta);
    Item {
        size: meta.len(),
        used,
        disk_used: used,
        seq: 0,
        busy: 0,
    }
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long ago `ms` (milliseconds since the epoch) was, for humans: `40s`, `3m`, `5h`,
/// `12d`.
pub(crate) fn ago(ms: u64) -> String {
    let secs = now_ms().saturating_sub(ms) / 1000;
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pc-cull-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("d")).unwrap();
        dir
    }

    pub(crate) fn put(root: &Path, name: &str, size: usize, age_secs: u64) -> PathBuf {
        let path = root.join("d").join(name);
        fs::write(&path, vec![b'x'; size]).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_secs);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(FileTimes::new().set_accessed(t))
            .unwrap();
        path
    }

    #[test]
    fn evicts_least_recently_used_first_and_spares_busy_files() {
        let root = temp("lru");
        let a = put(&root, "a", 100, 300);
        let b = put(&root, "b", 100, 200);
        let c = put(&root, "c", 100, 100);
        let index = Index::new(&root);
        assert_eq!(index.scan(), 3);
        assert_eq!(index.stats().bytes, 300);
        // a is the oldest but busy; b goes first.
        let busy = index.busy(&a);
        index.set_cap(Some(250));
        assert_eq!(index.evict(), (1, 100));
        assert!(a.exists() && !b.exists() && c.exists());
        drop(busy);
        index.set_cap(Some(150));
        assert_eq!(index.evict(), (1, 100));
        assert!(!a.exists() && c.exists());
        let stats = index.stats();
        assert_eq!((stats.files, stats.bytes, stats.evictions), (1, 100, 2));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_use_makes_a_file_young() {
        let root = temp("use");
        let a = put(&root, "a", 100, 300);
        let b = put(&root, "b", 100, 200);
        let index = Index::new(&root);
        index.scan();
        let entry = Entry {
            file: File::open(&a).unwrap(),
            len: 100,
            modified: SystemTime::now(),
            path: a.clone(),
        };
        drop(index.used(&entry));
        // The disk remembers too, for the next start and for `cull`.
        let atime = fs::metadata(&a).unwrap().accessed().unwrap();
        assert!(atime.elapsed().unwrap() < Duration::from_secs(60));
        index.set_cap(Some(100));
        index.evict();
        assert!(a.exists() && !b.exists());
        fs::remove_dir_all(&root).unwrap();
    }
}

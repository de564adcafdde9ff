//! Where entries live on disk, and how one gets there.
//!
//! A request for `/a/b/c` is stored at `CACHE/a/b/c`, exactly as the Python original
//! did, so an existing cache directory is served as it is. While a file is downloading,
//! two hidden files sit beside it:
//!
//! - `.c.pc-lock`: held with an exclusive fs2 (flock) lock by the one download in
//!   progress (in any process sharing the directory); once the upstream answered it
//!   holds a line of metadata (length, Last-Modified, ETag) for other processes, then
//!   the durable length (`synced N N`, see [`Lease::publish_synced`]), then, if the
//!   disk failed, `disk N`;
//! - `.c.pc-part`: the bytes received so far.
//!
//! Another process (on this host or, over NFS or CephFS, on another) relays only the
//! bytes below the durable length: on a network filesystem the part file's size can
//! run ahead of its data, and a gap reads as zeros.
//!
//! On success the part file is fsynced, stamped with the upstream's Last-Modified and
//! renamed over `c`, then the lock file is removed; on failure both are removed. Since a
//! crashed holder's flock is released by the kernel, leftovers are recognised (their
//! lock can be taken) and [`Store::sweep`] removes them. No request can name these
//! files: [`Key::new`] refuses the suffixes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};

use super::Error;

/// Suffix of the file a download writes to.
pub const PART_SUFFIX: &str = ".pc-part";
/// Suffix of the file a download holds locked.
pub const LOCK_SUFFIX: &str = ".pc-lock";

/// A checked path of a cache entry, relative to the cache root (`distfiles/foo.tar.gz`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// Checks a decoded request path (`/distfiles/foo.tar.gz`) and makes it a key.
    ///
    /// Refuses directories (`/`, a trailing `/`), names of temporary and lock files,
    /// and anything [`crate::proto::path::check`] refuses.
    pub fn new(path: &str) -> Result<Key, Error> {
        let invalid = |reason| Error::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        crate::proto::path::check(path).map_err(|_| invalid("not a valid path"))?;
        let rel = path.trim_start_matches('/');
        if rel.is_empty() || rel.ends_with('/') {
            return Err(invalid("is a directory"));
        }
        if rel
            .split('/')
            .any(|s| s.ends_with(PART_SUFFIX) || s.ends_with(LOCK_SUFFIX))
        {
            return Err(invalid("names a temporary file"));
        }
        Ok(Key(rel.to_owned()))
    }

    /// The relative path, without a leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: the file name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// What is known about a file before (or without) its bytes: from the upstream's
/// headers, or from a complete file on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Length in bytes, when announced.
    pub len: Option<u64>,
    /// The upstream's Last-Modified.
    pub modified: Option<SystemTime>,
    /// The upstream's ETag.
    pub etag: Option<String>,
}

impl Meta {
    /// What a complete file on disk tells: its length and modification time (no ETag).
    pub fn of_stored(len: u64, modified: SystemTime) -> Meta {
        Meta {
            len: Some(len),
            modified: Some(modified),
            etag: None,
        }
    }

    /// The one-line form stored in a lock file: `pc1 LEN MTIME ETAG`, `-` for unknown.
    fn encode(&self) -> String {
        let len = self.len.map_or("-".to_owned(), |n| n.to_string());
        let mtime = self.modified.map_or("-".to_owned(), |t| {
            crate::proto::date::unix_seconds(t).to_string()
        });
        let etag = self.etag.as_deref().unwrap_or("-");
        format!("pc1 {len} {mtime} {etag}\n")
    }

    /// Parses [`Meta::encode`]'s output (the first line); `None` if incomplete or
    /// foreign.
    fn decode(text: &str) -> Option<Meta> {
        let line = text.split_inclusive('\n').next()?.strip_suffix('\n')?;
        let mut fields = line.splitn(4, ' ');
        if fields.next()? != "pc1" {
            return None;
        }
        let opt = |s: &str| (s != "-").then(|| s.to_owned());
        let len = opt(fields.next()?).map(|s| s.parse()).transpose().ok()?;
        let modified = opt(fields.next()?)
            .map(|s| {
                s.parse::<u64>()
                    .map(|n| UNIX_EPOCH + Duration::from_secs(n))
            })
            .transpose()
            .ok()?;
        let etag = opt(fields.next()?);
        Some(Meta {
            len,
            modified,
            etag,
        })
    }
}

/// A complete file in the cache, opened.
#[derive(Debug)]
pub struct Entry {
    /// The open file.
    pub file: File,
    /// Its length.
    pub len: u64,
    /// Its modification time (the upstream's Last-Modified when it sent one).
    pub modified: SystemTime,
    /// Where it is.
    pub path: PathBuf,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the cache directory at `root` and checks that files
    /// can be created in it.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, Error> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let probe = root.join(format!(".write-test.{}{PART_SUFFIX}", std::process::id()));
        File::create(&probe).map_err(|e| Error::io(&root, e))?;
        let _ = fs::remove_file(&probe);
        Ok(Store { root })
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `key` is stored.
    pub fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// Opens the complete file for `key`, if there is one (directories and other
    /// non-files count as absent).
    pub fn lookup(&self, key: &Key) -> Result<Option<Entry>, Error> {
        let path = self.path(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None);
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(Entry {
            file,
            len: meta.len(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            path,
        }))
    }

    /// Claims the right to download `key`: [`Claim::Leader`] if nobody (in any
    /// process) is downloading it, else [`Claim::Busy`] to follow the download in
    /// progress.
    pub fn claim(&self, key: &Key) -> io::Result<Claim> {
        let paths = Paths::new(self.path(key));
        if let Some(parent) = paths.target.parent() {
            self.make_dirs(parent)?;
        }
        // The lock file can be removed by the holder between our open and our lock;
        // a lock on a removed file is worthless, so check and retry.
        for _ in 0..32 {
            let lock = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&paths.lock)?;
            match fs2::FileExt::try_lock_exclusive(&lock) {
                Ok(()) => {
                    if !same_file(&lock, &paths.lock) {
                        continue;
                    }
                    // Metadata left by a crashed holder means nothing now.
                    lock.set_len(0)?;
                    return Ok(Claim::Leader(Lease {
                        paths,
                        lock,
                        finished: false,
                        synced_at: AtomicU64::new(0),
                    }));
                }
                Err(e) if is_contended(&e) => {
                    let lock_id = lock.metadata().ok().map(|m| identity(&m));
                    return Ok(Claim::Busy(Watch {
                        paths,
                        lock,
                        lock_id,
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("lock file keeps disappearing"))
    }

    /// Creates `dir` and its parents below the root. A cached file standing where a
    /// directory is needed (a mirror once answered `dir` itself, say with a listing)
    /// is removed, with a warning: a stored file never blocks the tree for good.
    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        match fs::create_dir_all(dir) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::AlreadyExists | ErrorKind::NotADirectory
                ) =>
            {
                let blocker = dir
                    .ancestors()
                    .take_while(|p| p.starts_with(&self.root) && *p != self.root)
                    .find(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()));
                let Some(blocker) = blocker else {
                    return Err(e);
                };
                warn!(
                    "removing the cached file {}: a directory of that name is needed for {}",
                    blocker.display(),
                    dir.display()
                );
                fs::remove_file(blocker)?;
                fs::create_dir_all(dir)
            }
            other => other,
        }
    }

    /// Removes temporary and lock files left behind by crashed downloads (those whose
    /// lock nobody holds), below the whole cache. Returns how many files it removed.
    /// (The server's start-up index scan does the same on its one pass.)
    pub fn sweep(&self) -> usize {
        let mut removed = 0;
        walk(&self.root, &mut |dir, entry, _| {
            if let Some(name) = entry.file_name().to_str() {
                removed += sweep_leftover(dir, name);
            }
        });
        report_swept(removed);
        removed
    }
}

/// Calls `f` for every complete cached file below `root` (not following symlinks),
/// skipping our temporary and lock files. With `sweep`, those of dead downloads met on
/// the way are removed.
pub(crate) fn files(root: &Path, sweep: bool, f: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let mut swept = 0;
    walk(root, &mut |dir, entry, kind| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_internal(&name) {
            if sweep {
                swept += sweep_leftover(dir, &name);
            }
        } else if kind.is_file()
            && let Ok(meta) = entry.metadata()
        {
            f(&entry.path(), &meta);
        }
    });
    report_swept(swept);
}

/// Calls `f(dir, entry, kind)` for every entry below `root` that is not a directory
/// (symlinks are not followed). Unreadable directories are skipped.
fn walk(root: &Path, f: &mut dyn FnMut(&Path, &fs::DirEntry, fs::FileType)) {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                debug!("cannot list {}: {e}", dir.display());
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else {
                f(&dir, &entry, kind);
            }
        }
    }
}

/// Whether `name` is one of ours rather than a cached file: a temporary or lock file.
fn is_internal(name: &str) -> bool {
    temp_target(name).is_some()
}

/// If `name` in `dir` is a temporary or lock file whose download is dead, removes it
/// (with its partner); returns how many files it removed.
fn sweep_leftover(dir: &Path, name: &str) -> usize {
    temp_target(name).map_or(0, |target| sweep_one(&Paths::new(dir.join(target))))
}

/// Logs what a sweep removed.
fn report_swept(removed: usize) {
    if removed > 0 {
        info!("removed {removed} files left by interrupted downloads");
    }
}

/// The three paths of an entry.
#[derive(Clone, Debug)]
struct Paths {
    target: PathBuf,
    part: PathBuf,
    lock: PathBuf,
}

impl Paths {
    fn new(target: PathBuf) -> Paths {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Keep the hidden names within NAME_MAX: long names are shortened to a hash.
        let stem = if name.len() + 1 + PART_SUFFIX.len() > 255 {
            use blake2::{Blake2b512, Digest};
            let digest = Blake2b512::digest(name.as_bytes());
            digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
        } else {
            name
        };
        Paths {
            part: target.with_file_name(format!(".{stem}{PART_SUFFIX}")),
            lock: target.with_file_name(format!(".{stem}{LOCK_SUFFIX}")),
            target,
        }
    }
}

/// For a hidden temporary name (`.x.pc-part`, `.x.pc-lock`), the entry name (`x`).
fn temp_target(name: &str) -> Option<&str> {
    let stem = name
        .strip_suffix(PART_SUFFIX)
        .or_else(|| name.strip_suffix(LOCK_SUFFIX))?;
    stem.strip_prefix('.')
}

fn sweep_one(paths: &Paths) -> usize {
    let mut removed = 0;
    match File::open(&paths.lock) {
        Ok(lock) => {
            if fs2::FileExt::try_lock_exclusive(&lock).is_ok() && same_file(&lock, &paths.lock) {
                removed += usize::from(fs::remove_file(&paths.part).is_ok());
                removed += usize::from(fs::remove_file(&paths.lock).is_ok());
            }
        }
        // A part file without a lock file has no writer: a live writer holds its lock
        // file from before the part exists until after it is renamed away.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            removed += usize::from(fs::remove_file(&paths.part).is_ok());
        }
        Err(e) => debug!("cannot check {}: {e}", paths.lock.display()),
    }
    removed
}

/// The outcome of [`Store::claim`].
#[derive(Debug)]
pub enum Claim {
    /// This caller downloads the file.
    Leader(Lease),
    /// Someone else (another process, or another thread with its own claim) is
    /// downloading it.
    Busy(Watch),
}

/// The exclusive right to download one entry, held through an fs2 lock. Dropping it
/// without [`Lease::commit`] removes the partial file.
#[derive(Debug)]
pub struct Lease {
    paths: Paths,
    lock: File,
    finished: bool,
    /// Where the `synced` line goes in the lock file: after the metadata line (0 until
    /// [`Lease::publish`]).
    synced_at: AtomicU64,
}

impl Lease {
    /// Where the file will appear.
    pub fn target(&self) -> &Path {
        &self.paths.target
    }

    /// Creates (truncating) the partial file to write to.
    pub fn create_part(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&self.paths.part)
    }

    /// Records what the upstream announced, for followers in other processes. Must be
    /// called after [`Lease::create_part`].
    pub fn publish(&self, meta: &Meta) -> io::Result<()> {
        let line = meta.encode();
        self.lock.write_all_at(line.as_bytes(), 0)?;
        self.synced_at.store(line.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records that the first `n` bytes of the part file are durable (the caller
    /// `fdatasync`ed them): a line `synced N N` after the metadata, rewritten in place
    /// (fixed width, the number twice, so a reader that catches it half-written sees
    /// two different numbers and ignores the line). The lock file is flushed too, so
    /// that followers on other hosts can read it. Followers in other processes never
    /// relay bytes beyond it. Call it after [`Lease::publish`].
    pub fn publish_synced(&self, n: u64) -> io::Result<()> {
        let at = self.synced_at.load(Ordering::Relaxed);
        if at == 0 {
            return Err(io::Error::other("the metadata is not published yet"));
        }
        self.lock
            .write_all_at(format!("synced {n:020} {n:020}\n").as_bytes(), at)?;
        self.lock.sync_data()
    }

    /// Tells followers in other processes that writing to disk failed after `stored`
    /// bytes while the source was fine, so they continue from the source instead of
    /// failing: a line `disk N` after the metadata. Call it before dropping the lease.
    pub fn publish_disk_failure(&self, stored: u64) -> io::Result<()> {
        let at = self.lock.metadata()?.len();
        self.lock
            .write_all_at(format!("disk {stored}\n").as_bytes(), at)
    }

    /// Makes the download permanent: fsync, set the modification time, rename into
    /// place, remove the lock file.
    pub fn commit(mut self, part: &File, modified: Option<SystemTime>) -> io::Result<()> {
        if let Some(t) = modified {
            part.set_modified(t)?;
        }
        part.sync_all()?;
        fs::rename(&self.paths.part, &self.paths.target)?;
        let _ = fs::remove_file(&self.paths.lock);
        self.finished = true;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.paths.part);
            let _ = fs::remove_file(&self.paths.lock);
        }
        // Closing `lock` releases the flock.
    }
}

/// A view of a download running elsewhere (usually another process).
#[derive(Debug)]
pub struct Watch {
    paths: Paths,
    lock: File,
    /// `lock`'s device and inode (they never change while it is open).
    lock_id: Option<(u64, u64)>,
}

/// What one look at a download running elsewhere saw (see [`Watch::poll`]).
#[derive(Debug)]
pub struct Polled {
    /// The leader's lock, as [`Watch::leader`] tells it.
    pub leader: Leader,
    /// The durable length the leader published ([`Lease::publish_synced`]): the bytes
    /// a follower may relay. 0 until it published one (a leader of an older version
    /// never does: its followers wait for the complete file). Read after the lock.
    pub synced: u64,
}

/// The most of a lock file that is read: its metadata line and the lines after it.
const LOCK_TEXT_MAX: usize = 4096;

/// What a follower can tell about the leader of a download (see [`Watch::leader`]).
#[derive(Debug)]
pub enum Leader {
    /// It holds the lock: the download goes on.
    Holding,
    /// It let go of the lock, or its lock file is gone or replaced: the download ended
    /// (the file is in place, or it failed).
    Gone,
    /// The lock cannot be tested (over NFS: a stale file handle, no lock manager); the
    /// error says why. The caller decides how long to wait for progress.
    Unknown(io::Error),
}

impl Watch {
    /// Where the file will appear.
    pub fn target(&self) -> &Path {
        &self.paths.target
    }

    /// The metadata the leader published, once it has.
    pub fn meta(&self) -> Option<Meta> {
        self.with_lock_text(Meta::decode).flatten()
    }

    /// Bytes the leader had stored when the disk refused the rest, if it said so (see
    /// [`Lease::publish_disk_failure`]).
    pub fn disk_failure(&self) -> Option<u64> {
        self.with_lock_text(|text| {
            text.lines()
                .skip(1)
                .find_map(|l| l.strip_prefix("disk "))
                .and_then(|n| n.trim().parse().ok())
        })
        .flatten()
    }

    /// One look at the leader, as a follower polls it: the state of its lock (as
    /// [`Watch::leader`]), then the durable length it published, with one open of
    /// the lock file's path (which tells whether the path still names the file we
    /// watch, and revalidates its text on NFS) and no allocation.
    pub fn poll(&self) -> Polled {
        let fresh = File::open(&self.paths.lock);
        let named = match &fresh {
            Ok(f) => self.is_lock(f),
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            // Opening says nothing: look at the path as `leader` does.
            Err(_) => self.lock_named(),
        };
        let leader = if named {
            self.lock_state()
        } else {
            Leader::Gone
        };
        let fresh = fresh.ok().filter(|_| named);
        let mut buf = [0; LOCK_TEXT_MAX];
        let synced = self
            .lock_text(fresh.as_ref(), &mut buf)
            .map_or(0, parse_synced);
        Polled { leader, synced }
    }

    /// `f` applied to the lock file's text, read through a new descriptor while the
    /// path still names the file we watch: on NFS, opening revalidates the client's
    /// cache (close-to-open consistency), where a descriptor kept open may be served
    /// stale pages for as long as the attribute cache is trusted (3 to 60 s).
    fn with_lock_text<T>(&self, f: impl FnOnce(&str) -> T) -> Option<T> {
        let fresh = File::open(&self.paths.lock)
            .ok()
            .filter(|fresh| self.is_lock(fresh));
        let mut buf = [0; LOCK_TEXT_MAX];
        self.lock_text(fresh.as_ref(), &mut buf).map(f)
    }

    /// The lock file's text (its first [`LOCK_TEXT_MAX`] bytes) read into `buf`,
    /// through `fresh` (a new descriptor of it) if there is one, else through ours.
    fn lock_text<'b>(
        &self,
        fresh: Option<&File>,
        buf: &'b mut [u8; LOCK_TEXT_MAX],
    ) -> Option<&'b str> {
        let n = fresh.unwrap_or(&self.lock).read_at(buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()
    }

    /// Whether `file` is the lock file we watch.
    fn is_lock(&self, file: &File) -> bool {
        file.metadata()
            .is_ok_and(|m| Some(identity(&m)) == self.lock_id)
    }

    /// Whether the lock file's path still names the file we watch.
    fn lock_named(&self) -> bool {
        fs::metadata(&self.paths.lock).is_ok_and(|m| Some(identity(&m)) == self.lock_id)
    }

    /// The part file's length, read through a new descriptor (for the same reason as
    /// the lock file's text) while the path still names `part`; else `part`'s own.
    pub fn part_len(&self, part: &File) -> io::Result<u64> {
        match File::open(&self.paths.part) {
            Ok(f) if same_inode(&f, part) => Ok(f.metadata()?.len()),
            _ => Ok(part.metadata()?.len()),
        }
    }

    /// If the leader renamed `part` (opened through [`Watch::open_part`]) into place,
    /// the complete file's length (read through the new name, so revalidated).
    pub fn renamed(&self, part: &File) -> Option<u64> {
        let file = File::open(&self.paths.target).ok()?;
        same_inode(&file, part)
            .then(|| file.metadata().ok().map(|m| m.len()))
            .flatten()
    }

    /// Whether the leader still holds its lock, tested with a shared lock (a crashed
    /// leader's lock is released by the kernel, or on NFS by the server once the
    /// client's lease expires). A lock file that is gone or replaced means the leader
    /// is done, whatever the lock says.
    pub fn leader(&self) -> Leader {
        if !self.lock_named() {
            return Leader::Gone;
        }
        self.lock_state()
    }

    /// Whether the leader holds the lock on the file we watch, whatever its path names
    /// now.
    fn lock_state(&self) -> Leader {
        match fs2::FileExt::try_lock_shared(&self.lock) {
            Ok(()) => {
                let _ = fs2::FileExt::unlock(&self.lock);
                Leader::Gone
            }
            Err(e) if is_contended(&e) => Leader::Holding,
            Err(e) => Leader::Unknown(e),
        }
    }

    /// Opens the leader's partial file, if it still exists.
    pub fn open_part(&self) -> io::Result<Option<File>> {
        match File::open(&self.paths.part) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
        || e.kind() == ErrorKind::WouldBlock
}

/// The durable length in a lock file's text: its `synced N N` line with two equal
/// numbers, else 0.
fn parse_synced(text: &str) -> u64 {
    let line = text
        .split_inclusive('\n')
        .skip(1)
        .find(|l| l.starts_with("synced ") && l.ends_with('\n'));
    let mut numbers = line
        .unwrap_or_default()
        .trim_end()
        .split(' ')
        .skip(1)
        .map(|n| n.parse::<u64>().ok());
    match (numbers.next(), numbers.next(), numbers.next()) {
        (Some(Some(a)), Some(Some(b)), None) if a == b => a,
        _ => 0,
    }
}

/// Whether two open files are the same file.
/// A file's device and inode: what tells it from another.
fn identity(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn same_inode(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_store(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("pc-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Store::open(&dir).unwrap()
    }

    #[test]
    fn keys_refuse_directories_and_temporary_names() {
        assert_eq!(
            Key::new("/distfiles/a.tar.gz").unwrap().as_str(),
            "distfiles/a.tar.gz"
        );
        assert_eq!(
            Key::new("/distfiles/a.tar.gz").unwrap().file_name(),
            "a.tar.gz"
        );
        for bad in [
            "/",
            "/distfiles/",
            "/d/.a.pc-part",
            "/d/.a.pc-lock/x",
            "/a/../b",
            "/a//b",
        ] {
            let e = Key::new(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidPath { .. }), "{bad}");
        }
    }

    #[test]
    fn meta_round_trips() {
        let m = Meta {
            len: Some(42),
            modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            etag: Some("\"a b\"".into()),
        };
        assert_eq!(Meta::decode(&m.encode()), Some(m));
        assert_eq!(
            Meta::decode(&Meta::default().encode()),
            Some(Meta::default())
        );
        assert_eq!(Meta::decode("pc1 42 -"), None);
        assert_eq!(Meta::decode(""), None);
    }

    #[test]
    fn lease_commits_atomically() {
        let store = temp_store("commit");
        let key = Key::new("/d/file.bin").unwrap();
        let Claim::Leader(lease) = store.claim(&key).unwrap() else {
            panic!("busy")
        };
        let mut part = lease.create_part().unwrap();
        part.write_all(b"hello").unwrap();
        assert!(
            store.lookup(&key).unwrap().is_none(),
            "not visible before commit"
        );
        // A second claim while the first is held is busy and sees the metadata.
        lease
            .publish(&Meta {
                len: Some(5),
                ..Meta::default()
            })
            .unwrap();
        let Claim::Busy(watch) = store.claim(&key).unwrap() else {
            panic!("not busy")
        };
        assert!(matches!(watch.leader(), Leader::Holding));
        assert_eq!(watch.meta().and_then(|m| m.len), Some(5));
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        lease.commit(&part, Some(t)).unwrap();
        assert!(matches!(watch.leader(), Leader::Gone));
        let entry = store.lookup(&key).unwrap().unwrap();
        assert_eq!((entry.len, entry.modified), (5, t));
        let names: Vec<_> = fs::read_dir(store.root().join("d"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["file.bin"]);
    }

    #[test]
    fn the_durable_length_is_published_after_the_metadata() {
        let store = temp_store("synced");
        let key = Key::new("/d/file.bin").unwrap();
        let Claim::Leader(lease) = store.claim(&key).unwrap() else {
            panic!("busy")
        };
        lease.create_part().unwrap();
        assert!(lease.publish_synced(1).is_err(), "no metadata yet");
        let meta = Meta {
            len: Some(100),
            etag: Some("\"x\"".into()),
            ..Meta::default()
        };
        lease.publish(&meta).unwrap();
        let Claim::Busy(watch) = store.claim(&key).unwrap() else {
            panic!("not busy")
        };
        assert_eq!(watch.poll().synced, 0, "nothing durable yet");
        lease.publish_synced(10).unwrap();
        assert_eq!(watch.poll().synced, 10);
        lease.publish_synced(99).unwrap();
        assert_eq!((watch.poll().synced, watch.meta()), (99, Some(meta)));
        assert_eq!(watch.disk_failure(), None);
        lease.publish_disk_failure(99).unwrap();
        assert_eq!((watch.poll().synced, watch.disk_failure()), (99, Some(99)));
        assert!(matches!(watch.leader(), Leader::Holding));
        assert!(matches!(watch.poll().leader, Leader::Holding));
        drop(lease);
        assert!(matches!(watch.leader(), Leader::Gone));
        let polled = watch.poll();
        assert!(matches!(polled.leader, Leader::Gone));
        assert_eq!(
            polled.synced, 99,
            "read through our descriptor once the file is gone"
        );
    }

    #[test]
    fn a_half_written_durable_length_reads_as_none() {
        let line = |a: &str, b: &str| format!("pc1 5 - -\nsynced {a} {b}\n");
        assert_eq!(
            parse_synced(&line("00000000000000000042", "00000000000000000042")),
            42
        );
        assert_eq!(
            parse_synced(&line("00000000000000001042", "00000000000000000042")),
            0
        );
        assert_eq!(
            parse_synced("pc1 5 - -\nsynced 00000000000000000042 000000"),
            0
        );
        assert_eq!(parse_synced("synced 1 1\n"), 0, "not the metadata line");
        assert_eq!(parse_synced("pc1 5 - -\ndisk 3\n"), 0);
    }

    #[test]
    fn a_watched_lock_file_that_is_gone_means_the_leader_is_done() {
        let store = temp_store("gone");
        let key = Key::new("/d/file.bin").unwrap();
        let Claim::Leader(lease) = store.claim(&key).unwrap() else {
            panic!("busy")
        };
        let Claim::Busy(watch) = store.claim(&key).unwrap() else {
            panic!("not busy")
        };
        // The lock is still held (as it is for a moment after a commit, or as a stale
        // NFS handle may pretend), but the lock file is no longer there.
        fs::remove_file(store.root().join("d/.file.bin.pc-lock")).unwrap();
        assert!(matches!(watch.leader(), Leader::Gone));
        assert!(matches!(watch.poll().leader, Leader::Gone));
        // A new lock file under the same name is another download's.
        fs::write(store.root().join("d/.file.bin.pc-lock"), b"").unwrap();
        assert!(matches!(watch.leader(), Leader::Gone));
        assert!(matches!(watch.poll().leader, Leader::Gone));
        drop(lease);
    }

    #[test]
    fn dropped_lease_leaves_nothing() {
        let store = temp_store("drop");
        let key = Key::new("/d/file.bin").unwrap();
        let Claim::Leader(lease) = store.claim(&key).unwrap() else {
            panic!("busy")
        };
        lease.create_part().unwrap().write_all(b"partial").unwrap();
        drop(lease);
        assert!(store.lookup(&key).unwrap().is_none());
        assert_eq!(fs::read_dir(store.root().join("d")).unwrap().count(), 0);
    }

    #[test]
    fn sweep_removes_only_unlocked_leftovers() {
        let store = temp_store("sweep");
        let d = store.root().join("d");
        fs::create_dir_all(&d).unwrap();
        // Leftovers of a crash: a part with a free lock, and an orphan part.
        fs::write(d.join(".dead.pc-part"), b"x").unwrap();
        fs::write(d.join(".dead.pc-lock"), b"").unwrap();
        fs::write(d.join(".orphan.pc-part"), b"x").unwrap();
        // A live download.
        let key = Key::new("/d/live").unwrap();
        let Claim::Leader(lease) = store.claim(&key).unwrap() else {
            panic!("busy")
        };
        lease.create_part().unwrap();
        assert_eq!(store.sweep(), 3);
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".live.pc-lock", ".live.pc-part"]);
        drop(lease);
    }

    #[test]
    fn long_names_get_short_temporary_names() {
        let long = "x".repeat(250);
        let p = Paths::new(PathBuf::from("/c").join(&long));
        assert!(p.part.file_name().unwrap().len() <= 255);
        assert_ne!(p.part, p.lock);
    }
}

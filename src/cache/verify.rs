//! Checking files against what the application knows they must be, without knowing
//! where that knowledge comes from (a Gentoo `Manifest`, a binhost `Packages` index:
//! see `crate::gentoo::known`). The application hands the cache an [`Expect`] with
//! each request it can vouch for; the cache then:
//!
//! - skips a source whose `Content-Length` differs from [`Expect::size`], before any
//!   byte (in [`super::upstream`]);
//! - digests the body while it streams ([`Checked`], wrapped around the source's body
//!   by the download's leader; a large file's digests on threads of their own, in
//!   parallel with the transfer: see `digester`) and **holds back the last byte**
//!   until the digest is
//!   known. The tee never has that byte to write, so no reader sees the whole file
//!   before it is checked: not this process's clients (they read the part file up to
//!   what was written) and not followers in other processes (they read the same part
//!   file and wait for it to reach its length). On a mismatch the body ends in an
//!   error: the download breaks, nothing is stored, and every client's connection is
//!   cut one byte short;
//! - checks a stored file before serving it ([`StoredChecks`]): its size on every hit,
//!   its digests once per file and expectation. A match is remembered in an extended
//!   attribute of the file (`user.package-cache.verified`, also written when a
//!   verified download is stored: one `fgetxattr` per hit, and after a restart no file
//!   is read again); failures, and matches on file systems without user extended
//!   attributes (where a file is then read in full once per process), in memory. A file that fails is not served: the request is a miss, and the new
//!   download replaces it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use log::warn;

use super::store::{Entry, Key};

mod digester;

use digester::Digester;

/// A digest computation fed while a file streams, compared at the end.
pub trait Check: Send {
    /// Feeds the next bytes.
    fn update(&mut self, bytes: &[u8]);
    /// Compares what was fed with the expectation; the error says how it differed
    /// (`BLAKE2B 1234…, expected abcd…`).
    fn finish(self: Box<Self>) -> Result<(), String>;
    /// The same check as independent parts (one per digest, say) that can run in
    /// parallel, each fed every byte; all must pass (`vec![self]` when it cannot be
    /// split). Called before anything was fed.
    fn split(self: Box<Self>) -> Vec<Box<dyn Check>>;
}

/// What a file must be.
#[derive(Clone)]
pub struct Expect {
    /// Its size in bytes.
    pub size: u64,
    /// Identifies the expectation (size and digests): a stored file checked against
    /// an expectation with the same id is not read again, and a source that sent a
    /// copy failing it is not asked again for a while.
    pub id: u64,
    /// Where the expectation comes from, for messages (`Manifest`, `Packages`).
    pub by: &'static str,
    /// Makes a fresh check.
    pub check: Arc<dyn Fn() -> Box<dyn Check> + Send + Sync>,
}

impl fmt::Debug for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expect")
            .field("size", &self.size)
            .field("id", &format_args!("{:016x}", self.id))
            .field("by", &self.by)
            .finish_non_exhaustive()
    }
}

/// What the application knows of a file besides what its sources say.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// What it must be: checked on every copy, from a source or from disk.
    pub expect: Option<Expect>,
    /// Absolute URLs to fetch it from, in order, when no source has a correct copy
    /// (the file's own origins). The cache asks them through the same agents,
    /// timeouts, proxies and trust store as the sources.
    pub fallback: Fallback,
}

/// A file's own URLs ([`Known::fallback`]), listed only when a download needs them:
/// a request served from disk never pays for the list.
#[derive(Clone, Default)]
pub struct Fallback(Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>);

impl Fallback {
    /// The URLs `list` gives, called each time a download is planned.
    pub fn new(list: impl Fn() -> Vec<String> + Send + Sync + 'static) -> Fallback {
        Fallback(Some(Arc::new(list)))
    }

    /// The URLs, in order (none by default).
    pub fn urls(&self) -> Vec<String> {
        self.0.as_ref().map_or_else(Vec::new, |list| list())
    }
}

impl fmt::Debug for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Fallback(..)"
        } else {
            "Fallback(none)"
        })
    }
}

/// What the application knows of files besides what their sources say, consulted
/// once per request for a file (by the mirror, which hands the answer to the cache
/// in its [`super::Query`]).
pub trait Knowledge: Send + Sync {
    /// What is known of the file stored at `key`; `distfile` is its name when the
    /// request maps to a Gentoo distfile (in whatever layout it was asked for).
    /// `None`: nothing.
    fn known(&self, key: &Key, distfile: Option<&str>) -> Option<Known>;
}

/// The error a [`Checked`] body ends with when the file is not what was expected
/// (inside an `io::Error`; see [`mismatch_of`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The mismatch an `io::Error` from a [`Checked`] body carries, if that is what it is.
pub fn mismatch_of(e: &io::Error) -> Option<&Mismatch> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Mismatch>())
}

/// A body that is digested as it is read and never yields its last byte before the
/// digest matched (see the module docs). Bytes beyond the expected size, or a body
/// that ends early or differs, end it with an error carrying a [`Mismatch`].
pub struct Checked {
    inner: Box<dyn Read + Send>,
    check: Option<Digester>,
    size: u64,
    by: &'static str,
    /// Bytes received from `inner`.
    received: u64,
    /// Received bytes not yet yielded (at most the last byte of the file).
    tail: Vec<u8>,
    /// The end was reached and the file matched: `tail` may go out.
    released: bool,
}

impl Checked {
    /// Wraps `inner`, a body that should be the file `expect` describes.
    pub fn new(inner: Box<dyn Read + Send>, expect: &Expect) -> Checked {
        Checked {
            inner,
            check: Some(Digester::new((expect.check)(), expect.size)),
            size: expect.size,
            by: expect.by,
            received: 0,
            tail: Vec::new(),
            released: false,
        }
    }

    fn mismatch(&mut self, why: String) -> io::Error {
        self.check = None;
        io::Error::other(Mismatch(format!("does not match the {}: {why}", self.by)))
    }

    /// The end of `inner`: compare, and release the tail if it matched.
    fn finish(&mut self) -> io::Result<()> {
        let Some(check) = self.check.take() else {
            return Err(io::Error::other("read after a mismatch"));
        };
        if self.received != self.size {
            return Err(self.mismatch(format!("{} bytes, expected {}", self.received, self.size)));
        }
        check.finish().map_err(|why| self.mismatch(why))?;
        self.released = true;
        Ok(())
    }
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.released {
                let n = self.tail.len().min(buf.len());
                buf[..n].copy_from_slice(&self.tail[..n]);
                self.tail.drain(..n);
                return Ok(n);
            }
            let n = self.inner.read(buf)?;
            if n == 0 {
                self.finish()?;
                continue;
            }
            let Some(check) = self.check.as_mut() else {
                return Err(io::Error::other("read after a mismatch"));
            };
            check.update(&buf[..n]);
            let before = self.received;
            self.received += n as u64;
            if self.received > self.size {
                let (got, size) = (self.received, self.size);
                return Err(self.mismatch(format!("more than {size} bytes ({got} so far)")));
            }
            // Everything but the file's last byte may go out now.
            let free = (self.size - 1).saturating_sub(before).min(n as u64) as usize;
            self.tail.extend_from_slice(&buf[free..n]);
            if free > 0 {
                return Ok(free);
            }
        }
    }
}

/// Checks `fetched`'s body against `expect` as it streams (see [`Checked`]). A body
/// that announced no length gets the expected one: it is complete exactly when it
/// matches.
pub(crate) fn guard(fetched: &mut super::upstream::Fetched, expect: &Expect) {
    let body = std::mem::replace(&mut fetched.body, Box::new(io::empty()));
    fetched.body = Box::new(Checked::new(body, expect));
    if fetched.meta.len.is_none() {
        fetched.meta.len = Some(expect.size);
    }
}

/// Checks of stored files, remembered (see the module docs).
#[derive(Debug, Default)]
pub struct StoredChecks {
    memo: Mutex<HashMap<PathBuf, Memo>>,
    /// Files being read for a check now: a second request waits for the first.
    reading: Mutex<HashSet<PathBuf>>,
    read_done: Condvar,
    /// Stored files read in full to check them.
    pub read: AtomicU64,
    /// Checks of stored files that failed (size or digests).
    pub failed: AtomicU64,
}

/// The result of one check, valid while the file keeps its length and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Memo {
    id: u64,
    len: u64,
    mtime: u64,
    ok: bool,
}

/// The most checks remembered in memory: failures, and successes that could not be
/// written as an extended attribute (which remembers the rest).
const MEMO_MAX: usize = 16_384;

/// The extended attribute a verified file carries: `v1 ID LEN MTIME`.
const XATTR: &[u8] = b"user.package-cache.verified\0";

/// Bytes read at a time when a stored file is checked.
const READ_BLOCK: usize = 256 * 1024;

impl StoredChecks {
    /// Whether the stored file `entry` is what `expect` says. Its size is compared
    /// every time; its digests once (then remembered). `Err` says why not.
    pub fn check(&self, entry: &Entry, expect: &Expect) -> Result<(), String> {
        if entry.len != expect.size {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "{} bytes, the {} says {}",
                entry.len, expect.by, expect.size
            ));
        }
        let memo = Memo {
            id: expect.id,
            len: entry.len,
            mtime: seconds(entry.modified),
            ok: true,
        };
        let known = || {
            if read_mark(&entry.file) == Some((memo.id, memo.len, memo.mtime)) {
                return Some(Ok(()));
            }
            let m = lock(&self.memo).get(&entry.path).copied();
            m.filter(|m| Memo { ok: true, ..*m } == memo)
                .map(|m| match m.ok {
                    true => Ok(()),
                    false => Err(format!("does not match the {}", expect.by)),
                })
        };
        if let Some(result) = known() {
            return result;
        }
        let _reading = self.reading(&entry.path);
        // Another request may have checked it while this one waited.
        if let Some(result) = known() {
            return result;
        }
        self.read.fetch_add(1, Ordering::Relaxed);
        let result = digest_file(&entry.file, expect);
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let marked = result.is_ok() && write_mark(&entry.file, memo.id, memo.len, memo.mtime);
        if !marked {
            self.remember(
                entry.path.clone(),
                Memo {
                    ok: result.is_ok(),
                    ..memo
                },
            );
        }
        result
    }

    /// Marks `part`, about to be stored at `path` with `len` bytes and modification
    /// time `modified`, as verified against `expect` (its digests matched while it
    /// streamed).
    pub fn verified(
        &self,
        part: &File,
        path: PathBuf,
        expect: &Expect,
        len: u64,
        modified: Option<SystemTime>,
    ) {
        let Some(modified) = modified else { return };
        let mtime = seconds(modified);
        if !write_mark(part, expect.id, len, mtime) {
            self.remember(
                path,
                Memo {
                    id: expect.id,
                    len,
                    mtime,
                    ok: true,
                },
            );
        }
    }

    fn remember(&self, path: PathBuf, memo: Memo) {
        let mut m = lock(&self.memo);
        if m.len() >= MEMO_MAX {
            m.clear();
        }
        m.insert(path, memo);
    }

    /// Waits until nobody else reads `path` for a check, and claims it.
    fn reading(&self, path: &PathBuf) -> Reading<'_> {
        let mut r = lock(&self.reading);
        while r.contains(path) {
            r = self
                .read_done
                .wait(r)
                .unwrap_or_else(PoisonError::into_inner);
        }
        r.insert(path.clone());
        Reading {
            checks: self,
            path: path.clone(),
        }
    }
}

/// A claim on reading one file for a check; released on drop.
struct Reading<'a> {
    checks: &'a StoredChecks,
    path: PathBuf,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        lock(&self.checks.reading).remove(&self.path);
        self.checks.read_done.notify_all();
    }
}

/// Reads all of `file` through a fresh check of `expect`.
fn digest_file(file: &File, expect: &Expect) -> Result<(), String> {
    let mut check = Digester::new((expect.check)(), expect.size);
    let mut buf = vec![0u8; READ_BLOCK];
    let mut pos = 0u64;
    loop {
        let n = match file.read_at(&mut buf, pos) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        check.update(&buf[..n]);
        pos += n as u64;
    }
    if pos != expect.size {
        return Err(format!(
            "{pos} bytes, the {} says {}",
            expect.by, expect.size
        ));
    }
    check
        .finish()
        .map_err(|why| format!("does not match the {}: {why}", expect.by))
}

/// The mark a verified file carries, if any: (id, length, mtime).
fn read_mark(file: &File) -> Option<(u64, u64, u64)> {
    let mut buf = [0u8; 96];
    // SAFETY: a valid descriptor, a NUL-terminated name and a buffer we own.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            XATTR.as_ptr().cast(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let text = std::str::from_utf8(&buf[..usize::try_from(n).ok()?]).ok()?;
    let mut words = text.split(' ');
    if words.next()? != "v1" {
        return None;
    }
    let id = u64::from_str_radix(words.next()?, 16).ok()?;
    let len = words.next()?.parse().ok()?;
    let mtime = words.next()?.parse().ok()?;
    Some((id, len, mtime))
}

/// Marks `file` as verified; false when the file system keeps no user extended
/// attributes (then the memory is the only record).
fn write_mark(file: &File, id: u64, len: u64, mtime: u64) -> bool {
    let value = format!("v1 {id:016x} {len} {mtime}");
    // SAFETY: a valid descriptor, a NUL-terminated name and a buffer we own.
    let r = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            XATTR.as_ptr().cast(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOTSUP | libc::EPERM | libc::EACCES | libc::EROFS)
        ) {
            warn!("cannot mark a verified file: {e}");
        }
    }
    r == 0
}

fn seconds(t: SystemTime) -> u64 {
    crate::proto::date::unix_seconds(t)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A check that compares the bytes themselves (tests only).
    struct Same {
        want: Arc<Vec<u8>>,
        got: Vec<u8>,
    }

    impl Check for Same {
        fn update(&mut self, bytes: &[u8]) {
            self.got.extend_from_slice(bytes);
        }
        fn finish(self: Box<Self>) -> Result<(), String> {
            if *self.want == self.got {
                Ok(())
            } else {
                Err("other bytes".into())
            }
        }
        fn split(self: Box<Self>) -> Vec<Box<dyn Check>> {
            vec![self]
        }
    }

    /// An expectation that the file is exactly `bytes`.
    pub(crate) fn expect(bytes: &[u8]) -> Expect {
        let want = Arc::new(bytes.to_vec());
        Expect {
            size: bytes.len() as u64,
            id: bytes
                .iter()
                .fold(7u64, |h, &b| h.wrapping_mul(31) ^ u64::from(b)),
            by: "test",
            check: Arc::new(move || {
                Box::new(Same {
                    want: want.clone(),
                    got: Vec::new(),
                })
            }),
        }
    }

    /// A reader that yields `chunks` one per read, then ends.
    struct Chunks(Vec<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    /// Reads `r` to its end or first error: the bytes, and the error.
    fn drain(mut r: Checked) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn body(chunks: &[&[u8]]) -> Box<dyn Read + Send> {
        Box::new(Chunks(chunks.iter().map(|c| c.to_vec()).collect()))
    }

    #[test]
    fn the_last_byte_goes_out_only_after_the_check() {
        let e = expect(b"hello world");
        let (out, err) = drain(Checked::new(body(&[b"hello", b" wor", b"ld"]), &e));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, b"hello world");

        // Same length, other bytes: everything but the last byte, then the mismatch.
        let (out, err) = drain(Checked::new(body(&[b"hello", b" WORLD"]), &e));
        assert_eq!(out, b"hello WORL");
        let err = err.expect("a mismatch");
        let m = mismatch_of(&err).expect("carries a Mismatch");
        assert_eq!(m.0, "does not match the test: other bytes");

        // Short, long.
        let (out, err) = drain(Checked::new(body(&[b"hello"]), &e));
        assert_eq!(out, b"hello");
        assert!(
            mismatch_of(&err.unwrap())
                .unwrap()
                .0
                .contains("5 bytes, expected 11")
        );
        let (_, err) = drain(Checked::new(body(&[b"hello world", b"!"]), &e));
        assert!(
            mismatch_of(&err.unwrap())
                .unwrap()
                .0
                .contains("more than 11")
        );
    }

    #[test]
    fn a_one_byte_file_is_held_whole() {
        let e = expect(b"x");
        let mut r = Checked::new(body(&[b"x"]), &e);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn stored_files_are_checked_once_and_marked() {
        let dir = std::env::temp_dir().join(format!("pc-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"content").unwrap();
        let entry = || {
            let file = File::open(&path).unwrap();
            let meta = file.metadata().unwrap();
            Entry {
                len: meta.len(),
                modified: meta.modified().unwrap(),
                file,
                path: path.clone(),
            }
        };
        let checks = StoredChecks::default();
        assert_eq!(checks.check(&entry(), &expect(b"content")), Ok(()));
        assert_eq!(checks.check(&entry(), &expect(b"content")), Ok(()));
        assert_eq!(checks.read.load(Ordering::Relaxed), 1, "read once");
        // Another process (no memory) trusts the mark, where the file system keeps it.
        let fresh = StoredChecks::default();
        assert_eq!(fresh.check(&entry(), &expect(b"content")), Ok(()));
        let marked = read_mark(&entry().file).is_some();
        assert_eq!(fresh.read.load(Ordering::Relaxed), u64::from(!marked));
        // Other digests, same size: read again and refused.
        let err = checks.check(&entry(), &expect(b"CONTENT")).unwrap_err();
        assert!(err.contains("does not match the test"), "{err}");
        assert!(checks.check(&entry(), &expect(b"CONTENT")).is_err());
        assert_eq!(checks.read.load(Ordering::Relaxed), 2);
        // Another size: refused without reading.
        let err = checks
            .check(&entry(), &expect(b"longer content"))
            .unwrap_err();
        assert_eq!(err, "7 bytes, the test says 14");
        assert_eq!(checks.read.load(Ordering::Relaxed), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

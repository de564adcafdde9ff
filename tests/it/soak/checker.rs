//! The checker: every answer is right or visibly failed, never CORRUPT; a file that
//! changes in place never goes back in time; the counters of what came back; and the
//! cache directory holds only complete, correct files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{Class, MTIME, Spec, Versions};
use crate::support::client::{Answer, Framing, Reply};
use crate::support::{FakeMirror, list_files};

// ---------------------------------------------------------------------------------
// Counters

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub ok_get: AtomicU64,
    pub ok_range: AtomicU64,
    pub ok_head: AtomicU64,
    pub ok_not_found: AtomicU64,
    pub keep_alive: AtomicU64,
    pub range_as_200: AtomicU64,
    pub head_without_length: AtomicU64,
    pub failed: AtomicU64,
    pub failed_truncated: AtomicU64,
    pub failed_connection: AtomicU64,
    pub failed_timeout: AtomicU64,
    pub corrupt: AtomicU64,
    pub bad_meta: AtomicU64,
    /// A directory's listing, whole.
    pub ok_listing: AtomicU64,
    /// A directory's redirect, passed on.
    pub ok_redirect: AtomicU64,
    /// Answers (2xx, whole or not) for files that change in place.
    pub mutable: AtomicU64,
    /// ... of which carried an older version than the newest published when the
    /// request was sent (allowed: a lagging mirror, a copy within its TTL).
    pub older_than_published: AtomicU64,
    /// ... of which went back in time (see [`Timeline`]), for a file one process
    /// serves ...
    pub back_in_time: AtomicU64,
    /// ... and for a file both processes serve.
    pub back_in_time_shared: AtomicU64,
    pub timeline: Timeline,
    pub statuses: Mutex<BTreeMap<u16, u64>>,
    pub tags: Mutex<BTreeMap<String, u64>>,
    /// The first CORRUPT answers and wrong headers.
    pub problems: Mutex<Vec<String>>,
    /// The first answers that went back in time (kept apart, so that they do not crowd
    /// out the others).
    pub back_notes: Mutex<Vec<String>>,
}

impl Counters {
    pub fn note(&self, problem: String) {
        keep(&self.problems, problem);
    }

    fn note_back(&self, problem: String) {
        keep(&self.back_notes, problem);
    }
}

/// Prints and keeps `problem`, up to 40 of them.
fn keep(list: &Mutex<Vec<String>>, problem: String) {
    let mut p = list.lock().unwrap();
    if p.len() < 40 {
        eprintln!("soak: {problem}");
        p.push(problem);
    }
}

// ---------------------------------------------------------------------------------
// Never back in time

/// What "a file that changes in place never goes back in time" means with two
/// processes sharing one cache directory, and its bookkeeping.
///
/// Each server process answers from what it remembers (the newest version it served
/// and each source's ETag) and from the shared directory, where the other process may
/// put another copy at any time. So the promise is per process: **a client never
/// receives a version older than the newest version any client has already received
/// whole from the same server process.** "Already" is real time: an answer counts once
/// its client has read all of it, and binds every request sent after that, to that
/// process; requests that overlap in time are not ordered. "Whole" is a complete body,
/// a complete range, or a HEAD's headers: a visibly broken answer is thrown away by
/// its client, so it does not raise the bar (but it is held to it). A restarted
/// process is a new process (it remembers nothing), and two processes are not
/// ordered with each other (one may not have seen the newer version yet).
///
/// A version is identified by its Last-Modified (the mirrors give version `n` the same
/// one, and different ETags); [`judge`] has already checked that the bytes are that
/// version's.
///
/// Two more promises are checked apart: the copy stored for a file only one process
/// serves never goes back ([`watch_store`]), and once the mirrors agree every process
/// serves the newest version. The ways the cache once broke this promise are listed,
/// and reproduced each on its own, in [`super::back_in_time`].
#[derive(Default)]
pub struct Timeline {
    /// (server process, path) -> the newest version a client has read whole from it,
    /// and how (for the report).
    newest: Mutex<HashMap<(u64, String), (usize, String)>>,
    /// When the first request left, for the times in the report.
    start: OnceLock<Instant>,
}

/// What a request for a file that changes in place is held to, taken as it leaves.
pub struct Before {
    /// The newest version read whole from the same process so far, and how.
    floor: Option<(usize, String)>,
    /// The newest version published.
    published: usize,
    sent: Duration,
}

impl Timeline {
    fn now(&self) -> Duration {
        self.start.get_or_init(Instant::now).elapsed()
    }

    /// Before a request for `spec` to process `server` (`None` unless `spec` changes
    /// in place).
    pub fn before(&self, server: u64, spec: &Spec) -> Option<Before> {
        let versions = spec.versions()?;
        let floor = self
            .newest
            .lock()
            .unwrap()
            .get(&(server, spec.path.clone()))
            .cloned();
        Some(Before {
            floor,
            published: versions.latest().n,
            sent: self.now(),
        })
    }

    /// After a whole answer from process `server` carrying version `n` was read.
    fn received(&self, server: u64, path: &str, n: usize, how: String) {
        let mut newest = self.newest.lock().unwrap();
        let v = newest
            .entry((server, path.to_owned()))
            .or_insert((n, how.clone()));
        if n > v.0 {
            *v = (n, how);
        }
    }
}

impl Counters {
    /// An answer from process `server` carried version `n` of `spec`: it must not be
    /// older than `before.floor`; if it was whole (`ok`), it raises the floor. `how`
    /// says what it was, for the report.
    pub fn in_order(
        &self,
        before: Before,
        server: u64,
        spec: &Spec,
        n: usize,
        ok: bool,
        how: String,
    ) {
        if n < before.published {
            self.older_than_published.fetch_add(1, Ordering::Relaxed);
        }
        let how = format!(
            "{how}, {}, sent at {:.3}s, read at {:.3}s",
            if ok { "whole" } else { "broken" },
            before.sent.as_secs_f64(),
            self.timeline.now().as_secs_f64()
        );
        if let Some((floor, floor_how)) = before.floor.filter(|f| n < f.0) {
            let shared = spec.only.is_none();
            self.note_back(format!(
                "BACK IN TIME from process {server}{}: version {n} ({how}) after \
                 version {floor} ({floor_how})",
                if shared {
                    ", both processes serve it"
                } else {
                    ""
                },
            ));
            if shared {
                self.back_in_time_shared.fetch_add(1, Ordering::Relaxed);
            } else {
                self.back_in_time.fetch_add(1, Ordering::Relaxed);
            }
        }
        if ok {
            self.timeline.received(server, &spec.path, n, how);
        }
    }
}

// ---------------------------------------------------------------------------------
// Judging an answer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Get,
    Range(u64),
    Head,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The client can tell it failed.
    Failed,
    /// A wrong answer that looks right, or wrong bytes.
    Corrupt(String),
}

/// The index of the first byte of `got` that differs from `want`, if any (`got` may be
/// shorter).
fn mismatch(got: &[u8], want: &[u8]) -> Option<usize> {
    if got.len() > want.len() {
        return Some(want.len());
    }
    if got == &want[..got.len()] {
        return None;
    }
    got.iter().zip(want).position(|(a, b)| a != b)
}

/// Judges `answer` to `kind` of `spec`; also returns, for a file that changes in
/// place, the version the answer carried (when its headers named one).
pub fn judge(
    spec: &Spec,
    kind: Kind,
    answer: &Answer,
    counters: &Counters,
) -> (Verdict, Option<usize>) {
    let got = match answer {
        Answer::Nothing { timed_out } => {
            if *timed_out {
                counters.failed_timeout.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.failed_connection.fetch_add(1, Ordering::Relaxed);
            }
            return (Verdict::Failed, None);
        }
        Answer::Garbage(line) => {
            return (
                Verdict::Corrupt(format!("not a status line: {line:?}")),
                None,
            );
        }
        Answer::Reply(g) => g,
    };
    *counters
        .statuses
        .lock()
        .unwrap()
        .entry(got.status)
        .or_default() += 1;
    if let Some(tag) = got.header("x-cache") {
        *counters
            .tags
            .lock()
            .unwrap()
            .entry(tag.to_owned())
            .or_default() += 1;
    }
    if got.timed_out {
        counters.failed_timeout.fetch_add(1, Ordering::Relaxed);
    }
    if !(200..300).contains(&got.status) {
        return (judge_status(spec, got, counters), None);
    }
    // What the answer must be: the file, the listing, or the version it names.
    let (want, version): (Arc<Vec<u8>>, Option<usize>) = match &spec.class {
        Class::Missing => {
            return (
                Verdict::Corrupt(format!(
                    "{} for a file the mirror does not have",
                    got.status
                )),
                None,
            );
        }
        Class::Fixed | Class::Directory => {
            let lm = package_cache::http::date::format(UNIX_EPOCH + Duration::from_secs(MTIME));
            if let Some(l) = got.header("last-modified")
                && l != lm
            {
                counters.bad_meta.fetch_add(1, Ordering::Relaxed);
                counters.note(format!("Last-Modified {l:?}, want {lm:?}"));
            }
            (spec.body.clone().unwrap(), None)
        }
        Class::Mutable(versions) => {
            let Some(l) = got.header("last-modified") else {
                return (
                    Verdict::Corrupt("no Last-Modified: which version is it?".into()),
                    None,
                );
            };
            let Some(v) = versions.by_last_modified(l) else {
                return (
                    Verdict::Corrupt(format!("Last-Modified {l:?} names no published version")),
                    None,
                );
            };
            counters.mutable.fetch_add(1, Ordering::Relaxed);
            (v.body, Some(v.n))
        }
    };
    let verdict = judge_body(spec, kind, got, &want, counters);
    match verdict {
        Verdict::Corrupt(_) => (verdict, None),
        _ => (verdict, version),
    }
}

/// An answer that is not 2xx: a 404 for a file nobody has and a directory's redirect
/// are right; any other status is a visible failure.
fn judge_status(spec: &Spec, got: &Reply, counters: &Counters) -> Verdict {
    match spec.class {
        Class::Missing if got.status == 404 => {
            counters.ok_not_found.fetch_add(1, Ordering::Relaxed);
            Verdict::Ok
        }
        Class::Directory if (301..=308).contains(&got.status) => {
            let want = format!("{}/", spec.path);
            match got.header("location") {
                Some(l)
                    if l == want || l.ends_with(&format!("/{}", want.trim_start_matches('/'))) =>
                {
                    counters.ok_redirect.fetch_add(1, Ordering::Relaxed);
                    Verdict::Ok
                }
                other => Verdict::Corrupt(format!("{} to {other:?}, want {want}", got.status)),
            }
        }
        _ => Verdict::Failed,
    }
}

/// A 2xx answer against the bytes it must have (`want`, the whole file).
fn judge_body(spec: &Spec, kind: Kind, got: &Reply, want: &[u8], counters: &Counters) -> Verdict {
    let total = want.len() as u64;
    let start = match (kind, got.status) {
        (Kind::Head, 200) => {
            return match got.header("content-length").map(str::parse::<u64>) {
                Some(Ok(n)) if n == total => {
                    counters.ok_head.fetch_add(1, Ordering::Relaxed);
                    Verdict::Ok
                }
                Some(other) => Verdict::Corrupt(format!(
                    "HEAD Content-Length {other:?}, file is {total} bytes"
                )),
                None => {
                    counters.head_without_length.fetch_add(1, Ordering::Relaxed);
                    counters.ok_head.fetch_add(1, Ordering::Relaxed);
                    Verdict::Ok
                }
            };
        }
        (_, 200) => {
            if matches!(kind, Kind::Range(_)) {
                counters.range_as_200.fetch_add(1, Ordering::Relaxed);
            }
            0
        }
        (Kind::Range(from), 206) => {
            let want_cr = format!("bytes {from}-{}/{total}", total - 1);
            if got.header("content-range") != Some(want_cr.as_str()) {
                return Verdict::Corrupt(format!(
                    "Content-Range {:?}, want {want_cr:?}",
                    got.header("content-range")
                ));
            }
            from
        }
        (_, s) => return Verdict::Corrupt(format!("status {s} for {kind:?}")),
    };
    let want = &want[start as usize..];
    match got.framing {
        Framing::Length(n) if n != want.len() as u64 => {
            return Verdict::Corrupt(format!(
                "Content-Length {n}, want {} (from {start} of {total})",
                want.len()
            ));
        }
        Framing::Close => {
            return Verdict::Corrupt(format!(
                "close-delimited body of {} bytes: a short one would look complete",
                got.body.len()
            ));
        }
        _ => {}
    }
    if let Some(at) = mismatch(&got.body, want) {
        return Verdict::Corrupt(format!(
            "wrong byte at {} (from {start}; {} of {} bytes arrived, complete={})",
            start + at as u64,
            got.body.len(),
            want.len(),
            got.complete
        ));
    }
    if !got.complete {
        counters.failed_truncated.fetch_add(1, Ordering::Relaxed);
        return Verdict::Failed;
    }
    if got.body.len() != want.len() {
        return Verdict::Corrupt(format!(
            "complete body of {} bytes, want {}",
            got.body.len(),
            want.len()
        ));
    }
    match (kind, &spec.class) {
        (Kind::Range(_), _) => counters.ok_range.fetch_add(1, Ordering::Relaxed),
        (_, Class::Directory) => counters.ok_listing.fetch_add(1, Ordering::Relaxed),
        _ => counters.ok_get.fetch_add(1, Ordering::Relaxed),
    };
    Verdict::Ok
}

// ---------------------------------------------------------------------------------
// The cache directory

/// Temporary files (`.x.pc-part`, `.x.pc-lock`, anything hidden) below `root`.
pub fn leftovers(root: &Path) -> Vec<String> {
    list_files(root)
        .into_iter()
        .filter(|f| f.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect()
}

fn parts_exist(root: &Path) -> bool {
    list_files(root).iter().any(|f| f.ends_with(".pc-part"))
}

/// Every complete file must be one of ours, byte for byte, with the mirrors' mtime: a
/// fixed file's bytes, or a version of a file that changes in place (with `newest`,
/// the newest one for a file one process serves), never a directory's listing.
/// Returns the problems.
pub fn check_store(root: &Path, by_store: &HashMap<String, &Spec>, newest: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for f in list_files(root) {
        if f.rsplit('/').next().is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        let Some(spec) = by_store.get(&f) else {
            problems.push(format!("unexpected file {f}"));
            continue;
        };
        let bytes = std::fs::read(root.join(&f)).unwrap_or_default();
        let mtime = std::fs::metadata(root.join(&f))
            .and_then(|m| m.modified())
            .ok();
        let secs = mtime
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let (want, want_mtime) = match &spec.class {
            Class::Missing => {
                problems.push(format!("{f} stored, but the mirror does not have it"));
                continue;
            }
            Class::Directory => {
                problems.push(format!("{f}: a directory's listing stored under its name"));
                continue;
            }
            Class::Fixed => (spec.body.clone().unwrap(), MTIME),
            Class::Mutable(versions) => {
                let latest = versions.latest();
                let version = secs
                    .map(|s| package_cache::http::date::format(UNIX_EPOCH + Duration::from_secs(s)))
                    .and_then(|lm| versions.by_last_modified(&lm));
                match version {
                    Some(v) if newest && spec.only.is_some() && v.n != latest.n => {
                        problems.push(format!(
                            "{f}: version {} stored, the newest is {}",
                            v.n, latest.n
                        ));
                        (v.body, v.modified)
                    }
                    Some(v) => (v.body, v.modified),
                    None => {
                        problems.push(format!("{f}: mtime {mtime:?} names no published version"));
                        continue;
                    }
                }
            }
        };
        if bytes != *want {
            problems.push(format!(
                "{f}: {} bytes stored, want {} (first difference at {:?})",
                bytes.len(),
                want.len(),
                mismatch(&bytes, &want)
            ));
        }
        if secs != Some(want_mtime) {
            problems.push(format!("{f}: mtime {mtime:?}, want the mirror's"));
        }
    }
    problems
}

/// Watches the stored copies of `specs` (files that change in place) while `stop` is
/// unset, every 10 ms: the version stored must never go back while the file stays
/// there. Returns the regressions seen (path, from version, to version).
pub fn watch_store(
    root: &Path,
    specs: Vec<(String, Arc<Versions>)>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<String>> {
    let root = root.to_path_buf();
    thread::spawn(move || {
        let mut last: HashMap<String, usize> = HashMap::new();
        let mut regressions = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            for (stored, versions) in &specs {
                let Ok(mtime) = std::fs::metadata(root.join(stored)).and_then(|m| m.modified())
                else {
                    last.remove(stored);
                    continue;
                };
                let lm = package_cache::http::date::format(mtime);
                let Some(v) = versions.by_last_modified(&lm) else {
                    continue; // check_store reports it
                };
                let before = last.insert(stored.clone(), v.n);
                if let Some(before) = before.filter(|&b| v.n < b)
                    && regressions.len() < 20
                {
                    regressions.push(format!("{stored}: version {before}, then {}", v.n));
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
        regressions
    })
}

/// Waits until the mirrors have served everything and no download is running (no part
/// file) for a while.
pub fn quiesce(mirrors: &[&FakeMirror], root: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut calm_since: Option<Instant> = None;
    while Instant::now() < deadline {
        if mirrors.iter().all(|m| m.active() == 0) && !parts_exist(root) {
            let since = *calm_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(500) {
                return true;
            }
        } else {
            calm_since = None;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

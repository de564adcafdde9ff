//! The checker: every answer is right or visibly failed, never CORRUPT; the counters
//! of what came back; and the cache directory holds only complete, correct files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{MTIME, Spec};
use crate::support::client::{Answer, Framing};
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
    pub statuses: Mutex<BTreeMap<u16, u64>>,
    pub tags: Mutex<BTreeMap<String, u64>>,
    pub problems: Mutex<Vec<String>>,
}

impl Counters {
    pub fn note(&self, problem: String) {
        let mut p = self.problems.lock().unwrap();
        if p.len() < 40 {
            eprintln!("soak: {problem}");
            p.push(problem);
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

pub fn judge(spec: &Spec, kind: Kind, answer: &Answer, counters: &Counters) -> Verdict {
    let got = match answer {
        Answer::Nothing { timed_out } => {
            if *timed_out {
                counters.failed_timeout.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.failed_connection.fetch_add(1, Ordering::Relaxed);
            }
            return Verdict::Failed;
        }
        Answer::Garbage(line) => {
            return Verdict::Corrupt(format!("not a status line: {line:?}"));
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
        if got.status == 404 && spec.body.is_none() {
            counters.ok_not_found.fetch_add(1, Ordering::Relaxed);
            return Verdict::Ok;
        }
        return Verdict::Failed;
    }
    let Some(want) = spec.body.as_deref() else {
        return Verdict::Corrupt(format!(
            "{} for a file the mirror does not have",
            got.status
        ));
    };
    let total = want.len() as u64;
    let lm = package_cache::http::date::format(UNIX_EPOCH + Duration::from_secs(MTIME));
    if let Some(l) = got.header("last-modified")
        && l != lm
    {
        counters.bad_meta.fetch_add(1, Ordering::Relaxed);
        counters.note(format!("Last-Modified {l:?}, want {lm:?}"));
    }
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
    match kind {
        Kind::Range(_) => counters.ok_range.fetch_add(1, Ordering::Relaxed),
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

/// Every complete file must be one of ours, byte for byte. Returns the problems.
pub fn check_store(root: &Path, by_store: &HashMap<String, &Spec>) -> Vec<String> {
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
        match spec.body.as_ref().map(|b| b.as_slice()) {
            None => problems.push(format!("{f} stored, but the mirror does not have it")),
            Some(want) if bytes != want => problems.push(format!(
                "{f}: {} bytes stored, want {} (first difference at {:?})",
                bytes.len(),
                want.len(),
                mismatch(&bytes, want)
            )),
            Some(_) => {}
        }
        let mtime = std::fs::metadata(root.join(&f))
            .and_then(|m| m.modified())
            .ok();
        if mtime != Some(UNIX_EPOCH + Duration::from_secs(MTIME)) {
            problems.push(format!("{f}: mtime {mtime:?}, want the mirror's"));
        }
    }
    problems
}

/// Waits until the mirror has served everything and no download is running (no part
/// file) for a while.
pub fn quiesce(mirror: &FakeMirror, root: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut calm_since: Option<Instant> = None;
    while Instant::now() < deadline {
        if mirror.active() == 0 && !parts_exist(root) {
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

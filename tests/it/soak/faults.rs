//! Fault injection: which faults the first (faulty) mirror adds to an upstream request,
//! drawn from the seed, and how many of each it added. The second mirror is clean.
//!
//! Besides the faults any file can get, a file that changes in place is sometimes
//! answered with an older version than the newest (`lag`: an older Last-Modified and
//! the first mirror's own ETag for it), and a directory's name is answered with a `301`
//! to its `/` form (`redirect`; that one is no chance, the mirrors always do it, but
//! it is counted with the faults).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::{READ_TIMEOUT_SECS, Versions};
use crate::support::Fault;
use crate::support::mirror::FaultPicker;
use crate::support::rng::Rng;

const FAULT_KINDS: [&str; 10] = [
    "reset",
    "short",
    "stall-continue",
    "stall-abort",
    "header-stall",
    "5xx",
    "404",
    "slow",
    "no-length",
    "chunked",
];

/// The kinds that break a body the first mirror had started to send.
const BREAKS: [&str; 3] = ["reset", "short", "stall-abort"];

#[derive(Default)]
pub struct FaultCounters {
    by_kind: [AtomicU64; FAULT_KINDS.len()],
    head: AtomicU64,
    lag: AtomicU64,
    redirect: AtomicU64,
    /// Bodies this mirror was told to break (GET, path, when), for
    /// [`whole_from_second`].
    pub breaks: Mutex<Vec<(String, Instant)>>,
}

impl FaultCounters {
    pub fn total(&self) -> u64 {
        self.by_kind
            .iter()
            .chain([&self.head, &self.lag, &self.redirect])
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    }

    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = FAULT_KINDS
            .iter()
            .zip(&self.by_kind)
            .map(|(k, c)| format!("{k}={}", c.load(Ordering::Relaxed)))
            .collect();
        for (k, c) in [
            ("head", &self.head),
            ("lag", &self.lag),
            ("redirect", &self.redirect),
        ] {
            parts.push(format!("{k}={}", c.load(Ordering::Relaxed)));
        }
        parts.join(" ")
    }
}

/// How many times a file whose body broke on the first mirror then came whole from
/// the second: per path, each run of breaks on the first that a whole body from the
/// second follows counts once. `completions` are the second mirror's whole bodies.
pub fn whole_from_second(breaks: &[(String, Instant)], completions: &[(String, Instant)]) -> u64 {
    let mut events: Vec<(Instant, &str, bool)> = breaks
        .iter()
        .map(|(p, t)| (*t, p.as_str(), true))
        .chain(completions.iter().map(|(p, t)| (*t, p.as_str(), false)))
        .collect();
    events.sort_by_key(|e| e.0);
    let mut pending = HashSet::new();
    let mut recovered = 0;
    for (_, path, broke) in events {
        if broke {
            pending.insert(path);
        } else if pending.remove(path) {
            recovered += 1;
        }
    }
    recovered
}

/// What the first mirror knows besides the files' lengths.
pub struct Mix {
    pub lens: HashMap<String, usize>,
    /// The files that change in place, by path.
    pub mutable: HashMap<String, Arc<Versions>>,
    pub directories: HashSet<String>,
    /// Files that are always sent with a length (`no-length` becomes `chunked`).
    pub with_length: HashSet<String>,
    pub rate: f64,
    pub lag_rate: f64,
}

/// Random faults for the first mirror's answers while `on` is set.
pub fn picker(seed: u64, mix: Mix, on: Arc<AtomicBool>, counts: Arc<FaultCounters>) -> FaultPicker {
    let mut rng = Rng::new(seed);
    Box::new(move |method, path| {
        if !on.load(Ordering::SeqCst) || path == "/distfiles/layout.conf" {
            return Vec::new();
        }
        let mut faults = Vec::new();
        if let Some(versions) = mix.mutable.get(path)
            && rng.chance(mix.lag_rate)
        {
            let newest = versions.latest().n;
            if newest > 0 {
                let n = rng.range(newest.saturating_sub(4) as u64, newest as u64) as usize;
                counts.lag.fetch_add(1, Ordering::Relaxed);
                faults.push(Fault::ServeInstead(
                    versions.get(n).file('a', versions.seed),
                ));
            }
        }
        faults.extend(pick(&mut rng, &mix, &counts, method, path));
        if mix.directories.contains(path) && !faults.iter().any(|f| matches!(f, Fault::Status(_))) {
            counts.redirect.fetch_add(1, Ordering::Relaxed);
        }
        faults
    })
}

/// The faults any file can get.
fn pick(rng: &mut Rng, mix: &Mix, counts: &FaultCounters, method: &str, path: &str) -> Vec<Fault> {
    if method == "HEAD" {
        if !rng.chance(0.15) {
            return Vec::new();
        }
        counts.head.fetch_add(1, Ordering::Relaxed);
        return if rng.chance(0.5) {
            vec![Fault::Status(503)]
        } else {
            vec![Fault::StallHeaders(rng.millis(100, 3_000))]
        };
    }
    if !rng.chance(mix.rate) {
        return Vec::new();
    }
    let len = mix.lens.get(path).copied().unwrap_or(1000) as u64;
    let mut kind = rng.below(FAULT_KINDS.len() as u64) as usize;
    if FAULT_KINDS[kind] == "no-length" && mix.with_length.contains(path) {
        kind += 1;
    }
    counts.by_kind[kind].fetch_add(1, Ordering::Relaxed);
    // (A directory's name is answered with a 301, which has no body to break.)
    if BREAKS.contains(&FAULT_KINDS[kind]) && !mix.directories.contains(path) {
        counts
            .breaks
            .lock()
            .unwrap()
            .push((path.to_owned(), Instant::now()));
    }
    // Slow enough that clients join (and get headers) before the break.
    let paced = |rng: &mut Rng| Fault::Rate((len * 1000 / rng.range(200, 1000)).max(16 << 10));
    let at = rng.below(len) as usize;
    match FAULT_KINDS[kind] {
        "reset" => vec![Fault::ResetAfter(at), paced(rng)],
        "short" => vec![Fault::ShortBody(at), paced(rng)],
        "stall-continue" => vec![Fault::StallAfter(at, rng.millis(100, 1_200))],
        "stall-abort" => vec![Fault::StallAfter(
            at,
            rng.millis(
                READ_TIMEOUT_SECS * 1000 + 600,
                READ_TIMEOUT_SECS * 1000 + 1500,
            ),
        )],
        "header-stall" => vec![Fault::StallHeaders(rng.millis(100, 3_000))],
        "5xx" => vec![Fault::Status([500, 502, 503][rng.below(3) as usize])],
        "404" => vec![Fault::Status(404)],
        "slow" => vec![Fault::Rate(
            (len * 1000 / rng.range(500, 2_500)).max(32 << 10),
        )],
        "no-length" => vec![Fault::NoLength],
        _ => vec![Fault::Chunked],
    }
}

//! Soak: two real package-cache processes sharing one cache directory, in front of a
//! fake mirror that injects random faults, while clients hammer them, files vanish
//! from the cache behind their back and the processes are SIGKILLed and restarted.
//!
//! Every answer must be right (complete and byte-identical to the mirror's file, or a
//! 404 for a file the mirror does not have) or visibly failed (an error status, or a
//! connection that ends before `Content-Length` bytes or the last chunk). A
//! complete-looking wrong answer, or wrong bytes in a short one, is CORRUPT: one fails
//! the test. Then, with the chaos over: no temporary file is left once no download
//! runs; every file in the cache is the mirror's, byte for byte, with its mtime; eight
//! clients on two processes asking for a cold file cause one upstream GET; with faults
//! off every file comes through, with one upstream GET per file the cache lacked; and
//! then every request is a HIT that asks nobody.
//!
//! Quick by default (15 to 20 s: `cargo test --test it soak`); set `PC_SOAK_SECS` for a
//! long run, `PC_SOAK_SEED` to replay a seed's choices (a failure prints it; thread
//! timing still varies), and `PC_SOAK_SUMMARY=FILE` to keep the summary line:
//!
//! ```text
//! PC_SOAK_SECS=600 cargo test --release --test it soak -- --nocapture
//! ```
//!
//! Here: the settings, the files and the test itself. `runner` starts the mirror and
//! the two processes and runs the phases; `faults` draws the faults the mirror injects;
//! `checker` judges every answer and the cache directory. The raw client, the fake
//! mirror, the processes and the generator are the shared ones in `support`.
//!
//! Loopback only; every wait is bounded.

mod checker;
mod faults;
mod runner;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::rng::{Rng, fnv1a};
use crate::support::*;

/// The mirror's Last-Modified for every file (see [`FakeFile::new`]).
pub const MTIME: u64 = 1_600_000_000;
/// Seconds the servers wait for a silent source (`--read-timeout`).
pub const READ_TIMEOUT_SECS: u64 = 2;
/// How long the servers remember "no source has it": the injected 404s of the chaos
/// phase are forgotten this long after the faults stop.
pub const NEGATIVE_TTL_SECS: u64 = 1;

// ---------------------------------------------------------------------------------
// Settings

pub struct Settings {
    pub long: bool,
    /// Length of the chaos phase.
    pub chaos: Duration,
    /// Upper bound on chaos-phase requests.
    pub max_requests: u64,
    pub files: usize,
    pub missing: usize,
    pub clients: usize,
    pub max_size: usize,
    /// Mean time between deletions.
    pub delete_every: Duration,
    /// When to kill a server (offsets into the chaos phase; long mode draws them). In
    /// quick mode kill `i` of `n` also comes once `(i + 1) / (n + 1)` of the requests
    /// are done, so that a fast machine sees every kill too.
    pub kills: Vec<Duration>,
    /// Probability that an upstream GET gets a fault.
    pub fault_rate: f64,
}

impl Settings {
    pub fn from_env(rng: &mut Rng) -> Settings {
        match std::env::var("PC_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(secs) => {
                let chaos = Duration::from_secs(secs.max(5));
                let mut kills = Vec::new();
                let mut at = Duration::from_secs(5);
                loop {
                    at += Duration::from_millis(15_000 + rng.below(30_000));
                    if at + Duration::from_secs(3) >= chaos {
                        break;
                    }
                    kills.push(at);
                }
                Settings {
                    long: true,
                    chaos,
                    max_requests: 50_000_000,
                    files: 400,
                    missing: 12,
                    clients: 16,
                    max_size: 4 << 20,
                    delete_every: Duration::from_millis(150),
                    kills,
                    fault_rate: 0.3,
                }
            }
            None => Settings {
                long: false,
                chaos: Duration::from_secs(14),
                max_requests: 3000,
                files: 240,
                missing: 8,
                clients: 16,
                max_size: 3 << 20,
                delete_every: Duration::from_millis(120),
                kills: vec![
                    Duration::from_millis(3_000),
                    Duration::from_millis(6_500),
                    Duration::from_millis(10_000),
                ],
                fault_rate: 0.3,
            },
        }
    }
}

// ---------------------------------------------------------------------------------
// The files

pub struct Spec {
    /// What the mirror serves it as (and the flat request path).
    pub path: String,
    /// Where the cache keeps it, relative to the cache directory.
    pub stored: String,
    /// Request paths that name it (flat and hashed for distfiles).
    pub forms: Vec<String>,
    /// `None` for a file the mirror does not have.
    pub body: Option<Arc<Vec<u8>>>,
}

impl Spec {
    pub fn len(&self) -> usize {
        self.body.as_ref().map_or(0, |b| b.len())
    }
}

/// A size from a few KB to `max`, mostly small, derived from the name.
fn size_for(name: &str, max: usize) -> usize {
    let h = fnv1a(name.as_bytes()).rotate_left(17);
    let r = (h >> 8) as usize;
    match h % 100 {
        0..50 => 2_000 + r % 62_000,
        50..85 => 64_000 + r % 960_000,
        _ => (1 << 20) + r % (max - (1 << 20)),
    }
}

fn make_spec(path: String, len: Option<usize>) -> Spec {
    let stored = stored(&path);
    let mut forms = vec![path.clone()];
    let hashed = format!("/{stored}");
    if path.starts_with("/distfiles/") && hashed != path {
        forms.push(hashed);
    }
    let name = path.rsplit('/').next().unwrap().to_owned();
    Spec {
        body: len.map(|l| Arc::new(bytes(l, fnv1a(name.as_bytes())))),
        path,
        stored,
        forms,
    }
}

/// The chaos files, the missing ones, and the cold files kept for the coalescing phase.
pub fn make_files(s: &Settings) -> (Vec<Spec>, Vec<Spec>) {
    let mut files = Vec::new();
    for i in 0..s.files {
        let path = if i % 5 == 4 {
            format!("/releases/soak/stage3-{i:03}.tar.xz")
        } else {
            format!(
                "/distfiles/soak-{i:03}-{:x}.tar.gz",
                fnv1a(i.to_string().as_bytes()) >> 40
            )
        };
        let name = path.rsplit('/').next().unwrap().to_owned();
        let len = size_for(&name, s.max_size);
        files.push(make_spec(path, Some(len)));
    }
    for i in 0..s.missing {
        files.push(make_spec(format!("/distfiles/missing-{i:02}.tar.gz"), None));
    }
    let cold = (0..6)
        .map(|i| make_spec(format!("/distfiles/cold-{i}.tar.bz2"), Some(1_500_000)))
        .collect();
    (files, cold)
}

// ---------------------------------------------------------------------------------
// The test

#[test]
fn soak() {
    let seed = std::env::var("PC_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                ^ u64::from(std::process::id())
        });
    let outcome = std::panic::catch_unwind(|| runner::run(seed));
    if let Err(e) = outcome {
        eprintln!("soak FAILED with seed {seed}: rerun with PC_SOAK_SEED={seed}");
        std::panic::resume_unwind(e);
    }
}

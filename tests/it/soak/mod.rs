//! Soak: two real package-cache processes sharing one cache directory, in front of two
//! fake mirrors (a faulty one, asked first, and a clean one with the same files) while
//! clients hammer them, files vanish from the cache behind their back and the
//! processes are SIGKILLed and restarted.
//!
//! The first mirror injects random faults: resets, short bodies, stalls, error
//! statuses, missing files, slow and length-less bodies, and for the files that change
//! in place an older version than the one just published (it lags). Both mirrors
//! answer a directory's name with a `301` to its `/` form, a small HTML listing. The
//! test publishes new versions of the files that change in place while it runs.
//!
//! Every answer must be right or visibly failed (an error status, or a connection that
//! ends before `Content-Length` bytes or the last chunk); a complete-looking wrong
//! answer, or wrong bytes in a short one, is CORRUPT and fails the test. Right means:
//! byte-identical to the mirrors' file, or a 404 for a file they do not have; for a
//! directory, its listing (or the redirect); for a file that changes in place, one of
//! its published versions, the one its Last-Modified names. Such a file must also
//! never go back in time: an answer is never older than the newest version a client
//! already received whole from the same server process (see [`checker::Timeline`]
//! for what that means with two processes on one directory; the ways it once broke are
//! listed in [`back_in_time`]), and the copy stored for a file that only one process
//! serves never goes back. Then, with the chaos over: no temporary file is left once
//! no download runs; every file in the cache is the mirrors', byte for byte, with its
//! mtime, and no listing is stored under a directory's name; eight clients on two
//! processes asking for a cold file cause one upstream GET (from either mirror); once
//! the first mirror has caught up, every process serves the newest version of the
//! files that change in place, and passes every directory's listing on; with faults
//! off every file comes through, with one upstream GET (from either mirror) per file
//! the cache lacked; and then every request is a HIT that asks nobody.
//!
//! Quick by default (15 to 20 s: `cargo test --test it soak`); set `PC_SOAK_SECS` for a
//! long run, `PC_SOAK_SEED` to replay a seed's choices (a failure prints it; thread
//! timing still varies), and `PC_SOAK_SUMMARY=FILE` to keep the summary line:
//!
//! ```text
//! PC_SOAK_SECS=300 cargo test --release --test it soak -- --nocapture
//! ```
//!
//! Here: the settings, the files and the test itself. `runner` starts the mirrors and
//! the two processes and runs the phases; `faults` draws the faults the first mirror
//! injects; `checker` judges every answer and the cache directory. The raw client, the
//! fake mirror, the processes and the generator are the shared ones in `support`.
//!
//! Loopback only; every wait is bounded.

mod back_in_time;
mod checker;
mod faults;
mod runner;

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use package_cache::http::date;

use crate::support::mirror::listing;
use crate::support::rng::{Rng, fnv1a};
use crate::support::*;

/// The mirrors' Last-Modified for every file that never changes (see
/// [`FakeFile::new`]).
pub const MTIME: u64 = 1_600_000_000;
/// Seconds a copy of a file that changes in place is served before the sources are
/// asked again (`--mutable-ttl`).
pub const MUTABLE_TTL_SECS: u64 = 1;
/// The Last-Modified of version 0 of a file that changes in place; version `n` is `n`
/// minutes later.
pub const VERSION_BASE: u64 = 1_700_000_000;

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
    /// Mean time between two new versions (of any file that changes in place).
    pub publish_every: Duration,
    /// Probability that the first mirror answers for a file that changes in place with
    /// an older version than the newest.
    pub lag_rate: f64,
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
                    publish_every: Duration::from_millis(400),
                    lag_rate: 0.4,
                }
            }
            None => Settings {
                long: false,
                chaos: Duration::from_secs(14),
                max_requests: 3600,
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
                publish_every: Duration::from_millis(400),
                lag_rate: 0.4,
            },
        }
    }
}

// ---------------------------------------------------------------------------------
// The files

/// What the mirrors hold under a path.
pub enum Class {
    /// A file that never changes: [`Spec::body`].
    Fixed,
    /// Nothing: they answer 404.
    Missing,
    /// A file that changes in place: the versions published so far.
    Mutable(Arc<Versions>),
    /// A directory: a `301` to its `/` form, whose listing is [`Spec::body`]. Never
    /// stored under its name.
    Directory,
}

pub struct Spec {
    /// What the mirrors serve it as (and the flat request path).
    pub path: String,
    /// Where the cache keeps it, relative to the cache directory.
    pub stored: String,
    /// Request paths that name it (flat and hashed for distfiles).
    pub forms: Vec<String>,
    /// The bytes of a fixed file, or a directory's listing.
    pub body: Option<Arc<Vec<u8>>>,
    pub class: Class,
    /// For a file that changes in place: the one server slot asked for it, if only
    /// one is. Such a file is also never deleted by the chaos and always sent with a
    /// length, so that only that process's own downloads write it: its stored copy
    /// must never go back in time, and be the newest once the mirrors agree.
    pub only: Option<usize>,
}

impl Spec {
    /// Its length; for a file that changes in place, the shortest any version has
    /// (a range from below it is always satisfiable).
    pub fn len(&self) -> usize {
        match &self.class {
            Class::Mutable(v) => v.min_len,
            _ => self.body.as_ref().map_or(0, |b| b.len()),
        }
    }

    pub fn versions(&self) -> Option<&Arc<Versions>> {
        match &self.class {
            Class::Mutable(v) => Some(v),
            _ => None,
        }
    }
}

/// One published version of a file that changes in place.
#[derive(Clone)]
pub struct Version {
    pub n: usize,
    pub body: Arc<Vec<u8>>,
    /// Its Last-Modified, in seconds since the epoch.
    pub modified: u64,
}

impl Version {
    /// As mirror `mirror` (`'a'`, `'b'`) serves it: with its own ETag.
    pub fn file(&self, mirror: char, seed: u64) -> FakeFile {
        FakeFile {
            etag: Some(format!("\"{mirror}-{:x}-{}\"", seed & 0xffff_ffff, self.n)),
            ..FakeFile::new(self.body.as_slice()).modified_at(self.modified)
        }
    }
}

/// The versions of a file that changes in place, oldest first: version `n` has
/// Last-Modified [`VERSION_BASE`] + `n` minutes and a length in `min_len..max_len`.
pub struct Versions {
    pub seed: u64,
    pub min_len: usize,
    max_len: usize,
    list: RwLock<Vec<Version>>,
}

impl Versions {
    fn new(name: &str, min_len: usize, max_len: usize) -> Versions {
        let v = Versions {
            seed: fnv1a(name.as_bytes()),
            min_len,
            max_len,
            list: RwLock::new(Vec::new()),
        };
        v.publish();
        v
    }

    fn make(&self, n: usize) -> Version {
        let seed = self.seed ^ (n as u64).wrapping_mul(0x9e37_79b9);
        let len = self.min_len + (seed >> 7) as usize % (self.max_len - self.min_len);
        Version {
            n,
            body: Arc::new(bytes(len, seed)),
            modified: VERSION_BASE + 60 * n as u64,
        }
    }

    /// Adds the next version; the caller then puts it on the mirrors (so that no
    /// answer can carry a version the checker does not know).
    pub fn publish(&self) -> Version {
        let mut list = self.list.write().unwrap();
        let v = self.make(list.len());
        list.push(v.clone());
        v
    }

    pub fn latest(&self) -> Version {
        self.list.read().unwrap().last().unwrap().clone()
    }

    pub fn get(&self, n: usize) -> Version {
        self.list.read().unwrap()[n].clone()
    }

    /// The version a `Last-Modified` header names, if one was published.
    pub fn by_last_modified(&self, header: &str) -> Option<Version> {
        let secs = date::unix_seconds(date::parse(header)?);
        let n = secs.checked_sub(VERSION_BASE)?;
        if n % 60 != 0 {
            return None;
        }
        self.list.read().unwrap().get((n / 60) as usize).cloned()
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

fn make_spec(path: String, class: Class, body: Option<Vec<u8>>) -> Spec {
    let stored = stored(&path);
    let mut forms = vec![path.clone()];
    let hashed = format!("/{stored}");
    if path.starts_with("/distfiles/") && hashed != path {
        forms.push(hashed);
    }
    Spec {
        body: body.map(Arc::new),
        path,
        stored,
        forms,
        class,
        only: None,
    }
}

fn fixed(path: String, len: usize) -> Spec {
    let name = path.rsplit('/').next().unwrap().to_owned();
    let body = bytes(len, fnv1a(name.as_bytes()));
    make_spec(path, Class::Fixed, Some(body))
}

/// A directory the mirrors only ever redirect (nothing below it is asked for).
pub const LONE_DIRECTORY: &str = "/releases/amd64/autobuilds/current-stage3-amd64-openrc";
/// A directory the mirrors redirect, with files below it that clients ask for.
pub const DIRECTORY: &str = "/releases/soak/autobuilds/current-stage3-soak";

/// Files that change in place (the Gentoo kinds: binhost indexes and `*-latest.*`
/// snapshots), with the range of their versions' lengths and the one server slot
/// that is asked for them, if only one is ([`Spec::only`]). The others are asked of
/// both processes, deleted behind their backs and sometimes sent without a length.
const MUTABLE: [(&str, usize, usize, Option<usize>); 6] = [
    ("/binpkgs/amd64/Packages", 4_000, 40_000, None),
    ("/snapshots/gentoo-latest.tar.xz", 100_000, 300_000, None),
    ("/binpkgs/arm64/Packages", 4_000, 40_000, Some(0)),
    ("/snapshots/gentoo-latest.tar.xz.md5sum", 60, 90, Some(0)),
    ("/binpkgs/riscv/Packages", 4_000, 40_000, Some(1)),
    (
        "/snapshots/portage-latest.tar.bz2",
        50_000,
        150_000,
        Some(1),
    ),
];

/// The chaos files (fixed, missing, changing in place, directories), and the cold
/// files kept for the coalescing phase.
pub fn make_files(s: &Settings) -> (Vec<Spec>, Vec<Spec>) {
    let mut files = Vec::new();
    for i in 0..s.files {
        let path = if i % 20 == 9 {
            format!("{DIRECTORY}/stage3-soak-{i:03}.tar.xz")
        } else if i % 5 == 4 {
            format!("/releases/soak/stage3-{i:03}.tar.xz")
        } else {
            format!(
                "/distfiles/soak-{i:03}-{:x}.tar.gz",
                fnv1a(i.to_string().as_bytes()) >> 40
            )
        };
        let name = path.rsplit('/').next().unwrap().to_owned();
        let len = size_for(&name, s.max_size);
        files.push(fixed(path, len));
    }
    for i in 0..s.missing {
        let path = format!("/distfiles/missing-{i:02}.tar.gz");
        files.push(make_spec(path, Class::Missing, None));
    }
    for (path, min, max, only) in MUTABLE {
        let versions = Arc::new(Versions::new(path, min, max));
        let mut spec = make_spec(path.into(), Class::Mutable(versions), None);
        spec.only = only;
        files.push(spec);
    }
    for dir in [LONE_DIRECTORY, DIRECTORY] {
        files.push(make_spec(dir.into(), Class::Directory, Some(listing(dir))));
    }
    let cold = (0..6)
        .map(|i| fixed(format!("/distfiles/cold-{i}.tar.bz2"), 1_500_000))
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

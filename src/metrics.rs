//! What the cache has done since it started: counters fed by the server's
//! [`Observer`] hook, plus snapshots of the store, the sources and the downloads in
//! progress, rendered for Prometheus (`GET /-/metrics`) and the status page.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use crate::cache::flight::FlightInfo;
use crate::cache::index::IndexStats;
use crate::cache::upstream::{Source, SourceHealth};
use crate::cache::{Cache, CacheStatus};
use crate::gentoo::repo::{IndexStats as RepoStats, RepoIndex};
use crate::http::{Finished, Observer, ServerStats};

/// How many [`Outcome`]s there are.
const OUTCOMES: usize = CacheStatus::ALL.len() + 2;

/// How a request was answered: the cache's [`CacheStatus`] (from the response's
/// extension), an error status, or neither (our own pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A file, served as the cache says.
    Served(CacheStatus),
    /// Answered with a 4xx or 5xx status.
    Error,
    /// Anything else (the status page, metrics scrapes).
    Other,
}

impl Outcome {
    /// Every outcome, in the order metrics list them: each [`CacheStatus::ALL`] in
    /// its order, then `Error` and `Other`.
    pub const ALL: [Outcome; OUTCOMES] = {
        let mut all = [Outcome::Other; OUTCOMES];
        let mut i = 0;
        while i < CacheStatus::ALL.len() {
            all[i] = Outcome::Served(CacheStatus::ALL[i]);
            i += 1;
        }
        all[i] = Outcome::Error;
        all
    };

    /// The label value: the cache status's label (`hit`, `miss`, …), `error`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Served(s) => s.label(),
            Outcome::Error => "error",
            Outcome::Other => "other",
        }
    }

    /// Classifies a finished request by its status and the cache's status, if any.
    pub fn of(status: u16, cache: Option<CacheStatus>) -> Outcome {
        match cache {
            _ if status >= 400 => Outcome::Error,
            Some(s) => Outcome::Served(s),
            None => Outcome::Other,
        }
    }

    /// Whether the bytes came from our disk rather than a transfer in progress.
    pub fn from_disk(self) -> bool {
        matches!(self, Outcome::Served(s) if s.from_disk())
    }

    /// The position in [`Outcome::ALL`].
    fn index(self) -> usize {
        Outcome::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// Request counters.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    started_at: SystemTime,
    requests: [AtomicU64; OUTCOMES],
    bytes: [AtomicU64; OUTCOMES],
    server: OnceLock<Arc<ServerStats>>,
    repo: OnceLock<Arc<RepoIndex>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            started: Instant::now(),
            started_at: SystemTime::now(),
            requests: Default::default(),
            bytes: Default::default(),
            server: OnceLock::new(),
            repo: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Counts one finished request.
    pub fn record(&self, status: u16, cache: Option<CacheStatus>, bytes: u64) {
        let i = Outcome::of(status, cache).index();
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        self.bytes[i].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Requests answered with `outcome`.
    pub fn requests(&self, outcome: Outcome) -> u64 {
        self.requests[outcome.index()].load(Ordering::Relaxed)
    }

    /// Body bytes sent for requests answered with `outcome`.
    pub fn bytes(&self, outcome: Outcome) -> u64 {
        self.bytes[outcome.index()].load(Ordering::Relaxed)
    }

    /// Lets the metrics show the server's requests in progress.
    pub fn attach_server(&self, stats: Arc<ServerStats>) {
        let _ = self.server.set(stats);
    }

    /// Lets the metrics show the state of the `--repo` index.
    pub fn attach_repo(&self, index: Arc<RepoIndex>) {
        let _ = self.repo.set(index);
    }

    /// When the counters started.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Seconds since the counters started.
    pub fn uptime(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Requests being answered right now, if the server is attached.
    pub fn active(&self) -> Option<u64> {
        self.server
            .get()
            .map(|s| s.active.load(Ordering::Relaxed) as u64)
    }
}

impl Observer for Metrics {
    fn finished(&self, done: &Finished<'_>) {
        let cache = done.extensions.get::<CacheStatus>().copied();
        self.record(done.status, cache, done.bytes);
    }
}

/// One source's health and counters.
#[derive(Clone, Debug)]
pub struct SourceStats {
    /// URL, last error, latency, whether it is cooling down.
    pub health: SourceHealth,
    /// Requests sent to it.
    pub requests: u64,
    /// Requests that failed (not 404s).
    pub failures: u64,
    /// Body bytes received from it.
    pub bytes: u64,
    /// Downloads from it whose digests matched what the file must be.
    pub verified: u64,
    /// Copies from it that did not (a wrong length announced, or wrong content).
    pub mismatches: u64,
}

impl SourceStats {
    /// The counters of `s` now.
    pub fn of(s: &Source) -> SourceStats {
        SourceStats {
            health: s.health(),
            requests: s.requests.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            verified: s.verified.load(Ordering::Relaxed),
            mismatches: s.mismatches.load(Ordering::Relaxed),
        }
    }
}

/// Checks against what files must be (Manifests, binhost indexes) and the files'
/// own URLs (`SRC_URI`).
#[derive(Clone, Debug, Default)]
pub struct Verification {
    /// The `--repo` index, when there is one.
    pub repo: Option<RepoStats>,
    /// The hosts of `SRC_URI` URLs asked (ad-hoc origins), with their counters.
    pub origins: Vec<SourceStats>,
    /// Downloads an origin provided because no source had the file.
    pub src_uri_fetches: u64,
    /// Stored files read in full to check them.
    pub stored_reads: u64,
    /// Stored files that failed their check (not served, fetched again).
    pub stored_failures: u64,
}

/// Everything the metrics endpoint and status page show, taken at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Requests and bytes by outcome.
    pub outcomes: Vec<(Outcome, u64, u64)>,
    /// Seconds since start.
    pub uptime: f64,
    /// When the process started.
    pub started_at: SystemTime,
    /// Requests in progress.
    pub active: Option<u64>,
    /// The store's totals.
    pub cache: IndexStats,
    /// Each source's health and counters.
    pub sources: Vec<SourceStats>,
    /// Downloads in progress.
    pub downloads: Vec<FlightInfo>,
    /// Downloads stored since start.
    pub stored: u64,
    /// Downloads that failed since start.
    pub failed: u64,
    /// Checks against Manifests and binhost indexes, and `SRC_URI` fetches.
    pub verification: Verification,
}

impl Snapshot {
    /// Takes a snapshot.
    pub fn take(metrics: &Metrics, cache: &Cache) -> Snapshot {
        let outcomes = Outcome::ALL
            .iter()
            .map(|&o| (o, metrics.requests(o), metrics.bytes(o)))
            .collect();
        let sources = cache
            .upstream()
            .sources()
            .iter()
            .map(|s| SourceStats::of(s))
            .collect();
        let mut downloads = cache.downloads();
        downloads.sort_by_key(|d| std::cmp::Reverse(d.elapsed));
        let stats = cache.stats();
        Snapshot {
            outcomes,
            uptime: metrics.uptime(),
            started_at: metrics.started_at(),
            active: metrics.active(),
            cache: cache.index().stats(),
            sources,
            downloads,
            stored: stats.stored.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
            verification: Verification::take(metrics, cache),
        }
    }

    fn count(&self, which: impl Fn(Outcome) -> bool) -> (u64, u64) {
        self.outcomes
            .iter()
            .filter(|(o, ..)| which(*o))
            .fold((0, 0), |(r, b), (_, n, bytes)| (r + n, b + bytes))
    }

    /// Requests that did not need a download of their own (hits, coalesced,
    /// revalidated, stale) over all requests for files.
    pub fn hit_ratio(&self) -> Option<f64> {
        let miss = Outcome::Served(CacheStatus::Miss);
        let (served, _) = self.count(|o| matches!(o, Outcome::Served(_)) && o != miss);
        let (misses, _) = self.count(|o| o == miss);
        let all = served + misses;
        (all > 0).then(|| served as f64 / all as f64)
    }

    /// Bytes sent to clients for files (every outcome but errors and our own pages).
    pub fn bytes_sent(&self) -> u64 {
        self.count(|o| !matches!(o, Outcome::Error | Outcome::Other))
            .1
    }

    /// Bytes sent from complete files on disk.
    pub fn bytes_from_disk(&self) -> u64 {
        self.count(Outcome::from_disk).1
    }

    /// Bytes received from the sources.
    pub fn bytes_upstream(&self) -> u64 {
        self.sources.iter().map(|s| s.bytes).sum()
    }

    /// Bytes clients got without a transfer of their own: served from disk, or shared
    /// with a download another client started.
    pub fn bytes_saved(&self) -> u64 {
        self.count(|o| o.from_disk() || o == Outcome::Served(CacheStatus::Coalesced))
            .1
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut m = Prom::default();
        self.prometheus_requests(&mut m);
        self.prometheus_sources(&mut m);
        self.prometheus_store(&mut m);
        self.prometheus_verification(&mut m);
        m.single(
            "uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            self.uptime.floor(),
        );
        m.family("build_info", "gauge", "The running version.");
        m.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        m.out
    }

    /// Requests and bytes sent, by outcome and by where the bytes came from.
    fn prometheus_requests(&self, m: &mut Prom) {
        m.family(
            "requests_total",
            "counter",
            "Requests answered, by result (hit, miss, coalesced, revalidated, stale, error, other).",
        );
        for (o, n, _) in &self.outcomes {
            m.sample(&[("result", o.name())], *n as f64);
        }
        m.family(
            "sent_bytes_total",
            "counter",
            "Body bytes sent to clients, by result.",
        );
        for (o, _, bytes) in &self.outcomes {
            m.sample(&[("result", o.name())], *bytes as f64);
        }
        m.family(
            "served_bytes_total",
            "counter",
            "Body bytes sent to clients for files, by where they came from (cache: a complete file on disk; upstream: a download in progress).",
        );
        let disk = self.bytes_from_disk();
        m.sample(&[("from", "cache")], disk as f64);
        m.sample(
            &[("from", "upstream")],
            self.bytes_sent().saturating_sub(disk) as f64,
        );
        if let Some(active) = self.active {
            m.single(
                "requests_in_progress",
                "gauge",
                "Requests being answered now.",
                active as f64,
            );
        }
    }

    /// Each source's requests, failures, bytes, health and latency.
    fn prometheus_sources(&self, m: &mut Prom) {
        let sources: [(&'static str, &str, &str, SourceValue); 5] = [
            (
                "upstream_requests_total",
                "counter",
                "Requests sent to each source.",
                |s| Some(s.requests as f64),
            ),
            (
                "upstream_failures_total",
                "counter",
                "Requests to each source that failed (errors, timeouts, 5xx; not 404).",
                |s| Some(s.failures as f64),
            ),
            (
                "upstream_bytes_total",
                "counter",
                "Body bytes received from each source.",
                |s| Some(s.bytes as f64),
            ),
            (
                "upstream_up",
                "gauge",
                "1 if the source is tried in order, 0 while it cools down after failing to connect.",
                |s| Some(f64::from(!s.health.down)),
            ),
            (
                "upstream_latency_seconds",
                "gauge",
                "Time to response headers of the last successful request to each source.",
                |s| s.health.last_latency.map(|l| l.as_secs_f64()),
            ),
        ];
        for (name, kind, help, value) in sources {
            m.family(name, kind, help);
            for s in &self.sources {
                if let Some(v) = value(s) {
                    m.sample(&source_labels(s), v);
                }
            }
        }
    }

    /// Downloads, the store's totals, the cap and evictions.
    fn prometheus_store(&self, m: &mut Prom) {
        m.single(
            "downloads_in_flight",
            "gauge",
            "Downloads in progress in this process.",
            self.downloads.len() as f64,
        );
        m.family(
            "downloads_total",
            "counter",
            "Downloads finished, by outcome.",
        );
        m.sample(&[("outcome", "stored")], self.stored as f64);
        m.sample(&[("outcome", "failed")], self.failed as f64);
        let c = &self.cache;
        m.single(
            "cache_bytes",
            "gauge",
            "Bytes in complete files in the cache.",
            c.bytes as f64,
        );
        m.single(
            "cache_files",
            "gauge",
            "Complete files in the cache.",
            c.files as f64,
        );
        if let Some(cap) = c.cap {
            m.single(
                "cache_max_bytes",
                "gauge",
                "The --max-size cap.",
                cap as f64,
            );
        }
        m.single(
            "cache_index_ready",
            "gauge",
            "1 once the start-up scan of the cache directory has finished.",
            f64::from(c.ready),
        );
        m.single(
            "evictions_total",
            "counter",
            "Files evicted to keep the cache under --max-size.",
            c.evictions as f64,
        );
        m.single(
            "evicted_bytes_total",
            "counter",
            "Bytes evicted to keep the cache under --max-size.",
            c.evicted_bytes as f64,
        );
    }
}

/// A source's labels: `source` (its URL), and `prefix` (the path prefix it serves)
/// for a `--source /PREFIX=URL`; a plain source has no `prefix` label.
fn source_labels(s: &SourceStats) -> Vec<(&'static str, &str)> {
    let mut labels = vec![("source", s.health.url.as_str())];
    if let Some(p) = &s.health.prefix {
        labels.push(("prefix", p));
    }
    labels
}

impl Verification {
    fn take(metrics: &Metrics, cache: &Cache) -> Verification {
        let upstream = cache.upstream();
        let mut origins: Vec<SourceStats> = upstream
            .origins()
            .iter()
            .map(|s| SourceStats::of(s))
            .collect();
        origins.sort_by_key(|o| std::cmp::Reverse(o.requests));
        let checks = cache.checks();
        Verification {
            repo: metrics.repo.get().map(|r| r.stats()),
            origins,
            src_uri_fetches: upstream.fallback_fetches(),
            stored_reads: checks.read.load(Ordering::Relaxed),
            stored_failures: checks.failed.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// Verified downloads and mismatches per source and origin, `SRC_URI` fetches,
    /// checks of stored files, and the repository index.
    fn prometheus_verification(&self, m: &mut Prom) {
        let v = &self.verification;
        let per: [(&'static str, &str, SourceValue); 2] = [
            (
                "verified_total",
                "Downloads whose size and digests matched what the file must be (Manifest, binhost Packages).",
                |s| Some(s.verified as f64),
            ),
            (
                "mismatches_total",
                "Copies that did not: a wrong Content-Length (skipped) or wrong content (not stored).",
                |s| Some(s.mismatches as f64),
            ),
        ];
        for (name, help, value) in per {
            m.family(name, "counter", help);
            for s in &self.sources {
                if let Some(x) = value(s) {
                    m.sample(&source_labels(s), x);
                }
            }
            for s in &v.origins {
                if let Some(x) = value(s) {
                    m.sample(&[("origin", &s.health.url)], x);
                }
            }
        }
        let origins: [(&'static str, &str, SourceValue); 3] = [
            (
                "origin_requests_total",
                "Requests sent to each SRC_URI host (when no source had a file).",
                |s| Some(s.requests as f64),
            ),
            (
                "origin_failures_total",
                "Requests to each SRC_URI host that failed (errors, timeouts, 5xx; not 404).",
                |s| Some(s.failures as f64),
            ),
            (
                "origin_bytes_total",
                "Body bytes received from each SRC_URI host.",
                |s| Some(s.bytes as f64),
            ),
        ];
        for (name, help, value) in origins {
            m.family(name, "counter", help);
            for s in &v.origins {
                if let Some(x) = value(s) {
                    m.sample(&[("origin", &s.health.url)], x);
                }
            }
        }
        self.prometheus_checks(m);
    }

    /// `SRC_URI` fetches, checks of stored files, and the repository index.
    fn prometheus_checks(&self, m: &mut Prom) {
        let v = &self.verification;
        m.single(
            "src_uri_fetches_total",
            "counter",
            "Downloads from a distfile's SRC_URI because no source had it.",
            v.src_uri_fetches as f64,
        );
        m.single(
            "stored_checks_read_total",
            "counter",
            "Stored files read in full to check them against their Manifest or binhost entry.",
            v.stored_reads as f64,
        );
        m.single(
            "stored_checks_failed_total",
            "counter",
            "Stored files that failed that check (not served; fetched again).",
            v.stored_failures as f64,
        );
        if let Some(r) = &v.repo {
            m.single(
                "repo_index_ready",
                "gauge",
                "1 once the --repo repositories have been read.",
                f64::from(r.ready),
            );
            m.single(
                "repo_index_generation",
                "gauge",
                "Changes to the --repo repositories picked up since start.",
                r.generation as f64,
            );
            m.single(
                "repo_index_distfiles",
                "gauge",
                "Distfiles the --repo repositories know.",
                r.names as f64,
            );
        }
    }
}

/// A per-source value, or `None` to leave the sample out.
type SourceValue = fn(&SourceStats) -> Option<f64>;

/// A Prometheus text buffer; samples belong to the family last started.
#[derive(Default)]
struct Prom {
    out: String,
    name: &'static str,
}

impl Prom {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.name = name;
        let _ = writeln!(self.out, "# HELP package_cache_{name} {help}");
        let _ = writeln!(self.out, "# TYPE package_cache_{name} {kind}");
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "package_cache_{}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &'static str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(&[], value);
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_cache_status_and_http_status() {
        use CacheStatus::*;
        assert_eq!(Outcome::of(200, Some(Hit)), Outcome::Served(Hit));
        assert_eq!(
            Outcome::of(206, Some(Coalesced)),
            Outcome::Served(Coalesced)
        );
        assert_eq!(
            Outcome::of(304, Some(Revalidated)),
            Outcome::Served(Revalidated)
        );
        assert_eq!(Outcome::of(404, Some(Miss)), Outcome::Error);
        assert_eq!(Outcome::of(200, None), Outcome::Other);
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "hit",
                "miss",
                "coalesced",
                "revalidated",
                "stale",
                "error",
                "other"
            ]
        );
        assert!(Outcome::Served(Stale).from_disk() && !Outcome::Served(Miss).from_disk());
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut p = Prom::default();
        p.family("x_total", "counter", "X.");
        p.sample(&[("source", "http://a")], 3.0);
        p.single("y", "gauge", "Y.", 0.5);
        let samples: String = p
            .out
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            samples,
            "package_cache_x_total{source=\"http://a\"} 3\npackage_cache_y 0.5\n"
        );
        assert!(p.out.starts_with(
            "# HELP package_cache_x_total X.\n# TYPE package_cache_x_total counter\n"
        ));
    }
}

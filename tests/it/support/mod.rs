//! Test support: a fake upstream mirror with fault injection, a package-cache started
//! in-process on port 0, a raw HTTP client that reports exactly what arrived, and
//! temporary directories; the real binary as a process, a Squid-like proxy, real
//! servers (nginx, HAProxy) in their own process group, and the rule for a missing
//! tool (skip, or fail in CI). Loopback only; every wait is bounded.
//!
//! One test binary uses all of it, so the compiler reports a helper nobody calls.

pub mod client;
pub mod daemon;
pub mod gentoo;
pub mod mirror;
pub mod process;
pub mod proxy;
pub mod rng;
pub mod tls;
pub mod tools;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use package_cache::cache::Cache;
use package_cache::config::Config;
use package_cache::http::RunningServer;

pub use client::{Conn, Reply, get, get_with, head, request, timed_get};
pub use mirror::{FakeFile, FakeMirror, Fault};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pc-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Test-friendly settings: 127.0.0.1 port 0, 32 threads, short timeouts.
pub fn config(cache: &Path, sources: &[String]) -> Config {
    Config {
        sources: sources.to_vec(),
        host: "127.0.0.1".into(),
        port: 0,
        cache: cache.to_path_buf(),
        threads: 32,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        send_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A package-cache running in this process on 127.0.0.1, on a temporary cache
/// directory (or one the test gives it); stopped on drop.
pub struct TestCache {
    pub server: Option<RunningServer>,
    pub cache: Arc<Cache>,
    pub addr: std::net::SocketAddr,
    root: PathBuf,
    /// The cache directory, when it is this cache's own (removed after the stop).
    _dir: Option<TempDir>,
}

impl TestCache {
    /// Starts with `sources` and otherwise test-friendly settings.
    pub fn start(sources: &[String]) -> TestCache {
        TestCache::start_with(sources, |_| {})
    }

    /// Starts with `sources`, letting `tweak` adjust the configuration.
    pub fn start_with(sources: &[String], tweak: impl FnOnce(&mut Config)) -> TestCache {
        let dir = TempDir::new("cache");
        TestCache::start_in(dir, sources, tweak)
    }

    /// Starts on an existing cache directory, which it removes once stopped.
    pub fn start_in(
        dir: TempDir,
        sources: &[String],
        tweak: impl FnOnce(&mut Config),
    ) -> TestCache {
        let mut cache = TestCache::start_at(dir.path(), sources, tweak);
        cache._dir = Some(dir);
        cache
    }

    /// Starts on the cache directory `root`, which the test owns and keeps (a mount
    /// point, another instance's directory).
    pub fn start_at(root: &Path, sources: &[String], tweak: impl FnOnce(&mut Config)) -> TestCache {
        let mut config = config(root, sources);
        tweak(&mut config);
        let (server, cache) = package_cache::app::start(&config).expect("start package-cache");
        let addr = server.local_addr();
        TestCache {
            server: Some(server),
            cache,
            addr,
            root: root.to_path_buf(),
            _dir: None,
        }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The URL of `path` through this cache.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The cached file for request `path` (`/distfiles/x` → `CACHE/distfiles/<hash>/x`).
    pub fn cached(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(stored(path))).ok()
    }

    /// Every file below the cache directory, relative, sorted.
    pub fn files(&self) -> Vec<String> {
        list_files(&self.root)
    }

    /// Waits (up to 10 s) for every download thread to end.
    pub fn settle(&self) {
        wait_until(Duration::from_secs(10), || {
            self.cache.downloads_in_progress() == 0
        });
    }

    pub fn get(&self, path: &str) -> Reply {
        get(self.addr, path)
    }
}

impl Drop for TestCache {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.stop();
        }
        self.cache.index().stop();
    }
}

/// Where the cache stores request `path`, relative to the cache root: distfiles in
/// Gentoo's layout, anything else as requested.
pub fn stored(path: &str) -> String {
    use package_cache::gentoo::distfiles::{Request, classify, store_path};
    let p = match classify(path) {
        Request::Distfile { name, .. } => store_path(name),
        _ => path.to_owned(),
    };
    p.trim_start_matches('/').to_owned()
}

/// Every file below `root`, relative, sorted.
pub fn list_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Deterministic pseudo-random bytes (so failures are reproducible).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

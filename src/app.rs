//! Putting it together: a [`Config`] becomes a running server.

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use log::{debug, error, info, warn};

use crate::cache::fetch::FetchConfig;
use crate::cache::policy::Policy;
use crate::cache::proxy::ProxyRules;
use crate::cache::store::{Key, Store};
use crate::cache::tls::TrustStore;
use crate::cache::upstream::{Upstream, UpstreamConfig};
use crate::cache::{Cache, Error};
use crate::config::{Config, DEFAULT_SOURCE};
use crate::gentoo::distfiles;
use crate::gentoo::known::GentooKnowledge;
use crate::gentoo::repo::{RepoIndex, RepoOptions};
use crate::http::access::Allow;
use crate::http::{Router, RunningServer, Server, ServerConfig, socket};
use crate::metrics::Metrics;
use crate::mirror::Mirror;
use crate::proto::via;
use crate::status::Ops;
use crate::{logging, signals};

/// The `User-Agent` sent to sources.
pub const USER_AGENT: &str = concat!("package-cache/", env!("CARGO_PKG_VERSION"));

/// The handler tree and the pieces an embedding program may want to reach.
pub struct App {
    /// `/-/` → metrics and status, `/` → the mirror (behind `--allow`).
    pub router: Router,
    /// The cache behind the mirror: store, index, sources, downloads, freshness.
    pub cache: Arc<Cache>,
    /// The request counters; install as the server's observer.
    pub metrics: Arc<Metrics>,
}

/// Builds the handlers for `config`: opens the cache directory and the sources.
/// Errors name the flag and value at fault.
pub fn build(config: &Config) -> Result<App, String> {
    let cache = Arc::new(open_cache(config)?);
    let repo = open_repos(config, &cache)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(index) = &repo {
        metrics.attach_repo(index.clone());
    }
    let knowledge = GentooKnowledge::new(repo.clone(), cache.store().clone())
        .with_digests(config.checksum_filter.clone());
    let knowledge = Arc::new(knowledge);
    let routes = Router::new()
        .mount("/-", Ops::new(metrics.clone(), cache.clone()))
        .mount("/", Mirror::new(cache.clone()).with_knowledge(knowledge));
    let router = Router::new().mount("/", Allow::new(config.allow.clone(), routes));
    Ok(App {
        router,
        cache,
        metrics,
    })
}

/// Starts indexing the `--repo` repositories in the background (requests are served
/// meanwhile), if any. Whenever the index learns or changes a distfile, the cache
/// forgets that no source had it.
pub fn open_repos(config: &Config, cache: &Arc<Cache>) -> Result<Option<Arc<RepoIndex>>, String> {
    if config.repos.is_empty() {
        return Ok(None);
    }
    for repo in &config.repos {
        match std::fs::metadata(repo) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("--repo {}: not a directory", repo.display())),
            Err(e) => {
                let e = Error::io(repo, e);
                return Err(format!("--repo {}: {}", repo.display(), io_reason(&e)));
            }
        }
    }
    let index = RepoIndex::start(&config.repos, RepoOptions::default())
        .map_err(|e| format!("--repo: {e}"))?;
    let weak = Arc::downgrade(cache);
    index.on_update(move |update| {
        let Some(cache) = weak.upgrade() else {
            return;
        };
        if update.full {
            cache.forget_all_missing();
        }
        for name in &update.names {
            if let Ok(key) = Key::new(&distfiles::store_path(name)) {
                cache.forget_missing(&key);
            }
        }
    });
    Ok(Some(Arc::new(index)))
}

/// Opens the cache `config` describes. Errors name the flag and value at fault.
pub fn open_cache(config: &Config) -> Result<Cache, String> {
    let store = Store::open(&config.cache)
        .map_err(|e| format!("--cache {}: {}", config.cache.display(), io_reason(&e)))?;
    let (proxy, trust) = match &config.upstream_env {
        Some(vars) => {
            let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            (ProxyRules::from_vars(var), TrustStore::from_vars(var))
        }
        None => (ProxyRules::from_env(), TrustStore::from_env()),
    };
    let proxy = match &config.upstream_proxy {
        Some(p) => proxy.forced(p),
        None => proxy,
    };
    let upstream = Upstream::new(&UpstreamConfig {
        sources: config.effective_sources(),
        connect_timeout: config.connect_timeout,
        read_timeout: config.read_timeout,
        user_agent: USER_AGENT.into(),
        proxy,
        trust,
    })
    .map_err(|e| match &e {
        Error::BadSource { .. } => format!("--source {e}"),
        Error::BadProxy { .. } if config.upstream_proxy.is_some() => {
            format!("--upstream-proxy {e}")
        }
        Error::BadProxy { .. } => format!("proxy (from the environment) {e}"),
        _ => e.to_string(),
    })?;
    // Without --name the port is part of the name: known here unless it is 0, which
    // `bind` fills in once it has one.
    match &config.name {
        Some(name) => upstream.set_name(name),
        None if config.port != 0 => upstream.set_name(&via::default_name(config.port)),
        None => {}
    }
    for s in upstream.sources() {
        if let Some(p) = s.proxy() {
            info!("reaching {} through the proxy {p}", s.url());
        }
    }
    let policy = Policy::new(&config.mutable, config.mutable_ttl, config.negative_ttl)
        .map_err(|e| format!("--mutable {e}"))?;
    let cache = Cache::new(store, upstream, policy, FetchConfig::default());
    cache.index().set_cap(config.max_size);
    Ok(cache)
}

/// The server settings for `config` (without an observer).
pub fn server_config(config: &Config) -> ServerConfig {
    ServerConfig {
        threads: config.threads,
        idle_timeout: config.idle_timeout,
        send_timeout: config.send_timeout,
        shutdown_grace: config.shutdown_grace,
        server_name: Some(USER_AGENT.into()),
        log_header: Some("X-Cache".into()),
        ..ServerConfig::default()
    }
}

/// Binds and prepares the server (without running it), and starts the culler: the
/// background thread that indexes the cache in one pass (removing what crashed
/// downloads left behind on the way) and keeps it under `--max-size`.
pub fn bind(config: &Config) -> Result<(Server, Arc<Cache>), String> {
    let app = build(config)?;
    let addr = config.listen_addr()?;
    let server_config = ServerConfig {
        observer: Some(app.metrics.clone()),
        ..server_config(config)
    };
    let server = Server::bind(addr, app.router, server_config)
        .map_err(|e| format!("--host {} --port {}: {e}", config.host, config.port))?;
    app.metrics.attach_server(server.stats());
    app.cache
        .upstream()
        .set_name(&via::default_name(server.local_addr().port()));
    let index = app.cache.index().clone();
    thread::Builder::new()
        .name("culler".into())
        .spawn(move || index.run())
        .map_err(|e| format!("cannot start the culler: {e}"))?;
    Ok((server, app.cache))
}

/// Starts a server for `config` on its own thread: for tests and embedding.
pub fn start(config: &Config) -> Result<(RunningServer, Arc<Cache>), String> {
    let (server, cache) = bind(config)?;
    let running = server.spawn().map_err(|e| e.to_string())?;
    Ok((running, cache))
}

/// Keeps memory flat with many threads: copy buffers (64 KiB and up) are mapped and
/// unmapped with each transfer instead of lingering in per-thread heaps, and the number
/// of heaps is bounded. glibc only; elsewhere the allocator's defaults stand.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Runs the program for `config` until SIGTERM or SIGINT.
pub fn run(config: Config) -> ExitCode {
    tune_allocator();
    logging::init(config.verbose, config.syslog);
    std::panic::set_hook(Box::new(|info| error!("{info}")));
    match socket::raise_open_file_limit() {
        Ok(n) => debug!("open file limit: {n}"),
        Err(e) => warn!("cannot raise the open file limit: {e}"),
    }
    if config.sources.is_empty() {
        warn!("no --source given: using {DEFAULT_SOURCE}");
    }
    let (server, cache) = match bind(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("package-cache: {e}");
            if config.syslog {
                error!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = signals::shutdown_on_signals(server.shutdown_handle()) {
        warn!("cannot handle SIGTERM/SIGINT: {e}");
    }
    info!(
        "serving http://{}/ as {} from {} for {}",
        server.local_addr(),
        cache.upstream().name().unwrap_or("-"),
        config.cache.display(),
        config.effective_sources().join(", ")
    );
    let grace = config.shutdown_grace;
    let shutdown = server.shutdown_handle();
    let result = server.run();
    // Clients are gone or had their grace; downloads still running get what is left
    // of it (they were started by clients and are worth keeping).
    let since = shutdown
        .requested_at()
        .unwrap_or_else(std::time::Instant::now);
    finish_downloads(&cache, since + grace);
    cache.index().stop();
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until `deadline` at most for downloads in progress to finish.
fn finish_downloads(cache: &Cache, deadline: std::time::Instant) {
    let mut told = false;
    while cache.downloads_in_progress() > 0 && std::time::Instant::now() < deadline {
        if !told {
            info!(
                "waiting up to {}s for {} downloads to finish",
                deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .as_secs(),
                cache.downloads_in_progress()
            );
            told = true;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    let left = cache.downloads_in_progress();
    if left > 0 {
        warn!(
            "stopping with {left} downloads unfinished; their partial files are removed at the next start"
        );
    }
}

/// The I/O reason of a cache error, without repeating the path.
fn io_reason(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => {
            let text = source.to_string().to_lowercase();
            // "not a directory (os error 20)" → "not a directory"
            match text.find(" (os error") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        }
        other => other.to_string(),
    }
}

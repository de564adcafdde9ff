//! Running downloads: one per entry across threads and processes.
//!
//! [`Fetcher::join`] attaches a client to the entry's [`Flight`], creating it and
//! starting a download thread if there is none. That thread claims the entry's fs2
//! lock ([`Store::claim`]):
//!
//! - **leader**: it asks the sources, writes the part file through the tee, checks the
//!   length, and commits (fsync, Last-Modified, rename). Clients are told the bytes are
//!   complete before the fsync, so it is never on their critical path.
//! - **busy**: another process holds the lock. The thread follows that process's part
//!   file, polling its size (every 5 to 50 ms), and relays progress to this process's
//!   clients exactly as a leader would; if the other process dies, clients that have
//!   not started receiving are told to try again (one of them becomes the leader).
//!
//! A download continues when its first client hangs up: it ends early only if nobody
//! has been attached for the grace period (10 s by default, enough for `wget -c` to come
//! back) and less than half of it has arrived.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::Failure;
use super::flight::{Flight, Flights, Origin, Phase, Ticket};
use super::store::{Claim, Key, Lease, Meta, Store, Watch};
use super::tee::{self, AbandonRule, CopyEnd};
use super::upstream::{Ask, Reply, Upstream};

/// Tuning for downloads.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// See [`AbandonRule::grace`].
    pub abandon_grace: Duration,
    /// Largest block read from the upstream at once.
    pub buffer_size: usize,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig {
            abandon_grace: Duration::from_secs(10),
            buffer_size: 64 * 1024,
        }
    }
}

/// What to download.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The entry.
    pub key: Key,
    /// The request for the sources (per-source paths, conditions).
    pub ask: Ask,
    /// The path as the client asked for it, for messages.
    pub label: String,
}

/// Counters about downloads, for the metrics.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Downloads started as leader.
    pub started: AtomicU64,
    /// Downloads committed to the cache.
    pub stored: AtomicU64,
    /// Downloads that failed or were abandoned.
    pub failed: AtomicU64,
    /// Downloads followed in another process.
    pub followed: AtomicU64,
    /// Bytes written to the cache.
    pub bytes_stored: AtomicU64,
}

/// Runs and shares downloads.
#[derive(Debug)]
pub struct Fetcher {
    store: Store,
    upstream: Arc<Upstream>,
    flights: Flights,
    config: FetchConfig,
    stats: FetchStats,
}

impl Fetcher {
    /// A fetcher over `store` and `upstream`.
    pub fn new(store: Store, upstream: Arc<Upstream>, config: FetchConfig) -> Arc<Fetcher> {
        Arc::new(Fetcher {
            store,
            upstream,
            flights: Flights::default(),
            config,
            stats: FetchStats::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The sources.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The downloads in progress.
    pub fn flights(&self) -> &Flights {
        &self.flights
    }

    /// The counters.
    pub fn stats(&self) -> &FetchStats {
        &self.stats
    }

    /// Attaches to the download of `plan.key`, starting it if none is running in this
    /// process. Returns the ticket and whether this call started it.
    pub fn join(self: &Arc<Self>, plan: Plan) -> io::Result<(Ticket, bool)> {
        let (ticket, new) = self.flights.join(&plan.key);
        if new {
            let (me, flight) = (self.clone(), ticket.flight().clone());
            let spawned = thread::Builder::new()
                .name("download".into())
                .spawn(move || me.run(&flight, &plan));
            if let Err(e) = spawned {
                let flight = ticket.flight();
                flight.finish(Phase::NoStore(format!(
                    "cannot start a download thread: {e}"
                )));
                self.flights.remove(flight);
                return Err(e);
            }
        } else {
            ticket.flight().count_coalesced();
        }
        Ok((ticket, new))
    }

    fn run(&self, flight: &Arc<Flight>, plan: &Plan) {
        match self.store.claim(&plan.key) {
            Ok(Claim::Leader(lease)) => self.lead(flight, lease, plan),
            Ok(Claim::Busy(watch)) => self.follow(flight, &watch, plan),
            Err(e) => {
                let path = self.store.path(&plan.key);
                warn!("cannot store {}: {e}", path.display());
                flight.finish(Phase::NoStore(e.to_string()));
            }
        }
        self.flights.remove(flight);
    }

    fn lead(&self, flight: &Flight, lease: Lease, plan: &Plan) {
        let conditional = plan.ask.if_modified_since.is_some() || plan.ask.if_none_match.is_some();
        // Another download may have finished between our lookup and our lock.
        if !conditional && let Ok(Some(entry)) = self.store.lookup(&plan.key) {
            let meta = Meta {
                len: Some(entry.len),
                modified: Some(entry.modified),
                etag: None,
            };
            flight.complete_with(entry.file, meta);
            return;
        }
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        // The copy being revalidated (if any) must not be evicted meanwhile.
        let _busy = self.store.index().busy(lease.target());
        let mut fetched = match self.upstream.fetch(&plan.label, &plan.ask) {
            Ok(Reply::Fresh(f)) => f,
            Ok(Reply::NotModified { .. }) => {
                flight.finish(Phase::NotModified);
                return;
            }
            Err(e) => {
                debug!("{e}");
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                flight.finish(Phase::Failed(Arc::new(e)));
                return;
            }
        };
        if fetched.meta.modified.is_none() {
            // Without a Last-Modified the download time stands in, as a file's mtime
            // would; whole seconds, so in-flight and stored answers agree.
            let now = crate::proto::date::unix_seconds(std::time::SystemTime::now());
            fetched.meta.modified = Some(std::time::UNIX_EPOCH + Duration::from_secs(now));
        }
        let part = match lease
            .create_part()
            .and_then(|p| lease.publish(&fetched.meta).map(|()| p))
        {
            Ok(p) => Arc::new(p),
            Err(e) => {
                warn!("cannot write {}: {e}", lease.target().display());
                flight.finish(Phase::NoStore(e.to_string()));
                return;
            }
        };
        let origin = Origin {
            source: fetched.source,
            path: plan.ask.paths[fetched.source].clone().unwrap_or_default(),
        };
        let started = Instant::now();
        flight.begin(fetched.meta.clone(), part.clone(), Some(origin));
        let mut buf = vec![0u8; self.config.buffer_size];
        let rule = AbandonRule {
            grace: self.config.abandon_grace,
        };
        let end = tee::copy(
            &mut fetched.body,
            &part,
            flight,
            fetched.meta.len,
            rule,
            &mut buf,
        );
        drop(buf);
        let broken = |reason: String, disk_at: Option<u64>| {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            Phase::Broken { reason, disk_at }
        };
        let phase = match end {
            CopyEnd::Done(n) if fetched.meta.len.is_none_or(|len| len == n) => {
                let meta = Meta {
                    len: Some(n),
                    ..fetched.meta.clone()
                };
                // Clients have every byte now; the fsync and rename happen after.
                flight.finish(Phase::Complete(meta.clone()));
                if fetched.close_delimited {
                    // Its end cannot be verified: a cut connection looks the same. It
                    // was passed on as received, but is not kept.
                    debug!(
                        "not storing {}: {} sent no length",
                        plan.key.as_str(),
                        fetched.url
                    );
                    return;
                }
                let target = lease.target().to_path_buf();
                match lease.commit(&part, meta.modified) {
                    Ok(()) => {
                        self.store.index().stored(&target, n);
                        self.stats.stored.fetch_add(1, Ordering::Relaxed);
                        self.stats.bytes_stored.fetch_add(n, Ordering::Relaxed);
                        debug!(
                            "stored {} ({n} bytes from {} in {}ms)",
                            plan.key.as_str(),
                            fetched.url,
                            started.elapsed().as_millis()
                        );
                    }
                    Err(e) => warn!("cannot store {}: {e}", self.store.path(&plan.key).display()),
                }
                return;
            }
            CopyEnd::Done(n) => broken(
                format!(
                    "{} sent {n} of {} bytes",
                    fetched.url,
                    fetched.meta.len.unwrap_or(0)
                ),
                None,
            ),
            CopyEnd::Upstream(n, e) => {
                let failure = Failure::from_ureq(ureq::Error::from(e));
                broken(
                    format!("{} failed after {n} bytes: {failure}", fetched.url),
                    None,
                )
            }
            CopyEnd::Disk(n, e) => {
                // Followers in other processes continue from the source too. The lock
                // file already has a block, so this write fits on a full disk.
                if let Err(e) = lease.publish_disk_failure(n) {
                    debug!("cannot mark {} as a disk failure: {e}", plan.key.as_str());
                }
                warn!(
                    "cannot write {}: {e}; serving {} without storing it",
                    lease.target().display(),
                    plan.key.as_str()
                );
                broken(format!("disk write failed: {e}"), Some(n))
            }
            CopyEnd::Abandoned(n) => {
                info!(
                    "abandoned {} after {n} bytes: no client left",
                    plan.key.as_str()
                );
                broken("abandoned".into(), None)
            }
        };
        if let Phase::Broken { reason, .. } = &phase {
            info!("download of {} broke: {reason}", plan.key.as_str());
        }
        flight.finish(phase);
        drop(lease);
    }

    /// Relays a download running in another process.
    fn follow(&self, flight: &Flight, watch: &Watch, plan: &Plan) {
        self.stats.followed.fetch_add(1, Ordering::Relaxed);
        let mut poll = Poll::new();
        let meta = loop {
            if let Some(meta) = watch.meta() {
                break meta;
            }
            if !watch.leader_alive() {
                return self.after_remote_leader(flight, plan);
            }
            poll.wait(false);
        };
        let part = match watch.open_part() {
            Ok(Some(p)) => Arc::new(p),
            Ok(None) => return self.after_remote_leader(flight, plan),
            Err(e) => {
                flight.finish(Phase::NoStore(e.to_string()));
                return;
            }
        };
        // If the other process's disk fails, readers continue from our first source
        // (`GrowingReader` checks that its file has the same length).
        let origin = plan
            .ask
            .paths
            .iter()
            .position(Option::is_some)
            .map(|source| Origin {
                source,
                path: plan.ask.paths[source].clone().unwrap_or_default(),
            });
        flight.begin(meta.clone(), part.clone(), origin);
        let mut written = 0;
        loop {
            let alive = watch.leader_alive();
            let size = part.metadata().map(|m| m.len()).unwrap_or(written);
            let progressed = size > written;
            if progressed {
                written = size;
                flight.advance(written);
            }
            if meta.len == Some(written) {
                flight.finish(Phase::Complete(meta));
                return;
            }
            if !alive {
                // Unknown length: complete only if the leader renamed it into place.
                let done = meta.len.is_none()
                    && matches!(self.store.lookup(&plan.key), Ok(Some(e)) if e.len == written);
                if done {
                    flight.finish(Phase::Complete(Meta {
                        len: Some(written),
                        ..meta
                    }));
                } else if let Some(stored) = watch.disk_failure() {
                    flight.finish(Phase::Broken {
                        reason: "the disk refused the file in another process".into(),
                        disk_at: Some(stored.min(written)),
                    });
                } else {
                    flight.finish(Phase::Broken {
                        reason: "the download in another process failed".into(),
                        disk_at: None,
                    });
                }
                return;
            }
            poll.wait(progressed);
        }
    }

    /// The other process's download ended before we saw its bytes: either the file is
    /// there now, or clients should try again.
    fn after_remote_leader(&self, flight: &Flight, plan: &Plan) {
        match self.store.lookup(&plan.key) {
            Ok(Some(entry)) => {
                let meta = Meta {
                    len: Some(entry.len),
                    modified: Some(entry.modified),
                    etag: None,
                };
                flight.complete_with(entry.file, meta);
            }
            _ => flight.finish(Phase::LeaderGone),
        }
    }
}

/// Polling with back-off: 5 ms after progress, doubling to 50 ms while idle.
struct Poll {
    delay: Duration,
}

impl Poll {
    fn new() -> Poll {
        Poll {
            delay: Duration::from_millis(5),
        }
    }

    fn wait(&mut self, progressed: bool) {
        self.delay = if progressed {
            Duration::from_millis(5)
        } else {
            (self.delay * 2).min(Duration::from_millis(50))
        };
        thread::sleep(self.delay);
    }
}

//! Running downloads: one per entry across threads and processes.
//!
//! `Fetcher::obtain` attaches a client to the entry's [`Flight`], creating it and
//! starting a download thread if there is none. That thread claims the entry's fs2
//! lock ([`Store::claim`]):
//!
//! - **leader**: it asks the sources, writes the part file through the tee, checks the
//!   length, and commits (fsync, Last-Modified, rename). Clients are told the bytes are
//!   complete before the fsync, so it is never on their critical path.
//! - **busy**: another process holds the lock. The thread follows that process's part
//!   file, polling the durable length in its lock file (every 5 to 50 ms), and relays
//!   progress to this process's clients exactly as a leader would, never beyond what
//!   the leader made durable (see [`super::durable`]); if the other process dies,
//!   clients that have not started receiving are told to try again (one of them
//!   becomes the leader).
//!
//! A download whose plan says what the file must be ([`Plan::expect`]) is checked
//! while it streams, its last byte held back until the digests matched (see
//! [`super::verify`]); a wrong copy breaks the download and is never stored.
//!
//! A download continues when its first client hangs up: it ends early only if nobody
//! has been attached for the grace period (10 s by default, enough for `wget -c` to come
//! back) and less than half of it has arrived.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};

use super::durable::{self, Patience, SyncPeriod};
use super::flight::{Flight, Flights, Origin, Phase, Ticket};
use super::index::Index;
use super::policy::Policy;
use super::store::{Claim, Key, Leader, Lease, Meta, Polled, Store, Watch};
use super::tee::{self, AbandonRule, CopyEnd};
use super::upstream::{Ask, Fetched, Reply, Upstream};
use super::verify::{self, Expect, StoredChecks};
use super::{Error, Failure};
use crate::proto::date;

/// Tuning for downloads.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// See [`AbandonRule::grace`].
    pub abandon_grace: Duration,
    /// Largest block read from the upstream at once.
    pub buffer_size: usize,
    /// How often a leader makes its part file durable for followers in other
    /// processes (see [`super::durable`]).
    pub sync: SyncPeriod,
    /// How long a follower waits on a leader whose lock it cannot test while nothing
    /// arrives (see `durable::Patience`): over NFS, a stale file handle.
    pub follow_patience: Duration,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig {
            abandon_grace: Duration::from_secs(10),
            buffer_size: 64 * 1024,
            sync: SyncPeriod::default(),
            follow_patience: Duration::from_secs(120),
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
    /// What the file must be: checked while it streams, and a copy found on disk is
    /// checked before it is served.
    pub expect: Option<Expect>,
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

/// How a client came to a download (for its [`super::CacheStatus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// This request started it.
    Started,
    /// It was in progress.
    InProgress,
    /// Every byte had arrived already (the file was being committed): as good as a
    /// file on disk.
    AfterEnd,
}

/// How [`Fetcher::obtain`] ended, as far as one client is concerned.
#[derive(Debug)]
pub(crate) enum Obtained {
    /// Bytes are coming (or all arrived): serve them from the flight.
    Streaming(Ticket, Meta, Joined),
    /// Bytes are coming, but the client's first byte is far off at the download's
    /// rate (a resumed download of a cold file): better asked for separately.
    Far(Ticket, Meta, Joined),
    /// The source confirmed the copy we have (the plan was conditional).
    NotModified,
    /// No source could provide it.
    Failed(Arc<Error>),
    /// Nothing can be stored for this entry; the client must be served straight from
    /// the sources.
    NoStore(String),
    /// It kept breaking before this client got its first byte.
    Broken(String),
}

/// How the wait for a client's first byte ended.
enum FirstByte {
    /// It is on disk (or the download ended in a way the reader will report).
    Reached,
    /// The download broke before it.
    Broke(String),
    /// It would take longer than [`FAR`] at the current rate.
    Far,
}

/// How many times a request starts over when a download it was waiting for vanished
/// before sending anything (another process's leader died, a download was abandoned).
const RETRIES: usize = 3;

/// How long a client with a range waits for its first byte to arrive through the
/// shared download before it is better served by a request of its own.
const FAR: Duration = Duration::from_secs(2);

/// Runs and shares downloads.
#[derive(Debug)]
pub struct Fetcher {
    store: Store,
    index: Arc<Index>,
    upstream: Arc<Upstream>,
    /// Told of files no source has, before the flight that found out ends.
    policy: Arc<Policy>,
    flights: Flights,
    config: FetchConfig,
    stats: FetchStats,
    checks: StoredChecks,
}

impl Fetcher {
    /// A fetcher over `store` (whose complete files `index` tracks) and `upstream`.
    pub fn new(
        store: Store,
        index: Arc<Index>,
        upstream: Arc<Upstream>,
        policy: Arc<Policy>,
        config: FetchConfig,
    ) -> Arc<Fetcher> {
        Arc::new(Fetcher {
            store,
            index,
            upstream,
            policy,
            flights: Flights::default(),
            config,
            stats: FetchStats::default(),
            checks: StoredChecks::default(),
        })
    }

    /// The checks of stored files against what they must be.
    pub fn checks(&self) -> &StoredChecks {
        &self.checks
    }

    /// Whether the stored `entry` may be served: it passes `expect`'s check, when
    /// there is one. Logs why not.
    pub(crate) fn acceptable(&self, entry: &super::store::Entry, expect: Option<&Expect>) -> bool {
        let Some(expect) = expect else {
            return true;
        };
        match self.checks.check(entry, expect) {
            Ok(()) => true,
            Err(why) => {
                warn!(
                    "not serving {}: {why}; fetching it again",
                    entry.path.display()
                );
                false
            }
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The complete files by last use, and the size cap.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
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

    /// Runs or joins the download `plan` describes and waits until this client can be
    /// answered: its first byte (`first`, the start of its range) is on disk, or the
    /// download ended, or that byte is far off ([`Obtained::Far`]). A download that
    /// vanishes or breaks before that byte is started over (a few times), so a client
    /// never gets a response head without a body.
    pub(crate) fn obtain(self: &Arc<Self>, plan: &Plan, first: u64) -> Obtained {
        let mut last_break = String::from("the download keeps failing");
        for _ in 0..RETRIES {
            let (ticket, started) = match self.join(plan.clone()) {
                Ok(t) => t,
                Err(e) => {
                    return Obtained::Failed(Arc::new(Error::Interrupted {
                        path: plan.label.clone(),
                        reason: format!("cannot start a download: {e}"),
                    }));
                }
            };
            let joined = if started {
                Joined::Started
            } else if ticket.flight().all_arrived() {
                Joined::AfterEnd
            } else {
                Joined::InProgress
            };
            match ticket.flight().wait_for_headers() {
                Phase::Streaming(meta) | Phase::Complete(meta) => {
                    match wait_for_first(ticket.flight(), first) {
                        FirstByte::Reached => return Obtained::Streaming(ticket, meta, joined),
                        FirstByte::Far => return Obtained::Far(ticket, meta, joined),
                        FirstByte::Broke(reason) => last_break = reason,
                    }
                }
                Phase::NotModified => return Obtained::NotModified,
                Phase::Failed(e) => return Obtained::Failed(e),
                Phase::NoStore(reason) => return Obtained::NoStore(reason),
                Phase::Broken { reason, .. } => last_break = reason,
                Phase::LeaderGone | Phase::Connecting => {}
            }
        }
        Obtained::Broken(last_break)
    }

    /// Attaches to the download of `plan.key`, starting it if none is running in this
    /// process. Returns the ticket and whether this call started it.
    fn join(self: &Arc<Self>, plan: Plan) -> io::Result<(Ticket, bool)> {
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
        }
        Ok((ticket, new))
    }

    fn run(&self, flight: &Arc<Flight>, plan: &Plan) {
        // A download that just found this file nowhere may have ended between this
        // client's look at the negative cache and its join: its answer stands.
        if let Some(e) = self.policy.missing(&plan.key) {
            flight.finish(Phase::Failed(e));
            self.flights.remove(flight);
            return;
        }
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

    /// Downloads as the one holder of the entry's lock: ask the sources, write the
    /// part file through the tee, then commit or give up.
    fn lead(&self, flight: &Flight, lease: Lease, plan: &Plan) {
        if self.completed_meanwhile(flight, plan) {
            return;
        }
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        // The copy being revalidated (if any) must not be evicted meanwhile.
        let _busy = self.index.busy(lease.target());
        let Some(mut fetched) = self.ask_sources(flight, plan) else {
            return;
        };
        if let Some(expect) = &plan.expect {
            verify::guard(&mut fetched, expect);
        }
        let Some(part) = self.open_part(flight, &lease, &mut fetched) else {
            return;
        };
        let started = Instant::now();
        let mut buf = vec![0u8; self.config.buffer_size];
        let rule = AbandonRule {
            grace: self.config.abandon_grace,
        };
        let len = fetched.meta.len;
        let end = durable::copy_syncing(&lease, &part, flight, self.config.sync, || {
            tee::copy(&mut fetched.body, &part, flight, len, rule, &mut buf)
        });
        drop(buf);
        match end {
            CopyEnd::Done(n) if len.is_none_or(|len| len == n) => {
                let meta = Meta {
                    len: Some(n),
                    ..fetched.meta.clone()
                };
                // Clients have every byte now; the fsync and rename happen after.
                flight.finish(Phase::Complete(meta.clone()));
                self.upstream.body_completed(fetched.source, &fetched.path);
                if let Some(expect) = &plan.expect {
                    self.upstream.body_verified(fetched.source);
                    let target = lease.target().to_path_buf();
                    self.checks
                        .verified(&part, target, expect, n, meta.modified);
                }
                self.commit(lease, &part, &fetched, &meta, plan, started);
            }
            end => {
                let phase = self.broken(end, &fetched, &lease, plan);
                flight.finish(phase);
            }
        }
    }

    /// Another download may have finished between the client's lookup and our lock:
    /// serve that file (unless this is a revalidation, which must ask anyway).
    fn completed_meanwhile(&self, flight: &Flight, plan: &Plan) -> bool {
        !plan.ask.is_conditional() && self.complete_from_disk(flight, plan)
    }

    /// Ends `flight` with the complete file of `plan.key` on disk, if there is one
    /// that may be served (see [`Fetcher::acceptable`]); returns whether it did.
    fn complete_from_disk(&self, flight: &Flight, plan: &Plan) -> bool {
        match self.store.lookup(&plan.key) {
            Ok(Some(entry)) if self.acceptable(&entry, plan.expect.as_ref()) => {
                flight.complete_with(entry.file, Meta::of_stored(entry.len, entry.modified));
                true
            }
            _ => false,
        }
    }

    /// Asks the sources; on anything but new content, ends the flight and returns
    /// `None`.
    fn ask_sources(&self, flight: &Flight, plan: &Plan) -> Option<Fetched> {
        match self.upstream.fetch(&plan.label, &plan.ask) {
            Ok(Reply::Fresh(mut f)) => {
                if f.meta.modified.is_none() {
                    // Without a Last-Modified the download time stands in, as a file's
                    // mtime would; whole seconds, so in-flight and stored answers agree.
                    let now = date::unix_seconds(SystemTime::now());
                    f.meta.modified = Some(UNIX_EPOCH + Duration::from_secs(now));
                }
                Some(f)
            }
            Ok(Reply::NotModified { .. }) => {
                flight.finish(Phase::NotModified);
                None
            }
            Err(e) => {
                debug!("{e}");
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let e = Arc::new(e);
                if e.nowhere() {
                    // Remembered before anyone can see the flight end, so a request
                    // arriving right after it finds the answer, not a new download.
                    self.policy.remember_missing(&plan.key, e.clone());
                }
                flight.finish(Phase::Failed(e));
                None
            }
        }
    }

    /// Creates the part file, publishes the metadata for other processes and tells the
    /// clients that bytes are coming; on failure ends the flight with `NoStore`.
    fn open_part(
        &self,
        flight: &Flight,
        lease: &Lease,
        fetched: &mut Fetched,
    ) -> Option<Arc<File>> {
        let part = match lease
            .create_part()
            .and_then(|p| lease.publish(&fetched.meta).map(|()| p))
        {
            Ok(p) => Arc::new(p),
            Err(e) => {
                warn!("cannot write {}: {e}", lease.target().display());
                flight.finish(Phase::NoStore(e.to_string()));
                return None;
            }
        };
        let origin = Origin {
            source: fetched.source,
            path: fetched.path.clone(),
            led: true,
        };
        flight.begin(fetched.meta.clone(), part.clone(), Some(origin));
        Some(part)
    }

    /// Makes a complete download permanent (unless its end could not be verified).
    fn commit(
        &self,
        lease: Lease,
        part: &File,
        fetched: &Fetched,
        meta: &Meta,
        plan: &Plan,
        started: Instant,
    ) {
        // A copy that matched its digests is complete and the right file, however it
        // was framed and wherever it was redirected.
        let verified = plan.expect.is_some();
        if fetched.close_delimited && !verified {
            // Its end cannot be verified: a cut connection looks the same. It was
            // passed on as received, but is not kept.
            debug!(
                "not storing {}: {} sent no length",
                plan.key.as_str(),
                fetched.url
            );
            return;
        }
        if let Some(to) = fetched.redirected.as_ref().filter(|_| !verified) {
            // Another path's content (a directory listing behind a redirect to
            // `name/`, another file): passed on, never stored under this name.
            info!(
                "not storing {}: {} redirected to {to}",
                plan.key.as_str(),
                fetched.url
            );
            return;
        }
        let target = lease.target().to_path_buf();
        let n = meta.len.unwrap_or(0);
        match lease.commit(part, meta.modified) {
            Ok(()) => {
                self.index.stored(&target, n);
                self.stats.stored.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_stored.fetch_add(n, Ordering::Relaxed);
                debug!(
                    "stored {} ({n} bytes from {} in {}ms)",
                    plan.key.as_str(),
                    fetched.url,
                    started.elapsed().as_millis()
                );
            }
            Err(e) => warn!("cannot store {}: {e}", target.display()),
        }
    }

    /// The phase that ends a download that did not complete, logged.
    fn broken(&self, end: CopyEnd, fetched: &Fetched, lease: &Lease, plan: &Plan) -> Phase {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        let (reason, disk_at) = match end {
            CopyEnd::Done(n) => {
                let failure = Failure::Protocol(format!(
                    "sent {n} of {} bytes",
                    fetched.meta.len.unwrap_or(0)
                ));
                self.upstream
                    .body_broke(fetched.source, &fetched.path, &failure);
                (format!("{} {failure}", fetched.url), None)
            }
            CopyEnd::Upstream(n, e) if verify::mismatch_of(&e).is_some() => {
                let why = verify::mismatch_of(&e).map(ToString::to_string);
                let why = why.unwrap_or_default();
                let id = plan.expect.as_ref().map_or(0, |x| x.id);
                self.upstream
                    .body_mismatch(fetched.source, &fetched.path, id, &why);
                warn!(
                    "{}: {why} (after {n} bytes); not storing {}, and not asking that URL for it for an hour",
                    fetched.url,
                    plan.key.as_str()
                );
                (format!("{} {why}", fetched.url), None)
            }
            CopyEnd::Upstream(n, e) => {
                let failure = Failure::from_ureq(ureq::Error::from(e));
                self.upstream
                    .body_broke(fetched.source, &fetched.path, &failure);
                (
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
                (format!("disk write failed: {e}"), Some(n))
            }
            CopyEnd::Abandoned(n) => {
                info!(
                    "abandoned {} after {n} bytes: no client left",
                    plan.key.as_str()
                );
                ("abandoned".into(), None)
            }
        };
        info!("download of {} broke: {reason}", plan.key.as_str());
        Phase::Broken { reason, disk_at }
    }

    /// Relays a download running in another process.
    fn follow(&self, flight: &Flight, watch: &Watch, plan: &Plan) {
        self.stats.followed.fetch_add(1, Ordering::Relaxed);
        let mut poll = Poll::new();
        let mut patience = Patience::new(self.config.follow_patience);
        let meta = loop {
            if let Some(meta) = watch.meta() {
                break meta;
            }
            if self.leader_gone(watch.leader(), watch, &mut patience, false) {
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
                led: false,
            });
        flight.begin(meta.clone(), part.clone(), origin);
        let mut written = 0;
        loop {
            // Only what the leader made durable: on a shared filesystem the part file's
            // size can run ahead of its data. The size still bounds it (a host that
            // sees the lock file before the part file's new length).
            let Polled {
                leader,
                synced: durable,
            } = watch.poll();
            let mut progressed = false;
            if durable > written {
                let size = watch.part_len(&part).unwrap_or(written);
                let relay = durable.min(size);
                if relay > written {
                    written = relay;
                    flight.advance(written);
                    progressed = true;
                }
            }
            if meta.len == Some(written) {
                flight.finish(Phase::Complete(meta));
                return;
            }
            if self.leader_gone(leader, watch, &mut patience, progressed) {
                flight.finish(self.remote_end(watch, &part, meta, written));
                return;
            }
            poll.wait(progressed);
        }
    }

    /// Whether the leader of the download `watch` follows is gone, given the state of
    /// its lock just read, and whether anything arrived since the last poll: it let go
    /// of the lock, or its lock cannot be tested and patience ran out.
    fn leader_gone(
        &self,
        leader: Leader,
        watch: &Watch,
        patience: &mut Patience,
        moved: bool,
    ) -> bool {
        match leader {
            Leader::Gone => true,
            Leader::Holding => patience.poll(moved, true),
            Leader::Unknown(e) => {
                let gone = patience.poll(moved, false);
                if gone {
                    warn!(
                        "giving up on the download of {} in another process: its lock cannot be tested ({e}) and nothing arrived for {}s",
                        watch.target().display(),
                        self.config.follow_patience.as_secs()
                    );
                }
                gone
            }
        }
    }

    /// How a download in another process ended, once its leader let go of the lock
    /// with `written` bytes relayed from `part`.
    fn remote_end(&self, watch: &Watch, part: &File, meta: Meta, written: u64) -> Phase {
        // Complete if the leader renamed our part file into place (after its fsync):
        // every byte is durable, also those beyond the last durable length it wrote.
        let len = watch.renamed(part);
        if len.is_some_and(|n| meta.len.is_none_or(|m| m == n) && n >= written) {
            Phase::Complete(Meta { len, ..meta })
        } else if let Some(stored) = watch.disk_failure() {
            Phase::Broken {
                reason: "the disk refused the file in another process".into(),
                disk_at: Some(stored.min(written)),
            }
        } else {
            Phase::Broken {
                reason: "the download in another process failed".into(),
                disk_at: None,
            }
        }
    }

    /// The other process's download ended before we saw its bytes: either the file is
    /// there now, or clients should try again.
    fn after_remote_leader(&self, flight: &Flight, plan: &Plan) {
        if !self.complete_from_disk(flight, plan) {
            flight.finish(Phase::LeaderGone);
        }
    }
}

/// Waits for byte `first` of `flight` to be on disk. For a client with a range
/// (`first` > 0) the wait is bounded: if the byte is not there within [`FAR`], or the
/// download's rate says it will not be, the answer is [`FirstByte::Far`].
fn wait_for_first(flight: &Flight, first: u64) -> FirstByte {
    let classify = |written: u64, phase: Phase| match phase {
        Phase::Broken {
            reason,
            disk_at: None,
        } if written <= first => FirstByte::Broke(reason),
        _ => FirstByte::Reached,
    };
    if first == 0 {
        let (written, phase, _) = flight.wait_beyond(first);
        return classify(written, phase);
    }
    let deadline = Instant::now() + FAR;
    loop {
        let (written, phase) = flight.wait_beyond_for(first, Duration::from_millis(200));
        if written > first || phase.is_final() {
            return classify(written, phase);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let eta = flight
            .rate()
            .map(|rate| Duration::from_secs_f64((first + 1 - written) as f64 / rate));
        if left.is_zero() || eta.is_some_and(|eta| eta > left) {
            return FirstByte::Far;
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

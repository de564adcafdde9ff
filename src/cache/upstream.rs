//! The sources: a ureq agent and ordered failover.
//!
//! Sources are asked in the order configured. 404 and 410 mean "not here, ask the next
//! one"; so do 5xx, refused connections, DNS and TLS failures and timeouts. A source
//! that failed to answer at all (not one that merely lacked a file) is tried last for
//! a while (5 s, doubling up to 5 min), so a dead first mirror does not cost a connect
//! timeout on every miss.
//!
//! A request may also name absolute URLs to try when no source has a correct copy
//! ([`Ask::fallback`]: a distfile's own `SRC_URI`, say). Their hosts are *ad-hoc
//! origins* (see `origins`): each scheme, host and port gets the health a source has
//! (tried last while cooling down, counters for the status page) and is reached
//! through the same agents (see `agents`: timeouts, proxy rules, trust store). An
//! origin is never chosen by a client: the URLs come from the application.
//!
//! When the file's expected length is known ([`Ask::expect_len`]), a source announcing
//! another is skipped before any byte ([`Failure::WrongSize`]); a source whose copy
//! failed its digest check ([`Upstream::body_mismatch`]) is not asked for that file
//! again for an hour ([`Failure::BadCopy`]).
//!
//! The agent never decompresses (ureq's `gzip` feature is off and we send
//! `Accept-Encoding: identity`) and has explicit connect and read timeouts. Each
//! source goes through the proxy [`ProxyRules`] give it (see [`super::proxy`]); ureq
//! reads no proxy settings of its own. The agents run on our own connector chain
//! (see `transport`): `http://` sources go to a proxy as plain requests, and https
//! sources are verified against the [`TrustStore`].
//!
//! Every request carries a `Via` header (RFC 9110 §7.6.3): the entries the client's
//! request arrived with ([`Ask::via`]), then this instance's own
//! ([`Upstream::set_name`]), so that a chain of caches that loops back is answered
//! `508 Loop Detected` instead of waiting on itself. Whether a source is itself a
//! package-cache is learned from the `Via` of its responses ([`Upstream::may_reach_cache`]).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use ureq::ResponseExt;

mod agents;
mod origins;

use super::proxy::ProxyRules;
use super::store::Meta;
use super::tls::TrustStore;
use super::{Attempt, Error, Failure, tls};
use crate::proto::{date, path, via};

/// How to reach the sources.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Base URLs, tried in order (`https://distfiles.gentoo.org`); a source for the
    /// paths below a prefix only is written `/PREFIX=URL` (see [`super::prefix`]).
    pub sources: Vec<String>,
    /// Longest wait for a connection (DNS, TCP and TLS together).
    pub connect_timeout: Duration,
    /// Longest wait for response headers, and for each read of the body.
    pub read_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Which proxy each source is reached through.
    pub proxy: ProxyRules,
    /// The certificates https sources are verified against (the binary reads
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`: [`TrustStore::from_env`]).
    pub trust: TrustStore,
}

/// What to ask the sources for.
#[derive(Clone, Debug, Default)]
pub struct Ask {
    /// Send `HEAD` instead of `GET`.
    pub head: bool,
    /// The path to ask each source for (decoded, starting with `/`), by source index;
    /// `None` skips that source.
    pub paths: Vec<Option<String>>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<SystemTime>,
    /// `If-None-Match`, by source index: each source is sent only the ETag it gave
    /// (ETags of different servers are not comparable).
    pub etags: Vec<Option<String>>,
    /// A `200` whose `Last-Modified` is older than this is refused
    /// ([`Failure::Older`]) and the next source asked: a lagging mirror must never
    /// move a file that changes in place back in time.
    pub not_older_than: Option<SystemTime>,
    /// `Range: bytes=N-`.
    pub from: Option<u64>,
    /// A query string (without `?`, as the client sent it) to pass on.
    pub query: Option<String>,
    /// The `Via` entries the client's request arrived with (normalised, see
    /// [`via::normalise`]), passed on before this instance's own entry. `None` for a
    /// request from an end client, and for requests the cache makes on its own.
    pub via: Option<String>,
    /// The length the file must have: a source announcing another is skipped.
    pub expect_len: Option<u64>,
    /// Identifies what the file must be (see [`super::verify::Expect::id`]): a source
    /// whose copy failed that check recently is not asked.
    pub expect_id: Option<u64>,
    /// Absolute URLs asked in order when no source has a correct copy (every source
    /// asked said not found, or announced a wrong length, or sent a wrong copy
    /// recently).
    pub fallback: Vec<String>,
}

impl Ask {
    /// Whether this is a conditional request (a 304 is a valid answer).
    pub fn is_conditional(&self) -> bool {
        self.if_modified_since.is_some() || self.etags.iter().any(Option::is_some)
    }
}

/// A successful answer: headers received, body not yet read.
pub struct Fetched {
    /// Which source answered: an index into [`Upstream::sources`], or beyond them an
    /// ad-hoc origin (see [`Upstream::source`]).
    pub source: usize,
    /// The path asked of it (for an origin, the URL's path and query as written).
    pub path: String,
    /// The URL that answered.
    pub url: String,
    /// 200, or 206 for a range request.
    pub status: u16,
    /// Length, Last-Modified and ETag as announced. For a 206, `len` is the length of
    /// the whole file (from `Content-Range`).
    pub meta: Meta,
    /// For a 206, the offset of the first byte sent.
    pub range_start: Option<u64>,
    /// The body has neither a length nor chunked framing: it ends where the connection
    /// does, so a source that stops early cannot be told from one that finished.
    pub close_delimited: bool,
    /// The source redirected to another path (a directory's `/` form, another file):
    /// the body is not the file that was asked for and must not be stored under its
    /// name. A redirect to the same path on another host is not counted.
    pub redirected: Option<String>,
    /// The body.
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("url", &self.url)
            .field("status", &self.status)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// This instance's name in `Via`, and its entry.
#[derive(Debug)]
struct Name {
    name: String,
    entry: String,
}

/// What a conditional or plain request came back with.
#[derive(Debug)]
pub enum Reply {
    /// New content.
    Fresh(Fetched),
    /// 304: the copy we have is current.
    NotModified {
        /// Which source said so.
        source: usize,
    },
}

/// One configured source and what we know of its health.
#[derive(Debug)]
pub struct Source {
    url: String,
    /// The path prefix it serves (`/debian`), `None` for a plain source.
    prefix: Option<String>,
    /// The proxy it is reached through.
    proxy: Option<String>,
    /// The agent that talks to it: a source's is set when the upstream is built, an
    /// origin's when it is first asked.
    agent: OnceLock<ureq::Agent>,
    /// Requests sent to it.
    pub requests: AtomicU64,
    /// Requests that failed (any reason but not-found).
    pub failures: AtomicU64,
    /// Body bytes received from it.
    pub bytes: AtomicU64,
    /// Downloads from it that matched what the file must be (digests checked).
    pub verified: AtomicU64,
    /// Copies from it that did not: a wrong length announced, or wrong content.
    pub mismatches: AtomicU64,
    health: Mutex<Health>,
    /// What its responses' `Via` said it is: [`PEER_UNKNOWN`] until it answered.
    peer: AtomicU8,
}

/// No response from the source yet: it may be a package-cache.
const PEER_UNKNOWN: u8 = 0;
/// Its last response carried no package-cache `Via` entry.
const PEER_ORIGIN: u8 = 1;
/// Its last response came through a package-cache.
const PEER_CACHE: u8 = 2;

#[derive(Debug, Default)]
struct Health {
    last_error: Option<(String, SystemTime)>,
    last_latency: Option<Duration>,
    down_until: Option<Instant>,
    strikes: u32,
    /// Bodies that broke in a row (reset, cut short), with no whole one between.
    broken_bodies: u32,
    /// A warning that it cannot be used went out and no success followed yet.
    failing: bool,
}

/// Bodies that break this many times in a row cool a source down like an
/// unreachable one.
const BROKEN_BODIES_TO_COOL: u32 = 3;
/// How long a source whose body broke for a path is asked last for that path.
const BROKEN_PATH_FOR: Duration = Duration::from_secs(600);
/// The most (source, path) pairs remembered as broken.
const BROKEN_PATHS_MAX: usize = 4096;
/// How long a source that sent a wrong copy of a file is not asked for it.
const BAD_COPY_FOR: Duration = Duration::from_secs(3600);

/// A snapshot of a source's health, for the status page.
#[derive(Clone, Debug)]
pub struct SourceHealth {
    /// The base URL.
    pub url: String,
    /// The path prefix it serves, `None` for a plain source.
    pub prefix: Option<String>,
    /// The last failure and when it happened.
    pub last_error: Option<(String, SystemTime)>,
    /// Time to response headers of the last successful request.
    pub last_latency: Option<Duration>,
    /// Whether it is currently tried last because it could not be reached.
    pub down: bool,
}

impl Source {
    /// A source with no history yet, reached through `proxy` (by `agent`, or one set
    /// later); `peer` is what it is known to be ([`PEER_UNKNOWN`] until it answers).
    fn new(
        url: String,
        prefix: Option<String>,
        proxy: Option<String>,
        agent: Option<ureq::Agent>,
        peer: u8,
    ) -> Source {
        Source {
            url,
            prefix,
            proxy,
            agent: agent.map(OnceLock::from).unwrap_or_default(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
            peer: AtomicU8::new(peer),
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path prefix it serves (`/debian`, no trailing `/`), `None` for a plain
    /// source (every path no prefix claims).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The proxy requests to it go through, if any.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// A snapshot of its health.
    pub fn health(&self) -> SourceHealth {
        let h = lock(&self.health);
        SourceHealth {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            last_error: h.last_error.clone(),
            last_latency: h.last_latency,
            down: h.is_down(),
        }
    }

    /// Records what the `Via` of one of its responses says it is.
    fn saw_via<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        let peer = if via::from_package_cache(values) {
            PEER_CACHE
        } else {
            PEER_ORIGIN
        };
        self.peer.store(peer, Ordering::Relaxed);
    }

    /// Whether it is (or, before its first answer, may be) another package-cache.
    pub fn may_be_cache(&self) -> bool {
        self.peer.load(Ordering::Relaxed) != PEER_ORIGIN
    }

    fn is_down(&self) -> bool {
        lock(&self.health).is_down()
    }

    /// The last failure, for saying why a cooling source was not asked.
    fn last_error(&self) -> String {
        lock(&self.health)
            .last_error
            .as_ref()
            .map_or_else(String::new, |(e, _)| e.clone())
    }

    /// It answered (a file, a 304, or a plain "not here"): it works.
    fn answered(&self, latency: Option<Duration>) {
        let mut h = lock(&self.health);
        if latency.is_some() {
            h.last_latency = latency;
        }
        h.down_until = None;
        h.strikes = 0;
        if h.failing {
            h.failing = false;
            info!("source {} works again", self.url);
        }
    }

    fn failed(&self, failure: &Failure) {
        if matches!(failure, Failure::NotFound(_)) {
            return self.answered(None);
        }
        if matches!(
            failure,
            Failure::Older | Failure::CoolingDown(_) | Failure::BadCopy
        ) {
            return;
        }
        if matches!(failure, Failure::WrongSize { .. }) {
            // It works; its copy of this one file is wrong.
            self.mismatches.fetch_add(1, Ordering::Relaxed);
            lock(&self.health).note(failure.to_string());
            return self.answered(None);
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut h = lock(&self.health);
        h.note(failure.to_string());
        if failure.is_transport() {
            h.cool_down();
        }
        h.unusable(&self.url, failure);
    }

    /// A body from it broke: after a few in a row it cools down.
    fn body_broke(&self, failure: &Failure) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut h = lock(&self.health);
        h.note(failure.to_string());
        h.broken_bodies += 1;
        if h.broken_bodies >= BROKEN_BODIES_TO_COOL {
            h.broken_bodies = 0;
            h.cool_down();
            h.unusable(
                &self.url,
                format_args!("its downloads keep breaking ({failure})"),
            );
        }
    }
}

impl Health {
    /// Whether it is tried last now, because it could not be reached.
    fn is_down(&self) -> bool {
        self.down_until.is_some_and(|t| t > Instant::now())
    }

    /// Records `why` as the last failure, now.
    fn note(&mut self, why: String) {
        self.last_error = Some((why, SystemTime::now()));
    }

    /// Warns that the source at `url` cannot be used (`why`), unless it was said
    /// already and no success followed.
    fn unusable(&mut self, url: &str, why: impl std::fmt::Display) {
        if !self.failing {
            self.failing = true;
            warn!("source {url} cannot be used: {why}");
        }
    }

    /// Tried last for a while: 5 s, doubling with every strike up to 5 min.
    fn cool_down(&mut self) {
        let secs = (5u64 << self.strikes.min(6)).min(300);
        self.down_until = Some(Instant::now() + Duration::from_secs(secs));
        self.strikes += 1;
    }
}

/// The sources and the agents that talk to them (one per distinct proxy).
#[derive(Debug)]
pub struct Upstream {
    /// The agents, shared by the sources and the origins.
    agents: agents::Agents,
    sources: Vec<Arc<Source>>,
    /// (source, path) → when its body broke: that source is asked last for that path.
    broken: Mutex<HashMap<(usize, String), Instant>>,
    /// This instance's name in `Via` and its entry, formatted once (see
    /// [`Upstream::set_name`]).
    name: OnceLock<Name>,
    /// (source, path) → when it sent a copy failing the check with this id: that
    /// source is not asked for that path (while the expectation is the same).
    bad: Mutex<HashMap<(usize, String), (Instant, u64)>>,
    /// Hosts of absolute URLs asked when no source had a file.
    origins: origins::Origins,
}

impl Upstream {
    /// Builds the sources' agents. Fails on a source that is not an http(s) URL, an
    /// unusable proxy, or (when a source is https) an unusable trust store.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, Error> {
        let specs = config
            .sources
            .iter()
            .map(|spec| super::prefix::parse(spec))
            .collect::<Result<Vec<_>, _>>()?;
        let agents = agents::Agents::new(config);
        // The trust store is read only when a source needs it (an unusable one is then
        // a configuration error); a redirect from an http source to https is verified
        // against the Mozilla roots, as ureq does.
        let tls = if specs.iter().any(|s| s.url.starts_with("https://")) {
            agents.trusted().map_err(Error::Config)?
        } else {
            tls::mozilla()
        };
        let mut sources = Vec::new();
        for super::prefix::SourceSpec { prefix, url } in specs {
            let proxy = config.proxy.proxy_for(&url).map(str::to_owned);
            let agent = agents.get(proxy.as_deref(), &tls)?;
            let url = url.trim_end_matches('/').to_owned();
            let source = Source::new(url, prefix, proxy, Some(agent), PEER_UNKNOWN);
            sources.push(Arc::new(source));
        }
        Ok(Upstream {
            agents,
            broken: Mutex::new(HashMap::new()),
            name: OnceLock::new(),
            bad: Mutex::new(HashMap::new()),
            origins: origins::Origins::new(&config.proxy, sources.len()),
            sources,
        })
    }

    /// Names this instance in the `Via` header of every request to the sources (and,
    /// for the mirror, of every response); the first name set stays. Until a name is
    /// set, requests pass on the client's entries without one of ours.
    pub fn set_name(&self, name: &str) {
        let _ = self.name.get_or_init(|| Name {
            entry: via::entry_for(name),
            name: name.to_owned(),
        });
    }

    /// This instance's name in `Via`, once set.
    pub fn name(&self) -> Option<&str> {
        self.name.get().map(|n| n.name.as_str())
    }

    /// This instance's own `Via` entry (`1.1 NAME (package-cache/VERSION)`, see
    /// [`via::entry_for`]), once a name is set: formatted once, for every request and
    /// response.
    pub fn via_entry(&self) -> Option<&str> {
        self.name.get().map(|n| n.entry.as_str())
    }

    /// Whether asking for `paths` may reach another package-cache: a source with a path
    /// that answered through one, or that has not answered yet. (A download waiting on
    /// such a source may be waiting, further up, on a download of ours.)
    pub fn may_reach_cache(&self, paths: &[Option<String>]) -> bool {
        self.sources
            .iter()
            .zip(paths)
            .any(|(s, p)| p.is_some() && s.may_be_cache())
    }

    /// The sources, in configured order.
    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    /// Source `i`: a configured one, or beyond them an ad-hoc origin.
    pub fn source(&self, i: usize) -> Option<Arc<Source>> {
        match self.sources.get(i) {
            Some(s) => Some(s.clone()),
            None => self.origins.get(i),
        }
    }

    /// The ad-hoc origins asked so far (hosts of [`Ask::fallback`] URLs).
    pub fn origins(&self) -> Vec<Arc<Source>> {
        self.origins.list()
    }

    /// How many downloads an ad-hoc origin provided (no source had the file).
    pub fn fallback_fetches(&self) -> u64 {
        self.origins.fetches.load(Ordering::Relaxed)
    }

    /// The URL of `path` at source `i` (an origin's path is used as written).
    pub fn url_of(&self, i: usize, path: &str) -> Option<String> {
        let source = self.source(i)?;
        Some(if i < self.sources.len() {
            format!("{}{}", source.url, path::encode(path))
        } else {
            format!("{}{path}", source.url)
        })
    }

    /// Asks the sources in turn until one answers with content (or 304 for a
    /// conditional request). `path` is only for error messages.
    ///
    /// The order is the configured one, except that a source whose body broke for
    /// this path recently is asked after the others, and a source cooling down (it
    /// failed to answer at all) comes last and is skipped entirely once another source
    /// has answered, so that one hanging mirror does not make every "not found" wait
    /// for its timeout.
    pub fn fetch(&self, path: &str, ask: &Ask) -> Result<Reply, Error> {
        let mut attempts = Vec::new();
        let mut answered = false;
        for i in self.order(ask) {
            let Some(Some(source_path)) = ask.paths.get(i) else {
                continue;
            };
            if let Some(reply) = self.try_one(i, source_path, ask, &mut answered, &mut attempts) {
                return Ok(reply);
            }
        }
        if !ask.fallback.is_empty()
            && attempts.iter().all(|a| no_copy(&a.failure))
            && let Some(reply) = self.fetch_fallback(path, ask, &mut attempts)
        {
            return Ok(reply);
        }
        Err(Error::Upstream {
            path: path.to_owned(),
            attempts,
        })
    }

    /// Asks the URLs of [`Ask::fallback`] in turn (an origin cooling down after the
    /// others, and skipped once one of them answered), adding each answer to
    /// `attempts`.
    fn fetch_fallback(&self, path: &str, ask: &Ask, attempts: &mut Vec<Attempt>) -> Option<Reply> {
        let mut targets = Vec::new();
        for url in &ask.fallback {
            match self.origins.resolve(url) {
                Some(t) => targets.push(t),
                None => debug!("{path}: not an http(s) URL, skipped: {url}"),
            }
        }
        // Cooling origins last, keeping the order otherwise.
        targets.sort_by_key(|(i, _)| self.source(*i).is_some_and(|s| s.is_down()));
        let mut answered = false;
        for (i, rest) in targets {
            let Some(reply) = self.try_one(i, &rest, ask, &mut answered, attempts) else {
                continue;
            };
            if !ask.head {
                self.origins.fetches.fetch_add(1, Ordering::Relaxed);
                let url = self.url_of(i, &rest).unwrap_or_default();
                info!("{path}: no source has it; fetching {url}");
            }
            return Some(reply);
        }
        None
    }

    /// One step of [`Upstream::fetch`] (and of its fallback): asks source or origin `i`
    /// for `source_path`, unless it is cooling down and another one in this round
    /// `answered` already, or it sent a wrong copy recently. A failure, or the reason
    /// it was skipped, goes to `attempts`; `answered` notes a source that was reached.
    fn try_one(
        &self,
        i: usize,
        source_path: &str,
        ask: &Ask,
        answered: &mut bool,
        attempts: &mut Vec<Attempt>,
    ) -> Option<Reply> {
        let source = self.source(i)?;
        let skipped = if *answered && source.is_down() {
            Some(Failure::CoolingDown(source.last_error()))
        } else if self.is_bad(i, source_path, ask) {
            Some(Failure::BadCopy)
        } else {
            None
        };
        if let Some(failure) = skipped {
            attempts.push(Attempt {
                url: self.url_of(i, source_path).unwrap_or_default(),
                failure,
            });
            return None;
        }
        match self.fetch_from(i, source_path, ask) {
            Ok(reply) => Some(reply),
            Err(attempt) => {
                *answered |= !attempt.failure.is_transport();
                attempts.push(attempt);
                None
            }
        }
    }

    /// Whether source `i` sent a copy of `source_path` that failed the check `ask`
    /// expects, recently.
    fn is_bad(&self, i: usize, source_path: &str, ask: &Ask) -> bool {
        let Some(id) = ask.expect_id else {
            return false;
        };
        lock(&self.bad)
            .get(&(i, source_path.to_owned()))
            .is_some_and(|(at, bad)| *bad == id && at.elapsed() < BAD_COPY_FOR)
    }

    /// Source `i` sent a copy of `source_path` that failed the check with id
    /// `expect_id` (`why` says how): it is not asked for that path again for an hour,
    /// while the expectation stays the same.
    pub fn body_mismatch(&self, i: usize, source_path: &str, expect_id: u64, why: &str) {
        let Some(source) = self.source(i) else {
            return;
        };
        source.mismatches.fetch_add(1, Ordering::Relaxed);
        lock(&source.health).note(why.to_owned());
        remember(
            &mut lock(&self.bad),
            (i, source_path.to_owned()),
            (Instant::now(), expect_id),
            |(at, _)| at.elapsed() < BAD_COPY_FOR,
        );
    }

    /// A download from source `i` matched what the file must be.
    pub fn body_verified(&self, i: usize) {
        if let Some(source) = self.source(i) {
            source.verified.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The order to ask the sources in for `ask` (see [`Upstream::fetch`]).
    fn order(&self, ask: &Ask) -> Vec<usize> {
        let broken = lock(&self.broken);
        let broke = |i: usize| match ask.paths.get(i) {
            Some(Some(path)) if !broken.is_empty() => broken
                .get(&(i, path.clone()))
                .is_some_and(|t| t.elapsed() < BROKEN_PATH_FOR),
            _ => false,
        };
        // Each source ranked once; the sort is stable, so the configured order stays
        // among equals.
        let mut ranked: Vec<((bool, bool), usize)> = (0..self.sources.len())
            .map(|i| ((self.sources[i].is_down(), broke(i)), i))
            .collect();
        ranked.sort_by_key(|&(rank, _)| rank);
        ranked.into_iter().map(|(_, i)| i).collect()
    }

    /// The body source `i` was sending for `source_path` broke: that source is asked
    /// last for that path for a while, and one that keeps breaking cools down.
    pub fn body_broke(&self, i: usize, source_path: &str, failure: &Failure) {
        let Some(source) = self.source(i) else {
            return;
        };
        source.body_broke(failure);
        remember(
            &mut lock(&self.broken),
            (i, source_path.to_owned()),
            Instant::now(),
            |at| at.elapsed() < BROKEN_PATH_FOR,
        );
    }

    /// A whole body arrived from source `i` for `source_path`.
    pub fn body_completed(&self, i: usize, source_path: &str) {
        if let Some(source) = self.source(i) {
            lock(&source.health).broken_bodies = 0;
        }
        lock(&self.broken).remove(&(i, source_path.to_owned()));
    }

    /// Asks source `i` (or the ad-hoc origin `i`, see [`Upstream::source`]) for
    /// `source_path`.
    pub fn fetch_from(&self, i: usize, source_path: &str, ask: &Ask) -> Result<Reply, Attempt> {
        let origin = i >= self.sources.len();
        let (source, agent) = self.reach(i, source_path)?;
        let mut url = self.url_of(i, source_path).unwrap_or_default();
        if let Some(q) = ask.query.as_ref().filter(|_| !origin) {
            url.push('?');
            url.push_str(q);
        }
        let started = Instant::now();
        source.requests.fetch_add(1, Ordering::Relaxed);
        let etag = ask.etags.get(i).cloned().flatten();
        let result = self.send(&agent, &url, ask, etag.as_deref());
        let fail = |failure: Failure| {
            debug!("{url}: {failure}");
            source.failed(&failure);
            Attempt {
                url: url.clone(),
                failure,
            }
        };
        let response = result.map_err(|e| fail(Failure::from_ureq(e)))?;
        source.saw_via(
            response
                .headers()
                .get_all("via")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let status = response.status().as_u16();
        debug!(
            "{} {url}: {status} in {}ms",
            if ask.head { "HEAD" } else { "GET" },
            started.elapsed().as_millis()
        );
        match status {
            200 | 206 => {}
            304 if ask.is_conditional() => {
                source.answered(Some(started.elapsed()));
                return Ok(Reply::NotModified { source: i });
            }
            404 | 410 => return Err(fail(Failure::NotFound(status))),
            _ => return Err(fail(Failure::Status(status))),
        }
        let head = Head::of(&response, status, ask).map_err(fail)?;
        if let (Some(announced), Some(expected)) = (head.meta.len, ask.expect_len)
            && announced != expected
        {
            let attempt = fail(Failure::WrongSize {
                announced,
                expected,
            });
            warn!("{url}: {}: skipped", attempt.failure);
            return Err(attempt);
        }
        source.answered(Some(started.elapsed()));
        let redirected = redirected(&response, source_path, origin);
        let body = response.into_body().into_reader();
        Ok(Reply::Fresh(Fetched {
            source: i,
            path: source_path.to_owned(),
            url,
            status,
            meta: head.meta,
            range_start: head.range_start,
            close_delimited: head.close_delimited,
            redirected,
            body: Box::new(Counted {
                inner: body,
                source: source.clone(),
            }),
        }))
    }

    /// Source (or origin) `i` and the agent that reaches it (for an origin asked for
    /// the first time, the agent of its proxy, built now if no source or origin used
    /// it yet).
    fn reach(&self, i: usize, source_path: &str) -> Result<(Arc<Source>, ureq::Agent), Attempt> {
        let fail = |failure| Attempt {
            url: self.url_of(i, source_path).unwrap_or_default(),
            failure,
        };
        let source = self
            .source(i)
            .ok_or_else(|| fail(Failure::Connect("no such origin".into())))?;
        if let Some(agent) = source.agent.get() {
            let agent = agent.clone();
            return Ok((source, agent));
        }
        // An origin is verified against the trust store whatever the sources are.
        let tls = self.agents.trusted().map_err(|e| fail(Failure::Tls(e)))?;
        let agent = self
            .agents
            .get(source.proxy(), &tls)
            .map_err(|e| fail(Failure::Connect(e.to_string())))?;
        let agent = source.agent.get_or_init(|| agent).clone();
        Ok((source, agent))
    }

    fn send(
        &self,
        agent: &ureq::Agent,
        url: &str,
        ask: &Ask,
        etag: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = if ask.head {
            agent.head(url)
        } else {
            agent.get(url)
        };
        if let Some(t) = ask.if_modified_since {
            req = req.header("If-Modified-Since", date::format(t));
        }
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        if let Some(from) = ask.from {
            req = req.header("Range", format!("bytes={from}-"));
        }
        let chain = match (ask.via.as_deref(), self.via_entry()) {
            (Some(theirs), Some(ours)) => Some(format!("{theirs}, {ours}")),
            (theirs, ours) => ours.or(theirs).map(str::to_owned),
        };
        if let Some(chain) = chain {
            req = req.header("Via", chain);
        }
        req.call()
    }
}

/// The URL a response was redirected to, when it is another path than the one asked
/// (`source_path`, encoded for a source; an origin's URL path is already encoded).
fn redirected(
    response: &ureq::http::Response<ureq::Body>,
    source_path: &str,
    origin: bool,
) -> Option<String> {
    let asked = if origin {
        source_path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .to_owned()
    } else {
        path::encode(source_path)
    };
    Some(response.get_uri().path())
        .filter(|p| !p.ends_with(&asked))
        .map(|_| response.get_uri().to_string())
}

/// What the headers of a 200 or 206 say about its body.
struct Head {
    meta: Meta,
    range_start: Option<u64>,
    close_delimited: bool,
}

impl Head {
    /// Reads the headers; refuses an unusable `Content-Range` and a copy older than
    /// [`Ask::not_older_than`].
    fn of(
        response: &ureq::http::Response<ureq::Body>,
        status: u16,
        ask: &Ask,
    ) -> Result<Head, Failure> {
        let headers = response.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let content_length = text("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let chunked =
            text("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let (len, range_start) = if status == 206 {
            match text("content-range").and_then(parse_content_range) {
                Some((start, total)) if Some(start) == ask.from => (total, Some(start)),
                _ => return Err(Failure::Protocol("unusable Content-Range".into())),
            }
        } else {
            (content_length, None)
        };
        let meta = Meta {
            len,
            modified: text("last-modified").and_then(date::parse),
            etag: text("etag").map(str::to_owned),
        };
        let older = match (meta.modified, ask.not_older_than) {
            (Some(theirs), Some(ours)) => date::unix_seconds(theirs) < date::unix_seconds(ours),
            _ => false,
        };
        if older {
            return Err(Failure::Older);
        }
        Ok(Head {
            meta,
            range_start,
            close_delimited: content_length.is_none() && !chunked,
        })
    }
}

/// Whether `failure` says the source has no correct copy of the file (rather than
/// that it could not be asked): the condition for asking [`Ask::fallback`].
fn no_copy(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::NotFound(_)
            | Failure::WrongSize { .. }
            | Failure::BadCopy
            | Failure::CoolingDown(_)
    )
}

/// The body reader, counting bytes for the source's statistics.
struct Counted<R> {
    inner: R,
    source: Arc<Source>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.source.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// `bytes START-END/TOTAL` → `(START, Some(TOTAL))` (`*` total → `None`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    (end >= start && total.is_none_or(|t| end < t)).then_some((start, total))
}

/// Inserts `key` into `map`, which holds at most [`BROKEN_PATHS_MAX`] entries: when it
/// is full, the entries `current` no longer holds for go, and if that is not enough,
/// all of them.
fn remember<V>(
    map: &mut HashMap<(usize, String), V>,
    key: (usize, String),
    value: V,
    current: impl Fn(&V) -> bool,
) {
    if map.len() >= BROKEN_PATHS_MAX {
        map.retain(|_, v| current(v));
        if map.len() >= BROKEN_PATHS_MAX {
            map.clear();
        }
    }
    map.insert(key, value);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, Some(10))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    fn upstream(sources: &[&str]) -> Upstream {
        Upstream::new(&UpstreamConfig {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            user_agent: "t".into(),
            proxy: ProxyRules::default(),
            trust: TrustStore::default(),
        })
        .unwrap()
    }

    #[test]
    fn sources_that_broke_or_are_down_are_asked_last() {
        let upstream = upstream(&["http://a", "http://b", "http://c"]);
        let ask = |paths: [&str; 3]| Ask {
            paths: paths.iter().map(|p| Some(p.to_string())).collect(),
            ..Ask::default()
        };
        assert_eq!(upstream.order(&ask(["/x", "/x", "/x"])), [0, 1, 2]);
        upstream.sources[0].failed(&Failure::Timeout);
        upstream.body_broke(1, "/x", &Failure::Protocol("body ended early".into()));
        assert_eq!(upstream.order(&ask(["/x", "/x", "/x"])), [2, 1, 0]);
        assert_eq!(upstream.order(&ask(["/x", "/y", "/x"])), [1, 2, 0]);
    }

    #[test]
    fn the_via_entry_is_that_of_the_first_name() {
        let upstream = upstream(&["http://a"]);
        assert_eq!((upstream.name(), upstream.via_entry()), (None, None));
        upstream.set_name("c:1");
        upstream.set_name("d:2");
        assert_eq!(upstream.name(), Some("c:1"));
        assert_eq!(upstream.via_entry(), Some(via::entry_for("c:1").as_str()));
    }

    #[test]
    fn remembered_paths_are_capped() {
        let mut map = HashMap::new();
        let current = |v: &bool| *v;
        for n in 0..BROKEN_PATHS_MAX {
            remember(&mut map, (0, n.to_string()), n % 2 == 0, current);
        }
        assert_eq!(map.len(), BROKEN_PATHS_MAX);
        remember(&mut map, (1, "a".into()), true, current);
        assert_eq!(map.len(), BROKEN_PATHS_MAX / 2 + 1, "the stale half went");
        let mut n = 0;
        while map.len() < BROKEN_PATHS_MAX {
            remember(&mut map, (2, n.to_string()), true, current);
            n += 1;
        }
        remember(&mut map, (3, "b".into()), true, current);
        assert_eq!(map.len(), 1, "none stale: all went");
    }

    #[test]
    fn unreachable_sources_cool_down() {
        let s = Source::new("http://a".into(), None, None, None, PEER_UNKNOWN);
        assert!(s.may_be_cache(), "unknown until it answers");
        s.saw_via(["1.1 varnish (Varnish/6.0)"]);
        assert!(!s.may_be_cache());
        s.saw_via(["1.1 r:4000 (package-cache/0.2.0)"]);
        assert!(s.may_be_cache());
        s.failed(&Failure::NotFound(404));
        assert!(!s.is_down());
        assert_eq!(s.failures.load(Ordering::Relaxed), 0);
        s.failed(&Failure::Timeout);
        assert!(s.is_down());
        assert_eq!(
            s.health().last_error.map(|e| e.0).as_deref(),
            Some("timed out")
        );
        s.answered(Some(Duration::from_millis(3)));
        assert!(!s.is_down());
    }
}

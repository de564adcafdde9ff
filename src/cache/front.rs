//! The cache's front door: one question per request ([`Query`]), one answer
//! ([`Answer`]). Everything between (lookup, freshness, revalidation, joining or
//! starting a download, retries, serving stale copies when sources fail, passing
//! through what cannot be stored) is decided here and below, never by the caller.
//!
//! ```text
//! Cache::get ─► only-if-cached? ─► HIT (a fresh file on disk) | NotStored (504)
//!     lookup (entry or an alternate)
//!     ├─ found, fresh ──────────────────────────────► HIT (the file on disk)
//!     ├─ found, must be revalidated ─► obtain (conditional) ─► REVALIDATED | new copy | STALE
//!     ├─ missing, HEAD, nobody downloading ─► ask the sources for headers ─► MISS
//!     └─ missing ─► obtain ─► MISS | COALESCED (a download in progress) | pass-through
//! ```
//!
//! A request that came through another cache ([`Query::via`]) does not wait on a
//! download that is still waiting for a source's headers when that source may be
//! another package-cache: it is answered by a request of its own, passed through and
//! not stored (see `Cache::waits_on_a_cache`).
//!
//! When the application knows what a file must be ([`Query::known`]), a copy on disk
//! that is not is passed over as if missing, every download is checked as it streams,
//! and the file's own URLs are asked when no source has a correct copy (see
//! [`super::verify`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, warn};

use super::content::Content;
use super::fetch::{FetchConfig, Fetcher, Joined, Obtained, Plan};
use super::flight::{FlightInfo, Ticket};
use super::generations::{Copy, Role, Round};
use super::index::Index;
use super::policy::{Freshness, Policy};
use super::store::{Entry, Key, Meta, Store};
use super::upstream::{Ask, Reply, Upstream};
use super::verify::{Expect, Known};
use super::{CacheStatus, Error};

/// What a client wants of a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// Only the headers (`HEAD`): a file nobody has is not downloaded for it.
    pub head: bool,
    /// The first byte the answer needs before it can start (the start of a single
    /// range, `bytes=N-` or `bytes=N-M`; else 0), in bytes.
    pub first_byte: u64,
    /// The answer must know the file's length before it starts (a range or
    /// conditional request): a download without a `Content-Length` is waited for.
    pub length: bool,
    /// Only a stored copy will do (`Cache-Control: only-if-cached`, RFC 9111
    /// §5.2.1.7): a fresh file on disk, or [`Error::NotStored`]; nothing is fetched,
    /// revalidated or joined.
    pub only_if_cached: bool,
}

/// One request's question to the cache.
pub struct Query<'a> {
    /// The entry.
    pub key: Key,
    /// Other entries that may hold the same file (a Python-cache flat copy of a
    /// distfile); served as hits, never written.
    pub alternates: &'a [Key],
    /// What the client wants.
    pub want: Want,
    /// The path to ask each source for, by source index (`None` skips a source).
    /// Called only when a source must be asked.
    pub paths: &'a dyn Fn() -> Vec<Option<String>>,
    /// The client's query string (without `?`). A request with one is passed to the
    /// sources with it and never stored: two queries never share an answer.
    pub query: Option<&'a str>,
    /// The path as the client asked for it, for messages.
    pub label: &'a str,
    /// The `Via` entries the request arrived with (normalised), when it came through
    /// other caches: passed on to the sources before our own entry. A download shared
    /// by several clients carries those of the client that started it.
    pub via: Option<&'a str>,
    /// What the application knows of the file: what it must be, and where else to
    /// get it when no source has it.
    pub known: Option<&'a Known>,
}

impl Query<'_> {
    /// What the file must be, if the application knows.
    pub fn expect(&self) -> Option<&Expect> {
        self.known.and_then(|k| k.expect.as_ref())
    }

    /// The file's own URLs, asked when no source has it: listed here, when a
    /// download is planned, never for a copy served from disk.
    fn fallback(&self) -> Vec<String> {
        self.known.map_or_else(Vec::new, |k| k.fallback.urls())
    }
}

/// The cache's answer.
#[derive(Debug)]
pub enum Answer {
    /// The file (or, for `HEAD`, its headers).
    Found(Found),
    /// It could not be served; the error says why (every source's answer, a broken
    /// download, local trouble).
    Failed(Arc<Error>),
}

/// A file the cache can serve.
#[derive(Debug)]
pub struct Found {
    /// How it was served.
    pub status: CacheStatus,
    /// Length (always known when [`Want::length`] was asked, or when the file is
    /// stored), Last-Modified and the source's ETag.
    pub meta: Meta,
    /// The bytes.
    pub content: Content,
}

/// The cache: store, index, sources, downloads and freshness rules behind one door.
#[derive(Debug)]
pub struct Cache {
    fetcher: Arc<Fetcher>,
    policy: Arc<Policy>,
}

impl Cache {
    /// A cache over `store`, asking `upstream`, with `policy` deciding freshness. The
    /// index starts empty; [`Index::run`] (the culler) fills it.
    pub fn new(store: Store, upstream: Upstream, policy: Policy, config: FetchConfig) -> Cache {
        let index = Index::new(store.root());
        let policy = Arc::new(policy);
        Cache {
            fetcher: Fetcher::new(store, index, Arc::new(upstream), policy.clone(), config),
            policy,
        }
    }

    /// Answers `query`: see the module docs for the decisions on the way.
    pub fn get(&self, query: &Query<'_>) -> Answer {
        if query.want.only_if_cached {
            return self.only_stored(query);
        }
        if query.query.is_some() {
            // One answer per query string, never shared: passed through, not stored
            // (nor recorded, so the file's role does not matter).
            return self.direct(query, &Role::Immutable, query.want.head);
        }
        // Classified once per request; every decision below takes it.
        let role = self.policy.role(&query.key);
        let entry = match self.lookup(query) {
            Ok(e) => e,
            Err(e) => {
                warn!("{e}");
                return Answer::Failed(Arc::new(e));
            }
        };
        match entry {
            Some(entry) => match self.freshness(&query.key, &role, &entry) {
                Freshness::Fresh => self.stored(&query.key, &role, entry, CacheStatus::Hit),
                Freshness::Revalidate => self.revalidate(query, &role, entry),
            },
            None => match self.policy.missing(&query.key) {
                Some(e) => Answer::Failed(e),
                None if query.want.head && self.fetcher.flights().get(&query.key).is_none() => {
                    self.head(query, &role)
                }
                None => self.miss(query, &role),
            },
        }
    }

    /// The complete file for `query`: its entry, or one of its alternates (a copy
    /// that is not what the file must be is passed over).
    fn lookup(&self, query: &Query<'_>) -> Result<Option<Entry>, Error> {
        let store = self.fetcher.store();
        for key in std::iter::once(&query.key).chain(query.alternates) {
            if let Some(e) = store.lookup(key)?
                && self.fetcher.acceptable(&e, query.expect())
            {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Whether the stored `entry` of `key` (of role `role`) may be served as it is:
    /// the policy decides, given what is on disk (a member's anchors, unless this
    /// process is downloading them: a copy on its way is not another process's).
    fn freshness(&self, key: &Key, role: &Role, entry: &Entry) -> Freshness {
        // One stat per anchor: its length and date are all a copy on disk tells.
        let disk = |k: &Key| -> Option<Copy> {
            if self.fetcher.flights().get(k).is_some() {
                return None;
            }
            let meta = std::fs::metadata(self.fetcher.store().path(k)).ok()?;
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            meta.is_file().then(|| Copy::stored(meta.len(), modified))
        };
        self.policy.freshness(key, role, &Copy::from(entry), &disk)
    }

    /// The generation round a request for `key` (of role `role`) asks the sources in.
    fn round(&self, key: &Key, role: &Role) -> Round {
        let joined = self.fetcher.flights().get(key).is_some();
        self.policy.round(role, joined)
    }

    /// `only-if-cached`: a fresh complete file, or `NotStored`. A copy that would have
    /// to be revalidated is not fresh; a download in progress is not stored yet.
    fn only_stored(&self, query: &Query<'_>) -> Answer {
        let entry = match query.query {
            Some(_) => Ok(None),
            None => self.lookup(query),
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                warn!("{e}");
                return Answer::Failed(Arc::new(e));
            }
        };
        if let Some(entry) = entry {
            let role = self.policy.role(&query.key);
            if self.freshness(&query.key, &role, &entry) == Freshness::Fresh {
                return self.stored(&query.key, &role, entry, CacheStatus::Hit);
            }
        }
        Answer::Failed(Arc::new(Error::NotStored {
            path: query.label.to_owned(),
        }))
    }

    /// Whether `query` came through other caches and would join a download of ours
    /// that is still waiting for a source's headers, from sources that may be
    /// package-caches themselves. That download's request carries the `Via` entries of
    /// the client that started it, not this one's: if it is on its way to one of the
    /// caches this request came through, that cache is waiting on us while we wait on
    /// it (two caches that are each other's source, asked for the same file at the
    /// same moment), and nobody would notice the loop. So such a request is answered
    /// with a request of its own, carrying its own entries: a loop comes back as `508`
    /// at once, anything else streams through without being stored. Downloads whose
    /// bytes are flowing, and sources known to be origins, are joined as usual.
    fn waits_on_a_cache(&self, query: &Query<'_>) -> bool {
        query.via.is_some()
            && self
                .fetcher
                .flights()
                .get(&query.key)
                .is_some_and(|f| f.is_connecting())
            && self.upstream().may_reach_cache(&(query.paths)())
    }

    /// Downloads a file we do not have (or joins its download).
    fn miss(&self, query: &Query<'_>, role: &Role) -> Answer {
        if self.waits_on_a_cache(query) {
            debug!(
                "{}: a download from a cache is waiting for headers; asking on our own",
                query.label
            );
            return self.direct(query, role, query.want.head);
        }
        let round = self.round(&query.key, role);
        let plan = self.plan(query, None);
        let obtained = self.fetcher.obtain(&plan, query.want.first_byte);
        self.settle(query, role, None, obtained, round)
    }

    /// Asks the sources whether our copy of a file that changes in place is current.
    fn revalidate(&self, query: &Query<'_>, role: &Role, entry: Entry) -> Answer {
        if self.waits_on_a_cache(query) {
            debug!(
                "{}: a revalidation from a cache is waiting for headers; asking on our own",
                query.label
            );
            return self.direct(query, role, query.want.head);
        }
        let round = self.round(&query.key, role);
        let plan = self.plan(query, Some(&entry));
        let obtained = self.fetcher.obtain(&plan, query.want.first_byte);
        self.settle(query, role, Some(entry), obtained, round)
    }

    /// Turns how a download went into the answer, given the copy we hold (if any):
    /// new bytes stream; a 304 serves ours; a failure serves ours as stale (RFC 9111
    /// stale-if-error) or, with nothing held, is the answer (and, when every source
    /// said it has no such file, is remembered for the negative TTL). `round` is the
    /// generation the sources were asked in; `role` the file's.
    fn settle(
        &self,
        query: &Query<'_>,
        role: &Role,
        held: Option<Entry>,
        obtained: Obtained,
        round: Round,
    ) -> Answer {
        let key = &query.key;
        match (obtained, held) {
            (Obtained::Streaming(ticket, meta, joined), _) => {
                self.fetched(key, role, &ticket, &meta, round);
                self.streaming(query, ticket, meta, joined)
            }
            (Obtained::Far(ticket, meta, joined), _) => {
                self.fetched(key, role, &ticket, &meta, round);
                self.ranged(query, ticket, meta, joined)
            }
            (Obtained::NotModified, Some(entry)) => {
                self.policy.checked(key, role, Copy::from(&entry), round);
                self.stored(&query.key, role, entry, CacheStatus::Revalidated)
            }
            // Joined another client's revalidation of a copy that is gone now.
            (Obtained::NotModified, None) => match self.lookup(query) {
                Ok(Some(entry)) => self.stored(&query.key, role, entry, CacheStatus::Hit),
                _ => failed(query, "the copy a source confirmed is gone".into()),
            },
            (Obtained::NoStore(reason), None) => {
                debug!("not storing {}: {reason}", query.label);
                self.direct(query, role, false)
            }
            (failure, Some(entry)) => {
                let reason = match failure {
                    Obtained::Failed(e) => e.to_string(),
                    Obtained::NoStore(_) => "the new copy cannot be stored".into(),
                    Obtained::Broken(reason) => reason,
                    _ => String::new(),
                };
                if self.policy.newest(key) > Some(entry.modified) {
                    // A copy older than one served before is never served again.
                    return failed(
                        query,
                        format!("{reason}; the copy held is older than one served before"),
                    );
                }
                warn!("serving a stale copy of {}: {reason}", query.label);
                self.policy.kept(key, role, Copy::from(&entry));
                self.stored(&query.key, role, entry, CacheStatus::Stale)
            }
            // (A download that found the file nowhere has told the negative cache.)
            (Obtained::Failed(e), None) => Answer::Failed(e),
            (Obtained::Broken(reason), None) => failed(query, reason),
        }
    }

    /// Records a new copy for the freshness rules: when, in which generation, and
    /// which source's ETag.
    fn fetched(&self, key: &Key, role: &Role, ticket: &Ticket, meta: &Meta, round: Round) {
        let source = ticket.flight().origin().filter(|o| o.led).map(|o| o.source);
        self.policy.fetched(key, role, source, meta, round);
    }

    /// Serves a complete file from disk, recording the use.
    fn stored(&self, key: &Key, role: &Role, entry: Entry, status: CacheStatus) -> Answer {
        self.policy.served(key, role, entry.modified);
        let busy = self.fetcher.index().used(&entry);
        Answer::Found(Found {
            status,
            meta: Meta::of_stored(entry.len, entry.modified),
            content: Content::stored(entry.file, busy),
        })
    }

    /// Serves from a download in progress (or just finished).
    fn streaming(&self, query: &Query<'_>, ticket: Ticket, meta: Meta, joined: Joined) -> Answer {
        let status = match joined {
            _ if ticket.flight().from_disk() => CacheStatus::Hit,
            Joined::AfterEnd => CacheStatus::Hit,
            Joined::Started => CacheStatus::Miss,
            Joined::InProgress => CacheStatus::Coalesced,
        };
        let upstream = self.fetcher.upstream().clone();
        Answer::Found(Found {
            status,
            meta,
            content: Content::download(ticket, upstream, query.expect().cloned()),
        })
    }

    /// The client's first byte is far ahead of the shared download (a resumed
    /// download of a cold file): ask the download's source for the rest with a range
    /// request of its own, while the shared download goes on (the ticket stays
    /// attached, so it is not abandoned). If that fails, follow the download. A file
    /// that must be checked always follows the download: a range on its own could not
    /// be checked.
    fn ranged(&self, query: &Query<'_>, ticket: Ticket, meta: Meta, joined: Joined) -> Answer {
        let first = query.want.first_byte;
        if let Some(origin) = ticket
            .flight()
            .origin()
            .filter(|_| query.expect().is_none())
        {
            let ask = Ask {
                from: Some(first),
                via: query.via.map(str::to_owned),
                ..Ask::default()
            };
            match self
                .upstream()
                .fetch_from(origin.source, &origin.path, &ask)
            {
                Ok(Reply::Fresh(f))
                    if f.range_start == Some(first)
                        && f.meta.len == meta.len
                        && (f.meta.modified == meta.modified || f.meta.modified.is_none()) =>
                {
                    debug!(
                        "{}: from byte {first} with a range request of its own",
                        query.label
                    );
                    return Answer::Found(Found {
                        status: CacheStatus::Miss,
                        meta,
                        content: Content::ranged(f.body, first, ticket),
                    });
                }
                Ok(_) => debug!(
                    "{}: the source did not answer the range for byte {first}; following the download",
                    query.label
                ),
                Err(a) => debug!("{}: {} {}", query.label, a.url, a.failure),
            }
        }
        let (written, _) = ticket.flight().wait_beyond_for(first, Duration::ZERO);
        debug!(
            "{}: waiting for byte {first} of the download ({written} so far)",
            query.label
        );
        self.streaming(query, ticket, meta, joined)
    }

    /// `HEAD` of a file nobody is downloading: ask the sources, store nothing. A
    /// source that refuses `HEAD` (405, 501) gets a `GET`, whose headers answer (and
    /// whose download may as well start).
    fn head(&self, query: &Query<'_>, role: &Role) -> Answer {
        match self.direct(query, role, true) {
            Answer::Failed(e) if e.method_refused() => self.miss(query, role),
            Answer::Failed(e) => {
                if e.nowhere() {
                    self.policy.remember_missing(&query.key, e.clone());
                }
                Answer::Failed(e)
            }
            found => found,
        }
    }

    /// Asks the sources once (with the client's query string, if any) and answers
    /// with their response, without storing it (`role`: the file's).
    fn direct(&self, query: &Query<'_>, role: &Role, head: bool) -> Answer {
        let ask = Ask {
            head,
            ..self.base_ask(query)
        };
        match self.fetcher.upstream().fetch(query.label, &ask) {
            Ok(Reply::Fresh(mut f)) => {
                if let (None, Some(modified)) = (query.query, f.meta.modified) {
                    self.policy.served(&query.key, role, modified);
                }
                if let Some(expect) = query.expect().filter(|_| !head) {
                    // Not stored, but checked (and its last byte held) as a download is.
                    super::verify::guard(&mut f, expect);
                }
                Answer::Found(Found {
                    status: CacheStatus::Miss,
                    meta: f.meta,
                    content: if head {
                        Content::headers()
                    } else {
                        Content::source_body(f.body)
                    },
                })
            }
            Ok(Reply::NotModified { .. }) => failed(
                query,
                "a source answered 304 to an unconditional request".into(),
            ),
            Err(e) => Answer::Failed(Arc::new(e)),
        }
    }

    /// What any request for `query` asks the sources: the paths, the client's `Via`,
    /// what the file must be. With a query string the answer is another resource,
    /// and the string is for the sources only; without one, the file's own URLs are
    /// asked when no source has it, and a file that changes in place is never taken
    /// older than one served before.
    fn base_ask(&self, query: &Query<'_>) -> Ask {
        let plain = query.query.is_none();
        Ask {
            paths: (query.paths)(),
            query: query.query.map(str::to_owned),
            via: query.via.map(str::to_owned),
            not_older_than: if plain {
                self.policy.newest(&query.key)
            } else {
                None
            },
            expect_len: query.expect().map(|e| e.size),
            expect_id: query.expect().map(|e| e.id),
            fallback: if plain { query.fallback() } else { Vec::new() },
            ..Ask::default()
        }
    }

    /// The download of `query`'s entry; conditional on the copy we hold (its
    /// Last-Modified, and each source's own ETag) when revalidating, and then never
    /// older than that copy.
    fn plan(&self, query: &Query<'_>, held: Option<&Entry>) -> Plan {
        let key = &query.key;
        let etags = match held {
            Some(e) => self
                .policy
                .etags(key, self.upstream().sources().len(), &Copy::from(e)),
            None => Vec::new(),
        };
        let held: Option<SystemTime> = held.map(|e| e.modified);
        let base = self.base_ask(query);
        Plan {
            key: key.clone(),
            ask: Ask {
                if_modified_since: held,
                etags,
                not_older_than: held.max(base.not_older_than),
                ..base
            },
            label: query.label.to_owned(),
            expect: query.expect().cloned(),
        }
    }

    /// Forgets that no source had `key` (the caller learned where to find it).
    pub fn forget_missing(&self, key: &Key) {
        self.policy.forget_missing(key);
    }

    /// Forgets every file no source had (the caller learned more about all of them).
    pub fn forget_all_missing(&self) {
        self.policy.forget_all_missing();
    }

    /// The checks of stored files against what they must be.
    pub fn checks(&self) -> &super::verify::StoredChecks {
        self.fetcher.checks()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.fetcher.store()
    }

    /// The complete files by last use, and the size cap.
    pub fn index(&self) -> &Arc<Index> {
        self.fetcher.index()
    }

    /// The sources.
    pub fn upstream(&self) -> &Arc<Upstream> {
        self.fetcher.upstream()
    }

    /// Counters about downloads.
    pub fn stats(&self) -> &super::fetch::FetchStats {
        self.fetcher.stats()
    }

    /// Snapshots of the downloads in progress in this process.
    pub fn downloads(&self) -> Vec<FlightInfo> {
        self.fetcher.flights().list()
    }

    /// How many downloads are in progress in this process.
    pub fn downloads_in_progress(&self) -> usize {
        self.fetcher.flights().len()
    }
}

/// A download that broke before the client got anything.
fn failed(query: &Query<'_>, reason: String) -> Answer {
    Answer::Failed(Arc::new(Error::Interrupted {
        path: query.label.to_owned(),
        reason,
    }))
}

#[cfg(test)]
mod tests {
    //! The answer selection, without a server: a store in a temporary directory and a
    //! source nobody listens on (every request to it is refused at once).
    use super::*;
    use crate::cache::Failure;
    use crate::cache::proxy::ProxyRules;
    use crate::cache::upstream::UpstreamConfig;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn cache(name: &str, ttl: Duration) -> Cache {
        let dir = std::env::temp_dir().join(format!("pc-front-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let upstream = Upstream::new(&UpstreamConfig {
            // Port 1 on loopback: nothing listens, so a request fails at once.
            sources: vec!["http://127.0.0.1:1".into()],
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(2),
            user_agent: "test".into(),
            proxy: ProxyRules::default(),
            trust: Default::default(),
        })
        .unwrap();
        let policy = Policy::new(&["*.idx".into()], ttl, Duration::ZERO).unwrap();
        Cache::new(store, upstream, policy, FetchConfig::default())
    }

    fn put(cache: &Cache, path: &str, bytes: &[u8]) {
        let file = cache.store().root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }

    fn ask(cache: &Cache, path: &str, alternates: &[Key], want: Want) -> Answer {
        let paths = || vec![Some(path.to_owned())];
        cache.get(&Query {
            key: Key::new(path).unwrap(),
            alternates,
            want,
            paths: &paths,
            query: None,
            label: path,
            via: None,
            known: None,
        })
    }

    fn requests(cache: &Cache) -> u64 {
        cache.upstream().sources()[0]
            .requests
            .load(Ordering::Relaxed)
    }

    fn status(answer: &Answer) -> Option<CacheStatus> {
        match answer {
            Answer::Found(f) => Some(f.status),
            Answer::Failed(_) => None,
        }
    }

    #[test]
    fn a_stored_immutable_file_is_a_hit_without_asking() {
        let c = cache("hit", Duration::from_secs(60));
        put(&c, "/d/a.tar", b"hello");
        let answer = ask(&c, "/d/a.tar", &[], Want::default());
        assert_eq!(status(&answer), Some(CacheStatus::Hit));
        let Answer::Found(found) = answer else {
            unreachable!()
        };
        assert_eq!(found.meta.len, Some(5));
        assert_eq!(requests(&c), 0);
    }

    #[test]
    fn an_alternate_copy_is_a_hit() {
        let c = cache("alt", Duration::from_secs(60));
        put(&c, "/distfiles/a.tar", b"flat copy");
        let alt = [Key::new("/distfiles/a.tar").unwrap()];
        let answer = ask(&c, "/distfiles/00/a.tar", &alt, Want::default());
        assert_eq!(status(&answer), Some(CacheStatus::Hit));
        assert_eq!(requests(&c), 0);
    }

    #[test]
    fn a_mutable_file_past_its_ttl_is_served_stale_when_every_source_fails() {
        let c = cache("stale", Duration::ZERO);
        put(&c, "/r/Packages.idx", b"index");
        let answer = ask(&c, "/r/Packages.idx", &[], Want::default());
        assert_eq!(status(&answer), Some(CacheStatus::Stale));
        assert_eq!(requests(&c), 1, "one conditional request");
    }

    #[test]
    fn a_mutable_file_within_its_ttl_is_a_hit_after_a_check() {
        let c = cache("ttl", Duration::from_secs(60));
        put(&c, "/r/Packages.idx", b"index");
        // Never checked by this process: checked once (stale, since it fails), then
        // trusted for the TTL.
        let first = ask(&c, "/r/Packages.idx", &[], Want::default());
        assert_eq!(status(&first), Some(CacheStatus::Stale));
        let second = ask(&c, "/r/Packages.idx", &[], Want::default());
        assert_eq!(status(&second), Some(CacheStatus::Hit));
        assert_eq!(requests(&c), 1);
    }

    #[test]
    fn a_missing_file_fails_with_every_sources_answer() {
        let c = cache("miss", Duration::from_secs(60));
        for want in [
            Want::default(),
            Want {
                head: true,
                ..Want::default()
            },
        ] {
            let Answer::Failed(e) = ask(&c, "/d/missing.tar", &[], want) else {
                panic!("found a file nobody has")
            };
            let Error::Upstream { attempts, .. } = &*e else {
                panic!("{e}")
            };
            assert_eq!(attempts.len(), 1);
            assert!(matches!(attempts[0].failure, Failure::Connect(_)), "{e}");
        }
        assert!(
            c.store()
                .lookup(&Key::new("/d/missing.tar").unwrap())
                .unwrap()
                .is_none()
        );
    }
}

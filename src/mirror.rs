//! The package-cache handler: answers mirror requests from the store, or through a
//! download shared with every other client asking for the same file.
//!
//! Every answer carries `X-Cache`:
//! - `HIT`: served from a complete file on disk, without asking anyone;
//! - `MISS`: this request started the download (or, when nothing can be stored,
//!   fetched the file straight through);
//! - `COALESCED`: joined a download already in progress;
//! - `REVALIDATED`: a file that changes in place was confirmed current by a source
//!   (one conditional request, shared by every client asking meanwhile);
//! - `STALE`: such a file could not be confirmed because every source failed, so the
//!   copy we have was served (and a warning logged).
//!
//! Requests below `/distfiles/` are mapped to one entry per file whatever their form
//! (see [`crate::gentoo::distfiles`]); `/distfiles/layout.conf` always answers 200.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::SystemTime;

use log::{debug, warn};

use crate::cache::Error;
use crate::cache::fetch::{Fetcher, Plan};
use crate::cache::flight::{Flight, Phase, Ticket};
use crate::cache::policy::Policy;
use crate::cache::store::{Entry, Key, Meta};
use crate::cache::tee::GrowingReader;
use crate::cache::upstream::{Ask, Reply};
use crate::gentoo::distfiles::{self, SourceLayouts};
use crate::gentoo::layout;
use crate::http::conditional::{self, Representation};
use crate::http::range::{self, ByteRange};
use crate::http::{Body, Handler, Method, Request, Response, date, mime};

/// How many times a request starts over when a download it was waiting for vanished
/// before sending anything (another process's leader died, a download was abandoned).
const RETRIES: usize = 3;

/// Largest `layout.conf` we read.
const MAX_LAYOUT_CONF: u64 = 64 * 1024;

/// The mirror handler.
pub struct Mirror {
    fetcher: Arc<Fetcher>,
    policy: Arc<Policy>,
    layouts: SourceLayouts,
}

/// A request resolved to a store entry and the paths to ask the sources for.
struct Target {
    key: Key,
    /// Other places an older cache may hold the same file (served as hits).
    alternates: Vec<Key>,
    /// For a distfile, its name: each source is asked for it in its own layout
    /// (learned only when a source must be asked). Otherwise every source is asked for
    /// the requested path.
    distfile: Option<String>,
    /// The path as the client asked, for messages.
    label: String,
}

/// How a download went, as far as one client is concerned.
enum Outcome {
    /// Bytes are coming: serve them from the flight.
    Streaming(Ticket, Meta, &'static str),
    /// The source confirmed our copy.
    NotModified,
    /// No source could provide it.
    Failed(Arc<Error>),
    /// Nothing can be stored; fetch for this client alone.
    NoStore,
    /// It kept breaking before this client got anything.
    Broken(String),
}

impl Mirror {
    /// A mirror over `fetcher`'s store and sources, with `policy` deciding freshness.
    pub fn new(fetcher: Arc<Fetcher>, policy: Arc<Policy>) -> Mirror {
        let layouts = SourceLayouts::new(fetcher.upstream().clone());
        Mirror {
            fetcher,
            policy,
            layouts,
        }
    }

    /// The fetcher (store, sources, downloads).
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
    }

    /// The path to ask each source for.
    fn source_paths(&self, target: &Target) -> Vec<Option<String>> {
        match &target.distfile {
            Some(name) => self.layouts.paths(name),
            None => vec![Some(target.label.clone()); self.fetcher.upstream().sources().len()],
        }
    }

    /// Maps a request path to its entry, or the response refusing it.
    fn target(&self, path: &str) -> Result<Target, Response> {
        let refuse = |e: Error| error_response(&e);
        match distfiles::classify(path) {
            distfiles::Request::WrongDirs => Err(Response::error(404)),
            distfiles::Request::Distfile { name, .. } => {
                let canonical = distfiles::store_path(name);
                let key = Key::new(&canonical).map_err(refuse)?;
                let mut alternates = Vec::new();
                for alt in [format!("{}{name}", distfiles::PREFIX), path.to_owned()] {
                    if alt != canonical {
                        alternates.push(Key::new(&alt).map_err(refuse)?);
                    }
                }
                Ok(Target {
                    key,
                    alternates,
                    distfile: Some(name.to_owned()),
                    label: path.to_owned(),
                })
            }
            distfiles::Request::LayoutConf | distfiles::Request::Other => Ok(Target {
                key: Key::new(path).map_err(refuse)?,
                alternates: Vec::new(),
                distfile: None,
                label: path.to_owned(),
            }),
        }
    }

    /// The complete file for `target`: its entry, or one of its alternates.
    fn lookup(&self, target: &Target) -> Result<Option<Entry>, Error> {
        let store = self.fetcher.store();
        if let Some(e) = store.lookup(&target.key)? {
            return Ok(Some(e));
        }
        for alt in &target.alternates {
            if let Some(e) = store.lookup(alt)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Serves a complete file from disk.
    fn serve_entry(&self, req: &Request, key: &Key, entry: Entry, tag: &str) -> Response {
        let meta = Meta {
            len: Some(entry.len),
            modified: Some(entry.modified),
            etag: None,
        };
        let rep = representation(key, &meta, entry.len);
        let busy = self.fetcher.store().index().used(&entry);
        let file = entry.file;
        conditional::answer(req, &rep, |offset, len| Body::File { file, offset, len })
            .with_header("X-Cache", tag)
            .hold(busy)
    }

    /// Runs or joins the download of `target` (conditional on `validators` when
    /// revalidating), starting over when it vanished before this client got anything.
    /// `first` is the first byte the client needs (the start of its range).
    fn download(
        &self,
        target: &Target,
        validators: Option<(SystemTime, Option<String>)>,
        first: u64,
    ) -> Outcome {
        let mut last_break = String::from("the download keeps failing");
        for _ in 0..RETRIES {
            let (since, etag) = validators.clone().unzip();
            let plan = Plan {
                key: target.key.clone(),
                ask: Ask {
                    paths: self.source_paths(target),
                    if_modified_since: since,
                    if_none_match: etag.flatten(),
                    ..Ask::default()
                },
                label: target.label.clone(),
            };
            let (ticket, started) = match self.fetcher.join(plan) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::Failed(Arc::new(Error::Interrupted {
                        path: target.label.clone(),
                        reason: format!("cannot start a download: {e}"),
                    }));
                }
            };
            let tag = |flight: &Flight| {
                if flight.from_disk() {
                    "HIT"
                } else if started {
                    "MISS"
                } else {
                    "COALESCED"
                }
            };
            match ticket.flight().wait_for_headers() {
                Phase::Streaming(meta) | Phase::Complete(meta) => {
                    // The response head leaves with the first body byte anyway: wait
                    // for it, so that a download that breaks before this client's
                    // first byte is retried (and, if it keeps breaking, answered with
                    // a 502) instead of closing the connection without a response.
                    let (written, phase, _) = ticket.flight().wait_beyond(first);
                    match phase {
                        Phase::Broken {
                            reason,
                            disk_at: None,
                        } if written <= first => {
                            last_break = reason;
                            continue;
                        }
                        _ => {
                            let tag = tag(ticket.flight());
                            return Outcome::Streaming(ticket, meta, tag);
                        }
                    }
                }
                Phase::NotModified => return Outcome::NotModified,
                Phase::Failed(e) => return Outcome::Failed(e),
                Phase::NoStore(reason) => {
                    debug!("not storing {}: {reason}", target.label);
                    return Outcome::NoStore;
                }
                Phase::Broken { reason, .. } => last_break = reason,
                Phase::LeaderGone | Phase::Connecting => {}
            }
        }
        Outcome::Broken(last_break)
    }

    /// Fetches (or joins the fetch of) a file we do not have.
    fn miss(&self, req: &Request, target: &Target) -> Response {
        if req.is_head() && self.fetcher.flights().get(&target.key).is_none() {
            return self.head_upstream(target);
        }
        match self.download(target, None, first_byte(req)) {
            Outcome::Streaming(ticket, meta, tag) => {
                self.policy.checked(&target.key, meta.etag.clone());
                self.serve_flight(req, &target.key, ticket, meta, tag)
            }
            Outcome::NotModified => match self.lookup(target) {
                Ok(Some(entry)) => self.serve_entry(req, &target.key, entry, "HIT"),
                _ => Response::error(502),
            },
            Outcome::Failed(e) => error_response(&e),
            Outcome::NoStore => self.pass_through(req, target),
            Outcome::Broken(reason) => {
                Response::text(502, format!("502 Bad Gateway: {}: {reason}", target.label))
            }
        }
    }

    /// Asks the source whether our copy of a file that changes in place is current;
    /// serves the new one, ours, or (if every source failed) ours as stale.
    fn revalidate(&self, req: &Request, target: &Target, entry: Entry) -> Response {
        let validators = Some((entry.modified, self.policy.etag(&target.key)));
        let stale = |reason: &str| {
            warn!("serving a stale copy of {}: {reason}", target.label);
            self.policy.checked(&target.key, None);
        };
        match self.download(target, validators, first_byte(req)) {
            Outcome::Streaming(ticket, meta, tag) => {
                self.policy.checked(&target.key, meta.etag.clone());
                self.serve_flight(req, &target.key, ticket, meta, tag)
            }
            Outcome::NotModified => {
                self.policy.checked(&target.key, None);
                self.serve_entry(req, &target.key, entry, "REVALIDATED")
            }
            Outcome::Failed(e) => {
                stale(&e.to_string());
                self.serve_entry(req, &target.key, entry, "STALE")
            }
            Outcome::NoStore => {
                stale("the new copy cannot be stored");
                self.serve_entry(req, &target.key, entry, "STALE")
            }
            Outcome::Broken(reason) => {
                stale(&reason);
                self.serve_entry(req, &target.key, entry, "STALE")
            }
        }
    }

    /// Answers from a download in progress (or just finished).
    fn serve_flight(
        &self,
        req: &Request,
        key: &Key,
        ticket: Ticket,
        meta: Meta,
        tag: &str,
    ) -> Response {
        let upstream = self.fetcher.upstream().clone();
        let Some(len) = meta.len else {
            return self.serve_unsized(req, key, ticket, &meta, tag);
        };
        let rep = representation(key, &meta, len);
        conditional::answer(req, &rep, move |start, n| Body::Reader {
            reader: Box::new(GrowingReader::new(ticket, start, Some(start + n), upstream)),
            len: Some(n),
        })
        .with_header("X-Cache", tag)
    }

    /// The upstream did not announce a length. Plain requests stream as it comes
    /// (chunked); conditional and range requests wait for the end, when it is known.
    fn serve_unsized(
        &self,
        req: &Request,
        key: &Key,
        ticket: Ticket,
        meta: &Meta,
        tag: &str,
    ) -> Response {
        let conditional = ["Range", "If-Modified-Since", "If-None-Match"]
            .iter()
            .any(|h| req.header(h).is_some());
        if !conditional {
            let upstream = self.fetcher.upstream().clone();
            let mut resp = Response::reader(GrowingReader::new(ticket, 0, None, upstream), None)
                .with_header("Content-Type", mime::guess(key.file_name()))
                .with_header("X-Cache", tag);
            if let Some(t) = meta.modified {
                resp = resp.with_header("Last-Modified", date::format(t));
            }
            return resp;
        }
        let flight = ticket.flight().clone();
        let (_, phase, _) = flight.wait_beyond(u64::MAX);
        match phase {
            Phase::Complete(meta) => self.serve_flight(req, key, ticket, meta, tag),
            _ => Response::text(502, "502 Bad Gateway: the download broke"),
        }
    }

    /// `HEAD` of a file nobody is downloading: ask the sources, store nothing.
    fn head_upstream(&self, target: &Target) -> Response {
        let ask = Ask {
            head: true,
            paths: self.source_paths(target),
            ..Ask::default()
        };
        match self.fetcher.upstream().fetch(&target.label, &ask) {
            Ok(Reply::Fresh(f)) => {
                let mut resp = Response::new(200)
                    .with_header("Content-Type", mime::guess(target.key.file_name()))
                    .with_header("Accept-Ranges", "bytes")
                    .with_header("X-Cache", "MISS")
                    .with_body(Body::HeadOnly(f.meta.len));
                if let Some(t) = f.meta.modified {
                    resp = resp.with_header("Last-Modified", date::format(t));
                }
                resp
            }
            Ok(Reply::NotModified { .. }) => Response::new(304),
            Err(e) => error_response(&e),
        }
    }

    /// Nothing can be stored for this file: stream it straight from the sources.
    fn pass_through(&self, req: &Request, target: &Target) -> Response {
        let ask = Ask {
            paths: self.source_paths(target),
            ..Ask::default()
        };
        let fetched = match self.fetcher.upstream().fetch(&target.label, &ask) {
            Ok(Reply::Fresh(f)) => f,
            Ok(Reply::NotModified { .. }) => return Response::error(502),
            Err(e) => return error_response(&e),
        };
        let Some(len) = fetched.meta.len else {
            return Response::reader(fetched.body, None)
                .with_header("Content-Type", mime::guess(target.key.file_name()))
                .with_header("X-Cache", "MISS");
        };
        let rep = representation(&target.key, &fetched.meta, len);
        let body = fetched.body;
        conditional::answer(req, &rep, move |start, n| Body::Reader {
            reader: Box::new(Window::new(body, start, n)),
            len: Some(n),
        })
        .with_header("X-Cache", "MISS")
    }

    /// `GET /distfiles/layout.conf`: always 200. The sources' layout.conf when one
    /// has it and a client reading it will ask for paths we can map; ours otherwise.
    fn layout_conf(&self, req: &Request, target: &Target) -> Response {
        if let Some((bytes, meta, tag)) = self.small_file(target) {
            let text = String::from_utf8_lossy(&bytes);
            match layout::parse_structure(&text) {
                Ok(s) if layout::usable_by_us(&s) => {
                    let rep = representation(&target.key, &meta, bytes.len() as u64);
                    return conditional::answer(req, &rep, |start, n| {
                        Body::Bytes(bytes[start as usize..(start + n) as usize].to_vec())
                    })
                    .with_header("X-Cache", tag);
                }
                Ok(s) => debug!(
                    "the sources' layout.conf starts with {:?}; serving ours",
                    s.first()
                ),
                Err(e) => debug!("the sources' layout.conf is unreadable ({e}); serving ours"),
            }
        }
        let ours = layout::render(&[layout::gentoo(), layout::Layout::Flat]);
        Response::bytes("text/plain; charset=utf-8", ours).with_header("X-Cache", "HIT")
    }

    /// The whole content of a small file (fresh, confirmed or stale), if we can get it.
    fn small_file(&self, target: &Target) -> Option<(Vec<u8>, Meta, &'static str)> {
        let read_entry = |e: Entry| {
            let mut bytes = Vec::new();
            (&e.file)
                .take(MAX_LAYOUT_CONF)
                .read_to_end(&mut bytes)
                .ok()?;
            let meta = Meta {
                len: Some(e.len),
                modified: Some(e.modified),
                etag: None,
            };
            Some((bytes, meta))
        };
        let entry = self.lookup(target).ok().flatten();
        let fresh = entry.is_some() && !self.policy.needs_check(&target.key);
        if fresh {
            return entry.and_then(read_entry).map(|(b, m)| (b, m, "HIT"));
        }
        let validators = entry
            .as_ref()
            .map(|e| (e.modified, self.policy.etag(&target.key)));
        match self.download(target, validators, 0) {
            Outcome::Streaming(ticket, meta, tag) => {
                self.policy.checked(&target.key, meta.etag.clone());
                let upstream = self.fetcher.upstream().clone();
                let mut bytes = Vec::new();
                GrowingReader::new(ticket, 0, meta.len, upstream)
                    .take(MAX_LAYOUT_CONF)
                    .read_to_end(&mut bytes)
                    .ok()?;
                Some((bytes, meta, tag))
            }
            Outcome::NotModified => {
                self.policy.checked(&target.key, None);
                entry
                    .and_then(read_entry)
                    .map(|(b, m)| (b, m, "REVALIDATED"))
            }
            _ => {
                if entry.is_some() {
                    self.policy.checked(&target.key, None);
                }
                entry.and_then(read_entry).map(|(b, m)| (b, m, "STALE"))
            }
        }
    }
}

impl Handler for Mirror {
    fn handle(&self, req: &mut Request) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        let path = req.path_info().to_owned();
        let target = match self.target(&path) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        if path == distfiles::LAYOUT_CONF {
            return self.layout_conf(req, &target);
        }
        match self.lookup(&target) {
            Ok(Some(entry)) if self.policy.needs_check(&target.key) => {
                self.revalidate(req, &target, entry)
            }
            Ok(Some(entry)) => self.serve_entry(req, &target.key, entry, "HIT"),
            Ok(None) => self.miss(req, &target),
            Err(e) => {
                warn!("{e}");
                error_response(&e)
            }
        }
    }
}

/// The representation of an entry: length, Last-Modified, an nginx-style ETag
/// (`"mtime-len"` in hex) and a type guessed from the name.
fn representation(key: &Key, meta: &Meta, len: u64) -> Representation {
    let etag = meta
        .modified
        .map(|t| format!("\"{:x}-{len:x}\"", date::unix_seconds(t)));
    Representation {
        len,
        last_modified: meta.modified,
        etag,
        content_type: mime::guess(key.file_name()).to_owned(),
    }
}

/// The one place cache errors become responses: a short plain-text body.
fn error_response(e: &Error) -> Response {
    let status = e.status();
    let phrase = crate::http::reason_phrase(status);
    match e {
        Error::InvalidPath { .. } => Response::error(status),
        _ => Response::text(status, format!("{status} {phrase}: {e}")),
    }
}

/// Bytes `start..start+len` of a stream that begins at 0.
struct Window {
    inner: Box<dyn Read + Send>,
    skip: u64,
    left: u64,
}

impl Window {
    fn new(inner: Box<dyn Read + Send>, start: u64, len: u64) -> Window {
        Window {
            inner,
            skip: start,
            left: len,
        }
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.skip > 0 {
            let n = self.skip.min(buf.len() as u64) as usize;
            let got = self.inner.read(&mut buf[..n])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.skip -= got as u64;
        }
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.left.min(buf.len() as u64) as usize;
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got as u64;
        Ok(got)
    }
}

/// The first byte a request needs before its answer can start: the start of its one
/// range (`bytes=N-`, `bytes=N-M`), else 0. With `If-Range` the answer may be the whole
/// file, so 0.
fn first_byte(req: &Request) -> u64 {
    if req.header("If-Range").is_some() {
        return 0;
    }
    match req.header("Range").and_then(range::parse).as_deref() {
        Some([ByteRange::From(n) | ByteRange::FromTo(n, _)]) => *n,
        _ => 0,
    }
}

//! The package-cache handler: answers mirror requests from the store, or through a
//! download shared with every other client asking for the same file.
//!
//! Every answer carries `X-Cache`:
//! - `HIT`: served from a complete file on disk;
//! - `MISS`: this request started the download (or, when nothing can be stored,
//!   fetched the file straight through);
//! - `COALESCED`: joined a download already in progress.

use std::io::{self, Read};
use std::sync::Arc;

use log::{debug, warn};

use crate::cache::Error;
use crate::cache::fetch::{Fetcher, Plan};
use crate::cache::flight::{Phase, Ticket};
use crate::cache::store::{Entry, Key, Meta};
use crate::cache::tee::GrowingReader;
use crate::cache::upstream::{Ask, Reply};
use crate::http::conditional::{self, Representation};
use crate::http::{Body, Handler, Method, Request, Response, date, mime};

/// How many times a request starts over when a download it was waiting for vanished
/// before sending anything (another process's leader died, a download was abandoned).
const RETRIES: usize = 3;

/// The mirror handler.
pub struct Mirror {
    fetcher: Arc<Fetcher>,
}

impl Mirror {
    /// A mirror over `fetcher`'s store and sources.
    pub fn new(fetcher: Arc<Fetcher>) -> Mirror {
        Mirror { fetcher }
    }

    /// The fetcher (store, sources, downloads).
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
    }

    fn sources(&self) -> usize {
        self.fetcher.upstream().sources().len()
    }

    /// Serves a complete file from disk.
    fn serve_entry(&self, req: &Request, key: &Key, entry: Entry, tag: &str) -> Response {
        let meta = Meta {
            len: Some(entry.len),
            modified: Some(entry.modified),
            etag: None,
        };
        let rep = representation(key, &meta, entry.len);
        let file = entry.file;
        conditional::answer(req, &rep, |offset, len| Body::File { file, offset, len })
            .with_header("X-Cache", tag)
    }

    /// Fetches (or joins the fetch of) a file we do not have.
    fn miss(&self, req: &Request, key: Key, path: &str) -> Response {
        let mut last_break = String::from("the download keeps failing");
        for _ in 0..RETRIES {
            if req.is_head() && self.fetcher.flights().get(&key).is_none() {
                return self.head_upstream(&key, path);
            }
            let plan = Plan {
                key: key.clone(),
                ask: Ask::get(path, self.sources()),
                label: path.to_owned(),
            };
            let (ticket, started) = match self.fetcher.join(plan) {
                Ok(t) => t,
                Err(e) => {
                    warn!("cannot start a download: {e}");
                    return Response::error(503);
                }
            };
            let tag = if started { "MISS" } else { "COALESCED" };
            match ticket.flight().wait_for_headers() {
                Phase::Streaming(meta) | Phase::Complete(meta) => {
                    return self.serve_flight(req, &key, ticket, meta, tag);
                }
                Phase::Failed(e) => return error_response(&e),
                Phase::NoStore(reason) => {
                    debug!("passing {path} through: {reason}");
                    drop(ticket);
                    return self.pass_through(req, &key, path);
                }
                Phase::NotModified => {
                    // Only a conditional download says so; serve what we have.
                    if let Ok(Some(entry)) = self.fetcher.store().lookup(&key) {
                        return self.serve_entry(req, &key, entry, "HIT");
                    }
                }
                Phase::Broken { reason, .. } => last_break = reason,
                Phase::LeaderGone | Phase::Connecting => {}
            }
        }
        Response::text(502, format!("502 Bad Gateway: {path}: {last_break}"))
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
    fn head_upstream(&self, key: &Key, path: &str) -> Response {
        let ask = Ask {
            head: true,
            ..Ask::get(path, self.sources())
        };
        match self.fetcher.upstream().fetch(path, &ask) {
            Ok(Reply::Fresh(f)) => {
                let mut resp = Response::new(200)
                    .with_header("Content-Type", mime::guess(key.file_name()))
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
    fn pass_through(&self, req: &Request, key: &Key, path: &str) -> Response {
        let fetched = match self
            .fetcher
            .upstream()
            .fetch(path, &Ask::get(path, self.sources()))
        {
            Ok(Reply::Fresh(f)) => f,
            Ok(Reply::NotModified { .. }) => return Response::error(502),
            Err(e) => return error_response(&e),
        };
        let Some(len) = fetched.meta.len else {
            return Response::reader(fetched.body, None)
                .with_header("Content-Type", mime::guess(key.file_name()))
                .with_header("X-Cache", "MISS");
        };
        let rep = representation(key, &fetched.meta, len);
        let body = fetched.body;
        conditional::answer(req, &rep, move |start, n| Body::Reader {
            reader: Box::new(Window::new(body, start, n)),
            len: Some(n),
        })
        .with_header("X-Cache", "MISS")
    }
}

impl Handler for Mirror {
    fn handle(&self, req: &mut Request) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        let path = req.path_info().to_owned();
        let key = match Key::new(&path) {
            Ok(k) => k,
            Err(e) => return error_response(&e),
        };
        match self.fetcher.store().lookup(&key) {
            Ok(Some(entry)) => self.serve_entry(req, &key, entry, "HIT"),
            Ok(None) => self.miss(req, key, &path),
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

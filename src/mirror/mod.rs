//! The mirror handler: maps a request to its cache entry ([`target`]), asks the cache
//! once ([`Cache::get`]) and turns the answer into a response ([`respond`]). It decides
//! nothing about freshness or downloads; the cache does.
//!
//! Every file answer carries `X-Cache` with the [`CacheStatus`] the cache gave (see
//! [`CacheStatus`] for the values), and the same value travels to the metrics as a
//! response extension.
//!
//! Each request goes to the sources [`route()`] picks: those of the longest
//! `--source /PREFIX=URL` prefix it is below (asked without the prefix), else the
//! plain sources; a path no source serves is 404. For the plain sources, requests
//! below `/distfiles/` are mapped to one entry per file whatever their form (see
//! [`crate::gentoo::distfiles`]) and `/distfiles/layout.conf` always answers 200.
//!
//! Caches chain (a site cache's source is a regional cache), so every response names
//! this instance in `Via` (RFC 9110 §7.6.3), the request's own `Via` entries are
//! passed on to the sources (before ours, which the cache adds), and a request that
//! already names this instance went round a loop: it is answered `508 Loop Detected`
//! at once, before the cache is asked, so no download ever waits on itself.
//!
//! A [`Knowledge`] the application installs ([`Mirror::with_knowledge`]; the Gentoo
//! repository and binhost indexes, [`crate::gentoo::known`]) tells the cache what a
//! file must be and where else to get it ([`Known`]). A response whose bytes come from
//! a download this process runs names the URL in `X-Cache-Source` (a source's, or
//! the file's origin when no source had it).

use std::io::Read;
use std::sync::Arc;

use log::debug;

mod errors;
pub mod route;
mod target;

use errors::error_response;
pub use errors::status_of;
pub use route::{Route, route};
pub use target::{Target, prefixed_target, target, want};

use crate::cache::store::{Key, Meta};
use crate::cache::verify::Known;
use crate::cache::{Answer, Cache, CacheStatus, Error, Found, Query, Slice, Want};
use crate::gentoo::distfiles::SourceLayouts;
use crate::gentoo::layout;
use crate::http::conditional::{self, Representation};
use crate::http::{Body, Handler, Method, Request, Response, date, mime};
use crate::proto::via;

/// Largest `layout.conf` we read, in bytes.
const MAX_LAYOUT_CONF: u64 = 64 * 1024;

/// What the application knows of files besides what their sources say, consulted
/// once per request for a file.
pub trait Knowledge: Send + Sync {
    /// What is known of the file `target` names (`None`: nothing).
    fn known(&self, target: &Target) -> Option<Known>;
}

/// The mirror handler.
pub struct Mirror {
    cache: Arc<Cache>,
    layouts: SourceLayouts,
    /// Each source's path prefix, by source index (`None`: a plain source).
    prefixes: Vec<Option<String>>,
    knowledge: Option<Arc<dyn Knowledge>>,
}

impl Mirror {
    /// A mirror over `cache`.
    pub fn new(cache: Arc<Cache>) -> Mirror {
        let layouts = SourceLayouts::new(cache.upstream().clone());
        let prefixes = cache
            .upstream()
            .sources()
            .iter()
            .map(|s| s.prefix().map(str::to_owned))
            .collect();
        Mirror {
            cache,
            layouts,
            prefixes,
            knowledge: None,
        }
    }

    /// The same mirror, telling the cache what `knowledge` knows of each file.
    pub fn with_knowledge(mut self, knowledge: Arc<dyn Knowledge>) -> Mirror {
        self.knowledge = Some(knowledge);
        self
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The path to ask each source for: the route's, each plain source in its own
    /// GLEP 75 layout for a distfile.
    fn source_paths(&self, target: &Target, route: &Route) -> Vec<Option<String>> {
        match &target.distfile {
            Some(name) => self
                .layouts
                .paths_among(name, |i| route.paths.get(i).is_some_and(Option::is_some)),
            None => route.paths.clone(),
        }
    }
}

impl Handler for Mirror {
    fn handle(&self, req: &mut Request) -> Response {
        let Some(name) = self.cache.upstream().name() else {
            return self.answer(req);
        };
        let resp = if via::names(req.headers().get_all("Via"), name) {
            debug!("{}: the request already passed through {name}", req.path());
            Response::text(
                508,
                format!("508 Loop Detected: this request already passed through {name}\n"),
            )
        } else {
            self.answer(req)
        };
        resp.with_header("Via", via::entry_for(name))
    }
}

impl Mirror {
    /// The answer to a request that is not a loop.
    fn answer(&self, req: &mut Request) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        let path = req.path_info().to_owned();
        let Some(route) = route(&path, &self.prefixes) else {
            return error_response(&Error::InvalidPath {
                path,
                reason: "no --source serves this path",
            });
        };
        let target = if route.is_plain() {
            target(&path)
        } else {
            prefixed_target(&path)
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => return error_response(&e),
        };
        let paths = || self.source_paths(&target, &route);
        let mut want = want(req);
        if target.layout_conf {
            // Read whole, to check it, whatever the client asked.
            want = Want::default();
        }
        let received = via::normalise(req.headers().get_all("Via"));
        let known = match &self.knowledge {
            Some(k) if !target.layout_conf => k.known(&target),
            _ => None,
        };
        let query = Query {
            key: target.key.clone(),
            alternates: &target.alternates,
            want,
            paths: &paths,
            query: req.query(),
            label: &path,
            via: received.as_deref(),
            known: known.as_ref(),
        };
        let answer = self.cache.get(&query);
        if target.layout_conf {
            return layout_conf(req, &target.key, answer);
        }
        respond(req, &target.key, answer)
    }
}

/// Turns the cache's answer for `key` into the response to `req`: conditional and
/// range requests are evaluated against the file's representation; failures become
/// their status ([`status_of`]).
pub fn respond(req: &Request, key: &Key, answer: Answer) -> Response {
    let found = match answer {
        Answer::Found(found) => found,
        Answer::Failed(e) => return error_response(&e),
    };
    let Found {
        status,
        meta,
        content,
    } = found;
    let source = content.source_url();
    let mut keep = None;
    let resp = match meta.len {
        Some(len) => {
            let rep = representation(key, &meta, len);
            conditional::answer(req, &rep, |start, n| {
                body(content.slice(start, Some(n)), &mut keep)
            })
        }
        // The length is unknown only for a plain request: stream as it comes.
        None => {
            let mut resp = Response::new(200)
                .with_header("Content-Type", mime::guess(key.file_name()))
                .with_body(body(content.slice(0, None), &mut keep));
            if let Some(t) = meta.modified {
                resp = resp.with_header("Last-Modified", date::format(t));
            }
            resp
        }
    };
    let resp = match keep {
        Some(busy) => resp.hold(busy),
        None => resp,
    };
    let resp = match source {
        Some(url) => resp.with_header("X-Cache-Source", url),
        None => resp,
    };
    tag(resp, status)
}

/// Marks a response with how the cache served it: the `X-Cache` header for clients and
/// the access log, the extension for the metrics.
fn tag(resp: Response, status: CacheStatus) -> Response {
    resp.with_header("X-Cache", status.as_str())
        .with_extension(status)
}

/// The framework body for a slice of content; a stored file's guard goes to `keep`,
/// to be held until the response is sent.
fn body(slice: Slice, keep: &mut Option<crate::cache::index::Busy>) -> Body {
    match slice {
        Slice::File {
            file,
            offset,
            len,
            keep: busy,
        } => {
            *keep = Some(busy);
            Body::File { file, offset, len }
        }
        Slice::Stream { reader, len } => Body::Reader { reader, len },
        Slice::Headers { len } => Body::HeadOnly(len),
    }
}

/// `GET /distfiles/layout.conf`: always 200. The sources' layout.conf when one has it
/// and a client reading it will ask for paths we can map; ours otherwise.
fn layout_conf(req: &Request, key: &Key, answer: Answer) -> Response {
    if let Answer::Found(found) = answer
        && let Some((bytes, meta, status)) = read_small(found)
    {
        let text = String::from_utf8_lossy(&bytes);
        match layout::parse_structure(&text) {
            Ok(s) if layout::usable_by_us(&s) => {
                let rep = representation(key, &meta, bytes.len() as u64);
                let resp = conditional::answer(req, &rep, |start, n| {
                    Body::Bytes(bytes[start as usize..(start + n) as usize].to_vec())
                });
                return tag(resp, status);
            }
            Ok(s) => debug!(
                "the sources' layout.conf starts with {:?}; serving ours",
                s.first()
            ),
            Err(e) => debug!("the sources' layout.conf is unreadable ({e}); serving ours"),
        }
    }
    let ours = layout::render(&[layout::gentoo(), layout::Layout::Flat]);
    tag(
        Response::bytes("text/plain; charset=utf-8", ours),
        CacheStatus::Hit,
    )
}

/// The whole content of a small file (at most [`MAX_LAYOUT_CONF`] bytes are read).
fn read_small(found: Found) -> Option<(Vec<u8>, Meta, CacheStatus)> {
    let mut bytes = Vec::new();
    let read = match found.content.slice(0, found.meta.len) {
        Slice::File { file, offset, .. } => {
            use std::io::{Seek, SeekFrom};
            let mut file = file;
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.take(MAX_LAYOUT_CONF).read_to_end(&mut bytes))
        }
        Slice::Stream { reader, .. } => reader.take(MAX_LAYOUT_CONF).read_to_end(&mut bytes),
        Slice::Headers { .. } => Ok(0),
    };
    read.ok()?;
    Some((bytes, found.meta, found.status))
}

/// The representation of a file: length, Last-Modified, an nginx-style ETag
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Content;
    use crate::cache::store::Meta;
    use std::time::{Duration, UNIX_EPOCH};

    fn found(status: CacheStatus, bytes: &[u8], len: Option<u64>) -> Answer {
        Answer::Found(Found {
            status,
            meta: Meta {
                len,
                modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
                etag: None,
            },
            content: Content::direct(std::io::Cursor::new(bytes.to_vec())),
        })
    }

    #[test]
    fn answers_become_responses_tagged_with_their_status() {
        let key = Key::new("/d/file.bin").unwrap();
        let resp = respond(
            &Request::get("/d/file.bin"),
            &key,
            found(CacheStatus::Coalesced, b"0123456789", Some(10)),
        );
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.header("X-Cache"), Some("COALESCED"));
        assert_eq!(
            resp.extensions().get::<CacheStatus>(),
            Some(&CacheStatus::Coalesced)
        );
        assert_eq!(
            resp.header("Last-Modified"),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        assert_eq!(resp.into_bytes().unwrap(), b"0123456789");

        let ranged = Request::get("/d/file.bin").with_header("Range", "bytes=4-");
        let resp = respond(
            &ranged,
            &key,
            found(CacheStatus::Miss, b"0123456789", Some(10)),
        );
        assert_eq!(
            (resp.status(), resp.header("Content-Range")),
            (206, Some("bytes 4-9/10"))
        );
        assert_eq!(resp.into_bytes().unwrap(), b"456789");

        let streamed = respond(
            &Request::get("/d/file.bin"),
            &key,
            found(CacheStatus::Miss, b"abc", None),
        );
        assert_eq!(streamed.body().len(), None, "streamed without a length");
        assert_eq!(streamed.into_bytes().unwrap(), b"abc");
    }
}

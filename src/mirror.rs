//! The mirror handler: maps a request to its cache entry ([`target`]), asks the cache
//! once ([`Cache::get`]) and turns the answer into a response ([`respond`]). It decides
//! nothing about freshness or downloads; the cache does.
//!
//! Every file answer carries `X-Cache` with the [`CacheStatus`] the cache gave (see
//! [`CacheStatus`] for the values), and the same value travels to the metrics as a
//! response extension.
//!
//! Requests below `/distfiles/` are mapped to one entry per file whatever their form
//! (see [`crate::gentoo::distfiles`]); `/distfiles/layout.conf` always answers 200.

use std::io::Read;
use std::sync::Arc;

use log::debug;

use crate::cache::store::{Key, Meta};
use crate::cache::{Answer, Cache, CacheStatus, Error, Failure, Found, Query, Slice, Want};
use crate::gentoo::distfiles::{self, SourceLayouts};
use crate::gentoo::layout;
use crate::http::conditional::{self, Representation};
use crate::http::range::{self, ByteRange};
use crate::http::{Body, Handler, Method, Request, Response, date, mime};

/// Largest `layout.conf` we read, in bytes.
const MAX_LAYOUT_CONF: u64 = 64 * 1024;

/// The mirror handler.
pub struct Mirror {
    cache: Arc<Cache>,
    layouts: SourceLayouts,
}

/// A request path resolved to a store entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The entry.
    pub key: Key,
    /// Other places an older cache may hold the same file (served as hits).
    pub alternates: Vec<Key>,
    /// For a distfile, its name: each source is asked for it in its own layout
    /// (learned only when a source must be asked). Otherwise every source is asked for
    /// the requested path.
    pub distfile: Option<String>,
    /// The request is for `/distfiles/layout.conf`.
    pub layout_conf: bool,
}

/// Maps a decoded request path to its entry. Refuses (as [`Error::InvalidPath`])
/// directories, temporary file names, and distfiles under directories that are not
/// their GLEP 75 hash directories.
pub fn target(path: &str) -> Result<Target, Error> {
    match distfiles::classify(path) {
        distfiles::Request::WrongDirs => Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "not the distfile's hash directories",
        }),
        distfiles::Request::Distfile { name, .. } => {
            let canonical = distfiles::store_path(name);
            let mut alternates = Vec::new();
            for alt in [format!("{}{name}", distfiles::PREFIX), path.to_owned()] {
                let alt = Key::new(&alt)?;
                if alt.as_str() != &canonical[1..] && !alternates.contains(&alt) {
                    alternates.push(alt);
                }
            }
            Ok(Target {
                key: Key::new(&canonical)?,
                alternates,
                distfile: Some(name.to_owned()),
                layout_conf: false,
            })
        }
        kind => Ok(Target {
            key: Key::new(path)?,
            alternates: Vec::new(),
            distfile: None,
            layout_conf: kind == distfiles::Request::LayoutConf,
        }),
    }
}

/// What `req` wants of the file: headers only, the first byte its range needs, and
/// whether the answer must know the length before it starts (a range or a
/// conditional request is evaluated against the length).
pub fn want(req: &Request) -> Want {
    let length = ["Range", "If-Modified-Since", "If-None-Match"]
        .iter()
        .any(|h| req.header(h).is_some());
    Want {
        head: req.is_head(),
        first_byte: first_byte(req),
        length,
    }
}

impl Mirror {
    /// A mirror over `cache`.
    pub fn new(cache: Arc<Cache>) -> Mirror {
        let layouts = SourceLayouts::new(cache.upstream().clone());
        Mirror { cache, layouts }
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The path to ask each source for.
    fn source_paths(&self, target: &Target, path: &str) -> Vec<Option<String>> {
        match &target.distfile {
            Some(name) => self.layouts.paths(name),
            None => vec![Some(path.to_owned()); self.cache.upstream().sources().len()],
        }
    }
}

impl Handler for Mirror {
    fn handle(&self, req: &mut Request) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        let path = req.path_info().to_owned();
        let target = match target(&path) {
            Ok(t) => t,
            Err(e) => return error_response(&e),
        };
        let paths = || self.source_paths(&target, &path);
        let mut want = want(req);
        if target.layout_conf {
            // Read whole, to check it, whatever the client asked.
            want = Want::default();
        }
        let query = Query {
            key: target.key.clone(),
            alternates: &target.alternates,
            want,
            paths: &paths,
            label: &path,
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

/// The HTTP status that reports a cache error to a client: 404 when the path is
/// refused or every source said not found; 504 when every other failure was a
/// timeout; 502 for the remaining upstream failures and broken downloads; 500 for
/// local trouble.
pub fn status_of(e: &Error) -> u16 {
    match e {
        Error::InvalidPath { .. } => 404,
        Error::Upstream { attempts, .. } => {
            let not_found = |a: &&crate::cache::Attempt| matches!(a.failure, Failure::NotFound(_));
            if attempts.is_empty() {
                502
            } else if attempts.iter().all(|a| not_found(&a)) {
                404
            } else if attempts
                .iter()
                .filter(|a| !not_found(a))
                .all(|a| a.failure == Failure::Timeout)
            {
                504
            } else {
                502
            }
        }
        Error::Interrupted { .. } => 502,
        _ => 500,
    }
}

/// The one place cache errors become responses: a short plain-text body naming what
/// each source answered (refused paths get the bare status line).
fn error_response(e: &Error) -> Response {
    let status = status_of(e);
    let phrase = crate::http::reason_phrase(status);
    match e {
        Error::InvalidPath { .. } => Response::error(status),
        _ => Response::text(status, format!("{status} {phrase}: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Attempt, Content};
    use std::time::{Duration, UNIX_EPOCH};

    const MOOSE: &str = "MooseX-OneArgNew-0.007.tar.gz";

    fn keys(t: &Target) -> (String, Vec<&str>) {
        (
            t.key.as_str().to_owned(),
            t.alternates.iter().map(Key::as_str).collect(),
        )
    }

    #[test]
    fn every_form_of_a_distfile_reaches_one_entry() {
        let flat = target(&format!("/distfiles/{MOOSE}")).unwrap();
        assert_eq!(
            keys(&flat),
            (
                format!("distfiles/0a/{MOOSE}"),
                vec![format!("distfiles/{MOOSE}").as_str()]
            ),
            "a flat request records its flat alternate once"
        );
        assert_eq!(flat.distfile.as_deref(), Some(MOOSE));
        let hashed = target(&format!("/distfiles/0a/{MOOSE}")).unwrap();
        assert_eq!(hashed.key, flat.key);
        assert_eq!(hashed.alternates, flat.alternates);
        // SHA512 4:8, as an older mirror lays it out: its own path is an alternate.
        let sha = target(&format!("/distfiles/e/d5/{MOOSE}")).unwrap();
        assert_eq!(sha.key, flat.key);
        assert_eq!(sha.alternates.len(), 2);
        assert_eq!(
            sha.alternates[1].as_str(),
            format!("distfiles/e/d5/{MOOSE}")
        );
    }

    #[test]
    fn other_paths_are_stored_as_requested() {
        let t = target("/snapshots/gentoo-latest.tar.xz").unwrap();
        assert_eq!(keys(&t), ("snapshots/gentoo-latest.tar.xz".into(), vec![]));
        assert_eq!((t.distfile, t.layout_conf), (None, false));
        let l = target("/distfiles/layout.conf").unwrap();
        assert!(l.layout_conf && l.distfile.is_none());
    }

    #[test]
    fn refused_paths_are_404() {
        for bad in [
            format!("/distfiles/0b/{MOOSE}"),
            format!("/distfiles/sub/{MOOSE}"),
            "/distfiles/".into(),
            "/d/.a.pc-part".into(),
        ] {
            let e = target(&bad).unwrap_err();
            assert_eq!(status_of(&e), 404, "{bad}");
        }
    }

    #[test]
    fn want_follows_the_request() {
        assert_eq!(want(&Request::get("/a")), Want::default());
        let ranged = Request::get("/a").with_header("Range", "bytes=100-");
        assert_eq!(
            want(&ranged),
            Want {
                head: false,
                first_byte: 100,
                length: true
            }
        );
        let if_range = ranged.with_header("If-Range", "\"x\"");
        assert_eq!(want(&if_range).first_byte, 0);
        let head = Request::new(Method::Head, "/a").unwrap();
        assert!(want(&head).head);
        let conditional =
            Request::get("/a").with_header("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(want(&conditional).length);
    }

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

    #[test]
    fn failures_become_their_status() {
        let upstream = |failures: &[Failure]| Error::Upstream {
            path: "/distfiles/x".into(),
            attempts: failures
                .iter()
                .map(|f| Attempt {
                    url: "http://a/distfiles/x".into(),
                    failure: f.clone(),
                })
                .collect(),
        };
        use Failure::*;
        assert_eq!(status_of(&upstream(&[NotFound(404), NotFound(410)])), 404);
        assert_eq!(status_of(&upstream(&[NotFound(404), Timeout])), 504);
        assert_eq!(status_of(&upstream(&[Timeout, Status(500)])), 502);
        assert_eq!(
            status_of(&upstream(&[Connect("connection refused".into())])),
            502
        );
        assert_eq!(status_of(&upstream(&[])), 502);
        let key = Key::new("/distfiles/x").unwrap();
        let resp = respond(
            &Request::get("/distfiles/x"),
            &key,
            Answer::Failed(Arc::new(upstream(&[NotFound(404)]))),
        );
        assert_eq!(resp.status(), 404);
        assert!(resp.header("X-Cache").is_none());
        let text = String::from_utf8(resp.into_bytes().unwrap()).unwrap();
        assert_eq!(
            text,
            "404 Not Found: no source could provide /distfiles/x: http://a/distfiles/x 404 not found\n"
        );
    }
}

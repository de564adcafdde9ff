//! The cache's answer as a response: conditional and range requests evaluated against
//! the file's representation, `X-Cache` (and `X-Cache-Source`) set, failures as their
//! status.

use crate::cache::store::{Key, Meta};
use crate::cache::{Answer, CacheStatus, Found, Slice};
use crate::http::conditional::{self, Representation};
use crate::http::{Body, Request, Response, date, mime};

use super::errors::error_response;

/// Turns the cache's answer for `key` into the response to `req`: conditional and
/// range requests are evaluated against the file's representation; failures become
/// their status ([`status_of`](super::status_of)).
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
pub(super) fn tag(resp: Response, status: CacheStatus) -> Response {
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

/// The representation of a file: length, Last-Modified, an nginx-style ETag
/// (`"mtime-len"` in hex) and a type guessed from the name.
pub(super) fn representation(key: &Key, meta: &Meta, len: u64) -> Representation {
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

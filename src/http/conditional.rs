//! Conditional and range requests against a representation of known length
//! (RFC 9110 §13 and §14).
//!
//! [`answer`] evaluates `If-None-Match`, `If-Modified-Since`, `If-Range` and `Range`
//! in the RFC's order and builds the 200, 206, 304 or 416 response, so every handler
//! that serves files behaves the same way.

use std::time::SystemTime;

use super::range::{self, Selection};
use super::{Body, Method, Request, Response, date};

/// What a handler knows about the bytes it is about to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representation {
    /// Length in bytes.
    pub len: u64,
    /// Last modification time (sent as `Last-Modified`; compared at whole seconds).
    pub last_modified: Option<SystemTime>,
    /// Strong entity tag including its quotes, e.g. `"5f2b-1a0"`.
    pub etag: Option<String>,
    /// `Content-Type`.
    pub content_type: String,
}

/// The outcome of evaluating a request's conditions against a representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole representation.
    Full,
    /// 206 with `len` bytes from `start`.
    Partial {
        /// The first byte.
        start: u64,
        /// How many bytes.
        len: u64,
    },
    /// 416: no requested byte exists.
    Unsatisfiable,
}

/// Evaluates `req`'s conditional and range headers against `rep`.
///
/// Ranges apply to `GET` only; a `HEAD` gets the headers of the full `GET`.
pub fn evaluate(req: &Request, rep: &Representation) -> Outcome {
    let is_read = matches!(req.method(), Method::Get | Method::Head);
    if is_read && not_modified(req, rep) {
        return Outcome::NotModified;
    }
    if *req.method() != Method::Get {
        return Outcome::Full;
    }
    let Some(ranges) = req.header("Range").and_then(range::parse) else {
        return Outcome::Full;
    };
    if let Some(if_range) = req.header("If-Range")
        && !if_range_matches(if_range.trim(), rep)
    {
        return Outcome::Full;
    }
    match range::select(&ranges, rep.len) {
        Selection::Full => Outcome::Full,
        Selection::Partial { start, len } => Outcome::Partial { start, len },
        Selection::Unsatisfiable => Outcome::Unsatisfiable,
    }
}

/// Builds the response for `req` against `rep`; `body(start, len)` supplies the bytes
/// for 200 and 206 answers (it is not called for 304 and 416).
pub fn answer(
    req: &Request,
    rep: &Representation,
    body: impl FnOnce(u64, u64) -> Body,
) -> Response {
    let outcome = evaluate(req, rep);
    let mut resp = match outcome {
        Outcome::NotModified => Response::new(304),
        Outcome::Full => Response::new(200)
            .with_header("Content-Type", rep.content_type.clone())
            .with_body(body(0, rep.len)),
        Outcome::Partial { start, len } => Response::new(206)
            .with_header("Content-Type", rep.content_type.clone())
            .with_header("Content-Range", range::content_range(start, len, rep.len))
            .with_body(body(start, len)),
        Outcome::Unsatisfiable => {
            Response::error(416).with_header("Content-Range", format!("bytes */{}", rep.len))
        }
    };
    if outcome != Outcome::Unsatisfiable {
        if let Some(t) = rep.last_modified {
            resp = resp.with_header("Last-Modified", date::format(t));
        }
        if let Some(tag) = &rep.etag {
            resp = resp.with_header("ETag", tag.clone());
        }
    }
    resp.with_header("Accept-Ranges", "bytes")
}

/// RFC 9110 §13.2.2 steps 3 and 4: `If-None-Match`, else `If-Modified-Since`.
fn not_modified(req: &Request, rep: &Representation) -> bool {
    if let Some(inm) = req.header("If-None-Match") {
        return match &rep.etag {
            _ if inm.trim() == "*" => true,
            // Weak comparison: W/"x" matches "x".
            Some(tag) => inm
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == tag.trim_start_matches("W/")),
            None => false,
        };
    }
    match (
        req.header("If-Modified-Since").and_then(date::parse),
        rep.last_modified,
    ) {
        (Some(since), Some(modified)) => date::unix_seconds(modified) <= date::unix_seconds(since),
        _ => false,
    }
}

/// `If-Range` holds for an exactly equal date or a strongly equal entity tag.
fn if_range_matches(value: &str, rep: &Representation) -> bool {
    if value.starts_with('"') {
        return rep.etag.as_deref() == Some(value);
    }
    if value.starts_with("W/") {
        return false;
    }
    match (date::parse(value), rep.last_modified) {
        (Some(d), Some(m)) => date::unix_seconds(d) == date::unix_seconds(m),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn rep() -> Representation {
        Representation {
            len: 1000,
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            etag: Some("\"abc\"".into()),
            content_type: "application/gzip".into(),
        }
    }

    fn eval(req: Request) -> Outcome {
        evaluate(&req, &rep())
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn if_modified_since() {
        let r = |v: &str| Request::get("/f").with_header("If-Modified-Since", v);
        assert_eq!(eval(r(LM)), Outcome::NotModified);
        assert_eq!(
            eval(r("Sun, 06 Nov 1994 08:49:42 GMT")),
            Outcome::NotModified
        );
        assert_eq!(eval(r("Sun, 06 Nov 1994 08:49:36 GMT")), Outcome::Full);
        assert_eq!(eval(r("garbage")), Outcome::Full);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let r = Request::get("/f")
            .with_header("If-None-Match", "\"other\"")
            .with_header("If-Modified-Since", LM);
        assert_eq!(eval(r), Outcome::Full);
        let r = Request::get("/f").with_header("If-None-Match", "\"x\", W/\"abc\"");
        assert_eq!(eval(r), Outcome::NotModified);
    }

    #[test]
    fn ranges_and_if_range() {
        let r = |range: &str| Request::get("/f").with_header("Range", range);
        assert_eq!(
            eval(r("bytes=10-")),
            Outcome::Partial {
                start: 10,
                len: 990
            }
        );
        assert_eq!(eval(r("bytes=1000-")), Outcome::Unsatisfiable);
        assert_eq!(eval(r("bytes=0-1,5-6")), Outcome::Full);
        let with_if_range = |v: &str| r("bytes=10-19").with_header("If-Range", v);
        assert_eq!(
            eval(with_if_range(LM)),
            Outcome::Partial { start: 10, len: 10 }
        );
        assert_eq!(
            eval(with_if_range("\"abc\"")),
            Outcome::Partial { start: 10, len: 10 }
        );
        assert_eq!(eval(with_if_range("\"stale\"")), Outcome::Full);
        assert_eq!(
            eval(with_if_range("Sun, 06 Nov 1994 08:49:38 GMT")),
            Outcome::Full
        );
        assert_eq!(eval(with_if_range("W/\"abc\"")), Outcome::Full);
    }

    #[test]
    fn head_ignores_range() {
        let r = Request::new(Method::Head, "/f")
            .unwrap()
            .with_header("Range", "bytes=1-2");
        assert_eq!(eval(r), Outcome::Full);
    }

    #[test]
    fn answer_sets_headers() {
        let req = Request::get("/f").with_header("Range", "bytes=-10");
        let resp = answer(&req, &rep(), |_, len| Body::Bytes(vec![0; len as usize]));
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.header("content-range"), Some("bytes 990-999/1000"));
        assert_eq!(resp.header("last-modified"), Some(LM));
        assert_eq!(resp.header("accept-ranges"), Some("bytes"));
        let req = Request::get("/f").with_header("Range", "bytes=5000-");
        let resp = answer(&req, &rep(), |_, _| unreachable!());
        assert_eq!(
            (resp.status(), resp.header("content-range")),
            (416, Some("bytes */1000"))
        );
    }
}

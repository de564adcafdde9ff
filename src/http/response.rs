//! The one type every reply is built from.
//!
//! A handler returns a [`Response`]: a status, headers and a [`Body`]. The server alone
//! turns it into bytes: it adds `Date`, `Content-Length` (or chunked framing when the
//! length is unknown), `Connection`, and leaves the body out of `HEAD` answers. Handlers
//! never set framing headers themselves.

use std::fmt;
use std::fs::File;
use std::io::Read;

use super::{Extensions, Headers};
pub use crate::proto::reason::reason_phrase;

/// What follows the headers.
pub enum Body {
    /// No body (`Content-Length: 0`, or none at all for 1xx/204/304).
    Empty,
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` starting at `offset`.
    File {
        /// The open file; read with positioned reads, so it may be shared.
        file: File,
        /// The first byte to send.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
    /// Whatever `reader` yields. With a known `len`, the server sends `Content-Length`
    /// and treats a reader that ends early or fails as a broken response (the
    /// connection is closed so the client sees the failure); with `None` it uses
    /// chunked encoding (HTTP/1.1) or closes the connection at the end (HTTP/1.0).
    Reader {
        /// The source of the bytes.
        reader: Box<dyn Read + Send>,
        /// The exact number of bytes it will yield, when known.
        len: Option<u64>,
    },
    /// No bytes, but the length a `GET` would have had: for answering `HEAD` without
    /// fetching anything. Sent for any other method, it is a broken response.
    HeadOnly(Option<u64>),
}

impl Body {
    /// The body's length in bytes, when known.
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::File { len, .. } => Some(*len),
            Body::Reader { len, .. } | Body::HeadOnly(len) => *len,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::File { offset, len, .. } => write!(f, "File {{ offset: {offset}, len: {len} }}"),
            Body::Reader { len, .. } => write!(f, "Reader {{ len: {len:?} }}"),
            Body::HeadOnly(len) => write!(f, "HeadOnly({len:?})"),
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Body,
    held: Held,
    extensions: Extensions,
}

/// Values a response keeps alive until it has been sent (see [`Response::hold`]).
#[derive(Default)]
pub(crate) struct Held(Vec<Box<dyn Send>>);

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Held({})", self.0.len())
    }
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Headers::new(),
            body: Body::Empty,
            held: Held::default(),
            extensions: Extensions::new(),
        }
    }

    /// Attaches a typed value for the layers around the handler (see [`Extensions`]):
    /// the server hands it to its [`super::Observer`] with the finished request.
    pub fn with_extension<T: std::any::Any + Send + Sync>(mut self, value: T) -> Response {
        self.extensions.insert(value);
        self
    }

    /// The values attached with [`Response::with_extension`].
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Takes the attached values, for the server to hand to its observer.
    pub(crate) fn take_extensions(&mut self) -> Extensions {
        std::mem::take(&mut self.extensions)
    }

    /// Keeps `value` alive until the response has been sent (or abandoned), then drops
    /// it: for guards that must outlive the handler, such as a mark that a file is
    /// being read.
    pub fn hold(mut self, value: impl Send + 'static) -> Response {
        self.held.0.push(Box::new(value));
        self
    }

    /// Takes the values given to [`Response::hold`], for the server to drop once the
    /// response is written.
    pub(crate) fn take_held(&mut self) -> Held {
        std::mem::take(&mut self.held)
    }

    /// A short plain-text response, e.g. for errors.
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        let mut text = text.into();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(Body::Bytes(text.into_bytes()))
    }

    /// A plain-text error whose body is the status line, e.g. `404 Not Found`.
    pub fn error(status: u16) -> Response {
        Response::text(status, format!("{status} {}", reason_phrase(status)))
    }

    /// 405 with the `Allow` header listing `allowed` (e.g. `"GET, HEAD"`).
    pub fn method_not_allowed(allowed: &str) -> Response {
        Response::error(405).with_header("Allow", allowed)
    }

    /// 200 with `bytes` of type `content_type`.
    pub fn bytes(content_type: &str, bytes: impl Into<Vec<u8>>) -> Response {
        Response::new(200)
            .with_header("Content-Type", content_type)
            .with_body(Body::Bytes(bytes.into()))
    }

    /// 200 with `len` bytes of `file` from `offset`.
    pub fn file(file: File, offset: u64, len: u64) -> Response {
        Response::new(200).with_body(Body::File { file, offset, len })
    }

    /// 200 streaming `reader`; see [`Body::Reader`] for what `len` promises.
    pub fn reader(reader: impl Read + Send + 'static, len: Option<u64>) -> Response {
        Response::new(200).with_body(Body::Reader {
            reader: Box::new(reader),
            len,
        })
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Sets a header, replacing any of the same name.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.set(name, value);
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, for changing.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Takes the response apart.
    pub fn into_parts(self) -> (u16, Headers, Body) {
        (self.status, self.headers, self.body)
    }

    /// Reads the whole body into memory: for tests and small bodies.
    pub fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self.body {
            Body::Empty | Body::HeadOnly(_) => Ok(Vec::new()),
            Body::Bytes(b) => Ok(b),
            Body::File { file, offset, len } => {
                let mut out = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut out, offset)?;
                Ok(out)
            }
            Body::Reader { mut reader, .. } => {
                let mut out = Vec::new();
                reader.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

/// Whether a response with `status` may carry a body at all (not 1xx, 204 or 304).
pub fn status_has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_name_the_status() {
        let r = Response::error(404);
        assert_eq!(r.status(), 404);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.into_bytes().unwrap(), b"404 Not Found\n");
    }

    #[test]
    fn method_not_allowed_lists_methods() {
        let r = Response::method_not_allowed("GET, HEAD");
        assert_eq!((r.status(), r.header("allow")), (405, Some("GET, HEAD")));
    }

    #[test]
    fn body_lengths() {
        assert_eq!(Body::Empty.len(), Some(0));
        assert_eq!(Body::Bytes(vec![1, 2]).len(), Some(2));
        assert_eq!(Body::HeadOnly(Some(7)).len(), Some(7));
        let r = Response::reader(std::io::empty(), None);
        assert_eq!(r.body().len(), None);
        assert!(status_has_body(200) && !status_has_body(304) && !status_has_body(204));
    }
}

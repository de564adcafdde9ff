//! Serialising a [`Response`] onto a connection: the only code that writes HTTP bytes.
//!
//! The status line and headers go out in the same write as the first body bytes, and
//! bodies are copied in large blocks, because every write is a system call (and, through
//! tiny_http, a mutex and a 1 KiB `BufWriter` that large writes bypass).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use super::response::{reason_phrase, status_has_body};
use super::{Body, Headers, Response, Version, date, socket};

/// What the writer needs to know about the request being answered.
pub(crate) struct Exchange<'a> {
    /// The request was `HEAD`: send headers only.
    pub head: bool,
    /// The request's HTTP version.
    pub version: Version,
    /// The connection stays open after this response (as tiny_http decided from the
    /// request's `Connection` header and version).
    pub keep_alive: bool,
    /// Value for the `Server` header.
    pub server_name: Option<&'a str>,
    /// Finds the connection's socket, for sending large files with `sendfile(2)`.
    pub socket: Option<&'a dyn Fn() -> Option<OwnedFd>>,
}

/// Bodies up to this size leave in the same write as the headers.
const SMALL_BODY: usize = 64 * 1024;
/// File bodies from this size go out with `sendfile(2)` when the socket can be found.
const SENDFILE_MIN: u64 = 4 << 20;

/// How writing a response went.
#[derive(Debug)]
pub(crate) struct Written {
    /// Body bytes that reached the socket (not counting headers or chunk framing).
    pub body_bytes: u64,
    /// Why the response is incomplete, if it is.
    pub error: Option<WriteError>,
    /// The server must close the connection itself: the response was cut short, or its
    /// end is marked by closing (HTTP/1.0 without a length).
    pub must_close: bool,
}

/// Why a response could not be written completely.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Writing to the client failed: it hung up or stopped reading.
    Client(io::Error),
    /// The body's source failed or ended before its declared length.
    Body(io::Error),
}

impl WriteError {
    /// A client hanging up is routine; anything else deserves a look.
    pub(crate) fn is_client_gone(&self) -> bool {
        matches!(self, WriteError::Client(_))
    }

    /// The underlying error.
    pub(crate) fn io(&self) -> &io::Error {
        match self {
            WriteError::Client(e) | WriteError::Body(e) => e,
        }
    }
}

/// Writes `resp` for `ex` to `w`, copying bodies in blocks of at most `block` bytes
/// (one buffer, allocated only if the body needs copying and no larger than it).
pub(crate) fn write_response(
    w: &mut dyn Write,
    ex: &Exchange<'_>,
    resp: Response,
    block: usize,
) -> Written {
    let (status, headers, body) = resp.into_parts();
    let framing = Framing::choose(status, ex, body.len());
    let mut out = Output {
        w,
        pending: head(status, &headers, ex, &framing),
        body_bytes: 0,
    };
    let result = if framing.send_body {
        send_body(&mut out, body, ex, &framing, block)
    } else {
        out.flush()
    };
    // `out.body_bytes` counts bytes handed to a successful write.
    let body_bytes = out.body_bytes;
    let error = result.err();
    Written {
        body_bytes,
        must_close: error.is_some() || framing.close_delimited,
        error,
    }
}

/// How a response's end is marked, and whether the connection stays open.
struct Framing {
    /// A body is sent (not for HEAD, 204, 304).
    send_body: bool,
    /// The body's length, if known.
    len: Option<u64>,
    /// Unknown length on HTTP/1.1: chunked.
    chunked: bool,
    /// Unknown length on HTTP/1.0: the end of the connection ends the body.
    close_delimited: bool,
    /// The connection stays open afterwards.
    keep_alive: bool,
}

impl Framing {
    fn choose(status: u16, ex: &Exchange<'_>, len: Option<u64>) -> Framing {
        let send_body = status_has_body(status) && !ex.head;
        let chunked = send_body && len.is_none() && ex.version == Version::Http11;
        let close_delimited = send_body && len.is_none() && ex.version == Version::Http10;
        Framing {
            send_body,
            len,
            chunked,
            close_delimited,
            keep_alive: ex.keep_alive && !close_delimited,
        }
    }
}

/// The status line and headers, with room for a small body to follow in the same
/// write.
fn head(status: u16, headers: &Headers, ex: &Exchange<'_>, framing: &Framing) -> Vec<u8> {
    let inline = framing
        .len
        .filter(|n| framing.send_body && *n <= SMALL_BODY as u64)
        .unwrap_or(0);
    let mut head = Vec::with_capacity(512 + inline as usize);
    // Writing into a Vec cannot fail.
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    write_date_header(&mut head);
    if let Some(name) = ex.server_name
        && !headers.contains("Server")
    {
        let _ = write!(head, "Server: {name}\r\n");
    }
    for (name, value) in headers.iter() {
        if is_framing(name) || !valid_field(name, value) {
            continue;
        }
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if status_has_body(status) {
        match framing.len {
            Some(n) => {
                let _ = write!(head, "Content-Length: {n}\r\n");
            }
            None if framing.chunked => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            None => {}
        }
    }
    match (ex.version, framing.keep_alive) {
        (Version::Http11, false) => head.extend_from_slice(b"Connection: close\r\n"),
        (Version::Http10, true) => head.extend_from_slice(b"Connection: keep-alive\r\n"),
        _ => {}
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Sends `body` after the head waiting in `out`.
fn send_body(
    out: &mut Output<'_>,
    body: Body,
    ex: &Exchange<'_>,
    framing: &Framing,
    block: usize,
) -> Result<(), WriteError> {
    match body {
        Body::Empty | Body::HeadOnly(_) => out.flush(),
        Body::Bytes(bytes) => {
            out.pending.extend_from_slice(&bytes);
            out.body_bytes += bytes.len() as u64;
            out.flush()
        }
        Body::File { file, offset, len } => copy_file(out, &file, offset, len, block, ex.socket),
        Body::Reader { reader, len } => {
            let size = len.map_or(block, |n| clamp(n, block));
            let buf = &mut vec![0u8; size.max(1)];
            match (len, framing.chunked) {
                (_, true) => copy_chunked(out, reader, buf),
                (Some(n), false) => copy_exact(out, reader, n, buf),
                (None, false) => copy_to_end(out, reader, buf),
            }
        }
    }
}

/// Headers the server owns: handlers cannot set framing.
fn is_framing(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "date",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

/// Refuses fields that would break the framing (CR, LF, NUL) or are not tokens.
fn valid_field(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// The connection plus the response head not yet written, so the head and the first
/// block of the body leave in one write.
struct Output<'a> {
    w: &'a mut dyn Write,
    pending: Vec<u8>,
    body_bytes: u64,
}

impl Output<'_> {
    /// Writes `pending` (if any) followed by `data` (counted as body).
    fn send(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            self.w.write_all(data).map_err(WriteError::Client)?;
        } else if data.len() <= SMALL_BODY {
            self.pending.extend_from_slice(data);
            let pending = std::mem::take(&mut self.pending);
            self.w.write_all(&pending).map_err(WriteError::Client)?;
        } else {
            let pending = std::mem::take(&mut self.pending);
            self.w.write_all(&pending).map_err(WriteError::Client)?;
            self.w.write_all(data).map_err(WriteError::Client)?;
        }
        self.body_bytes += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.w.write_all(&pending).map_err(WriteError::Client)?;
        }
        self.w.flush().map_err(WriteError::Client)
    }
}

/// `n` as a buffer size, at most `block`.
fn clamp(n: u64, block: usize) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(block)
}

fn copy_file(
    out: &mut Output<'_>,
    file: &std::fs::File,
    mut offset: u64,
    len: u64,
    block: usize,
    find_socket: Option<&dyn Fn() -> Option<OwnedFd>>,
) -> Result<(), WriteError> {
    let end = offset + len;
    // A small file goes out in the same buffer as the headers: one read, one write.
    if len <= SMALL_BODY as u64 && !out.pending.is_empty() {
        let start = out.pending.len();
        out.pending.resize(start + len as usize, 0);
        let mut filled = 0;
        while filled < len as usize {
            match file.read_at(&mut out.pending[start + filled..], offset + filled as u64) {
                Ok(0) => {
                    out.pending.truncate(start + filled);
                    return Err(WriteError::Body(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    out.pending.truncate(start + filled);
                    return Err(WriteError::Body(e));
                }
            }
        }
        out.body_bytes += len;
        return out.flush();
    }
    if len >= SENDFILE_MIN {
        // The headers must be on the socket before the kernel sends the body.
        out.flush()?;
        if let Some(fd) = find_socket.and_then(|find| find()) {
            let (sent, error) = socket::sendfile(&fd, file, offset, len);
            out.body_bytes += sent;
            return match error {
                None => Ok(()),
                Some(socket::SendfileError::File(e)) => Err(WriteError::Body(e)),
                Some(socket::SendfileError::Socket(e)) => Err(WriteError::Client(e)),
            };
        }
    }
    let buf = &mut vec![0u8; clamp(len, block).max(1)];
    while offset < end {
        let want = buf
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(0) => {
                return Err(WriteError::Body(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::Body(e)),
        };
        out.send(&buf[..n])?;
        offset += n as u64;
    }
    out.flush()
}

fn copy_exact(
    out: &mut Output<'_>,
    mut reader: Box<dyn Read + Send>,
    len: u64,
    buf: &mut [u8],
) -> Result<(), WriteError> {
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(WriteError::Body(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended {left} bytes short of {len}"),
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::Body(e)),
        };
        out.send(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()
}

fn copy_to_end(
    out: &mut Output<'_>,
    mut reader: Box<dyn Read + Send>,
    buf: &mut [u8],
) -> Result<(), WriteError> {
    loop {
        match reader.read(buf) {
            Ok(0) => return out.flush(),
            Ok(n) => out.send(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteError::Body(e)),
        }
    }
}

fn copy_chunked(
    out: &mut Output<'_>,
    mut reader: Box<dyn Read + Send>,
    buf: &mut [u8],
) -> Result<(), WriteError> {
    loop {
        match reader.read(buf) {
            Ok(0) => {
                out.pending.extend_from_slice(b"0\r\n\r\n");
                return out.flush();
            }
            Ok(n) => {
                out.pending
                    .extend_from_slice(format!("{n:x}\r\n").as_bytes());
                out.send(&buf[..n])?;
                out.pending.extend_from_slice(b"\r\n");
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteError::Body(e)),
        }
    }
}

/// Appends `Date: <now>\r\n` to `out`, formatting the date once per second per thread
/// (every response carries one).
fn write_date_header(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = date::unix_seconds(now);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, format!("Date: {}\r\n", date::format(now)));
        }
        out.extend_from_slice(c.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(resp: Response, head: bool, version: Version, keep_alive: bool) -> (String, Written) {
        let mut out = Vec::new();
        let ex = Exchange {
            head,
            version,
            keep_alive,
            server_name: Some("test/1"),
            socket: None,
        };
        let written = write_response(&mut out, &ex, resp, 4);
        (String::from_utf8(out).unwrap(), written)
    }

    fn without_date(s: &str) -> String {
        s.lines()
            .filter(|l| !l.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn content_length_and_body() {
        let (out, w) = write(Response::text(200, "hello"), false, Version::Http11, true);
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 200 OK\nServer: test/1\nContent-Type: text/plain; charset=utf-8\nContent-Length: 6\n\nhello"
        );
        assert_eq!(
            (w.body_bytes, w.must_close, w.error.is_none()),
            (6, false, true)
        );
    }

    #[test]
    fn head_has_length_but_no_body() {
        let (out, w) = write(Response::text(200, "hello"), true, Version::Http11, true);
        assert!(out.contains("Content-Length: 6\r\n"));
        assert!(out.ends_with("\r\n\r\n"));
        assert_eq!(w.body_bytes, 0);
        let resp = Response::new(200).with_body(Body::HeadOnly(Some(99)));
        let (out, _) = write(resp, true, Version::Http11, true);
        assert!(out.contains("Content-Length: 99\r\n"));
    }

    #[test]
    fn unknown_length_is_chunked_on_1_1_and_closed_on_1_0() {
        let resp = Response::reader(&b"abcdef"[..], None);
        let (out, w) = write(resp, false, Version::Http11, true);
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));
        assert!(out.ends_with("\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"));
        assert!(!w.must_close);
        let resp = Response::reader(&b"abcdef"[..], None);
        let (out, w) = write(resp, false, Version::Http10, true);
        assert!(!out.contains("Transfer-Encoding"));
        assert!(!out.contains("Connection: keep-alive"));
        assert!(out.ends_with("\r\n\r\nabcdef"));
        assert!(w.must_close);
    }

    #[test]
    fn short_reader_is_a_body_error() {
        let resp = Response::reader(&b"abc"[..], Some(10));
        let (out, w) = write(resp, false, Version::Http11, true);
        assert!(out.ends_with("abc"));
        assert!(matches!(w.error, Some(WriteError::Body(_))));
        assert!(w.must_close);
        assert_eq!(w.body_bytes, 3);
    }

    #[test]
    fn framing_and_injection_are_filtered() {
        let resp = Response::text(200, "x")
            .with_header("Content-Length", "999")
            .with_header("X-Evil", "a\r\nSet-Cookie: b");
        let (out, _) = write(resp, false, Version::Http11, true);
        assert!(out.contains("Content-Length: 2\r\n"));
        assert!(!out.contains("999") && !out.contains("Set-Cookie"));
    }

    #[test]
    fn connection_headers_follow_the_request() {
        let (out, _) = write(Response::error(404), false, Version::Http11, false);
        assert!(out.contains("Connection: close\r\n"));
        let (out, _) = write(Response::error(404), false, Version::Http10, true);
        assert!(out.contains("Connection: keep-alive\r\n"));
        let (out, _) = write(Response::new(304), false, Version::Http11, true);
        assert!(!out.contains("Content-Length"));
    }
}

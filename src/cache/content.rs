//! The bytes of an answer, wherever they are: a complete file on disk, a download in
//! progress, or a source's body passed straight through. The application asks for the
//! slice a client wants ([`Content::slice`]) and gets something it can send without
//! knowing which of the three it was.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use super::flight::Ticket;
use super::index::Busy;
use super::tee::GrowingReader;
use super::upstream::Upstream;
use super::verify::Expect;

/// The body of a found file (see the module docs).
pub struct Content(Inner);

enum Inner {
    /// A complete file, marked in use (not evicted) while the guard lives.
    Stored { file: File, busy: Busy },
    /// A download in progress, followed as the file grows.
    Download {
        ticket: Ticket,
        upstream: Arc<Upstream>,
        expect: Option<Expect>,
    },
    /// A source's body, not stored.
    Direct(Box<dyn Read + Send>),
    /// A source's answer to a range request from `offset`, while the shared download
    /// (held by the ticket, so it goes on) stores the whole file.
    Ranged {
        body: Box<dyn Read + Send>,
        offset: u64,
        _ticket: Ticket,
    },
    /// No body: the answer to a `HEAD` nobody is downloading.
    Headers,
}

/// A part of a [`Content`], ready to send.
pub enum Slice {
    /// `len` bytes of `file` from `offset`; `keep` must live until they are sent.
    File {
        /// The open file (positioned reads; it may be shared).
        file: File,
        /// The first byte, counted from the start of the file.
        offset: u64,
        /// How many bytes.
        len: u64,
        /// Keeps the file from eviction while it is being sent.
        keep: Busy,
    },
    /// Bytes from a reader. With a known `len`, a reader that ends early or fails means
    /// the transfer broke: the client must see a short response, never a complete one.
    Stream {
        /// The bytes.
        reader: Box<dyn Read + Send>,
        /// How many it will yield, when known.
        len: Option<u64>,
    },
    /// No bytes (a `HEAD` answered from a source's headers); `len` is what a `GET`
    /// would have sent.
    Headers {
        /// The length in bytes, when known.
        len: Option<u64>,
    },
}

impl Content {
    pub(crate) fn stored(file: File, busy: Busy) -> Content {
        Content(Inner::Stored { file, busy })
    }

    pub(crate) fn download(
        ticket: Ticket,
        upstream: Arc<Upstream>,
        expect: Option<Expect>,
    ) -> Content {
        Content(Inner::Download {
            ticket,
            upstream,
            expect,
        })
    }

    /// Bytes from any reader, as a source's body passed through is (also for tests
    /// and embedding programs).
    pub fn direct(reader: impl Read + Send + 'static) -> Content {
        Content(Inner::Direct(Box::new(reader)))
    }

    pub(crate) fn source_body(body: Box<dyn Read + Send>) -> Content {
        Content(Inner::Direct(body))
    }

    pub(crate) fn ranged(body: Box<dyn Read + Send>, offset: u64, ticket: Ticket) -> Content {
        Content(Inner::Ranged {
            body,
            offset,
            _ticket: ticket,
        })
    }

    pub(crate) fn headers() -> Content {
        Content(Inner::Headers)
    }

    /// The URL the bytes are being downloaded from, when they come from a download
    /// this process runs (for a `X-Cache-Source` header): a source's, or the file's
    /// origin when no source had it.
    pub fn source_url(&self) -> Option<String> {
        let Inner::Download {
            ticket, upstream, ..
        } = &self.0
        else {
            return None;
        };
        let origin = ticket.flight().origin().filter(|o| o.led)?;
        upstream.url_of(origin.source, &origin.path)
    }

    /// The bytes `start..start + len` (to the end when `len` is `None`), in bytes from
    /// the start of the file.
    pub fn slice(self, start: u64, len: Option<u64>) -> Slice {
        match self.0 {
            Inner::Stored { file, busy } => {
                let len = len.unwrap_or_else(|| {
                    let size = file.metadata().map_or(0, |m| m.len());
                    size.saturating_sub(start)
                });
                Slice::File {
                    file,
                    offset: start,
                    len,
                    keep: busy,
                }
            }
            Inner::Download {
                ticket,
                upstream,
                expect,
            } => {
                let end = len.map(|n| start + n);
                let reader = GrowingReader::new(ticket, start, end, upstream).checked(expect);
                Slice::Stream {
                    reader: Box::new(reader),
                    len,
                }
            }
            Inner::Direct(reader) if start == 0 && len.is_none() => {
                Slice::Stream { reader, len: None }
            }
            Inner::Direct(reader) => Slice::Stream {
                reader: Box::new(Window::new(reader, start, len)),
                len,
            },
            Inner::Ranged { body, offset, .. } if start >= offset => Slice::Stream {
                reader: Box::new(Window::new(body, start - offset, len)),
                len,
            },
            // Never asked for (the range request started at the client's first
            // byte); if it were, the answer must break visibly, not be short.
            Inner::Ranged { .. } => Slice::Stream {
                reader: Box::new(Unavailable),
                len,
            },
            Inner::Headers => Slice::Headers { len },
        }
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Inner::Stored { .. } => "Content::Stored",
            Inner::Download { .. } => "Content::Download",
            Inner::Direct(_) => "Content::Direct",
            Inner::Ranged { .. } => "Content::Ranged",
            Inner::Headers => "Content::Headers",
        })
    }
}

/// A reader for bytes this content does not have: every read fails.
struct Unavailable;

impl Read for Unavailable {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other(
            "bytes before the start of a ranged answer",
        ))
    }
}

/// Bytes `start..start + len` of a stream that begins at 0 (to its end when `len` is
/// `None`).
struct Window {
    inner: Box<dyn Read + Send>,
    skip: u64,
    left: Option<u64>,
}

impl Window {
    fn new(inner: Box<dyn Read + Send>, start: u64, len: Option<u64>) -> Window {
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
        let n = match self.left {
            Some(0) => return Ok(0),
            Some(left) => left.min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let got = self.inner.read(&mut buf[..n])?;
        if let Some(left) = self.left.as_mut() {
            *left -= got as u64;
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(slice: Slice) -> Vec<u8> {
        let Slice::Stream { mut reader, .. } = slice else {
            panic!("not a stream")
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn direct_content_is_cut_to_the_slice() {
        let bytes: Vec<u8> = (0..100).collect();
        let whole = Content::direct(io::Cursor::new(bytes.clone()));
        assert_eq!(read(whole.slice(0, None)), bytes);
        let part = Content::direct(io::Cursor::new(bytes.clone()));
        assert_eq!(read(part.slice(10, Some(5))), &bytes[10..15]);
        let tail = Content::direct(io::Cursor::new(bytes.clone()));
        assert_eq!(read(tail.slice(95, None)), &bytes[95..]);
    }

    #[test]
    fn a_stream_shorter_than_the_window_start_is_an_error() {
        let Slice::Stream { mut reader, .. } =
            Content::direct(io::Cursor::new(vec![1u8; 4])).slice(10, Some(2))
        else {
            panic!()
        };
        let err = reader.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}

//! The tee: upstream bytes go to the part file and, through it, to every client.
//!
//! [`copy`] runs on the download's own thread: it reads the upstream body, writes each
//! block to the part file and wakes the clients. Every client, the one whose request
//! started the download included, reads through a [`GrowingReader`] that streams the
//! bytes already on disk and then follows the file as it grows. So a slow client never
//! slows the download (or the other clients), and a client that hangs up does not
//! stop it. The bytes a client reads were written a moment earlier and come from the
//! page cache.
//!
//! If writing to disk fails mid-download, readers catch up to what was stored and then
//! continue with a range request straight to the same source, so they still receive the
//! whole file while nothing partial is stored. When the file must match an expectation
//! ([`GrowingReader::checked`]), that reader digests the whole file again (the bytes
//! on disk, then the source's) and holds its last byte back as the download would
//! have.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use super::flight::{Flight, Phase, Ticket};
use super::upstream::{Ask, Reply, Upstream};
use super::verify::{Checked, Expect};

/// How a copy ended.
#[derive(Debug)]
pub enum CopyEnd {
    /// The upstream body ended after this many bytes.
    Done(u64),
    /// Reading the upstream failed after this many bytes.
    Upstream(u64, io::Error),
    /// Writing to disk failed after this many bytes were stored.
    Disk(u64, io::Error),
    /// Nobody was attached for the grace period and less than half had arrived.
    Abandoned(u64),
}

/// When a download with nobody attached is given up.
#[derive(Clone, Copy, Debug)]
pub struct AbandonRule {
    /// How long a download may run with no client attached before it is given up,
    /// unless at least half of it has arrived.
    pub grace: Duration,
}

/// Copies `body` into `file`, announcing progress on `flight` after every block.
pub fn copy(
    body: &mut dyn Read,
    file: &File,
    flight: &Flight,
    len: Option<u64>,
    rule: AbandonRule,
    buf: &mut [u8],
) -> CopyEnd {
    let mut written = 0u64;
    loop {
        let n = match body.read(buf) {
            Ok(0) => return CopyEnd::Done(written),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return CopyEnd::Upstream(written, e),
        };
        if let Err(e) = file.write_all_at(&buf[..n], written) {
            return CopyEnd::Disk(written, e);
        }
        written += n as u64;
        flight.advance(written);
        let half_done = len.is_some_and(|l| written.saturating_mul(2) >= l);
        if !half_done && flight.alone_for().is_some_and(|d| d >= rule.grace) {
            return CopyEnd::Abandoned(written);
        }
    }
}

/// Reads `start..end` of a flight's file as it grows (to the end of the file when
/// `end` is `None`). An error means the download broke: the response must be cut
/// short so the client sees it.
pub struct GrowingReader {
    ticket: Ticket,
    pos: u64,
    end: Option<u64>,
    upstream: Arc<Upstream>,
    fallback: Option<Box<dyn Read + Send>>,
    expect: Option<Expect>,
}

impl GrowingReader {
    /// A reader for `ticket`'s flight from `start` to `end` (exclusive). `upstream` is
    /// used only if the disk fails.
    pub fn new(
        ticket: Ticket,
        start: u64,
        end: Option<u64>,
        upstream: Arc<Upstream>,
    ) -> GrowingReader {
        GrowingReader {
            ticket,
            pos: start,
            end,
            upstream,
            fallback: None,
            expect: None,
        }
    }

    /// The same reader for a file that must match `expect`: should the disk fail, the
    /// rest comes from the source only through a check of the whole file.
    pub fn checked(mut self, expect: Option<Expect>) -> GrowingReader {
        self.expect = expect;
        self
    }

    fn flight(&self) -> &Arc<Flight> {
        self.ticket.flight()
    }

    fn limit(&self, want: usize) -> usize {
        match self.end {
            Some(end) => want.min(usize::try_from(end - self.pos).unwrap_or(usize::MAX)),
            None => want,
        }
    }

    /// After a disk failure (`at` bytes were stored): ask the same source for the
    /// rest, from `pos`.
    fn open_fallback(&mut self, total: Option<u64>, at: u64) -> io::Result<()> {
        if let Some(expect) = self.expect.clone() {
            return self.open_checked_fallback(total, at, &expect);
        }
        let fetched = self.continue_from(self.pos)?;
        if fetched.meta.len != total {
            return Err(io::Error::other(
                "the source's file changed during the download",
            ));
        }
        self.fallback = Some(fetched.body);
        Ok(())
    }

    /// The download's source asked for the file from byte `from` (a range request;
    /// if the source ignores the range, the bytes before `from` are skipped).
    fn continue_from(&self, from: u64) -> io::Result<super::upstream::Fetched> {
        let origin = self
            .flight()
            .origin()
            .ok_or_else(|| io::Error::other("disk failed and the source is unknown"))?;
        let ask = Ask {
            from: (from > 0).then_some(from),
            ..Ask::default()
        };
        let reply = self
            .upstream
            .fetch_from(origin.source, &origin.path, &ask)
            .map_err(|a| io::Error::other(format!("continuing from {}: {}", a.url, a.failure)))?;
        let Reply::Fresh(mut fetched) = reply else {
            return Err(io::Error::other(
                "continuing after a disk failure: unexpected 304",
            ));
        };
        if fetched.range_start.is_none() && from > 0 {
            let skipped = io::copy(&mut (&mut fetched.body).take(from), &mut io::sink())?;
            if skipped != from {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(fetched)
    }

    /// [`GrowingReader::open_fallback`] for a file that must match `expect`: the
    /// `at` bytes on disk and the source's rest from there go through one [`Checked`]
    /// body, of which the client gets what it has not had yet.
    fn open_checked_fallback(
        &mut self,
        total: Option<u64>,
        at: u64,
        expect: &Expect,
    ) -> io::Result<()> {
        let file = self
            .flight()
            .file()
            .ok_or_else(|| io::Error::other("disk failed and the part file is gone"))?;
        let fetched = self.continue_from(at)?;
        if fetched.meta.len.is_some_and(|n| n != expect.size) || total != Some(expect.size) {
            return Err(io::Error::other(
                "the source's file changed during the download",
            ));
        }
        let stored = Stored {
            file,
            pos: 0,
            end: at,
        };
        let mut whole = Checked::new(Box::new(stored.chain(fetched.body)), expect);
        let had = io::copy(&mut (&mut whole).take(self.pos), &mut io::sink())?;
        if had != self.pos {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.fallback = Some(Box::new(whole));
        Ok(())
    }
}

/// Bytes `pos..end` of a file, read at their offsets.
struct Stored {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Stored {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        if n == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..n], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Read for GrowingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.end == Some(self.pos) || buf.is_empty() {
            return Ok(0);
        }
        let want = self.limit(buf.len());
        if let Some(fb) = self.fallback.as_mut() {
            let n = fb.read(&mut buf[..want])?;
            if n == 0 && self.end.is_some() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.pos += n as u64;
            return Ok(n);
        }
        let (written, phase, file) = self.flight().wait_beyond(self.pos);
        if written > self.pos {
            let file = file.ok_or_else(|| io::Error::other("download has no file"))?;
            let n = want.min(usize::try_from(written - self.pos).unwrap_or(usize::MAX));
            let n = file.read_at(&mut buf[..n], self.pos)?;
            if n == 0 {
                return Err(io::Error::other("part file shorter than announced"));
            }
            self.pos += n as u64;
            return Ok(n);
        }
        match phase {
            Phase::Complete(_) => {
                if self.end.is_some_and(|e| e > self.pos) {
                    Err(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Ok(0)
                }
            }
            Phase::Broken {
                disk_at: Some(at), ..
            } if self.pos >= at => {
                let total = self.flight().announced_len();
                self.open_fallback(total, at)?;
                self.read(buf)
            }
            Phase::Broken { reason, .. } => Err(io::Error::other(reason)),
            Phase::Failed(e) => Err(io::Error::other(e.to_string())),
            other => Err(io::Error::other(format!("download ended: {other:?}"))),
        }
    }
}

//! A raw HTTP/1.1 client that reports exactly what arrived and never hides a failure:
//! status, headers, body bytes, how the body was framed, whether it ended where its
//! framing said, and whether the server went silent. [`Conn::answer`] never panics (the
//! soak judges whatever came back); [`Conn::read`] and [`get`] panic without a status
//! line, for tests that expect one.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest a client waits for one read before it calls the server hung.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// How a response's body was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// No length: the end of the connection ends the body (so a short one looks whole).
    Close,
    /// No body: HEAD, 304, 204, 1xx, or the headers never ended.
    None,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended where its framing said it would (an answer without a body is
    /// complete once its headers are).
    pub complete: bool,
    pub framing: Framing,
    /// A read waited [`READ_TIMEOUT`] in vain.
    pub timed_out: bool,
    /// When the first body byte arrived.
    pub first_byte: Option<Instant>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Appends body bytes that just arrived.
    fn arrived(&mut self, bytes: &[u8]) {
        if self.first_byte.is_none() && !bytes.is_empty() {
            self.first_byte = Some(Instant::now());
        }
        self.body.extend_from_slice(bytes);
    }

    /// The body used chunked transfer encoding.
    pub fn chunked(&self) -> bool {
        self.framing == Framing::Chunked
    }

    /// The connection can carry another request: this answer ended where it said and
    /// the server did not say `Connection: close`.
    pub fn reusable(&self) -> bool {
        self.complete
            && !self.timed_out
            && self.framing != Framing::Close
            && !self
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Whatever a connection gave back for one request.
#[derive(Debug)]
pub enum Answer {
    /// No status line: refused, reset, or closed first.
    Nothing {
        timed_out: bool,
    },
    /// Not a status line: the previous response on the connection overran its framing.
    Garbage(String),
    Reply(Reply),
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// One connection, for keep-alive and pipelining tests.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects (panics if it cannot).
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::connect(addr).expect("connect")
    }

    /// Connects within 3 s, `None` if refused.
    pub fn connect(addr: SocketAddr) -> Option<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
        Some(Conn {
            reader: BufReader::with_capacity(64 << 10, stream),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, raw: &str) {
        self.try_send(raw).expect("send");
    }

    pub fn try_send(&mut self, raw: &str) -> std::io::Result<()> {
        self.reader.get_mut().write_all(raw.as_bytes())
    }

    /// Sends `GET path` with `extra` header lines (each ending in `\r\n`).
    pub fn get(&mut self, path: &str, extra: &str) -> Reply {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n"));
        self.read(false)
    }

    /// Reads one response; `head` says it answers a HEAD (no body follows).
    pub fn read(&mut self, head: bool) -> Reply {
        self.try_read(head).expect("a response")
    }

    /// Reads one response, `None` if no status line came.
    pub fn try_read(&mut self, head: bool) -> Option<Reply> {
        match self.answer(head) {
            Answer::Reply(r) => Some(r),
            Answer::Nothing { .. } | Answer::Garbage(_) => None,
        }
    }

    /// Reads one response, whatever arrives; `head` says it answers a HEAD.
    pub fn answer(&mut self, head: bool) -> Answer {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return Answer::Nothing { timed_out: false },
            Err(e) => {
                return Answer::Nothing {
                    timed_out: is_timeout(&e),
                };
            }
            Ok(_) => {}
        }
        let status = line
            .strip_prefix("HTTP/1.")
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok());
        let Some(status) = status else {
            return Answer::Garbage(line.chars().take(60).collect());
        };
        let mut reply = Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            complete: false,
            framing: Framing::None,
            timed_out: false,
            first_byte: None,
        };
        if !self.read_headers(&mut reply) {
            return Answer::Reply(reply);
        }
        if head || status == 304 || status == 204 || status < 200 {
            reply.complete = true;
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            reply.framing = Framing::Chunked;
            self.read_chunked(&mut reply);
        } else if let Some(len) = reply
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            reply.framing = Framing::Length(len);
            self.read_length(&mut reply, len);
        } else {
            reply.framing = Framing::Close;
            self.read_to_close(&mut reply);
        }
        Answer::Reply(reply)
    }

    /// Reads header lines up to the empty one; false if the connection ended first.
    fn read_headers(&mut self, reply: &mut Reply) -> bool {
        loop {
            let mut h = String::new();
            match self.reader.read_line(&mut h) {
                Ok(0) => return false,
                Err(e) => {
                    reply.timed_out = is_timeout(&e);
                    return false;
                }
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                return true;
            }
            if let Some((n, v)) = h.split_once(':') {
                reply
                    .headers
                    .push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }

    fn read_chunked(&mut self, reply: &mut Reply) {
        loop {
            let mut size = String::new();
            match self.reader.read_line(&mut size) {
                Ok(0) => return,
                Err(e) => {
                    reply.timed_out = is_timeout(&e);
                    return;
                }
                Ok(_) => {}
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return;
            };
            if n == 0 {
                // Trailers (none expected), then the empty line that ends the body.
                loop {
                    let mut t = String::new();
                    match self.reader.read_line(&mut t) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if t.trim_end().is_empty() => {
                            reply.complete = true;
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }
            let mut chunk = vec![0u8; n + 2];
            if let Err(e) = self.reader.read_exact(&mut chunk) {
                reply.timed_out = is_timeout(&e);
                return;
            }
            reply.arrived(&chunk[..n]);
        }
    }

    fn read_length(&mut self, reply: &mut Reply, len: u64) {
        let mut buf = vec![0u8; 64 << 10];
        reply.body.reserve(len.min(1 << 30) as usize);
        while (reply.body.len() as u64) < len {
            let want = buf.len().min((len - reply.body.len() as u64) as usize);
            match self.reader.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => reply.arrived(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    reply.timed_out = is_timeout(&e);
                    break;
                }
            }
        }
        reply.complete = reply.body.len() as u64 == len;
    }

    fn read_to_close(&mut self, reply: &mut Reply) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => {
                    reply.complete = true;
                    return;
                }
                Ok(n) => reply.arrived(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    reply.timed_out = is_timeout(&e);
                    return;
                }
            }
        }
    }

    /// Whether the server closed the connection (reads EOF within `wait`).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// `GET path` on a fresh connection that closes afterwards.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    get_with(addr, path, "")
}

/// `GET path` with `extra` header lines (each ending in `\r\n`, as `Range: bytes=5-\r\n`)
/// on a fresh connection that closes afterwards.
pub fn get_with(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    request(addr, &get_request(path, extra))
}

/// Like [`get_with`], and how long the answer's first byte (of its status line) took
/// to arrive, connecting included.
pub fn timed_get(addr: SocketAddr, path: &str, extra: &str) -> (Duration, Reply) {
    let sent = Instant::now();
    let mut c = Conn::open(addr);
    c.send(&get_request(path, extra));
    let mut first = [0u8; 1];
    c.stream().peek(&mut first).expect("a response");
    let took = sent.elapsed();
    (took, c.read(false))
}

fn get_request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n")
}

/// `HEAD path` on a fresh connection.
pub fn head(addr: SocketAddr, path: &str) -> Reply {
    let mut c = Conn::open(addr);
    c.send(&format!(
        "HEAD {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    ));
    c.read(true)
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn request(addr: SocketAddr, raw: &str) -> Reply {
    let mut c = Conn::open(addr);
    c.send(raw);
    c.read(raw.starts_with("HEAD "))
}

//! A raw HTTP/1.1 client that reports exactly what arrived: status, headers, body bytes,
//! whether the body was complete, and whether it was chunked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended where its framing said it would.
    pub complete: bool,
    /// The body used chunked transfer encoding.
    pub chunked: bool,
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
}

/// One connection, for keep-alive and pipelining tests.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, raw: &str) {
        self.reader
            .get_mut()
            .write_all(raw.as_bytes())
            .expect("send");
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

    /// Reads one response, `None` if the connection closed before a status line.
    pub fn try_read(&mut self, head: bool) -> Option<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
            complete: true,
            chunked: false,
        };
        let no_body = head || status == 304 || status == 204 || (100..200).contains(&status);
        if no_body {
            return Some(reply);
        }
        if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            reply.chunked = true;
            reply.complete = self.read_chunked(&mut reply.body);
        } else if let Some(len) = reply
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            let got = (&mut self.reader)
                .take(len)
                .read_to_end(&mut reply.body)
                .unwrap_or(0);
            reply.complete = got as u64 == len && reply.body.len() as u64 == len;
        } else {
            let _ = self.reader.read_to_end(&mut reply.body);
        }
        Some(reply)
    }

    fn read_chunked(&mut self, body: &mut Vec<u8>) -> bool {
        loop {
            let mut size = String::new();
            if self.reader.read_line(&mut size).unwrap_or(0) == 0 {
                return false;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return false;
            };
            if n == 0 {
                let mut end = String::new();
                let _ = self.reader.read_line(&mut end);
                return true;
            }
            let mut chunk = vec![0; n];
            if self.reader.read_exact(&mut chunk).is_err() {
                return false;
            }
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            if self.reader.read_exact(&mut crlf).is_err() {
                return false;
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
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
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

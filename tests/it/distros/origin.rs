//! The origin mirror: a static file server over a directory, on 127.0.0.1:0, the way
//! a plain web server serves a distribution's mirror. It follows symlinks (repo-add's
//! `core.db` is one), sends `Last-Modified` (the file's mtime) and an `ETag` (size and
//! mtime in nanoseconds), answers `If-None-Match` and, without it,
//! `If-Modified-Since` with 304, honours `Range: bytes=a-b`, HEAD and keep-alive, and
//! records every request with the status it got. Stops on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use package_cache::http::date;

use crate::support::TempDir;

/// One request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Decoded, without the query.
    pub path: String,
    /// It carried `If-None-Match` or `If-Modified-Since`.
    pub conditional: bool,
    pub status: u16,
}

/// The origin; its document root is a temporary directory.
pub struct Origin {
    root: TempDir,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    pub fn start() -> Origin {
        let root = TempDir::new("origin");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, log, halt) = (root.path().to_path_buf(), seen.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (dir, log) = (dir.clone(), log.clone());
                thread::spawn(move || serve(conn, &dir, &log));
            }
        });
        Origin {
            root,
            addr,
            seen,
            stop,
        }
    }

    /// The document root: `root()/debian/dists/…` is `URL/debian/dists/…`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The base URL, for `--source` or a client's configuration.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests so far (a mark for [`Origin::seen_since`]).
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The requests after the first `mark`.
    pub fn seen_since(&self, mark: usize) -> Vec<Seen> {
        self.seen.lock().unwrap()[mark..].to_vec()
    }

    /// Requests for `path` (any method, any status).
    pub fn hits(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .count()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    close: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    // Bodies are not expected; a request announcing one is read and dropped.
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0);
    std::io::copy(&mut reader.take(length), &mut std::io::sink()).ok()?;
    let target = target.split('?').next().unwrap_or(target);
    let target = target
        .strip_prefix("http://")
        .and_then(|t| t.find('/').map(|i| &t[i..]))
        .unwrap_or(target);
    let path = package_cache::http::path::decode(target).unwrap_or_else(|_| target.to_owned());
    let connection = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Connection"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let close = match connection.as_deref() {
        Some(c) if c.contains("close") => true,
        Some(c) if c.contains("keep-alive") => false,
        _ => version == "HTTP/1.0",
    };
    Some(Request {
        method: method.to_owned(),
        path,
        headers,
        close,
    })
}

fn serve(conn: TcpStream, root: &Path, seen: &Mutex<Vec<Seen>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut conn = conn;
    while let Some(req) = read_request(&mut reader) {
        let (status, head, body) = answer(&req, root);
        seen.lock().unwrap().push(Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            conditional: req.header("If-None-Match").is_some()
                || req.header("If-Modified-Since").is_some(),
            status,
        });
        let reason = match status {
            200 => "OK",
            206 => "Partial Content",
            304 => "Not Modified",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Range Not Satisfiable",
        };
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\nDate: {}\r\n",
            date::format(SystemTime::now())
        );
        out.push_str(&head);
        if status != 304 {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if req.close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if req.method != "HEAD" && status != 304 {
            bytes.extend_from_slice(&body);
        }
        if conn.write_all(&bytes).is_err() || req.close {
            return;
        }
    }
}

/// The file `path` names under `root`, if it is a file there (symlinks followed).
fn resolve(root: &Path, path: &str) -> Option<(PathBuf, std::fs::Metadata)> {
    let rel = path.strip_prefix('/')?;
    if rel
        .split('/')
        .any(|seg| seg == ".." || seg == "." || seg.contains('\0'))
    {
        return None;
    }
    let file = root.join(rel);
    let meta = std::fs::metadata(&file).ok()?;
    meta.is_file().then_some((file, meta))
}

fn etag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{mtime:x}\"", meta.len())
}

fn answer(req: &Request, root: &Path) -> (u16, String, Vec<u8>) {
    if req.method != "GET" && req.method != "HEAD" {
        return (405, String::new(), b"method not allowed\n".to_vec());
    }
    let Some((file, meta)) = resolve(root, &req.path) else {
        return (404, String::new(), b"not found\n".to_vec());
    };
    let Ok(body) = std::fs::read(&file) else {
        return (404, String::new(), b"not found\n".to_vec());
    };
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let tag = etag(&meta);
    let mut head = format!(
        "Last-Modified: {}\r\nETag: {tag}\r\nAccept-Ranges: bytes\r\n",
        date::format(modified)
    );
    // RFC 9110 13.2.2: If-None-Match wins; If-Modified-Since only without it.
    let not_modified = match req.header("If-None-Match") {
        Some(inm) => inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == tag),
        None => req
            .header("If-Modified-Since")
            .and_then(date::parse)
            .is_some_and(|ims| date::unix_seconds(modified) <= date::unix_seconds(ims)),
    };
    if not_modified {
        return (304, head, Vec::new());
    }
    let total = body.len() as u64;
    let range = req
        .header("Range")
        .and_then(|r| r.strip_prefix("bytes="))
        .filter(|r| !r.contains(','))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let first: u64 = a.parse().ok()?;
            let last: u64 = if b.is_empty() {
                total.saturating_sub(1)
            } else {
                b.parse().ok()?
            };
            Some((first, last.min(total.saturating_sub(1))))
        });
    match range {
        Some((first, _)) if first >= total => {
            head.push_str(&format!("Content-Range: bytes */{total}\r\n"));
            (416, head, Vec::new())
        }
        Some((first, last)) if first <= last => {
            head.push_str(&format!("Content-Range: bytes {first}-{last}/{total}\r\n"));
            (206, head, body[first as usize..=last as usize].to_vec())
        }
        _ => (200, head, body),
    }
}

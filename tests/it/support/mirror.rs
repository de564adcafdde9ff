//! A fake upstream mirror on 127.0.0.1:0, written on raw sockets so faults can be
//! exact: a status, a reset or a clean close after N body bytes, a stall, a slow rate,
//! no length, chunked bodies, a redirect, an older copy of a file. It counts requests
//! per path and records every request and every body sent whole.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use package_cache::http::date;

/// A misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a short body.
    Status(u16),
    /// Send the headers (full length) and N body bytes, then reset the connection.
    ResetAfter(usize),
    /// Send the headers (full length) and N body bytes, then close cleanly.
    ShortBody(usize),
    /// Send N body bytes, pause, then send the rest.
    StallAfter(usize, Duration),
    /// Wait before sending anything.
    StallHeaders(Duration),
    /// Send the body at this many bytes per second.
    Rate(u64),
    /// No Content-Length: the end of the body is the end of the connection.
    NoLength,
    /// Chunked transfer encoding.
    Chunked,
    /// Ignore Range headers (always answer 200).
    IgnoreRange,
    /// Answer `301 Moved Permanently` with this `Location` (a directory's `path/`).
    Redirect(String),
    /// Serve this copy instead of the file's current one, headers and conditional
    /// answers included (a mirror that lags behind serves an older version with its
    /// older Last-Modified). The copy's own `faults` are not applied.
    ServeInstead(FakeFile),
}

/// Chooses extra faults for each request, from its method and decoded path (soak
/// tests: random faults from a seeded generator). Runs with the mirror's state locked,
/// so it must not call the mirror.
pub type FaultPicker = Box<dyn FnMut(&str, &str) -> Vec<Fault> + Send>;

/// A file the fake mirror serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeFile {
    pub body: Vec<u8>,
    pub last_modified: Option<SystemTime>,
    pub etag: Option<String>,
    /// Faults applied to every request for this file.
    pub faults: Vec<Fault>,
}

impl FakeFile {
    pub fn new(body: impl Into<Vec<u8>>) -> FakeFile {
        FakeFile {
            body: body.into(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_600_000_000)),
            etag: None,
            faults: Vec::new(),
        }
    }

    pub fn with_fault(mut self, f: Fault) -> FakeFile {
        self.faults.push(f);
        self
    }

    /// With Last-Modified `secs` seconds after the epoch.
    pub fn modified_at(mut self, secs: u64) -> FakeFile {
        self.last_modified = Some(UNIX_EPOCH + Duration::from_secs(secs));
        self
    }
}

/// One request as the mirror saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    files: HashMap<String, FakeFile>,
    once: HashMap<String, VecDeque<Vec<Fault>>>,
    seen: Vec<Seen>,
    sent: HashMap<String, u64>,
    finished: HashMap<String, usize>,
    /// Bodies sent whole, with when they ended.
    completions: Vec<(String, Instant)>,
    picker: Option<FaultPicker>,
    active: usize,
}

/// The fake mirror; stops on drop.
pub struct FakeMirror {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeMirror {
    pub fn start() -> FakeMirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake mirror");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(conn, &st));
            }
        });
        FakeMirror { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, for `--source`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.put_file(path, FakeFile::new(body));
    }

    pub fn put_file(&self, path: &str, file: FakeFile) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), file);
    }

    /// Serves `path` as a directory does on a real mirror: `301` to `path/`, where
    /// [`listing`] is served. Returns the listing.
    pub fn put_directory(&self, path: &str) -> Vec<u8> {
        let dir = format!("{}/", path.trim_end_matches('/'));
        let mut redirect = FakeFile::new(&b"moved\n"[..]);
        redirect.faults.push(Fault::Redirect(dir.clone()));
        self.put_file(path, redirect);
        let listing = listing(path);
        self.put(&dir, listing.clone());
        listing
    }

    /// Applies `faults` to the next request for `path` only (queued in order).
    pub fn fail_next(&self, path: &str, faults: Vec<Fault>) {
        let mut s = self.state.lock().unwrap();
        s.once.entry(path.to_owned()).or_default().push_back(faults);
    }

    /// Replaces the persistent faults of `path`.
    pub fn set_faults(&self, path: &str, faults: Vec<Fault>) {
        if let Some(f) = self.state.lock().unwrap().files.get_mut(path) {
            f.faults = faults;
        }
    }

    /// Requests for `path` (any method).
    pub fn hits(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    /// `GET` requests for `path`.
    pub fn gets(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path == path && s.method == "GET")
            .count()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The requests for `path`, in order.
    pub fn seen_for(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Body bytes sent for `path` so far (all requests).
    pub fn sent(&self, path: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .sent
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Installs (or, with `None`, removes) a picker adding faults to every request
    /// from now on, after the file's own and the queued ones.
    pub fn set_picker(&self, picker: Option<FaultPicker>) {
        self.state.lock().unwrap().picker = picker;
    }

    /// Connections being served right now (from accept to the last byte or fault).
    pub fn active(&self) -> usize {
        self.state.lock().unwrap().active
    }

    /// `GET` requests so far, by path (one pass, without copying every request).
    pub fn get_counts(&self) -> HashMap<String, usize> {
        let s = self.state.lock().unwrap();
        let mut counts = HashMap::new();
        for seen in s.seen.iter().filter(|s| s.method == "GET") {
            *counts.entry(seen.path.clone()).or_default() += 1;
        }
        counts
    }

    /// Requests so far.
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    /// Every body sent whole so far (path, when its last byte went out), in order.
    pub fn completions(&self) -> Vec<(String, Instant)> {
        self.state.lock().unwrap().completions.clone()
    }

    /// Complete bodies sent for `path`.
    pub fn finished(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .finished
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// The small HTML "directory listing" [`FakeMirror::put_directory`] serves at `path/`.
pub fn listing(path: &str) -> Vec<u8> {
    let dir = format!("{}/", path.trim_end_matches('/'));
    format!(
        "<html><head><title>Index of {dir}</title></head><body><h1>Index of {dir}</h1>\n\
         <pre><a href=\"../\">../</a>\n</pre></body></html>\n"
    )
    .into_bytes()
}

impl Drop for FakeMirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn decode(path: &str) -> String {
    package_cache::http::path::decode(path).unwrap_or_else(|_| path.to_owned())
}

/// Counts a connection in [`FakeMirror::active`] while it lives.
struct Active<'a>(&'a Mutex<State>);

impl<'a> Active<'a> {
    fn enter(state: &'a Mutex<State>) -> Active<'a> {
        state.lock().unwrap().active += 1;
        Active(state)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.active -= 1;
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let _active = Active::enter(state);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let path = decode(target.split('?').next().unwrap_or(target));
    let seen = Seen {
        method: method.to_owned(),
        path: path.clone(),
        headers,
    };
    let (file, faults) = {
        let mut s = state.lock().unwrap();
        s.seen.push(seen.clone());
        let file = s.files.get(&path).cloned();
        let mut faults = file.as_ref().map(|f| f.faults.clone()).unwrap_or_default();
        if let Some(extra) = s.once.get_mut(&path).and_then(VecDeque::pop_front) {
            faults.extend(extra);
        }
        if let Some(picker) = s.picker.as_mut() {
            faults.extend(picker(method, &path));
        }
        let instead = faults.iter().rev().find_map(|f| match f {
            Fault::ServeInstead(copy) => Some(copy.clone()),
            _ => None,
        });
        (instead.or(file), faults)
    };
    respond(conn, &seen, file, &faults, state);
}

fn respond(
    mut conn: TcpStream,
    req: &Seen,
    file: Option<FakeFile>,
    faults: &[Fault],
    state: &Mutex<State>,
) {
    for f in faults {
        if let Fault::StallHeaders(d) = f {
            thread::sleep(*d);
        }
    }
    if let Some(Fault::Status(code)) = faults.iter().find(|f| matches!(f, Fault::Status(_))) {
        let body = format!("{code} from fake\n");
        let _ = write!(
            conn,
            "HTTP/1.1 {code} Fake\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    if let Some(Fault::Redirect(to)) = faults.iter().find(|f| matches!(f, Fault::Redirect(_))) {
        let body = if req.method == "HEAD" { "" } else { "moved\n" };
        let _ = write!(
            conn,
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 6\r\n\
             Connection: close\r\n\r\n{body}"
        );
        return;
    }
    let Some(file) = file else {
        let _ = conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n",
        );
        return;
    };
    let total = file.body.len();
    let not_modified = match (req.header("If-None-Match"), &file.etag) {
        (Some(inm), Some(tag)) => inm == tag,
        (Some(_), None) => false,
        (None, _) => match (
            req.header("If-Modified-Since").and_then(date::parse),
            file.last_modified,
        ) {
            (Some(ims), Some(lm)) => date::unix_seconds(lm) <= date::unix_seconds(ims),
            _ => false,
        },
    };
    let mut head = String::new();
    let mut start = 0;
    let status;
    if not_modified {
        status = "304 Not Modified";
    } else if let Some(from) = req
        .header("Range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|_| !faults.contains(&Fault::IgnoreRange))
    {
        if from >= total {
            let _ = write!(
                conn,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        status = "206 Partial Content";
        start = from;
        head.push_str(&format!(
            "Content-Range: bytes {from}-{}/{total}\r\n",
            total - 1
        ));
    } else {
        status = "200 OK";
    }
    if let Some(t) = file.last_modified {
        head.push_str(&format!("Last-Modified: {}\r\n", date::format(t)));
    }
    if let Some(tag) = &file.etag {
        head.push_str(&format!("ETag: {tag}\r\n"));
    }
    let body = &file.body[start..];
    let chunked = faults.contains(&Fault::Chunked);
    if not_modified {
    } else if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else if !faults.contains(&Fault::NoLength) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if conn
        .write_all(format!("HTTP/1.1 {status}\r\n{head}Connection: close\r\n\r\n").as_bytes())
        .is_err()
        || req.method == "HEAD"
        || not_modified
    {
        return;
    }
    let cut = faults.iter().find_map(|f| match f {
        Fault::ResetAfter(n) => Some((*n, true)),
        Fault::ShortBody(n) => Some((*n, false)),
        _ => None,
    });
    let stall = faults.iter().find_map(|f| match f {
        Fault::StallAfter(n, d) => Some((*n, *d)),
        _ => None,
    });
    let rate = faults.iter().find_map(|f| match f {
        Fault::Rate(r) => Some(*r),
        _ => None,
    });
    let limit = cut.map_or(body.len(), |(n, _)| n.min(body.len()));
    let block = rate.map_or(64 * 1024, |r| ((r / 50) as usize).clamp(1, 64 * 1024));
    let began = Instant::now();
    let mut sent = 0;
    let mut stalled = false;
    while sent < limit {
        if let Some((at, d)) = stall
            && !stalled
            && sent >= at
        {
            stalled = true;
            thread::sleep(d);
        }
        let mut n = block.min(limit - sent);
        if let Some((at, _)) = stall.filter(|_| !stalled) {
            n = n.min(at - sent).max(1);
        }
        let chunk = &body[sent..sent + n];
        let ok = if chunked {
            conn.write_all(format!("{n:x}\r\n").as_bytes())
                .and_then(|()| conn.write_all(chunk))
                .and_then(|()| conn.write_all(b"\r\n"))
        } else {
            conn.write_all(chunk)
        };
        if ok.is_err() {
            return;
        }
        sent += n;
        *state
            .lock()
            .unwrap()
            .sent
            .entry(req.path.clone())
            .or_default() += n as u64;
        if let Some(r) = rate {
            let due = began + Duration::from_secs_f64(sent as f64 / r as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
    }
    match cut {
        Some((_, true)) => reset(conn),
        Some((_, false)) => {}
        None => {
            if chunked {
                let _ = conn.write_all(b"0\r\n\r\n");
            }
            let mut s = state.lock().unwrap();
            *s.finished.entry(req.path.clone()).or_default() += 1;
            s.completions.push((req.path.clone(), Instant::now()));
        }
    }
}

/// Closes with RST instead of FIN (SO_LINGER 0).
fn reset(conn: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket and a live linger struct.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}

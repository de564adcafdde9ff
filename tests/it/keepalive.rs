//! Every answer starts at once, also when many connections arrive together: behind
//! nginx with upstream `keepalive` (its pool opens a burst of new connections and keeps
//! them), for a burst of new keep-alive clients, and for a herd on one cold file.
//!
//! tiny_http hands each new connection to a thread pool that can leave some of a burst
//! queued behind connections that stay open; without help they wait until some other
//! connection ends. These tests hold their connections open, as nginx does, and assert
//! that every first byte arrives within a second. Each prints the slowest first byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::tools::require_tool;
use crate::support::*;

/// Every answer's first byte must arrive within this.
const LIMIT: Duration = Duration::from_secs(1);
/// How long a client waits for a first byte before giving up (keeps a failing run short).
const GIVE_UP: Duration = Duration::from_secs(8);
/// The servers' idle timeout: short, so that a failing run ends soon (with tiny_http
/// 0.12's pool, stalled connections were freed only when others timed out, far later
/// than `LIMIT`), yet longer than any scenario here.
const IDLE: Duration = Duration::from_secs(6);

/// The scenarios measure time; running them one at a time keeps them from sharing two
/// cores with each other.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cache with a short idle timeout and room for every connection of a burst.
fn cache(sources: &[String]) -> TestCache {
    TestCache::start_with(sources, |c| {
        c.idle_timeout = IDLE;
        c.threads = 64;
    })
}

/// One answer: when its first byte came (from sending the request), and its status.
#[derive(Clone, Copy, Debug)]
struct Timed {
    first_byte: Duration,
    status: u16,
    complete: bool,
}

/// A request that got no answer.
const FAILED: Timed = Timed {
    first_byte: GIVE_UP,
    status: 0,
    complete: false,
};

/// Sends `GET path` on `stream` and reads one whole answer (Content-Length framed).
fn timed_get<S: Read + Write>(stream: &mut S, path: &str, close: bool) -> Timed {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let sent = Instant::now();
    if write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n{connection}\r\n").is_err() {
        return FAILED;
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut first_byte = None;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        first_byte.get_or_insert_with(|| sent.elapsed());
        raw.extend_from_slice(&buf[..n]);
        if let Some((status, want)) = framed_length(&raw)
            && raw.len() >= want
        {
            return Timed {
                first_byte: first_byte.unwrap_or(GIVE_UP),
                status,
                complete: raw.len() == want,
            };
        }
    }
    Timed {
        first_byte: first_byte.unwrap_or(GIVE_UP),
        ..FAILED
    }
}

/// The status and the total length (head plus Content-Length) of the answer in `raw`,
/// once its head is complete.
fn framed_length(raw: &[u8]) -> Option<(u16, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    })?;
    Some((status, end + length))
}

fn tcp(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, GIVE_UP).ok()?;
    s.set_read_timeout(Some(GIVE_UP)).ok()?;
    s.set_nodelay(true).ok()?;
    Some(s)
}

/// The slowest first byte, and a line that says how the answers went.
fn summary(what: &str, results: &[Timed]) -> Duration {
    let mut times: Vec<Duration> = results.iter().map(|t| t.first_byte).collect();
    times.sort();
    let slowest = times.last().copied().unwrap_or_default();
    let late = times.iter().filter(|t| **t >= LIMIT).count();
    println!(
        "{what}: {} answers, first byte median {:?}, slowest {:?}, {late} later than {:?}",
        times.len(),
        times[times.len() / 2],
        slowest,
        LIMIT
    );
    slowest
}

fn assert_prompt(what: &str, results: &[Timed]) {
    let slowest = summary(what, results);
    for t in results {
        assert!(
            t.status == 200 && t.complete,
            "{what}: an answer failed: {t:?}"
        );
    }
    assert!(
        slowest < LIMIT,
        "{what}: the slowest answer started after {slowest:?}"
    );
}

/// `clients` connections opened at once; each asks for `path` once (keep-alive, or
/// with `Connection: close` if `close`) and keeps its connection open until every
/// client has its answer (or gave up), as a connection pool does.
fn burst_of_new_connections(
    addr: SocketAddr,
    clients: usize,
    path: &str,
    close: bool,
) -> Vec<Timed> {
    let start = Arc::new(Barrier::new(clients));
    let done = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (start, done, path) = (start.clone(), done.clone(), path.to_owned());
            thread::spawn(move || {
                start.wait();
                let mut conn = tcp(addr);
                let timed = match conn.as_mut() {
                    Some(c) => timed_get(c, &path, close),
                    None => FAILED,
                };
                done.wait();
                drop(conn);
                timed
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_burst_of_new_connections_is_answered_at_once() {
    let _serial = one_at_a_time();
    let mirror = FakeMirror::start();
    mirror.put("/warm", bytes(4 << 10, 1));
    let mut all = Vec::new();
    // A fresh server each round: the burst meets a pool that has never been busy. The
    // last round's clients say `Connection: close`, so the server does not nudge.
    for round in 0..4 {
        let cache = cache(&[mirror.url()]);
        assert_eq!(cache.get("/warm").status, 200);
        all.extend(burst_of_new_connections(
            cache.addr,
            64,
            "/warm",
            round == 3,
        ));
    }
    assert_prompt(
        "burst of 64 new connections, 3 servers keep-alive, 1 close",
        &all,
    );
}

#[test]
fn a_herd_on_one_cold_file_gets_first_bytes_at_once() {
    let _serial = one_at_a_time();
    let mirror = FakeMirror::start();
    let mut all = Vec::new();
    for round in 0..2 {
        let path = format!("/distfiles/cold-herd-{round}.tar.xz");
        // 3 MiB at 2 MiB/s: the download takes about 1.5 s, longer than LIMIT.
        mirror.put_file(
            &path,
            FakeFile::new(bytes(3 << 20, round)).with_fault(Fault::Rate(2 << 20)),
        );
        let cache = cache(&[mirror.url()]);
        all.extend(herd(cache.addr, 32, &path));
        assert_eq!(mirror.gets(&path), 1, "one upstream request for {path}");
    }
    assert_prompt("herd of 32 on one cold file, 2 servers", &all);
}

/// `clients` keep-alive clients ask for `path` at once, each closing its connection
/// once its own body is complete (as curl and wget do).
fn herd(addr: SocketAddr, clients: usize, path: &str) -> Vec<Timed> {
    let start = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (start, path) = (start.clone(), path.to_owned());
            thread::spawn(move || {
                start.wait();
                match tcp(addr) {
                    Some(mut conn) => timed_get(&mut conn, &path, false),
                    None => FAILED,
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// A real nginx, run in the foreground with everything under a temporary prefix;
/// stopped with its workers on drop.
struct Nginx {
    _daemon: Daemon,
    socket: PathBuf,
    dir: TempDir,
}

impl Nginx {
    /// Proxies a Unix socket to `upstreams` with upstream keep-alive, as a site that
    /// puts nginx in front of package-cache for TLS or sharding does.
    fn start(binary: &Path, upstreams: &[SocketAddr]) -> Nginx {
        let dir = TempDir::new("nginx");
        let prefix = dir.path();
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(prefix.join(sub)).unwrap();
        }
        let socket = prefix.join("nginx.sock");
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a};\n"))
            .collect();
        let tmp = prefix.join("tmp");
        let tmp = tmp.display();
        let conf = format!(
            "worker_processes 2;\n\
             pid {prefix}/logs/nginx.pid;\n\
             error_log {prefix}/logs/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
                 access_log off;\n\
                 client_body_temp_path {tmp}/body;\n\
                 proxy_temp_path {tmp}/proxy;\n\
                 fastcgi_temp_path {tmp}/fastcgi;\n\
                 uwsgi_temp_path {tmp}/uwsgi;\n\
                 scgi_temp_path {tmp}/scgi;\n\
                 upstream package_cache {{\n{servers}        keepalive 64;\n    }}\n\
                 server {{\n\
                     listen unix:{socket};\n\
                     keepalive_requests 100000;\n\
                     location / {{\n\
                         proxy_pass http://package_cache;\n\
                         proxy_http_version 1.1;\n\
                         proxy_set_header Connection \"\";\n\
                         proxy_buffering off;\n\
                     }}\n\
                 }}\n\
             }}\n",
            prefix = prefix.display(),
            socket = socket.display(),
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let daemon = Daemon::spawn(
            Command::new(binary)
                .arg("-p")
                .arg(prefix)
                .arg("-e")
                .arg(prefix.join("logs/error.log"))
                .arg("-c")
                .arg(prefix.join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("start nginx");
        let nginx = Nginx {
            _daemon: daemon,
            socket,
            dir,
        };
        let up = wait_until(Duration::from_secs(10), || {
            UnixStream::connect(&nginx.socket).is_ok()
        });
        assert!(up, "nginx did not start: {}", nginx.error_log());
        nginx
    }

    fn connect(&self) -> Option<UnixStream> {
        let s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(GIVE_UP)).ok()?;
        Some(s)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

#[test]
fn behind_nginx_with_upstream_keepalive_every_answer_starts_at_once() {
    let Some(binary) = require_tool("nginx") else {
        return;
    };
    let _serial = one_at_a_time();
    let mirror = FakeMirror::start();
    let files: Vec<String> = (0..30).map(|i| format!("/distfiles/f{i}.tar.gz")).collect();
    for (i, f) in files.iter().enumerate() {
        mirror.put(f, bytes(16 << 10, i as u64));
    }
    let mut all = Vec::new();
    // Fresh caches and a fresh nginx each round, so each round opens its burst of
    // upstream connections.
    for _round in 0..3 {
        all.extend(through_nginx(&binary, &mirror, &files));
    }
    assert_prompt(
        "48 clients x 10 requests through nginx, keepalive 64, 3 rounds",
        &all,
    );
}

/// Three caches behind one nginx; 48 clients at once, 10 requests each on one
/// keep-alive connection to nginx, which opens a burst of new connections to the
/// caches, keeps them, and reuses them.
fn through_nginx(binary: &Path, mirror: &FakeMirror, files: &[String]) -> Vec<Timed> {
    let caches: Vec<TestCache> = (0..3).map(|_| cache(&[mirror.url()])).collect();
    for (i, f) in files.iter().enumerate() {
        assert_eq!(caches[i % 3].get(f).status, 200, "warming {f}");
    }
    let addrs: Vec<SocketAddr> = caches.iter().map(|c| c.addr).collect();
    let nginx = Arc::new(Nginx::start(binary, &addrs));
    let clients = 48;
    let start = Arc::new(Barrier::new(clients));
    let files = Arc::new(files.to_vec());
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (start, nginx, files) = (start.clone(), nginx.clone(), files.clone());
            thread::spawn(move || {
                start.wait();
                let mut out = Vec::new();
                let Some(mut conn) = nginx.connect() else {
                    return vec![FAILED];
                };
                for r in 0..10 {
                    let t = timed_get(&mut conn, &files[(c * 7 + r) % files.len()], false);
                    out.push(t);
                    if t.status != 200 || !t.complete {
                        break; // one failure is enough, and keeps a failing run short
                    }
                }
                out
            })
        })
        .collect();
    let results: Vec<Timed> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let log = nginx.error_log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[error]") || l.contains("[crit]"))
        .take(5)
        .collect();
    assert!(bad.is_empty(), "nginx logged errors: {bad:#?}");
    results
}

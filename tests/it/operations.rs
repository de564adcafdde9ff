//! Running it for real: the size cap, `cull`, metrics, the status page, `--allow`,
//! upstream proxies, IPv6 and SIGTERM with a download in progress.

use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime};

use crate::support::process::{Process, output};
use crate::support::proxy::SquidLike;
use crate::support::{
    Conn, FakeFile, FakeMirror, Fault, TempDir, TestCache, bytes, get, wait_until,
};

const KB: usize = 1024;

/// Total bytes of the regular files below `root`.
fn disk_usage(root: &Path) -> u64 {
    crate::support::list_files(root)
        .iter()
        .filter_map(|f| fs::metadata(root.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// One sample of the Prometheus text, e.g. `requests_total{result="hit"}`.
fn metric(text: &str, sample: &str) -> Option<f64> {
    let name = format!("package_cache_{sample} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|v| v.trim().parse().ok())
}

fn scrape(addr: SocketAddr) -> String {
    let reply = get(addr, "/-/metrics");
    assert_eq!(reply.status, 200);
    reply.text()
}

#[test]
fn the_cap_evicts_the_least_recently_used_file() {
    let mirror = FakeMirror::start();
    for (name, seed) in [("a", 1), ("b", 2), ("c", 3)] {
        mirror.put(&format!("/pkgs/{name}.tbz2"), bytes(100 * KB, seed));
    }
    let cache = TestCache::start_with(&[mirror.url()], |c| c.max_size = Some(250 * KB as u64));
    let index = cache.cache.index().clone();
    assert!(wait_until(Duration::from_secs(5), || index.stats().ready));
    assert_eq!(cache.get("/pkgs/a.tbz2").status, 200);
    assert_eq!(cache.get("/pkgs/b.tbz2").status, 200);
    cache.settle();
    // A hit makes `a` the most recently used, so `b` is now the oldest.
    assert_eq!(cache.get("/pkgs/a.tbz2").header("X-Cache"), Some("HIT"));
    assert_eq!(cache.get("/pkgs/c.tbz2").body, bytes(100 * KB, 3));
    cache.settle();
    assert!(
        wait_until(Duration::from_secs(5), || cache
            .cached("/pkgs/b.tbz2")
            .is_none()),
        "b was evicted: {:?}",
        cache.files()
    );
    assert_eq!(cache.cached("/pkgs/a.tbz2"), Some(bytes(100 * KB, 1)));
    assert_eq!(cache.cached("/pkgs/c.tbz2"), Some(bytes(100 * KB, 3)));
    let stats = index.stats();
    assert_eq!(
        (stats.files, stats.bytes, stats.evictions),
        (2, 200 * KB as u64, 1)
    );
    // Evicted means gone: the next request downloads it again.
    assert_eq!(cache.get("/pkgs/b.tbz2").header("X-Cache"), Some("MISS"));
    assert_eq!(mirror.gets("/pkgs/b.tbz2"), 2);
}

#[test]
fn the_cap_holds_after_a_burst() {
    let mirror = FakeMirror::start();
    for i in 0..24 {
        mirror.put(&format!("/pkgs/f{i}.tbz2"), bytes(50 * KB, i));
    }
    let cap = 300 * KB as u64;
    let cache = TestCache::start_with(&[mirror.url()], |c| c.max_size = Some(cap));
    let addr = cache.addr;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            thread::spawn(move || {
                for i in (t..24).step_by(8) {
                    let reply = get(addr, &format!("/pkgs/f{i}.tbz2"));
                    assert_eq!(reply.status, 200);
                    assert_eq!(reply.body, bytes(50 * KB, i as u64), "f{i}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    cache.settle();
    assert!(
        wait_until(Duration::from_secs(5), || disk_usage(cache.root()) <= cap),
        "{} bytes on disk over a cap of {cap}",
        disk_usage(cache.root())
    );
    let stats = cache.cache.index().stats();
    assert!(stats.bytes <= cap && stats.evictions >= 18, "{stats:?}");
    assert_eq!(stats.bytes, disk_usage(cache.root()));
    // No download ran twice.
    assert!((0..24).all(|i| mirror.gets(&format!("/pkgs/f{i}.tbz2")) == 1));
}

#[test]
fn files_being_read_and_downloads_in_progress_survive_eviction() {
    let mirror = FakeMirror::start();
    mirror.put("/pkgs/x.tbz2", bytes(1024 * KB, 1));
    mirror.put("/pkgs/y.tbz2", bytes(1024 * KB, 2));
    mirror.put("/pkgs/big.tbz2", bytes(8192 * KB, 3));
    mirror.put("/pkgs/new.tbz2", bytes(1024 * KB, 4));
    mirror.put_file(
        "/pkgs/slow.tbz2",
        FakeFile::new(bytes(600 * KB, 5)).with_fault(Fault::Rate(600 * KB as u64)),
    );
    let cap = 10 * 1024 * KB as u64 + 512 * KB as u64;
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        c.max_size = Some(cap);
        c.send_timeout = Duration::from_secs(20);
    });
    for p in ["/pkgs/x.tbz2", "/pkgs/y.tbz2", "/pkgs/big.tbz2"] {
        assert_eq!(cache.get(p).status, 200);
    }
    cache.settle();
    // A client starts reading `big` and stops: the response stays in progress.
    let mut stalled = Conn::open(cache.addr);
    stalled.stream().set_nodelay(true).expect("socket option");
    stalled.send("GET /pkgs/big.tbz2 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(300));
    // x and y are used after big, so big is the least recently used file.
    thread::sleep(Duration::from_millis(20));
    assert_eq!(cache.get("/pkgs/x.tbz2").header("X-Cache"), Some("HIT"));
    assert_eq!(cache.get("/pkgs/y.tbz2").header("X-Cache"), Some("HIT"));
    // A download in progress while the cap is exceeded is not touched either.
    let addr = cache.addr;
    let slow = thread::spawn(move || get(addr, "/pkgs/slow.tbz2"));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(cache.get("/pkgs/new.tbz2").status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || cache
            .cached("/pkgs/x.tbz2")
            .is_none()),
        "x, the oldest file nobody is reading, goes first: {:?}",
        cache.files()
    );
    assert_eq!(
        cache.cached("/pkgs/big.tbz2").map(|b| b.len()),
        Some(8192 * KB)
    );
    let slow = slow.join().expect("slow client");
    assert_eq!(slow.body, bytes(600 * KB, 5));
    cache.settle();
    drop(stalled);
    // With the reader gone, the cap is enforced again, oldest first.
    assert!(wait_until(Duration::from_secs(5), || {
        disk_usage(cache.root()) <= cap
    }));
    assert_eq!(mirror.gets("/pkgs/slow.tbz2"), 1);
}

fn set_last_use(path: &Path, days_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(days_ago * 86400);
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_times(FileTimes::new().set_accessed(t)))
        .expect("set atime");
}

#[test]
fn cull_command_dry_run_then_for_real() {
    let dir = TempDir::new("cull");
    let root = dir.path();
    fs::create_dir_all(root.join("distfiles/ab")).expect("mkdir");
    for (name, size, age) in [("old", 3000, 90), ("mid", 2000, 10), ("new", 1000, 0)] {
        let p = root.join("distfiles/ab").join(name);
        fs::write(&p, vec![b'x'; size]).expect("write");
        set_last_use(&p, age);
    }
    fs::write(root.join("distfiles/ab/.new.pc-part"), b"partial").expect("write");
    let cache = root.to_str().expect("utf-8 path");

    let (code, out, err) = output(&["cull", "--cache", cache, "--older-than", "30", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would remove distfiles/ab/old (2.9 KiB, last used 90d ago)"),
        "{out}"
    );
    assert!(
        out.contains("would remove 1 files, 2.9 KiB freed; 2 files (2.9 KiB) remain"),
        "{out}"
    );
    assert!(root.join("distfiles/ab/old").exists());

    let (code, out, err) = output(&[
        "cull",
        "--cache",
        cache,
        "--older-than",
        "30",
        "--max-size=1500",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed distfiles/ab/old"), "{out}");
    assert!(out.contains("removed distfiles/ab/mid"), "{out}");
    assert!(
        out.contains("removed 2 files, 4.9 KiB freed; 1 files (1000 B) remain"),
        "{out}"
    );
    assert_eq!(
        crate::support::list_files(root),
        ["distfiles/ab/.new.pc-part", "distfiles/ab/new"],
        "only what was asked is removed; temporary files are left to the server"
    );

    let (code, _, err) = output(&["cull", "--cache", "/nonexistent/pc", "--max-size", "1G"]);
    assert_eq!(code, 1);
    assert!(err.contains("--cache /nonexistent/pc: "), "{err}");
    let (code, _, err) = output(&["cull", "--cache", cache]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--max-size SIZE and/or --older-than DAYS"),
        "{err}"
    );
    let (code, _, err) = output(&["cull", "--cache", cache, "--max-size", "12Q"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--max-size' with value '12Q'"), "{err}");
    let (code, _, err) = output(&["--max-size", "lots"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--max-size' with value 'lots'"), "{err}");
}

#[test]
fn metrics_count_a_known_sequence() {
    let mirror = FakeMirror::start();
    mirror.put("/snapshots/a.tar.xz", bytes(1000, 1));
    mirror.put("/snapshots/b.tar.xz", bytes(3000, 2));
    let cache = TestCache::start(&[mirror.url()]);
    assert_eq!(
        cache.get("/snapshots/a.tar.xz").header("X-Cache"),
        Some("MISS")
    );
    cache.settle();
    assert_eq!(
        cache.get("/snapshots/a.tar.xz").header("X-Cache"),
        Some("HIT")
    );
    assert_eq!(
        cache.get("/snapshots/a.tar.xz").header("X-Cache"),
        Some("HIT")
    );
    assert_eq!(cache.get("/snapshots/missing").status, 404);
    assert_eq!(cache.get("/snapshots/b.tar.xz").status, 200);
    cache.settle();

    let src = mirror.url();
    let expect = [
        ("requests_total{result=\"hit\"}".to_owned(), 2.0),
        ("requests_total{result=\"miss\"}".to_owned(), 2.0),
        ("requests_total{result=\"error\"}".to_owned(), 1.0),
        ("requests_total{result=\"coalesced\"}".to_owned(), 0.0),
        ("sent_bytes_total{result=\"hit\"}".to_owned(), 2000.0),
        ("sent_bytes_total{result=\"miss\"}".to_owned(), 4000.0),
        ("served_bytes_total{from=\"cache\"}".to_owned(), 2000.0),
        ("served_bytes_total{from=\"upstream\"}".to_owned(), 4000.0),
        (format!("upstream_requests_total{{source=\"{src}\"}}"), 3.0),
        (format!("upstream_failures_total{{source=\"{src}\"}}"), 0.0),
        (format!("upstream_bytes_total{{source=\"{src}\"}}"), 4000.0),
        (format!("upstream_up{{source=\"{src}\"}}"), 1.0),
        ("downloads_in_flight".to_owned(), 0.0),
        ("downloads_total{outcome=\"stored\"}".to_owned(), 2.0),
        ("cache_files".to_owned(), 2.0),
        ("cache_bytes".to_owned(), 4000.0),
        ("evictions_total".to_owned(), 0.0),
    ];
    // The counters are updated just after each response is sent: allow a moment.
    let mut text = String::new();
    let settled = wait_until(Duration::from_secs(5), || {
        text = scrape(cache.addr);
        expect
            .iter()
            .all(|(sample, value)| metric(&text, sample) == Some(*value))
    });
    for (sample, value) in &expect {
        assert_eq!(metric(&text, sample), Some(*value), "{sample}\n{text}");
    }
    assert!(settled);
    assert!(text.contains("# TYPE package_cache_requests_total counter"));
    let reply = get(cache.addr, "/-/metrics");
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // A failing source shows up as failures.
    mirror.set_faults("/snapshots/c.tar.xz", vec![Fault::Status(503)]);
    mirror.put_file(
        "/snapshots/c.tar.xz",
        FakeFile::new(b"x".to_vec()).with_fault(Fault::Status(503)),
    );
    assert_eq!(cache.get("/snapshots/c.tar.xz").status, 502);
    let failures = format!("upstream_failures_total{{source=\"{src}\"}}");
    assert!(wait_until(Duration::from_secs(5), || {
        metric(&scrape(cache.addr), &failures) == Some(1.0)
    }));
}

/// Reads `/-/status.json` (as text: the tests look for fields).
fn status(addr: SocketAddr) -> String {
    let reply = get(addr, "/-/status.json");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    reply.text()
}

#[test]
fn status_shows_downloads_in_progress_and_the_page_is_self_contained() {
    let mirror = FakeMirror::start();
    mirror.put_file(
        "/distfiles/slow.tar.gz",
        FakeFile::new(bytes(400 * KB, 9)).with_fault(Fault::Rate(200 * KB as u64)),
    );
    let cache = TestCache::start_with(&[mirror.url()], |c| c.max_size = Some(1 << 30));
    let addr = cache.addr;
    let client = thread::spawn(move || get(addr, "/distfiles/slow.tar.gz"));
    let mut json = String::new();
    let seen = wait_until(Duration::from_secs(5), || {
        json = status(cache.addr);
        json.contains("\"path\":\"/distfiles/") && !json.contains("\"received\":0,")
    });
    assert!(seen, "{json}");
    assert!(json.contains("slow.tar.gz\""), "{json}");
    assert!(json.contains(&format!("\"total\":{}", 400 * KB)), "{json}");
    assert!(json.contains("\"clients\":1"), "{json}");
    assert!(
        json.contains(&format!("\"url\":\"{}\",\"up\":true", mirror.url())),
        "{json}"
    );
    assert!(
        json.contains(&format!("\"max_bytes\":{}", 1u64 << 30)),
        "{json}"
    );
    assert_eq!(client.join().expect("client").body, bytes(400 * KB, 9));
    cache.settle();
    assert_eq!(
        cache.get("/distfiles/slow.tar.gz").header("X-Cache"),
        Some("HIT")
    );
    let done = wait_until(Duration::from_secs(5), || {
        json = status(cache.addr);
        json.contains("\"downloads\":[]") && json.contains("\"hit\":1,")
    });
    assert!(done, "{json}");
    assert!(json.contains("\"hit_ratio\":0.5000"), "{json}");
    // Saved: what the hit got from disk; the miss cost a transfer.
    assert!(
        json.contains(&format!("\"saved\":{}}}", 400 * KB)),
        "{json}"
    );

    let page = get(cache.addr, "/-/status");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("fetch(\"status.json\""));
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "no external assets"
    );
    assert_eq!(get(cache.addr, "/-").status, 302);
    assert_eq!(get(cache.addr, "/-/").header("Location"), Some("/-/status"));
    assert_eq!(get(cache.addr, "/-/nothing").status, 404);
    let post = crate::support::request(
        cache.addr,
        "POST /-/metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    // Our pages never reach the sources.
    assert!(mirror.seen().iter().all(|s| !s.path.starts_with("/-")));
}

#[test]
fn allow_lets_only_listed_ranges_in() {
    let mirror = FakeMirror::start();
    mirror.put("/pkgs/a.tbz2", bytes(100, 1));
    let outside = TestCache::start_with(&[mirror.url()], |c| {
        c.allow = vec!["10.0.0.0/8".parse().unwrap()]
    });
    let reply = outside.get("/pkgs/a.tbz2");
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.text(),
        "403 Forbidden: 127.0.0.1 is not allowed here\n"
    );
    assert_eq!(outside.get("/-/metrics").status, 403, "the metrics too");
    assert_eq!(mirror.request_count(), 0, "nothing reached the source");

    let inside = TestCache::start_with(&[mirror.url()], |c| {
        c.allow = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.0/8".parse().unwrap(),
        ]
    });
    assert_eq!(inside.get("/pkgs/a.tbz2").body, bytes(100, 1));
}

/// Whether this machine can listen on ::1.
fn ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn listens_on_ipv6_and_allow_understands_it() {
    if !ipv6_loopback() {
        eprintln!("skipping: no IPv6 loopback here");
        return;
    }
    let mirror = FakeMirror::start();
    mirror.put("/pkgs/a.tbz2", bytes(100, 1));
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        c.host = "::1".into();
        c.allow = vec!["::1".parse().unwrap()];
    });
    assert!(cache.addr.is_ipv6());
    assert_eq!(cache.get("/pkgs/a.tbz2").body, bytes(100, 1));
    let v4_only = TestCache::start_with(&[mirror.url()], |c| {
        c.host = "[::1]".into();
        c.allow = vec!["127.0.0.0/8".parse().unwrap()];
    });
    let reply = v4_only.get("/pkgs/a.tbz2");
    assert_eq!(reply.status, 403);
    assert!(reply.text().contains("::1 is not allowed"));
}

#[test]
fn upstream_requests_go_through_the_proxy_the_environment_names() {
    let mirror = FakeMirror::start();
    mirror.put("/pkgs/a.tbz2", bytes(5000, 1));
    mirror.put("/pkgs/b.tbz2", bytes(6000, 2));
    mirror.put("/pkgs/c.tbz2", bytes(7000, 3));
    // A name that does not resolve: only the proxy can reach it.
    let source = "http://mirror.invalid:8080";
    let proxy = SquidLike::start(&[("mirror.invalid:8080", mirror.addr())], &[443]);
    let dir = TempDir::new("proxy");
    let cache = dir.path().to_str().expect("utf-8");
    let args = ["--source", source, "--cache", cache];

    let p = Process::start_env(&args, &[("http_proxy", &proxy.url())]);
    assert_eq!(get(p.addr, "/pkgs/a.tbz2").body, bytes(5000, 1));
    // A plain request in absolute form, as curl sends it: no CONNECT, which Squid's
    // default rules refuse for any port but 443.
    assert_eq!(
        proxy.lines(),
        ["GET http://mirror.invalid:8080/pkgs/a.tbz2 HTTP/1.1"]
    );
    drop(p);

    // no_proxy sends it direct, which fails here: the proxy sees nothing new.
    let p = Process::start_env(
        &args,
        &[
            ("http_proxy", &proxy.url()),
            ("no_proxy", "localhost,.invalid"),
        ],
    );
    let reply = get(p.addr, "/pkgs/b.tbz2");
    assert!(matches!(reply.status, 502 | 504), "{}", reply.status);
    assert_eq!(proxy.lines().len(), 1);
    drop(p);

    // https_proxy is for https sources only.
    let p = Process::start_env(&args, &[("https_proxy", &proxy.url())]);
    assert!(matches!(get(p.addr, "/pkgs/b.tbz2").status, 502 | 504));
    assert_eq!(proxy.lines().len(), 1);
    drop(p);

    // --upstream-proxy needs no environment.
    let flag = ["--upstream-proxy", &proxy.url()];
    let p = Process::start_env(&[&args[..], &flag[..]].concat(), &[]);
    assert_eq!(get(p.addr, "/pkgs/c.tbz2").body, bytes(7000, 3));
    assert_eq!(proxy.lines().len(), 2);

    let (code, _, err) = output(&["--upstream-proxy", "ftp://x", "--cache", cache]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--upstream-proxy ftp://x: expected a URL such as http://proxy:3128"),
        "{err}"
    );
}

#[test]
fn sigterm_lets_a_download_in_progress_finish_within_the_grace() {
    let mirror = FakeMirror::start();
    mirror.put_file(
        "/pkgs/slow.tbz2",
        FakeFile::new(bytes(600 * KB, 7)).with_fault(Fault::Rate(400 * KB as u64)),
    );
    let dir = TempDir::new("sigterm");
    let cache = dir.path().to_str().expect("utf-8").to_owned();
    let src = mirror.url();
    let mut p = Process::start(&[
        "--source",
        &src,
        "--cache",
        &cache,
        "--shutdown-grace",
        "10",
    ]);
    let addr = p.addr;
    let client = thread::spawn(move || get(addr, "/pkgs/slow.tbz2"));
    assert!(wait_until(Duration::from_secs(5), || mirror.active() > 0));
    thread::sleep(Duration::from_millis(300));
    p.signal(libc::SIGTERM);
    // New connections are refused (or closed unanswered) once it stops accepting.
    thread::sleep(Duration::from_millis(500));
    let refused = match TcpStream::connect(addr) {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = s.write_all(b"GET /pkgs/slow.tbz2 HTTP/1.1\r\nHost: t\r\n\r\n");
            let mut buf = [0u8; 64];
            !matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
        }
    };
    assert!(refused, "a new request after SIGTERM was served");
    let status = p
        .wait_exit(Duration::from_secs(12))
        .expect("exits within the grace");
    assert!(status.success(), "{status:?}");
    assert_eq!(client.join().expect("client").body, bytes(600 * KB, 7));
    let stored = dir.path().join("pkgs/slow.tbz2");
    assert_eq!(fs::read(&stored).ok(), Some(bytes(600 * KB, 7)));
    assert_eq!(crate::support::list_files(dir.path()), ["pkgs/slow.tbz2"]);

    // With too little grace, it still exits in time and leaves nothing under the
    // final name; the next start removes what is left.
    mirror.put_file(
        "/pkgs/slower.tbz2",
        FakeFile::new(bytes(600 * KB, 8)).with_fault(Fault::Rate(100 * KB as u64)),
    );
    let mut p = Process::start(&["--source", &src, "--cache", &cache, "--shutdown-grace", "1"]);
    let addr = p.addr;
    let client = thread::spawn(move || get(addr, "/pkgs/slower.tbz2"));
    assert!(wait_until(Duration::from_secs(5), || mirror.active() > 0));
    p.signal(libc::SIGTERM);
    let started = std::time::Instant::now();
    p.wait_exit(Duration::from_secs(5))
        .expect("exits after the grace");
    assert!(started.elapsed() < Duration::from_secs(4));
    let reply = client.join().expect("client");
    assert!(reply.body.len() < 600 * KB, "the client saw the cut");
    assert!(!dir.path().join("pkgs/slower.tbz2").exists());
    let p = Process::start(&["--source", &src, "--cache", &cache]);
    assert!(wait_until(Duration::from_secs(5), || {
        crate::support::list_files(dir.path()) == ["pkgs/slow.tbz2"]
    }));
    drop(p);
}

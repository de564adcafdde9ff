//! Faults that real mirrors and networks cause (issue 13): each kind as a scenario on
//! loopback, with the value that must come out asserted.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use crate::support::process::{Process, free_port};
use crate::support::*;

// ---------------------------------------------------------------------------------
// Small origins the fake mirror cannot play.

/// A loopback origin whose answers a closure writes, from the method and the raw
/// request target; it records every request line.
struct Scripted {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn start(answer: impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static) -> Scripted {
        Scripted::serve(TcpListener::bind("127.0.0.1:0").unwrap(), answer)
    }

    /// Like [`Scripted::start`], on a given port.
    fn start_on(
        port: u16,
        answer: impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static,
    ) -> Scripted {
        Scripted::serve(TcpListener::bind(("127.0.0.1", port)).unwrap(), answer)
    }

    fn serve(
        listener: TcpListener,
        answer: impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static,
    ) -> Scripted {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (stop2, seen2) = (stop.clone(), seen.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (answer, seen) = (answer.clone(), seen2.clone());
                thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    seen.lock().unwrap().push(line.trim().to_owned());
                    let mut parts = line.split_whitespace();
                    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let _ = conn.write_all(&answer(method, target));
                });
            }
        });
        Scripted { addr, stop, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A response with a body and `Connection: close`.
fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A source that accepts connections and never answers.
struct Hanging {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = held.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                h.lock().unwrap().push(conn);
            }
        });
        Hanging { addr, held }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

// ---------------------------------------------------------------------------------
// 1. A source whose body breaks is asked again and again.

#[test]
fn a_body_that_breaks_sends_the_retry_and_the_next_request_to_the_next_source() {
    let (a, b) = (FakeMirror::start(), FakeMirror::start());
    let body = bytes(200_000, 1);
    const HALF: &str = "/snapshots/half.tar.xz";
    const RESET: &str = "/snapshots/reset.tar.xz";
    a.put_file(
        HALF,
        FakeFile::new(body.clone()).with_fault(Fault::ShortBody(100_000)),
    );
    a.put_file(
        RESET,
        FakeFile::new(body.clone()).with_fault(Fault::ResetAfter(0)),
    );
    b.put(HALF, body.clone());
    b.put(RESET, body.clone());
    let cache = TestCache::start(&[a.url(), b.url()]);

    // Closes at half the body: the first client sees a short body (or, if the break
    // came before its response started, the whole file from B), and the next request
    // goes to B and gets the whole file.
    let first = cache.get(HALF);
    assert!(
        !first.complete || first.body == body,
        "a cut body is visibly cut"
    );
    cache.settle();
    let second = cache.get(HALF);
    assert_eq!((second.status, second.complete), (200, true));
    assert!(second.body == body);
    assert_eq!((a.gets(HALF), b.gets(HALF)), (1, 1));
    cache.settle();
    assert!(cache.cached(HALF) == Some(body.clone()));

    // Resets before the first byte: this client's response had not started, so it
    // gets the whole file from B in the same request.
    let reply = cache.get(RESET);
    assert_eq!((reply.status, reply.complete), (200, true));
    assert!(reply.body == body);
    assert_eq!((a.gets(RESET), b.gets(RESET)), (1, 1));
}

#[test]
fn a_source_whose_bodies_keep_breaking_cools_down() {
    let (a, b) = (FakeMirror::start(), FakeMirror::start());
    let body = bytes(50_000, 2);
    for i in 0..3 {
        let path = format!("/snapshots/broken-{i}.tar.xz");
        a.put_file(
            &path,
            FakeFile::new(body.clone()).with_fault(Fault::ResetAfter(10)),
        );
        b.put(&path, body.clone());
    }
    b.put("/snapshots/fine.tar.xz", body.clone());
    a.put("/snapshots/fine.tar.xz", body.clone());
    let cache = TestCache::start(&[a.url(), b.url()]);
    for i in 0..3 {
        let reply = cache.get(&format!("/snapshots/broken-{i}.tar.xz"));
        assert_eq!(reply.status, 200);
        cache.settle();
    }
    // Three broken bodies in a row: A is asked last now, even for another file.
    let reply = cache.get("/snapshots/fine.tar.xz");
    assert_eq!((reply.status, reply.body == body), (200, true));
    assert_eq!(a.gets("/snapshots/fine.tar.xz"), 0, "A cools down");
    assert_eq!(b.gets("/snapshots/fine.tar.xz"), 1);
}

// ---------------------------------------------------------------------------------
// 2. One hanging source makes every "not found" slow.

#[test]
fn a_hanging_source_is_not_waited_on_again_and_not_found_is_remembered() {
    let a = FakeMirror::start();
    let hang = Hanging::start();
    let cache = TestCache::start_with(&[a.url(), hang.url()], |c| {
        c.read_timeout = Duration::from_secs(1);
    });
    // The first miss waits for B's timeout: A said 404, B timed out.
    let (_, first) = timed_get(cache.addr, "/snapshots/missing-1.tar.xz", "");
    assert_eq!(first.status, 504);
    // B is cooling down now: not waited on while A answers, so 404 comes at once.
    let (ttfb, second) = timed_get(cache.addr, "/snapshots/missing-2.tar.xz", "");
    assert_eq!(second.status, 404);
    assert!(ttfb < Duration::from_millis(500), "404 took {ttfb:?}");
    assert_eq!(hang.connections(), 1, "B was asked once");
    assert!(second.text().contains("cooling down"), "{}", second.text());

    // A burst of probes for a missing file costs one round of upstream requests.
    let path = "/snapshots/gentoo-20240101.tar.xz";
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let addr = cache.addr;
            thread::spawn(move || get(addr, path).status)
        })
        .collect();
    for t in burst {
        assert_eq!(t.join().unwrap(), 404);
    }
    assert_eq!(cache.get(path).status, 404);
    assert_eq!(a.gets(path), 1, "one upstream request for the whole burst");
}

#[test]
fn a_zero_negative_ttl_asks_every_time() {
    let a = FakeMirror::start();
    let cache = TestCache::start_with(&[a.url()], |c| c.negative_ttl = Duration::ZERO);
    for _ in 0..3 {
        assert_eq!(cache.get("/distfiles/nope.tar.gz").status, 404);
    }
    assert_eq!(a.gets("/distfiles/nope.tar.gz"), 3);
    // And a file that appears upstream is found at once.
    a.put("/distfiles/nope.tar.gz", "here now");
    assert_eq!(cache.get("/distfiles/nope.tar.gz").text(), "here now");
}

// ---------------------------------------------------------------------------------
// 3. Revalidation goes backwards with a lagging mirror.

#[test]
fn revalidation_never_goes_back_in_time_with_a_lagging_mirror() {
    let (a, b) = (FakeMirror::start(), FakeMirror::start());
    const PATH: &str = "/binpkgs/amd64/Packages";
    let at = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
    let new = FakeFile {
        body: b"TIMESTAMP: 2000\n".to_vec(),
        last_modified: at(1_700_002_000),
        etag: Some("\"b-new\"".into()),
        faults: vec![],
    };
    b.put_file(PATH, new.clone());
    let cache = TestCache::start_with(&[a.url(), b.url()], |c| {
        c.mutable_ttl = Duration::from_millis(200);
    });
    // A does not have it yet: B's copy is fetched.
    assert_eq!(cache.get(PATH).body, new.body);
    // A catches up, but only to an older index.
    a.put_file(
        PATH,
        FakeFile {
            body: b"TIMESTAMP: 1000\n".to_vec(),
            last_modified: at(1_700_001_000),
            etag: Some("\"a-old\"".into()),
            faults: vec![],
        },
    );
    for round in 0..3 {
        thread::sleep(Duration::from_millis(250));
        let reply = cache.get(PATH);
        assert_eq!(reply.body, new.body, "round {round}: never the older index");
    }
    // A was never sent B's ETag.
    for seen in a.seen_for(PATH) {
        assert_ne!(seen.header("If-None-Match"), Some("\"b-new\""));
    }
    // Even with our copy gone (evicted, deleted), the older index is not served.
    std::fs::remove_file(cache.root().join("binpkgs/amd64/Packages")).unwrap();
    thread::sleep(Duration::from_millis(250));
    assert_eq!(cache.get(PATH).body, new.body);
}

// ---------------------------------------------------------------------------------
// 4. Resuming a cold file waits for the shared download.

#[test]
fn resuming_far_into_a_cold_file_starts_at_once_and_the_file_is_stored_once() {
    let a = FakeMirror::start();
    const PATH: &str = "/distfiles/big-resume.tar.xz";
    let body = bytes(8_000_000, 4);
    a.put_file(
        PATH,
        FakeFile::new(body.clone()).with_fault(Fault::Rate(2_000_000)),
    );
    let cache = TestCache::start(&[a.url()]);
    let from = 6_000_000;
    let (ttfb, reply) = timed_get(cache.addr, PATH, &format!("Range: bytes={from}-\r\n"));
    assert_eq!(reply.status, 206);
    assert!(reply.complete);
    assert_eq!(reply.body, &body[from..]);
    // Through the shared download the first byte would come after ~3 s.
    assert!(
        ttfb < Duration::from_millis(1500),
        "first byte after {ttfb:?}"
    );
    // The shared download goes on and stores the whole file once.
    assert!(wait_until(Duration::from_secs(15), || cache
        .cached(PATH)
        .is_some()));
    assert_eq!(cache.cached(PATH).unwrap(), body);
    let ranged = a
        .seen_for(PATH)
        .iter()
        .filter(|s| s.header("Range").is_some())
        .count();
    assert_eq!(
        (a.gets(PATH), ranged),
        (2, 1),
        "one whole download, one range"
    );
}

// ---------------------------------------------------------------------------------
// 5. Query strings are dropped.

#[test]
fn query_strings_reach_the_source_and_are_never_shared_or_stored() {
    let origin = Scripted::start(|_, target| response("200 OK", "", target.as_bytes()));
    let cache = TestCache::start(&[origin.url()]);
    let one = cache.get("/metalink?version=2.0");
    let two = cache.get("/metalink?version=3.0");
    assert_eq!(
        (one.status, one.text().as_str()),
        (200, "/metalink?version=2.0")
    );
    assert_eq!(two.text(), "/metalink?version=3.0");
    assert_eq!(
        cache.get("/metalink?version=2.0").text(),
        "/metalink?version=2.0"
    );
    assert_eq!(origin.seen().len(), 3, "never answered from a store");
    cache.settle();
    assert!(cache.files().is_empty(), "{:?}", cache.files());
}

// ---------------------------------------------------------------------------------
// 7. A redirect that changes the path poisons the tree.

#[test]
fn a_redirect_to_another_path_is_passed_on_but_never_stored() {
    const DIR: &str = "/releases/amd64/autobuilds/current-stage3-amd64-openrc";
    let origin = Scripted::start(|_, target| match target {
        DIR => response(
            "301 Moved Permanently",
            &format!("Location: {DIR}/\r\n"),
            b"moved",
        ),
        t if t == format!("{DIR}/") => response(
            "200 OK",
            "Content-Type: text/html\r\n",
            b"<html>listing</html>",
        ),
        t if t.ends_with(".tar.xz") => response("200 OK", "", b"stage3 bytes"),
        _ => response("404 Not Found", "", b"no"),
    });
    let cache = TestCache::start(&[origin.url()]);
    let listing = cache.get(DIR);
    assert_eq!(
        (listing.status, listing.text().as_str()),
        (200, "<html>listing</html>")
    );
    cache.settle();
    assert!(cache.files().is_empty(), "stored: {:?}", cache.files());
    // The directory stays usable.
    let file = format!("{DIR}/stage3-amd64-openrc-20250101.tar.xz");
    assert_eq!(cache.get(&file).text(), "stage3 bytes");
    cache.settle();
    assert_eq!(cache.cached(&file).as_deref(), Some(&b"stage3 bytes"[..]));
}

#[test]
fn a_file_stored_where_a_directory_is_needed_is_replaced() {
    let a = FakeMirror::start();
    a.put("/releases/x/current/stage3.tar.xz", "stage3");
    let dir = TempDir::new("poisoned");
    // As an older version stored a redirected listing under the directory's name.
    std::fs::create_dir_all(dir.path().join("releases/x")).unwrap();
    std::fs::write(
        dir.path().join("releases/x/current"),
        "<html>listing</html>",
    )
    .unwrap();
    let cache = TestCache::start_in(dir, &[a.url()], |_| {});
    for _ in 0..2 {
        assert_eq!(
            cache.get("/releases/x/current/stage3.tar.xz").text(),
            "stage3"
        );
        cache.settle();
    }
    assert_eq!(
        cache.cached("/releases/x/current/stage3.tar.xz").as_deref(),
        Some(&b"stage3"[..])
    );
    assert_eq!(a.gets("/releases/x/current/stage3.tar.xz"), 1);
}

// ---------------------------------------------------------------------------------
// 8. HEAD fails when a source refuses HEAD.

#[test]
fn head_falls_back_to_get_when_a_source_refuses_head() {
    let origin = Scripted::start(|method, _| match method {
        "HEAD" => response("405 Method Not Allowed", "Allow: GET\r\n", b""),
        _ => response(
            "200 OK",
            "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n",
            b"0123456789",
        ),
    });
    let cache = TestCache::start(&[origin.url()]);
    let reply = head(cache.addr, "/distfiles/no-head.tar.gz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Length"), Some("10"));
    assert_eq!(
        reply.header("Last-Modified"),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
}

// ---------------------------------------------------------------------------------
// 10. A source that cannot be used is silent at the default log level.

#[test]
fn a_failing_source_is_reported_once_and_its_recovery_too() {
    // A port nobody listens on (yet).
    let port = free_port();
    let cache = TempDir::new("warn");
    let source = format!("http://127.0.0.1:{port}");
    let mut p = Process::start(&[
        "--source",
        &source,
        "--cache",
        &cache.path().to_string_lossy(),
    ]);
    for i in 0..5 {
        assert_eq!(get(p.addr, &format!("/distfiles/f{i}.tar.gz")).status, 502);
    }
    // The source comes up.
    let mirror = Scripted::start_on(port, |_, _| response("200 OK", "", b"ok"));
    assert_eq!(get(p.addr, "/distfiles/fine.tar.gz").text(), "ok");
    assert!(
        p.wait_for_line("works again", Duration::from_secs(5))
            .is_some()
    );
    let log = p.drain_log();
    let warnings: Vec<_> = log
        .iter()
        .filter(|l| l.contains("cannot be used"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log:#?}");
    assert!(
        warnings[0].contains("connection refused"),
        "{}",
        warnings[0]
    );
    drop(mirror);
}

// ---------------------------------------------------------------------------------
// 11. A request right after a miss is labelled COALESCED.

#[test]
fn a_request_right_after_a_miss_is_a_hit() {
    let a = FakeMirror::start();
    let body = bytes(16 << 20, 11);
    a.put("/distfiles/just-fetched.tar.xz", body.clone());
    let cache = TestCache::start(&[a.url()]);
    let first = cache.get("/distfiles/just-fetched.tar.xz");
    assert_eq!(
        (first.header("X-Cache"), first.body.len()),
        (Some("MISS"), body.len())
    );
    let again = cache.get("/distfiles/just-fetched.tar.xz");
    assert_eq!(again.header("X-Cache"), Some("HIT"));
    let metrics = cache.get("/-/metrics").text();
    assert!(
        metrics.contains("package_cache_requests_total{result=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("package_cache_requests_total{result=\"coalesced\"} 0"));
}

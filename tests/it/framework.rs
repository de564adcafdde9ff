//! The HTTP framework on its own: routing, panics, framing, keep-alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;
use package_cache::http::{Body, Request, Response, Router, Server, ServerConfig};

fn serve(router: Router, threads: usize) -> package_cache::http::RunningServer {
    let config = ServerConfig {
        threads,
        idle_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    Server::bind("127.0.0.1:0", router, config)
        .unwrap()
        .spawn()
        .unwrap()
}

#[test]
fn router_mounts_on_segment_boundaries() {
    let router = Router::new()
        .mount("/", |r: &mut Request| {
            Response::text(200, format!("root {}", r.path_info()))
        })
        .mount("/static", |r: &mut Request| {
            Response::text(
                200,
                format!("static [{}] [{}]", r.script_name(), r.path_info()),
            )
        });
    let server = serve(router, 2);
    let addr = server.local_addr();
    assert_eq!(
        get(addr, "/static/a.css").text(),
        "static [/static] [/a.css]\n"
    );
    assert_eq!(get(addr, "/static").text(), "static [/static] []\n");
    assert_eq!(get(addr, "/staticfoo").text(), "root /staticfoo\n");
}

#[test]
fn a_panicking_handler_is_a_500_and_the_worker_lives_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new()
        .mount("/boom", |_: &mut Request| -> Response { panic!("kaboom") })
        .mount("/ok", move |_: &mut Request| {
            c.fetch_add(1, Ordering::SeqCst);
            Response::text(200, "fine")
        });
    // One worker: if it died, the second request would never be answered.
    let server = serve(router, 1);
    let addr = server.local_addr();
    for _ in 0..3 {
        assert_eq!(get(addr, "/boom").status, 500);
        assert_eq!(get(addr, "/ok").text(), "fine\n");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn large_bodies_have_content_length_never_chunked() {
    let router = Router::new().mount("/", |r: &mut Request| {
        let len = 5 * 1024 * 1024;
        if r.path_info() == "/reader" {
            Response::reader(std::io::repeat(7).take_len(len), Some(len))
        } else {
            Response::bytes("application/octet-stream", vec![7u8; len as usize])
        }
    });
    let server = serve(router, 2);
    for path in ["/bytes", "/reader"] {
        let r = get(server.local_addr(), path);
        assert_eq!(r.header("content-length"), Some("5242880"), "{path}");
        assert!(!r.chunked() && r.complete);
        let h = head(server.local_addr(), path);
        assert_eq!(h.header("content-length"), Some("5242880"), "HEAD {path}");
        assert!(h.header("transfer-encoding").is_none());
    }
}

trait TakeLen {
    fn take_len(self, n: u64) -> std::io::Take<Self>
    where
        Self: Sized;
}

impl<R: std::io::Read> TakeLen for R {
    fn take_len(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}

#[test]
fn keep_alive_pipelining_and_http_1_0() {
    let router = Router::new().mount("/", |r: &mut Request| {
        Response::text(200, r.path_info().to_owned())
    });
    let server = serve(router, 4);
    let addr = server.local_addr();

    // Three requests on one connection, sent back to back (pipelined).
    let mut c = Conn::open(addr);
    c.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).text(), "/a\n");
    let h = c.read(true);
    assert_eq!((h.status, h.header("content-length")), (200, Some("3")));
    assert_eq!(c.read(false).text(), "/c\n");

    // Connection: close is honoured.
    c.send("GET /d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));

    // HTTP/1.0 closes unless it asks for keep-alive.
    let mut c = Conn::open(addr);
    c.send("GET /e HTTP/1.0\r\n\r\n");
    assert_eq!(c.read(false).text(), "/e\n");
    assert!(c.closed_within(Duration::from_secs(2)));
    let mut c = Conn::open(addr);
    c.send("GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send("GET /g HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read(false).text(), "/g\n");
}

#[test]
fn unknown_length_is_chunked_for_1_1_and_close_delimited_for_1_0() {
    let router = Router::new().mount("/", |_: &mut Request| {
        Response::new(200).with_body(Body::Reader {
            reader: Box::new(&b"streamed body"[..]),
            len: None,
        })
    });
    let server = serve(router, 2);
    let r = get(server.local_addr(), "/");
    assert!(r.chunked() && r.complete);
    assert_eq!(r.text(), "streamed body");
    let r = request(server.local_addr(), "GET / HTTP/1.0\r\n\r\n");
    assert!(!r.chunked());
    assert_eq!(r.text(), "streamed body");
}

#[test]
fn shutdown_stops_the_server() {
    let router = Router::new().mount("/", |_: &mut Request| Response::text(200, "x"));
    let server = serve(router, 2);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/").status, 200);
    let started = std::time::Instant::now();
    server.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

//! Ranges, HEAD, conditional requests and keep-alive through the cache: what wget -c,
//! portage and curl rely on.

use std::time::Duration;

use crate::support::*;

const PATH: &str = "/distfiles/r.tar.gz";
const LEN: usize = 1 << 20;
const LM: &str = "Sun, 13 Sep 2020 12:26:40 GMT";

fn setup() -> (FakeMirror, TestCache, Vec<u8>) {
    let mirror = FakeMirror::start();
    let data = bytes(LEN, 21);
    mirror.put(PATH, data.clone());
    let cache = TestCache::start(&[mirror.url()]);
    (mirror, cache, data)
}

fn range(cache: &TestCache, value: &str) -> Reply {
    Conn::open(cache.addr).get(PATH, &format!("Range: {value}\r\nConnection: close\r\n"))
}

/// Checks every range form against `cache` (hit or miss alike).
fn check_range_forms(cache: &TestCache, data: &[u8]) {
    let r = range(cache, "bytes=100-199");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/1048576"));
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.body, &data[100..200]);

    let r = range(cache, "bytes=1000000-");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 1000000-1048575/1048576")
    );
    assert_eq!(r.body, &data[1_000_000..]);

    let r = range(cache, "bytes=-500");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[LEN - 500..]);

    let r = range(cache, "bytes=2000000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1048576"));

    // Several ranges: the whole file, with 200.
    let r = range(cache, "bytes=0-1,5-6");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);

    // A garbled header is ignored.
    let r = range(cache, "bytes=oops");
    assert_eq!((r.status, r.body.len()), (200, LEN));
}

#[test]
fn every_range_form_on_a_hit() {
    let (mirror, cache, data) = setup();
    assert_eq!(cache.get(PATH).status, 200);
    cache.settle();
    check_range_forms(&cache, &data);
    let r = range(&cache, "bytes=0-9");
    assert_eq!(r.header("x-cache"), Some("HIT"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(mirror.gets(PATH), 1);
}

#[test]
fn every_range_form_on_a_cold_file() {
    // Each form starts cold: a fresh cache each time, so the range request itself
    // starts the download (which still fetches the whole file once).
    let (mirror, cache, data) = setup();
    let r = range(&cache, "bytes=500000-");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(r.body, &data[500_000..]);
    cache.settle();
    assert_eq!(
        cache.cached(PATH).as_deref(),
        Some(&data[..]),
        "the whole file is stored"
    );
    assert_eq!(mirror.gets(PATH), 1);
    assert!(
        mirror.seen_for(PATH)[0].header("range").is_none(),
        "the source was asked for all of it"
    );

    for form in [
        "bytes=100-199",
        "bytes=-500",
        "bytes=2000000-",
        "bytes=0-1,5-6",
    ] {
        let (_mirror, cache, data) = setup();
        let r = range(&cache, form);
        let want = match form {
            "bytes=100-199" => (206, data[100..200].to_vec()),
            "bytes=-500" => (206, data[LEN - 500..].to_vec()),
            "bytes=2000000-" => (416, b"416 Range Not Satisfiable\n".to_vec()),
            _ => (200, data.clone()),
        };
        assert_eq!((r.status, r.body), want, "cold {form}");
    }
}

#[test]
fn every_range_form_during_an_in_flight_download() {
    let mirror = FakeMirror::start();
    let data = bytes(LEN, 22);
    // 1 MiB at 512 KiB/s: two seconds in flight.
    mirror.put_file(
        PATH,
        FakeFile::new(data.clone()).with_fault(Fault::Rate(512 << 10)),
    );
    let cache = TestCache::start(&[mirror.url()]);
    let addr = cache.addr;
    let first = std::thread::spawn(move || get(addr, PATH));
    assert!(wait_until(Duration::from_secs(5), || mirror.sent(PATH) > 0));
    let r = range(&cache, "bytes=900000-");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("x-cache"), Some("COALESCED"));
    assert_eq!(r.body, &data[900_000..]);
    let r = range(&cache, "bytes=10-19");
    assert_eq!((r.status, &r.body[..]), (206, &data[10..20]));
    let r = range(&cache, "bytes=-10");
    assert_eq!((r.status, &r.body[..]), (206, &data[LEN - 10..]));
    assert!(first.join().unwrap().complete);
    assert_eq!(mirror.gets(PATH), 1);
}

#[test]
fn if_range_decides_between_206_and_200() {
    let (_mirror, cache, data) = setup();
    let etag = cache.get(PATH).header("etag").unwrap().to_owned();
    for (if_range, status) in [
        (LM.to_owned(), 206),
        (etag.clone(), 206),
        ("Mon, 14 Sep 2020 12:26:40 GMT".to_owned(), 200),
        ("\"something-else\"".to_owned(), 200),
    ] {
        let r = Conn::open(cache.addr).get(
            PATH,
            &format!("Range: bytes=10-\r\nIf-Range: {if_range}\r\nConnection: close\r\n"),
        );
        assert_eq!(r.status, status, "If-Range: {if_range}");
        let want = if status == 206 {
            &data[10..]
        } else {
            &data[..]
        };
        assert_eq!(r.body, want);
    }
}

#[test]
fn head_hot_and_cold_keeps_the_connection_usable() {
    let (mirror, cache, _data) = setup();
    let mut conn = Conn::open(cache.addr);

    conn.send(&format!("HEAD {PATH} HTTP/1.1\r\nHost: t\r\n\r\n"));
    let cold = conn.read(true);
    assert_eq!(cold.status, 200);
    assert_eq!(cold.header("content-length"), Some("1048576"));
    assert!(cold.header("transfer-encoding").is_none());
    assert_eq!(cold.header("last-modified"), Some(LM));
    cache.settle();
    assert!(cache.files().is_empty(), "a cold HEAD stores nothing");
    let asked = mirror.seen_for(PATH);
    assert_eq!((asked.len(), asked[0].method.as_str()), (1, "HEAD"));

    // The same connection still works: a GET, then a hot HEAD.
    let get = conn.get(PATH, "");
    assert!(get.complete);
    cache.settle();
    conn.send(&format!("HEAD {PATH} HTTP/1.1\r\nHost: t\r\n\r\n"));
    let hot = conn.read(true);
    assert_eq!(hot.header("x-cache"), Some("HIT"));
    for h in [
        "content-length",
        "content-type",
        "last-modified",
        "etag",
        "accept-ranges",
    ] {
        assert_eq!(hot.header(h), get.header(h), "{h}");
    }
    let again = conn.get(PATH, "");
    assert!(again.complete);

    // HEAD of a missing file.
    conn.send("HEAD /distfiles/nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read(true).status, 404);
    assert!(conn.get(PATH, "").complete, "still usable after a HEAD 404");
}

#[test]
fn head_during_a_download_answers_from_it() {
    let mirror = FakeMirror::start();
    mirror.put_file(
        PATH,
        FakeFile::new(bytes(LEN, 23)).with_fault(Fault::Rate(512 << 10)),
    );
    let cache = TestCache::start(&[mirror.url()]);
    let addr = cache.addr;
    let first = std::thread::spawn(move || get(addr, PATH));
    assert!(wait_until(Duration::from_secs(5), || mirror.sent(PATH) > 0));
    let h = head(cache.addr, PATH);
    assert_eq!(
        (h.status, h.header("content-length")),
        (200, Some("1048576"))
    );
    assert_eq!(h.header("x-cache"), Some("COALESCED"));
    first.join().unwrap();
    assert_eq!(mirror.hits(PATH), 1, "the HEAD did not reach the source");
}

#[test]
fn if_modified_since_gives_304_hot_and_cold() {
    let (mirror, cache, _data) = setup();
    let ims = |when: &str| {
        Conn::open(cache.addr).get(
            PATH,
            &format!("If-Modified-Since: {when}\r\nConnection: close\r\n"),
        )
    };
    // Cold: the download starts (and completes for the cache), the client gets 304.
    let r = ims(LM);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("last-modified"), Some(LM));
    assert!(r.body.is_empty());
    cache.settle();
    assert!(cache.cached(PATH).is_some());
    // Hot.
    assert_eq!(ims("Sun, 13 Sep 2020 12:26:45 GMT").status, 304);
    let newer_copy = ims("Sat, 12 Sep 2020 00:00:00 GMT");
    assert_eq!((newer_copy.status, newer_copy.body.len()), (200, LEN));
    assert_eq!(ims("not a date").status, 200);
    assert_eq!(mirror.gets(PATH), 1);
}

#[test]
fn keep_alive_pipelining_and_http_1_0_through_the_cache() {
    let (_mirror, cache, data) = setup();
    let mut conn = Conn::open(cache.addr);
    // A miss and two hits, pipelined on one connection.
    conn.send(&format!(
        "GET {PATH} HTTP/1.1\r\nHost: t\r\n\r\nGET {PATH} HTTP/1.1\r\nHost: t\r\n\r\nGET {PATH} HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n"
    ));
    assert_eq!(conn.read(false).body, data);
    assert_eq!(conn.read(false).body, data);
    assert_eq!(conn.read(false).body, &data[..4]);

    let r = request(cache.addr, &format!("GET {PATH} HTTP/1.0\r\n\r\n"));
    assert!(r.complete && r.body == data);
    assert!(r.header("connection").is_none() || r.header("connection") == Some("close"));
}

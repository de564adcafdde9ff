//! A miss streams from the source while storing; a hit streams from disk.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::*;

const BIG: usize = 3 * 1024 * 1024;

#[test]
fn miss_stores_then_hit_serves_from_disk() {
    let mirror = FakeMirror::start();
    let data = bytes(BIG, 1);
    mirror.put("/distfiles/big.tar.gz", data.clone());
    let cache = TestCache::start(&[mirror.url()]);

    let first = cache.get("/distfiles/big.tar.gz");
    assert_eq!(first.status, 200);
    assert!(first.complete && !first.chunked());
    assert_eq!(first.body, data);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(
        first.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    cache.settle();
    assert_eq!(
        cache.cached("/distfiles/big.tar.gz").as_deref(),
        Some(&data[..])
    );

    let second = cache.get("/distfiles/big.tar.gz");
    assert_eq!(
        (second.status, second.header("x-cache")),
        (200, Some("HIT"))
    );
    assert_eq!(second.body, data);
    assert!(!second.chunked());
    assert_eq!(second.header("content-type"), Some("application/gzip"));
    assert_eq!(
        second.header("last-modified"),
        Some("Sun, 13 Sep 2020 12:26:40 GMT")
    );
    assert_eq!(second.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        first.header("last-modified"),
        second.header("last-modified")
    );
    assert_eq!(first.header("etag"), second.header("etag"));
    assert_eq!(
        mirror.gets("/distfiles/big.tar.gz"),
        1,
        "the hit never reached the source"
    );
}

#[test]
fn stored_file_keeps_the_upstream_last_modified_as_mtime() {
    let mirror = FakeMirror::start();
    mirror.put("/distfiles/a.txt", b"hello\n".to_vec());
    let cache = TestCache::start(&[mirror.url()]);
    assert_eq!(cache.get("/distfiles/a.txt").status, 200);
    cache.settle();
    let mtime = std::fs::metadata(cache.root().join(stored("/distfiles/a.txt")))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime,
        std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
    );
    assert_eq!(
        cache.files(),
        [stored("/distfiles/a.txt")],
        "no temporary files remain"
    );
}

#[test]
fn python_cache_directory_is_served_as_is() {
    let dir = TempDir::new("python-cache");
    let file = dir
        .path()
        .join("distfiles/0a/MooseX-OneArgNew-0.007.tar.gz");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"stored by the python original").unwrap();
    let mirror = FakeMirror::start();
    let cache = TestCache::start_in(dir, &[mirror.url()], |_| {});
    let r = cache.get("/distfiles/0a/MooseX-OneArgNew-0.007.tar.gz");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(r.body, b"stored by the python original");
    assert!(mirror.seen().is_empty(), "nothing asked upstream");
}

#[test]
fn client_holds_first_bytes_while_the_source_is_still_sending() {
    let mirror = FakeMirror::start();
    let data = bytes(1024 * 1024, 2);
    // 1 MiB at 256 KiB/s: about four seconds upstream.
    mirror.put_file(
        "/distfiles/slow.bin",
        FakeFile::new(data.clone()).with_fault(Fault::Rate(256 * 1024)),
    );
    let cache = TestCache::start(&[mirror.url()]);
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(cache.addr).unwrap();
    std::io::Write::write_all(
        &mut conn,
        b"GET /distfiles/slow.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 1];
    conn.read_exact(&mut first).unwrap();
    let first_byte = started.elapsed();
    assert_eq!(
        mirror.finished("/distfiles/slow.bin"),
        0,
        "the source is still sending"
    );
    assert!(
        mirror.sent("/distfiles/slow.bin") < data.len() as u64 / 2,
        "first byte arrived before half the file left the source"
    );
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("Content-Length: 1048576"));
    assert!(rest.ends_with(&data[data.len() - 1000..]));
    eprintln!(
        "first byte after {first_byte:?}, whole file after {:?}",
        started.elapsed()
    );
}

#[test]
fn upstream_without_length_is_streamed_but_never_stored() {
    let mirror = FakeMirror::start();
    let data = bytes(300_000, 3);
    mirror.put_file(
        "/p/Packages",
        FakeFile::new(data.clone()).with_fault(Fault::NoLength),
    );
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get("/p/Packages");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.body, data);
    cache.settle();
    // A body that ends with the connection cannot be told from a cut one: not kept.
    assert_eq!(cache.cached("/p/Packages"), None);
    assert_eq!(cache.files(), Vec::<String>::new());
    assert_eq!(cache.get("/p/Packages").body, data);
    assert_eq!(mirror.gets("/p/Packages"), 2);
    // Cut short, it is passed on as received and still not kept.
    mirror.put_file(
        "/p/cut",
        FakeFile::new(data.clone())
            .with_fault(Fault::NoLength)
            .with_fault(Fault::ShortBody(100_000)),
    );
    assert_eq!(cache.get("/p/cut").body.len(), 100_000);
    cache.settle();
    assert_eq!(cache.files(), Vec::<String>::new());
}

#[test]
fn chunked_upstream_is_stored_byte_for_byte() {
    let mirror = FakeMirror::start();
    let data = bytes(200_000, 4);
    mirror.put_file(
        "/x/y.bin",
        FakeFile::new(data.clone()).with_fault(Fault::Chunked),
    );
    let cache = TestCache::start(&[mirror.url()]);
    assert_eq!(cache.get("/x/y.bin").body, data);
    cache.settle();
    assert_eq!(cache.cached("/x/y.bin").as_deref(), Some(&data[..]));
}

#[test]
fn names_are_percent_decoded_once_and_encoded_upstream() {
    let mirror = FakeMirror::start();
    mirror.put("/distfiles/libsigc++-2.10.tar.xz", b"plus".to_vec());
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get("/distfiles/libsigc%2B%2B-2.10.tar.xz");
    assert_eq!((r.status, r.text().as_str()), (200, "plus"));
    cache.settle();
    assert_eq!(cache.files(), [stored("/distfiles/libsigc++-2.10.tar.xz")]);
    // The source (flat: it has no layout.conf) was asked for the decoded name.
    assert_eq!(mirror.seen_for("/distfiles/libsigc++-2.10.tar.xz").len(), 1);
    // The same file by its literal name is a hit.
    assert_eq!(
        cache
            .get("/distfiles/libsigc++-2.10.tar.xz")
            .header("x-cache"),
        Some("HIT")
    );
}

#[test]
fn empty_file_is_fine() {
    let mirror = FakeMirror::start();
    mirror.put("/e", Vec::new());
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get("/e");
    assert_eq!(
        (r.status, r.header("content-length"), r.body.len()),
        (200, Some("0"), 0)
    );
    cache.settle();
    assert_eq!(cache.cached("/e"), Some(Vec::new()));
}

#[test]
fn large_hits_and_ranges_go_out_intact() {
    // Large file bodies are sent with sendfile(2); the bytes must be the same.
    let mirror = FakeMirror::start();
    let data = bytes(7 << 20, 9);
    mirror.put("/pub/large.iso", data.clone());
    let cache = TestCache::start(&[mirror.url()]);
    assert!(cache.get("/pub/large.iso").complete);
    cache.settle();
    let mut conn = Conn::open(cache.addr);
    for _ in 0..2 {
        let hit = conn.get("/pub/large.iso", "");
        assert_eq!(hit.header("x-cache"), Some("HIT"));
        assert!(hit.complete && hit.body == data);
    }
    let part = conn.get("/pub/large.iso", "Range: bytes=1048577-\r\n");
    assert_eq!(part.status, 206);
    assert!(part.body == data[1_048_577..]);
    let tail = conn.get("/pub/large.iso", "");
    assert!(
        tail.body == data,
        "keep-alive still framed correctly after sendfile"
    );
}

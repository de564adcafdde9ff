//! A source that breaks mid-body, or a disk that refuses the file: the client sees the
//! failure (or still gets the whole file), and nothing partial is ever stored.

use std::time::{Duration, Instant};

use crate::support::*;

const PATH: &str = "/distfiles/f.tar.xz";
const LEN: usize = 2 * 1024 * 1024;

/// The first request for PATH suffers `faults`, at 4 MiB/s so that clients have their
/// headers before the break (a break before anything was sent is retried instead).
fn setup(mut faults: Vec<Fault>) -> (FakeMirror, TestCache, Vec<u8>) {
    let mirror = FakeMirror::start();
    let data = bytes(LEN, 7);
    mirror.put(PATH, data.clone());
    faults.push(Fault::Rate(4 << 20));
    mirror.fail_next(PATH, faults);
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        c.read_timeout = Duration::from_millis(700);
    });
    (mirror, cache, data)
}

/// The first request fails visibly; nothing is stored; the next request refetches and
/// gets the whole file.
fn assert_visible_failure_then_recovery(faults: Vec<Fault>) {
    let (mirror, cache, data) = setup(faults.clone());
    let started = Instant::now();
    let r = cache.get(PATH);
    assert_eq!(
        r.status, 200,
        "{faults:?}: headers went out before the break"
    );
    assert!(!r.complete, "{faults:?}: the body must not look complete");
    assert!(r.body.len() < LEN);
    assert_eq!(
        &r.body[..],
        &data[..r.body.len()],
        "what arrived is correct"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{faults:?}: closed early"
    );
    cache.settle();
    assert_eq!(
        cache.files(),
        Vec::<String>::new(),
        "{faults:?}: nothing stored"
    );

    let again = cache.get(PATH);
    assert!(again.complete);
    assert_eq!(again.body, data);
    assert_eq!(again.header("x-cache"), Some("MISS"));
    assert_eq!(mirror.gets(PATH), 2);
    cache.settle();
    assert_eq!(cache.files(), [stored("/distfiles/f.tar.xz")]);
}

#[test]
fn reset_mid_body() {
    assert_visible_failure_then_recovery(vec![Fault::ResetAfter(300_000)]);
}

#[test]
fn short_body_with_clean_close() {
    assert_visible_failure_then_recovery(vec![Fault::ShortBody(500_000)]);
}

#[test]
fn stall_mid_body_beyond_the_read_timeout() {
    assert_visible_failure_then_recovery(vec![Fault::StallAfter(100_000, Duration::from_secs(4))]);
}

#[test]
fn broken_chunked_body() {
    assert_visible_failure_then_recovery(vec![Fault::Chunked, Fault::ShortBody(200_000)]);
}

#[test]
fn a_keep_alive_client_sees_the_close_too() {
    let (_mirror, cache, _) = setup(vec![Fault::ResetAfter(100_000)]);
    let mut conn = Conn::open(cache.addr);
    let started = Instant::now();
    let r = conn.get(PATH, "");
    assert!(!r.complete);
    // The test server drops idle connections after 5 s; the break must show sooner.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "connection closed, not left hanging"
    );
}

#[test]
fn unwritable_cache_still_serves_the_whole_file() {
    let mirror = FakeMirror::start();
    let data = bytes(LEN, 8);
    mirror.put(PATH, data.clone());
    let cache = TestCache::start(&[mirror.url()]);
    // A symlink to a file where the `distfiles` directory should be: nothing can be
    // created below it (this works as root too, unlike permissions). A symlink is an
    // admin's doing and is left alone; a plain file there would be taken for a stale
    // cached file and replaced.
    let obstacle = TempDir::new("obstacle");
    let target = obstacle.path().join("in-the-way");
    std::fs::write(&target, b"in the way").unwrap();
    std::os::unix::fs::symlink(&target, cache.root().join("distfiles")).unwrap();
    let r = cache.get(PATH);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.body, data);
    cache.settle();
    assert_eq!(cache.files(), ["distfiles"], "nothing else was stored");
    // And once the obstacle is gone, the file is cached.
    std::fs::remove_file(cache.root().join("distfiles")).unwrap();
    assert_eq!(cache.get(PATH).body, data);
    cache.settle();
    assert_eq!(cache.cached(PATH).as_deref(), Some(&data[..]));
}

#[test]
fn leftovers_of_a_crash_are_swept() {
    let dir = TempDir::new("crashed");
    let d = dir.path().join("distfiles");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(".f.tar.xz.pc-part"), b"half a file").unwrap();
    std::fs::write(d.join(".f.tar.xz.pc-lock"), b"").unwrap();
    let mirror = FakeMirror::start();
    mirror.put(PATH, b"whole".to_vec());
    let cache = TestCache::start_in(dir, &[mirror.url()], |_| {});
    // The stale lock is free, so the download goes ahead at once.
    assert_eq!(cache.get(PATH).text(), "whole");
    cache.settle();
    cache.cache.store().sweep();
    assert_eq!(cache.files(), [stored("/distfiles/f.tar.xz")]);
}

#[test]
fn a_range_request_outlives_a_download_that_breaks_before_its_first_byte() {
    let mirror = FakeMirror::start();
    let data = bytes(400_000, 8);
    mirror.put("/snapshots/r.tar.xz", data.clone());
    mirror.fail_next("/snapshots/r.tar.xz", vec![Fault::ResetAfter(100_000)]);
    let cache = TestCache::start(&[mirror.url()]);
    let r = get_with(
        cache.addr,
        "/snapshots/r.tar.xz",
        "Range: bytes=300000-\r\n",
    );
    // The first download broke before byte 300000: a new one serves the range.
    assert_eq!(r.status, 206);
    assert!(r.complete);
    assert_eq!(r.body, data[300_000..]);
    assert_eq!(mirror.gets("/snapshots/r.tar.xz"), 2);
    cache.settle();
    assert_eq!(cache.cached("/snapshots/r.tar.xz"), Some(data));
}

//! One upstream download per file, however many clients and processes want it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::process::Process;
use crate::support::*;

const PATH: &str = "/distfiles/herd.tar.xz";

/// An answer, and when its first body byte arrived.
struct Timed {
    reply: Reply,
    first_byte: Duration,
}

/// `GET path`, with its first body byte timed from `t0`.
fn get_timed_from(addr: SocketAddr, path: &str, t0: Instant) -> Timed {
    let reply = get(addr, path);
    Timed {
        first_byte: reply
            .first_byte
            .map_or(Duration::MAX, |t| t.duration_since(t0)),
        reply,
    }
}

/// Starts `n` clients at once against `addrs` (round robin).
fn herd(addrs: &[SocketAddr], n: usize, t0: Instant) -> Vec<Timed> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (addr, barrier) = (addrs[i % addrs.len()], barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                get_timed_from(addr, PATH, t0)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn sixteen_clients_one_upstream_request_and_early_first_bytes() {
    let mirror = FakeMirror::start();
    let data = bytes(2 << 20, 11);
    // 2 MiB at 1 MiB/s: the upstream takes about two seconds.
    mirror.put_file(
        PATH,
        FakeFile::new(data.clone()).with_fault(Fault::Rate(1 << 20)),
    );
    let cache = TestCache::start(&[mirror.url()]);
    let t0 = Instant::now();
    let results = herd(&[cache.addr], 16, t0);
    let upstream_done = t0.elapsed();

    assert_eq!(mirror.gets(PATH), 1, "one upstream request for 16 clients");
    let mut tags = Vec::new();
    for r in &results {
        assert_eq!(r.reply.status, 200);
        assert!(r.reply.complete);
        assert!(r.reply.body == data, "identical, correct bytes");
        tags.push(r.reply.header("x-cache").unwrap_or("-").to_owned());
        assert!(
            r.first_byte < upstream_done / 3,
            "first byte at {:?}, upstream done at {upstream_done:?}",
            r.first_byte
        );
    }
    tags.sort();
    assert_eq!(tags.iter().filter(|t| *t == "MISS").count(), 1, "{tags:?}");
    assert_eq!(
        tags.iter().filter(|t| *t == "COALESCED").count(),
        15,
        "{tags:?}"
    );
    cache.settle();
    assert_eq!(cache.files(), [stored("/distfiles/herd.tar.xz")]);
}

#[test]
fn two_processes_sharing_a_cache_make_one_upstream_request() {
    let mirror = FakeMirror::start();
    let data = bytes(2 << 20, 12);
    mirror.put_file(
        PATH,
        FakeFile::new(data.clone()).with_fault(Fault::Rate(1 << 20)),
    );
    let dir = TempDir::new("shared");
    let cache_arg = dir.path().display().to_string();
    let a = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let b = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let t0 = Instant::now();
    let results = herd(&[a.addr, b.addr], 16, t0);
    let done = t0.elapsed();
    assert_eq!(
        mirror.gets(PATH),
        1,
        "one upstream request for two processes"
    );
    for r in &results {
        assert!(r.reply.complete && r.reply.body == data);
        assert!(
            r.first_byte < done / 2,
            "first byte at {:?} of {done:?}",
            r.first_byte
        );
    }
    assert!(wait_until(Duration::from_secs(5), || list_files(
        dir.path()
    ) == [stored(PATH)]));
}

#[test]
fn leader_failure_never_gives_followers_a_complete_looking_body() {
    let mirror = FakeMirror::start();
    let data = bytes(2 << 20, 13);
    mirror.put(PATH, data.clone());
    // The first download breaks after 1 MiB, half a second in.
    mirror.fail_next(PATH, vec![Fault::Rate(2 << 20), Fault::ResetAfter(1 << 20)]);
    let cache = TestCache::start(&[mirror.url()]);
    let results = herd(&[cache.addr], 8, Instant::now());
    for r in &results {
        if r.reply.status == 200 && r.reply.complete {
            assert!(r.reply.body == data, "a complete body is the right body");
        } else {
            assert_eq!(r.reply.status, 200);
            assert!(r.reply.body.len() < data.len());
            assert_eq!(&r.reply.body[..], &data[..r.reply.body.len()]);
        }
    }
    assert!(
        results.iter().any(|r| !r.reply.complete),
        "the break was seen"
    );
    cache.settle();
    assert!(cache.files().is_empty(), "nothing stored");
    let again = cache.get(PATH);
    assert!(again.complete && again.body == data);
}

#[test]
fn leader_client_hanging_up_does_not_stop_the_download() {
    let mirror = FakeMirror::start();
    let data = bytes(2 << 20, 14);
    mirror.put_file(
        PATH,
        FakeFile::new(data.clone()).with_fault(Fault::Rate(2 << 20)),
    );
    let cache = TestCache::start(&[mirror.url()]);
    // The first client reads a little and hangs up.
    {
        let mut conn = TcpStream::connect(cache.addr).unwrap();
        write!(conn, "GET {PATH} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 1000];
        conn.read_exact(&mut buf).unwrap();
    }
    // A follower arrives afterwards and gets everything.
    let r = cache.get(PATH);
    assert!(r.complete && r.body == data);
    assert_eq!(r.header("x-cache"), Some("COALESCED"));
    cache.settle();
    assert_eq!(cache.cached(PATH).as_deref(), Some(&data[..]));
    assert_eq!(mirror.gets(PATH), 1);
}

#[test]
fn a_download_nobody_wants_is_abandoned_after_the_grace_period() {
    let mirror = FakeMirror::start();
    mirror.put_file(
        PATH,
        FakeFile::new(bytes(8 << 20, 15)).with_fault(Fault::Rate(256 << 10)),
    );
    let cache = TestCache::start(&[mirror.url()]);
    {
        let mut conn = TcpStream::connect(cache.addr).unwrap();
        write!(conn, "GET {PATH} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 100];
        conn.read_exact(&mut buf).unwrap();
    }
    // The grace is 10 s, and less than half of 8 MiB arrives in that time.
    assert!(wait_until(Duration::from_secs(14), || cache
        .cache
        .downloads_in_progress()
        == 0));
    assert!(
        mirror.sent(PATH) < 4 << 20,
        "the upstream transfer was stopped"
    );
    assert!(cache.files().is_empty());
}

#[test]
fn killed_process_leader_is_survived_by_the_other_process() {
    let mirror = FakeMirror::start();
    let data = bytes(2 << 20, 16);
    mirror.put_file(
        PATH,
        FakeFile::new(data.clone()).with_fault(Fault::Rate(512 << 10)),
    );
    let dir = TempDir::new("killed");
    let cache_arg = dir.path().display().to_string();
    let mut a = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let b = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let (a_addr, b_addr) = (a.addr, b.addr);
    let leader = thread::spawn(move || get_timed_from(a_addr, PATH, Instant::now()));
    assert!(wait_until(Duration::from_secs(5), || mirror.sent(PATH) > 0));
    let follower = thread::spawn(move || get_timed_from(b_addr, PATH, Instant::now()));
    thread::sleep(Duration::from_millis(500));
    a.signal(libc::SIGKILL);
    let _ = a.wait_exit(Duration::from_secs(5));
    let (l, f) = (leader.join().unwrap(), follower.join().unwrap());
    assert!(
        !l.reply.complete,
        "the killed leader's client sees a short read"
    );
    assert!(
        !f.reply.complete,
        "a follower that got headers fails visibly"
    );
    assert_eq!(&f.reply.body[..], &data[..f.reply.body.len()]);
    // The survivor takes over: the lock of the dead process was released.
    let again = get(b_addr, PATH);
    assert!(again.complete && again.body == data);
    assert!(wait_until(Duration::from_secs(5), || list_files(
        dir.path()
    ) == [stored(PATH)]));
    assert_eq!(mirror.gets(PATH), 2);
}

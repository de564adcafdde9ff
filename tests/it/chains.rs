//! Chains of caches (issue 16, item 2): a site cache whose source is a regional cache.
//! Every tier names itself in `Via`, a request that comes back to a tier it passed is
//! answered `508 Loop Detected` at once, conditional requests revalidate tier by tier,
//! and `Cache-Control: only-if-cached` never makes a cache fetch. Real processes,
//! except where a test looks inside one cache.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::process::{Process, free_port};
use crate::support::*;

/// Our `Via` entry for an instance called `name`.
fn entry(name: &str) -> String {
    format!("1.1 {name} (package-cache/{})", env!("CARGO_PKG_VERSION"))
}

/// `/-/status.json` of the cache at `addr`.
fn status(addr: SocketAddr) -> String {
    get(addr, "/-/status.json").text()
}

/// Waits (up to `limit`) until the cache at `addr` has no download in progress.
fn no_downloads(addr: SocketAddr, limit: Duration) -> bool {
    wait_until(limit, || status(addr).contains("\"downloads\":[]"))
}

#[test]
fn three_tiers_name_themselves_in_via_and_store_one_copy_each() {
    let mirror = FakeMirror::start();
    let data = bytes(300_000, 1601);
    let path = "/distfiles/tiers-1.0.tar.gz";
    mirror.put(path, data.clone());
    let (dirs, mut tiers): (Vec<TempDir>, Vec<Process>) =
        ((0..3).map(|_| TempDir::new("tier")).collect(), Vec::new());
    let mut source = mirror.url();
    for (dir, name) in dirs.iter().zip(["continent", "region", "site"]) {
        let cache = dir.path().display().to_string();
        let p = Process::start(&["--source", &source, "--cache", &cache, "--name", name]);
        source = format!("http://{}", p.addr);
        tiers.push(p);
    }
    let site = tiers[2].addr;

    let r = get(site, path);
    assert_eq!(r.status, 200);
    assert!(r.complete && r.body == data);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(r.header("via"), Some(entry("site").as_str()));
    let seen = mirror.seen_for(path);
    assert_eq!(seen.len(), 1, "the origin is asked once");
    assert_eq!(
        seen[0].header("via"),
        Some(
            format!(
                "{}, {}, {}",
                entry("site"),
                entry("region"),
                entry("continent")
            )
            .as_str()
        ),
        "each tier passes on the entries it received, then adds its own"
    );

    // Each tier stored it; a second request is a hit at the site, and so is one at
    // the middle tier.
    for dir in &dirs {
        assert!(
            wait_until(Duration::from_secs(5), || list_files(dir.path())
                .contains(&stored(path))),
            "{:?}",
            list_files(dir.path())
        );
    }
    let again = get(site, path);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert!(again.body == data);
    let middle = get(tiers[1].addr, path);
    assert_eq!(middle.header("x-cache"), Some("HIT"));
    assert_eq!(middle.header("via"), Some(entry("region").as_str()));
    assert_eq!(mirror.gets(path), 1);
}

#[test]
fn two_caches_that_are_each_others_source_answer_508_at_once() {
    let b_port = free_port();
    let (dir_a, dir_b) = (TempDir::new("loop-a"), TempDir::new("loop-b"));
    let (cache_a, cache_b) = (
        dir_a.path().display().to_string(),
        dir_b.path().display().to_string(),
    );
    let b_url = format!("http://127.0.0.1:{b_port}");
    // No --name: the default (host name and port) tells two instances on one host
    // apart.
    let a = Process::start(&["--source", &b_url, "--cache", &cache_a]);
    let a_url = format!("http://{}", a.addr);
    let b = Process::start_on(b_port, &["--source", &a_url, "--cache", &cache_b]);

    let mut slowest = Duration::ZERO;
    for (i, addr) in [a.addr, b.addr, a.addr].into_iter().enumerate() {
        let t0 = Instant::now();
        let r = get(addr, &format!("/distfiles/loop-{i}.tar.gz"));
        let took = t0.elapsed();
        slowest = slowest.max(took);
        assert_eq!(r.status, 508, "{}", r.text());
        assert!(r.text().contains("Loop Detected"), "{}", r.text());
        assert!(
            r.header("via").is_some_and(|v| v.contains(":")),
            "{:?}",
            r.header("via")
        );
        assert!(took < Duration::from_millis(500), "508 after {took:?}");
    }
    eprintln!("two caches that are each other's source: 508 within {slowest:?}");

    // Asked at both ends at the same moment, for the same files: neither waits on the
    // other's download.
    let t0 = Instant::now();
    let barrier = Arc::new(Barrier::new(8));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                get(addr, &format!("/distfiles/both-{}.tar.gz", i / 2 % 2)).status
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 508);
    }
    let took = t0.elapsed();
    eprintln!("asked at both ends at once: every answer within {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    for p in [&a, &b] {
        assert!(
            no_downloads(p.addr, Duration::from_secs(2)),
            "no download left waiting: {}",
            status(p.addr)
        );
    }
    assert!(list_files(dir_a.path()).is_empty() && list_files(dir_b.path()).is_empty());
}

#[test]
fn siblings_with_a_mirror_behind_each_get_every_file_once_from_it() {
    let mirror = FakeMirror::start();
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            let path = format!("/distfiles/sib-{i}.tar.gz");
            let data = bytes(200_000 + i * 1000, 1610 + i as u64);
            mirror.put(&path, data.clone());
            (path, data)
        })
        .collect();
    let b_port = free_port();
    let (dir_a, dir_b) = (TempDir::new("sib-a"), TempDir::new("sib-b"));
    let (cache_a, cache_b) = (
        dir_a.path().display().to_string(),
        dir_b.path().display().to_string(),
    );
    let b_url = format!("http://127.0.0.1:{b_port}");
    let m = mirror.url();
    // Each asks the other first, then the mirror.
    let a = Process::start(&["--source", &b_url, "--source", &m, "--cache", &cache_a]);
    let a_url = format!("http://{}", a.addr);
    let b = Process::start_on(
        b_port,
        &["--source", &a_url, "--source", &m, "--cache", &cache_b],
    );

    // One at a time: the other cache's copy is used, the mirror asked once per file.
    let (p0, d0) = &files[0];
    let r = get(a.addr, p0);
    assert!(
        r.status == 200 && r.complete && r.body == *d0,
        "{}",
        r.status
    );
    let r = get(b.addr, p0);
    assert!(r.complete && r.body == *d0);
    assert_eq!(mirror.gets(p0), 1);

    // Both ends at the same moment: every client gets the file promptly.
    let t0 = Instant::now();
    let barrier = Arc::new(Barrier::new(6));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let (path, data) = files[1 + i / 2].clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let r = get(addr, &path);
                r.status == 200 && r.complete && r.body == data
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap(), "a whole, correct body");
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    for (path, _) in &files[1..] {
        assert!(
            (1..=2).contains(&mirror.gets(path)),
            "{path}: {}",
            mirror.gets(path)
        );
    }
    for p in [&a, &b] {
        assert!(
            no_downloads(p.addr, Duration::from_secs(5)),
            "{}",
            status(p.addr)
        );
    }
}

#[test]
fn a_conditional_request_revalidates_through_two_tiers() {
    let mirror = FakeMirror::start();
    let path = "/releases/amd64/binpackages/23.0/x86-64/Packages";
    let old = b"TIMESTAMP: 1\n".to_vec();
    mirror.put(path, old.clone());
    let (dir_r, dir_s) = (TempDir::new("reval-r"), TempDir::new("reval-s"));
    let (cache_r, cache_s) = (
        dir_r.path().display().to_string(),
        dir_s.path().display().to_string(),
    );
    // The site asks again after 1 s, the region after 4 s.
    let m = mirror.url();
    let mut region = Process::start(&[
        "--source",
        &m,
        "--cache",
        &cache_r,
        "--name",
        "region",
        "--mutable-ttl",
        "4",
    ]);
    let r_url = format!("http://{}", region.addr);
    let site = Process::start(&[
        "--source",
        &r_url,
        "--cache",
        &cache_s,
        "--name",
        "site",
        "--mutable-ttl",
        "1",
    ]);
    let t0 = Instant::now();
    let first = get(site.addr, path);
    assert_eq!((first.status, first.body.clone()), (200, old.clone()));
    assert_eq!(mirror.gets(path), 1);

    // Past the site's TTL, within the region's: the site's conditional request is
    // answered 304 by the region from its own copy; the mirror is not asked.
    thread::sleep(Duration::from_millis(1500));
    let second = get(site.addr, path);
    assert_eq!(second.header("x-cache"), Some("REVALIDATED"));
    assert!(second.body == old);
    assert_eq!(mirror.gets(path), 1, "the region answered from its copy");
    assert!(
        region
            .wait_for_line(&format!("GET {path} 304 "), Duration::from_secs(2))
            .is_some(),
        "the region answered the site's conditional request with 304"
    );

    // The mirror publishes a new index; once the region's TTL has run out too, the
    // site's next revalidation reaches the mirror through the region.
    let new = b"TIMESTAMP: 2\n".to_vec();
    mirror.put_file(path, FakeFile::new(new.clone()).modified_at(1_700_000_000));
    let region_ttl_over = Duration::from_millis(5000);
    thread::sleep(region_ttl_over.saturating_sub(t0.elapsed()));
    let third = get(site.addr, path);
    assert_eq!(third.status, 200);
    assert!(third.body == new, "{}", third.text());
    let seen = mirror.seen_for(path);
    assert_eq!(seen.len(), 2);
    let conditional = &seen[1];
    assert!(
        conditional.header("if-modified-since").is_some(),
        "the region revalidated: {:?}",
        conditional.headers
    );
    assert_eq!(
        conditional.header("via"),
        Some(format!("{}, {}", entry("site"), entry("region")).as_str())
    );
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read(dir_s.path().join(stored(path))).is_ok_and(|b| b == new)
    }));
}

#[test]
fn only_if_cached_answers_from_the_store_or_504_without_fetching() {
    let mirror = FakeMirror::start();
    let path = "/distfiles/sibling-1.0.tar.gz";
    let data = bytes(50_000, 1620);
    mirror.put(path, data.clone());
    let index = "/binpackages/Packages";
    mirror.put(index, b"TIMESTAMP: 1\n".to_vec());
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        c.name = Some("sibling".into());
        c.mutable_ttl = Duration::ZERO;
    });
    let only = "Cache-Control: only-if-cached\r\n";

    let miss = get_with(cache.addr, path, only);
    assert_eq!(miss.status, 504, "{}", miss.text());
    assert!(miss.text().contains("only-if-cached"), "{}", miss.text());
    assert_eq!(miss.header("via"), Some(entry("sibling").as_str()));
    let head = request(
        cache.addr,
        &format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n{only}Connection: close\r\n\r\n"),
    );
    assert_eq!(head.status, 504);
    assert_eq!(mirror.hits(path), 0, "nothing was fetched");
    assert_eq!(cache.cache.downloads_in_progress(), 0);
    assert!(cache.files().is_empty());

    // Stored by a plain request, then served to an only-if-cached one.
    assert!(cache.get(path).body == data);
    cache.settle();
    let hit = get_with(cache.addr, path, only);
    assert_eq!((hit.status, hit.header("x-cache")), (200, Some("HIT")));
    assert!(hit.body == data);
    assert_eq!(mirror.gets(path), 1);

    // A copy that would have to be revalidated is not fresh: 504, and no request.
    assert_eq!(cache.get(index).status, 200);
    cache.settle();
    let asked = mirror.hits(index);
    let stale = get_with(cache.addr, index, only);
    assert_eq!(stale.status, 504);
    assert_eq!(mirror.hits(index), asked);
}

#[test]
fn a_request_that_already_passed_through_is_508_and_entries_are_passed_on() {
    let mirror = FakeMirror::start();
    let path = "/distfiles/via-1.0.tar.gz";
    mirror.put(path, bytes(1000, 1630));
    let cache = TestCache::start_with(&[mirror.url()], |c| c.name = Some("me.example:4000".into()));
    let looped = get_with(
        cache.addr,
        path,
        "Via: 1.0 fred, 1.1 ME.example:4000 (package-cache/0.1.0)\r\nVia: 1.1 other\r\n",
    );
    assert_eq!(looped.status, 508);
    assert_eq!(mirror.hits(path), 0);

    let r = get_with(
        cache.addr,
        path,
        "Via: 1.0 fred, HTTP/1.1 nginx (proxy, v1)\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        mirror.seen_for(path)[0].header("via"),
        Some(
            format!(
                "1.0 fred, HTTP/1.1 nginx (proxy, v1), {}",
                entry("me.example:4000")
            )
            .as_str()
        )
    );
}

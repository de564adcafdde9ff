//! Gentoo mirror semantics: GLEP 75 layouts, one entry per distfile, freshness of
//! files that change in place.

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use package_cache::http::date;

const NAME: &str = "MooseX-OneArgNew-0.007.tar.gz";
const HASHED: &str = "/distfiles/0a/MooseX-OneArgNew-0.007.tar.gz";
const FLAT: &str = "/distfiles/MooseX-OneArgNew-0.007.tar.gz";
const GENTOO_LAYOUT: &str = "[structure]\n0=filename-hash BLAKE2B 8\n1=flat\n";

/// A mirror laid out like Gentoo's: layout.conf says BLAKE2B 8, files only hashed.
fn hashed_mirror() -> FakeMirror {
    let m = FakeMirror::start();
    m.put("/distfiles/layout.conf", GENTOO_LAYOUT);
    m.put(HASHED, b"moose".to_vec());
    m
}

/// A mirror without layout.conf: flat.
fn flat_mirror() -> FakeMirror {
    let m = FakeMirror::start();
    m.put(FLAT, b"moose".to_vec());
    m
}

#[test]
fn flat_request_against_a_hashed_source() {
    let mirror = hashed_mirror();
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get(FLAT);
    assert_eq!((r.status, r.text().as_str()), (200, "moose"));
    assert_eq!(mirror.gets(HASHED), 1, "asked in the source's layout");
    assert_eq!(mirror.hits(FLAT), 0);
}

#[test]
fn hashed_request_against_a_flat_source() {
    let mirror = flat_mirror();
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get(HASHED);
    assert_eq!((r.status, r.text().as_str()), (200, "moose"));
    assert_eq!(mirror.gets(FLAT), 1);
    assert_eq!(mirror.hits(HASHED), 0);
}

#[test]
fn both_forms_share_one_entry() {
    let mirror = hashed_mirror();
    let cache = TestCache::start(&[mirror.url()]);
    assert_eq!(cache.get(FLAT).header("x-cache"), Some("MISS"));
    cache.settle();
    let r = cache.get(HASHED);
    assert_eq!(
        (r.header("x-cache"), r.text().as_str()),
        (Some("HIT"), "moose")
    );
    // SHA512 4:8 is another valid form of the same name.
    let r = cache.get(&format!("/distfiles/e/d5/{NAME}"));
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(
        mirror.gets(HASHED),
        1,
        "one upstream request for every form"
    );
    assert_eq!(
        cache.files(),
        ["distfiles/0a/MooseX-OneArgNew-0.007.tar.gz"]
    );
}

#[test]
fn wrong_hash_directory_is_404() {
    let mirror = hashed_mirror();
    let cache = TestCache::start(&[mirror.url()]);
    for wrong in [
        format!("/distfiles/0b/{NAME}"),
        format!("/distfiles/zz/{NAME}"),
        format!("/distfiles/0a/0a/{NAME}"),
    ] {
        assert_eq!(cache.get(&wrong).status, 404, "{wrong}");
    }
    assert!(mirror.seen().is_empty(), "nothing reached the source");
}

#[test]
fn source_layout_conf_with_unknown_entries_uses_the_first_usable() {
    let mirror = FakeMirror::start();
    mirror.put(
        "/distfiles/layout.conf",
        "# comment\n[structure]\n0=content-hash SHA512 8:8:8\n1=filename-hash WHIRLPOOL 8\n2=filename-hash blake2b 8\n3=filename-hash SHA512 4:8\n4=flat\n",
    );
    let sha_path = format!("/distfiles/e/d5/{NAME}");
    mirror.put(&sha_path, b"sha".to_vec());
    let cache = TestCache::start(&[mirror.url()]);
    assert_eq!(cache.get(FLAT).text(), "sha");
    assert_eq!(mirror.gets(&sha_path), 1);
}

#[test]
fn sources_are_asked_each_in_its_own_layout() {
    let (empty_hashed, flat) = (FakeMirror::start(), flat_mirror());
    empty_hashed.put("/distfiles/layout.conf", GENTOO_LAYOUT);
    let cache = TestCache::start(&[empty_hashed.url(), flat.url()]);
    assert_eq!(cache.get(HASHED).text(), "moose");
    assert_eq!(empty_hashed.hits(HASHED), 1);
    assert_eq!(flat.hits(FLAT), 1);
    // The layouts are learned once.
    cache.get("/distfiles/other-1.tar.gz");
    assert_eq!(empty_hashed.hits("/distfiles/layout.conf"), 1);
    assert_eq!(flat.hits("/distfiles/layout.conf"), 1);
}

#[test]
fn python_cache_entries_in_either_form_keep_working() {
    let dir = TempDir::new("pycache");
    let flat_name = "pkgcore-style-1.0.tar.gz";
    std::fs::create_dir_all(dir.path().join("distfiles/0a")).unwrap();
    std::fs::write(dir.path().join(&HASHED[1..]), b"hashed copy").unwrap();
    std::fs::write(dir.path().join("distfiles").join(flat_name), b"flat copy").unwrap();
    let mirror = FakeMirror::start();
    let cache = TestCache::start_in(dir, &[mirror.url()], |_| {});
    assert_eq!(cache.get(FLAT).text(), "hashed copy");
    assert_eq!(cache.get(HASHED).text(), "hashed copy");
    let hashed_flat = format!(
        "/distfiles/{}",
        package_cache::gentoo::layout::gentoo().path(flat_name)
    );
    assert_eq!(cache.get(&hashed_flat).text(), "flat copy");
    assert_eq!(
        cache.get(&format!("/distfiles/{flat_name}")).text(),
        "flat copy"
    );
    assert!(mirror.seen().is_empty());
}

#[test]
fn layout_conf_always_answers() {
    // The source's own, when it has one we can honour.
    let mirror = hashed_mirror();
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get("/distfiles/layout.conf");
    assert_eq!((r.status, r.text().as_str()), (200, GENTOO_LAYOUT));

    // Ours, when the source has none.
    let mirror = flat_mirror();
    let cache = TestCache::start(&[mirror.url()]);
    let r = cache.get("/distfiles/layout.conf");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("0=filename-hash BLAKE2B 8\n1=flat\n"),
        "{}",
        r.text()
    );

    // Ours, when the source's would make clients ask for paths we cannot map.
    let mirror = FakeMirror::start();
    mirror.put(
        "/distfiles/layout.conf",
        "[structure]\n0=filename-hash WHIRLPOOL 8\n",
    );
    let cache = TestCache::start(&[mirror.url()]);
    assert!(
        cache
            .get("/distfiles/layout.conf")
            .text()
            .contains("BLAKE2B 8")
    );

    // Ours, when no source answers at all.
    let cache = TestCache::start(&["http://127.0.0.1:9".into()]);
    let r = cache.get("/distfiles/layout.conf");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("[structure]"));
}

fn lm(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn short_ttl(extra: &[&str]) -> impl FnOnce(&mut package_cache::config::Config) + use<> {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    move |c: &mut package_cache::config::Config| {
        c.mutable_ttl = Duration::from_secs(1);
        c.mutable = extra;
    }
}

/// Puts `files` (path, body) on the mirror, last modified at 1_700_000_000, starts a
/// cache with a 1 s TTL for files that change in place, and fetches each once.
fn warm(mirror: &FakeMirror, files: &[(&str, &str)]) -> TestCache {
    for (path, body) in files {
        mirror.put_file(path, FakeFile::new(*body).modified_at(1_700_000_000));
    }
    let cache = TestCache::start_with(&[mirror.url()], short_ttl(&[]));
    for (path, body) in files {
        assert_eq!(cache.get(path).text(), *body);
    }
    cache.settle();
    cache
}

#[test]
fn packages_is_refreshed_after_the_ttl_while_a_gpkg_is_not() {
    let mirror = FakeMirror::start();
    let (index, pkg) = (
        "/binpkgs/Packages",
        "/binpkgs/app-misc/foo/foo-1-1.gpkg.tar",
    );
    let cache = warm(&mirror, &[(index, "v1"), (pkg, "pkg v1")]);

    mirror.put_file(index, FakeFile::new("v2").modified_at(1_700_000_100));
    mirror.put_file(pkg, FakeFile::new("pkg v2").modified_at(1_700_000_100));
    let r = cache.get(index);
    assert_eq!(
        (r.text().as_str(), r.header("x-cache")),
        ("v1", Some("HIT")),
        "within the ttl"
    );

    std::thread::sleep(Duration::from_millis(1100));
    let r = cache.get(index);
    assert_eq!(
        (r.text().as_str(), r.header("x-cache")),
        ("v2", Some("MISS"))
    );
    let asked = mirror.seen_for(index);
    assert_eq!(asked.len(), 2);
    assert_eq!(
        asked[1].header("if-modified-since"),
        Some(date::format(lm(1_700_000_000)).as_str()),
        "a conditional request"
    );
    cache.settle();
    assert_eq!(cache.cached(index).as_deref(), Some(&b"v2"[..]));
    assert_eq!(
        r.header("last-modified"),
        Some(date::format(lm(1_700_000_100)).as_str())
    );

    // Unchanged upstream: 304, our copy is REVALIDATED.
    std::thread::sleep(Duration::from_millis(1100));
    let r = cache.get(index);
    assert_eq!(
        (r.text().as_str(), r.header("x-cache")),
        ("v2", Some("REVALIDATED"))
    );

    // The binary package never changes in place: never asked again.
    let r = cache.get(pkg);
    assert_eq!(
        (r.text().as_str(), r.header("x-cache")),
        ("pkg v1", Some("HIT"))
    );
    assert_eq!(mirror.hits(pkg), 1);
}

#[test]
fn latest_snapshot_is_refreshed_while_a_dated_one_is_not() {
    let mirror = FakeMirror::start();
    let (latest, dated) = (
        "/snapshots/gentoo-latest.tar.xz",
        "/snapshots/gentoo-20240101.tar.xz",
    );
    let cache = warm(&mirror, &[(latest, "monday"), (dated, "jan 1")]);
    mirror.put_file(latest, FakeFile::new("tuesday").modified_at(1_700_086_400));
    mirror.put_file(dated, FakeFile::new("changed?!").modified_at(1_700_086_400));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(cache.get(latest).text(), "tuesday");
    assert_eq!(cache.get(dated).text(), "jan 1");
    assert_eq!(mirror.hits(dated), 1);
}

#[test]
fn stale_copy_is_served_while_every_source_is_down() {
    let mirror = FakeMirror::start();
    let index = "/binpkgs/Packages";
    let cache = warm(&mirror, &[(index, "v1")]);
    mirror.set_faults(index, vec![Fault::Status(503)]);
    std::thread::sleep(Duration::from_millis(1100));
    let r = cache.get(index);
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-cache")),
        (200, "v1", Some("STALE"))
    );
    // A failed check counts as a check: the source is not asked on every request.
    let before = mirror.hits(index);
    assert_eq!(cache.get(index).header("x-cache"), Some("HIT"));
    assert_eq!(mirror.hits(index), before);
}

#[test]
fn revalidation_is_coalesced() {
    let mirror = FakeMirror::start();
    let index = "/binpkgs/Packages";
    let cache = warm(&mirror, &[(index, "v1")]);
    std::thread::sleep(Duration::from_millis(1100));
    // The source takes half a second to answer the conditional request.
    mirror.fail_next(index, vec![Fault::StallHeaders(Duration::from_millis(500))]);
    let barrier = Arc::new(Barrier::new(8));
    let addr = cache.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                get(addr, index)
            })
        })
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "v1"));
        assert_eq!(r.header("x-cache"), Some("REVALIDATED"));
    }
    assert_eq!(
        mirror.hits(index),
        2,
        "one download, then one shared conditional request"
    );
}

#[test]
fn binhost_if_modified_since_round_trip() {
    let mirror = FakeMirror::start();
    let index = "/binpkgs/Packages";
    let stamp = 1_700_000_000;
    mirror.put_file(
        index,
        FakeFile::new("TIMESTAMP: 1700000000\n").modified_at(stamp),
    );
    let cache = TestCache::start(&[mirror.url()]);
    // Portage sends the index TIMESTAMP + 5 s.
    let ims = date::format(lm(stamp + 5));
    for _ in 0..2 {
        let r = Conn::open(cache.addr).get(
            index,
            &format!("If-Modified-Since: {ims}\r\nConnection: close\r\n"),
        );
        assert_eq!(r.status, 304);
        assert_eq!(
            r.header("last-modified"),
            Some(date::format(lm(stamp)).as_str())
        );
    }
    // Older than our copy: the whole index, with the upstream's Last-Modified.
    let r = Conn::open(cache.addr).get(
        index,
        &format!(
            "If-Modified-Since: {}\r\nConnection: close\r\n",
            date::format(lm(stamp - 60))
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("last-modified"),
        Some(date::format(lm(stamp)).as_str())
    );
}

#[test]
fn mutable_globs_and_etags() {
    let mirror = FakeMirror::start();
    let path = "/metadata/timestamp.chk";
    mirror.put_file(
        path,
        FakeFile {
            etag: Some("\"e1\"".into()),
            ..FakeFile::new("t1").modified_at(1_700_000_000)
        },
    );
    let cache = TestCache::start_with(&[mirror.url()], short_ttl(&["metadata/*"]));
    cache.get(path);
    cache.settle();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(cache.get(path).header("x-cache"), Some("REVALIDATED"));
    let asked = mirror.seen_for(path);
    assert_eq!(
        asked[1].header("if-none-match"),
        Some("\"e1\""),
        "the ETag is used"
    );
}

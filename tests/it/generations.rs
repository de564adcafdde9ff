//! Repository generations through the real server: a binhost's `Packages` and
//! `Packages.gz`, a snapshot and its `.md5sum`, and two processes sharing one cache
//! directory (here two instances in this process, which share nothing but the
//! directory, as two processes would).

use std::time::Duration;

use crate::support::{FakeFile, FakeMirror, TestCache};

const TTL: Duration = Duration::from_secs(1);

fn publish(mirror: &FakeMirror, files: &[(&str, &str)], modified: u64) {
    for (path, body) in files {
        mirror.put_file(path, FakeFile::new(*body).modified_at(modified));
    }
}

/// (body, X-Cache) of `path` through `cache`.
fn ask(cache: &TestCache, path: &str) -> (String, String) {
    let r = cache.get(path);
    assert_eq!(r.status, 200, "{path}");
    (r.text(), r.header("X-Cache").unwrap_or("").to_owned())
}

fn short_ttl() -> impl FnOnce(&mut package_cache::config::Config) {
    |c| c.mutable_ttl = TTL
}

#[test]
fn a_binhost_index_and_its_compressed_copy_are_one_generation() {
    let mirror = FakeMirror::start();
    let (index, gz) = ("/binpkgs/Packages", "/binpkgs/Packages.gz");
    publish(&mirror, &[(index, "v1"), (gz, "v1.gz")], 1_700_000_000);
    // Longer than elsewhere: the steps below leave a margin of half of it.
    const TTL: Duration = Duration::from_secs(2);
    let cache = TestCache::start_with(&[mirror.url()], |c| c.mutable_ttl = TTL);
    assert_eq!(ask(&cache, index).0, "v1");
    assert_eq!(ask(&cache, gz).0, "v1.gz");
    cache.settle();

    publish(&mirror, &[(index, "v2"), (gz, "v2.gz")], 1_700_000_100);
    // Within the TTL: the old generation, both files, without asking.
    assert_eq!(ask(&cache, index), ("v1".into(), "HIT".into()));
    assert_eq!(ask(&cache, gz), ("v1.gz".into(), "HIT".into()));
    std::thread::sleep(TTL + Duration::from_millis(100));
    // The anchor first: a new generation; the member is asked before it is served.
    assert_eq!(ask(&cache, index), ("v2".into(), "MISS".into()));
    assert_eq!(ask(&cache, gz), ("v2.gz".into(), "MISS".into()));
    cache.settle();
    // While the anchor is in use its members go with it, past their own TTL too.
    std::thread::sleep(TTL / 2);
    assert_eq!(ask(&cache, index).1, "HIT");
    std::thread::sleep(TTL / 2 + Duration::from_millis(100));
    let before = mirror.hits(gz);
    assert_eq!(ask(&cache, gz), ("v2.gz".into(), "HIT".into()));
    assert_eq!(mirror.hits(gz), before);
    assert_eq!(mirror.hits(index), 2);
}

#[test]
fn a_client_reading_only_the_md5sum_still_sees_a_new_snapshot() {
    let mirror = FakeMirror::start();
    let (tarball, md5) = (
        "/snapshots/gentoo-latest.tar.xz",
        "/snapshots/gentoo-latest.tar.xz.md5sum",
    );
    publish(
        &mirror,
        &[(tarball, "monday"), (md5, "md5 monday")],
        1_700_000_000,
    );
    let cache = TestCache::start_with(&[mirror.url()], short_ttl());
    assert_eq!(ask(&cache, tarball).0, "monday");
    assert_eq!(ask(&cache, md5).0, "md5 monday");
    cache.settle();

    publish(
        &mirror,
        &[(tarball, "tuesday"), (md5, "md5 tuesday")],
        1_700_086_400,
    );
    std::thread::sleep(TTL + Duration::from_millis(100));
    // Nobody read the tarball for a TTL: the .md5sum is revalidated on its own ...
    assert_eq!(ask(&cache, md5), ("md5 tuesday".into(), "MISS".into()));
    // ... and the tarball that goes with it follows.
    assert_eq!(ask(&cache, tarball), ("tuesday".into(), "MISS".into()));
    cache.settle();
    // The .md5sum was fetched before the tarball's new generation began: confirmed
    // once in it, then served with it.
    assert_eq!(
        ask(&cache, md5),
        ("md5 tuesday".into(), "REVALIDATED".into())
    );
    assert_eq!(ask(&cache, md5).1, "HIT");
}

#[test]
fn processes_sharing_a_directory_follow_each_others_generations() {
    let mirror = FakeMirror::start();
    let (anchor, member) = (
        "/debian/dists/stable/InRelease",
        "/debian/dists/stable/main/binary-amd64/Packages.xz",
    );
    publish(
        &mirror,
        &[(anchor, "release 1"), (member, "packages 1")],
        1_700_000_000,
    );
    // The first with a short TTL, the second with a long one: left alone, the second
    // would serve its generation for a minute.
    let first = TestCache::start_with(&[mirror.url()], short_ttl());
    let second = TestCache::start_at(first.root(), &[mirror.url()], |c| {
        c.mutable_ttl = Duration::from_secs(60);
    });
    let second_get = |path: &str| {
        let r = second.get(path);
        (r.text(), r.header("X-Cache").unwrap_or("").to_owned())
    };
    assert_eq!(ask(&first, anchor).0, "release 1");
    assert_eq!(ask(&first, member).0, "packages 1");
    first.settle();
    // The second confirms what the first stored before serving it (a 304 each).
    assert_eq!(
        second_get(anchor),
        ("release 1".into(), "REVALIDATED".into())
    );
    assert_eq!(
        second_get(member),
        ("packages 1".into(), "REVALIDATED".into())
    );

    publish(
        &mirror,
        &[(anchor, "release 2"), (member, "packages 2")],
        1_700_000_100,
    );
    std::thread::sleep(TTL + Duration::from_millis(100));
    assert_eq!(ask(&first, anchor).0, "release 2");
    assert_eq!(ask(&first, member).0, "packages 2");
    first.settle();
    // The second's TTL has not run out, but the files on disk are not the ones it
    // confirmed: the member is confirmed first (the anchor it belongs to moved on),
    // and so is the anchor; neither is downloaded again.
    let (sent_anchor, sent_member) = (mirror.gets(anchor), mirror.gets(member));
    assert_eq!(
        second_get(member),
        ("packages 2".into(), "REVALIDATED".into())
    );
    assert_eq!(
        second_get(anchor),
        ("release 2".into(), "REVALIDATED".into())
    );
    assert_eq!(second_get(member), ("packages 2".into(), "HIT".into()));
    let last = mirror.seen_for(member).pop().unwrap();
    assert!(
        last.header("If-Modified-Since").is_some() && last.header("If-None-Match").is_none(),
        "{last:?}"
    );
    assert_eq!(
        (mirror.gets(anchor), mirror.gets(member)),
        (sent_anchor + 1, sent_member + 1),
        "one conditional request each"
    );
}

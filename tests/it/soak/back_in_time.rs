//! The ways a file that changes in place went back in time (see
//! [`super::checker::Timeline`]), as the soak found them, each on its own and
//! deterministic: one cache in this process, mirrors that lag, and, where the soak
//! needs its second process, that process's older copy put in the cache directory by
//! hand (as it renames one in). Each failed before its fix; the soak fails on any
//! answer that goes back in time.
//!
//! 1. While a new version is downloaded and stored, a request is answered from the
//!    older copy on disk as a fresh HIT, although the process already gave the new
//!    one out whole: to a HEAD (whole as soon as the download starts), or to a GET
//!    whose last byte came before the fsync and rename.
//! 2. A new version that cannot be stored (its source sent no length) is passed on,
//!    and then the older copy on disk is served as a fresh HIT until the TTL ends.
//! 3. A copy served from disk (HIT, REVALIDATED) is not remembered as served: after
//!    a restart, or with a copy the other process stored, once that copy is deleted
//!    (evicted, culled) a lagging mirror's older version is taken and served.
//! 4. A HEAD for a file not on disk asks the sources and passes on what the first
//!    one says, older or not.
//! 5. With two processes: one that has not seen the newer version stores an older
//!    one after a deletion, and the other serves it as a HIT (a HIT is never compared
//!    with what the process served), or follows its download.
//! 6. After such a replacement, revalidation sends the ETag of the version the
//!    process downloaded with the date of the older copy now on disk; the source
//!    answers 304 and the older copy is served (REVALIDATED) from then on.

use std::path::Path;
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use crate::support::*;

const PACKAGES: &str = "/binpkgs/amd64/Packages";
const TTL: Duration = Duration::from_millis(300);

/// Version `n` of the index: its bytes, Last-Modified `n` minutes after a base, and an
/// ETag naming `mirror`.
fn version(n: u64, mirror: &str) -> FakeFile {
    FakeFile {
        etag: Some(format!("\"{mirror}-{n}\"")),
        ..FakeFile::new(text(n)).modified_at(1_700_000_000 + 60 * n)
    }
}

fn text(n: u64) -> String {
    format!("TIMESTAMP: {n}\n")
}

/// Puts version `n` where the cache keeps `PACKAGES`, as another process renames its
/// copy in.
fn put_copy(root: &Path, n: u64) {
    let path = root.join(stored(PACKAGES));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let part = path.with_file_name(".hand.pc-part");
    std::fs::write(&part, text(n)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&part)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 60 * n))
        .unwrap();
    std::fs::rename(&part, &path).unwrap();
}

fn cache(sources: &[String]) -> TestCache {
    TestCache::start_with(sources, |c| c.mutable_ttl = TTL)
}

/// Cause 1: A HEAD whose revalidation finds a new version is answered with it at once;
/// the download goes on, and until it is stored a GET gets the older copy as a fresh
/// HIT. (In the soak the same shows between a GET's last byte and the rename.)
#[test]
fn the_old_copy_is_not_served_while_the_new_one_downloads() {
    let a = FakeMirror::start();
    a.put_file(PACKAGES, version(1, "a"));
    let cache = cache(&[a.url()]);
    assert_eq!(cache.get(PACKAGES).text(), text(1));
    cache.settle();
    thread::sleep(TTL + Duration::from_millis(50));
    let mut v2 = version(2, "a");
    v2.body.resize(200_000, b'#');
    a.put_file(PACKAGES, v2.with_fault(Fault::Rate(100_000)));
    let told = head(cache.addr, PACKAGES);
    assert_eq!(told.header("Last-Modified").map(str::to_owned), lm(2));
    let then = cache.get(PACKAGES);
    assert_eq!(
        then.header("Last-Modified").map(str::to_owned),
        lm(2),
        "after a HEAD said version 2, a GET got {:?} ({:?})",
        then.header("Last-Modified"),
        then.header("X-Cache")
    );
}

/// Cause 2: A new version whose source sent no length is passed on but not stored; the
/// older copy on disk is then served as a fresh HIT.
#[test]
fn a_new_version_that_cannot_be_stored_does_not_bring_the_old_one_back() {
    let a = FakeMirror::start();
    a.put_file(PACKAGES, version(1, "a"));
    let cache = cache(&[a.url()]);
    assert_eq!(cache.get(PACKAGES).text(), text(1));
    cache.settle();
    thread::sleep(TTL + Duration::from_millis(50));
    a.put_file(PACKAGES, version(2, "a").with_fault(Fault::NoLength));
    let new = cache.get(PACKAGES);
    assert_eq!((new.text(), new.complete), (text(2), true));
    cache.settle();
    assert_eq!(
        cache.get(PACKAGES).text(),
        text(2),
        "then the older one again"
    );
}

/// Cause 3: A copy served from disk is not remembered as served: after a restart, once
/// it is deleted, a lagging mirror's older version is taken.
#[test]
fn a_copy_served_from_disk_is_remembered_once_it_is_gone() {
    let (a, b) = (FakeMirror::start(), FakeMirror::start());
    a.put_file(PACKAGES, version(1, "a")); // lags
    b.put_file(PACKAGES, version(2, "b"));
    // The previous life of this process stored version 2.
    let dir = TempDir::new("known-bug-3");
    put_copy(dir.path(), 2);
    let cache = TestCache::start_in(dir, &[a.url(), b.url()], |c| c.mutable_ttl = TTL);
    assert_eq!(cache.get(PACKAGES).text(), text(2));
    cache.settle();
    std::fs::remove_file(cache.root().join(stored(PACKAGES))).unwrap();
    assert_eq!(
        cache.get(PACKAGES).text(),
        text(2),
        "after the copy was evicted"
    );
}

/// Cause 4: A HEAD for a file not on disk passes on what the first source says.
#[test]
fn a_head_is_never_older_than_what_was_served() {
    let (a, b) = (FakeMirror::start(), FakeMirror::start());
    b.put_file(PACKAGES, version(2, "b"));
    let cache = cache(&[a.url(), b.url()]);
    assert_eq!(cache.get(PACKAGES).text(), text(2));
    cache.settle();
    a.put_file(PACKAGES, version(1, "a")); // catches up, not all the way
    std::fs::remove_file(cache.root().join(stored(PACKAGES))).unwrap();
    let told = head(cache.addr, PACKAGES);
    assert_eq!(told.header("Last-Modified").map(str::to_owned), lm(2));
}

/// Cause 5: The other process, which had not seen version 2, puts version 1 in the
/// shared directory (after an eviction); within its TTL this process serves it as a
/// HIT.
#[test]
fn an_older_copy_from_the_other_process_is_not_served() {
    let a = FakeMirror::start();
    a.put_file(PACKAGES, version(2, "a"));
    let cache = TestCache::start_with(&[a.url()], |c| c.mutable_ttl = Duration::from_secs(60));
    assert_eq!(cache.get(PACKAGES).text(), text(2));
    cache.settle();
    put_copy(cache.root(), 1);
    assert_eq!(cache.get(PACKAGES).text(), text(2));
}

/// Cause 6: After such a replacement, revalidation sends version 2's ETag with version
/// 1's date; the source answers 304 and version 1 stays, while the source has 2.
#[test]
fn an_etag_is_only_sent_for_the_copy_it_names() {
    let a = FakeMirror::start();
    a.put_file(PACKAGES, version(2, "a"));
    let cache = cache(&[a.url()]);
    assert_eq!(cache.get(PACKAGES).text(), text(2));
    cache.settle();
    put_copy(cache.root(), 1);
    for round in 0..3 {
        thread::sleep(TTL + Duration::from_millis(50));
        let reply = cache.get(PACKAGES);
        assert_eq!(
            reply.text(),
            text(2),
            "round {round}: {:?}",
            reply.header("X-Cache")
        );
    }
}

fn lm(n: u64) -> Option<String> {
    Some(package_cache::http::date::format(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 60 * n),
    ))
}

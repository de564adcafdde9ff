//! `--repo` end to end (issue 15): a repository written by the test (md5-cache entries
//! with arrows, USE conditionals, `mirror://` and `RESTRICT`; Manifests with real
//! digests; a `thirdpartymirrors` whose first mirror is dead), a mirror without some
//! files, and origins on other loopback ports that count requests. SRC_URI fallback,
//! Manifest checks on every copy (a wrong size skipped, a wrong copy never stored and
//! never complete to a client, in this process or another), a stored copy that fails
//! fetched again, a repository sync picked up while running, `cull --unreferenced`, and
//! binary packages checked against the binhost's `Packages`.

use std::time::{Duration, Instant};

use crate::support::gentoo::{TestRepo, package_block};
use crate::support::process::{Process, free_port, output};
use crate::support::*;

/// A cache in front of `mirror` knowing `repo`, once the repository is read.
fn start(mirror: &FakeMirror, repo: &TestRepo) -> TestCache {
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        c.repos = vec![repo.path().to_path_buf()];
    });
    let ready = wait_until(Duration::from_secs(10), || {
        status(&cache).contains("\"repo\":{\"ready\":true")
    });
    assert!(ready, "the repository index is read: {}", status(&cache));
    cache
}

fn status(cache: &TestCache) -> String {
    cache.get("/-/status.json").text()
}

/// The value of `"key":N` after the first occurrence of `after` in `json`.
fn number_after(json: &str, after: &str, key: &str) -> u64 {
    let at = json
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {json}"));
    let rest = &json[at..];
    let k = format!("\"{key}\":");
    let v = &rest[rest.find(&k).unwrap_or_else(|| panic!("{key} in {rest}")) + k.len()..];
    v[..v.find([',', '}']).unwrap()].parse().unwrap()
}

#[test]
fn a_file_no_mirror_has_comes_from_its_src_uri_under_its_arrow_name() {
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    let afio = bytes(1_500_000, 1);
    let tag = "/k/afio/archive/refs/tags/v2.5.2.tar.gz";
    origin.put(tag, afio.clone());
    let repo = TestRepo::new();
    repo.ebuild(
        "app-arch/afio-2.5.2",
        &format!("{}{tag} -> afio-2.5.2.tar.gz", origin.url()),
        "bindist? ( mirror ) !test? ( test )",
    );
    repo.manifest("app-arch/afio", &[("afio-2.5.2.tar.gz", &afio)]);
    let cache = start(&mirror, &repo);

    let path = "/distfiles/afio-2.5.2.tar.gz";
    let head = head(cache.addr, path);
    assert_eq!(head.status, 200, "HEAD asks the origin too");
    assert_eq!(head.header("content-length"), Some("1500000"));
    let r = cache.get(path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete && r.body == afio);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(
        r.header("x-cache-source"),
        Some(format!("{}{tag}", origin.url()).as_str())
    );
    assert_eq!(mirror.gets(path), 1, "the mirror is asked first");
    cache.settle();
    assert_eq!(cache.cached(path).as_deref(), Some(&afio[..]));

    // Stored under the distfile's name: a hit in either form, nobody asked again.
    for form in [
        path.to_owned(),
        format!("/distfiles/{}", stored(path)[10..].to_owned()),
    ] {
        let hit = cache.get(&form);
        assert_eq!(
            (hit.status, hit.header("x-cache")),
            (200, Some("HIT")),
            "{form}"
        );
        assert!(hit.body == afio && hit.header("x-cache-source").is_none());
    }
    assert_eq!(origin.gets(tag), 1);
    let s = status(&cache);
    assert_eq!(
        number_after(&s, "\"src_uri_fetches\"", "src_uri_fetches"),
        1
    );
    assert_eq!(number_after(&s, "\"origins\"", "verified"), 1, "{s}");
    let metrics = cache.get("/-/metrics").text();
    assert!(
        metrics.contains("package_cache_src_uri_fetches_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "package_cache_verified_total{{origin=\"{}\"}} 1",
        origin.url()
    )));
}

#[test]
fn mirror_uris_fail_over_past_a_dead_mirror_and_every_use_conditional_counts() {
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    // A port nothing listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let acl = bytes(50_000, 2);
    let extra = bytes(20_000, 3);
    origin.put("/pub/acl/acl-2.3.2.tar.xz", acl.clone());
    origin.put("/pub/acl/acl-extra-1.tar.xz", extra.clone());
    let repo = TestRepo::new();
    repo.mirrors(&format!(
        "# name urls\ntestmirror {dead}/pub {}/pub/\n",
        origin.url()
    ));
    repo.ebuild(
        "dev-libs/acl-2.3.2",
        "doc? ( mirror://testmirror/acl/acl-2.3.2.tar.xz ) \
         !minimal? ( mirror://testmirror/acl/acl-extra-1.tar.xz )",
        "",
    );
    repo.manifest(
        "dev-libs/acl",
        &[("acl-2.3.2.tar.xz", &acl), ("acl-extra-1.tar.xz", &extra)],
    );
    let cache = start(&mirror, &repo);

    let r = cache.get("/distfiles/acl-2.3.2.tar.xz");
    assert!(
        r.status == 200 && r.complete && r.body == acl,
        "{}",
        r.text()
    );
    assert_eq!(
        r.header("x-cache-source"),
        Some(format!("{}/pub/acl/acl-2.3.2.tar.xz", origin.url()).as_str())
    );
    // The dead mirror is remembered as a source would be: not asked for the next file.
    let r = cache.get("/distfiles/acl-extra-1.tar.xz");
    assert!(r.status == 200 && r.complete && r.body == extra);
    cache.settle();
    let s = status(&cache);
    let dead_at = format!("{{\"url\":\"{dead}\"");
    assert_eq!(number_after(&s, &dead_at, "requests"), 1, "{s}");
    assert!(s.contains(&format!("{dead_at},\"up\":false")), "{s}");
    assert_eq!(
        number_after(&s, &format!("{{\"url\":\"{}\"", origin.url()), "verified"),
        2
    );
}

#[test]
fn fetch_restricted_unlisted_and_unknown_files_never_reach_an_origin() {
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    for p in ["/secret-1.zip", "/nodigest-1.tar.gz", "/unknown-1.tar.gz"] {
        origin.put(p, b"bytes".to_vec());
    }
    let repo = TestRepo::new();
    repo.ebuild(
        "dev-libs/secret-1",
        &format!("{}/secret-1.zip", origin.url()),
        "fetch",
    );
    repo.manifest("dev-libs/secret", &[("secret-1.zip", b"bytes")]);
    // Named by SRC_URI, listed by no Manifest: nothing could check it.
    repo.ebuild(
        "app-misc/nodigest-1",
        &format!("{}/nodigest-1.tar.gz", origin.url()),
        "",
    );
    let cache = start(&mirror, &repo);
    for name in ["secret-1.zip", "nodigest-1.tar.gz", "unknown-1.tar.gz"] {
        let r = cache.get(&format!("/distfiles/{name}"));
        assert_eq!(r.status, 404, "{name}: {}", r.text());
    }
    assert_eq!(origin.request_count(), 0, "{:?}", origin.seen());
    // A fetch-restricted file a mirror has is still served, and checked.
    mirror.put("/distfiles/secret-1.zip", b"bytes".to_vec());
    cache.cache.forget_all_missing();
    let r = cache.get("/distfiles/secret-1.zip");
    assert!(r.status == 200 && r.complete && r.body == b"bytes");
}

#[test]
fn a_source_announcing_the_wrong_size_is_skipped_before_any_byte() {
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    let good = bytes(100_000, 4);
    mirror.put("/distfiles/size-1.tar.gz", bytes(99_000, 4));
    mirror.put("/distfiles/sizeonly-1.tar.gz", bytes(10, 5));
    origin.put("/size-1.tar.gz", good.clone());
    let repo = TestRepo::new();
    repo.ebuild(
        "app-misc/size-1",
        &format!("{}/size-1.tar.gz sizeonly-1.tar.gz", origin.url()),
        "",
    );
    repo.manifest(
        "app-misc/size",
        &[
            ("size-1.tar.gz", &good),
            ("sizeonly-1.tar.gz", b"elevenbytes"),
        ],
    );
    let cache = start(&mirror, &repo);

    let r = cache.get("/distfiles/size-1.tar.gz");
    assert!(r.status == 200 && r.complete && r.body == good);
    assert_eq!(
        r.header("x-cache-source"),
        Some(format!("{}/size-1.tar.gz", origin.url()).as_str())
    );
    // Only the mirror has the other one, and its copy is the wrong size: no file.
    let r = cache.get("/distfiles/sizeonly-1.tar.gz");
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("announced 10 bytes, expected 11"),
        "{}",
        r.text()
    );
    cache.settle();
    assert!(cache.cached("/distfiles/sizeonly-1.tar.gz").is_none());
    let s = status(&cache);
    assert_eq!(number_after(&s, "\"sources\"", "mismatches"), 2, "{s}");
}

#[test]
fn a_wrong_copy_is_never_stored_nor_complete_and_the_next_request_gets_the_next_source() {
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    let good = bytes(2_000_000, 6); // over 1 MiB: digests on threads of their own
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0xff; // only the last byte differs
    let path = "/distfiles/tampered-1.tar.gz";
    mirror.put(path, bad);
    origin.put("/tampered-1.tar.gz", good.clone());
    let repo = TestRepo::new();
    repo.ebuild(
        "app-misc/tampered-1",
        &format!("{}/tampered-1.tar.gz", origin.url()),
        "",
    );
    repo.manifest("app-misc/tampered", &[("tampered-1.tar.gz", &good)]);
    let cache = start(&mirror, &repo);

    // Passed through unstored (a query string), it is checked all the same.
    let q = cache.get(&format!("{path}?via=query"));
    assert_eq!(q.status, 200);
    assert!(!q.complete && q.body.len() == good.len() - 1);

    let r = cache.get(path);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert!(!r.complete, "a wrong copy never looks complete");
    assert_eq!(
        r.body,
        good[..good.len() - 1],
        "everything but the last byte"
    );
    cache.settle();
    assert!(
        !cache.files().iter().any(|f| f.contains("tampered")),
        "nothing stored: {:?}",
        cache.files()
    );

    // wget -c: the rest, from the next source; the mirror is not asked again.
    let r = get_with(
        cache.addr,
        path,
        &format!("Range: bytes={}-\r\n", good.len() - 1),
    );
    assert_eq!(r.status, 206, "{}", r.text());
    assert!(r.complete && r.body == good[good.len() - 1..]);
    assert_eq!(mirror.gets(path), 2, "the query, the download, and no more");
    assert_eq!(origin.gets("/tampered-1.tar.gz"), 1);
    cache.settle();
    let hit = cache.get(path);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.body == good);
    let s = status(&cache);
    assert_eq!(number_after(&s, "\"sources\"", "mismatches"), 1, "{s}");
    assert!(s.contains("does not match the Manifest: BLAKE2B"), "{s}");
}

#[test]
fn another_process_following_a_download_never_sees_a_wrong_copy_complete() {
    let mirror = FakeMirror::start();
    let good = bytes(400_000, 7);
    let mut bad = good.clone();
    bad[1000] ^= 1;
    let repo = TestRepo::new();
    repo.ebuild("app-misc/shared-1", "shared-1.tar.gz shared-2.tar.gz", "");
    repo.manifest(
        "app-misc/shared",
        &[("shared-1.tar.gz", &good), ("shared-2.tar.gz", &good)],
    );
    let dir = TempDir::new("shared");
    let (cache_arg, repo_arg) = (
        dir.path().display().to_string(),
        repo.path().display().to_string(),
    );
    let args = [
        "--source",
        &mirror.url(),
        "--cache",
        &cache_arg,
        "--repo",
        &repo_arg,
    ];
    let mut a = Process::start(&args);
    let mut b = Process::start(&args);
    for p in [&mut a, &mut b] {
        assert!(
            p.wait_for_line("repository index:", Duration::from_secs(10))
                .is_some()
        );
    }
    // A wrong copy of one, a right copy of the other (a source that sent a wrong copy
    // is not asked for that file again).
    for (name, copy, whole) in [
        ("shared-1.tar.gz", bad, false),
        ("shared-2.tar.gz", good.clone(), true),
    ] {
        let path = &format!("/distfiles/{name}");
        // A pause just before the end, so B's client joins A's download in the middle.
        mirror.put_file(
            path,
            FakeFile::new(copy).with_fault(Fault::StallAfter(
                good.len() - 10,
                Duration::from_millis(800),
            )),
        );
        let first = std::thread::spawn({
            let (addr, path) = (a.addr, path.clone());
            move || get(addr, &path)
        });
        assert!(wait_until(Duration::from_secs(5), || mirror.sent(path)
            as usize
            >= good.len() - 10));
        let second = get(b.addr, path);
        let first = first.join().unwrap();
        for (who, r) in [("leader", &first), ("follower", &second)] {
            assert_eq!(r.status, 200, "{who}");
            assert_eq!(r.complete, whole, "{who}: complete only when right");
            if whole {
                assert!(r.body == good, "{who}");
            } else {
                assert!(r.body.len() < good.len(), "{who}: {}", r.body.len());
            }
        }
        assert_eq!(mirror.gets(path), 1, "one download for both processes");
        // The download is over once its part file is gone (renamed into place, or
        // removed); then the copy is stored only if it was right.
        let stored = || list_files(dir.path()).iter().any(|f| f.ends_with(name));
        wait_until(Duration::from_secs(5), || {
            stored() == whole
                && !list_files(dir.path())
                    .iter()
                    .any(|f| f.ends_with(".pc-part"))
        });
        let stored = stored();
        assert_eq!(stored, whole, "{:?}", list_files(dir.path()));
    }
}

#[test]
fn a_stored_copy_that_fails_its_manifest_is_fetched_again() {
    let mirror = FakeMirror::start();
    let good = bytes(30_000, 8);
    let mut rotten = good.clone();
    rotten[5] ^= 0x20;
    mirror.put("/distfiles/rot-1.tar.gz", good.clone());
    mirror.put("/distfiles/flat-1.tar.gz", good.clone());
    let repo = TestRepo::new();
    repo.ebuild("app-misc/rot-1", "rot-1.tar.gz flat-1.tar.gz", "");
    repo.manifest(
        "app-misc/rot",
        &[("rot-1.tar.gz", &good), ("flat-1.tar.gz", &good)],
    );
    let dir = TempDir::new("rot");
    // The disk lied: a stored copy with the right size and wrong bytes; and a Python
    // package-cache's flat copy of another, shorter than its Manifest says.
    let at = dir.path().join(stored("/distfiles/rot-1.tar.gz"));
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(&at, &rotten).unwrap();
    std::fs::create_dir_all(dir.path().join("distfiles")).unwrap();
    std::fs::write(dir.path().join("distfiles/flat-1.tar.gz"), &good[..100]).unwrap();
    let cache = TestCache::start_in(dir, &[mirror.url()], |c| {
        c.repos = vec![repo.path().to_path_buf()];
    });
    assert!(wait_until(Duration::from_secs(10), || status(&cache)
        .contains("\"repo\":{\"ready\":true")));
    for name in ["rot-1.tar.gz", "flat-1.tar.gz"] {
        let path = format!("/distfiles/{name}");
        let r = cache.get(&path);
        assert_eq!(r.header("x-cache"), Some("MISS"), "{name}");
        assert!(r.complete && r.body == good, "{name}");
        cache.settle();
        assert_eq!(cache.cached(&path).as_deref(), Some(&good[..]), "{name}");
        let again = cache.get(&path);
        assert_eq!(again.header("x-cache"), Some("HIT"), "{name}");
    }
    let s = status(&cache);
    assert_eq!(number_after(&s, "\"stored_checks\"", "failed"), 2, "{s}");
    assert_eq!(number_after(&s, "\"stored_checks\"", "read"), 1, "{s}");
}

#[test]
fn a_repository_sync_is_picked_up_while_running() {
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    let new = bytes(10_000, 9);
    origin.put("/new-1.tar.gz", new.clone());
    let repo = TestRepo::new();
    let cache = start(&mirror, &repo);
    let path = "/distfiles/new-1.tar.gz";
    assert_eq!(cache.get(path).status, 404, "unknown: the mirror's answer");
    assert_eq!(origin.request_count(), 0);

    // emerge --sync brings the new version; its 404 is remembered for a minute, but
    // forgotten as soon as the index learns the name.
    repo.ebuild(
        "app-misc/new-1",
        &format!("{}/new-1.tar.gz", origin.url()),
        "",
    );
    repo.manifest("app-misc/new", &[("new-1.tar.gz", &new)]);
    repo.synced();
    let t0 = Instant::now();
    let mut last = cache.get(path);
    wait_until(Duration::from_secs(20), || {
        if last.status != 200 {
            last = cache.get(path);
        }
        last.status == 200
    });
    assert_eq!(last.status, 200, "{}", last.text());
    assert!(last.complete && last.body == new);
    eprintln!("the sync was picked up in {:?}", t0.elapsed());
    assert_eq!(mirror.gets(path), 2, "the mirror asked again once");
}

#[test]
fn cull_unreferenced_removes_what_no_manifest_lists() {
    let repo = TestRepo::new();
    repo.ebuild("app-misc/kept-1", "kept-1.tar.gz", "");
    repo.manifest("app-misc/kept", &[("kept-1.tar.gz", b"k")]);
    let dir = TempDir::new("cull");
    let put = |name: &str| {
        let p = dir.path().join(stored(&format!("/distfiles/{name}")));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
        // Last used two days ago.
        let t = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
        let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_times(times)
            .unwrap();
        p
    };
    let kept = put("kept-1.tar.gz");
    let gone = put("gone-1.tar.gz");
    let cache_arg = dir.path().display().to_string();
    let repo_arg = repo.path().display().to_string();
    let base = [
        "cull",
        "--cache",
        &cache_arg,
        "--repo",
        &repo_arg,
        "--unreferenced",
    ];
    let (code, out, err) = output(&[&base[..], &["--grace", "1", "--dry-run"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would remove distfiles/"), "{out}");
    assert!(out.contains("gone-1.tar.gz") && gone.exists());
    // The default grace (a week) keeps what was used two days ago.
    let (code, out, _) = output(&base);
    assert_eq!(code, 0);
    assert!(gone.exists(), "{out}");
    let (code, out, err) = output(&[&base[..], &["--grace", "1"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 1 unreferenced files"), "{out}");
    assert!(!gone.exists() && kept.exists());

    let (code, _, err) = output(&["cull", "--cache", &cache_arg, "--unreferenced"]);
    assert_eq!(code, 2);
    assert!(err.contains("--unreferenced needs"), "{err}");
    let (code, _, err) = output(&["--repo", "/nonexistent/repo", "--port", "0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--repo /nonexistent/repo: no such file or directory"),
        "{err}"
    );
}

#[test]
fn binary_packages_are_checked_against_the_binhost_index() {
    let mirror = FakeMirror::start();
    let zstd = bytes(80_000, 10);
    let bad = bytes(40_000, 11);
    let big = bytes(1_000, 12);
    let mut index = String::from("VERSION: 0\nPACKAGES: 3\nTIMESTAMP: 1700000000\n\n");
    index += &package_block(
        "app-arch/zstd-1.5.6",
        "app-arch/zstd/zstd-1.5.6-1.gpkg.tar",
        &zstd,
    );
    index += &package_block("dev-libs/bad-1", "dev-libs/bad/bad-1-1.gpkg.tar", &bad);
    index += &package_block("dev-libs/big-1", "dev-libs/big/big-1-1.gpkg.tar", &big);
    let base = "/binpkgs/amd64";
    mirror.put(&format!("{base}/Packages"), index.into_bytes());
    mirror.put(
        &format!("{base}/app-arch/zstd/zstd-1.5.6-1.gpkg.tar"),
        zstd.clone(),
    );
    let mut wrong = bad.clone();
    wrong[20_000] ^= 4;
    // A pause just before the end: the answer has begun when the check fails.
    mirror.put_file(
        &format!("{base}/dev-libs/bad/bad-1-1.gpkg.tar"),
        FakeFile::new(wrong).with_fault(Fault::StallAfter(
            bad.len() - 10,
            Duration::from_millis(800),
        )),
    );
    mirror.put(
        &format!("{base}/dev-libs/big/big-1-1.gpkg.tar"),
        bytes(1_001, 12),
    );
    let cache = TestCache::start(&[mirror.url()]);

    // Portage reads the index first, through the cache.
    assert_eq!(cache.get(&format!("{base}/Packages")).status, 200);
    cache.settle();
    let r = cache.get(&format!("{base}/app-arch/zstd/zstd-1.5.6-1.gpkg.tar"));
    assert!(r.status == 200 && r.complete && r.body == zstd);
    let r = cache.get(&format!("{base}/dev-libs/bad/bad-1-1.gpkg.tar"));
    assert!(
        r.status == 200 && !r.complete && r.body.len() < bad.len(),
        "{} complete {} {} bytes: {}",
        r.status,
        r.complete,
        r.body.len(),
        status(&cache)
    );
    let r = cache.get(&format!("{base}/dev-libs/big/big-1-1.gpkg.tar"));
    assert_eq!(r.status, 502, "{}", r.text());
    cache.settle();
    let files = cache.files();
    assert!(files.iter().any(|f| f.ends_with("zstd-1.5.6-1.gpkg.tar")));
    assert!(
        !files
            .iter()
            .any(|f| f.contains("bad-1") || f.contains("big-1")),
        "{files:?}"
    );
    let s = status(&cache);
    assert_eq!(number_after(&s, "\"sources\"", "verified"), 1, "{s}");
    assert_eq!(number_after(&s, "\"sources\"", "mismatches"), 2, "{s}");
}

#[test]
fn a_source_that_sent_a_wrong_binary_package_is_not_asked_for_it_again() {
    let mirror = FakeMirror::start();
    let bad = bytes(40_000, 11);
    let base = "/binpkgs/amd64";
    let path = format!("{base}/dev-libs/bad/bad-1-1.gpkg.tar");
    let index = String::from("VERSION: 0\nPACKAGES: 1\nTIMESTAMP: 1700000000\n\n")
        + &package_block("dev-libs/bad-1", "dev-libs/bad/bad-1-1.gpkg.tar", &bad);
    mirror.put(&format!("{base}/Packages"), index.into_bytes());
    let mut wrong = bad.clone();
    wrong[20_000] ^= 4;
    // As above: the first answer has begun when the check fails.
    mirror.put_file(
        &path,
        FakeFile::new(wrong).with_fault(Fault::StallAfter(
            bad.len() - 10,
            Duration::from_millis(800),
        )),
    );
    let cache = TestCache::start(&[mirror.url()]);
    assert_eq!(cache.get(&format!("{base}/Packages")).status, 200);
    cache.settle();
    let first = cache.get(&path);
    assert!(
        first.status == 200 && !first.complete,
        "the wrong copy is cut: {} complete {}",
        first.status,
        first.complete
    );
    cache.settle();
    // The only source sent a wrong copy of it: it is not asked again, and nobody else
    // has the file.
    let r = cache.get(&path);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(mirror.gets(&path), 1, "the source was asked once");
    assert!(!cache.files().iter().any(|f| f.contains("bad-1")));
}

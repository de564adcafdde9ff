//! The Gentoo repository index on a real (small) repository on disk: lookups, the
//! verifier against Manifest digests, following a sync while running, masters'
//! thirdpartymirrors, and `cull --unreferenced`. Standalone: no server, no network.

use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use package_cache::gentoo::repo::cull::{UnreferencedOptions, cull_unreferenced};
use package_cache::gentoo::repo::digest::Algo;
use package_cache::gentoo::repo::synth::{self, Spec, write_atomic};
use package_cache::gentoo::repo::{Lookup, Mismatch, RepoIndex, RepoOptions, Verifier};

use crate::support::gentoo::dist;
use crate::support::{TempDir, wait_until};

fn put(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const AFIO: &[u8] = b"afio 2.5.2 source";
const ACL: &[u8] = b"acl 2.3.2 source";

/// A small Gentoo repository and an overlay beside it whose master it is.
fn repository(root: &Path) -> (PathBuf, PathBuf) {
    let gentoo = root.join("gentoo");
    put(&gentoo.join("profiles/repo_name"), "gentoo\n");
    put(&gentoo.join("profiles/categories"), "app-arch\ndev-libs\n");
    put(
        &gentoo.join("profiles/thirdpartymirrors"),
        "# name urls\nnongnu http://127.0.0.1:9/dead https://download.savannah.example/releases/\n",
    );
    put(
        &gentoo.join("metadata/md5-cache/app-arch/afio-2.5.2"),
        "EAPI=8\nRESTRICT=!test? ( test )\nSRC_URI=https://github.com/k/afio/archive/refs/tags/v2.5.2.tar.gz \
         -> afio-2.5.2.tar.gz doc? ( mirror://nongnu/acl/acl-2.3.2.tar.xz )\nSLOT=0\n",
    );
    put(
        &gentoo.join("app-arch/afio/Manifest"),
        &(dist("afio-2.5.2.tar.gz", AFIO) + &dist("acl-2.3.2.tar.xz", ACL)),
    );
    put(
        &gentoo.join("metadata/md5-cache/dev-libs/secret-1.0"),
        "EAPI=8\nRESTRICT=fetch\nSRC_URI=secret-1.0.zip\n",
    );
    put(
        &gentoo.join("dev-libs/secret/Manifest"),
        &dist("secret-1.0.zip", b"s"),
    );
    put(
        &gentoo.join("metadata/md5-cache/dev-libs/nomirror-2"),
        "EAPI=8\nRESTRICT=bindist? ( mirror )\nSRC_URI=https://origin.example/nomirror-2.tar.gz\n",
    );
    put(
        &gentoo.join("dev-libs/nomirror/Manifest"),
        &dist("nomirror-2.tar.gz", b"n"),
    );
    let overlay = root.join("extra");
    put(&overlay.join("profiles/repo_name"), "extra\n");
    put(
        &overlay.join("metadata/layout.conf"),
        "masters = gentoo\nthin-manifests = true\n",
    );
    put(
        &overlay.join("metadata/md5-cache/app-misc/tool-1"),
        "EAPI=8\nSRC_URI=mirror://nongnu/tool/tool-1.tar.gz\n",
    );
    put(
        &overlay.join("app-misc/tool/Manifest"),
        &dist("tool-1.tar.gz", b"t"),
    );
    (gentoo, overlay)
}

fn fast() -> RepoOptions {
    RepoOptions {
        poll: Duration::from_millis(50),
        full_check: Duration::from_secs(3600),
        hot_for: Duration::from_secs(5),
        dep_cache: PathBuf::from("/nonexistent"),
    }
}

fn found(index: &RepoIndex, name: &str) -> package_cache::gentoo::repo::Distfile {
    match index.lookup(name) {
        Lookup::Found(d) => d,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn lookups_verification_and_a_sync_picked_up_while_running() {
    let tmp = TempDir::new("gentoo-repo-sync");
    let root = tmp.path().to_path_buf();
    let (gentoo, overlay) = repository(&root);
    let index = RepoIndex::start(&[gentoo.clone(), overlay.clone()], fast()).unwrap();
    let told: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = told.clone();
    index.on_update(move |u| sink.lock().unwrap().extend(u.names.iter().cloned()));
    assert!(index.wait_ready(Duration::from_secs(10)));

    let afio = found(&index, "afio-2.5.2.tar.gz");
    assert_eq!(
        afio.urls,
        vec!["https://github.com/k/afio/archive/refs/tags/v2.5.2.tar.gz"]
    );
    assert_eq!(afio.size, Some(AFIO.len() as u64));
    assert!(!afio.restrict.fetch && !afio.restrict.mirror && !afio.conflict);
    let acl = found(&index, "acl-2.3.2.tar.xz");
    assert_eq!(
        acl.urls,
        vec![
            "http://127.0.0.1:9/dead/acl/acl-2.3.2.tar.xz",
            "https://download.savannah.example/releases/acl/acl-2.3.2.tar.xz",
        ],
        "a USE-conditional mirror:// URI, each mirror in file order"
    );
    let secret = found(&index, "secret-1.0.zip");
    assert!(secret.restrict.fetch && secret.restrict.mirror && secret.urls.is_empty());
    let nomirror = found(&index, "nomirror-2.tar.gz");
    assert!(nomirror.restrict.mirror && !nomirror.restrict.fetch);
    assert_eq!(
        nomirror.urls,
        vec!["https://origin.example/nomirror-2.tar.gz"]
    );
    let tool = found(&index, "tool-1.tar.gz");
    assert_eq!(
        tool.urls.len(),
        2,
        "the overlay's mirror:// uses its master's mirrors"
    );
    assert_eq!(index.lookup("unknown-1.tar.gz"), Lookup::Unknown);

    // The verifier against the Manifest's entry.
    let mut v = Verifier::new(afio.expected().unwrap());
    v.update(&AFIO[..5]);
    v.update(&AFIO[5..]);
    let ok = v.finish().unwrap();
    assert_eq!(ok.checked, vec![Algo::Blake2b, Algo::Sha512]);
    let mut v = Verifier::new(afio.expected().unwrap());
    v.update(b"afio 2.5.2 sourcX");
    assert!(matches!(
        v.finish(),
        Err(Mismatch::Digest {
            algo: Algo::Blake2b,
            ..
        })
    ));

    // A sync: a new package (new category directory entry, new md5-cache entry) and
    // a changed Manifest, written as rsync does.
    let generation = index.generation();
    let afio_gen = index.generation_of("afio-2.5.2.tar.gz").unwrap();
    const NEW: &[u8] = b"brand new";
    const AFIO2: &[u8] = b"afio 2.5.2 source, re-rolled upstream";
    write_atomic(
        &gentoo.join("metadata/md5-cache/dev-libs/new-1"),
        b"EAPI=8\nSRC_URI=https://new.example/new-1.tar.gz\n",
    )
    .unwrap();
    write_atomic(
        &gentoo.join("dev-libs/new/Manifest"),
        dist("new-1.tar.gz", NEW).as_bytes(),
    )
    .unwrap();
    write_atomic(
        &gentoo.join("app-arch/afio/Manifest"),
        (dist("afio-2.5.2.tar.gz", AFIO2) + &dist("acl-2.3.2.tar.xz", ACL)).as_bytes(),
    )
    .unwrap();
    // rsync's marker of a finished sync (the afio Manifest changed alone: no
    // md5-cache directory of its category changed to point at it).
    write_atomic(
        &gentoo.join("metadata/timestamp.chk"),
        b"Sat, 01 Jun 2024 00:00:00 +0000\n",
    )
    .unwrap();
    let started = Instant::now();
    let picked_up = wait_until(Duration::from_secs(10), || {
        matches!(index.lookup("new-1.tar.gz"), Lookup::Found(d) if d.size == Some(NEW.len() as u64))
            && found(&index, "afio-2.5.2.tar.gz").size == Some(AFIO2.len() as u64)
    });
    let took = started.elapsed();
    assert!(picked_up, "sync picked up: not within 10 s");
    eprintln!("sync picked up in {took:?}");
    assert!(index.generation() > generation);
    assert!(index.generation_of("afio-2.5.2.tar.gz").unwrap() > afio_gen);
    assert!(
        wait_until(Duration::from_secs(2), || {
            let t = told.lock().unwrap();
            t.iter().any(|n| n == "new-1.tar.gz") && t.iter().any(|n| n == "afio-2.5.2.tar.gz")
        }),
        "listeners told: not within 2 s"
    );
    assert!(
        !told.lock().unwrap().iter().any(|n| n == "acl-2.3.2.tar.xz"),
        "an unchanged name in a changed Manifest is not reported"
    );
    let new = found(&index, "new-1.tar.gz");
    assert_eq!(new.urls, vec!["https://new.example/new-1.tar.gz"]);

    // A package removed: its names go.
    fs::remove_file(gentoo.join("metadata/md5-cache/dev-libs/new-1")).unwrap();
    fs::remove_dir_all(gentoo.join("dev-libs/new")).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || index.lookup("new-1.tar.gz")
            == Lookup::Unknown),
        "removal picked up: not within 10 s"
    );
}

#[test]
fn an_overlay_alone_finds_its_masters_mirrors_beside_it() {
    let tmp = TempDir::new("gentoo-repo-master");
    let root = tmp.path().to_path_buf();
    let (_gentoo, overlay) = repository(&root);
    let index = RepoIndex::load(std::slice::from_ref(&overlay), fast()).unwrap();
    let tool = found(&index, "tool-1.tar.gz");
    assert_eq!(
        tool.urls[1],
        "https://download.savannah.example/releases/tool/tool-1.tar.gz"
    );
    assert_eq!(index.lookup("afio-2.5.2.tar.gz"), Lookup::Unknown);
    assert!(RepoIndex::load(&[root.join("missing")], fast()).is_err());
}

fn stored(cache: &Path, name: &str, age_days: u64) -> PathBuf {
    let dir = package_cache::gentoo::layout::gentoo().dirs(name);
    let path = cache.join("distfiles").join(dir).join(name);
    put(&path, "x");
    let t = SystemTime::now() - Duration::from_secs(age_days * 86_400);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
    path
}

#[test]
fn cull_removes_only_old_unreferenced_distfiles() {
    let tmp = TempDir::new("gentoo-repo-cull");
    let root = tmp.path().to_path_buf();
    let (gentoo, _) = repository(&root);
    let index = RepoIndex::load(&[gentoo], fast()).unwrap();
    let cache = root.join("cache");
    let referenced = stored(&cache, "afio-2.5.2.tar.gz", 400);
    let old = stored(&cache, "gone-1.tar.gz", 40);
    let recent = stored(&cache, "recent-1.tar.gz", 2);
    put(&cache.join("distfiles/layout.conf"), "[structure]\n");
    put(&cache.join("distfiles/oldflat-1.tar.gz"), "flat");
    let t = SystemTime::now() - Duration::from_secs(100 * 86_400);
    File::options()
        .write(true)
        .open(cache.join("distfiles/oldflat-1.tar.gz"))
        .unwrap()
        .set_times(FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
    let part = old.with_file_name(".gone-2.tar.gz.pc-part");
    put(&part, "partial");
    let wrong_dir = cache.join("distfiles/zz/misplaced-1.tar.gz");
    put(&wrong_dir, "?");

    let mut options = UnreferencedOptions {
        grace: Duration::from_secs(7 * 86_400),
        dry_run: true,
    };
    let mut out = Vec::new();
    let report = cull_unreferenced(&cache, &index, &options, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        (report.removed, report.referenced, report.recent),
        (2, 1, 1),
        "{text}"
    );
    assert!(
        text.contains("would remove distfiles/oldflat-1.tar.gz"),
        "{text}"
    );
    assert!(old.exists());

    options.dry_run = false;
    let report = cull_unreferenced(&cache, &index, &options, &mut Vec::new()).unwrap();
    assert_eq!(report.removed, 2);
    assert!(!old.exists() && !cache.join("distfiles/oldflat-1.tar.gz").exists());
    for kept in [&referenced, &recent, &part, &wrong_dir] {
        assert!(kept.exists(), "{}", kept.display());
    }
    assert!(cache.join("distfiles/layout.conf").exists());

    // An index that lists nothing refuses to cull.
    let empty = root.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let nothing = RepoIndex::load(&[empty], fast()).unwrap();
    assert!(cull_unreferenced(&cache, &nothing, &options, &mut Vec::new()).is_err());
}

#[test]
fn a_synthetic_repository_indexes_exactly_and_follows_bumps() {
    let tmp = TempDir::new("gentoo-repo-synth");
    let root = tmp.path().to_path_buf();
    let spec = Spec {
        entries: 600,
        dists: 1_300,
        categories: 12,
        seed: 7,
    };
    let summary = synth::generate(&root, &spec).unwrap();
    assert_eq!((summary.entries, summary.dists), (600, 1_300));
    let index = RepoIndex::start(std::slice::from_ref(&root), fast()).unwrap();
    assert!(index.wait_ready(Duration::from_secs(20)));
    let stats = index.stats();
    assert_eq!((stats.names, stats.manifest_names), (1_300, 1_300));
    assert_eq!(stats.files, 600 + summary.packages.len());
    let mirrored = found(&index, &summary.mirrored).urls;
    assert!(!mirrored.is_empty() && mirrored.iter().all(|u| u.starts_with("https://")));
    assert!(found(&index, &summary.arrow).urls[0].starts_with("https://github.com/"));
    assert!(found(&index, &summary.fetch_restricted).restrict.fetch);
    let names = synth::bump(&root, &summary, 25, 1).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            names
                .iter()
                .all(|n| matches!(index.lookup(n), Lookup::Found(d) if d.size.is_some()))
        }),
        "bump picked up: not within 10 s"
    );
    assert_eq!(index.stats().names, 1_325);
}

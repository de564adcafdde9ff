//! Several upstreams in one instance: `--source /PREFIX=URL` sends the paths below a
//! prefix to its sources (without the prefix; failover in order; the longest prefix
//! wins), plain sources serve every other path (GLEP 75 mapping included), a path no
//! source serves is 404, and the status page and metrics show each source's prefix.

use std::time::Duration;

use crate::support::{FakeMirror, TestCache, bytes, get, wait_until};

const KB: usize = 1024;

#[test]
fn each_prefix_goes_to_its_own_sources_and_other_paths_to_the_plain_ones() {
    let (gentoo, debian, debian2, extra) = (
        FakeMirror::start(),
        FakeMirror::start(),
        FakeMirror::start(),
        FakeMirror::start(),
    );
    let moose = "MooseX-OneArgNew-0.007.tar.gz";
    gentoo.put(&format!("/distfiles/0a/{moose}"), bytes(3 * KB, 1));
    gentoo.put(
        "/distfiles/layout.conf",
        "[structure]\n0=filename-hash BLAKE2B 8\n",
    );
    // The Debian sources sit below a path of their own on their hosts.
    debian.put("/debian/pool/main/a/a_1.deb", bytes(2 * KB, 2));
    debian2.put("/debian/pool/main/b/b_1.deb", bytes(2 * KB, 3));
    extra.put("/pool/x.deb", bytes(KB, 4));
    let cache = TestCache::start(&[
        format!("/debian={}/debian", debian.url()),
        gentoo.url(),
        format!("/debian={}/debian/", debian2.url()),
        format!("/debian/extra/={}", extra.url()),
    ]);

    // The prefix is stripped, the source's own path added; the entry is the path as
    // requested.
    let r = cache.get("/debian/pool/main/a/a_1.deb");
    assert_eq!((r.status, r.body.clone()), (200, bytes(2 * KB, 2)));
    assert_eq!(debian.hits("/debian/pool/main/a/a_1.deb"), 1);
    // Failover within the prefix, in order: the first says 404, the second has it.
    let r = cache.get("/debian/pool/main/b/b_1.deb");
    assert_eq!((r.status, r.body.clone()), (200, bytes(2 * KB, 3)));
    assert_eq!(debian.hits("/debian/pool/main/b/b_1.deb"), 1);
    // The longest prefix wins.
    assert_eq!(cache.get("/debian/extra/pool/x.deb").body, bytes(KB, 4));
    // Everything else goes to the plain source, Gentoo's mapping included.
    assert_eq!(
        cache.get(&format!("/distfiles/{moose}")).body,
        bytes(3 * KB, 1)
    );
    assert_eq!(cache.get("/snapshots/missing.tar.xz").status, 404);
    cache.settle();

    // Nobody was asked for another prefix's paths, and the prefixed sources were not
    // asked for a layout.conf.
    for (m, name) in [
        (&debian, "debian"),
        (&debian2, "debian2"),
        (&extra, "extra"),
    ] {
        let asked: Vec<String> = m.seen().into_iter().map(|s| s.path).collect();
        assert!(
            asked
                .iter()
                .all(|p| p.starts_with("/debian/pool/") || p == "/pool/x.deb"),
            "{name}: {asked:?}"
        );
    }
    let asked: Vec<String> = gentoo.seen().into_iter().map(|s| s.path).collect();
    assert!(
        asked
            .iter()
            .all(|p| !p.contains("debian") && !p.contains("pool")),
        "{asked:?}"
    );
    for stored in [
        "debian/pool/main/a/a_1.deb",
        "debian/pool/main/b/b_1.deb",
        "debian/extra/pool/x.deb",
        &format!("distfiles/0a/{moose}"),
    ] {
        assert!(
            cache.files().iter().any(|f| f == stored),
            "{:?}",
            cache.files()
        );
    }
    // Served again from the cache.
    let r = cache.get("/debian/pool/main/a/a_1.deb");
    assert_eq!(r.header("X-Cache"), Some("HIT"));
    assert_eq!(debian.hits("/debian/pool/main/a/a_1.deb"), 1);
}

#[test]
fn with_only_prefixed_sources_other_paths_are_404_without_asking() {
    let arch = FakeMirror::start();
    arch.put("/core/os/x86_64/core.db", bytes(KB, 5));
    let cache = TestCache::start(&[format!("/archlinux={}", arch.url())]);
    assert_eq!(
        cache.get("/archlinux/core/os/x86_64/core.db").body,
        bytes(KB, 5)
    );
    for path in [
        "/distfiles/foo-1.tar.gz",
        "/distfiles/layout.conf",
        "/archlinuxarm/x",
        "/archlinux",
        "/core/os/x86_64/core.db",
    ] {
        assert_eq!(cache.get(path).status, 404, "{path}");
    }
    let asked: Vec<String> = arch.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(asked, ["/core/os/x86_64/core.db"]);
}

#[test]
fn status_and_metrics_show_each_sources_prefix() {
    let (plain, debian) = (FakeMirror::start(), FakeMirror::start());
    debian.put("/pool/a.deb", bytes(KB, 6));
    let cache = TestCache::start(&[plain.url(), format!("/debian={}", debian.url())]);
    assert_eq!(cache.get("/debian/pool/a.deb").status, 200);
    cache.settle();

    let json = get(cache.addr, "/-/status.json").text();
    assert!(
        json.contains(&format!("\"url\":\"{}\",", plain.url())),
        "{json}"
    );
    assert!(json.contains(",\"prefix\":null}"), "{json}");
    assert!(json.contains(",\"prefix\":\"/debian\"}"), "{json}");
    let page = get(cache.addr, "/-/status").text();
    assert!(
        page.contains("<th>Prefix</th>"),
        "the page has a prefix column"
    );

    let want = format!(
        "package_cache_upstream_requests_total{{source=\"{}\",prefix=\"/debian\"}} 1",
        debian.url()
    );
    let plain_line = format!(
        "package_cache_upstream_requests_total{{source=\"{}\"}} 0",
        plain.url()
    );
    let mut text = String::new();
    let seen = wait_until(Duration::from_secs(5), || {
        text = get(cache.addr, "/-/metrics").text();
        text.contains(&want) && text.contains(&plain_line)
    });
    assert!(seen, "{text}");
}

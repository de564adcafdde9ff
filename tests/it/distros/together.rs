//! One package-cache serving apt, pacman and dnf at once, each distribution under its
//! own prefix (`--source /debian=…`, `/archlinux=…`, `/fedora=…`), each from its own
//! origin with its own path layout, beside a plain Gentoo source: first syncs and
//! downloads, a publish everywhere, and the update round after the TTL.

use super::*;
use crate::support::FakeMirror;

/// The three repositories, their origins, and the cache in front of them all.
struct Lab {
    apt: apt::AptRepo,
    pacman: pacman::PacmanRepo,
    dnf: dnf::DnfRepo,
    origins: [Origin; 3],
    gentoo: FakeMirror,
    cache: TestCache,
}

impl Lab {
    fn start() -> Lab {
        let origins = [Origin::start(), Origin::start(), Origin::start()];
        // Each mirror keeps its repository somewhere else below its root; the cache's
        // prefixes hide that from the clients.
        let apt = apt::AptRepo::create(origins[0].root(), "/debian", false);
        let pacman = pacman::PacmanRepo::create(origins[1].root(), "/mirror/arch", true);
        let dnf = dnf::DnfRepo::create(origins[2].root(), "/pub/fedora/test");
        let gentoo = FakeMirror::start();
        let cache = TestCache::start_with(
            &[
                gentoo.url(),
                format!("/debian={}/debian", origins[0].url()),
                format!("/archlinux={}/mirror/arch", origins[1].url()),
                format!("/fedora={}/pub/fedora", origins[2].url()),
            ],
            |c| c.mutable_ttl = TTL,
        );
        Lab {
            apt,
            pacman,
            dnf,
            origins,
            gentoo,
            cache,
        }
    }

    /// Each repository with the base URL its clients get from the cache, and its
    /// origin.
    fn repos(&mut self) -> [(&mut dyn Repo, String, &Origin); 3] {
        let base = |p: &str| self.cache.url(p);
        let (a, p, d) = (base("/debian"), base("/archlinux"), base("/fedora/test"));
        let [o0, o1, o2] = &self.origins;
        [
            (&mut self.apt as &mut dyn Repo, a, o0),
            (&mut self.pacman as &mut dyn Repo, p, o1),
            (&mut self.dnf as &mut dyn Repo, d, o2),
        ]
    }
}

#[test]
fn apt_pacman_and_dnf_through_one_cache_under_three_prefixes() {
    for (name, tools) in [
        ("apt", tool::APT),
        ("pacman", tool::PACMAN),
        ("dnf", tool::DNF),
    ] {
        if !tool::require(&format!("distros::together ({name})"), tools) {
            return;
        }
    }
    let mut lab = Lab::start();
    let mut c = Checks {
        scenario: "apt, pacman and dnf through one cache".into(),
        transcript: Vec::new(),
        failures: Vec::new(),
    };
    let moose = "/distfiles/0a/MooseX-OneArgNew-0.007.tar.gz";
    lab.gentoo.put(moose, crate::support::bytes(4096, 7));
    lab.gentoo.put(
        "/distfiles/layout.conf",
        "[structure]\n0=filename-hash BLAKE2B 8\n",
    );

    // First syncs and downloads, one distribution after the other on one instance.
    let mut clients = Vec::new();
    for (repo, base, origin) in lab.repos() {
        let v1 = repo.publish();
        let who = format!("{} client", repo.name());
        let mut client = repo.client(&base);
        c.synced(&who, client.as_mut());
        c.sees(&who, client.as_mut(), &v1);
        c.downloads(&who, client.as_mut(), repo, &v1);
        if origin.hits(&repo.package_path(&v1)) != 1 {
            c.fail(format!("{who}: the origin did not send the package once"));
        }
        clients.push(client);
    }
    let r = lab.cache.get("/distfiles/MooseX-OneArgNew-0.007.tar.gz");
    if r.body != crate::support::bytes(4096, 7) {
        c.fail(format!(
            "the Gentoo distfile: {} {:?}",
            r.status,
            r.header("X-Cache")
        ));
    }

    // Every repository publishes; after the TTL each client sees its new version.
    let published: Vec<String> = lab
        .repos()
        .into_iter()
        .map(|(r, _, _)| r.publish())
        .collect();
    std::thread::sleep(TTL + Duration::from_millis(200));
    for ((repo, base, _), (client, v2)) in lab
        .repos()
        .into_iter()
        .zip(clients.iter_mut().zip(&published))
    {
        let who = format!("{} client, update round", repo.name());
        c.synced(&who, client.as_mut());
        c.sees(&who, client.as_mut(), v2);
        c.downloads(&who, client.as_mut(), repo, v2);
        let who = format!("fresh {} client", repo.name());
        let mut fresh = repo.client(&base);
        c.synced(&who, fresh.as_mut());
        c.sees(&who, fresh.as_mut(), v2);
    }

    // Each origin was asked only for its own repository's paths, the Gentoo source
    // only for Gentoo's.
    for (origin, own) in lab
        .origins
        .iter()
        .zip(["/debian/", "/mirror/arch/", "/pub/fedora/"])
    {
        let strays: Vec<String> = origin
            .seen_since(0)
            .into_iter()
            .map(|s| s.path)
            .filter(|p| !p.starts_with(own))
            .collect();
        if !strays.is_empty() {
            c.fail(format!("{} was asked for {strays:?}", origin.url()));
        }
    }
    let gentoo: Vec<String> = lab.gentoo.seen().into_iter().map(|s| s.path).collect();
    if gentoo.iter().any(|p| !p.starts_with("/distfiles/")) {
        c.fail(format!("the Gentoo source was asked for {gentoo:?}"));
    }
    c.finish();
}

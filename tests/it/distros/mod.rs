//! The real package managers of other distributions (apt, pacman, dnf) against
//! repositories built with their own tools, served by a static origin on loopback,
//! directly and through package-cache. Each client's state and configuration lives in
//! a temporary directory; the machine's own apt, pacman and dnf are never touched.
//!
//! Every scenario runs twice: against the origin directly, which proves the harness
//! (the repositories publish correctly and the clients see each publish), and through
//! a package-cache whose `--source` is the origin and whose `--mutable-ttl` is short.
//! Through the cache each repository's anchor (`InRelease`, `core.db`, `repomd.xml`)
//! is revalidated after the TTL and its members are served from the anchor's
//! generation (issue 14), so every update round sees the new version and never a
//! mismatch. `--nocapture` prints what the clients said where a test reports it.
//!
//! A test whose tools are missing says it skips, except in CI (`CI` set and not
//! empty), where it fails; `.ci/run` installs them.

mod apt;
mod dnf;
mod gpg;
mod origin;
mod pacman;
mod repo;
mod together;
mod tool;

use std::time::Duration;

use crate::support::TestCache;
use origin::Origin;
use repo::{Client, Repo};

/// The cache's `--mutable-ttl` in these tests.
const TTL: Duration = Duration::from_secs(1);

/// How a client reaches the repository.
enum Via {
    /// The origin's URL.
    Origin(String),
    /// A package-cache in this process, `--source` the origin, `--mutable-ttl` [`TTL`].
    Cache(TestCache),
}

impl Via {
    fn origin(origin: &Origin) -> Via {
        Via::Origin(origin.url())
    }

    fn cache(origin: &Origin) -> Via {
        Via::Cache(TestCache::start_with(&[origin.url()], |c| {
            c.mutable_ttl = TTL;
        }))
    }

    /// The URL a client is given for `repo`.
    fn base(&self, repo: &dyn Repo) -> String {
        match self {
            Via::Origin(url) => format!("{url}{}", repo.prefix()),
            Via::Cache(cache) => cache.url(repo.prefix()),
        }
    }

    /// Lets the cache's copies of files that change in place expire.
    fn wait_ttl(&self) {
        if let Via::Cache(cache) = self {
            cache.settle();
            std::thread::sleep(TTL + Duration::from_millis(200));
        }
    }

    /// Whether a cache stands between client and origin.
    fn is_cached(&self) -> bool {
        matches!(self, Via::Cache(_))
    }

    fn name(&self) -> &str {
        match self {
            Via::Origin(_) => "origin",
            Via::Cache(_) => "cache",
        }
    }
}

/// What went wrong in a scenario, collected rather than stopping at the first, so a
/// failing scenario reports every client's round with its full output.
struct Checks {
    scenario: String,
    /// Every sync, with the client's whole output, in order.
    transcript: Vec<String>,
    failures: Vec<String>,
}

impl Checks {
    fn new(scenario: &str, repo: &dyn Repo, via: &Via) -> Checks {
        Checks {
            scenario: format!("{scenario} ({}, via {})", repo.name(), via.name()),
            transcript: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The client synced: exit 0, no warning or error line (no hash or size mismatch).
    fn synced(&mut self, who: &str, client: &mut dyn Client) {
        let run = client.sync();
        self.transcript.push(format!("{who}:\n{run}"));
        if !run.clean() {
            self.fail(format!("{who}: sync not clean: {:?}", run.problems));
        }
    }

    /// The client's candidate is `want`.
    fn sees(&mut self, who: &str, client: &mut dyn Client, want: &str) {
        match client.candidate() {
            Ok(v) if v == want => {}
            Ok(v) => self.fail(format!("{who}: sees {v}, want {want}")),
            Err(run) => self.fail(format!("{who}: no candidate\n{run}")),
        }
    }

    /// The client's candidate is one of `published`, not older than
    /// `published[at_least]`; returns its index.
    fn sees_published(
        &mut self,
        who: &str,
        client: &mut dyn Client,
        published: &[String],
        at_least: usize,
    ) -> Option<usize> {
        match client.candidate() {
            Ok(v) => match published.iter().position(|p| *p == v) {
                Some(i) if i >= at_least => return Some(i),
                Some(_) => self.fail(format!(
                    "{who}: sees {v}, want {} or newer",
                    published[at_least]
                )),
                None => self.fail(format!("{who}: sees {v}, never published")),
            },
            Err(run) => self.fail(format!("{who}: no candidate\n{run}")),
        }
        None
    }

    /// The client downloads `version`, byte for byte the repository's.
    fn downloads(&mut self, who: &str, client: &mut dyn Client, repo: &dyn Repo, version: &str) {
        match client.download() {
            Ok(bytes) if bytes == repo.package(version) => {}
            Ok(bytes) => self.fail(format!(
                "{who}: downloaded {} bytes that are not {version}'s package",
                bytes.len()
            )),
            Err(run) => self.fail(format!("{who}: download of {version} failed\n{run}")),
        }
    }

    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Panics with every failure and the transcript of every sync, if anything failed;
    /// otherwise prints the transcript (shown with `--nocapture`).
    fn finish(self) {
        if self.failures.is_empty() {
            eprintln!(
                "{}: what the clients printed:\n{}",
                self.scenario,
                self.transcript.join("\n")
            );
        }
        assert!(
            self.failures.is_empty(),
            "{}: {} failure(s):\n{}\n\nwhat the clients printed:\n{}",
            self.scenario,
            self.failures.len(),
            self.failures.join("\n"),
            self.transcript.join("\n")
        );
    }
}

/// First sync and a package download; a second client then does the same. Through
/// the cache, the second download comes from the cache: the origin sends the package
/// once.
fn first_sync_and_download(repo: &mut dyn Repo, via: &Via, origin: &Origin) {
    let mut c = Checks::new("first sync and download", repo, via);
    let v1 = repo.publish();
    for who in ["client", "second client"] {
        let mut client = repo.client(&via.base(repo));
        c.synced(who, client.as_mut());
        c.sees(who, client.as_mut(), &v1);
        c.downloads(who, client.as_mut(), repo, &v1);
    }
    let sent = origin.hits(&repo.package_path(&v1));
    let want = if via.is_cached() { 1 } else { 2 };
    if sent != want {
        c.fail(format!(
            "the origin was asked {sent} times for the package, want {want}"
        ));
    }
    c.finish();
}

/// A new version is published; after the TTL the client that synced before sees it
/// and downloads it, and so does a fresh client.
fn sees_a_new_version_after_the_ttl(repo: &mut dyn Repo, via: &Via, _origin: &Origin) {
    let mut c = Checks::new("a new version after the TTL", repo, via);
    let v1 = repo.publish();
    let mut client = repo.client(&via.base(repo));
    c.synced("client", client.as_mut());
    c.sees("client", client.as_mut(), &v1);
    c.downloads("client", client.as_mut(), repo, &v1);

    let v2 = repo.publish();
    via.wait_ttl();
    c.synced("client, update round", client.as_mut());
    c.sees("client, update round", client.as_mut(), &v2);
    c.downloads("client, update round", client.as_mut(), repo, &v2);
    let mut fresh = repo.client(&via.base(repo));
    c.synced("fresh client", fresh.as_mut());
    c.sees("fresh client", fresh.as_mut(), &v2);
    c.finish();
}

/// The apt case: one client warms the cache, the repository publishes, and
/// after the TTL a client with empty lists syncs. It must see the new version, and
/// must never get an anchor of one generation with an index of another.
fn fresh_client_after_a_publish(repo: &mut dyn Repo, via: &Via, _origin: &Origin) {
    let mut c = Checks::new("a fresh client after a publish", repo, via);
    let v1 = repo.publish();
    let mut warm = repo.client(&via.base(repo));
    c.synced("first client", warm.as_mut());
    c.sees("first client", warm.as_mut(), &v1);

    let v2 = repo.publish();
    via.wait_ttl();
    let mut fresh = repo.client(&via.base(repo));
    c.synced("fresh client", fresh.as_mut());
    c.sees("fresh client", fresh.as_mut(), &v2);
    c.downloads("fresh client", fresh.as_mut(), repo, &v2);
    c.finish();
}

/// Publishes and syncs in quick succession (no waiting for the TTL): every sync of
/// the old client and of a fresh one each round is clean and sees a version no older
/// than what that client saw before; after the TTL both see the last one.
fn rapid_publishes_never_mismatch(repo: &mut dyn Repo, via: &Via, _origin: &Origin) {
    const ROUNDS: usize = 4;
    let mut c = Checks::new("rapid publishes", repo, via);
    let mut published = vec![repo.publish()];
    let mut client = repo.client(&via.base(repo));
    c.synced("client", client.as_mut());
    let mut seen = 0;
    for round in 1..=ROUNDS {
        published.push(repo.publish());
        // From the origin a publish is visible at once; through the cache, within the
        // TTL, an older version may still be served, but never a mixture.
        let newest = published.len() - 1;
        let who = format!("client, round {round}");
        c.synced(&who, client.as_mut());
        let at_least = if via.is_cached() { seen } else { newest };
        if let Some(i) = c.sees_published(&who, client.as_mut(), &published, at_least) {
            seen = i;
        }
        let who = format!("fresh client, round {round}");
        let mut fresh = repo.client(&via.base(repo));
        c.synced(&who, fresh.as_mut());
        let at_least = if via.is_cached() { 0 } else { newest };
        c.sees_published(&who, fresh.as_mut(), &published, at_least);
    }
    via.wait_ttl();
    let last = published.last().unwrap().clone();
    c.synced("client, after the TTL", client.as_mut());
    c.sees("client, after the TTL", client.as_mut(), &last);
    c.downloads("client, after the TTL", client.as_mut(), repo, &last);
    let mut fresh = repo.client(&via.base(repo));
    c.synced("fresh client, after the TTL", fresh.as_mut());
    c.sees("fresh client, after the TTL", fresh.as_mut(), &last);
    c.finish();
}

/// The scenarios for one repository kind: each against the origin (proving the
/// harness) and through the cache.
macro_rules! scenarios {
    ($module:ident, $tools:expr, $make:expr) => {
        mod $module {
            use super::*;

            fn run(scenario: fn(&mut dyn Repo, &Via, &Origin), cached: bool) {
                if !tool::require(stringify!($module), $tools) {
                    return;
                }
                let origin = Origin::start();
                #[allow(clippy::redundant_closure_call)]
                let mut repo = ($make)(&origin);
                let via = if cached {
                    Via::cache(&origin)
                } else {
                    Via::origin(&origin)
                };
                scenario(&mut repo, &via, &origin);
            }

            #[test]
            fn first_sync_and_download_from_the_origin() {
                run(first_sync_and_download, false);
            }

            #[test]
            fn first_sync_and_download_through_the_cache() {
                run(first_sync_and_download, true);
            }

            #[test]
            fn sees_a_new_version_from_the_origin() {
                run(sees_a_new_version_after_the_ttl, false);
            }

            #[test]
            fn sees_a_new_version_through_the_cache() {
                run(sees_a_new_version_after_the_ttl, true);
            }

            #[test]
            fn rapid_publishes_from_the_origin() {
                run(rapid_publishes_never_mismatch, false);
            }

            #[test]
            fn rapid_publishes_through_the_cache() {
                run(rapid_publishes_never_mismatch, true);
            }
        }
    };
}

scenarios! {
    apt_plain,
    tool::APT,
    |o: &Origin| apt::AptRepo::create(o.root(), "/debian", false)
}

scenarios! {
    apt_by_hash,
    tool::APT,
    |o: &Origin| apt::AptRepo::create(o.root(), "/debian", true)
}

scenarios! {
    pacman_unsigned,
    tool::PACMAN,
    |o: &Origin| pacman::PacmanRepo::create(o.root(), "/archlinux", false)
}

scenarios! {
    pacman_signed,
    tool::PACMAN,
    |o: &Origin| pacman::PacmanRepo::create(o.root(), "/archlinux", true)
}

scenarios! {
    dnf_repo,
    tool::DNF,
    |o: &Origin| dnf::DnfRepo::create(o.root(), "/fedora/test")
}

mod apt_fresh_client {
    use super::*;

    fn run(by_hash: bool, cached: bool) {
        if !tool::require("apt_fresh_client", tool::APT) {
            return;
        }
        let origin = Origin::start();
        let mut repo = apt::AptRepo::create(origin.root(), "/debian", by_hash);
        let via = if cached {
            Via::cache(&origin)
        } else {
            Via::origin(&origin)
        };
        fresh_client_after_a_publish(&mut repo, &via, &origin);
    }

    #[test]
    fn from_the_origin() {
        run(false, false);
    }

    /// Before issue 14: "File has unexpected size … Mirror sync in progress?".
    #[test]
    fn through_the_cache() {
        run(false, true);
    }

    #[test]
    fn by_hash_from_the_origin() {
        run(true, false);
    }

    /// Before issue 14: InRelease was cached forever, a fresh client saw the old
    /// version.
    #[test]
    fn by_hash_through_the_cache() {
        run(true, true);
    }
}

/// What one `apt-get update` through a warm cache costs upstream, once the cache's
/// copies have expired: by an up-to-date client, and by a client with empty lists.
/// Nothing was published, so each upstream request must be conditional and get 304;
/// the counts are printed (`--nocapture`) for issue 14's note.
#[test]
fn apt_update_through_a_warm_cache_costs_only_conditional_requests() {
    if !tool::require("apt_update_through_a_warm_cache", tool::APT) {
        return;
    }
    let origin = Origin::start();
    let mut repo = apt::AptRepo::create(origin.root(), "/debian", false);
    let via = Via::cache(&origin);
    let v1 = repo.publish();
    let mut c = Checks::new("warm apt-get update", &repo, &via);
    let mut client = repo.client(&via.base(&repo));
    c.synced("warming client", client.as_mut());
    c.downloads("warming client", client.as_mut(), &repo, &v1);

    for (who, mut cl) in [
        ("up-to-date client", client),
        ("client with empty lists", repo.client(&via.base(&repo))),
    ] {
        via.wait_ttl();
        let mark = origin.count();
        c.synced(who, cl.as_mut());
        c.sees(who, cl.as_mut(), &v1);
        let upstream = origin.seen_since(mark);
        let listing: Vec<String> = upstream
            .iter()
            .map(|s| {
                let kind = if s.conditional { "conditional " } else { "" };
                format!("{kind}{} {} -> {}", s.method, s.path, s.status)
            })
            .collect();
        eprintln!(
            "apt-get update by the {who} through a warm cache: {} upstream request(s): {listing:?}",
            upstream.len()
        );
        if let Some(s) = upstream.iter().find(|s| !s.conditional || s.status != 304) {
            c.fail(format!(
                "{who}: upstream {s:?} is not a conditional request answered 304"
            ));
        }
    }
    c.finish();
}

/// The harness's repositories are what they claim to be: with `Acquire-By-Hash: yes`
/// apt fetches indexes by hash, and the signatures are checked (a client that trusts
/// another key refuses the repository).
#[test]
fn apt_by_hash_and_signatures_are_real() {
    if !tool::require("apt_by_hash_and_signatures_are_real", tool::APT) {
        return;
    }
    let origin = Origin::start();
    let mut repo = apt::AptRepo::create(origin.root(), "/debian", true);
    repo.publish();
    let base = format!("{}/debian", origin.url());
    let run = repo.client(&base).sync();
    assert!(run.clean(), "{run}");
    let paths: Vec<String> = origin.seen_since(0).into_iter().map(|s| s.path).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/binary-amd64/by-hash/SHA256/")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.ends_with("/Packages.xz")),
        "{paths:?}"
    );

    let dir = crate::support::TempDir::new("other-key");
    let other = gpg::Key::generate(dir.path());
    let run = apt::AptClient::new(&base, &other.public(false), false).sync();
    assert!(!run.clean() && run.output().contains("NO_PUBKEY"), "{run}");
}

/// pacman checks the database's signature: a client trusting another key refuses it.
#[test]
fn pacman_signatures_are_checked() {
    if !tool::require("pacman_signatures_are_checked", tool::PACMAN) {
        return;
    }
    let origin = Origin::start();
    let mut repo = pacman::PacmanRepo::create(origin.root(), "/archlinux", true);
    repo.publish();
    let base = format!("{}/archlinux", origin.url());
    assert!(origin.hits("/archlinux/core/os/x86_64/core.db.sig") == 0);
    let run = repo.client(&base).sync();
    assert!(run.clean(), "{run}");
    assert_eq!(origin.hits("/archlinux/core/os/x86_64/core.db.sig"), 1);

    let dir = crate::support::TempDir::new("other-key");
    let other = gpg::Key::generate(dir.path());
    let run = pacman::PacmanClient::new(&base, Some(&other)).sync();
    assert!(!run.clean() && run.output().contains("signature"), "{run}");
}

/// The harness's own check: the origin answers conditional requests the way the
/// clients and the cache rely on.
#[test]
fn origin_answers_conditional_requests() {
    let origin = Origin::start();
    std::fs::create_dir_all(origin.root().join("d")).unwrap();
    std::fs::write(origin.root().join("d/f"), b"one").unwrap();
    let addr = origin.url().trim_start_matches("http://").parse().unwrap();
    let r = crate::support::get(addr, "/d/f");
    assert_eq!((r.status, r.text().as_str()), (200, "one"));
    let (lm, tag) = (
        r.header("Last-Modified").unwrap().to_owned(),
        r.header("ETag").unwrap().to_owned(),
    );
    let mut conn = crate::support::Conn::open(addr);
    let ims = conn.get("/d/f", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(ims.status, 304);
    let inm = conn.get("/d/f", &format!("If-None-Match: {tag}\r\n"));
    assert_eq!(
        inm.status, 304,
        "keep-alive: a second request on one connection"
    );
    let range = conn.get("/d/f", "Range: bytes=1-\r\n");
    assert_eq!((range.status, range.text().as_str()), (206, "ne"));

    // A rewrite within the same second: the ETag changes, If-None-Match sees it.
    std::fs::write(origin.root().join("d/f"), b"two").unwrap();
    let inm = conn.get("/d/f", &format!("If-None-Match: {tag}\r\n"));
    assert_eq!((inm.status, inm.text().as_str()), (200, "two"));
    assert_eq!(crate::support::get(addr, "/d/../d/f").status, 404);
    assert_eq!(crate::support::get(addr, "/d").status, 404);
    assert_eq!(origin.hits("/d/f"), 5);
}

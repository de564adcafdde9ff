//! Which files of a distribution's mirror change in place, and which file of each
//! repository defines its generations.
//!
//! A package mirror is mostly immutable: packages (`pool/`, `*.pkg.tar.*`, `*.rpm`,
//! `*.apk`, distfiles) and content-named files (`by-hash/`, hash-named `repodata/`
//! files, dated snapshots) never change under their names. A few index files are
//! rewritten in place, and most of them belong to a **repository generation**: one
//! file, the *anchor*, lists or signs the others, and a client reads the anchor first
//! and trusts the rest because the anchor says so. Serving an anchor of one
//! generation with a member of another is what makes apt print "File has unexpected
//! size … Mirror sync in progress?".
//!
//! | format | anchors | members (change with the anchor) | immutable |
//! |---|---|---|---|
//! | Debian, Ubuntu | `dists/SUITE/InRelease`, `Release` | everything else below `dists/SUITE/`: `Release.gpg`, `Packages*`, `Sources*`, `Contents-*`, `Translation-*`, `Components-*`, `icons-*`, `i18n/Index`, installer images | `by-hash/`, `pool/` |
//! | Debian flat repository | `InRelease`, `Release` | `Release.gpg`, `Packages*`, `Sources*` | |
//! | Arch | `REPO.db`, `REPO.files` | their `.sig`, `REPO.db.tar.*`, `REPO.files.tar.*` | `*.pkg.tar.*` |
//! | RPM | `repodata/repomd.xml` | `repomd.xml.asc`, `.key`, `repodata/` files not named by hash | hash-named `repodata/` files |
//! | Alpine | `APKINDEX.tar.gz` | | |
//! | Gentoo | binhost `Packages`; `*-latest.*` | `Packages.*`; `*-latest.tar.*.gpgsig`, `.md5sum` | `distfiles/`, dated snapshots |
//!
//! Some mutable files stand alone (no anchor lists them; each is revalidated on its
//! own): FreeBSD pkg's `meta.conf`, `meta.*`, `packagesite.*`, `data.*`, `digests.*`,
//! `filesite.*` (each catalogue archive carries its own signature), Gentoo's
//! `layout.conf` and `latest-*.txt`.
//!
//! [`classify`] answers for one request path; everything no rule names is immutable.
//! The rules are one table, [`RULES`], tried in order, the first match wins.

use std::fmt;

/// A distribution's repository format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// apt repositories (Debian, Ubuntu and derivatives).
    Debian,
    /// pacman repositories.
    Arch,
    /// yum/dnf/zypper repositories (Fedora, RHEL, openSUSE).
    Rpm,
    /// apk repositories.
    Alpine,
    /// FreeBSD pkg repositories.
    FreeBsd,
    /// Gentoo mirrors: distfiles, binhosts, snapshots, releases.
    Gentoo,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Debian => "Debian",
            Format::Arch => "Arch",
            Format::Rpm => "RPM",
            Format::Alpine => "Alpine",
            Format::FreeBsd => "FreeBSD",
            Format::Gentoo => "Gentoo",
        })
    }
}

/// What a file is, for freshness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Never changes under its name: keep it, never ask again.
    Immutable,
    /// Changes in place. `anchors` are the request paths of the files whose change
    /// starts a new generation of its repository (all in one directory, the
    /// repository's root); a client fetches one of them before this file, so the
    /// freshness code follows the ones it has stored. Empty: the file stands alone
    /// and is revalidated on its own.
    Mutable {
        /// The anchors of this file's repository, most used first.
        anchors: Vec<String>,
    },
    /// Changes in place, and its change defines a new generation of the repository
    /// whose anchors live in `repo_root` (a directory path ending in `/`).
    Anchor {
        /// The directory of the repository's anchors: one generation per root.
        repo_root: String,
    },
}

/// What [`classify`] found for a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// The format whose rule matched; `None` when no rule did (then `Immutable`).
    pub format: Option<Format>,
    /// What the file is.
    pub kind: Kind,
}

impl Class {
    /// Whether the file changes in place (a mutable member, a standalone mutable
    /// file, or an anchor).
    pub fn is_mutable(&self) -> bool {
        !matches!(self.kind, Kind::Immutable)
    }

    /// The anchors governing a mutable member (empty for anything else).
    #[cfg(test)]
    pub fn anchors(&self) -> &[String] {
        match &self.kind {
            Kind::Mutable { anchors } => anchors,
            _ => &[],
        }
    }

    /// The repository generation the file belongs to: an anchor's `repo_root`, or
    /// the root of a member's anchors. `None` for immutable and standalone files.
    pub fn repo_root(&self) -> Option<&str> {
        match &self.kind {
            Kind::Anchor { repo_root } => Some(repo_root),
            Kind::Mutable { anchors } => anchors.first().map(|a| parent(a)),
            Kind::Immutable => None,
        }
    }
}

/// What a rule says about the paths it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Never changes.
    Immutable,
    /// Changes in place, alone.
    Mutable,
    /// Defines its repository's generation.
    Anchor,
    /// Changes with its repository: the anchors, as patterns relative to where the
    /// rule's pattern started matching; `{}` stands for the rule's capture.
    Member(&'static [&'static str]),
}

/// One line of the table.
///
/// `pattern` matches the **end** of the path, segment by segment (`/`-separated):
/// `**` is any number of segments; inside a segment `*` is any run of characters,
/// `<hex>` a run of at least 32 hexadecimal digits (a content hash), and `{…}`
/// captures the part matched by the pattern inside the braces, for `Member` anchors.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The format the rule describes.
    pub format: Format,
    /// Which paths (see above).
    pub pattern: &'static str,
    /// What they are.
    pub role: Role,
}

const fn rule(format: Format, pattern: &'static str, role: Role) -> Rule {
    Rule {
        format,
        pattern,
        role,
    }
}

use Format::{Alpine, Arch, Debian, FreeBsd, Gentoo, Rpm};
use Role::{Anchor, Immutable, Member, Mutable};

const SUITE: &[&str] = &["dists/{}/InRelease", "dists/{}/Release"];
const SUITE_UPDATES: &[&str] = &["dists/{}/updates/InRelease", "dists/{}/updates/Release"];
const FLAT: &[&str] = &["InRelease", "Release"];
const PACMAN: &[&str] = &["{}.db", "{}.files"];
const REPOMD: &[&str] = &["repodata/repomd.xml"];

/// The rules, tried in order; the first that matches decides.
pub const RULES: &[Rule] = &[
    // Gentoo, GLEP 75: a mirror's layout.conf changes; a distfile never does (its
    // Manifest pins size and hashes), whatever its name looks like.
    rule(Gentoo, "layout.conf", Mutable),
    rule(Gentoo, "distfiles/**", Immutable),
    // Debian wiki RepositoryFormat: by-hash/ files are named by their content, and
    // pool/ files by package, version and architecture.
    rule(Debian, "by-hash/*/*", Immutable),
    rule(Debian, "pool/**", Immutable),
    // Debian wiki RepositoryFormat: dists/SUITE/InRelease (or Release and
    // Release.gpg) lists size and hashes of every index below dists/SUITE/: Packages*,
    // Sources*, Contents-*, Translation-*, i18n/Index, dep11's Components-* and
    // icons-*, installer images. "stable/updates" is a suite with a slash (Debian's
    // security archive before bullseye).
    rule(Debian, "dists/{*}/updates/InRelease", Anchor),
    rule(Debian, "dists/{*}/updates/Release", Anchor),
    rule(Debian, "dists/{*}/updates/**", Member(SUITE_UPDATES)),
    rule(Debian, "dists/{*}/InRelease", Anchor),
    rule(Debian, "dists/{*}/Release", Anchor),
    rule(Debian, "dists/{*}/**", Member(SUITE)),
    // Debian wiki RepositoryFormat, "Flat Repository Format": the same files in one
    // directory, without dists/.
    rule(Debian, "InRelease", Anchor),
    rule(Debian, "Release", Anchor),
    rule(Debian, "Release.gpg", Member(FLAT)),
    rule(Debian, "Sources", Member(FLAT)),
    rule(Debian, "Sources.*", Member(FLAT)),
    // createrepo_c: repodata/repomd.xml lists the other repodata files, named
    // <checksum>-<type>.<ext> (unless --simple-md-filenames); repomd.xml.asc signs it,
    // repomd.xml.key is the signing key.
    rule(Rpm, "repodata/repomd.xml", Anchor),
    rule(Rpm, "repodata/repomd.xml.*", Member(REPOMD)),
    rule(Rpm, "repodata/<hex>-*", Immutable),
    rule(Rpm, "repodata/*", Member(REPOMD)),
    // pacman's repo-add(8): REPO.db.tar.* and REPO.files.tar.* (REPO.db and REPO.files
    // link to them), each with a .sig; packages NAME-VER-REL-ARCH.pkg.tar.* (+ .sig).
    rule(Arch, "*.pkg.tar.*", Immutable),
    rule(Arch, "{*}.db", Anchor),
    rule(Arch, "{*}.files", Anchor),
    rule(Arch, "{*}.db.sig", Member(PACMAN)),
    rule(Arch, "{*}.files.sig", Member(PACMAN)),
    rule(Arch, "{*}.db.tar.*", Member(PACMAN)),
    rule(Arch, "{*}.files.tar.*", Member(PACMAN)),
    // apk: each repository directory's APKINDEX.tar.gz, its signature inside.
    rule(Alpine, "APKINDEX.tar.gz", Anchor),
    // pkg-repository(5): catalogue files at the repository root, each archive signed
    // on its own (meta.conf, legacy meta.txz; packagesite, data, digests, filesite in
    // the packing format meta.conf names).
    rule(FreeBsd, "meta.*", Mutable),
    rule(FreeBsd, "packagesite.*", Mutable),
    rule(FreeBsd, "data.*", Mutable),
    rule(FreeBsd, "digests.*", Mutable),
    rule(FreeBsd, "filesite.*", Mutable),
    // Gentoo binhost (portage's binarytree): Packages, and Packages.gz of the same
    // generation. A flat Debian repository's Packages* sit beside its InRelease.
    rule(Gentoo, "Packages", Anchor),
    rule(
        Gentoo,
        "Packages.*",
        Member(&["Packages", "InRelease", "Release"]),
    ),
    // Gentoo snapshots (emerge-webrsync): NAME-latest.tar.* changes daily with its
    // .gpgsig and .md5sum; NAME-YYYYMMDD.* never changes. Release pointers
    // releases/*/autobuilds/latest-*.txt change on their own.
    rule(Gentoo, "{*-latest.tar.*}.gpgsig", Member(&["{}"])),
    rule(Gentoo, "{*-latest.tar.*}.md5sum", Member(&["{}"])),
    rule(Gentoo, "*-latest.*", Anchor),
    rule(Gentoo, "latest-*.txt", Mutable),
];

/// What the file at request path `path` (`/debian/dists/bookworm/InRelease`; a
/// leading `/` is optional and kept in the answers) is.
pub fn classify(path: &str) -> Class {
    let segments = split(path);
    for rule in RULES {
        if let Some((start, capture)) = find(rule.pattern, &segments) {
            let root = &path[..segments.get(start).map_or(path.len(), |s| s.0)];
            let kind = match rule.role {
                Role::Immutable => Kind::Immutable,
                Role::Mutable => Kind::Mutable {
                    anchors: Vec::new(),
                },
                Role::Anchor => Kind::Anchor {
                    repo_root: parent(path).to_owned(),
                },
                Role::Member(anchors) => Kind::Mutable {
                    anchors: anchors
                        .iter()
                        .map(|a| format!("{root}{}", a.replace("{}", capture.unwrap_or(""))))
                        .collect(),
                },
            };
            return Class {
                format: Some(rule.format),
                kind,
            };
        }
    }
    Class {
        format: None,
        kind: Kind::Immutable,
    }
}

/// Whether the file at `path` changes in place.
#[cfg(test)]
pub fn is_mutable(path: &str) -> bool {
    classify(path).is_mutable()
}

/// `path` up to and including its last `/` (empty when it has none).
fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..=i])
}

/// The non-empty segments of `path` with their byte offsets.
fn split(path: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    for seg in path.split('/') {
        if !seg.is_empty() {
            out.push((at, seg));
        }
        at += seg.len() + 1;
    }
    out
}

/// The most segments a rule's pattern has.
const MAX_PATTERN_SEGMENTS: usize = 8;

/// The first (leftmost) start from which `pattern` matches the rest of `segments`,
/// with the capture.
fn find<'p>(pattern: &str, segments: &[(usize, &'p str)]) -> Option<(usize, Option<&'p str>)> {
    // On the stack: this runs for every rule on every request, most of them hits.
    let mut buf = [""; MAX_PATTERN_SEGMENTS];
    let mut n = 0;
    for seg in pattern.split('/') {
        buf[n] = seg;
        n += 1;
    }
    let pat = &buf[..n];
    // Without `**` a pattern matches exactly its number of segments, at the end: one
    // start to try.
    let starts = if pat.contains(&"**") {
        0..=segments.len()
    } else {
        match segments.len().checked_sub(pat.len()) {
            Some(start) => start..=start,
            None => return None,
        }
    };
    starts.into_iter().find_map(|start| {
        let mut capture = None;
        matches_segments(pat, &segments[start..], &mut capture).then_some((start, capture))
    })
}

fn matches_segments<'p>(
    pat: &[&str],
    segs: &[(usize, &'p str)],
    cap: &mut Option<&'p str>,
) -> bool {
    match pat {
        [] => segs.is_empty(),
        ["**", rest @ ..] => (0..=segs.len()).any(|i| matches_segments(rest, &segs[i..], cap)),
        [p, rest @ ..] => match segs {
            [(_, s), tail @ ..] => {
                let before = *cap;
                if segment(p, s, cap) && matches_segments(rest, tail, cap) {
                    return true;
                }
                *cap = before;
                false
            }
            [] => false,
        },
    }
}

/// Whether segment `s` matches segment pattern `p`, recording a `{…}` capture.
fn segment<'p>(p: &str, s: &'p str, cap: &mut Option<&'p str>) -> bool {
    let Some((pre, inner_post)) = p.split_once('{') else {
        return glob(p.as_bytes(), s.as_bytes());
    };
    let Some((inner, post)) = inner_post.split_once('}') else {
        return glob(p.as_bytes(), s.as_bytes());
    };
    // Literal ends rule most segments out before the search for the capture.
    let literal = |q: &str| !q.contains('*') && !q.contains("<hex>");
    if (literal(pre) && !s.starts_with(pre)) || (literal(post) && !s.ends_with(post)) {
        return false;
    }
    for i in 0..=s.len() {
        if !s.is_char_boundary(i) || !glob(pre.as_bytes(), &s.as_bytes()[..i]) {
            continue;
        }
        for j in (i + 1..=s.len()).rev() {
            if s.is_char_boundary(j)
                && glob(post.as_bytes(), &s.as_bytes()[j..])
                && glob(inner.as_bytes(), &s.as_bytes()[i..j])
            {
                *cap = Some(&s[i..j]);
                return true;
            }
        }
    }
    false
}

/// `*` (any run), `<hex>` (32 or more hexadecimal digits) and literal bytes.
fn glob(p: &[u8], s: &[u8]) -> bool {
    const HEX: &[u8] = b"<hex>";
    if let Some(rest) = p.strip_prefix(HEX) {
        let run = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        return (32..=run).any(|n| glob(rest, &s[n..]));
    }
    match p {
        [] => s.is_empty(),
        [b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [c, rest @ ..] => matches!(s, [d, tail @ ..] if c == d && glob(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(path: &str) -> String {
        match classify(path).kind {
            Kind::Anchor { repo_root } => repo_root,
            other => panic!("{path}: {other:?}, want an anchor"),
        }
    }

    fn member(path: &str) -> Vec<String> {
        match classify(path).kind {
            Kind::Mutable { anchors } if !anchors.is_empty() => anchors,
            other => panic!("{path}: {other:?}, want a member of a repository"),
        }
    }

    fn alone(path: &str) {
        assert_eq!(
            classify(path).kind,
            Kind::Mutable {
                anchors: Vec::new()
            },
            "{path}"
        );
    }

    fn immutable(path: &str) {
        assert_eq!(classify(path).kind, Kind::Immutable, "{path}");
    }

    fn format(path: &str) -> Option<Format> {
        classify(path).format
    }

    #[test]
    fn debian_suites() {
        let suite = "/debian/dists/bookworm/";
        assert_eq!(anchor("/debian/dists/bookworm/InRelease"), suite);
        assert_eq!(anchor("/debian/dists/bookworm/Release"), suite);
        let anchors = vec![format!("{suite}InRelease"), format!("{suite}Release")];
        for m in [
            "Release.gpg",
            "main/binary-amd64/Packages",
            "main/binary-amd64/Packages.xz",
            "main/binary-amd64/Release",
            "main/source/Sources.gz",
            "main/Contents-amd64.gz",
            "Contents-amd64.gz",
            "main/i18n/Translation-en.bz2",
            "main/i18n/Index",
            "main/dep11/Components-amd64.yml.gz",
            "main/dep11/icons-64x64.tar.gz",
            "main/binary-amd64/Packages.diff/Index",
            "main/installer-amd64/current/images/SHA256SUMS",
        ] {
            assert_eq!(member(&format!("{suite}{m}")), anchors, "{m}");
            assert_eq!(format(&format!("{suite}{m}")), Some(Format::Debian));
        }
        let c = classify("/debian/dists/bookworm/main/binary-amd64/Packages.xz");
        assert!(c.is_mutable());
        assert_eq!(c.repo_root(), Some(suite));
        // Ubuntu, and a suite with a slash.
        assert_eq!(
            member("/ubuntu/dists/jammy-updates/universe/binary-arm64/Packages.gz"),
            [
                "/ubuntu/dists/jammy-updates/InRelease",
                "/ubuntu/dists/jammy-updates/Release"
            ]
        );
        assert_eq!(
            anchor("/debian-security/dists/stretch/updates/InRelease"),
            "/debian-security/dists/stretch/updates/"
        );
        assert_eq!(
            member("/debian-security/dists/stretch/updates/main/binary-amd64/Packages.xz"),
            [
                "/debian-security/dists/stretch/updates/InRelease",
                "/debian-security/dists/stretch/updates/Release"
            ]
        );
    }

    #[test]
    fn debian_immutable_files_and_near_misses() {
        immutable("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcd");
        immutable("/debian/dists/bookworm/main/i18n/by-hash/MD5Sum/0123abcd");
        immutable("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb");
        immutable("/debian/pool/main/p/python-release/python-release_1.0-1_all.deb");
        immutable("/debian/pool/main/p/python-release/Release");
        immutable("/debian/pool/main/p/packages/Packages.gz");
        immutable("/debian/pool/main/d/dists/dists_1.0.orig.tar.gz");
        assert_eq!(
            format("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"),
            Some(Format::Debian)
        );
    }

    #[test]
    fn debian_flat_repositories() {
        let dir = "/repositories/home:/x/Debian_12/";
        assert_eq!(anchor(&format!("{dir}InRelease")), dir);
        assert_eq!(anchor(&format!("{dir}Release")), dir);
        let anchors = vec![format!("{dir}InRelease"), format!("{dir}Release")];
        assert_eq!(member(&format!("{dir}Release.gpg")), anchors);
        assert_eq!(member(&format!("{dir}Sources.xz")), anchors);
        // Packages* beside them: a generation with InRelease or (binhost) Packages.
        let packages = member(&format!("{dir}Packages.xz"));
        assert!(anchors.iter().all(|a| packages.contains(a)), "{packages:?}");
        assert_eq!(
            classify(&format!("{dir}Packages.xz")).repo_root(),
            Some(dir)
        );
    }

    #[test]
    fn arch() {
        let dir = "/archlinux/core/os/x86_64/";
        assert_eq!(anchor(&format!("{dir}core.db")), dir);
        assert_eq!(anchor(&format!("{dir}core.files")), dir);
        let anchors = vec![format!("{dir}core.db"), format!("{dir}core.files")];
        for m in [
            "core.db.sig",
            "core.files.sig",
            "core.db.tar.gz",
            "core.db.tar.gz.sig",
            "core.files.tar.zst",
        ] {
            assert_eq!(member(&format!("{dir}{m}")), anchors, "{m}");
        }
        assert_eq!(
            member("/archlinux/extra-testing/os/x86_64/extra-testing.db.sig"),
            [
                "/archlinux/extra-testing/os/x86_64/extra-testing.db",
                "/archlinux/extra-testing/os/x86_64/extra-testing.files"
            ]
        );
        for i in [
            "linux-6.6.7.arch1-1-x86_64.pkg.tar.zst",
            "linux-6.6.7.arch1-1-x86_64.pkg.tar.zst.sig",
            "dbus-1.14.10-2-x86_64.pkg.tar.zst",
            "python-db-1.0-1-any.pkg.tar.xz",
        ] {
            immutable(&format!("{dir}{i}"));
            assert_eq!(format(&format!("{dir}{i}")), Some(Format::Arch), "{i}");
        }
    }

    #[test]
    fn rpm() {
        let repo = "/fedora/releases/39/Everything/x86_64/os/";
        let repodata = format!("{repo}repodata/");
        assert_eq!(anchor(&format!("{repodata}repomd.xml")), repodata);
        let anchors = vec![format!("{repodata}repomd.xml")];
        assert_eq!(member(&format!("{repodata}repomd.xml.asc")), anchors);
        assert_eq!(member(&format!("{repodata}repomd.xml.key")), anchors);
        // --simple-md-filenames: not named by content.
        assert_eq!(member(&format!("{repodata}primary.xml.gz")), anchors);
        let hash = "e7e1a1c58f83473803d03970690f264ce8cd3c9ab2b505804884af58534b91af";
        immutable(&format!("{repodata}{hash}-primary.xml.gz"));
        immutable(&format!("{repodata}{hash}-comps-Everything.x86_64.xml.zst"));
        immutable(&format!("{repo}Packages/h/hello-2.12.1-2.fc39.x86_64.rpm"));
        // Too short to be a hash: not content-named.
        assert_eq!(
            member(&format!("{repodata}0123abcd-primary.xml.gz")),
            anchors
        );
        assert_eq!(
            format(&format!("{repodata}{hash}-primary.xml.gz")),
            Some(Format::Rpm)
        );
    }

    #[test]
    fn alpine_and_freebsd() {
        assert_eq!(
            anchor("/alpine/v3.19/main/x86_64/APKINDEX.tar.gz"),
            "/alpine/v3.19/main/x86_64/"
        );
        immutable("/alpine/v3.19/main/x86_64/busybox-1.36.1-r15.apk");
        let root = "/FreeBSD:14:amd64/latest/";
        for f in [
            "meta.conf",
            "meta.txz",
            "packagesite.pkg",
            "packagesite.txz",
            "data.pkg",
            "data.tzst",
            "digests.pkg",
            "filesite.pkg",
        ] {
            alone(&format!("{root}{f}"));
            assert_eq!(format(&format!("{root}{f}")), Some(Format::FreeBsd), "{f}");
        }
        immutable(&format!("{root}All/curl-8.5.0.pkg"));
        immutable(&format!("{root}All/data-1.0.pkg"));
    }

    #[test]
    fn gentoo_keeps_todays_rules() {
        alone("/distfiles/layout.conf");
        alone("/releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt");
        let binhost = "/releases/amd64/binpackages/23.0/x86-64/";
        assert_eq!(anchor(&format!("{binhost}Packages")), binhost);
        assert_eq!(
            member(&format!("{binhost}Packages.gz"))[0],
            format!("{binhost}Packages")
        );
        assert_eq!(anchor("/snapshots/gentoo-latest.tar.xz"), "/snapshots/");
        assert_eq!(
            member("/snapshots/gentoo-latest.tar.xz.gpgsig"),
            ["/snapshots/gentoo-latest.tar.xz"]
        );
        assert_eq!(
            member("/snapshots/portage-latest.tar.bz2.md5sum"),
            ["/snapshots/portage-latest.tar.bz2"]
        );
        for i in [
            "/distfiles/0a/MooseX-OneArgNew-0.007.tar.gz",
            "/distfiles/Packages-manager-1.0.tar.gz",
            "/distfiles/Packages.gz",
            "/distfiles/8f/foo.db",
            "/distfiles/data.tar.gz",
            "/distfiles/Release",
            "/snapshots/gentoo-20240101.tar.xz",
            "/snapshots/gentoo-20240101.tar.xz.gpgsig",
            "/snapshots/gentoo-20240101.tar.xz.md5sum",
            "/binpkgs/dev-lang/rust/rust-1.80.0-1.gpkg.tar",
            "/Packages-manager-1.0.tar.gz",
        ] {
            immutable(i);
        }
        assert_eq!(
            format("/distfiles/Packages-manager-1.0.tar.gz"),
            Some(Format::Gentoo)
        );
        assert_eq!(format("/Packages-manager-1.0.tar.gz"), None);
    }

    #[test]
    fn the_builtin_mutable_globs_of_the_cache_policy_still_hold() {
        // Every path today's policy revalidates is still mutable here.
        for m in [
            "/distfiles/layout.conf",
            "/binpkgs/amd64/Packages",
            "/binpkgs/Packages.gz",
            "/snapshots/gentoo-latest.tar.xz",
            "/snapshots/gentoo-latest.tar.xz.md5sum",
            "/releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt",
        ] {
            assert!(is_mutable(m), "{m}");
        }
    }

    #[test]
    fn members_share_one_root_with_their_anchors() {
        for path in [
            "/debian/dists/bookworm/main/binary-amd64/Packages.xz",
            "/debian-security/dists/stretch/updates/main/binary-amd64/Packages.xz",
            "/repo/Packages.gz",
            "/archlinux/core/os/x86_64/core.db.sig",
            "/fedora/os/repodata/repomd.xml.asc",
            "/snapshots/gentoo-latest.tar.xz.gpgsig",
        ] {
            let class = classify(path);
            let root = class.repo_root().expect("a root").to_owned();
            for a in class.anchors() {
                assert_eq!(
                    classify(a).kind,
                    Kind::Anchor {
                        repo_root: root.clone()
                    },
                    "{path}: anchor {a}"
                );
            }
        }
    }

    #[test]
    fn paths_without_a_leading_slash_and_unknown_files() {
        assert_eq!(anchor("debian/dists/sid/InRelease"), "debian/dists/sid/");
        assert_eq!(
            member("debian/dists/sid/main/binary-all/Packages.xz"),
            ["debian/dists/sid/InRelease", "debian/dists/sid/Release"]
        );
        assert_eq!(anchor("core.db"), "");
        immutable("/");
        immutable("");
        immutable("/some/file.tar.gz");
        assert!(!classify("/some/file.tar.gz").is_mutable());
        assert_eq!(classify("/some/file.tar.gz").repo_root(), None);
    }

    #[test]
    fn patterns() {
        for r in RULES {
            assert!(
                r.pattern.split('/').count() <= MAX_PATTERN_SEGMENTS,
                "{}",
                r.pattern
            );
        }
        let g = |p: &str, s: &str| glob(p.as_bytes(), s.as_bytes());
        assert!(g("*.pkg.tar.*", "a-1-1-any.pkg.tar.zst"));
        assert!(!g("*.pkg.tar.*", "a.pkg.tar"));
        assert!(g("<hex>-*", &format!("{}-primary.xml.gz", "a".repeat(64))));
        assert!(!g("<hex>-*", &format!("{}-primary.xml.gz", "a".repeat(31))));
        assert!(!g("<hex>-*", &format!("{}-primary.xml.gz", "g".repeat(64))));
        let mut cap = None;
        assert!(segment(
            "{*-latest.tar.*}.gpgsig",
            "gentoo-latest.tar.xz.gpgsig",
            &mut cap
        ));
        assert_eq!(cap, Some("gentoo-latest.tar.xz"));
        let mut cap = None;
        assert!(segment("{*}.db.tar.*", "core.db.tar.gz.sig", &mut cap));
        assert_eq!(cap, Some("core"));
    }
}

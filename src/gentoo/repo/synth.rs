//! Synthetic ebuild repositories shaped like Gentoo's, for tests and benchmarks.
//!
//! [`generate`] writes `metadata/md5-cache/CAT/PF` entries and thin `CAT/PN/Manifest`
//! files with exactly [`Spec::entries`] entries and [`Spec::dists`] `DIST` lines, plus
//! `profiles/{repo_name,categories,thirdpartymirrors}` and `metadata/layout.conf`.
//! `SRC_URI` shapes, by share of packages: GitHub tag archives renamed with `->`
//! (35%), `mirror://` URIs (20%), plain upstream URLs (45%); extra files of a version
//! sit under `doc? ( … )` or `!minimal? ( … )` or are dev-hosted patch tarballs;
//! `RESTRICT` has `mirror` in 3% of entries, `fetch` (with a bare file name) in 1%,
//! and the usual `!test? ( test )` in a fifth. Digests are random bytes (the index
//! does not check them), sizes random. Deterministic for a given seed.
//!
//! [`bump`] imitates a sync: it adds a version to some packages the way rsync does it
//! (a hidden temporary file renamed over the target), a new md5-cache entry and a
//! rewritten Manifest each, then rewrites `metadata/timestamp.chk`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use super::digest::to_hex;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// md5-cache entries (ebuilds).
    pub entries: usize,
    /// `DIST` lines over all Manifests (at least `entries`: one tarball per version).
    pub dists: usize,
    /// Categories.
    pub categories: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl Spec {
    /// The size of the Gentoo repository: 32,000 entries, 70,000 DIST lines.
    pub fn gentoo_sized() -> Spec {
        Spec {
            entries: 32_000,
            dists: 70_000,
            categories: 170,
            seed: 15,
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// (category, package name) of every package, in generation order.
    pub packages: Vec<(String, String)>,
    /// md5-cache entries written.
    pub entries: usize,
    /// DIST lines written.
    pub dists: usize,
    /// A distfile renamed by an arrow.
    pub arrow: String,
    /// A distfile fetched through `mirror://`.
    pub mirrored: String,
    /// A fetch-restricted distfile.
    pub fetch_restricted: String,
    /// Every distfile name, in generation order.
    pub names: Vec<String>,
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn hex(&mut self, bytes: usize) -> String {
        let v: Vec<u8> = (0..bytes).map(|_| self.next() as u8).collect();
        to_hex(&v)
    }
}

const MIRRORS: &str = "\
# Synthetic thirdpartymirrors
gnu https://ftpmirror.gnu.org/gnu https://mirrors.kernel.org/gnu https://ftp.gnu.org/gnu
sourceforge https://downloads.sourceforge.net
pypi https://files.pythonhosted.org/packages/source
cpan https://cpan.metacpan.org https://www.cpan.org
kde https://download.kde.org https://mirrors.mit.edu/kde
";

/// Writes `path` through a hidden temporary file renamed over it, as rsync does.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.synth-tmp"));
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path)
}

/// Generates a repository at `root` (created if missing).
pub fn generate(root: &Path, spec: &Spec) -> io::Result<Summary> {
    let mut rng = Rng(spec.seed);
    let cats: Vec<String> = (0..spec.categories.max(1))
        .map(|i| format!("{}-cat{i:03}", ["app", "dev", "net", "sys", "x11"][i % 5]))
        .collect();
    fs::create_dir_all(root.join("profiles"))?;
    fs::create_dir_all(root.join("metadata/md5-cache"))?;
    fs::write(root.join("profiles/repo_name"), "gentoo\n")?;
    fs::write(root.join("profiles/categories"), cats.join("\n") + "\n")?;
    fs::write(root.join("profiles/thirdpartymirrors"), MIRRORS)?;
    fs::write(
        root.join("metadata/layout.conf"),
        "repo-name = gentoo\nmasters =\nthin-manifests = true\n",
    )?;
    let extras_total = spec.dists.saturating_sub(spec.entries);
    let mut summary = Summary::default();
    let mut version_index = 0usize;
    let mut p = 0usize;
    while summary.entries < spec.entries {
        let cat = &cats[p % cats.len()];
        let pn = format!("pkg{p}");
        let versions =
            [1, 1, 2, 2, 2, 3][rng.below(6) as usize].min(spec.entries - summary.entries);
        let shape = rng.below(100);
        let mut manifest = String::new();
        for v in 0..versions {
            let ver = format!("{}.{}", 1 + rng.below(9), v);
            let extras = (version_index + 1) * extras_total / spec.entries.max(1)
                - version_index * extras_total / spec.entries.max(1);
            version_index += 1;
            let restrict_roll = rng.below(100);
            let entry = entry_text(
                &mut rng,
                cat,
                &pn,
                &ver,
                shape,
                restrict_roll,
                extras,
                &mut summary,
            );
            fs::create_dir_all(root.join("metadata/md5-cache").join(cat))?;
            fs::write(
                root.join("metadata/md5-cache")
                    .join(cat)
                    .join(format!("{pn}-{ver}")),
                entry.text,
            )?;
            for name in entry.names {
                let _ = writeln!(
                    manifest,
                    "DIST {name} {} BLAKE2B {} SHA512 {}",
                    1024 + rng.below(50 << 20),
                    rng.hex(64),
                    rng.hex(64)
                );
                summary.dists += 1;
                summary.names.push(name);
            }
            summary.entries += 1;
        }
        let dir = root.join(cat).join(&pn);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("Manifest"), manifest)?;
        summary.packages.push((cat.clone(), pn));
        p += 1;
    }
    Ok(summary)
}

struct EntryText {
    text: String,
    names: Vec<String>,
}

/// Appends the main distfile's SRC_URI item to `src` (a plain name when fetch
/// restricted, an arrow, a `mirror://` or a plain URL by `shape`); returns its name.
fn main_uri(
    src: &mut String,
    pn: &str,
    ver: &str,
    shape: u64,
    fetch: bool,
    summary: &mut Summary,
) -> String {
    if fetch {
        let name = format!("{pn}-{ver}.zip");
        src.push_str(&name);
        summary.fetch_restricted.clone_from(&name);
        name
    } else if shape < 35 {
        let name = format!("{pn}-{ver}.tar.gz");
        let _ = write!(
            src,
            "https://github.com/owner{}/{pn}/archive/refs/tags/v{ver}.tar.gz -> {name}",
            shape
        );
        summary.arrow.clone_from(&name);
        name
    } else if shape < 55 {
        let mirror = ["gnu", "sourceforge", "pypi", "cpan", "kde"][(shape % 5) as usize];
        let name = format!("{pn}-{ver}.tar.xz");
        let _ = write!(src, "mirror://{mirror}/{pn}/{name}");
        summary.mirrored.clone_from(&name);
        name
    } else {
        let name = format!("{pn}-{ver}.tar.gz");
        let _ = write!(src, "https://{pn}.example.org/releases/{name}");
        name
    }
}

/// Appends the `k`th extra SRC_URI item (under a USE conditional or plain) to `src`;
/// returns its name.
fn extra_uri(src: &mut String, rng: &mut Rng, cat: &str, pn: &str, ver: &str, k: usize) -> String {
    match (k + rng.below(3) as usize) % 3 {
        0 => {
            let name = format!("{pn}-{ver}-docs-{k}.tar.xz");
            let _ = write!(src, " doc? ( https://{pn}.example.org/docs/{name} )");
            name
        }
        1 => {
            let name = format!("{pn}-{ver}-patches-{k}.tar.xz");
            let _ = write!(
                src,
                " https://dev.gentoo.org/~dev/distfiles/{cat}/{pn}/{name}"
            );
            name
        }
        _ => {
            let name = format!("{pn}-data-{ver}-{k}.zip");
            let _ = write!(src, " !minimal? ( mirror://sourceforge/{pn}/{name} )");
            name
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn entry_text(
    rng: &mut Rng,
    cat: &str,
    pn: &str,
    ver: &str,
    shape: u64,
    restrict_roll: u64,
    extras: usize,
    summary: &mut Summary,
) -> EntryText {
    let fetch = restrict_roll == 0;
    let mirror = (1..4).contains(&restrict_roll);
    let mut src = String::new();
    let mut names = vec![main_uri(&mut src, pn, ver, shape, fetch, summary)];
    for k in 0..extras {
        names.push(extra_uri(&mut src, rng, cat, pn, ver, k));
    }
    let mut restrict = String::new();
    if fetch {
        restrict.push_str("fetch ");
    }
    if mirror {
        restrict.push_str("mirror ");
    }
    if rng.below(5) == 0 {
        restrict.push_str("!test? ( test )");
    }
    let mut text = String::with_capacity(900);
    let _ = write!(
        text,
        "DEFINED_PHASES=compile configure install prepare test\n\
         DEPEND=>=dev-libs/libfoo-1.2:= sys-libs/zlib virtual/pkgconfig doc? ( app-text/doxygen )\n\
         DESCRIPTION=Synthetic package {pn} for the repository index benchmark\n\
         EAPI=8\n\
         HOMEPAGE=https://{pn}.example.org/\n\
         INHERIT=autotools toolchain-funcs\n\
         IUSE=doc minimal test\n\
         KEYWORDS=~alpha amd64 arm arm64 ~hppa ~loong ~mips ppc ppc64 ~riscv ~s390 sparc x86\n\
         LICENSE=GPL-2+ LGPL-2.1\n\
         RDEPEND=>=dev-libs/libfoo-1.2:= sys-libs/zlib\n\
         RESTRICT={restrict}\n\
         SLOT=0\n\
         SRC_URI={src}\n\
         _eclasses_=autotools\t{}\tgnuconfig\t{}\tlibtool\t{}\ttoolchain-funcs\t{}\n\
         _md5_={}\n",
        rng.hex(16),
        rng.hex(16),
        rng.hex(16),
        rng.hex(16),
        rng.hex(16),
    );
    EntryText { text, names }
}

/// Adds a version to `count` packages of `summary`, as a sync would: a new md5-cache
/// entry and a Manifest with one more `DIST` line each, both written through a
/// temporary file renamed over the target. `round` makes versions unique across
/// calls. Returns the new distfile names.
pub fn bump(root: &Path, summary: &Summary, count: usize, round: u32) -> io::Result<Vec<String>> {
    let mut rng = Rng(u64::from(round) ^ 0x5eed);
    let mut names = Vec::with_capacity(count);
    let n = summary.packages.len().max(1);
    let stride = (n / count.max(1)).max(1);
    for i in 0..count.min(n) {
        let (cat, pn) = &summary.packages[(i * stride + round as usize) % n];
        let ver = format!("100.{round}");
        let name = format!("{pn}-{ver}.tar.gz");
        let manifest_path = root.join(cat).join(pn).join("Manifest");
        let mut manifest = fs::read_to_string(&manifest_path).unwrap_or_default();
        let _ = writeln!(
            manifest,
            "DIST {name} {} BLAKE2B {} SHA512 {}",
            4096 + rng.below(1 << 20),
            rng.hex(64),
            rng.hex(64)
        );
        write_atomic(&manifest_path, manifest.as_bytes())?;
        let entry = format!(
            "EAPI=8\nSLOT=0\nSRC_URI=https://{pn}.example.org/releases/{name}\n_md5_={}\n",
            rng.hex(16)
        );
        write_atomic(
            &root
                .join("metadata/md5-cache")
                .join(cat)
                .join(format!("{pn}-{ver}")),
            entry.as_bytes(),
        )?;
        names.push(name);
    }
    // rsync's marker of a finished sync.
    write_atomic(
        &root.join("metadata/timestamp.chk"),
        format!("synthetic sync round {round}\n").as_bytes(),
    )?;
    Ok(names)
}

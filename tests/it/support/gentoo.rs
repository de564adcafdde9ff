//! A small Gentoo ebuild repository on disk, written by the test: md5-cache entries
//! (`SRC_URI`, `RESTRICT`), Manifests with the real size and digests of the bytes
//! given, `profiles/thirdpartymirrors`. Changes are written as rsync writes them (a
//! temporary file renamed over the target), so a running index picks them up.

use std::path::Path;

use blake2::{Blake2b512, Digest};
use package_cache::gentoo::repo::digest::to_hex;
use package_cache::gentoo::repo::synth::write_atomic;
use sha2::Sha512;

use super::TempDir;

/// The categories every test repository has.
const CATEGORIES: &str = "app-arch\napp-misc\ndev-libs\n";

/// A repository in a temporary directory.
pub struct TestRepo {
    dir: TempDir,
}

impl TestRepo {
    /// An empty repository (no packages, no third-party mirrors).
    pub fn new() -> TestRepo {
        let repo = TestRepo {
            dir: TempDir::new("repo"),
        };
        repo.write("profiles/repo_name", "test\n");
        repo.write("profiles/categories", CATEGORIES);
        repo.write("profiles/thirdpartymirrors", "");
        repo.write("metadata/layout.conf", "masters =\nthin-manifests = true\n");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        write_atomic(&self.path().join(rel), text.as_bytes()).expect("write repository file");
    }

    /// `profiles/thirdpartymirrors`.
    pub fn mirrors(&self, text: &str) {
        self.write("profiles/thirdpartymirrors", text);
    }

    /// The md5-cache entry of `CAT/PF` with this `SRC_URI` and `RESTRICT`.
    pub fn ebuild(&self, cat_pf: &str, src_uri: &str, restrict: &str) {
        self.write(
            &format!("metadata/md5-cache/{cat_pf}"),
            &format!("EAPI=8\nRESTRICT={restrict}\nSLOT=0\nSRC_URI={src_uri}\n"),
        );
    }

    /// `CAT/PN/Manifest` listing each (name, bytes) with its real size and digests.
    pub fn manifest(&self, cat_pn: &str, dists: &[(&str, &[u8])]) {
        let text: String = dists.iter().map(|(n, d)| dist(n, d)).collect();
        self.write(&format!("{cat_pn}/Manifest"), &text);
    }

    /// rsync's marker of a finished sync.
    pub fn synced(&self) {
        self.write(
            "metadata/timestamp.chk",
            "Sat, 01 Jun 2024 00:00:00 +0000\n",
        );
    }
}

/// A Manifest `DIST` line for `data`.
pub fn dist(name: &str, data: &[u8]) -> String {
    format!(
        "DIST {name} {} BLAKE2B {} SHA512 {}\n",
        data.len(),
        to_hex(&Blake2b512::digest(data)),
        to_hex(&Sha512::digest(data))
    )
}

/// A binhost `Packages` block for `data` at `path` (SIZE, SHA1 and BLAKE2B, as
/// portage writes them when asked for BLAKE2B).
pub fn package_block(cpv: &str, path: &str, data: &[u8]) -> String {
    format!(
        "BUILD_ID: 1\nCPV: {cpv}\nPATH: {path}\nSHA1: {}\nBLAKE2B: {}\nSIZE: {}\n\n",
        to_hex(&sha1::Sha1::digest(data)),
        to_hex(&Blake2b512::digest(data)),
        data.len()
    )
}

//! What Gentoo knows about a requested file, told to the cache
//! ([`crate::cache::verify::Knowledge`]):
//!
//! - a **distfile** the repository index knows ([`RepoIndex`], `--repo`): the size
//!   and digests of its `Manifest` entry, checked on every copy (from a mirror, from
//!   its origin, from disk), and, when no mirror has it, its `SRC_URI` URLs in
//!   portage's order (`mirror://` expanded). No URL is offered for a fetch-restricted
//!   file, nor for one no `Manifest` lists (nothing could check it). A name the index
//!   does not know (or before its first reading finished) gets nothing: the sources
//!   are asked as without `--repo`.
//! - a **binary package** (`*.gpkg.tar`, `*.tbz2`, `*.xpak`) that the binhost's
//!   `Packages` index lists, when the cache holds that index (portage fetches it
//!   through the cache before any package): its `SIZE` and digests (`SHA1`, and
//!   `BLAKE2B`/`SHA512` when given). The index is looked for in the package's parent
//!   directories (`PATH` is relative to the directory of `Packages`), parsed once per
//!   version of the file.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use blake2::{Blake2b512, Digest};
use log::debug;

use super::repo::digest::Algo;
use super::repo::packages;
use super::repo::verify::DigestCheck;
use super::repo::{Expected, Lookup, RepoIndex};
use crate::cache::store::{Key, Store};
use crate::cache::verify::{Check, Expect, Fallback, Knowledge, Known};

/// How many directories above a binary package its `Packages` index is looked for.
const BINHOST_DEPTH: usize = 5;
/// The largest `Packages` index read (bytes).
const MAX_PACKAGES: u64 = 512 << 20;

/// The most `Packages` files kept parsed (all are forgotten when there are more).
const MAX_BINHOSTS: usize = 64;

/// The Gentoo knowledge: a repository index (if `--repo` was given) and the binhost
/// indexes in the cache.
pub struct GentooKnowledge {
    index: Option<Arc<RepoIndex>>,
    store: Store,
    /// The `Packages` files parsed, by path, each behind a lock of its own: a file is
    /// read and parsed once per version, and only requests that need that file wait
    /// for it.
    binhosts: Mutex<HashMap<PathBuf, Arc<Slot>>>,
    /// The digests checked (empty: every one an entry lists).
    digests: Vec<Algo>,
}

/// One `Packages` file's latest parse, if any.
type Slot = Mutex<Option<Arc<Binhost>>>;

/// One parsed `Packages` file: `PATH` → what the package must be.
struct Binhost {
    len: u64,
    modified: Option<SystemTime>,
    packages: HashMap<String, Expected>,
}

impl GentooKnowledge {
    /// Knowledge from `index` (distfiles) and the `Packages` files in `store` (binary
    /// packages).
    pub fn new(index: Option<Arc<RepoIndex>>, store: Store) -> GentooKnowledge {
        GentooKnowledge {
            index,
            store,
            binhosts: Mutex::new(HashMap::new()),
            digests: Vec::new(),
        }
    }

    /// The same, checking only the digests in `keep` (empty: all), as portage's
    /// `PORTAGE_CHECKSUM_FILTER` does: an entry keeps at least one of its digests.
    pub fn with_digests(mut self, keep: Vec<Algo>) -> GentooKnowledge {
        self.digests = keep;
        self
    }

    fn expect(&self, e: Expected, by: &'static str) -> Option<Expect> {
        expect(only(e, &self.digests), by)
    }

    /// What the repository says of distfile `name`. Its URLs are listed only when
    /// the cache plans a download ([`Fallback`]): a hit needs only the Manifest entry.
    pub fn distfile(&self, name: &str) -> Option<Known> {
        let index = self.index.as_ref()?;
        let Lookup::Found(d) = index.lookup_without_urls(name) else {
            return None;
        };
        if d.conflict {
            debug!("{name}: the Manifests disagree; checking against the first repository's");
        }
        let expect = d.expected().and_then(|e| self.expect(e, "Manifest"));
        let fallback = if d.restrict.fetch || expect.is_none() {
            Fallback::default()
        } else {
            let (index, name) = (index.clone(), name.to_owned());
            Fallback::new(move || index.urls(&name))
        };
        Some(Known { expect, fallback })
    }

    /// What the binhost index beside it says of the binary package stored at `key`
    /// (relative to the cache root).
    pub fn binary_package(&self, key: &str) -> Option<Known> {
        let mut dir = Path::new(key).parent();
        for _ in 0..BINHOST_DEPTH {
            let d = dir?;
            let rel = Path::new(key).strip_prefix(d).ok()?.to_str()?;
            let index = Key::new(&format!("/{}", d.join("Packages").to_str()?)).ok()?;
            if let Some(binhost) = self.binhost(&self.store.path(&index))
                && let Some(e) = binhost.packages.get(rel)
            {
                return Some(Known {
                    expect: self.expect(e.clone(), "Packages"),
                    fallback: Fallback::default(),
                });
            }
            dir = d.parent();
        }
        None
    }

    /// The parsed `Packages` file at `path`, if there is one (parsed again when it
    /// changed). The file is read and parsed holding only its own slot's lock, not
    /// the map's: a large index being parsed delays no request for another binhost's
    /// packages.
    fn binhost(&self, path: &Path) -> Option<Arc<Binhost>> {
        let meta = fs::metadata(path).ok().filter(fs::Metadata::is_file)?;
        let (len, modified) = (meta.len(), meta.modified().ok());
        let slot = {
            let mut binhosts = lock(&self.binhosts);
            match binhosts.get(path) {
                Some(slot) => slot.clone(),
                None => {
                    if binhosts.len() >= MAX_BINHOSTS {
                        binhosts.clear();
                    }
                    let slot = Arc::default();
                    binhosts.insert(path.to_path_buf(), Arc::clone(&slot));
                    slot
                }
            }
        };
        let mut parsed = lock(&slot);
        if let Some(b) = parsed.as_ref()
            && b.len == len
            && b.modified == modified
        {
            return Some(b.clone());
        }
        if len > MAX_PACKAGES {
            return None;
        }
        let text = fs::read_to_string(path).ok()?;
        let packages = packages::parse(&text)
            .packages
            .into_iter()
            .map(|p| (p.path.trim_start_matches('/').to_owned(), p.expected()))
            .collect();
        let b = Arc::new(Binhost {
            len,
            modified,
            packages,
        });
        *parsed = Some(b.clone());
        Some(b)
    }
}

impl Knowledge for GentooKnowledge {
    fn known(&self, key: &Key, distfile: Option<&str>) -> Option<Known> {
        if let Some(name) = distfile {
            return self.distfile(name);
        }
        let key = key.as_str();
        if [".gpkg.tar", ".tbz2", ".xpak"]
            .iter()
            .any(|s| key.ends_with(s))
        {
            return self.binary_package(key);
        }
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cache's expectation for an entry with a size (`by` names where it comes from):
/// the cache compares the size, the check each digest the entry lists (BLAKE2B,
/// SHA512, SHA1), in parallel for large files.
pub fn expect(expected: Expected, by: &'static str) -> Option<Expect> {
    let size = expected.size?;
    let id = fingerprint(&expected);
    Some(Expect {
        size,
        id,
        by,
        check: Arc::new(move || Box::new(DigestCheck::new(&expected.digests, false))),
    })
}

/// `e` with only the digests in `keep` (all when `keep` is empty), keeping at least
/// one (the first of BLAKE2B, SHA512, SHA1 it lists) as portage does.
fn only(e: Expected, keep: &[Algo]) -> Expected {
    if keep.is_empty() {
        return e;
    }
    let filtered = e.clone().filtered(keep);
    if !filtered.digests.is_empty() || e.digests.is_empty() {
        return filtered;
    }
    let first = [Algo::Blake2b, Algo::Sha512, Algo::Sha1]
        .into_iter()
        .find(|a| match a {
            Algo::Blake2b => e.digests.blake2b.is_some(),
            Algo::Sha512 => e.digests.sha512.is_some(),
            Algo::Sha1 => e.digests.sha1.is_some(),
        });
    e.filtered(&first.into_iter().collect::<Vec<_>>())
}

/// A 64-bit fingerprint of the size and digests.
fn fingerprint(e: &Expected) -> u64 {
    let mut h = Blake2b512::new();
    h.update(e.size.unwrap_or(u64::MAX).to_le_bytes());
    for d in [
        e.digests.blake2b.as_ref().map(|d| &d[..]),
        e.digests.sha512.as_ref().map(|d| &d[..]),
        e.digests.sha1.as_ref().map(|d| &d[..]),
    ] {
        h.update([u8::from(d.is_some())]);
        h.update(d.unwrap_or_default());
    }
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_le_bytes(first)
}

/// The digests of an entry, the cache's check (it compares the size itself).
impl Check for DigestCheck {
    fn update(&mut self, bytes: &[u8]) {
        DigestCheck::update(self, bytes);
    }

    fn finish(self: Box<Self>) -> Result<(), String> {
        DigestCheck::finish(*self)
            .map(drop)
            .map_err(|m| m.to_string())
    }

    fn split(self: Box<Self>) -> Vec<Box<dyn Check>> {
        DigestCheck::split(*self)
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn Check>)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gentoo::repo::Digests;
    use sha1::Sha1;
    use sha2::Sha512;

    #[test]
    fn expectations_have_a_size_and_a_stable_fingerprint() {
        let digests = Digests {
            blake2b: Some([1; 64]),
            ..Digests::default()
        };
        let e = Expected {
            size: Some(3),
            digests,
        };
        let a = expect(e.clone(), "Manifest").unwrap();
        let b = expect(e.clone(), "Manifest").unwrap();
        assert_eq!((a.size, a.id), (3, b.id));
        let mut other = e.clone();
        other.digests.sha512 = Some([0; 64]);
        assert_ne!(expect(other, "Manifest").unwrap().id, a.id);
        let unsized_ = Expected {
            size: None,
            ..e.clone()
        };
        assert!(expect(unsized_, "Packages").is_none());
        let mut wrong = (a.check)();
        wrong.update(b"abc");
        let err = wrong.finish().unwrap_err();
        assert!(err.starts_with("BLAKE2B "), "{err}");
    }

    #[test]
    fn a_digest_filter_keeps_at_least_one_digest() {
        let e = Expected {
            size: Some(1),
            digests: Digests {
                blake2b: Some([1; 64]),
                sha512: Some([2; 64]),
                sha1: None,
            },
        };
        let b2 = only(e.clone(), &[Algo::Blake2b]);
        assert!(b2.digests.blake2b.is_some() && b2.digests.sha512.is_none());
        assert_eq!(only(e.clone(), &[]), e);
        let sha1_only = only(e.clone(), &[Algo::Sha1]);
        assert!(sha1_only.digests.blake2b.is_some() && sha1_only.digests.sha512.is_none());
        assert_ne!(
            expect(b2, "Manifest").unwrap().id,
            expect(e, "Manifest").unwrap().id
        );
    }

    #[test]
    fn entry_checks_split_into_one_part_per_digest() {
        let data = b"the file";
        let digests = Digests {
            blake2b: Some(Blake2b512::digest(data).into()),
            sha512: Some(Sha512::digest(data).into()),
            sha1: Some(Sha1::digest(data).into()),
        };
        let e = Expected {
            size: Some(data.len() as u64),
            digests,
        };
        let whole: Box<dyn Check> = Box::new(DigestCheck::new(&e.digests, false));
        let parts = whole.split();
        assert_eq!(parts.len(), 3);
        for mut p in parts {
            p.update(data);
            assert_eq!(p.finish(), Ok(()));
        }
        let mut wrong = e.clone();
        wrong.digests.sha1 = Some([0; 20]);
        let mut c: Box<dyn Check> = Box::new(DigestCheck::new(&wrong.digests, false));
        c.update(data);
        let err = c.finish().unwrap_err();
        assert!(
            err.starts_with("SHA1 ") && err.ends_with(&"00".repeat(20)),
            "{err}"
        );
    }

    #[test]
    fn binary_packages_find_their_index_above_them() {
        let root = std::env::temp_dir().join(format!("pc-known-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let bin = root.join("binpkgs/amd64");
        fs::create_dir_all(bin.join("app-arch/zstd")).unwrap();
        let sha1 = "00112233445566778899aabbccddeeff00112233";
        fs::write(
            bin.join("Packages"),
            format!(
                "VERSION: 0\n\nCPV: app-arch/zstd-1.5.6\nPATH: app-arch/zstd/zstd-1.5.6-2.gpkg.tar\nSHA1: {sha1}\nSIZE: 10\n"
            ),
        )
        .unwrap();
        let k = GentooKnowledge::new(None, Store::open(&root).unwrap());
        let known = k
            .binary_package("binpkgs/amd64/app-arch/zstd/zstd-1.5.6-2.gpkg.tar")
            .expect("listed");
        let e = known.expect.unwrap();
        assert_eq!((e.size, e.by), (10, "Packages"));
        assert!(known.fallback.urls().is_empty());
        assert!(
            k.binary_package("binpkgs/amd64/app-arch/zstd/other-1.gpkg.tar")
                .is_none()
        );
        assert!(k.binary_package("elsewhere/x.gpkg.tar").is_none());
        // A new version of the index (another length) is parsed again.
        fs::write(
            bin.join("Packages"),
            format!(
                "VERSION: 0\n\nCPV: app-arch/zstd-1.5.6\nPATH: app-arch/zstd/zstd-1.5.6-2.gpkg.tar\nSHA1: {sha1}\nSIZE: 1234\n"
            ),
        )
        .unwrap();
        let known = k
            .binary_package("binpkgs/amd64/app-arch/zstd/zstd-1.5.6-2.gpkg.tar")
            .expect("still listed");
        assert_eq!(known.expect.unwrap().size, 1234);
        fs::remove_dir_all(&root).unwrap();
    }
}

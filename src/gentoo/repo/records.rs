//! The index's data: what each file (a Manifest, an md5-cache entry) says about each
//! name, as 40-byte records chained per name and per file, strings interned, URLs as
//! (directory, file name) ids, digests as bytes. Lookups merge a name's records on
//! the fly (rules in [`super::index`]), so replacing a file touches only its records.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::digest::Digests;
use super::index::{Distfile, IndexStats};
use super::md5_cache::Restrict;
use super::mirrors::{Mirrors, split_mirror_uri};
use super::strings::{NONE, Strings, reserve_gently};

/// The record comes from a Manifest `DIST` line.
const MANIFEST: u8 = 1;
/// The record comes from an md5-cache `SRC_URI`.
const SRC_URI: u8 = 2;
/// That `SRC_URI`'s package fetch-restricts the file.
const R_FETCH: u8 = 4;
/// … mirror-restricts it (or fetch-restricts it).
const R_MIRROR: u8 = 8;
/// … asks for `primaryuri`.
const R_PRIMARY: u8 = 16;

/// What one file (a Manifest or an md5-cache entry) says about one name: 40 bytes.
#[derive(Clone, Copy, Debug)]
struct Record {
    name: u32,
    /// The next record of the same name.
    next: u32,
    /// The next record of the same file.
    next_in_file: u32,
    /// Manifest: size in bytes.
    size: u64,
    /// Manifest: index in `digests`, or `NONE`.
    digest: u32,
    /// md5-cache: URLs at `urls[url_off..url_off + url_len]`.
    url_off: u32,
    url_len: u16,
    repo: u8,
    flags: u8,
}

/// A URL: `strings[dir]` followed by `strings[file]`, or by the distfile's name when
/// `file` is `NONE` (no arrow: the URI's last component is the name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Url {
    dir: u32,
    file: u32,
}

/// A Manifest's BLAKE2B and SHA512.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Dig {
    blake2b: Option<[u8; 64]>,
    sha512: Option<[u8; 64]>,
}

/// One file's contribution, parsed off the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileData {
    /// A Manifest's `DIST` lines: (name, size, BLAKE2B, SHA512).
    Manifest(Vec<DistLine>),
    /// An md5-cache entry: per name, its usable URLs and restriction flags.
    Md5(Vec<SrcFile>),
}

/// A Manifest `DIST` line as the index keeps it: (name, size, BLAKE2B, SHA512).
pub(crate) type DistLine = (String, u64, Option<[u8; 64]>, Option<[u8; 64]>);

/// A name in one md5-cache entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrcFile {
    pub(crate) name: String,
    /// Usable URLs, split after their last `/`: (directory, file name or `None` when
    /// it is the distfile's name).
    pub(crate) urls: Vec<(String, Option<String>)>,
    pub(crate) fetch: bool,
    pub(crate) mirror: bool,
    pub(crate) primary: bool,
}

impl FileData {
    /// Reads an md5-cache entry's text.
    pub(crate) fn from_md5(text: &str) -> FileData {
        use super::md5_cache::{Lift, parse_entry, parse_restrict, parse_src_uri};
        let entry = parse_entry(text);
        let r = parse_restrict(entry.restrict);
        let mut files: Vec<SrcFile> = Vec::new();
        // Per file: whether some URI lifts fetch (resp. mirror) restriction.
        let mut lifts: Vec<(bool, bool)> = Vec::new();
        for item in parse_src_uri(entry.src_uri) {
            let i = match files.iter().position(|f| f.name == item.name) {
                Some(i) => i,
                None => {
                    files.push(SrcFile {
                        name: item.name.to_owned(),
                        urls: Vec::new(),
                        fetch: false,
                        mirror: false,
                        primary: r.primaryuri,
                    });
                    lifts.push((false, false));
                    files.len() - 1
                }
            };
            let lifted = item.lift != Lift::None;
            lifts[i].0 |= lifted;
            lifts[i].1 |= item.lift == Lift::Mirror;
            let Some(uri) = item.uri else { continue };
            if r.fetch && !lifted {
                continue; // fetch restriction: only lifted URIs may be fetched
            }
            let cut = uri.rfind('/').map_or(0, |i| i + 1);
            let (dir, file) = uri.split_at(cut);
            let file = (file != item.name).then(|| file.to_owned());
            let url = (dir.to_owned(), file);
            if !files[i].urls.contains(&url) {
                files[i].urls.push(url);
            }
        }
        for (f, (lift_fetch, lift_mirror)) in files.iter_mut().zip(lifts) {
            f.fetch = r.fetch && !lift_fetch;
            f.mirror = (r.fetch || r.mirror) && !lift_mirror;
        }
        FileData::Md5(files)
    }

    /// Reads a Manifest's text.
    pub(crate) fn from_manifest(text: &str) -> FileData {
        let m = super::manifest::parse(text);
        FileData::Manifest(
            m.dists
                .into_iter()
                .map(|d| {
                    (
                        d.name.to_owned(),
                        d.size,
                        d.digests.blake2b,
                        d.digests.sha512,
                    )
                })
                .collect(),
        )
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        let (a, b) = match self {
            FileData::Manifest(v) => (Some(v.iter().map(|d| d.0.as_str())), None),
            FileData::Md5(v) => (None, Some(v.iter().map(|f| f.name.as_str()))),
        };
        a.into_iter().flatten().chain(b.into_iter().flatten())
    }
}

/// The merged view of one name.
#[derive(Debug, Default, Hash)]
struct Merged {
    size: Option<u64>,
    dig: Option<Dig>,
    conflict: bool,
    urls: Vec<Url>,
    fetch: bool,
    mirror: bool,
    primary: bool,
    in_src_uri: bool,
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub(crate) struct Data {
    strings: Strings,
    /// By string id: the first record of that name, or `NONE`.
    heads: Vec<u32>,
    /// By string id: the generation at which that name last changed.
    gens: Vec<u32>,
    records: Vec<Record>,
    free_records: Vec<u32>,
    urls: Vec<Url>,
    dead_urls: usize,
    digests: Vec<Dig>,
    free_digests: Vec<u32>,
    pub(crate) mirrors: Mirrors,
    pub(crate) generation: u32,
    /// Strings interned when the data was last built from scratch.
    pub(crate) strings_at_build: usize,
}

impl Data {
    fn intern(&mut self, s: &str) -> u32 {
        let id = self.strings.intern(s);
        if self.heads.len() <= id as usize {
            self.heads.resize(id as usize + 1, NONE);
            self.gens.resize(id as usize + 1, 0);
        }
        id
    }

    /// Whether enough strings and URLs are dead that a rebuild is worth it.
    pub(crate) fn wants_rebuild(&self) -> bool {
        let grown = self.strings.len().saturating_sub(self.strings_at_build);
        grown > self.strings_at_build / 2 + 20_000 || self.dead_urls > self.urls.len() / 2 + 20_000
    }

    /// Replaces the records of one file: `old` is the first record of its previous
    /// contents (`NONE` if none), `new` its contents now (`None`: the file is gone).
    /// Returns the first record of the new contents. Names whose records changed are
    /// added to `touched` (with repetitions).
    pub(crate) fn replace_file(
        &mut self,
        repo: u8,
        old: u32,
        new: Option<&FileData>,
        touched: &mut Vec<u32>,
    ) -> u32 {
        self.remove_file(old, touched);
        match new {
            Some(data) => self.add_file(repo, data, touched),
            None => NONE,
        }
    }

    /// The names of the records of a file, and of what replaces them, before the
    /// change (to fingerprint them).
    pub(crate) fn names_of(&mut self, old: u32, new: Option<&FileData>, out: &mut Vec<u32>) {
        let mut r = old;
        while r != NONE {
            let rec = self.records[r as usize];
            out.push(rec.name);
            r = rec.next_in_file;
        }
        if let Some(new) = new {
            for name in new.names() {
                let id = self.intern(name);
                out.push(id);
            }
        }
    }

    fn remove_file(&mut self, mut r: u32, touched: &mut Vec<u32>) {
        while r != NONE {
            let rec = self.records[r as usize];
            touched.push(rec.name);
            // Unlink from the name's chain.
            let head = &mut self.heads[rec.name as usize];
            if *head == r {
                *head = rec.next;
            } else {
                let mut p = *head;
                while p != NONE {
                    let next = self.records[p as usize].next;
                    if next == r {
                        self.records[p as usize].next = rec.next;
                        break;
                    }
                    p = next;
                }
            }
            if rec.digest != NONE {
                self.free_digests.push(rec.digest);
            }
            self.dead_urls += usize::from(rec.url_len);
            self.free_records.push(r);
            r = rec.next_in_file;
        }
    }

    fn add_file(&mut self, repo: u8, data: &FileData, touched: &mut Vec<u32>) -> u32 {
        let mut first = NONE;
        match data {
            FileData::Manifest(dists) => {
                for line in dists {
                    let rec = self.manifest_record(repo, line);
                    first = self.push_record(rec, first, touched);
                }
            }
            FileData::Md5(files) => {
                for f in files {
                    let rec = self.src_uri_record(repo, f);
                    first = self.push_record(rec, first, touched);
                }
            }
        }
        first
    }

    /// Links `rec` at the head of its name's chain and after `first` in its file's;
    /// returns its number (the file's new first record).
    fn push_record(&mut self, rec: Record, first: u32, touched: &mut Vec<u32>) -> u32 {
        let rec = Record {
            next: self.heads[rec.name as usize],
            next_in_file: first,
            ..rec
        };
        let r = match self.free_records.pop() {
            Some(r) => {
                self.records[r as usize] = rec;
                r
            }
            None => {
                reserve_gently(&mut self.records, 1);
                self.records.push(rec);
                (self.records.len() - 1) as u32
            }
        };
        self.heads[rec.name as usize] = r;
        touched.push(rec.name);
        r
    }

    /// The record of a Manifest `DIST` line (its digests stored apart, when it has any).
    fn manifest_record(&mut self, repo: u8, line: &DistLine) -> Record {
        let (name, size, blake2b, sha512) = line;
        let name = self.intern(name);
        let dig = Dig {
            blake2b: *blake2b,
            sha512: *sha512,
        };
        let digest = if dig.blake2b.is_none() && dig.sha512.is_none() {
            NONE
        } else if let Some(d) = self.free_digests.pop() {
            self.digests[d as usize] = dig;
            d
        } else {
            reserve_gently(&mut self.digests, 1);
            self.digests.push(dig);
            (self.digests.len() - 1) as u32
        };
        Record {
            name,
            next: NONE,
            next_in_file: NONE,
            size: *size,
            digest,
            url_off: 0,
            url_len: 0,
            repo,
            flags: MANIFEST,
        }
    }

    /// The record of one name's SRC_URI in an md5-cache entry (its URLs stored apart).
    fn src_uri_record(&mut self, repo: u8, f: &SrcFile) -> Record {
        let name = self.intern(&f.name);
        let url_off = self.urls.len() as u32;
        let mut url_len: u16 = 0;
        for (dir, file) in f.urls.iter().take(usize::from(u16::MAX)) {
            let dir = self.intern(dir);
            let file = file.as_deref().map_or(NONE, |s| self.intern(s));
            reserve_gently(&mut self.urls, 1);
            self.urls.push(Url { dir, file });
            url_len += 1;
        }
        let mut flags = SRC_URI;
        for (on, bit) in [
            (f.fetch, R_FETCH),
            (f.mirror, R_MIRROR),
            (f.primary, R_PRIMARY),
        ] {
            if on {
                flags |= bit;
            }
        }
        Record {
            name,
            next: NONE,
            next_in_file: NONE,
            size: 0,
            digest: NONE,
            url_off,
            url_len,
            repo,
            flags,
        }
    }

    /// The merged view of name `id`, if any record names it.
    fn merge(&self, id: u32) -> Option<Merged> {
        let mut m = self.summary(id)?;
        m.urls = self.merged_urls(id);
        Some(m)
    }

    /// The records of name `id`, in chain order.
    fn chain(&self, id: u32) -> impl Iterator<Item = Record> + '_ {
        let head = self.heads.get(id as usize).copied().unwrap_or(NONE);
        std::iter::successors((head != NONE).then(|| self.records[head as usize]), |rec| {
            (rec.next != NONE).then(|| self.records[rec.next as usize])
        })
    }

    /// A Manifest record's digests.
    fn dig(&self, rec: &Record) -> Option<Dig> {
        (rec.digest != NONE).then(|| self.digests[rec.digest as usize])
    }

    /// The merged view of name `id` without its URLs (`urls` empty), if any record
    /// names it: no allocation, for lookups that need no URL. Records merge in
    /// repository order (the first repository's Manifest wins), in chain order
    /// within one repository.
    fn summary(&self, id: u32) -> Option<Merged> {
        self.chain(id).next()?;
        let mut m = Merged::default();
        // The first of the lowest repository's Manifest records (`min_by_key` keeps
        // the first of equals).
        let manifests = self.chain(id).filter(|r| r.flags & MANIFEST != 0);
        if let Some(rec) = manifests.min_by_key(|r| r.repo) {
            m.size = Some(rec.size);
            m.dig = self.dig(&rec);
        }
        let mut voters = 0;
        let (mut all_fetch, mut all_mirror) = (true, true);
        for rec in self.chain(id) {
            if rec.flags & MANIFEST != 0 {
                m.conflict |= m.size != Some(rec.size) || m.dig != self.dig(&rec);
            }
            if rec.flags & SRC_URI != 0 {
                voters += 1;
                all_fetch &= rec.flags & R_FETCH != 0;
                all_mirror &= rec.flags & R_MIRROR != 0;
                m.primary |= rec.flags & R_PRIMARY != 0;
            }
        }
        m.in_src_uri = voters > 0;
        m.fetch = voters > 0 && all_fetch;
        m.mirror = voters > 0 && all_mirror;
        Some(m)
    }

    /// The URLs of name `id`'s `SRC_URI` records, in repository order (chain order
    /// within one), each once.
    fn merged_urls(&self, id: u32) -> Vec<Url> {
        let mut recs: Vec<Record> = self.chain(id).filter(|r| r.flags & SRC_URI != 0).collect();
        recs.sort_by_key(|r| r.repo); // stable: within a repository, chain order
        let mut out: Vec<Url> = Vec::new();
        for rec in &recs {
            let urls = &self.urls[rec.url_off as usize..][..usize::from(rec.url_len)];
            for url in urls {
                if !out.contains(url) {
                    out.push(*url);
                }
            }
        }
        out
    }

    /// A fingerprint of name `id`'s merged view (0: unknown). Strings are hashed by
    /// content, so fingerprints compare across rebuilds.
    pub(crate) fn fingerprint(&self, id: u32) -> u64 {
        let Some(m) = self.merge(id) else { return 0 };
        let mut h = DefaultHasher::new();
        (
            m.size,
            m.dig,
            m.conflict,
            m.fetch,
            m.mirror,
            m.primary,
            m.in_src_uri,
        )
            .hash(&mut h);
        for u in &m.urls {
            self.strings.get(u.dir).hash(&mut h);
            (u.file != NONE).hash(&mut h);
            self.strings.get(u.file).hash(&mut h);
        }
        h.finish() | 1
    }

    /// Records that the names in `changed` changed at generation `generation`.
    pub(crate) fn stamp(&mut self, changed: &[u32], generation: u32) {
        for &id in changed {
            self.gens[id as usize] = generation;
        }
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.strings.get(id)
    }

    pub(crate) fn find(&self, name: &str) -> Option<u32> {
        self.strings.find(name)
    }

    /// The ids of every known name.
    pub(crate) fn name_ids(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.heads.len() as u32).filter(|&id| self.heads[id as usize] != NONE)
    }

    /// Copies the generation of name `id` from another data.
    pub(crate) fn set_gen(&mut self, id: u32, generation: u32) {
        self.gens[id as usize] = generation;
    }

    /// The generation at which `name` last changed, if known.
    pub(crate) fn generation_of(&self, name: &str) -> Option<u32> {
        let id = self.strings.find(name)?;
        (self.heads.get(id as usize).copied().unwrap_or(NONE) != NONE)
            .then(|| self.gens[id as usize])
    }

    pub(crate) fn gen_of(&self, id: u32) -> u32 {
        self.gens.get(id as usize).copied().unwrap_or(0)
    }

    pub(crate) fn in_manifest(&self, name: &str) -> bool {
        let Some(id) = self.strings.find(name) else {
            return false;
        };
        let mut r = self.heads.get(id as usize).copied().unwrap_or(NONE);
        while r != NONE {
            let rec = &self.records[r as usize];
            if rec.flags & MANIFEST != 0 {
                return true;
            }
            r = rec.next;
        }
        false
    }

    /// Everything known about `name`, merged and with URLs expanded.
    pub(crate) fn distfile(&self, name: &str) -> Option<Distfile> {
        let id = self.strings.find(name)?;
        let m = self.merge(id)?;
        let urls = self.expand(name, &m);
        Some(self.describe(name, id, &m, urls))
    }

    /// Everything known about `name` but its URLs (`urls` is empty): cheap, for
    /// lookups that need only the size, digests and restrictions.
    pub(crate) fn distfile_without_urls(&self, name: &str) -> Option<Distfile> {
        let id = self.strings.find(name)?;
        let m = self.summary(id)?;
        Some(self.describe(name, id, &m, Vec::new()))
    }

    /// The URLs [`Data::distfile`] gives for `name` (empty when unknown).
    pub(crate) fn urls(&self, name: &str) -> Vec<String> {
        let Some(m) = self.strings.find(name).and_then(|id| self.merge(id)) else {
            return Vec::new();
        };
        self.expand(name, &m)
    }

    /// The URLs of `name`'s merged view `m`, in portage's order, `mirror://` expanded,
    /// each once.
    fn expand(&self, name: &str, m: &Merged) -> Vec<String> {
        let mut mirrored = Vec::new();
        let mut direct = Vec::new();
        for u in &m.urls {
            let file = if u.file == NONE {
                name
            } else {
                self.strings.get(u.file)
            };
            let uri = format!("{}{file}", self.strings.get(u.dir));
            if split_mirror_uri(&uri).is_some() {
                mirrored.extend(self.mirrors.expand(&uri));
            } else if !uri.starts_with("mirror://") {
                direct.push(uri);
            }
        }
        let (first, second) = if m.primary {
            (direct, mirrored)
        } else {
            (mirrored, direct)
        };
        let mut urls: Vec<String> = Vec::with_capacity(first.len() + second.len());
        for u in first.into_iter().chain(second) {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        urls
    }

    /// The distfile `name` (string `id`) with merged view `m` and URLs `urls`.
    fn describe(&self, name: &str, id: u32, m: &Merged, urls: Vec<String>) -> Distfile {
        let dig = m.dig.unwrap_or(Dig {
            blake2b: None,
            sha512: None,
        });
        Distfile {
            name: name.to_owned(),
            size: m.size,
            digests: Digests {
                blake2b: dig.blake2b,
                sha512: dig.sha512,
                sha1: None,
            },
            urls,
            restrict: Restrict {
                fetch: m.fetch,
                mirror: m.mirror,
                primaryuri: m.primary,
            },
            in_src_uri: m.in_src_uri,
            conflict: m.conflict,
            generation: u64::from(self.gens[id as usize]),
        }
    }

    /// Releases spare capacity (after a build).
    pub(crate) fn shrink(&mut self) {
        self.strings.shrink();
        self.heads.shrink_to_fit();
        self.gens.shrink_to_fit();
        self.records.shrink_to_fit();
        self.urls.shrink_to_fit();
        self.digests.shrink_to_fit();
        self.strings_at_build = self.strings.len();
    }

    pub(crate) fn stats(&self) -> IndexStats {
        let mut names = 0;
        let mut manifest_names = 0;
        for id in self.name_ids() {
            names += 1;
            let mut r = self.heads[id as usize];
            while r != NONE {
                let rec = &self.records[r as usize];
                if rec.flags & MANIFEST != 0 {
                    manifest_names += 1;
                    break;
                }
                r = rec.next;
            }
        }
        let heap_bytes = self.strings.heap_bytes()
            + (self.heads.capacity() + self.gens.capacity()) * 4
            + self.records.capacity() * size_of::<Record>()
            + self.free_records.capacity() * 4
            + self.urls.capacity() * size_of::<Url>()
            + self.digests.capacity() * size_of::<Dig>()
            + self.free_digests.capacity() * 4;
        IndexStats {
            ready: false,
            generation: u64::from(self.generation),
            names,
            manifest_names,
            records: self.records.len() - self.free_records.len(),
            files: 0,
            heap_bytes,
            rebuilds: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `d.distfile(name)`, checked against the lookup without URLs plus the URLs
    /// alone: the two ways give the same answer.
    fn distfile(d: &Data, name: &str) -> Option<Distfile> {
        let whole = d.distfile(name);
        let mut split = d.distfile_without_urls(name);
        if let Some(s) = split.as_mut() {
            assert!(s.urls.is_empty());
            s.urls = d.urls(name);
        }
        assert_eq!(split, whole);
        whole
    }

    fn md5(text: &str) -> FileData {
        FileData::from_md5(text)
    }

    fn manifest(lines: &[(&str, u64, u8)]) -> FileData {
        FileData::Manifest(
            lines
                .iter()
                .map(|(n, s, b)| (n.to_string(), *s, Some([*b; 64]), None))
                .collect(),
        )
    }

    #[test]
    fn md5_entries_keep_usable_urls_per_name() {
        let FileData::Md5(files) = md5(
            "RESTRICT=fetch\nSRC_URI=https://h/a.tar.gz fetch+https://h/b.tar.gz -> bee.tgz \
             mirror+https://h/c.zip c.zip\n",
        ) else {
            panic!()
        };
        let got: Vec<(&str, usize, bool, bool)> = files
            .iter()
            .map(|f| (f.name.as_str(), f.urls.len(), f.fetch, f.mirror))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.tar.gz", 0, true, true),
                ("bee.tgz", 1, false, true),
                ("c.zip", 1, false, false),
            ]
        );
        assert_eq!(
            files[1].urls,
            vec![("https://h/".to_string(), Some("b.tar.gz".to_string()))]
        );
        assert_eq!(files[2].urls, vec![("https://h/".to_string(), None)]);
    }

    #[test]
    fn merges_repositories_and_replaces_files() {
        let mut d = Data::default();
        d.mirrors.merge("gnu https://m1/gnu https://m2/gnu/\n");
        let mut touched = Vec::new();
        let gentoo = d.replace_file(
            0,
            NONE,
            Some(&manifest(&[("x.tar.gz", 10, 1)])),
            &mut touched,
        );
        let overlay = d.replace_file(
            1,
            NONE,
            Some(&manifest(&[("x.tar.gz", 11, 2)])),
            &mut touched,
        );
        let e1 = d.replace_file(
            0,
            NONE,
            Some(&md5("SRC_URI=https://h/x.tar.gz mirror://gnu/x/x.tar.gz\n")),
            &mut touched,
        );
        let _e2 = d.replace_file(
            1,
            NONE,
            Some(&md5(
                "RESTRICT=mirror\nSRC_URI=https://o/v1.tgz -> x.tar.gz\n",
            )),
            &mut touched,
        );
        let x = distfile(&d, "x.tar.gz").unwrap();
        assert_eq!(x.size, Some(10), "the first repository's Manifest wins");
        assert_eq!(x.digests.blake2b, Some([1; 64]));
        assert!(x.conflict);
        assert_eq!(
            x.urls,
            vec![
                "https://m1/gnu/x/x.tar.gz",
                "https://m2/gnu/x/x.tar.gz",
                "https://h/x.tar.gz",
                "https://o/v1.tgz"
            ]
        );
        assert!(!x.restrict.mirror, "not every SRC_URI restricts it");
        assert!(x.in_src_uri && d.in_manifest("x.tar.gz"));

        // The overlay's Manifest is fixed, the Gentoo entry removed.
        let fp = d.fingerprint(d.find("x.tar.gz").unwrap());
        d.replace_file(
            1,
            overlay,
            Some(&manifest(&[("x.tar.gz", 10, 1)])),
            &mut touched,
        );
        d.replace_file(0, e1, None, &mut touched);
        let x = distfile(&d, "x.tar.gz").unwrap();
        assert!(!x.conflict);
        assert_eq!(x.urls, vec!["https://o/v1.tgz"]);
        assert!(x.restrict.mirror, "the only SRC_URI left restricts it");
        assert_ne!(fp, d.fingerprint(d.find("x.tar.gz").unwrap()));

        d.replace_file(0, gentoo, None, &mut touched);
        assert!(distfile(&d, "x.tar.gz").is_some());
        let stats = d.stats();
        assert_eq!(
            (stats.names, stats.manifest_names, stats.records),
            (1, 1, 2)
        );
        assert_eq!(distfile(&d, "nope"), None);
    }

    #[test]
    fn primaryuri_puts_direct_urls_first() {
        let mut d = Data::default();
        d.mirrors.merge("sf https://sf/\n");
        let mut t = Vec::new();
        d.replace_file(
            0,
            NONE,
            Some(&md5(
                "RESTRICT=primaryuri\nSRC_URI=mirror://sf/p/a.zip https://h/a.zip\n",
            )),
            &mut t,
        );
        let a = distfile(&d, "a.zip").unwrap();
        assert_eq!(a.urls, vec!["https://h/a.zip", "https://sf/p/a.zip"]);
        assert!(a.restrict.primaryuri && a.size.is_none() && a.expected().is_none());
    }
}

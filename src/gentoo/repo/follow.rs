//! Reading repositories and following their changes: the [`Tracker`] remembers, per
//! directory, its mtime and, per file, its (mtime, size, inode) and the records it
//! gave; a pass re-reads only what changed. How and why: see [`super::index`].

use std::cell::RefCell;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::index::{RepoOptions, Shared, Update};
use super::mirrors::Mirrors;
use super::records::{Data, FileData};
use super::strings::NONE;

/// Where a pass puts what it reads: the shared index, or a private one being rebuilt.
pub(crate) trait Target {
    fn with(&self, f: &mut dyn FnMut(&mut Data));

    /// Whether the index is being stopped (a pass then ends early).
    fn stopping(&self) -> bool {
        false
    }
}

impl Target for Shared {
    fn with(&self, f: &mut dyn FnMut(&mut Data)) {
        self.with_data(|d| f(d));
    }

    fn stopping(&self) -> bool {
        Shared::stopping(self)
    }
}

struct Private(RefCell<Data>);

impl Target for Private {
    fn with(&self, f: &mut dyn FnMut(&mut Data)) {
        f(&mut self.0.borrow_mut());
    }
}

/// A fingerprint of a file's or directory's metadata; 0 when it does not exist.
fn stamp(path: &Path) -> u64 {
    match fs::metadata(path) {
        Ok(m) => {
            let mut h = (m.mtime() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for v in [m.mtime_nsec() as u64, m.size(), m.ino(), m.dev()] {
                h = (h ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
            }
            h | 1
        }
        Err(_) => 0,
    }
}

/// Reads a file as text (lossily); `None` if it cannot be read.
fn read_text(path: &Path) -> Option<String> {
    match fs::read(path) {
        Ok(bytes) => Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                debug!("cannot read {}: {e}", path.display());
            }
            None
        }
    }
}

/// Sorted names of the entries of `dir` that are files (`want_dirs` false) or
/// directories, skipping hidden ones (rsync's temporary files start with `.`).
fn list(dir: &Path, want_dirs: bool) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let is_dir = match e.file_type() {
                Ok(t) if t.is_symlink() => fs::metadata(e.path()).is_ok_and(|m| m.is_dir()),
                Ok(t) => t.is_dir(),
                Err(_) => false,
            };
            is_dir == want_dirs
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort_unstable();
    names
}

/// What a tracked directory holds: md5-cache entries (files) or packages (whose
/// `Manifest` is the tracked file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Md5,
    Manifest,
}

/// One tracked file.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The name at `names[off..off + len]` of its directory.
    off: u32,
    len: u32,
    stamp: u64,
    /// Its first record in the index.
    first: u32,
}

/// One tracked directory: `metadata/md5-cache/CAT` or `CAT`.
#[derive(Debug)]
struct DirTrack {
    name: String,
    stamp: u64,
    names: String,
    entries: Vec<Entry>,
    /// Check every file until then (a category whose md5-cache changed).
    hot_until: Option<Instant>,
}

impl DirTrack {
    fn new(name: String) -> DirTrack {
        DirTrack {
            name,
            stamp: 0,
            names: String::new(),
            entries: Vec::new(),
            hot_until: None,
        }
    }

    fn entry_name(&self, e: &Entry) -> &str {
        &self.names[e.off as usize..(e.off + e.len) as usize]
    }

    fn heap_bytes(&self) -> usize {
        self.name.capacity() + self.names.capacity() + self.entries.capacity() * size_of::<Entry>()
    }
}

/// One repository being followed.
#[derive(Debug)]
struct RepoTrack {
    idx: u8,
    root: PathBuf,
    /// `metadata/md5-cache`, or portage's dep cache of this repository.
    md5_root: Option<PathBuf>,
    md5_root_stamp: u64,
    md5_cats: Vec<DirTrack>,
    /// `profiles/categories`' stamp (the root's when that file is missing).
    cats_stamp: u64,
    pkg_cats: Vec<DirTrack>,
    /// The stamps of the files a sync always rewrites ([`GATES`]), combined.
    gates_stamp: u64,
    /// Check every Manifest until then (a sync happened).
    hot_until: Option<Instant>,
}

/// Files every sync rewrites: rsync's `metadata/timestamp.chk` (and the
/// `timestamp*` files of git mirrors), git's index and fetch heads. When one
/// changes, every Manifest is checked at each poll for [`RepoOptions::hot_for`].
const GATES: &[&str] = &[
    "metadata/timestamp.chk",
    "metadata/timestamp.commit",
    "metadata/timestamp.x",
    "metadata/timestamp",
    ".git/index",
    ".git/FETCH_HEAD",
    ".git/ORIG_HEAD",
];

fn gates_stamp(root: &Path) -> u64 {
    GATES.iter().fold(0u64, |h, g| {
        (h ^ stamp(&root.join(g))).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A change to apply: a file's records (`old` its first) replaced by `new`.
type Change = (u32, Option<FileData>);

/// What a pass found.
#[derive(Debug, Default)]
pub(crate) struct PassState {
    /// Compute which names changed (false on a first reading: everything is new).
    diff: bool,
    generation: u32,
    changed: Vec<String>,
    any: bool,
    mirrors_changed: bool,
}

/// Everything the follower thread remembers about the repositories.
#[derive(Debug)]
pub(crate) struct Tracker {
    repos: Vec<RepoTrack>,
    /// `thirdpartymirrors` files (the repositories' and their masters'), stamped.
    mirror_files: Vec<(PathBuf, u64)>,
    options: RepoOptions,
    paths: Vec<PathBuf>,
    rebuilds: u64,
}

impl Tracker {
    /// Checks the repository paths; reads nothing else yet.
    pub(crate) fn new(paths: &[PathBuf], options: &RepoOptions) -> io::Result<Tracker> {
        if paths.len() > usize::from(u8::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more than 255 repositories",
            ));
        }
        let mut repos = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let meta = fs::metadata(path)?;
            if !meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{}: not a directory", path.display()),
                ));
            }
            fs::read_dir(path)?;
            repos.push(RepoTrack {
                idx: i as u8,
                root: path.clone(),
                md5_root: None,
                md5_root_stamp: 0,
                md5_cats: Vec::new(),
                cats_stamp: 0,
                pkg_cats: Vec::new(),
                gates_stamp: gates_stamp(path),
                hot_until: None,
            });
        }
        let mirror_files = mirror_files(paths)
            .into_iter()
            .map(|p| (p, u64::MAX))
            .collect();
        Ok(Tracker {
            repos,
            mirror_files,
            options: options.clone(),
            paths: paths.to_vec(),
            rebuilds: 0,
        })
    }

    /// Reads everything into `shared` (nothing is told to listeners).
    pub(crate) fn first_pass(&mut self, shared: &Shared) {
        let started = Instant::now();
        let mut state = PassState {
            generation: 1,
            ..PassState::default()
        };
        self.pass(shared, true, &mut state);
        self.publish_stats(shared);
        shared.with_data(|d| d.shrink());
        let stats_names = shared.with_data(|d| d.name_ids().count());
        info!(
            "repository index: {stats_names} distfiles from {} files of {} repositories in {}ms",
            self.files(),
            self.repos.len(),
            started.elapsed().as_millis()
        );
    }

    fn files(&self) -> usize {
        self.repos
            .iter()
            .flat_map(|r| r.md5_cats.iter().chain(&r.pkg_cats))
            .map(|d| d.entries.len())
            .sum()
    }

    fn publish_stats(&self, shared: &Shared) {
        let bytes: usize = self
            .repos
            .iter()
            .flat_map(|r| r.md5_cats.iter().chain(&r.pkg_cats))
            .map(DirTrack::heap_bytes)
            .sum();
        shared.set_tracker_stats(self.files(), bytes, self.rebuilds);
    }

    /// One pass over every repository: directories whose mtime changed are listed
    /// again, their changed files read again; with `full`, every file is checked.
    fn pass(&mut self, target: &dyn Target, full: bool, state: &mut PassState) {
        self.check_mirrors(target, state);
        let now = Instant::now();
        let hot_for = self.options.hot_for;
        let dep_cache = self.options.dep_cache.clone();
        for repo in &mut self.repos {
            let gates = gates_stamp(&repo.root);
            if gates != repo.gates_stamp {
                repo.gates_stamp = gates;
                repo.hot_until = Some(now + hot_for);
            }
            let all_hot = repo.hot_until.is_some_and(|t| t > now);
            if !all_hot {
                repo.hot_until = None;
            }
            if full || repo.md5_root.is_none() {
                repo.md5_root = md5_root(&repo.root, &dep_cache);
            }
            let pass = Pass {
                target,
                full,
                now,
                hot_for,
            };
            let Some(cats_changed) = pass.md5_cache(repo, state) else {
                return;
            };
            if pass.manifests(repo, cats_changed, all_hot, state).is_none() {
                return;
            }
        }
    }

    /// Reloads the mirror table when a `thirdpartymirrors` file changed.
    fn check_mirrors(&mut self, target: &dyn Target, state: &mut PassState) {
        let mut changed = false;
        for (path, old) in &mut self.mirror_files {
            let s = stamp(path);
            changed |= s != *old;
            *old = s;
        }
        if !changed {
            return;
        }
        let mut mirrors = Mirrors::new();
        for (path, _) in &self.mirror_files {
            if let Some(text) = read_text(path) {
                mirrors.merge(&text);
            }
        }
        debug!("thirdpartymirrors: {} mirrors", mirrors.len());
        let mut mirrors = Some(mirrors);
        target.with(&mut |d| {
            if let Some(m) = mirrors.take() {
                d.mirrors = m;
            }
        });
        state.mirrors_changed = true;
        state.any = true;
    }
}

/// The directory md5-cache entries of the repository at `root` are read from.
fn md5_root(root: &Path, dep_cache: &Path) -> Option<PathBuf> {
    let own = root.join("metadata/md5-cache");
    if own.is_dir() {
        return Some(own);
    }
    let abs = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let rel = abs.strip_prefix("/").unwrap_or(&abs);
    let theirs = dep_cache.join(rel);
    theirs.is_dir().then_some(theirs)
}

/// `profiles/categories`, or, without it, the top directories that look like
/// categories (`app-arch`, `virtual`).
fn categories(root: &Path) -> Vec<String> {
    match read_text(&root.join("profiles/categories")) {
        Some(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        None => list(root, true)
            .into_iter()
            .filter(|n| n.contains('-') || n == "virtual")
            .collect(),
    }
}

/// The `thirdpartymirrors` files of `repos`, each followed by those of its masters
/// (`masters =` in `metadata/layout.conf`) that are not indexed themselves, found
/// beside it (`/var/db/repos/gentoo` for an overlay in `/var/db/repos/`).
fn mirror_files(repos: &[PathBuf]) -> Vec<PathBuf> {
    let names: Vec<Option<String>> = repos.iter().map(|r| repo_name(r)).collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for repo in repos {
        out.push(repo.join("profiles/thirdpartymirrors"));
        for master in masters(repo) {
            if names.iter().any(|n| n.as_deref() == Some(master.as_str())) {
                continue;
            }
            let Some(parent) = repo.parent() else {
                continue;
            };
            let candidate = parent.join(&master);
            if repo_name(&candidate).as_deref() == Some(master.as_str()) {
                out.push(candidate.join("profiles/thirdpartymirrors"));
            } else {
                warn!(
                    "{}: master repository {master:?} not found beside it; \
                     give it to --repo for its thirdpartymirrors",
                    repo.display()
                );
            }
        }
    }
    out.dedup();
    out
}

/// A repository's name: `profiles/repo_name`, else `repo-name` in `layout.conf`.
fn repo_name(root: &Path) -> Option<String> {
    if let Some(text) = read_text(&root.join("profiles/repo_name"))
        && let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty())
    {
        return Some(line.to_owned());
    }
    layout_value(root, "repo-name").map(|v| v.trim().to_owned())
}

fn masters(root: &Path) -> Vec<String> {
    layout_value(root, "masters")
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn layout_value(root: &Path, key: &str) -> Option<String> {
    let text = read_text(&root.join("metadata/layout.conf"))?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// What one pass over a repository needs to know.
struct Pass<'t> {
    target: &'t dyn Target,
    full: bool,
    now: Instant,
    hot_for: Duration,
}

impl Pass<'_> {
    /// The md5-cache categories of `repo`: lists a changed directory again and reads
    /// its changed entries. Returns whether the list of categories changed, or `None`
    /// when asked to stop.
    fn md5_cache(&self, repo: &mut RepoTrack, state: &mut PassState) -> Option<bool> {
        let (target, full, now) = (self.target, self.full, self.now);
        let mut cats_changed = false;
        let Some(md5_root) = repo.md5_root.clone() else {
            return Some(false);
        };
        let s = stamp(&md5_root);
        if s != repo.md5_root_stamp || full {
            cats_changed |= s != repo.md5_root_stamp;
            repo.md5_root_stamp = s;
            let names = list(&md5_root, true);
            reconcile(target, repo.idx, &mut repo.md5_cats, names, state);
        }
        for dir in &mut repo.md5_cats {
            if target.stopping() {
                return None;
            }
            let path = md5_root.join(&dir.name);
            let s = stamp(&path);
            if s != dir.stamp || full {
                let relist = s != dir.stamp;
                dir.stamp = s;
                let changed =
                    refresh_dir(target, repo.idx, &path, dir, Kind::Md5, relist, true, state);
                if changed {
                    // Its packages' Manifests change with it, maybe a little later.
                    if let Some(pkg) = repo.pkg_cats.iter_mut().find(|p| p.name == dir.name) {
                        pkg.hot_until = Some(now + self.hot_for);
                    }
                }
            }
        }
        Some(cats_changed)
    }

    /// The package categories of `repo` (for Manifests): hot ones are checked file by
    /// file. `None` when asked to stop.
    fn manifests(
        &self,
        repo: &mut RepoTrack,
        cats_changed: bool,
        all_hot: bool,
        state: &mut PassState,
    ) -> Option<()> {
        let (target, full, now) = (self.target, self.full, self.now);
        let cats_file = repo.root.join("profiles/categories");
        let s = stamp(&cats_file);
        let s = if s == 0 { stamp(&repo.root) } else { s };
        if s != repo.cats_stamp || cats_changed || full {
            repo.cats_stamp = s;
            let mut names = categories(&repo.root);
            for d in &repo.md5_cats {
                names.push(d.name.clone());
            }
            names.sort_unstable();
            names.dedup();
            names.retain(|n| repo.root.join(n).is_dir());
            reconcile(target, repo.idx, &mut repo.pkg_cats, names, state);
        }
        for dir in &mut repo.pkg_cats {
            if target.stopping() {
                return None;
            }
            let path = repo.root.join(&dir.name);
            let s = stamp(&path);
            let hot = all_hot || dir.hot_until.is_some_and(|t| t > now);
            if dir.hot_until.is_none_or(|t| t <= now) {
                dir.hot_until = None;
            }
            if s != dir.stamp || hot || full {
                let relist = s != dir.stamp;
                dir.stamp = s;
                let (kind, all) = (Kind::Manifest, hot || full);
                refresh_dir(target, repo.idx, &path, dir, kind, relist, all, state);
            }
        }
        Some(())
    }
}

/// Makes `dirs` the directories named `names` (sorted): new ones are added (read at
/// their first check), gone ones have their files' records removed.
fn reconcile(
    target: &dyn Target,
    repo: u8,
    dirs: &mut Vec<DirTrack>,
    names: Vec<String>,
    state: &mut PassState,
) {
    let mut old = std::mem::take(dirs).into_iter().peekable();
    for name in names {
        while old.peek().is_some_and(|d| d.name < name) {
            let gone = old.next();
            drop_dir(target, repo, gone, state);
        }
        match old.next_if(|d| d.name == name) {
            Some(d) => dirs.push(d),
            None => dirs.push(DirTrack::new(name)),
        }
    }
    for gone in old {
        drop_dir(target, repo, Some(gone), state);
    }
}

fn drop_dir(target: &dyn Target, repo: u8, dir: Option<DirTrack>, state: &mut PassState) {
    let Some(dir) = dir else { return };
    let changes: Vec<Change> = dir.entries.iter().map(|e| (e.first, None)).collect();
    apply(target, repo, changes, state);
}

/// Brings one directory up to date: lists it again if `relist`, checks (and reads
/// again when changed) every file if `check`, new files always. Returns whether a
/// file changed.
#[allow(clippy::too_many_arguments)]
fn refresh_dir(
    target: &dyn Target,
    repo: u8,
    path: &Path,
    dir: &mut DirTrack,
    kind: Kind,
    relist: bool,
    check: bool,
    state: &mut PassState,
) -> bool {
    let file_of = |name: &str| match kind {
        Kind::Md5 => path.join(name),
        Kind::Manifest => path.join(name).join("Manifest"),
    };
    // (entry, must check) in the directory's new order.
    let mut changes: Vec<Change> = Vec::new();
    let mut slots: Vec<usize> = Vec::new();
    if relist {
        let names = list(path, kind == Kind::Manifest);
        let mut new_names = String::new();
        let mut new_entries: Vec<Entry> = Vec::with_capacity(names.len());
        let mut fresh: Vec<bool> = Vec::with_capacity(names.len());
        let mut i = 0;
        for name in &names {
            while i < dir.entries.len() && dir.entry_name(&dir.entries[i]) < name.as_str() {
                changes.push((dir.entries[i].first, None));
                slots.push(usize::MAX);
                i += 1;
            }
            let old = (i < dir.entries.len() && dir.entry_name(&dir.entries[i]) == name.as_str())
                .then(|| {
                    i += 1;
                    dir.entries[i - 1]
                });
            fresh.push(old.is_none());
            let (stamp, first) = old.map_or((0, NONE), |e| (e.stamp, e.first));
            new_entries.push(Entry {
                off: new_names.len() as u32,
                len: name.len() as u32,
                stamp,
                first,
            });
            new_names.push_str(name);
        }
        for e in &dir.entries[i..] {
            changes.push((e.first, None));
            slots.push(usize::MAX);
        }
        dir.names = new_names;
        dir.entries = new_entries;
        for (k, is_new) in fresh.into_iter().enumerate() {
            if is_new || check {
                check_entry(dir, k, &file_of, kind, &mut changes, &mut slots);
            }
        }
    } else if check {
        for k in 0..dir.entries.len() {
            check_entry(dir, k, &file_of, kind, &mut changes, &mut slots);
        }
    }
    if changes.is_empty() {
        return false;
    }
    let firsts = apply(target, repo, changes, state);
    for (slot, first) in slots.into_iter().zip(firsts) {
        if slot != usize::MAX {
            dir.entries[slot].first = first;
        }
    }
    true
}

fn check_entry(
    dir: &mut DirTrack,
    k: usize,
    file_of: &dyn Fn(&str) -> PathBuf,
    kind: Kind,
    changes: &mut Vec<Change>,
    slots: &mut Vec<usize>,
) {
    let file = file_of(dir.entry_name(&dir.entries[k]));
    let s = stamp(&file);
    let e = &mut dir.entries[k];
    if s == e.stamp {
        return;
    }
    e.stamp = s;
    let data = if s == 0 {
        None
    } else {
        read_text(&file).map(|text| match kind {
            Kind::Md5 => FileData::from_md5(&text),
            Kind::Manifest => FileData::from_manifest(&text),
        })
    };
    changes.push((e.first, data));
    slots.push(k);
}

/// Applies changes under one lock; returns each change's new first record.
fn apply(target: &dyn Target, repo: u8, changes: Vec<Change>, state: &mut PassState) -> Vec<u32> {
    let mut firsts = Vec::with_capacity(changes.len());
    if changes.is_empty() {
        return firsts;
    }
    state.any = true;
    let diff = state.diff;
    let generation = state.generation;
    let mut changed: Vec<String> = Vec::new();
    target.with(&mut |d| {
        let mut before: Vec<(u32, u64)> = Vec::new();
        if diff {
            let mut names = Vec::new();
            for (old, new) in &changes {
                d.names_of(*old, new.as_ref(), &mut names);
            }
            names.sort_unstable();
            names.dedup();
            before = names
                .into_iter()
                .map(|id| (id, d.fingerprint(id)))
                .collect();
        }
        let mut touched = Vec::new();
        for (old, new) in &changes {
            firsts.push(d.replace_file(repo, *old, new.as_ref(), &mut touched));
        }
        d.generation = generation;
        if diff {
            let ids: Vec<u32> = before
                .iter()
                .filter(|(id, fp)| d.fingerprint(*id) != *fp)
                .map(|(id, _)| *id)
                .collect();
            d.stamp(&ids, generation);
            changed.extend(
                ids.iter()
                    .filter(|&&id| d.fingerprint(id) != 0)
                    .map(|&id| d.name(id).to_owned()),
            );
        } else {
            touched.sort_unstable();
            touched.dedup();
            d.stamp(&touched, generation);
        }
    });
    state.changed.append(&mut changed);
    firsts
}

/// The follower thread: reads everything, then polls until stopped.
pub(crate) fn run(shared: &Shared, mut tracker: Tracker, options: &RepoOptions) {
    tracker.first_pass(shared);
    shared.set_ready();
    let generation = shared.with_data(|d| d.generation);
    shared.notify(&Update {
        generation: u64::from(generation),
        full: true,
        names: Vec::new(),
    });
    let mut last_full = Instant::now();
    loop {
        if shared.sleep(options.poll) {
            return;
        }
        let full = last_full.elapsed() >= options.full_check;
        if full {
            last_full = Instant::now();
        }
        let started = Instant::now();
        let mut state = PassState {
            diff: true,
            generation: shared.with_data(|d| d.generation) + 1,
            ..PassState::default()
        };
        tracker.pass(shared, full, &mut state);
        if state.any {
            tracker.publish_stats(shared);
            let update = Update {
                generation: u64::from(state.generation),
                full: state.mirrors_changed,
                names: if state.mirrors_changed {
                    Vec::new()
                } else {
                    std::mem::take(&mut state.changed)
                },
            };
            debug!(
                "repository index: generation {}, {} names changed in {}ms",
                update.generation,
                update.names.len(),
                started.elapsed().as_millis()
            );
            if update.full || !update.names.is_empty() {
                shared.notify(&update);
            }
        }
        if shared.with_data(|d| d.wants_rebuild()) && !shared.stopping() {
            tracker = rebuild(shared, tracker, options);
        }
    }
}

/// Reads everything again into a new index, swaps it in and tells listeners which
/// names differ: reclaims the strings and URLs that updates left dead.
fn rebuild(shared: &Shared, old_tracker: Tracker, options: &RepoOptions) -> Tracker {
    let started = Instant::now();
    let Ok(mut tracker) = Tracker::new(&old_tracker.paths, options) else {
        return old_tracker; // a repository vanished: keep following what we have
    };
    tracker.rebuilds = old_tracker.rebuilds + 1;
    let private = Private(RefCell::new(Data::default()));
    let mut state = PassState::default();
    tracker.pass(&private, true, &mut state);
    let mut fresh = private.0.into_inner();
    fresh.shrink();
    // Compare with what is served now (only this thread writes, so a read lock
    // suffices and lookups go on meanwhile).
    let mut changed = Vec::new();
    {
        let old = shared.read();
        let generation = old.generation + 1;
        let ids: Vec<u32> = fresh.name_ids().collect();
        for id in ids {
            let name = fresh.name(id).to_owned();
            let fp = fresh.fingerprint(id);
            match old.find(&name).filter(|&o| old.fingerprint(o) == fp) {
                Some(o) => fresh.set_gen(id, old.gen_of(o)),
                None => {
                    fresh.set_gen(id, generation);
                    changed.push(name);
                }
            }
        }
        fresh.generation = generation;
    }
    let generation = fresh.generation;
    drop(shared.swap(fresh));
    tracker.publish_stats(shared);
    info!(
        "repository index rebuilt in {}ms to reclaim memory ({} names changed meanwhile)",
        started.elapsed().as_millis(),
        changed.len()
    );
    shared.notify(&Update {
        generation: u64::from(generation),
        full: false,
        names: changed,
    });
    tracker
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gentoo::repo::synth::{self, Spec};
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_rebuild_swaps_in_fresh_data_and_reports_only_what_changed() {
        let root = std::env::temp_dir().join(format!("pc-follow-rebuild-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let spec = Spec {
            entries: 200,
            dists: 400,
            categories: 5,
            seed: 3,
        };
        let summary = synth::generate(&root, &spec).unwrap();
        let options = RepoOptions::default();
        let shared = Shared::new();
        let mut tracker = Tracker::new(std::slice::from_ref(&root), &options).unwrap();
        tracker.first_pass(&shared);
        shared.set_ready();
        let told: Arc<Mutex<Vec<Update>>> = Arc::default();
        let sink = told.clone();
        shared.listeners_push(Box::new(move |u: &Update| {
            sink.lock().unwrap().push(u.clone())
        }));
        let generation = shared.read().generation;
        let old_name = summary.names[0].clone();
        let old_gen = {
            let d = shared.read();
            d.gen_of(d.find(&old_name).unwrap())
        };

        let new = synth::bump(&root, &summary, 3, 9).unwrap();
        let tracker = rebuild(&shared, tracker, &options);
        assert_eq!(tracker.rebuilds, 1);
        let updates = told.lock().unwrap().clone();
        assert_eq!(updates.len(), 1);
        let mut names = updates[0].names.clone();
        names.sort();
        let mut want = new.clone();
        want.sort();
        assert_eq!(names, want, "only the new names are reported");
        let d = shared.read();
        assert_eq!(d.generation, generation + 1);
        assert_eq!(
            d.gen_of(d.find(&old_name).unwrap()),
            old_gen,
            "unchanged keeps its generation"
        );
        assert_eq!(d.gen_of(d.find(&new[0]).unwrap()), generation + 1);
        assert!(!d.wants_rebuild());
        drop(d);
        fs::remove_dir_all(&root).unwrap();
    }
}

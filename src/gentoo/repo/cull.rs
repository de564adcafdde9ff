//! The core of `package-cache cull --unreferenced`: stored distfiles that no
//! Manifest of the given repositories references, and that were not used within a
//! grace period, are listed (dry run) or removed. apt-cacher-ng's expiry does the same
//! for Debian indexes.
//!
//! Distfiles are stored at `CACHE/distfiles/<BLAKE2B 8>/NAME` (see
//! [`crate::gentoo::distfiles`]), and a cache inherited from the Python package-cache may
//! also hold flat `CACHE/distfiles/NAME`: both are considered. Never touched:
//! `layout.conf`, hidden files (downloads in progress and their locks start with
//! `.`), directories deeper than one level, and a file under a directory that is not
//! its name's BLAKE2B 8 directory (not a distfile this cache stored).
//!
//! "Used" is the later of the file's access time (set by the server on every hit,
//! whatever the mount's atime options) and its modification time (when it was
//! stored). The size cap's eviction reads the access time alone
//! ([`crate::cache`]); cull, which removes for good rather than for room, also keeps a
//! file whose access time predates its storing (a file written for longer than the
//! grace period, or one put in place with an old access time).
//!
//! Refusals, for safety: an index that has not finished reading, or whose
//! repositories list no distfile at all (a wrong `--repo` path would otherwise empty
//! the cache), is an error and nothing is removed.

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::index::RepoIndex;
use crate::gentoo::layout;
use crate::proto::date::unix_seconds;

/// What to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnreferencedOptions {
    /// Keep files used within this long (the `--grace DAYS` option, in days × 86,400 s).
    pub grace: Duration,
    /// Only list what would be removed.
    pub dry_run: bool,
}

/// What was done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnreferencedReport {
    /// Files removed (or, in a dry run, that would be).
    pub removed: u64,
    /// Their bytes.
    pub freed: u64,
    /// Files kept because a Manifest references them.
    pub referenced: u64,
    /// Files kept, unreferenced, because they were used within the grace period.
    pub recent: u64,
    /// Bytes of the files kept (both kinds).
    pub kept_bytes: u64,
}

/// Culls the distfiles of the cache at `cache_root` that `index` does not reference,
/// writing one line per file removed (or to be removed) and a summary to `out`.
/// Errors: the cache has no readable `distfiles/` directory, `index` is not ready or
/// empty (`InvalidInput`), or writing to `out` failed. A file that cannot be removed
/// is reported on `out` and kept.
pub fn cull_unreferenced(
    cache_root: &Path,
    index: &RepoIndex,
    options: &UnreferencedOptions,
    out: &mut dyn Write,
) -> io::Result<UnreferencedReport> {
    let stats = index.stats();
    if !stats.ready {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "the repository index has not finished reading",
        ));
    }
    if stats.manifest_names == 0 {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "the repositories list no distfile in any Manifest: wrong --repo?",
        ));
    }
    let root = cache_root.join("distfiles");
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    let now = unix_seconds(SystemTime::now());
    let cutoff = now.saturating_sub(options.grace.as_secs());
    let verb = if options.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut report = UnreferencedReport::default();
    for (name, path) in files {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let size = meta.len();
        if index.in_manifest(&name) != Some(false) {
            report.referenced += 1;
            report.kept_bytes += size;
            continue;
        }
        let used = meta.atime().max(meta.mtime()).max(0) as u64;
        if used >= cutoff {
            report.recent += 1;
            report.kept_bytes += size;
            continue;
        }
        if !options.dry_run
            && let Err(e) = fs::remove_file(&path)
        {
            if e.kind() != ErrorKind::NotFound {
                writeln!(out, "cannot remove {}: {e}", path.display())?;
                report.kept_bytes += size;
            }
            continue;
        }
        report.removed += 1;
        report.freed += size;
        let rel = path.strip_prefix(cache_root).unwrap_or(&path);
        writeln!(
            out,
            "{verb} {} ({}, unreferenced, last used {} days ago)",
            rel.display(),
            crate::size::format(size),
            now.saturating_sub(used) / 86_400
        )?;
    }
    writeln!(
        out,
        "{verb} {} unreferenced files, {} freed; kept {} referenced and {} used within \
         the grace period ({})",
        report.removed,
        crate::size::format(report.freed),
        report.referenced,
        report.recent,
        crate::size::format(report.kept_bytes)
    )?;
    Ok(report)
}

/// The stored distfiles below `root` (`distfiles/`): (name, path).
fn collect(root: &Path, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let gentoo = layout::gentoo();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_file() {
            if name != "layout.conf" {
                out.push((name, entry.path()));
            }
            continue;
        }
        if !kind.is_dir() {
            continue;
        }
        let Ok(inner) = fs::read_dir(entry.path()) else {
            continue;
        };
        for file in inner.flatten() {
            let Ok(file_name) = file.file_name().into_string() else {
                continue;
            };
            if file_name.starts_with('.') || !file.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if gentoo.dirs(&file_name) == format!("{name}/") {
                out.push((file_name, file.path()));
            }
        }
    }
    Ok(())
}

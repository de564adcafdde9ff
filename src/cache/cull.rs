//! The one-shot cull: `package-cache cull --cache DIR [--max-size SIZE]
//! [--older-than DAYS] [--dry-run]`, for cron jobs and caches shared by several
//! processes. The running server keeps its cap with the live [`super::index`].

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::path::Path;
use std::time::Duration;

use super::index::{ago, last_use, now_ms};
use super::store;

/// What [`cull`] should remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CullOptions {
    /// Remove least recently used files until the total is at most this.
    pub max_size: Option<u64>,
    /// Remove files not used for this long.
    pub older_than: Option<Duration>,
    /// Only say what would be removed.
    pub dry_run: bool,
}

/// What [`cull`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CullReport {
    /// Files removed (or that would be).
    pub removed: u64,
    /// Their bytes.
    pub freed: u64,
    /// Files left.
    pub kept: u64,
    /// Their bytes.
    pub kept_bytes: u64,
}

/// Removes files from the cache at `root`: first those unused for longer than
/// `older_than`, then least recently used ones until the total is within `max_size`.
/// Writes one line per file to `out` and returns the totals. Files in use by a running
/// server may be removed: its clients keep reading the open file, and its index
/// notices the file is gone.
pub fn cull(root: &Path, options: &CullOptions, out: &mut dyn Write) -> io::Result<CullReport> {
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(ErrorKind::NotADirectory, "not a directory"));
    }
    let mut files = Vec::new();
    store::files(root, false, &mut |path, meta| {
        files.push((last_use(meta), meta.len(), path.to_path_buf()));
    });
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    let cutoff = options
        .older_than
        .map(|age| now_ms().saturating_sub(age.as_millis() as u64));
    let mut report = CullReport::default();
    let verb = if options.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (used, size, path) in &files {
        let old = cutoff.is_some_and(|c| *used < c);
        let over = options.max_size.is_some_and(|cap| total > cap);
        if !old && !over {
            report.kept += 1;
            report.kept_bytes += size;
            continue;
        }
        if !options.dry_run {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    writeln!(out, "cannot remove {}: {e}", path.display())?;
                    report.kept += 1;
                    report.kept_bytes += size;
                    continue;
                }
            }
        }
        total -= size;
        report.removed += 1;
        report.freed += size;
        let rel = path.strip_prefix(root).unwrap_or(path);
        writeln!(
            out,
            "{verb} {} ({}, last used {} ago)",
            rel.display(),
            crate::size::format(*size),
            ago(*used)
        )?;
    }
    writeln!(
        out,
        "{verb} {} files, {} freed; {} files ({}) remain",
        report.removed,
        crate::size::format(report.freed),
        report.kept,
        crate::size::format(report.kept_bytes)
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::tests::{put, temp};

    #[test]
    fn cull_removes_old_then_least_recently_used() {
        let root = temp("cmd");
        put(&root, "old", 10, 40 * 86400);
        put(&root, "mid", 20, 3 * 86400);
        put(&root, "new", 30, 60);
        fs::write(root.join("d/.x.pc-part"), b"partial").unwrap();
        let mut out = Vec::new();
        let dry = CullOptions {
            older_than: Some(Duration::from_secs(30 * 86400)),
            max_size: Some(30),
            dry_run: true,
        };
        let report = cull(&root, &dry, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!((report.removed, report.freed, report.kept), (2, 30, 1));
        assert!(
            text.contains("would remove d/old (10 B, last used 40d ago)"),
            "{text}"
        );
        assert!(text.contains("would remove d/mid"), "{text}");
        assert!(root.join("d/old").exists(), "dry run removes nothing");
        let real = CullOptions {
            dry_run: false,
            ..dry
        };
        let report = cull(&root, &real, &mut Vec::new()).unwrap();
        assert_eq!((report.removed, report.kept_bytes), (2, 30));
        assert!(!root.join("d/old").exists() && !root.join("d/mid").exists());
        assert!(root.join("d/new").exists() && root.join("d/.x.pc-part").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}

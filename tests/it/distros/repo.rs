//! What every distribution's harness offers the scenarios: a repository on the origin
//! that publishes versions of one package, and a real client with its own state.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::tool::Run;

/// The test package's name in every format.
pub const PACKAGE: &str = "hello-pc";

/// A repository under the origin's document root, built with the distribution's own
/// tools. Version `n` of the package is `1.0-n` in every format.
pub trait Repo {
    /// For messages: "apt", "apt by-hash", "pacman signed", …
    fn name(&self) -> &str;

    /// Where it lives on the origin ("/debian"); clients get `BASE/…` below it.
    fn prefix(&self) -> &str;

    /// Publishes the next version (package built, indexes regenerated, anchor
    /// re-signed) and returns it: what a client that syncs now must see.
    fn publish(&mut self) -> String;

    /// The package file of `version`, as the repository holds it.
    fn package(&self, version: &str) -> Vec<u8>;

    /// The package file's request path on the origin (`/debian/pool/…`).
    fn package_path(&self, version: &str) -> String;

    /// A new client, state and configuration in its own temporary directory, reading
    /// the repository at `base` (the origin's or the cache's URL plus the prefix).
    fn client(&self, base: &str) -> Box<dyn Client>;
}

/// A real package manager, isolated from the machine's own configuration and state.
pub trait Client {
    /// Refreshes the indexes: `apt-get update`, `pacman -Sy`, `dnf makecache
    /// --refresh`. The run's `problems` are the lines that client prints for warnings
    /// and errors (a hash or size mismatch among them).
    fn sync(&mut self) -> Run;

    /// The version the client would install, from its local indexes, or the run
    /// that failed to say.
    fn candidate(&mut self) -> Result<String, Run>;

    /// Downloads the candidate as the client does before installing it, and returns
    /// its bytes (or the run that failed).
    fn download(&mut self) -> Result<Vec<u8>, Run>;
}

/// Modification times for published files, so every publish is observable through
/// `If-Modified-Since` even when several happen within one second: the clock starts a
/// day in the past and moves a minute per publish; [`Clock::stamp`] gives the files a
/// publish wrote (their real mtime is later than any stamp) the next time.
pub struct Clock {
    last: SystemTime,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            last: SystemTime::now() - Duration::from_secs(24 * 3600),
        }
    }

    /// Stamps every regular file below `dir` written since the last stamp.
    pub fn stamp(&mut self, dir: &Path) {
        let at = self.last + Duration::from_secs(60);
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).expect("read repository").flatten() {
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).expect("stat");
                if meta.is_dir() {
                    dirs.push(path);
                } else if meta.is_file() && meta.modified().is_ok_and(|m| m > self.last) {
                    std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(at))
                        .expect("set mtime");
                }
            }
        }
        self.last = at;
    }
}

//! Gentoo distfiles: one store entry per file, whatever form the request takes, and
//! each source asked in its own layout.
//!
//! Requests below `/distfiles/` come flat (`/distfiles/NAME`, from pkgcore and
//! `/etc/portage/mirrors` users) or hashed (`/distfiles/0a/NAME`, from portage reading
//! a GLEP 75 `layout.conf`). Both reach the entry `distfiles/<BLAKE2B 8>/NAME`, which is
//! where Gentoo's mirrors keep it (and where the Python original stored what modern
//! portage asked for). Directories that are not the name's hash directories under a
//! supported algorithm make the request a 404.
//!
//! Each source's own layout is learned from its `distfiles/layout.conf`, kept for a day
//! (five minutes when the source could not be asked), and flat when it has none.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::debug;

use crate::cache::Failure;
use crate::cache::upstream::{Ask, Reply, Upstream};
use crate::gentoo::layout::{self, Layout};

/// Where distfiles live, below the cache root and on mirrors.
pub const PREFIX: &str = "/distfiles/";
/// The layout file's path.
pub const LAYOUT_CONF: &str = "/distfiles/layout.conf";

/// How long a source's layout is trusted.
pub const LAYOUT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long to wait before asking again a source whose layout could not be read.
pub const LAYOUT_RETRY: Duration = Duration::from_secs(300);

/// What a request path is, as far as distfiles go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Not below `/distfiles/` (snapshots, binhosts, releases…): stored as requested.
    Other,
    /// `/distfiles/layout.conf`.
    LayoutConf,
    /// A distfile, with the directories the request put it under.
    Distfile {
        /// The file name.
        name: &'a str,
        /// The directories between `distfiles/` and the name (empty when flat).
        dirs: Vec<&'a str>,
    },
    /// A name under directories that are not its hash directories.
    WrongDirs,
}

/// Classifies a decoded request path.
pub fn classify(path: &str) -> Request<'_> {
    if path == LAYOUT_CONF {
        return Request::LayoutConf;
    }
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Request::Other;
    };
    let mut parts: Vec<&str> = rest.split('/').collect();
    let name = parts.pop().unwrap_or("");
    if name.is_empty() {
        return Request::Other; // a directory: the store refuses it
    }
    if layout::dirs_match(name, &parts) {
        Request::Distfile { name, dirs: parts }
    } else {
        Request::WrongDirs
    }
}

/// The store path (with leading `/`) of distfile `name`: Gentoo's layout.
pub fn store_path(name: &str) -> String {
    format!("{PREFIX}{}", layout::gentoo().path(name))
}

struct Learned {
    layout: Layout,
    until: Instant,
}

/// Each source's layout, learned on first use.
pub struct SourceLayouts {
    upstream: Arc<Upstream>,
    learned: Vec<Mutex<Option<Learned>>>,
}

impl SourceLayouts {
    /// Nothing learned yet.
    pub fn new(upstream: Arc<Upstream>) -> SourceLayouts {
        let learned = (0..upstream.sources().len())
            .map(|_| Mutex::new(None))
            .collect();
        SourceLayouts { upstream, learned }
    }

    /// The path to ask each source `serves` picks for distfile `name` (`None` for the
    /// others, whose layout is never asked for).
    pub fn paths_among(&self, name: &str, serves: impl Fn(usize) -> bool) -> Vec<Option<String>> {
        (0..self.learned.len())
            .map(|i| serves(i).then(|| format!("{PREFIX}{}", self.layout(i).path(name))))
            .collect()
    }

    /// Source `i`'s layout, asking it if not known or too old. Concurrent callers
    /// for the same source wait for one request.
    pub fn layout(&self, i: usize) -> Layout {
        let mut slot = self.learned[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = slot.as_ref().filter(|l| l.until > Instant::now()) {
            return l.layout.clone();
        }
        let (layout, ttl) = self.ask(i);
        *slot = Some(Learned {
            layout: layout.clone(),
            until: Instant::now() + ttl,
        });
        layout
    }

    fn ask(&self, i: usize) -> (Layout, Duration) {
        let source = self.upstream.sources()[i].url().to_owned();
        let ask = Ask {
            paths: vec![],
            ..Ask::default()
        };
        match self.upstream.fetch_from(i, LAYOUT_CONF, &ask) {
            Ok(Reply::Fresh(mut f)) => {
                let mut text = String::new();
                let read = (&mut f.body).take(64 * 1024).read_to_string(&mut text);
                match read
                    .map_err(|e| e.to_string())
                    .and_then(|_| layout::parse_structure(&text).map_err(|e| e.to_string()))
                {
                    Ok(structure) => {
                        let layout = layout::best(&structure);
                        debug!("{source} lays distfiles out as {layout}");
                        (layout, LAYOUT_TTL)
                    }
                    Err(e) => {
                        debug!("{source}/distfiles/layout.conf unreadable ({e}); assuming flat");
                        (Layout::Flat, LAYOUT_TTL)
                    }
                }
            }
            Err(a) if matches!(a.failure, Failure::NotFound(_)) => {
                debug!("{source} has no layout.conf: flat");
                (Layout::Flat, LAYOUT_TTL)
            }
            other => {
                debug!(
                    "cannot read {source}/distfiles/layout.conf ({other:?}); assuming flat for now"
                );
                (Layout::Flat, LAYOUT_RETRY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("/distfiles/layout.conf"), Request::LayoutConf);
        assert_eq!(classify("/snapshots/gentoo-latest.tar.xz"), Request::Other);
        assert_eq!(classify("/distfiles/"), Request::Other);
        let name = "MooseX-OneArgNew-0.007.tar.gz";
        assert_eq!(
            classify(&format!("/distfiles/{name}")),
            Request::Distfile { name, dirs: vec![] }
        );
        assert_eq!(
            classify(&format!("/distfiles/0a/{name}")),
            Request::Distfile {
                name,
                dirs: vec!["0a"]
            }
        );
        // SHA512 4:8
        assert_eq!(
            classify(&format!("/distfiles/e/d5/{name}")),
            Request::Distfile {
                name,
                dirs: vec!["e", "d5"]
            }
        );
        assert_eq!(
            classify(&format!("/distfiles/0b/{name}")),
            Request::WrongDirs
        );
        assert_eq!(
            classify(&format!("/distfiles/sub/{name}")),
            Request::WrongDirs
        );
        assert_eq!(store_path(name), format!("/distfiles/0a/{name}"));
    }
}

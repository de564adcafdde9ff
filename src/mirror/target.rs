//! Where a request goes: its cache entry ([`target`]) and what it wants of the file
//! ([`want`]). Pure: no I/O.

use crate::cache::store::Key;
use crate::cache::{Error, Want};
use crate::gentoo::distfiles;
use crate::http::Request;
use crate::http::range::{self, ByteRange};

/// A request path resolved to a store entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The entry.
    pub key: Key,
    /// Other places an older cache may hold the same file (served as hits).
    pub alternates: Vec<Key>,
    /// For a distfile, its name: each source is asked for it in its own layout
    /// (learned only when a source must be asked). Otherwise every source is asked for
    /// the requested path.
    pub distfile: Option<String>,
    /// The request is for `/distfiles/layout.conf`.
    pub layout_conf: bool,
}

/// Maps a decoded request path to its entry. Refuses (as [`Error::InvalidPath`])
/// directories, temporary file names, and distfiles under directories that are not
/// their GLEP 75 hash directories.
pub fn target(path: &str) -> Result<Target, Error> {
    match distfiles::classify(path) {
        distfiles::Request::WrongDirs => Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "not the distfile's hash directories",
        }),
        distfiles::Request::Distfile { name, .. } => {
            let canonical = distfiles::store_path(name);
            let mut alternates = Vec::new();
            for alt in [format!("{}{name}", distfiles::PREFIX), path.to_owned()] {
                let alt = Key::new(&alt)?;
                if alt.as_str() != &canonical[1..] && !alternates.contains(&alt) {
                    alternates.push(alt);
                }
            }
            Ok(Target {
                key: Key::new(&canonical)?,
                alternates,
                distfile: Some(name.to_owned()),
                layout_conf: false,
            })
        }
        kind => Ok(Target {
            key: Key::new(path)?,
            alternates: Vec::new(),
            distfile: None,
            layout_conf: kind == distfiles::Request::LayoutConf,
        }),
    }
}

/// Maps a decoded request path that a `--source /PREFIX=URL` serves to its entry: the
/// path as requested (Gentoo's distfile mapping is for the plain sources only).
/// Refuses directories and temporary file names.
pub fn prefixed_target(path: &str) -> Result<Target, Error> {
    Ok(Target {
        key: Key::new(path)?,
        alternates: Vec::new(),
        distfile: None,
        layout_conf: false,
    })
}

/// What `req` wants of the file: headers only, the first byte its range needs,
/// whether the answer must know the length before it starts (a range or a
/// conditional request is evaluated against the length), and whether only a stored
/// copy will do (`Cache-Control: only-if-cached`).
pub fn want(req: &Request) -> Want {
    let length = ["Range", "If-Modified-Since", "If-None-Match"]
        .iter()
        .any(|h| req.header(h).is_some());
    Want {
        head: req.is_head(),
        first_byte: first_byte(req),
        length,
        only_if_cached: req.headers().has_token("Cache-Control", "only-if-cached"),
    }
}

/// The first byte a request needs before its answer can start: the start of its one
/// range (`bytes=N-`, `bytes=N-M`), else 0. With `If-Range` the answer may be the whole
/// file, so 0.
fn first_byte(req: &Request) -> u64 {
    if req.header("If-Range").is_some() {
        return 0;
    }
    match req.header("Range").and_then(range::parse).as_deref() {
        Some([ByteRange::From(n) | ByteRange::FromTo(n, _)]) => *n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    const MOOSE: &str = "MooseX-OneArgNew-0.007.tar.gz";

    fn keys(t: &Target) -> (String, Vec<&str>) {
        (
            t.key.as_str().to_owned(),
            t.alternates.iter().map(Key::as_str).collect(),
        )
    }

    #[test]
    fn every_form_of_a_distfile_reaches_one_entry() {
        let flat = target(&format!("/distfiles/{MOOSE}")).unwrap();
        assert_eq!(
            keys(&flat),
            (
                format!("distfiles/0a/{MOOSE}"),
                vec![format!("distfiles/{MOOSE}").as_str()]
            ),
            "a flat request records its flat alternate once"
        );
        assert_eq!(flat.distfile.as_deref(), Some(MOOSE));
        let hashed = target(&format!("/distfiles/0a/{MOOSE}")).unwrap();
        assert_eq!(hashed.key, flat.key);
        assert_eq!(hashed.alternates, flat.alternates);
        // SHA512 4:8, as an older mirror lays it out: its own path is an alternate.
        let sha = target(&format!("/distfiles/e/d5/{MOOSE}")).unwrap();
        assert_eq!(sha.key, flat.key);
        assert_eq!(sha.alternates.len(), 2);
        assert_eq!(
            sha.alternates[1].as_str(),
            format!("distfiles/e/d5/{MOOSE}")
        );
    }

    #[test]
    fn other_paths_are_stored_as_requested() {
        let t = target("/snapshots/gentoo-latest.tar.xz").unwrap();
        assert_eq!(keys(&t), ("snapshots/gentoo-latest.tar.xz".into(), vec![]));
        assert_eq!((t.distfile, t.layout_conf), (None, false));
        let l = target("/distfiles/layout.conf").unwrap();
        assert!(l.layout_conf && l.distfile.is_none());
    }

    #[test]
    fn prefixed_paths_are_stored_as_requested() {
        let t = prefixed_target("/gentoo/distfiles/0b/foo.tar.gz").unwrap();
        assert_eq!(keys(&t), ("gentoo/distfiles/0b/foo.tar.gz".into(), vec![]));
        assert_eq!((t.distfile, t.layout_conf), (None, false));
        assert!(prefixed_target("/debian/").is_err());
        assert!(prefixed_target("/debian/.a.pc-part").is_err());
    }

    #[test]
    fn refused_paths_are_404() {
        for bad in [
            format!("/distfiles/0b/{MOOSE}"),
            format!("/distfiles/sub/{MOOSE}"),
            "/distfiles/".into(),
            "/d/.a.pc-part".into(),
        ] {
            let e = target(&bad).unwrap_err();
            assert!(matches!(e, Error::InvalidPath { .. }), "{bad}");
        }
    }

    #[test]
    fn want_follows_the_request() {
        assert_eq!(want(&Request::get("/a")), Want::default());
        let ranged = Request::get("/a").with_header("Range", "bytes=100-");
        assert_eq!(
            want(&ranged),
            Want {
                head: false,
                first_byte: 100,
                length: true,
                only_if_cached: false,
            }
        );
        let if_range = ranged.with_header("If-Range", "\"x\"");
        assert_eq!(want(&if_range).first_byte, 0);
        let head = Request::new(Method::Head, "/a").unwrap();
        assert!(want(&head).head);
        let stored_only =
            Request::get("/a").with_header("Cache-Control", "max-age=0, Only-If-Cached");
        assert!(want(&stored_only).only_if_cached);
        let conditional =
            Request::get("/a").with_header("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(want(&conditional).length);
    }
}

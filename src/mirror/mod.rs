//! The mirror handler: maps a request to its cache entry ([`target`]), asks the cache
//! once ([`Cache::get`]) and turns the answer into a response ([`respond`]). It decides
//! nothing about freshness or downloads; the cache does.
//!
//! Every file answer carries `X-Cache` with the [`CacheStatus`](crate::cache::CacheStatus) the cache gave (see
//! [`CacheStatus`](crate::cache::CacheStatus) for the values), and the same value travels to the metrics as a
//! response extension.
//!
//! Each request goes to the sources [`route()`] picks: those of the longest
//! `--source /PREFIX=URL` prefix it is below (asked without the prefix), else the
//! plain sources; a path no source serves is 404. For the plain sources, requests
//! below `/distfiles/` are mapped to one entry per file whatever their form (see
//! [`crate::gentoo::distfiles`]) and `/distfiles/layout.conf` always answers 200.
//!
//! Caches chain (a site cache's source is a regional cache), so every response names
//! this instance in `Via` (RFC 9110 §7.6.3), the request's own `Via` entries are
//! passed on to the sources (before ours, which the cache adds), and a request that
//! already names this instance went round a loop: it is answered `508 Loop Detected`
//! at once, before the cache is asked, so no download ever waits on itself.
//!
//! A [`Knowledge`] the application installs ([`Mirror::with_knowledge`]; the Gentoo
//! repository and binhost indexes, [`crate::gentoo::known`]) tells the cache what a
//! file must be and where else to get it ([`Known`](crate::cache::verify::Known)). A response whose bytes come from
//! a download this process runs names the URL in `X-Cache-Source` (a source's, or
//! the file's origin when no source had it).

use std::sync::Arc;

use log::debug;

mod errors;
mod layout_conf;
mod respond;
pub mod route;
mod target;

use errors::error_response;
pub use errors::status_of;
use layout_conf::layout_conf;
pub use respond::respond;
pub use route::{Route, route};
pub use target::{Target, prefixed_target, target, want};

use crate::cache::verify::Knowledge;
use crate::cache::{Cache, Error, Query, Want};
use crate::gentoo::distfiles::SourceLayouts;
use crate::http::{Handler, Method, Request, Response};
use crate::proto::via;

/// The mirror handler.
pub struct Mirror {
    cache: Arc<Cache>,
    layouts: SourceLayouts,
    /// Each source's path prefix, by source index (`None`: a plain source).
    prefixes: Vec<Option<String>>,
    knowledge: Option<Arc<dyn Knowledge>>,
}

impl Mirror {
    /// A mirror over `cache`.
    pub fn new(cache: Arc<Cache>) -> Mirror {
        let layouts = SourceLayouts::new(cache.upstream().clone());
        let prefixes = cache
            .upstream()
            .sources()
            .iter()
            .map(|s| s.prefix().map(str::to_owned))
            .collect();
        Mirror {
            cache,
            layouts,
            prefixes,
            knowledge: None,
        }
    }

    /// The same mirror, telling the cache what `knowledge` knows of each file.
    pub fn with_knowledge(mut self, knowledge: Arc<dyn Knowledge>) -> Mirror {
        self.knowledge = Some(knowledge);
        self
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The path to ask each source for: the route's, each plain source in its own
    /// GLEP 75 layout for a distfile.
    fn source_paths(&self, target: &Target, route: &Route) -> Vec<Option<String>> {
        match &target.distfile {
            Some(name) => self
                .layouts
                .paths_among(name, |i| route.paths.get(i).is_some_and(Option::is_some)),
            None => route.paths.clone(),
        }
    }
}

impl Handler for Mirror {
    fn handle(&self, req: &mut Request) -> Response {
        let upstream = self.cache.upstream();
        let (Some(name), Some(entry)) = (upstream.name(), upstream.via_entry()) else {
            return self.answer(req);
        };
        let resp = if via::names(req.headers().get_all("Via"), name) {
            debug!("{}: the request already passed through {name}", req.path());
            Response::text(
                508,
                format!("508 Loop Detected: this request already passed through {name}\n"),
            )
        } else {
            self.answer(req)
        };
        resp.with_header("Via", entry)
    }
}

impl Mirror {
    /// The answer to a request that is not a loop.
    fn answer(&self, req: &mut Request) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        let path = req.path_info().to_owned();
        let Some(route) = route(&path, &self.prefixes) else {
            return error_response(&Error::InvalidPath {
                path,
                reason: "no --source serves this path",
            });
        };
        let target = if route.is_plain() {
            target(&path)
        } else {
            prefixed_target(&path)
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => return error_response(&e),
        };
        let paths = || self.source_paths(&target, &route);
        let mut want = want(req);
        if target.layout_conf {
            // Read whole, to check it, whatever the client asked.
            want = Want::default();
        }
        let received = via::normalise(req.headers().get_all("Via"));
        let known = match &self.knowledge {
            Some(k) if !target.layout_conf => k.known(&target.key, target.distfile.as_deref()),
            _ => None,
        };
        let query = Query {
            key: target.key.clone(),
            alternates: &target.alternates,
            want,
            paths: &paths,
            query: req.query(),
            label: &path,
            via: received.as_deref(),
            known: known.as_ref(),
        };
        let answer = self.cache.get(&query);
        if target.layout_conf {
            return layout_conf(req, &target.key, answer);
        }
        respond(req, &target.key, answer)
    }
}

//! Ad-hoc origins: the hosts of the absolute URLs a request may name for when no
//! source has a file ([`super::Ask::fallback`]).
//!
//! Each distinct `scheme://host[:port]` becomes a [`Source`] the first time one of its
//! URLs is asked, numbered after the configured sources (so a download, a broken body
//! or a wrong copy is recorded against it exactly as against a source), with the same
//! health: a host that cannot be reached is tried last and skipped for a while, as a
//! source is. Requests go through the agent for the proxy the proxy rules give the
//! origin's URL (see `agents`): a source's when one goes through the same proxy and is
//! verified against the trust store too, else one built when first needed.
//!
//! The URL's path and query are sent as the application wrote them (they are already
//! encoded in a repository's `SRC_URI`); a fragment is dropped.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use log::debug;

use super::{ProxyRules, Source, lock};
use crate::cache::prefix::check_source;

/// The most origins remembered; URLs of further hosts are not asked.
const MAX_ORIGINS: usize = 4096;

/// The origins asked so far.
pub(super) struct Origins {
    /// Which proxy each origin is reached through.
    proxy: ProxyRules,
    /// The index of the first origin: the number of configured sources.
    first: usize,
    state: Mutex<State>,
    /// Downloads an origin provided.
    pub(super) fetches: AtomicU64,
}

#[derive(Default)]
struct State {
    by_base: HashMap<String, usize>,
    list: Vec<Arc<Source>>,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins")
            .field("count", &lock(&self.state).list.len())
            .finish_non_exhaustive()
    }
}

impl Origins {
    /// No origin yet; the first will be numbered `first`.
    pub(super) fn new(proxy: &ProxyRules, first: usize) -> Origins {
        Origins {
            proxy: proxy.clone(),
            first,
            state: Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The origin numbered `i`.
    pub(super) fn get(&self, i: usize) -> Option<Arc<Source>> {
        let at = i.checked_sub(self.first)?;
        lock(&self.state).list.get(at).cloned()
    }

    /// Every origin, in the order they were first asked.
    pub(super) fn list(&self) -> Vec<Arc<Source>> {
        lock(&self.state).list.clone()
    }

    /// The origin of `url` (registered if new) and the path and query to ask it for;
    /// `None` for a URL that is not `http(s)://host/…`, or when too many origins are
    /// known already.
    pub(super) fn resolve(&self, url: &str) -> Option<(usize, String)> {
        let (base, rest) = split(url)?;
        let mut s = lock(&self.state);
        if let Some(&i) = s.by_base.get(&base) {
            return Some((i, rest));
        }
        if s.list.len() >= MAX_ORIGINS {
            debug!("too many origins; not asking {url}");
            return None;
        }
        let i = self.first + s.list.len();
        let proxy = self.proxy.proxy_for(&base).map(str::to_owned);
        // A distfile's own host serves every path it is asked for, and is an origin,
        // never another package-cache. Its agent is found when it is first asked.
        let origin = Source::new(base.clone(), None, proxy, None, super::PEER_ORIGIN);
        s.list.push(Arc::new(origin));
        s.by_base.insert(base, i);
        Some((i, rest))
    }
}

/// `https://Host:443/a/b?c#d` → (`https://host:443`, `/a/b?c`); `None` unless the URL
/// is a usable `http(s)://host/…` URL.
fn split(url: &str) -> Option<(String, String)> {
    let scheme = if url.starts_with("http://") {
        "http://"
    } else if url.starts_with("https://") {
        "https://"
    } else {
        return None;
    };
    let after = &url[scheme.len()..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let host = &after[..end];
    let base = format!("{scheme}{}", host.to_ascii_lowercase());
    check_source(&base).ok()?;
    let mut rest = after[end..].split('#').next().unwrap_or("").to_owned();
    if !rest.starts_with('/') {
        rest.insert(0, '/');
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((base, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_path() {
        let s = |u: &str| split(u).map(|(b, r)| format!("{b} {r}"));
        assert_eq!(
            s("https://GitHub.com/k/afio/archive/v2.5.2.tar.gz").as_deref(),
            Some("https://github.com /k/afio/archive/v2.5.2.tar.gz")
        );
        assert_eq!(
            s("http://127.0.0.1:8080/dl.php?f=a%20b.tgz#x").as_deref(),
            Some("http://127.0.0.1:8080 /dl.php?f=a%20b.tgz")
        );
        assert_eq!(s("https://h?x").as_deref(), Some("https://h /?x"));
        assert_eq!(s("ftp://h/a"), None);
        assert_eq!(s("https:///a"), None);
        assert_eq!(s("mirror://gnu/a"), None);
    }
}

//! The sources: a ureq agent and ordered failover.
//!
//! Sources are asked in the order configured. 404 and 410 mean "not here, ask the next
//! one"; so do 5xx, refused connections, DNS and TLS failures and timeouts. A source
//! that failed to answer at all (not one that merely lacked a file) is tried last for
//! a while (5 s, doubling up to 5 min), so a dead first mirror does not cost a connect
//! timeout on every miss.
//!
//! The agent never decompresses (ureq's `gzip` feature is off and we send
//! `Accept-Encoding: identity`) and has explicit connect and read timeouts. Each
//! source goes through the proxy [`ProxyRules`] give it (see [`super::proxy`]); ureq
//! reads no proxy settings of its own. The agents run on our own connector chain
//! (see `transport`): `http://` sources go to a proxy as plain requests, and https
//! sources are verified against the [`TrustStore`].

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use log::debug;

use super::proxy::ProxyRules;
use super::store::Meta;
use super::tls::TrustStore;
use super::{Attempt, Error, Failure, tls, transport};
use crate::proto::{date, path};

/// How to reach the sources.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Base URLs, tried in order (`https://distfiles.gentoo.org`).
    pub sources: Vec<String>,
    /// Longest wait for a connection (DNS, TCP and TLS together).
    pub connect_timeout: Duration,
    /// Longest wait for response headers, and for each read of the body.
    pub read_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Which proxy each source is reached through.
    pub proxy: ProxyRules,
    /// The certificates https sources are verified against (the binary reads
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`: [`TrustStore::from_env`]).
    pub trust: TrustStore,
}

/// What to ask the sources for.
#[derive(Clone, Debug, Default)]
pub struct Ask {
    /// Send `HEAD` instead of `GET`.
    pub head: bool,
    /// The path to ask each source for (decoded, starting with `/`), by source index;
    /// `None` skips that source.
    pub paths: Vec<Option<String>>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<SystemTime>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `Range: bytes=N-`.
    pub from: Option<u64>,
}

impl Ask {
    /// A `GET` of the same `path` from every one of `n` sources.
    pub fn get(path: &str, n: usize) -> Ask {
        Ask {
            paths: vec![Some(path.to_owned()); n],
            ..Ask::default()
        }
    }
}

/// A successful answer: headers received, body not yet read.
pub struct Fetched {
    /// Which source answered.
    pub source: usize,
    /// The URL that answered.
    pub url: String,
    /// 200, or 206 for a range request.
    pub status: u16,
    /// Length, Last-Modified and ETag as announced. For a 206, `len` is the length of
    /// the whole file (from `Content-Range`).
    pub meta: Meta,
    /// For a 206, the offset of the first byte sent.
    pub range_start: Option<u64>,
    /// The body has neither a length nor chunked framing: it ends where the connection
    /// does, so a source that stops early cannot be told from one that finished.
    pub close_delimited: bool,
    /// The body.
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("url", &self.url)
            .field("status", &self.status)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// What a conditional or plain request came back with.
#[derive(Debug)]
pub enum Reply {
    /// New content.
    Fresh(Fetched),
    /// 304: the copy we have is current.
    NotModified {
        /// Which source said so.
        source: usize,
    },
}

/// One configured source and what we know of its health.
#[derive(Debug)]
pub struct Source {
    url: String,
    /// The proxy it is reached through.
    proxy: Option<String>,
    /// Which of the upstream's agents talks to it (one per proxy).
    agent: usize,
    /// Requests sent to it.
    pub requests: AtomicU64,
    /// Requests that failed (any reason but not-found).
    pub failures: AtomicU64,
    /// Body bytes received from it.
    pub bytes: AtomicU64,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    last_error: Option<(String, SystemTime)>,
    last_latency: Option<Duration>,
    down_until: Option<Instant>,
    strikes: u32,
}

/// A snapshot of a source's health, for the status page.
#[derive(Clone, Debug)]
pub struct SourceHealth {
    /// The base URL.
    pub url: String,
    /// The last failure and when it happened.
    pub last_error: Option<(String, SystemTime)>,
    /// Time to response headers of the last successful request.
    pub last_latency: Option<Duration>,
    /// Whether it is currently tried last because it could not be reached.
    pub down: bool,
}

impl Source {
    /// The base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The proxy requests to it go through, if any.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// A snapshot of its health.
    pub fn health(&self) -> SourceHealth {
        let h = lock(&self.health);
        SourceHealth {
            url: self.url.clone(),
            last_error: h.last_error.clone(),
            last_latency: h.last_latency,
            down: h.down_until.is_some_and(|t| t > Instant::now()),
        }
    }

    fn is_down(&self) -> bool {
        lock(&self.health)
            .down_until
            .is_some_and(|t| t > Instant::now())
    }

    fn succeeded(&self, latency: Duration) {
        let mut h = lock(&self.health);
        h.last_latency = Some(latency);
        h.down_until = None;
        h.strikes = 0;
    }

    fn failed(&self, failure: &Failure) {
        if matches!(failure, Failure::NotFound(_)) {
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut h = lock(&self.health);
        h.last_error = Some((failure.to_string(), SystemTime::now()));
        if failure.is_transport() {
            let secs = (5u64 << h.strikes.min(6)).min(300);
            h.down_until = Some(Instant::now() + Duration::from_secs(secs));
            h.strikes += 1;
        }
    }
}

/// The sources and the agents that talk to them (one per distinct proxy).
#[derive(Debug)]
pub struct Upstream {
    agents: Vec<ureq::Agent>,
    sources: Vec<Arc<Source>>,
}

impl Upstream {
    /// Builds the agent. Fails on a source that is not an http(s) URL or an unusable
    /// trust store.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, Error> {
        let mut sources = Vec::new();
        let mut proxies: Vec<Option<String>> = Vec::new();
        for url in &config.sources {
            check_source(url)?;
            let proxy = config.proxy.proxy_for(url).map(str::to_owned);
            let agent = match proxies.iter().position(|p| *p == proxy) {
                Some(i) => i,
                None => {
                    proxies.push(proxy.clone());
                    proxies.len() - 1
                }
            };
            sources.push(Arc::new(Source {
                url: url.trim_end_matches('/').to_owned(),
                proxy,
                agent,
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                health: Mutex::new(Health::default()),
            }));
        }
        // The trust store is read only when a source needs it; a redirect from an
        // http source to https is verified against the Mozilla roots, as ureq does.
        let tls = if sources.iter().any(|s| s.url.starts_with("https://")) {
            tls::client_config(&config.trust)?
        } else {
            tls::mozilla()
        };
        let mut agents = Vec::new();
        for proxy in &proxies {
            let proxy = match proxy {
                Some(p) => Some(http_proxy(p)?),
                None => None,
            };
            let agent_config = |proxy: Option<ureq::Proxy>| {
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_redirects(5)
                    .user_agent(config.user_agent.as_str())
                    .accept_encoding("identity")
                    .proxy(proxy)
                    .timeout_connect(Some(config.connect_timeout))
                    .timeout_recv_response(Some(config.read_timeout))
                    .timeout_per_read(Some(config.read_timeout))
                    .max_idle_connections_per_host(8)
                    // Requests are a few hundred bytes; bodies stream through the tee's
                    // buffer.
                    .output_buffer_size(16 * 1024)
                    .input_buffer_size(64 * 1024)
                    .build()
            };
            agents.push(transport::agent(
                agent_config(proxy),
                agent_config(None),
                tls.clone(),
            ));
        }
        Ok(Upstream { agents, sources })
    }

    /// The sources, in configured order.
    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    /// Asks the sources in turn (reachable ones first) until one answers with content
    /// (or 304 for a conditional request). `path` is only for error messages.
    pub fn fetch(&self, path: &str, ask: &Ask) -> Result<Reply, Error> {
        let mut attempts = Vec::new();
        let (up, down): (Vec<usize>, Vec<usize>) =
            (0..self.sources.len()).partition(|&i| !self.sources[i].is_down());
        for i in up.into_iter().chain(down) {
            let Some(Some(source_path)) = ask.paths.get(i) else {
                continue;
            };
            match self.fetch_from(i, source_path, ask) {
                Ok(reply) => return Ok(reply),
                Err(attempt) => attempts.push(attempt),
            }
        }
        Err(Error::Upstream {
            path: path.to_owned(),
            attempts,
        })
    }

    /// Asks source `i` for `source_path`.
    pub fn fetch_from(&self, i: usize, source_path: &str, ask: &Ask) -> Result<Reply, Attempt> {
        let source = &self.sources[i];
        let url = format!("{}{}", source.url, path::encode(source_path));
        let started = Instant::now();
        source.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.send(&self.agents[source.agent], &url, ask);
        let fail = |failure: Failure| {
            debug!("{url}: {failure}");
            source.failed(&failure);
            Attempt {
                url: url.clone(),
                failure,
            }
        };
        let response = result.map_err(|e| fail(Failure::from_ureq(e)))?;
        let status = response.status().as_u16();
        debug!(
            "{} {url}: {status} in {}ms",
            if ask.head { "HEAD" } else { "GET" },
            started.elapsed().as_millis()
        );
        match status {
            200 | 206 => {}
            304 if ask.if_modified_since.is_some() || ask.if_none_match.is_some() => {
                source.succeeded(started.elapsed());
                return Ok(Reply::NotModified { source: i });
            }
            404 | 410 => return Err(fail(Failure::NotFound(status))),
            _ => return Err(fail(Failure::Status(status))),
        }
        let headers = response.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let content_length = text("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let chunked =
            text("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let (len, range_start) = if status == 206 {
            match text("content-range").and_then(parse_content_range) {
                Some((start, total)) if Some(start) == ask.from => (total, Some(start)),
                _ => return Err(fail(Failure::Protocol("unusable Content-Range".into()))),
            }
        } else {
            (content_length, None)
        };
        let meta = Meta {
            len,
            modified: text("last-modified").and_then(date::parse),
            etag: text("etag").map(str::to_owned),
        };
        source.succeeded(started.elapsed());
        let body = response.into_body().into_reader();
        Ok(Reply::Fresh(Fetched {
            source: i,
            url,
            status,
            meta,
            range_start,
            close_delimited: content_length.is_none() && !chunked,
            body: Box::new(Counted {
                inner: body,
                source: source.clone(),
            }),
        }))
    }

    fn send(
        &self,
        agent: &ureq::Agent,
        url: &str,
        ask: &Ask,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = if ask.head {
            agent.head(url)
        } else {
            agent.get(url)
        };
        if let Some(t) = ask.if_modified_since {
            req = req.header("If-Modified-Since", date::format(t));
        }
        if let Some(tag) = &ask.if_none_match {
            req = req.header("If-None-Match", tag.as_str());
        }
        if let Some(from) = ask.from {
            req = req.header("Range", format!("bytes={from}-"));
        }
        req.call()
    }
}

/// A proxy ureq can be given: `http://` or `https://` (an HTTP proxy, reached in
/// clear text or over TLS). SOCKS needs a ureq feature this build leaves out.
fn http_proxy(url: &str) -> Result<ureq::Proxy, Error> {
    let bad = |reason: String| Error::BadProxy {
        proxy: url.to_owned(),
        reason,
    };
    let proxy = ureq::Proxy::new(url).map_err(|e| bad(e.to_string().to_lowercase()))?;
    match proxy.protocol() {
        ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https => Ok(proxy),
        _ => Err(bad(
            "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)".into(),
        )),
    }
}

/// The body reader, counting bytes for the source's statistics.
struct Counted<R> {
    inner: R,
    source: Arc<Source>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.source.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Refuses source URLs that are not `http://host…` or `https://host…`.
pub fn check_source(url: &str) -> Result<(), Error> {
    let bad = |reason| Error::BadSource {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "a source is a base URL, without query, fragment or spaces",
        ));
    }
    Ok(())
}

/// `bytes START-END/TOTAL` → `(START, Some(TOTAL))` (`*` total → `None`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    (end >= start && total.is_none_or(|t| end < t)).then_some((start, total))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls() {
        for ok in [
            "http://a",
            "https://distfiles.gentoo.org",
            "http://[::1]:8080/mirror/",
        ] {
            assert!(check_source(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://a",
            "distfiles.gentoo.org",
            "http://",
            "http:///x",
            "http://a/?q",
            "http://a b",
        ] {
            let e = check_source(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{bad}: ")), "{e}");
        }
    }

    #[test]
    fn only_http_proxies_are_accepted() {
        assert!(http_proxy("http://p:3128").is_ok());
        assert!(http_proxy("https://user:pw@p").is_ok());
        let e = http_proxy("socks5://p:1080").unwrap_err().to_string();
        assert!(
            e.starts_with("socks5://p:1080: SOCKS proxies are not supported"),
            "{e}"
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, Some(10))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn unreachable_sources_cool_down() {
        let s = Source {
            url: "http://a".into(),
            proxy: None,
            agent: 0,
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
        };
        s.failed(&Failure::NotFound(404));
        assert!(!s.is_down());
        assert_eq!(s.failures.load(Ordering::Relaxed), 0);
        s.failed(&Failure::Timeout);
        assert!(s.is_down());
        assert_eq!(
            s.health().last_error.map(|e| e.0).as_deref(),
            Some("timed out")
        );
        s.succeeded(Duration::from_millis(3));
        assert!(!s.is_down());
    }
}

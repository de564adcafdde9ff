//! Plain `http://` requests through an HTTP proxy, the way curl sends them: to the
//! proxy, in absolute form (`GET http://host/path HTTP/1.1`), with no `CONNECT`.
//!
//! ureq 3 tunnels every request through an HTTP proxy with `CONNECT host:port`, also for
//! `http://` URLs (`ConnectProxyConnector` in ureq's `unversioned/transport/connect.rs`),
//! and ureq-proto writes every request target other than CONNECT's in origin form
//! (`AmendedRequest::prelude` uses the URI's `path_and_query`). A Squid with its default
//! rules refuses `CONNECT` to any port but 443, so http sources failed through it.
//!
//! [`ForwardProxy`] is a connector placed before ureq's own in the chain (see
//! [`transport`](crate::cache::transport)). For an `http://` URL whose agent has an HTTP(S) proxy it opens
//! the connection to the proxy itself and wraps it in [`AbsoluteForm`], which rewrites
//! the request line of each request ureq writes (`GET /path` → `GET http://host/path`)
//! and adds `Proxy-Authorization` when the proxy URL has credentials. Everything else
//! (`https://` URLs, agents without a proxy) goes on to ureq's connectors, so https
//! still reaches the proxy with `CONNECT`.

use std::fmt;
use std::sync::Arc;

use ureq::Error;
use ureq::http::uri::{Scheme, Uri};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport,
};
use ureq::{Proxy, ProxyProtocol};

/// The longest request head we rewrite; ureq's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// Connects `http://` URLs to the agent's HTTP proxy for absolute-form requests.
pub(super) struct ForwardProxy {
    /// The agent's configuration without its proxy: the connection to the proxy itself
    /// is made with it, so the chain does not send that one to the proxy again.
    direct: Arc<ureq::config::Config>,
}

impl ForwardProxy {
    /// `direct` is the agent's configuration without the proxy.
    pub(super) fn new(direct: ureq::config::Config) -> ForwardProxy {
        ForwardProxy {
            direct: Arc::new(direct),
        }
    }
}

impl fmt::Debug for ForwardProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardProxy").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for ForwardProxy {
    type Out = Either<In, AbsoluteForm>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let Some(proxy) = details.config.proxy() else {
            return Ok(None);
        };
        // Our proxies are made by `ureq::Proxy::new`, which reads no `NO_PROXY` (sources
        // that go direct get an agent without a proxy: see `super::proxy`).
        let http_proxy = matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https);
        if !http_proxy || details.uri.scheme() != Some(&Scheme::HTTP) {
            return Ok(None);
        }
        let origin = origin(details.uri)
            .ok_or_else(|| Error::BadUri(format!("{}: no host", details.uri)))?;
        // The proxy resolves the source's name; we resolve only the proxy's.
        let addrs = details
            .resolver
            .resolve(proxy.uri(), &self.direct, details.timeout)?;
        let to_proxy = ConnectionDetails {
            uri: proxy.uri(),
            addrs,
            config: &self.direct,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        // The whole chain again, for the proxy's own URL: TCP, and TLS for an https
        // proxy.
        let inner = (details.run_connector)(&to_proxy)?;
        Ok(Some(Either::B(AbsoluteForm {
            inner,
            head: Rewriter::new(origin, authorization(proxy)),
            scratch: Vec::new(),
        })))
    }
}

/// `http://host[:port]` of a URL, without user information.
fn origin(uri: &Uri) -> Option<String> {
    let authority = uri.authority()?.as_str();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(format!("http://{host}"))
}

/// `Basic …` for a proxy URL with credentials.
fn authorization(proxy: &Proxy) -> Option<String> {
    if proxy.username().is_none() && proxy.password().is_none() {
        return None;
    }
    let pair = format!(
        "{}:{}",
        proxy.username().unwrap_or_default(),
        proxy.password().unwrap_or_default()
    );
    Some(format!("Basic {}", base64(pair.as_bytes())))
}

/// A connection to an HTTP proxy that carries requests in absolute form.
///
/// ureq writes each request into the proxy connection's own output buffer; on the way
/// out the request head is rewritten and sent in pieces that fit that buffer. Input
/// passes through untouched: the proxy answers as the source would.
pub(super) struct AbsoluteForm {
    inner: Box<dyn Transport>,
    head: Rewriter,
    scratch: Vec<u8>,
}

impl fmt::Debug for AbsoluteForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbsoluteForm")
            .field("origin", &self.head.origin)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Transport for AbsoluteForm {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let written = self.inner.buffers().output()[..amount].to_vec();
        self.scratch.clear();
        self.head
            .feed(&written, &mut self.scratch)
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let mut rest = &self.scratch[..];
        while !rest.is_empty() {
            let output = self.inner.buffers().output();
            let n = rest.len().min(output.len());
            output[..n].copy_from_slice(&rest[..n]);
            self.inner.transmit_output(n, timeout)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        // Whatever carries us to the proxy, the source is spoken to in clear text.
        false
    }
}

/// Rewrites the heads of the requests written to a proxy connection, one after another.
#[derive(Debug)]
struct Rewriter {
    /// `http://host[:port]`, prefixed to origin-form targets.
    origin: String,
    /// `Proxy-Authorization` value, if the proxy wants one.
    auth: Option<String>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Collecting a request head (up to its empty line).
    Head(Vec<u8>),
    /// Passing this many more body bytes through.
    Body(u64),
}

impl Rewriter {
    fn new(origin: String, auth: Option<String>) -> Rewriter {
        Rewriter {
            origin,
            auth,
            state: State::Head(Vec::new()),
        }
    }

    /// Appends to `out` what goes to the proxy for the bytes `input` that ureq wrote.
    /// A head is held back until it is complete (ureq writes a whole head before it
    /// waits for an answer).
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() {
            match &mut self.state {
                State::Body(left) => {
                    let n = input
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(head) => {
                    let take = head_end(head, input).unwrap_or(input.len());
                    head.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if !head.ends_with(b"\r\n\r\n") {
                        if head.len() > MAX_HEAD {
                            return Err("request head too long for the proxy".into());
                        }
                        continue;
                    }
                    let head = std::mem::take(head);
                    let body = self.rewrite(&head, out)?;
                    if body > 0 {
                        self.state = State::Body(body);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the rewritten `head` to `out`; returns the length of the body that follows.
    fn rewrite(&self, head: &[u8], out: &mut Vec<u8>) -> Result<u64, String> {
        let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
        let (line, headers) = text
            .split_once("\r\n")
            .ok_or("request head without a line")?;
        let mut parts = line.splitn(3, ' ');
        let (Some(method), Some(target), Some(version)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("unexpected request line {line:?}"));
        };
        if target.starts_with('/') {
            out.extend_from_slice(
                format!("{method} {}{target} {version}\r\n", self.origin).as_bytes(),
            );
        } else {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let mut body = 0;
        let mut has_auth = false;
        for header in headers.split("\r\n").filter(|h| !h.is_empty()) {
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                body = value.trim().parse().map_err(|_| "bad Content-Length")?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Only GET and HEAD go to the sources; a chunked body's end cannot be
                // found without decoding it.
                return Err("chunked request bodies are not sent through a proxy".into());
            } else if name.eq_ignore_ascii_case("proxy-authorization") {
                has_auth = true;
            }
        }
        if let (Some(auth), false) = (&self.auth, has_auth) {
            out.extend_from_slice(format!("Proxy-Authorization: {auth}\r\n").as_bytes());
        }
        out.extend_from_slice(headers.as_bytes());
        Ok(body)
    }
}

/// How many bytes of `input` complete a head that starts with `seen`, if it ends there.
fn head_end(seen: &[u8], input: &[u8]) -> Option<usize> {
    let tail = &seen[seen.len().saturating_sub(3)..];
    let joined = [tail, input].concat();
    joined
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4 - tail.len())
}

/// Standard base64 with padding (RFC 4648), for `Proxy-Authorization: Basic`.
fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(r: &mut Rewriter, pieces: &[&str]) -> String {
        let mut out = Vec::new();
        for p in pieces {
            r.feed(p.as_bytes(), &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn origin_form_becomes_absolute_form() {
        let mut r = Rewriter::new("http://mirror.lan:8080".into(), None);
        let head = "GET /distfiles/a%2Bb.tar.gz HTTP/1.1\r\nhost: mirror.lan:8080\r\n\r\n";
        assert_eq!(
            rewrite(&mut r, &[head]),
            "GET http://mirror.lan:8080/distfiles/a%2Bb.tar.gz HTTP/1.1\r\nhost: mirror.lan:8080\r\n\r\n"
        );
        // The next request on the same connection is rewritten too.
        assert_eq!(
            rewrite(&mut r, &["HEAD /x?y=1 HTTP/1.1\r\n\r\n"]),
            "HEAD http://mirror.lan:8080/x?y=1 HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn a_head_split_across_writes_is_held_until_complete() {
        let mut r = Rewriter::new("http://a".into(), None);
        let mut out = Vec::new();
        for piece in ["GET /p HT", "TP/1.1\r\nA: b\r", "\n", "\r", "\n"] {
            assert!(out.is_empty(), "sent before the head was complete");
            r.feed(piece.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(out, b"GET http://a/p HTTP/1.1\r\nA: b\r\n\r\n");
    }

    #[test]
    fn bodies_pass_through_and_the_next_head_is_found_after_them() {
        let mut r = Rewriter::new("http://a".into(), None);
        // The body looks like a head; it is passed through as it is.
        let got = rewrite(
            &mut r,
            &[
                "PUT /f HTTP/1.1\r\nContent-Length: 9\r\n\r\nGET /",
                "\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
            ],
        );
        assert_eq!(
            got,
            "PUT http://a/f HTTP/1.1\r\nContent-Length: 9\r\n\r\nGET /\r\n\r\n\
             GET http://a/y HTTP/1.1\r\n\r\n"
        );
        let mut out = Vec::new();
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(r.feed(chunked.as_bytes(), &mut out).is_err());
    }

    #[test]
    fn credentials_go_in_proxy_authorization() {
        let proxy = Proxy::new("http://Aladdin:open%20sesame@p:3128").unwrap();
        let auth = authorization(&proxy);
        assert_eq!(auth.as_deref(), Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert_eq!(authorization(&Proxy::new("http://p:3128").unwrap()), None);
        let mut r = Rewriter::new("http://a".into(), auth);
        assert_eq!(
            rewrite(&mut r, &["GET / HTTP/1.1\r\nHost: a\r\n\r\n"]),
            "GET http://a/ HTTP/1.1\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nHost: a\r\n\r\n"
        );
    }

    #[test]
    fn origins_drop_user_information() {
        let uri: Uri = "http://u:p@[::1]:81/x".parse().unwrap();
        assert_eq!(origin(&uri).as_deref(), Some("http://[::1]:81"));
        let uri: Uri = "http://mirror/x".parse().unwrap();
        assert_eq!(origin(&uri).as_deref(), Some("http://mirror"));
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }
}

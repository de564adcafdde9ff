//! Sources behind an HTTP proxy that behaves like Squid with its default rules: plain
//! requests in absolute form (`GET http://host/path`) are forwarded, `CONNECT` is
//! allowed only to the TLS ports and refused (403) to any other port, port 80 included.
//! `http://` sources must go through it as curl does (absolute form); `https://` ones
//! with `CONNECT`.

use std::time::Duration;

use crate::support::proxy::SquidLike;
use crate::support::tls::{TlsServer, openssl_cert};
use crate::support::{FakeMirror, TempDir, TestCache, bytes};

#[test]
fn http_sources_go_through_the_proxy_as_plain_requests() {
    let mirror = FakeMirror::start();
    mirror.put("/pkgs/a.tbz2", bytes(5000, 1));
    mirror.put("/pkgs/b.tbz2", bytes(70_000, 2));
    // Port 80: a CONNECT there is what Squid refuses by default. The name does not
    // resolve; only the proxy knows where it is.
    let proxy = SquidLike::start(&[("mirror.invalid", mirror.addr())], &[443]);
    let source = "http://mirror.invalid".to_owned();

    let cache = TestCache::start_with(std::slice::from_ref(&source), |c| {
        c.upstream_proxy = Some(proxy.url());
        c.upstream_env = Some(Vec::new());
    });
    let reply = cache.get("/pkgs/a.tbz2");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body, bytes(5000, 1));
    let reply = cache.get("/pkgs/b.tbz2");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body, bytes(70_000, 2));
    assert_eq!(
        proxy.lines(),
        [
            "GET http://mirror.invalid/pkgs/a.tbz2 HTTP/1.1",
            "GET http://mirror.invalid/pkgs/b.tbz2 HTTP/1.1",
        ]
    );
    // The mirror got them from the proxy, in origin form.
    assert_eq!(mirror.gets("/pkgs/a.tbz2"), 1);
    assert_eq!(mirror.gets("/pkgs/b.tbz2"), 1);
    drop(cache);

    // The same with `http_proxy` in the environment (given in-process, as the binary
    // would read it), and `no_proxy` sending the source direct (which cannot work
    // here: the proxy sees nothing more).
    mirror.put("/pkgs/c.tbz2", bytes(3000, 3));
    let env = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |c: &mut package_cache::config::Config| c.upstream_env = Some(vars)
    };
    let cache = TestCache::start_with(
        std::slice::from_ref(&source),
        env(&[("http_proxy", &proxy.url())]),
    );
    assert_eq!(cache.get("/pkgs/c.tbz2").body, bytes(3000, 3));
    assert_eq!(
        proxy.lines().last().map(String::as_str),
        Some("GET http://mirror.invalid/pkgs/c.tbz2 HTTP/1.1")
    );
    drop(cache);
    let cache = TestCache::start_with(
        std::slice::from_ref(&source),
        env(&[("http_proxy", &proxy.url()), ("no_proxy", ".invalid")]),
    );
    mirror.put("/pkgs/d.tbz2", bytes(3000, 4));
    assert!(matches!(cache.get("/pkgs/d.tbz2").status, 502 | 504));
    assert_eq!(proxy.lines().len(), 3);
}

#[test]
fn proxy_credentials_go_with_every_plain_request() {
    let mirror = FakeMirror::start();
    mirror.put("/pkgs/a.tbz2", bytes(100, 1));
    let proxy = SquidLike::start(&[("mirror.invalid:8080", mirror.addr())], &[443]);
    let with_user = format!("http://user:open%20sesame@{}", proxy.addr);
    let cache = TestCache::start_with(&["http://mirror.invalid:8080".into()], |c| {
        c.upstream_proxy = Some(with_user);
        c.upstream_env = Some(Vec::new());
    });
    assert_eq!(cache.get("/pkgs/a.tbz2").body, bytes(100, 1));
    let asked = proxy.asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].line,
        "GET http://mirror.invalid:8080/pkgs/a.tbz2 HTTP/1.1"
    );
    // base64("user:open sesame")
    assert_eq!(
        asked[0].auth.as_deref(),
        Some("Basic dXNlcjpvcGVuIHNlc2FtZQ==")
    );
    // The source never sees the proxy's credentials.
    let seen = mirror.seen_for("/pkgs/a.tbz2");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("proxy-authorization"), None);
}

#[test]
fn https_sources_still_use_connect() {
    let dir = TempDir::new("proxy-tls");
    let Some(cert) = openssl_cert(dir.path(), "mirror", "127.0.0.1", "IP:127.0.0.1") else {
        return;
    };
    let server = TlsServer::start(&cert, &[("/pkgs/s.tbz2", bytes(20_000, 5))]);
    let authority = server.addr().to_string();
    let proxy = SquidLike::start(&[(&authority, server.addr())], &[server.addr().port()]);
    let trusted = cert.cert.to_str().unwrap().to_owned();
    let cache = TestCache::start_with(&[server.url()], |c| {
        c.upstream_env = Some(vec![
            ("https_proxy".into(), proxy.url()),
            ("SSL_CERT_FILE".into(), trusted),
        ]);
    });
    let reply = cache.get("/pkgs/s.tbz2");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body, bytes(20_000, 5));
    assert_eq!(proxy.lines(), [format!("CONNECT {authority} HTTP/1.1")]);
    assert_eq!(server.served(), ["/pkgs/s.tbz2"]);
}

#[test]
fn src_uri_origins_go_through_the_same_proxy_and_trust_store() {
    use crate::support::gentoo::TestRepo;
    let dir = TempDir::new("proxy-origin");
    let mirror = FakeMirror::start();
    let origin = FakeMirror::start();
    let plain = bytes(30_000, 7);
    origin.put("/pub/f-1.tar.gz", plain.clone());
    // An https origin too, verified against the trust store, when openssl is there.
    let cert = openssl_cert(dir.path(), "origin", "127.0.0.1", "IP:127.0.0.1");
    let secure = bytes(20_000, 8);
    let server = cert
        .as_ref()
        .map(|c| TlsServer::start(c, &[("/pkgs/s.tbz2", secure.clone())]));
    let authority = server.as_ref().map(|s| s.addr().to_string());
    let mut hosts = vec![
        ("mirror.invalid", mirror.addr()),
        ("origin.invalid", origin.addr()),
    ];
    let mut tls_ports = Vec::new();
    if let (Some(s), Some(a)) = (&server, &authority) {
        hosts.push((a.as_str(), s.addr()));
        tls_ports.push(s.addr().port());
    }
    let proxy = SquidLike::start(&hosts, &tls_ports);
    let repo = TestRepo::new();
    let mut src_uri = "http://origin.invalid/pub/f-1.tar.gz".to_owned();
    let mut dists: Vec<(&str, &[u8])> = vec![("f-1.tar.gz", &plain)];
    if let Some(s) = &server {
        src_uri += &format!(" {}/pkgs/s.tbz2 -> s-1.tar.gz", s.url());
        dists.push(("s-1.tar.gz", &secure));
    }
    repo.ebuild("app-misc/f-1", &src_uri, "");
    repo.manifest("app-misc/f", &dists);
    let mut env = vec![
        ("http_proxy".to_owned(), proxy.url()),
        ("https_proxy".to_owned(), proxy.url()),
    ];
    if let Some(c) = &cert {
        env.push(("SSL_CERT_FILE".into(), c.cert.to_str().unwrap().to_owned()));
    }
    let cache = TestCache::start_with(&["http://mirror.invalid".into()], |c| {
        c.upstream_env = Some(env);
        c.repos = vec![repo.path().to_path_buf()];
    });
    assert!(crate::support::wait_until(Duration::from_secs(10), || {
        cache
            .get("/-/status.json")
            .text()
            .contains("\"repo\":{\"ready\":true")
    }));

    let reply = cache.get("/distfiles/f-1.tar.gz");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.complete && reply.body == plain);
    let lines = proxy.lines();
    assert!(
        lines.contains(&"GET http://mirror.invalid/distfiles/f-1.tar.gz HTTP/1.1".to_owned())
            && lines.contains(&"GET http://origin.invalid/pub/f-1.tar.gz HTTP/1.1".to_owned()),
        "{lines:?}"
    );
    assert_eq!(origin.gets("/pub/f-1.tar.gz"), 1);
    if let (Some(server), Some(authority)) = (&server, &authority) {
        let reply = cache.get("/distfiles/s-1.tar.gz");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(reply.complete && reply.body == secure);
        assert!(
            proxy
                .lines()
                .contains(&format!("CONNECT {authority} HTTP/1.1")),
            "{:?}",
            proxy.lines()
        );
        assert_eq!(server.served(), ["/pkgs/s.tbz2"]);
    }
}

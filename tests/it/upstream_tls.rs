//! https sources with the self-signed certificates private mirrors are made with
//! (`openssl req -x509 …`, which marks them `CA:TRUE`): trusted through the trust store
//! they work, as with curl; untrusted or for another name they are still refused.

use std::path::Path;

use crate::support::tls::{Cert, TlsServer, bundle, openssl_cert};
use crate::support::{TempDir, TestCache, bytes};

/// Three certificates made by openssl in `dir`: the mirror's, a stranger's for the same
/// address, and one for another name.
struct Certs {
    mirror: Cert,
    stranger: Cert,
    other_name: Cert,
}

fn certs(dir: &Path) -> Option<Certs> {
    Some(Certs {
        mirror: openssl_cert(dir, "mirror", "127.0.0.1", "IP:127.0.0.1")?,
        stranger: openssl_cert(dir, "stranger", "127.0.0.1", "IP:127.0.0.1")?,
        other_name: openssl_cert(dir, "other", "mirror.example.org", "DNS:mirror.example.org")?,
    })
}

/// A package-cache in this process whose only source is `server`, trusting the PEM
/// bundle `trusted` (given as `SSL_CERT_FILE`, without touching the process environment).
fn cache_for(server: &TlsServer, trusted: &Path) -> TestCache {
    let file = trusted.to_str().expect("utf-8 path").to_owned();
    TestCache::start_with(&[server.url()], |c| {
        c.upstream_env = Some(vec![("SSL_CERT_FILE".into(), file)]);
    })
}

#[test]
fn a_trusted_self_signed_certificate_works_and_others_are_refused() {
    let dir = TempDir::new("tls");
    let Some(certs) = certs(dir.path()) else {
        return;
    };
    let body = bytes(70_000, 9);
    let files = [("/packages/private-1.0.gpkg.tar", body.clone())];
    // The trust store holds the mirror's certificate and the one for another name, not
    // the stranger's.
    let store = bundle(
        &dir.path().join("store.pem"),
        &[&certs.mirror.cert, &certs.other_name.cert],
    );

    // The mirror's own certificate, marked CA:TRUE, trusted: fetched and verified.
    let mirror = TlsServer::start(&certs.mirror, &files);
    let cache = cache_for(&mirror, &store);
    let reply = cache.get("/packages/private-1.0.gpkg.tar");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body, body);
    assert_eq!(mirror.served(), ["/packages/private-1.0.gpkg.tar"]);

    // A self-signed certificate for the right address that nobody trusts.
    let stranger = TlsServer::start(&certs.stranger, &files);
    let cache = cache_for(&stranger, &store);
    let reply = cache.get("/packages/private-1.0.gpkg.tar");
    assert_eq!(reply.status, 502);
    let text = reply.text();
    assert!(
        text.contains("tls: certificate not trusted (UnknownIssuer)"),
        "{text}"
    );
    assert!(
        stranger.served().is_empty(),
        "no request after a refused handshake"
    );

    // A trusted certificate, but for another name than the source's.
    let other = TlsServer::start(&certs.other_name, &files);
    let cache = cache_for(&other, &store);
    let reply = cache.get("/packages/private-1.0.gpkg.tar");
    assert_eq!(reply.status, 502);
    let text = reply.text();
    assert!(
        text.contains("tls: invalid peer certificate: certificate not valid for name"),
        "{text}"
    );
    assert!(other.served().is_empty());
}

#[test]
fn the_trust_store_can_be_a_directory() {
    let dir = TempDir::new("tls-dir");
    let Some(mirror_cert) = openssl_cert(dir.path(), "mirror", "127.0.0.1", "IP:127.0.0.1") else {
        return;
    };
    let certs_dir = dir.path().join("certs");
    std::fs::create_dir(&certs_dir).unwrap();
    std::fs::copy(&mirror_cert.cert, certs_dir.join("mirror.pem")).unwrap();
    let mirror = TlsServer::start(&mirror_cert, &[("/a", b"from a private mirror".to_vec())]);
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        let dir = certs_dir.to_str().unwrap().to_owned();
        c.upstream_env = Some(vec![("SSL_CERT_DIR".into(), dir)]);
    });
    let reply = cache.get("/a");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body, b"from a private mirror");
}

//! The trust store for https sources: the system's CA bundle, as OpenSSL finds it.
//!
//! `SSL_CERT_FILE` names a PEM bundle and `SSL_CERT_DIR` a directory of PEM files;
//! without them the usual distribution bundle paths are tried. If none exists, ureq's
//! bundled Mozilla roots are used and the log says so.

use std::path::{Path, PathBuf};

use log::{debug, warn};
use ureq::tls::{Certificate, PemItem, RootCerts};

use super::Error;

/// Where distributions keep their CA bundle (Gentoo and Debian first).
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The roots to verify https sources against.
pub(super) fn system_roots() -> Result<RootCerts, Error> {
    let mut certs = Vec::new();
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        let file = PathBuf::from(file);
        load(&file, &mut certs)
            .map_err(|e| Error::Config(format!("SSL_CERT_FILE {}: {e}", file.display())))?;
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        let dir = PathBuf::from(dir);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::Config(format!("SSL_CERT_DIR {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            // Hash links (`abcd1234.0`) point at the same files; duplicates are harmless.
            if let Err(e) = load(&entry.path(), &mut certs) {
                debug!("skipping {}: {e}", entry.path().display());
            }
        }
    }
    if certs.is_empty()
        && let Some(bundle) = BUNDLES.iter().map(Path::new).find(|p| p.is_file())
    {
        load(bundle, &mut certs)
            .map_err(|e| Error::Config(format!("{}: {e}", bundle.display())))?;
        debug!(
            "loaded {} trusted certificates from {}",
            certs.len(),
            bundle.display()
        );
    }
    if certs.is_empty() {
        warn!("no system CA bundle found (set SSL_CERT_FILE); using built-in Mozilla roots");
        return Ok(RootCerts::WebPki);
    }
    Ok(RootCerts::new_with_certs(&certs))
}

fn load(path: &Path, certs: &mut Vec<Certificate<'static>>) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let before = certs.len();
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(PemItem::Certificate(c)) = item {
            certs.push(c);
        }
    }
    if certs.len() == before {
        return Err("no certificates in it".into());
    }
    Ok(())
}

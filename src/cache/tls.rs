//! The trust store for https sources, and the TLS client configuration built on it.
//!
//! `SSL_CERT_FILE` names a PEM bundle and `SSL_CERT_DIR` a directory of PEM files, as
//! OpenSSL (and so curl, wget and Python) reads them; without them the usual
//! distribution bundle paths are tried. If none exists, the bundled Mozilla roots are
//! used and the log says so. The binary reads the two variables from its environment
//! ([`TrustStore::from_env`]); tests and embedding programs name the files in a
//! [`TrustStore`] instead, since the environment is shared by every thread.
//!
//! Certificates are verified by rustls and webpki, with one addition (see the
//! `pinned` module): a self-signed certificate that OpenSSL marked `CA:TRUE` is
//! accepted as a server's own certificate when it is itself in the trust store, as
//! curl accepts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::{debug, warn};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use ureq::tls::PemItem;

use super::Error;
use super::pinned::Pinned;

/// Where distributions keep their CA bundle (Gentoo and Debian first).
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The certificates https sources are verified against: OpenSSL's `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`. With neither, the distribution's CA bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustStore {
    /// A PEM file of trusted certificates (`SSL_CERT_FILE`).
    pub cert_file: Option<PathBuf>,
    /// A directory of PEM files of trusted certificates (`SSL_CERT_DIR`).
    pub cert_dir: Option<PathBuf>,
}

impl TrustStore {
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` from the process environment.
    pub fn from_env() -> TrustStore {
        let path = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        TrustStore {
            cert_file: path("SSL_CERT_FILE"),
            cert_dir: path("SSL_CERT_DIR"),
        }
    }

    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` as `var` (a lookup by name) gives them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> TrustStore {
        let path = |name| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        TrustStore {
            cert_file: path("SSL_CERT_FILE"),
            cert_dir: path("SSL_CERT_DIR"),
        }
    }

    /// Reads the certificates. `None` when there are none at all (no variable set and
    /// no distribution bundle).
    fn load(&self) -> Result<Option<Vec<CertificateDer<'static>>>, Error> {
        let mut certs = Vec::new();
        if let Some(file) = &self.cert_file {
            load(file, &mut certs)
                .map_err(|e| Error::Config(format!("SSL_CERT_FILE {}: {e}", file.display())))?;
        }
        if let Some(dir) = &self.cert_dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| Error::Config(format!("SSL_CERT_DIR {}: {e}", dir.display())))?;
            for entry in entries.flatten() {
                // Hash links (`abcd1234.0`) point at the same files; duplicates are
                // harmless.
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
        Ok((!certs.is_empty()).then_some(certs))
    }
}

/// The TLS configuration for https sources, verifying against `trust`.
pub(super) fn client_config(trust: &TrustStore) -> Result<Arc<ClientConfig>, Error> {
    match trust.load()? {
        Some(certs) => build(certs),
        None => {
            warn!("no system CA bundle found (set SSL_CERT_FILE); using built-in Mozilla roots");
            Ok(mozilla())
        }
    }
}

/// The TLS configuration with the bundled Mozilla roots only (what ureq uses by default).
pub(super) fn mozilla() -> Arc<ClientConfig> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    config(roots, Vec::new()).expect("the Mozilla roots make a valid trust store")
}

fn build(certs: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    debug!("trust store: {added} certificates, {ignored} unusable ones ignored");
    config(roots, certs)
}

/// The configuration verifying against `roots`, and pinning those of `certs` that
/// webpki refuses as a server's own certificate only because they are marked CA.
fn config(
    roots: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("trust store: {e}")))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(webpki, certs)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn load(path: &Path, certs: &mut Vec<CertificateDer<'static>>) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let before = certs.len();
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(PemItem::Certificate(c)) = item {
            certs.push(CertificateDer::from(c.der().to_vec()));
        }
    }
    if certs.len() == before {
        return Err("no certificates in it".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_name_the_files() {
        let t = TrustStore::from_vars(|n| match n {
            "SSL_CERT_FILE" => Some("/a.pem".into()),
            "SSL_CERT_DIR" => Some(String::new()),
            _ => None,
        });
        assert_eq!(t.cert_file.as_deref(), Some(Path::new("/a.pem")));
        assert_eq!(t.cert_dir, None);
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let t = TrustStore {
            cert_file: Some("/nonexistent/ca.pem".into()),
            cert_dir: None,
        };
        let e = client_config(&t).unwrap_err().to_string();
        assert!(e.starts_with("SSL_CERT_FILE /nonexistent/ca.pem: "), "{e}");
    }
}

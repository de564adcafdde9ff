//! The trust store for https sources: the system's CA bundle, as OpenSSL finds it.
//!
//! `SSL_CERT_FILE` names a PEM bundle and `SSL_CERT_DIR` a directory of PEM files;
//! without them the usual distribution bundle paths are tried. If none exists, ureq's
//! bundled Mozilla roots are used and the log says so. The binary reads the two
//! variables from its environment ([`TrustStore::from_env`]); tests and embedding
//! programs name the files in a [`TrustStore`] instead, since the environment is shared
//! by every thread.

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

    /// The roots to verify https sources against.
    pub(super) fn roots(&self) -> Result<RootCerts, Error> {
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
        if certs.is_empty() {
            warn!("no system CA bundle found (set SSL_CERT_FILE); using built-in Mozilla roots");
            return Ok(RootCerts::WebPki);
        }
        Ok(RootCerts::new_with_certs(&certs))
    }
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
        let e = t.roots().map(|_| ()).unwrap_err().to_string();
        assert!(e.starts_with("SSL_CERT_FILE /nonexistent/ca.pem: "), "{e}");
    }
}

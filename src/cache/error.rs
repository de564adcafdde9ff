//! What can go wrong in the cache, described rather than judged: which source
//! answered what, which file could not be written. Turning an error into an HTTP
//! status is the application's business (see `mirror::status_of`).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// How one source failed to provide a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 404 or 410: the source does not have it.
    NotFound(u16),
    /// Any other unusable status (5xx, 403, an unfollowed redirect...).
    Status(u16),
    /// Connecting, waiting for the response or reading the body took too long.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused or broke.
    Connect(String),
    /// The TLS handshake or certificate check failed.
    Tls(String),
    /// The response broke the protocol (bad headers, body shorter than announced...).
    Protocol(String),
    /// A revalidation got a copy older than the one we hold (a mirror lagging behind
    /// another): it never replaces ours.
    Older,
    /// Not asked: the source is cooling down after failing to answer (the failure
    /// given), and another source already answered.
    CoolingDown(String),
    /// It announced another length than the file must have (a Manifest's size, say):
    /// skipped before any byte.
    WrongSize {
        /// The length it announced.
        announced: u64,
        /// The length the file must have.
        expected: u64,
    },
    /// Not asked: it sent a copy of this file that failed its check recently.
    BadCopy,
}

impl Failure {
    /// Whether the source is unreachable rather than merely without the file: such a
    /// source is tried last for a while.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Failure::Timeout | Failure::Dns | Failure::Connect(_) | Failure::Tls(_)
        )
    }

    /// Classifies an error from ureq (also when it arrives wrapped in an `io::Error`
    /// from a body read). A status is never one: the agents are built with
    /// `http_status_as_error(false)`.
    pub fn from_ureq(e: ureq::Error) -> Failure {
        match e {
            ureq::Error::Timeout(_) => Failure::Timeout,
            ureq::Error::HostNotFound => Failure::Dns,
            ureq::Error::Io(e) => Failure::from_io(&e),
            ureq::Error::Tls(s) => Failure::Tls(s.to_owned()),
            ureq::Error::Rustls(e) => Failure::Tls(tls_words(&e)),
            ureq::Error::Pem(e) => Failure::Tls(e.to_string()),
            ureq::Error::ConnectionFailed => Failure::Connect("connection failed".into()),
            ureq::Error::TooManyRedirects => Failure::Protocol("too many redirects".into()),
            other => Failure::Protocol(other.to_string()),
        }
    }

    /// Classifies an I/O error from a socket.
    fn from_io(e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout,
            io::ErrorKind::ConnectionRefused => Failure::Connect("connection refused".into()),
            io::ErrorKind::ConnectionReset => Failure::Connect("connection reset".into()),
            io::ErrorKind::UnexpectedEof => Failure::Protocol("body ended early".into()),
            _ => Failure::Connect(e.to_string()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound(code) | Failure::Status(code) => {
                write!(
                    f,
                    "{code} {}",
                    crate::proto::reason::reason_phrase(*code).to_lowercase()
                )
            }
            Failure::Timeout => f.write_str("timed out"),
            Failure::Dns => f.write_str("host not found"),
            Failure::Connect(e) => f.write_str(e),
            Failure::Tls(e) => write!(f, "tls: {e}"),
            Failure::Older => f.write_str("has an older copy than ours"),
            Failure::CoolingDown(why) => write!(f, "not asked, cooling down after: {why}"),
            Failure::WrongSize {
                announced,
                expected,
            } => write!(f, "announced {announced} bytes, expected {expected}"),
            Failure::BadCopy => {
                f.write_str("not asked: it sent a wrong copy of this file recently")
            }
            Failure::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

/// A TLS failure in plain words, keeping rustls's own term in brackets:
/// `certificate not trusted (UnknownIssuer)`. A wrong name keeps rustls's text, which
/// names the host asked for and those the certificate is for (`invalid peer
/// certificate: certificate not valid for name "a"; certificate is only valid for …`),
/// as does any error not listed here.
fn tls_words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = e else {
        return e.to_string();
    };
    #[allow(deprecated)] // `UnsupportedSignatureAlgorithm`: rustls may still give it.
    let (words, term) = match cert {
        C::UnknownIssuer => ("certificate not trusted", "UnknownIssuer"),
        C::BadSignature => ("certificate not trusted", "BadSignature"),
        C::NotValidForName => ("certificate is for another host name", "NotValidForName"),
        C::Expired | C::ExpiredContext { .. } => ("certificate expired", "Expired"),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            ("certificate not valid yet", "NotValidYet")
        }
        C::Revoked => ("certificate revoked", "Revoked"),
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => (
            "certificate signature algorithm not supported",
            "UnsupportedSignatureAlgorithm",
        ),
        // webpki's refusal of a CA certificate as a server's own, where the pinned
        // verifier did not accept it (see `pinned`).
        C::Other(_) if super::pinned::ca_used_as_end_entity(e) => {
            ("certificate not trusted", "CaUsedAsEndEntity")
        }
        _ => return e.to_string(),
    };
    format!("{words} ({term})")
}

/// One source's answer, for error messages and the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The URL asked.
    pub url: String,
    /// What went wrong.
    pub failure: Failure,
}

/// Everything that can go wrong in the cache.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The path names something the cache never stores or serves: a directory, a
    /// temporary or lock file.
    InvalidPath {
        /// The path as requested.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No source could provide `path`; `attempts` says what each one answered.
    Upstream {
        /// The path as requested.
        path: String,
        /// One entry per source tried, in order.
        attempts: Vec<Attempt>,
    },
    /// The download broke after its first bytes went out.
    Interrupted {
        /// The path as requested.
        path: String,
        /// What broke.
        reason: String,
    },
    /// A file or directory of the cache could not be used.
    Io {
        /// The path on disk.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A source is not a usable base URL (`http://host/…` or `https://host/…`).
    BadSource {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A proxy URL cannot be used.
    BadProxy {
        /// The proxy URL as given (by a flag or the environment).
        proxy: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The configuration cannot work otherwise (an unreadable certificate file).
    Config(String),
    /// The client asked for a stored copy only (`only-if-cached`) and there is no
    /// fresh one.
    NotStored {
        /// The path as requested.
        path: String,
    },
}

impl Error {
    /// Whether every source that was asked said it does not have the file (404 or
    /// 410); sources skipped while cooling down do not count. False when no source was
    /// asked.
    pub fn nowhere(&self) -> bool {
        match self {
            Error::Upstream { attempts, .. } => {
                let asked = || {
                    attempts
                        .iter()
                        .filter(|a| !matches!(a.failure, Failure::CoolingDown(_)))
                };
                asked().next().is_some()
                    && asked().all(|a| matches!(a.failure, Failure::NotFound(_)))
            }
            _ => false,
        }
    }

    /// Whether a source refused the request method (405 or 501), as some refuse `HEAD`.
    pub fn method_refused(&self) -> bool {
        match self {
            Error::Upstream { attempts, .. } => attempts
                .iter()
                .any(|a| matches!(a.failure, Failure::Status(405 | 501))),
            _ => false,
        }
    }

    /// Whether every source that failed (not counting those without the file or
    /// skipped) answered `508 Loop Detected`: the request went round a chain of caches
    /// back to one it had passed through.
    pub fn looped(&self) -> bool {
        match self {
            Error::Upstream { attempts, .. } => {
                let failed = || {
                    attempts.iter().filter(|a| {
                        !matches!(a.failure, Failure::NotFound(_) | Failure::CoolingDown(_))
                    })
                };
                failed().next().is_some() && failed().all(|a| a.failure == Failure::Status(508))
            }
            _ => false,
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPath { path, reason } => write!(f, "{path}: {reason}"),
            Error::Upstream { path, attempts } if attempts.is_empty() => {
                write!(f, "{path}: no source to ask")
            }
            Error::Upstream { path, attempts } => {
                write!(f, "no source could provide {path}: ")?;
                for (i, a) in attempts.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{} {}", a.url, a.failure)?;
                }
                Ok(())
            }
            Error::Interrupted { path, reason } => write!(f, "download of {path} broke: {reason}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::BadSource { url, reason } => write!(f, "{url}: {reason}"),
            Error::BadProxy { proxy, reason } => write!(f, "{proxy}: {reason}"),
            Error::Config(msg) => f.write_str(msg),
            Error::NotStored { path } => {
                write!(f, "{path} is not stored here (only-if-cached)")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An upstream error in which the one source answered each of `failures` in turn.
    pub(crate) fn upstream(failures: &[Failure]) -> Error {
        Error::Upstream {
            path: "/distfiles/x".into(),
            attempts: failures
                .iter()
                .map(|f| Attempt {
                    url: "http://a/distfiles/x".into(),
                    failure: f.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn messages_name_every_source() {
        let e = upstream(&[Failure::NotFound(404), Failure::Timeout]);
        assert_eq!(
            e.to_string(),
            "no source could provide /distfiles/x: http://a/distfiles/x 404 not found; http://a/distfiles/x timed out"
        );
    }

    #[test]
    fn nowhere_means_every_source_asked_said_not_found() {
        use Failure::*;
        assert!(upstream(&[NotFound(404), NotFound(410)]).nowhere());
        assert!(upstream(&[NotFound(404), CoolingDown("timed out".into())]).nowhere());
        assert!(!upstream(&[NotFound(404), Timeout]).nowhere());
        assert!(!upstream(&[CoolingDown("timed out".into())]).nowhere());
        assert!(!upstream(&[]).nowhere());
        assert!(upstream(&[Status(405)]).method_refused());
        assert!(!upstream(&[Status(500)]).method_refused());
        assert!(upstream(&[Status(508), NotFound(404)]).looped());
        assert!(!upstream(&[Status(508), Timeout]).looped());
        assert!(!upstream(&[NotFound(404)]).looped());
    }

    #[test]
    fn tls_failures_in_plain_words() {
        use rustls::CertificateError as C;
        use std::time::Duration;
        let cert = rustls::Error::InvalidCertificate;
        assert_eq!(
            tls_words(&cert(C::UnknownIssuer)),
            "certificate not trusted (UnknownIssuer)"
        );
        assert_eq!(
            Failure::from_ureq(ureq::Error::Rustls(cert(C::UnknownIssuer))).to_string(),
            "tls: certificate not trusted (UnknownIssuer)"
        );
        let time = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(2));
        let not_after = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1));
        assert_eq!(
            tls_words(&cert(C::ExpiredContext { time, not_after })),
            "certificate expired (Expired)"
        );
        let not_before = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(3));
        assert_eq!(
            tls_words(&cert(C::NotValidYetContext { time, not_before })),
            "certificate not valid yet (NotValidYet)"
        );
        assert_eq!(
            tls_words(&cert(C::NotValidForName)),
            "certificate is for another host name (NotValidForName)"
        );
        let webpki = rustls::OtherError(std::sync::Arc::new(webpki::Error::CaUsedAsEndEntity));
        assert_eq!(
            tls_words(&cert(C::Other(webpki))),
            "certificate not trusted (CaUsedAsEndEntity)"
        );
        // rustls's own words, naming what is wrong.
        let name = C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("a").unwrap(),
            presented: vec!["DnsName(\"b\")".into()],
        };
        assert!(
            tls_words(&cert(name))
                .starts_with("invalid peer certificate: certificate not valid for name"),
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert_eq!(tls_words(&alert), alert.to_string());
        assert_eq!(
            Failure::from_ureq(ureq::Error::Tls("handshake failure")),
            Failure::Tls("handshake failure".into())
        );
    }
}

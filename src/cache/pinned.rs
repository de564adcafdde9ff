//! Self-signed certificates that the trust store holds, accepted as curl accepts them.
//!
//! `openssl req -x509` marks the certificate it makes `CA:TRUE`, and private mirrors
//! are made that way. webpki refuses a CA certificate as a server's own certificate
//! (`CaUsedAsEndEntity`, from `check_basic_constraints` in rustls-webpki's
//! `verify_cert.rs`) even when it is the very certificate in the trust store; OpenSSL,
//! and so curl, wget and Python, accept it there.
//!
//! [`Pinned`] asks the normal webpki verifier first and keeps its answer, with one
//! exception: when webpki refuses the certificate with `CaUsedAsEndEntity` and nothing
//! else, the certificate is accepted if it is byte for byte a certificate of the trust
//! store and valid for the server's name. It is still verified:
//!
//! - in date: webpki checks the validity period before the basic constraints
//!   (`check_issuer_independent_properties`), so a certificate it refuses as
//!   `CaUsedAsEndEntity` is in date (a test below holds webpki to that order);
//! - for the name the source was asked by (its DNS names or IP addresses);
//! - held by the server: the handshake signature is checked with its key by webpki,
//!   as for any certificate.
//!
//! Everything else is refused as before: a self-signed certificate that is not in the
//! store (`UnknownIssuer`, also when it is marked CA), one for another name, an expired
//! one.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// webpki's verifier, plus the trust store's own certificates as servers' certificates.
#[derive(Debug)]
pub(super) struct Pinned {
    webpki: Arc<WebPkiServerVerifier>,
    /// The trust store's certificates, as read.
    trusted: Vec<CertificateDer<'static>>,
}

impl Pinned {
    pub(super) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        trusted: Vec<CertificateDer<'static>>,
    ) -> Pinned {
        Pinned { webpki, trusted }
    }

    fn is_trusted(&self, cert: &CertificateDer<'_>) -> bool {
        self.trusted.iter().any(|t| t.as_ref() == cert.as_ref())
    }
}

/// Whether webpki refused a certificate only for being a CA's.
pub(super) fn ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// Whether a certificate names itself as its issuer.
fn self_issued(cert: &CertificateDer<'_>) -> bool {
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| c.issuer() == c.subject())
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e) if ca_used_as_end_entity(&e) && self.is_trusted(end_entity) => {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            // webpki looks at the CA flag before it looks for an issuer, so a
            // self-signed certificate that is not trusted would be refused for its flag.
            // Say what is wrong with it, as for one without the flag: nobody vouches
            // for it.
            Err(e) if ca_used_as_end_entity(&e) && self_issued(end_entity) => Err(
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            ),
            answer => answer,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::RootCertStore;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    /// Made by `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1
    /// -addext subjectAltName=IP:127.0.0.1 -days 36500` (so `CA:TRUE`), valid
    /// 2026-11-30 to 2126-11-06.
    const SELF_SIGNED: &[u8] = include_bytes!("testdata/self-signed-127.0.0.1.pem");
    /// Another one, made the same way.
    const OTHER: &[u8] = include_bytes!("testdata/other-127.0.0.1.pem");

    fn cert(pem: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem).expect("test certificate")
    }

    fn verifier(trusted: &[&[u8]]) -> Pinned {
        let certs: Vec<_> = trusted.iter().map(|p| cert(p)).collect();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(certs.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        Pinned::new(webpki, certs)
    }

    fn at(year: u64) -> UnixTime {
        // Close enough: 365.25 days a year from 1970.
        UnixTime::since_unix_epoch(Duration::from_secs((year - 1970) * 31_557_600))
    }

    fn verify(v: &Pinned, pem: &[u8], name: &str, now: UnixTime) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(&cert(pem), &[], &name, &[], now)
            .map(|_| ())
    }

    #[test]
    fn a_self_signed_certificate_in_the_store_is_accepted_for_its_name() {
        let v = verifier(&[SELF_SIGNED]);
        assert_eq!(verify(&v, SELF_SIGNED, "127.0.0.1", at(2030)), Ok(()));
        // Without the exception, webpki refuses it.
        let plain = v.webpki.verify_server_cert(
            &cert(SELF_SIGNED),
            &[],
            &ServerName::try_from("127.0.0.1").unwrap(),
            &[],
            at(2030),
        );
        assert!(ca_used_as_end_entity(&plain.unwrap_err()));
    }

    #[test]
    fn a_self_signed_certificate_not_in_the_store_is_refused() {
        let v = verifier(&[OTHER]);
        assert_eq!(
            verify(&v, SELF_SIGNED, "127.0.0.1", at(2030)),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        );
    }

    #[test]
    fn the_name_must_match() {
        let v = verifier(&[SELF_SIGNED]);
        for name in ["127.0.0.2", "localhost", "mirror.example.org"] {
            let e = verify(&v, SELF_SIGNED, name, at(2030)).unwrap_err();
            assert!(
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    )
                ),
                "{name}: {e:?}"
            );
        }
    }

    #[test]
    fn the_certificate_must_be_in_date() {
        let v = verifier(&[SELF_SIGNED]);
        let e = verify(&v, SELF_SIGNED, "127.0.0.1", at(2200)).unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                )
            ),
            "{e:?}"
        );
        let e = verify(&v, SELF_SIGNED, "127.0.0.1", at(2000)).unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
                )
            ),
            "{e:?}"
        );
    }
}

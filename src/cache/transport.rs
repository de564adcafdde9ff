//! The connections under the ureq agents.
//!
//! ureq builds an agent on a chain of connectors (`Agent::with_parts`, in ureq's
//! `unversioned::transport`, which may change in a minor release: Cargo.toml pins
//! ureq to 3.5.x). Ours is, in order:
//!
//! 1. [`ForwardProxy`]: `http://` URLs through an HTTP proxy, as plain requests in
//!    absolute form, the way curl sends them (ureq alone would use `CONNECT`);
//! 2. ureq's `ConnectProxyConnector`: `https://` URLs through an HTTP proxy, with
//!    `CONNECT`;
//! 3. ureq's `TcpConnector`: the socket to the source, or to the proxy;
//! 4. [`TlsConnector`]: TLS for `https://` URLs with our rustls configuration (see
//!    [`super::tls`]). ureq's own `TlsConfig` takes root certificates but neither a
//!    rustls `ClientConfig` nor a certificate verifier, so it cannot accept a
//!    self-signed certificate marked `CA:TRUE` (see [`super::pinned`]).
//!
//! ureq's default chain also holds a SOCKS connector, which this build leaves out (as
//! ureq's `socks-proxy` feature is off, ureq itself would panic on a SOCKS proxy):
//! SOCKS proxies are refused when the agent is built.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::Error;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    TcpConnector, Transport, TransportAdapter,
};

use super::forward::ForwardProxy;

/// An agent with `config` on our connector chain. `direct` is the same configuration
/// without the proxy (for the connection to the proxy itself); `tls` verifies https
/// sources.
pub(super) fn agent(
    config: ureq::config::Config,
    direct: ureq::config::Config,
    tls: Arc<ClientConfig>,
) -> ureq::Agent {
    let connector = ForwardProxy::new(direct)
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(TlsConnector { config: tls });
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

/// Wraps the connection to an `https://` source in TLS (after the proxy's `CONNECT`,
/// if there is one).
struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or_else(|| Error::BadUri(format!("{}: no host", details.uri)))?;
        // `[::1]` → `::1`.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Error::BadUri(format!("{host}: not a name TLS can verify")))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        // The handshake is part of connecting: it gets what is left of that budget.
        sock.set_timeout(remaining(details));
        conn.complete_io(&mut sock).map_err(handshake_error)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// The connect timeout left after the time since the connection was started.
fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (Duration::Exact(after), Instant::Exact(start), Instant::Exact(now)) =
        (timeout.after, details.now, (details.current_time)())
    {
        timeout.after = Duration::Exact(after.saturating_sub(now.saturating_duration_since(start)));
    }
    timeout
}

/// A failed handshake: the certificate problem as rustls describes it (classified by
/// `Failure::from_ureq`: the source's failure reads `tls: certificate not trusted
/// (UnknownIssuer)`), else what broke.
fn handshake_error(e: std::io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Error::Rustls(tls.clone()),
        None => Error::from(e),
    }
}

/// A TLS connection to a source.
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("inner", &self.stream.sock.inner())
            .finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.stream.sock.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

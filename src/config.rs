//! The running configuration, as the command line (or an embedding program) sets it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::http::ServerConfig;
use crate::http::access::Cidr;

/// The source used when none is given, as the Gentoo mirror list recommends.
pub const DEFAULT_SOURCE: &str = "https://distfiles.gentoo.org";

/// Everything needed to run a package-cache server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Upstream mirrors, tried in order. Empty means [`DEFAULT_SOURCE`]. `/PREFIX=URL`
    /// serves only the paths below `/PREFIX` (see [`crate::cache::prefix`]); with only
    /// such sources, other paths have none.
    pub sources: Vec<String>,
    /// Host name or address to listen on.
    pub host: String,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// This instance's name in `Via` headers; `None` is the host name and the port
    /// listened on ([`crate::proto::via::default_name`]).
    pub name: Option<String>,
    /// The cache directory.
    pub cache: PathBuf,
    /// How many `-v` were given.
    pub verbose: u8,
    /// Log to syslog instead of stderr.
    pub syslog: bool,
    /// Worker threads.
    pub threads: usize,
    /// Longest wait for a source to accept a connection.
    pub connect_timeout: Duration,
    /// Longest a source may stay silent (before its headers, and between reads).
    pub read_timeout: Duration,
    /// Longest a client connection may stay silent.
    pub idle_timeout: Duration,
    /// Longest a single write to a client may block.
    pub send_timeout: Duration,
    /// How long responses in progress may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Globs of files that change in place, besides the built-in ones.
    pub mutable: Vec<String>,
    /// How long a copy of such a file is served without asking the source.
    pub mutable_ttl: Duration,
    /// How long "no source has this file" is remembered (zero: not at all).
    pub negative_ttl: Duration,
    /// Keep the cache under this many bytes, evicting least recently used files.
    pub max_size: Option<u64>,
    /// Clients allowed to connect; empty allows everyone.
    pub allow: Vec<Cidr>,
    /// A proxy for every source, overriding `http_proxy` and friends.
    pub upstream_proxy: Option<String>,
    /// The environment the sources are reached with (`http_proxy`, `https_proxy`,
    /// `all_proxy`, `no_proxy`, `SSL_CERT_FILE`, `SSL_CERT_DIR`; see the README's
    /// "Proxies"), as names and values. `None`, as in the binary, reads the process
    /// environment; tests and embedding programs set it here instead, since the process
    /// environment is shared by every thread.
    pub upstream_env: Option<Vec<(String, String)>>,
    /// Gentoo ebuild repositories (the Gentoo repository first, then overlays): their
    /// Manifests are checked on every distfile they list, and their `SRC_URI` asked
    /// when no source has one.
    pub repos: Vec<PathBuf>,
    /// Which digests of a Manifest or binhost `Packages` entry are checked; empty:
    /// every one the entry lists (each entry keeps at least one).
    pub checksum_filter: Vec<crate::gentoo::repo::digest::Algo>,
}

impl Default for Config {
    /// The Python original's defaults (`localhost:4000`, `/tmp/package-cache`), and
    /// the framework's for the server's own settings. The command line's help text
    /// states them; a test in `cli` checks that the two agree.
    fn default() -> Config {
        let server = ServerConfig::default();
        Config {
            sources: Vec::new(),
            host: "localhost".into(),
            port: 4000,
            name: None,
            cache: PathBuf::from("/tmp/package-cache"),
            verbose: 0,
            syslog: false,
            threads: server.threads,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            idle_timeout: server.idle_timeout,
            send_timeout: server.send_timeout,
            shutdown_grace: server.shutdown_grace,
            mutable: Vec::new(),
            mutable_ttl: crate::cache::policy::DEFAULT_TTL,
            negative_ttl: crate::cache::policy::DEFAULT_NEGATIVE_TTL,
            max_size: None,
            allow: Vec::new(),
            upstream_proxy: None,
            upstream_env: None,
            repos: Vec::new(),
            checksum_filter: Vec::new(),
        }
    }
}

impl Config {
    /// The sources to use: the configured ones, or [`DEFAULT_SOURCE`].
    pub fn effective_sources(&self) -> Vec<String> {
        if self.sources.is_empty() {
            vec![DEFAULT_SOURCE.to_owned()]
        } else {
            self.sources.clone()
        }
    }

    /// The address to listen on. An IP literal is used as is (`::` and `[::1]` work);
    /// a host name resolves to its first IPv4 address if it has one, as the Python
    /// original (an IPv4 server) did for `localhost`.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let addrs: Vec<SocketAddr> = (host, self.port)
            .to_socket_addrs()
            .map_err(|e| format!("--host {}: {e}", self.host))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("--host {}: no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let mut c = Config {
            port: 4000,
            ..Config::default()
        };
        assert_eq!(c.listen_addr().unwrap().to_string(), "127.0.0.1:4000");
        c.host = "::".into();
        assert_eq!(c.listen_addr().unwrap().to_string(), "[::]:4000");
        c.host = "[::1]".into();
        assert_eq!(c.listen_addr().unwrap().to_string(), "[::1]:4000");
        c.host = "0.0.0.0".into();
        assert_eq!(c.listen_addr().unwrap().to_string(), "0.0.0.0:4000");
        c.host = "no-such-host.invalid".into();
        assert!(
            c.listen_addr()
                .unwrap_err()
                .starts_with("--host no-such-host.invalid: ")
        );
    }

    #[test]
    fn default_source_applies_only_when_none_given() {
        let mut c = Config::default();
        assert_eq!(c.effective_sources(), [DEFAULT_SOURCE]);
        c.sources = vec!["http://a".into()];
        assert_eq!(c.effective_sources(), ["http://a"]);
    }
}

//! The ureq agents the sources and the ad-hoc origins are reached through: one per
//! distinct proxy and TLS configuration, built by one function ([`build_agent`]) and
//! shared, so an origin behind the same proxy as a source uses that source's agent
//! (and its pooled connections).
//!
//! The trust store is read once, the first time it is needed: when the upstream is
//! built if a source is https (an unusable trust store is then a configuration
//! error), else when an origin is first asked.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::ClientConfig;

use super::{Error, UpstreamConfig, lock};
use crate::cache::{tls, transport};

/// The agents built so far, and the TLS configuration read from the trust store.
#[derive(Debug)]
pub(super) struct Agents {
    config: UpstreamConfig,
    /// The configuration verifying against [`UpstreamConfig::trust`], read when first
    /// needed (the error as text: it is kept for every later caller).
    trusted: OnceLock<Result<Arc<ClientConfig>, String>>,
    /// One agent per distinct proxy and TLS configuration.
    built: Mutex<Vec<Built>>,
}

/// An agent and what it was built for.
#[derive(Debug)]
struct Built {
    proxy: Option<String>,
    tls: Arc<ClientConfig>,
    agent: ureq::Agent,
}

impl Agents {
    /// No agent yet; `config` gives their settings.
    pub(super) fn new(config: &UpstreamConfig) -> Agents {
        Agents {
            config: config.clone(),
            trusted: OnceLock::new(),
            built: Mutex::new(Vec::new()),
        }
    }

    /// The TLS configuration verifying against the trust store, read the first time
    /// it is asked for (and the warning that there is no CA bundle given once).
    pub(super) fn trusted(&self) -> Result<Arc<ClientConfig>, String> {
        self.trusted
            .get_or_init(|| tls::client_config(&self.config.trust).map_err(|e| e.to_string()))
            .clone()
    }

    /// The agent reaching through `proxy` and verifying https with `tls`: the one
    /// built before for the same pair, else a new one.
    pub(super) fn get(
        &self,
        proxy: Option<&str>,
        tls: &Arc<ClientConfig>,
    ) -> Result<ureq::Agent, Error> {
        let mut built = lock(&self.built);
        let same = |b: &&Built| b.proxy.as_deref() == proxy && Arc::ptr_eq(&b.tls, tls);
        if let Some(b) = built.iter().find(same) {
            return Ok(b.agent.clone());
        }
        let agent = build_agent(&self.config, proxy, tls.clone())?;
        built.push(Built {
            proxy: proxy.map(str::to_owned),
            tls: tls.clone(),
            agent: agent.clone(),
        });
        Ok(agent)
    }
}

/// An agent with `config`'s settings, reaching through `proxy`, verifying https with
/// `tls`, on our connector chain (see [`transport`]).
fn build_agent(
    config: &UpstreamConfig,
    proxy: Option<&str>,
    tls: Arc<ClientConfig>,
) -> Result<ureq::Agent, Error> {
    let proxy = proxy.map(http_proxy).transpose()?;
    Ok(transport::agent(
        agent_config(config, proxy),
        agent_config(config, None),
        tls,
    ))
}

/// The agent settings for `config`, through `proxy`.
fn agent_config(config: &UpstreamConfig, proxy: Option<ureq::Proxy>) -> ureq::config::Config {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(5)
        .user_agent(config.user_agent.as_str())
        .accept_encoding("identity")
        .proxy(proxy)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_recv_response(Some(config.read_timeout))
        .timeout_per_read(Some(config.read_timeout))
        .max_idle_connections_per_host(8)
        // Requests are a few hundred bytes; bodies stream through the tee's buffer.
        .output_buffer_size(16 * 1024)
        .input_buffer_size(64 * 1024)
        .build()
}

/// A proxy ureq can be given: `http://` or `https://` (an HTTP proxy, reached in
/// clear text or over TLS). SOCKS needs a ureq feature this build leaves out.
fn http_proxy(url: &str) -> Result<ureq::Proxy, Error> {
    let bad = |reason: String| Error::BadProxy {
        proxy: url.to_owned(),
        reason,
    };
    let proxy = ureq::Proxy::new(url).map_err(|e| bad(e.to_string().to_lowercase()))?;
    match proxy.protocol() {
        ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https => Ok(proxy),
        _ => Err(bad(
            "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::proxy::ProxyRules;
    use crate::cache::tls::TrustStore;

    #[test]
    fn only_http_proxies_are_accepted() {
        assert!(http_proxy("http://p:3128").is_ok());
        assert!(http_proxy("https://user:pw@p").is_ok());
        let e = http_proxy("socks5://p:1080").unwrap_err().to_string();
        assert!(
            e.starts_with("socks5://p:1080: SOCKS proxies are not supported"),
            "{e}"
        );
    }

    #[test]
    fn one_agent_per_proxy_and_tls_configuration_and_one_trust_store_read() {
        let agents = Agents::new(&UpstreamConfig {
            sources: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            user_agent: "t".into(),
            proxy: ProxyRules::default(),
            trust: TrustStore {
                cert_file: Some("/nonexistent/ca.pem".into()),
                cert_dir: None,
            },
        });
        let e = agents.trusted().unwrap_err();
        assert!(e.starts_with("SSL_CERT_FILE /nonexistent/ca.pem: "), "{e}");
        assert!(
            agents.trusted.get().is_some(),
            "the outcome is kept, not read again"
        );
        let (a, b) = (tls::mozilla(), tls::mozilla());
        agents.get(None, &a).unwrap();
        agents.get(None, &a).unwrap();
        agents.get(Some("http://p:3128"), &a).unwrap();
        agents.get(None, &b).unwrap();
        assert_eq!(lock(&agents.built).len(), 3);
        assert!(agents.get(Some("socks5://p:1080"), &a).is_err());
    }
}

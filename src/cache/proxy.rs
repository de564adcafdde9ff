//! Which proxy, if any, carries the requests to each source.
//!
//! The rules follow curl: `http_proxy` (lower case only, as curl reads it) for `http://`
//! sources, `https_proxy` or `HTTPS_PROXY` for `https://` ones, `all_proxy` or
//! `ALL_PROXY` for either when the specific one is unset, and `no_proxy` or `NO_PROXY`
//! (a comma-separated list of host names, domain suffixes, IP addresses, or `*`) for
//! sources reached directly. `--upstream-proxy URL` overrides the environment for every
//! source (`no_proxy` still applies).
//!
//! Requests go through the proxy as curl sends them: an `http://` source's as plain
//! requests in absolute form (`GET http://host/path`, see `forward`), an `https://`
//! source's through a `CONNECT host:port` tunnel (ureq's), so a Squid that allows
//! `CONNECT` only to port 443 serves both. Credentials in the proxy URL go to the proxy
//! as `Proxy-Authorization: Basic`. SOCKS proxies are refused when the sources are set
//! up.

use std::net::IpAddr;

/// The proxy rules for the sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyRules {
    http: Option<String>,
    https: Option<String>,
    no_proxy: Vec<String>,
}

impl ProxyRules {
    /// The rules the process environment gives.
    pub fn from_env() -> ProxyRules {
        ProxyRules::from_vars(|name| std::env::var(name).ok())
    }

    /// The rules `var` gives (a lookup of environment variables by name).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> ProxyRules {
        let get = |names: &[&str]| {
            names.iter().find_map(|n| {
                var(n)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            })
        };
        let all = get(&["all_proxy", "ALL_PROXY"]);
        ProxyRules {
            http: get(&["http_proxy"]).or_else(|| all.clone()),
            https: get(&["https_proxy", "HTTPS_PROXY"]).or(all),
            no_proxy: get(&["no_proxy", "NO_PROXY"])
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().trim_start_matches('.').to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Sends every source through `url` (apart from `no_proxy` hosts).
    pub fn forced(mut self, url: &str) -> ProxyRules {
        self.http = Some(url.to_owned());
        self.https = Some(url.to_owned());
        self
    }

    /// The proxy for a source URL, if any.
    pub fn proxy_for(&self, url: &str) -> Option<&str> {
        let (scheme, rest) = url.split_once("://")?;
        let proxy = match scheme.to_ascii_lowercase().as_str() {
            "http" => self.http.as_deref(),
            "https" => self.https.as_deref(),
            _ => None,
        }?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            authority.split(':').next().unwrap_or("")
        };
        (!self.bypasses(&host.to_ascii_lowercase())).then_some(proxy)
    }

    fn bypasses(&self, host: &str) -> bool {
        let ip = host.parse::<IpAddr>().ok();
        self.no_proxy.iter().any(|rule| {
            if rule == "*" {
                return true;
            }
            if let Some(ip) = ip
                && let Ok(range) = rule.parse::<crate::proto::cidr::Cidr>()
            {
                return range.contains(ip);
            }
            // `host:port` rules: the port is ignored.
            let rule = rule.split(':').next().unwrap_or(rule);
            host == rule || host.ends_with(&format!(".{rule}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(vars: &[(&str, &str)]) -> ProxyRules {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyRules::from_vars(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn each_scheme_has_its_variable() {
        let r = rules(&[
            ("http_proxy", "http://p1:3128"),
            ("HTTPS_PROXY", "http://p2:3128"),
        ]);
        assert_eq!(
            r.proxy_for("http://distfiles.gentoo.org"),
            Some("http://p1:3128")
        );
        assert_eq!(
            r.proxy_for("https://distfiles.gentoo.org/x"),
            Some("http://p2:3128")
        );
        // Like curl, upper-case HTTP_PROXY is not read.
        let r = rules(&[("HTTP_PROXY", "http://p1:3128")]);
        assert_eq!(r.proxy_for("http://a"), None);
        let r = rules(&[("ALL_PROXY", "http://p3:1")]);
        assert_eq!(r.proxy_for("http://a"), Some("http://p3:1"));
        assert_eq!(r.proxy_for("https://a"), Some("http://p3:1"));
    }

    #[test]
    fn no_proxy_matches_hosts_domains_and_addresses() {
        let r = rules(&[
            ("https_proxy", "http://p:1"),
            ("no_proxy", "localhost, .lan,example.org,10.0.0.0/8,[::1]"),
        ]);
        assert_eq!(r.proxy_for("https://localhost:4000/"), None);
        assert_eq!(r.proxy_for("https://mirror.lan/"), None);
        assert_eq!(r.proxy_for("https://a.example.org/"), None);
        assert_eq!(r.proxy_for("https://notexample.org/"), Some("http://p:1"));
        assert_eq!(r.proxy_for("https://10.1.2.3/"), None);
        assert_eq!(r.proxy_for("https://11.1.2.3/"), Some("http://p:1"));
        let star = rules(&[("https_proxy", "http://p:1"), ("NO_PROXY", "*")]);
        assert_eq!(star.proxy_for("https://anything/"), None);
    }

    #[test]
    fn forced_proxy_covers_every_scheme() {
        let r = rules(&[("no_proxy", "local")]).forced("http://p:8");
        assert_eq!(r.proxy_for("http://a/"), Some("http://p:8"));
        assert_eq!(r.proxy_for("https://a/"), Some("http://p:8"));
        assert_eq!(r.proxy_for("https://local/"), None);
    }
}

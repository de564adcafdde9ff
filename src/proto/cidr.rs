//! Address ranges in CIDR notation (RFC 4632 for IPv4, RFC 4291 §2.3 for IPv6):
//! `192.168.0.0/16`, `10.1.2.3` (one address), `fd00::/8`, `::1`.
//!
//! IPv4 clients reaching an IPv6 (dual-stack) listener arrive as `::ffff:a.b.c.d`
//! (RFC 4291 §2.5.5.2); they match IPv4 ranges as the address they really are.
//! Used by the framework's access control and by the cache's `no_proxy` rules.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range: `192.168.0.0/16`, `10.1.2.3` (one address), `fd00::/8`, `::1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a range did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.input, self.reason)
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let err = |reason| CidrError {
            input: text.to_owned(),
            reason,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let network: IpAddr = addr
            .parse()
            .map_err(|_| err("not an IP address or range such as 192.168.0.0/16"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(err("prefix length out of range")),
            },
        };
        if masked(network, prefix) != network {
            return Err(err("address has bits set beyond the prefix length"));
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_their_addresses() {
        let lan = cidr("192.168.0.0/16");
        assert!(lan.contains(ip("192.168.4.20")));
        assert!(!lan.contains(ip("192.169.0.1")));
        assert!(lan.contains(ip("::ffff:192.168.1.1")), "v4-mapped");
        assert!(!lan.contains(ip("fd00::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!cidr("10.1.2.3").contains(ip("10.1.2.4")));
        assert!(cidr("fd00::/8").contains(ip("fdab::9")));
        assert!(cidr("[::1]").contains(ip("::1")));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_ranges_say_why() {
        for (bad, why) in [
            ("10.0.0.0/33", "prefix length out of range"),
            (
                "10.0.0.1/8",
                "address has bits set beyond the prefix length",
            ),
            ("lan", "not an IP address or range such as 192.168.0.0/16"),
            ("10.0.0.0/x", "prefix length out of range"),
            ("::/129", "prefix length out of range"),
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert_eq!(e.to_string(), format!("{bad}: {why}"));
        }
    }
}

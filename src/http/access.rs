//! Who may talk to a handler: a handler wrapper that answers 403 to clients outside
//! the allowed address ranges ([`Cidr`]).

use std::net::IpAddr;

pub use crate::proto::cidr::{Cidr, CidrError};

use super::{Handler, Request, Response};

/// A handler that passes requests from the allowed ranges to `inner` and answers
/// everyone else `403 Forbidden`. With no ranges, everyone is allowed.
pub struct Allow<H> {
    ranges: Vec<Cidr>,
    inner: H,
}

impl<H: Handler> Allow<H> {
    /// Wraps `inner`.
    pub fn new(ranges: Vec<Cidr>, inner: H) -> Allow<H> {
        Allow { ranges, inner }
    }

    /// Whether a client at `ip` may pass.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        self.ranges.is_empty() || ip.is_some_and(|ip| self.ranges.iter().any(|r| r.contains(ip)))
    }
}

impl<H: Handler> Handler for Allow<H> {
    fn handle(&self, req: &mut Request) -> Response {
        let ip = req.remote_addr().map(|a| a.ip());
        if self.allows(ip) {
            self.inner.handle(req)
        } else {
            let who = ip.map_or_else(|| "this client".to_owned(), |ip| ip.to_string());
            Response::text(403, format!("403 Forbidden: {who} is not allowed here"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cidr::tests::{cidr, ip};

    #[test]
    fn allow_answers_403_to_others() {
        let allow = Allow::new(vec![cidr("127.0.0.0/8")], |_: &mut Request| {
            Response::text(200, "ok")
        });
        assert!(allow.allows(Some(ip("127.0.0.2"))));
        assert!(!allow.allows(Some(ip("10.0.0.1"))));
        assert!(!allow.allows(None));
        let open = Allow::new(vec![], |_: &mut Request| Response::text(200, "ok"));
        assert!(open.allows(None));
    }
}

//! The handler trait: anything that turns a request into a response.

use super::{Request, Response};

/// Turns a request into a response.
///
/// Implemented by structs (the cache's mirror handler, the router) and, through the
/// blanket impl, by any `Fn(&mut Request) -> Response` closure. A handler that panics
/// does not take the server down: the server answers 500 and the worker lives on.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. The request is mutable so routers can move the mount
    /// prefix from `path_info` to `script_name` on the way down.
    fn handle(&self, req: &mut Request) -> Response;
}

impl<F> Handler for F
where
    F: Fn(&mut Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &mut Request) -> Response {
        self(req)
    }
}

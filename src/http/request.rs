//! The request a handler sees.
//!
//! Like a WSGI environ, the path is split in two: [`Request::script_name`] is the part
//! the routers above this handler consumed (the mount prefix) and
//! [`Request::path_info`] is the rest. Both are decoded and checked once, by the server,
//! before any handler runs (see [`super::path`]).

use std::fmt;
use std::net::SocketAddr;

use super::Headers;
use super::path::{self, PathError};

/// An HTTP request method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    /// The method as it appears on the request line.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }

    /// Parses a request-line method; unknown tokens become [`Method::Other`].
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// HTTP/1.0: one request per connection unless it asks for keep-alive.
    Http10,
    /// HTTP/1.1: persistent connections by default.
    Http11,
}

/// A request, as handed to a [`super::Handler`].
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    version: Version,
    script_name: String,
    path_info: String,
    query: Option<String>,
    headers: Headers,
    remote_addr: Option<SocketAddr>,
}

impl Request {
    /// Builds a request from a method and a raw request target (`/a%20b?q`), decoding
    /// and checking the path. This is what the server does; tests and embedders use it
    /// to call handlers without a socket.
    pub fn new(method: Method, target: &str) -> Result<Request, PathError> {
        let target = path::parse_target(target)?;
        Ok(Request {
            method,
            version: Version::Http11,
            script_name: String::new(),
            path_info: target.path,
            query: target.query,
            headers: Headers::new(),
            remote_addr: None,
        })
    }

    /// Shorthand for a `GET` of `target`.
    ///
    /// # Panics
    /// If `target` is not a valid absolute path; meant for tests and examples.
    pub fn get(target: &str) -> Request {
        match Request::new(Method::Get, target) {
            Ok(r) => r,
            Err(e) => panic!("invalid request target {target:?}: {e}"),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.append(name, value);
        self
    }

    /// Sets the client address (builder style).
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Request {
        self.remote_addr = Some(addr);
        self
    }

    /// Sets the HTTP version (builder style).
    pub fn with_version(mut self, version: Version) -> Request {
        self.version = version;
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The decoded path prefix consumed by the routers above this handler; empty at
    /// the top level, never ends with `/`.
    pub fn script_name(&self) -> &str {
        &self.script_name
    }

    /// The decoded rest of the path: empty or starting with `/`.
    pub fn path_info(&self) -> &str {
        &self.path_info
    }

    /// The whole decoded path (`script_name` + `path_info`).
    pub fn path(&self) -> String {
        let path = format!("{}{}", self.script_name, self.path_info);
        if path.is_empty() {
            "/".to_owned()
        } else {
            path
        }
    }

    /// The raw query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The request headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The client's address (absent for requests built by hand).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Whether the method is `HEAD`.
    pub fn is_head(&self) -> bool {
        self.method == Method::Head
    }

    /// Moves the first `len` bytes of `path_info` to the end of `script_name`; the
    /// router calls this when it descends into a mount.
    pub(crate) fn shift(&mut self, len: usize) {
        let rest = self.path_info.split_off(len);
        self.script_name.push_str(&self.path_info);
        self.path_info = rest;
    }

    /// Undoes [`Request::shift`] by `len` bytes.
    pub(crate) fn unshift(&mut self, len: usize) {
        let moved = self.script_name.split_off(self.script_name.len() - len);
        self.path_info.insert_str(0, &moved);
    }

    pub(crate) fn from_parts(
        method: Method,
        version: Version,
        target: path::Target,
        headers: Headers,
        remote_addr: Option<SocketAddr>,
    ) -> Request {
        Request {
            method,
            version,
            script_name: String::new(),
            path_info: target.path,
            query: target.query,
            headers,
            remote_addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_and_unshift_move_the_prefix() {
        let mut r = Request::get("/static/css/a.css?v=1");
        assert_eq!(r.query(), Some("v=1"));
        r.shift("/static".len());
        assert_eq!((r.script_name(), r.path_info()), ("/static", "/css/a.css"));
        assert_eq!(r.path(), "/static/css/a.css");
        r.unshift("/static".len());
        assert_eq!((r.script_name(), r.path_info()), ("", "/static/css/a.css"));
    }

    #[test]
    fn methods_round_trip() {
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert_eq!(Method::parse(m).as_str(), m);
        }
        assert_eq!(Method::parse("get"), Method::Other("get".into()));
    }
}

//! A small, synchronous, WSGI-style HTTP framework on top of tiny_http.
//!
//! It knows nothing about caching. Applications implement [`Handler`] (or pass a
//! closure), compose handlers with a [`Router`], and run them on a [`Server`]: a
//! tiny_http acceptor feeding a fixed pool of worker threads through a bounded
//! channel. Requests arrive as our own [`Request`] with the path decoded and checked
//! once ([`path`]); every reply is a [`Response`] whose [`Body`] may be bytes, a file
//! range or any reader. tiny_http never appears in this API, so handlers can be
//! called in tests with a hand-built request and no socket.
//!
//! ```no_run
//! use package_cache::http::{Request, Response, Router, Server, ServerConfig};
//!
//! let app = Router::new()
//!     .mount("/hello", |req: &mut Request| Response::text(200, format!("hello {}", req.path_info())));
//! Server::bind("127.0.0.1:8080", app, ServerConfig::default())?.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod access;
pub use crate::proto::{date, path};
pub mod conditional;
mod extensions;
mod handler;
mod headers;
pub mod mime;
mod pool;
pub mod range;
mod request;
mod response;
mod router;
mod server;
pub mod socket;
mod wire;

pub use extensions::Extensions;
pub use handler::Handler;
pub use headers::Headers;
pub use request::{Method, Request, Version};
pub use response::{Body, Response, reason_phrase, status_has_body};
pub use router::Router;
pub use server::{
    Finished, MAX_HEADER_BYTES, MAX_HEADERS, Observer, RunningServer, Server, ServerConfig,
    ServerStats, ShutdownHandle,
};

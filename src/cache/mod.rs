//! The cache, independent of HTTP framing: it never sees the framework (`src/http`)
//! and never builds a response. The application asks it one question per request,
//! [`Cache::get`], and turns the [`Answer`] into a response.
//!
//! - [`front`]: the front door ([`Cache`], [`Query`], [`Answer`]) and the decisions:
//!   fresh or revalidate, join or start a download, stale-if-error, pass-through.
//! - [`status`]: [`CacheStatus`], how a request was served (`X-Cache`, log, metrics).
//! - [`content`]: the bytes of an answer, as slices ready to send.
//! - [`policy`]: which files change in place, and when to ask about them again;
//!   [`generations`]: the rules by which a repository's anchor and members are served
//!   from one generation.
//! - [`fetch`]: running downloads, one per entry across threads and processes.
//! - [`flight`]: downloads in progress, shared by every client that wants the same file.
//! - [`durable`]: how far other processes may follow a download (the leader's periodic
//!   `fdatasync` and the durable length in its lock file).
//! - [`tee`]: the download loop (upstream → disk → every waiting client) and the reader
//!   each client streams from.
//! - [`upstream`]: the ureq client and ordered failover over the sources, each
//!   serving every path or those below a prefix ([`prefix`]); [`proxy`]
//!   picks each source's proxy; [`tls`]: the trust store for https sources.
//!   Under the ureq agents, `transport` chains the connections, `forward` sends
//!   `http://` requests to a proxy in absolute form and `pinned` accepts self-signed
//!   certificates that the trust store holds.
//! - [`store`]: where entries live on disk, temporary files, fs2 locks, atomic commits.
//! - [`index`]: the live LRU index and the size cap; [`cull`]: the one-shot cull.
//! - [`verify`]: checks against what the application knows a file must be (sizes and
//!   digests): while it streams, holding its last byte back, and on disk; and the
//!   [`verify::Knowledge`] trait through which the application tells it.
//! - [`error`]: what went wrong, described; the application picks the status.

pub mod content;
pub mod cull;
pub mod durable;
pub mod error;
pub mod fetch;
pub mod flight;
mod forward;
pub mod front;
pub mod generations;
pub mod index;
mod pinned;
pub mod policy;
pub mod prefix;
pub mod proxy;
pub mod status;
pub mod store;
pub mod tee;
pub mod tls;
mod transport;
pub mod upstream;
pub mod verify;

pub use content::{Content, Slice};
pub use error::{Attempt, Error, Failure};
pub use front::{Answer, Cache, Found, Query, Want};
pub use status::CacheStatus;

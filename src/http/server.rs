//! The server: a tiny_http acceptor feeding a fixed pool of workers through a bounded
//! channel. This is the only file that knows tiny_http exists.
//!
//! ```text
//! tiny_http (accept + parse, one thread per connection)
//!     └─ pump ──crossbeam channels──► N workers ──► Handler ──► wire::write_response
//! ```
//!
//! - tiny_http parses requests on its own per-connection threads; idle connections and
//!   slow headers are bounded by `SO_RCVTIMEO`, slow readers by `SO_SNDTIMEO`, both set
//!   on the listener and inherited by accepted sockets ([`super::socket`]).
//! - `SO_RCVTIMEO` also makes tiny_http's blocking `accept()` give up after the idle
//!   timeout; the vendored tiny_http loops on that instead of ending its accept loop
//!   (`vendor/tiny_http/PATCHED.md`). If the loop dies anyway (say `accept()` failed
//!   with EMFILE) the pump starts a new tiny_http server on the same listener.
//! - tiny_http 0.12's connection pool could leave part of a burst of new connections
//!   queued until another connection closed (behind nginx `keepalive`: answers 15–60 s
//!   late); the vendored tiny_http fixes it at its source
//!   (`vendor/tiny_http/PATCHED.md`).
//! - The pump hands each request to the most recently idle worker ([`super::pool`]);
//!   workers call the handler (a panic becomes a 500),
//!   and write the response themselves through `Request::into_writer`, so this crate
//!   alone frames responses ([`super::wire`]).
//! - A response whose body breaks after the headers went out has its connection shut
//!   down at once, so the client sees a short read instead of waiting forever.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::path;
use super::pool::{Pool, Worker};
use super::response::Held;
use super::wire::{self, Exchange};
use super::{Body, Handler, Headers, Method, Request, Response, Version, socket};

/// Most header bytes (names plus values) accepted in a request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields accepted in a request.
pub const MAX_HEADERS: usize = 128;

/// Tuning for a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Worker threads: how many requests are answered at once. Each response being
    /// sent (a download to a slow client included) holds one until it ends.
    pub threads: usize,
    /// How long a connection may stay silent: before its first request, between
    /// requests, or in the middle of a request's headers. Zero disables the timeout.
    pub idle_timeout: Duration,
    /// How long a single write to a client may block (a client that stopped reading
    /// is dropped after this). Zero disables the timeout.
    pub send_timeout: Duration,
    /// After a shutdown request, how long responses in progress may take to finish.
    pub shutdown_grace: Duration,
    /// The `Server` header, if any.
    pub server_name: Option<String>,
    /// A response header whose value the access log shows (e.g. `X-Cache`).
    pub log_header: Option<String>,
    /// Largest block copied to a client in one write.
    pub buffer_size: usize,
    /// Told about every answered request, after its response was written.
    pub observer: Option<Arc<dyn Observer>>,
}

/// One answered request, as an [`Observer`] sees it.
#[derive(Debug)]
pub struct Finished<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target as the client sent it.
    pub target: &'a str,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The response status.
    pub status: u16,
    /// The value of the response header named by [`ServerConfig::log_header`].
    pub tag: Option<&'a str>,
    /// Body bytes written to the client.
    pub bytes: u64,
    /// Whether the whole response was written.
    pub complete: bool,
    /// Time from the request's arrival to the end of the response.
    pub elapsed: Duration,
    /// The values the handler attached to its response
    /// ([`Response::with_extension`]).
    pub extensions: &'a super::Extensions,
}

/// Something told about every answered request: metrics, an access log of one's own.
/// Called on the worker thread that answered, so it should be quick. Closures taking
/// `&Finished` implement it.
pub trait Observer: Send + Sync + 'static {
    /// Called once per request, after its response was written (or abandoned).
    fn finished(&self, done: &Finished<'_>);
}

impl<F> Observer for F
where
    F: Fn(&Finished<'_>) + Send + Sync + 'static,
{
    fn finished(&self, done: &Finished<'_>) {
        self(done)
    }
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            threads: 256,
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            server_name: None,
            log_header: None,
            buffer_size: 64 * 1024,
            observer: None,
        }
    }
}

/// Counters the server keeps about itself.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Requests being answered right now.
    pub active: AtomicUsize,
    /// Requests answered since start.
    pub requests: AtomicU64,
    /// Body bytes written to clients since start.
    pub bytes_sent: AtomicU64,
}

/// Asks a running server to stop; cheap to clone and safe to call from anywhere
/// (including a signal-handling thread).
#[derive(Clone, Debug, Default)]
pub struct ShutdownHandle {
    inner: Arc<ShutdownState>,
}

#[derive(Debug, Default)]
struct ShutdownState {
    requested: AtomicBool,
    at: Mutex<Option<Instant>>,
    lock: Mutex<()>,
    cond: Condvar,
}

impl ShutdownHandle {
    /// Requests a shutdown: stop accepting, finish what is in progress (within the
    /// grace period), return from [`Server::run`].
    pub fn shutdown(&self) {
        if let Ok(mut at) = self.inner.at.lock() {
            at.get_or_insert_with(Instant::now);
        }
        self.inner.requested.store(true, Ordering::SeqCst);
        let _guard = self.inner.lock.lock();
        self.inner.cond.notify_all();
    }

    /// When a shutdown was first requested.
    pub fn requested_at(&self) -> Option<Instant> {
        self.inner.at.lock().ok().and_then(|at| *at)
    }

    /// Whether a shutdown was requested.
    pub fn is_shutdown(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`; returns early (with `true`) if a shutdown is requested.
    pub fn wait(&self, d: Duration) -> bool {
        let guard = match self.inner.lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if self.is_shutdown() {
            return true;
        }
        let _ = self.inner.cond.wait_timeout(guard, d);
        self.is_shutdown()
    }
}

/// An HTTP/1.1 server running a [`Handler`] on a fixed pool of threads.
///
/// ```no_run
/// use package_cache::http::{Request, Response, Server, ServerConfig};
///
/// let server = Server::bind(
///     "127.0.0.1:8080",
///     |_: &mut Request| Response::text(200, "hello"),
///     ServerConfig::default(),
/// )?;
/// println!("listening on {}", server.local_addr());
/// server.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    shutdown: ShutdownHandle,
    stats: Arc<ServerStats>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and prepares to serve `handler`.
    pub fn bind(
        addr: impl ToSocketAddrs,
        handler: impl Handler,
        config: ServerConfig,
    ) -> io::Result<Server> {
        Server::from_listener(TcpListener::bind(addr)?, handler, config)
    }

    /// Serves on an already bound listener (e.g. one passed in by a service manager).
    pub fn from_listener(
        listener: TcpListener,
        handler: impl Handler,
        config: ServerConfig,
    ) -> io::Result<Server> {
        socket::set_listener_timeouts(&listener, config.idle_timeout, config.send_timeout)?;
        Ok(Server {
            local_addr: listener.local_addr()?,
            listener,
            handler: Arc::new(handler),
            config,
            shutdown: ShutdownHandle::default(),
            stats: Arc::new(ServerStats::default()),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called, then waits up to the grace
    /// period for responses in progress and returns.
    pub fn run(self) -> io::Result<()> {
        let threads = self.config.threads.max(1);
        let pool = Arc::new(Pool::<Job>::new(threads));
        let shared = Arc::new(Shared {
            handler: self.handler,
            config: self.config,
            local_port: self.local_addr.port(),
            stats: self.stats,
        });
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (worker, shared) = (pool.worker(), shared.clone());
            let handle = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(512 * 1024)
                .spawn(move || worker_loop(&worker, &shared))?;
            workers.push(handle);
        }
        let result = pump(&self.listener, &pool, &self.shutdown);
        self.shutdown.shutdown();
        pool.close();
        drop(self.listener);
        let since = self.shutdown.requested_at().unwrap_or_else(Instant::now);
        let deadline = since + shared.config.shutdown_grace;
        for w in workers {
            while !w.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        let left = shared.stats.active.load(Ordering::SeqCst);
        if left > 0 {
            warn!("stopping with {left} responses still in progress");
        }
        result
    }

    /// Runs the server on a new thread; the returned handle stops it when dropped.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let addr = self.local_addr;
        let shutdown = self.shutdown.clone();
        let stats = self.stats.clone();
        let thread = thread::Builder::new()
            .name("http-server".into())
            .spawn(move || self.run())?;
        Ok(RunningServer {
            addr,
            shutdown,
            stats,
            thread: Some(thread),
        })
    }
}

/// A server running on its own thread (see [`Server::spawn`]).
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    stats: Arc<ServerStats>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        self.shutdown.shutdown();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

struct Job {
    request: tiny_http::Request,
    received: Instant,
}

struct Shared {
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    local_port: u16,
    stats: Arc<ServerStats>,
}

/// Moves requests from tiny_http to the workers until shutdown, restarting tiny_http's
/// accept loop if it dies.
fn pump(
    listener: &TcpListener,
    pool: &Arc<Pool<Job>>,
    shutdown: &ShutdownHandle,
) -> io::Result<()> {
    let mut backoff = Duration::from_millis(10);
    loop {
        let tiny = tiny_http::Server::from_listener(listener.try_clone()?, None)
            .map_err(|e| io::Error::other(format!("cannot start the acceptor: {e}")))?;
        match forward(&tiny, pool, shutdown) {
            Ok(()) => return Ok(()),
            Err(e) => {
                // The accept loop ended; connections it accepted may still send
                // requests, so keep draining them while a new loop takes over.
                warn!("accepting connections failed ({e}); restarting the acceptor");
                let (pool, stop) = (pool.clone(), shutdown.clone());
                thread::Builder::new()
                    .name("drain".into())
                    .spawn(move || while forward(&tiny, &pool, &stop).is_err() {})?;
                if shutdown.wait(backoff) {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Forwards requests from one tiny_http server; `Err` when its accept loop died.
fn forward(
    tiny: &tiny_http::Server,
    pool: &Pool<Job>,
    shutdown: &ShutdownHandle,
) -> io::Result<()> {
    let tick = Duration::from_millis(200);
    while !shutdown.is_shutdown() {
        let Some(request) = tiny.recv_timeout(tick)? else {
            continue;
        };
        let job = Job {
            request,
            received: Instant::now(),
        };
        if pool.dispatch(job, || shutdown.is_shutdown()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn worker_loop(worker: &Worker<Job>, shared: &Shared) {
    while let Some(job) = worker.next() {
        shared.stats.active.fetch_add(1, Ordering::SeqCst);
        serve(job, shared);
        shared.stats.active.fetch_sub(1, Ordering::SeqCst);
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Answers one request: read it, let the handler answer, write the answer, report it.
fn serve(job: Job, shared: &Shared) {
    let Job { request, received } = job;
    let (rq, headers) = Incoming::read(&request);
    let mut response = answer(&rq, headers, shared);
    let held = response.take_held();
    let extensions = response.take_extensions();
    let response = body_checked(&rq, response);
    let status = response.status();
    let tag = shared
        .config
        .log_header
        .as_deref()
        .and_then(|h| response.header(h))
        .map(str::to_owned);
    let (bytes, note) = send(request, &rq, response, held, shared);
    let sent = Sent {
        status,
        tag: tag.as_deref(),
        bytes,
        note,
        extensions: &extensions,
    };
    report(&rq, &sent, received, shared);
}

/// What went out in answer to a request, for the observer and the access log.
struct Sent<'a> {
    status: u16,
    /// The value of the header [`ServerConfig::log_header`] names.
    tag: Option<&'a str>,
    /// Body bytes written.
    bytes: u64,
    /// Empty when the whole response was written, else why not (` client-gone`).
    note: &'a str,
    extensions: &'a super::Extensions,
}

/// What the server keeps of a request, read once from tiny_http's.
struct Incoming {
    method: Method,
    version: Version,
    target: String,
    peer: Option<SocketAddr>,
    /// tiny_http reads another request on this connection after the answer.
    keep_alive: bool,
}

impl Incoming {
    /// The request's parts, and its headers (which go to the handler).
    fn read(rq: &tiny_http::Request) -> (Incoming, Headers) {
        let version = version_of(rq);
        let headers: Headers = rq
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_owned(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect();
        let incoming = Incoming {
            method: Method::parse(rq.method().as_str()),
            version,
            target: rq.url().to_owned(),
            peer: rq.remote_addr().copied(),
            keep_alive: wants_keep_alive(version, headers.get("Connection")),
        };
        (incoming, headers)
    }

    fn is_head(&self) -> bool {
        self.method == Method::Head
    }
}

/// The handler's answer, or a 500 if building it panicked. The handler's panics are
/// caught inside [`respond`]; this catches the framework's own, so a bug in parsing
/// can never cost a worker.
fn answer(rq: &Incoming, headers: Headers, shared: &Shared) -> Response {
    let (method, target) = (&rq.method, &rq.target);
    catch_unwind(AssertUnwindSafe(|| {
        respond(method.clone(), rq.version, target, headers, rq.peer, shared)
    }))
    .unwrap_or_else(|_| {
        error!("panic while preparing the answer to {method} {target}");
        Response::error(500)
    })
}

/// `response`, unless it has no body for a request that needs one (a handler's bug).
fn body_checked(rq: &Incoming, response: Response) -> Response {
    match response.body() {
        Body::HeadOnly(_) if !rq.is_head() => {
            error!(
                "handler answered {} {} without a body",
                rq.method, rq.target
            );
            Response::error(500)
        }
        _ => response,
    }
}

/// Writes `response` on the request's connection, then drops `held`; closes the
/// connection if the answer broke. Returns the body bytes sent and a note for the
/// access log (empty when the answer is complete).
fn send(
    request: tiny_http::Request,
    rq: &Incoming,
    response: Response,
    held: Held,
    shared: &Shared,
) -> (u64, &'static str) {
    let (peer, local_port) = (rq.peer, shared.local_port);
    let find_socket = move || peer.and_then(|p| socket::find_connection(p, local_port));
    let ex = Exchange {
        head: rq.is_head(),
        version: rq.version,
        keep_alive: rq.keep_alive,
        server_name: shared.config.server_name.as_deref(),
        socket: Some(&find_socket),
    };
    let mut writer = request.into_writer();
    let written = catch_unwind(AssertUnwindSafe(|| {
        wire::write_response(&mut *writer, &ex, response, shared.config.buffer_size)
    }));
    drop(writer);
    drop(held);
    let (method, target) = (&rq.method, &rq.target);
    let Ok(w) = written else {
        error!("panic while sending {method} {target}");
        close(peer, local_port);
        return (0, " aborted");
    };
    let note = match &w.error {
        None => "",
        Some(e) if e.is_client_gone() => {
            debug!("client of {method} {target} went away: {}", e.io());
            " client-gone"
        }
        Some(e) => {
            debug!("response to {method} {target} broke mid-body: {}", e.io());
            " aborted"
        }
    };
    if w.must_close {
        close(peer, local_port);
    }
    (w.body_bytes, note)
}

/// Counts the answer, tells the observer, and writes the access log line.
fn report(rq: &Incoming, sent: &Sent<'_>, received: Instant, shared: &Shared) {
    let Sent {
        status,
        tag,
        bytes,
        note,
        extensions,
    } = *sent;
    shared.stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    let elapsed = received.elapsed();
    if let Some(observer) = &shared.config.observer {
        observer.finished(&Finished {
            method: &rq.method,
            target: &rq.target,
            client: rq.peer,
            status,
            tag,
            bytes,
            complete: note.is_empty(),
            elapsed,
            extensions,
        });
    }
    let client = rq
        .peer
        .map_or_else(|| "-".to_owned(), |p| p.ip().to_string());
    let shown: String = rq.target.chars().take(512).collect();
    info!(
        target: "package_cache::access",
        "{client} {} {shown} {status} {bytes} {}ms {}{note}",
        rq.method,
        elapsed.as_millis(),
        tag.unwrap_or("-")
    );
}

fn close(peer: Option<SocketAddr>, local_port: u16) {
    if let Some(peer) = peer
        && !socket::shutdown_connection(peer, local_port)
    {
        debug!("connection from {peer} already gone");
    }
}

/// Builds the handler's response, or the server's own for requests that never reach
/// the handler (bad paths, oversized headers) and for handler panics.
fn respond(
    method: Method,
    version: Version,
    target: &str,
    headers: Headers,
    peer: Option<SocketAddr>,
    shared: &Shared,
) -> Response {
    let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if header_bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADERS {
        return Response::error(431);
    }
    let target = match path::parse_target(target) {
        Ok(t) => t,
        Err(e) => {
            return Response::text(
                e.status(),
                format!(
                    "{} {}: {e}",
                    e.status(),
                    super::response::reason_phrase(e.status())
                ),
            );
        }
    };
    let mut req = Request::from_parts(method, version, target, headers, peer);
    match catch_unwind(AssertUnwindSafe(|| shared.handler.handle(&mut req))) {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error!(
                "handler panicked on {} {}: {what}",
                req.method(),
                req.path()
            );
            Response::error(500)
        }
    }
}

fn version_of(rq: &tiny_http::Request) -> Version {
    if *rq.http_version() == tiny_http::HTTPVersion(1, 0) {
        Version::Http10
    } else {
        Version::Http11
    }
}

/// tiny_http's own rule for whether it reads another request on the connection, from
/// the request's version and `Connection` header.
fn wants_keep_alive(version: Version, connection: Option<&str>) -> bool {
    let conn = connection.map(str::to_ascii_lowercase);
    match conn {
        Some(v) if v.contains("close") || v.contains("upgrade") => false,
        Some(v) if version == Version::Http10 => v.contains("keep-alive"),
        None if version == Version::Http10 => false,
        _ => true,
    }
}

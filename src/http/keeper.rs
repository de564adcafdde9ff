//! The keeper: a thread that opens and at once closes loopback connections to our own
//! listener, because tiny_http 0.12 needs two kinds of nudge.
//!
//! - `SO_RCVTIMEO` on the listener (the idle timeout, inherited by every accepted
//!   socket, [`super::socket`]) also bounds tiny_http's blocking `accept()`, and an
//!   error from `accept()` ends its accept loop. So the keeper connects at least every
//!   quarter of the idle timeout (and at least once a second, below).
//! - tiny_http runs each connection, for its whole life, as one task of its thread
//!   pool (`util/task_pool.rs`). `TaskPool::spawn` queues a new connection instead of
//!   starting a thread when it counts an idle thread, but a thread it has just woken
//!   for the previous connection still counts as idle until it runs. So a burst of new
//!   connections queues more of them than there are idle threads, and a queued
//!   connection starts only when some thread finishes its task: when another
//!   connection closes. Behind nginx, whose upstream keep-alive connections stay open,
//!   the next connection to close was the keeper's, and answers waited for multiples
//!   of a quarter of the idle timeout.
//!
//! A connection that closes at once is a task that ends at once: the thread that ran it
//! (a new one, since a queue only persists while no thread is idle) takes the oldest
//! queued connection next. Queued connections cannot be seen from outside tiny_http,
//! but a burst's queued connections came together with one that started, and a
//! connection's first request is visible. So for every new connection whose first
//! request reaches us ([`NewConnections`]) and asks to stay open, the keeper opens and
//! closes one: each connection it frees reaches us in turn and frees the next, until
//! none is queued. (A connection whose first request is also its last frees its thread
//! right after tiny_http read it, and that thread takes the next queued one.)
//! Where nothing was queued, the extra connection costs one short task. The chain
//! breaks only at a freed connection that says nothing (a browser's preconnect, a
//! slowloris); the once-a-second connection then frees the next.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::debug;

/// Most connections opened in one go, however many were asked for meanwhile; the rest
/// follow from the connections those free.
const MOST_AT_ONCE: usize = 256;
/// How long one loopback connection may take to be accepted by the kernel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The keeper connects at least this often, also with no idle timeout: a burst's
/// queued connections are freed by the connections that got a thread (see above),
/// unless those say nothing. Then each of these frees one, and any connection it frees
/// that does talk starts freeing the rest.
const MOST_QUIET: Duration = Duration::from_secs(1);

/// Asks the keeper thread for connections; cheap to clone.
#[derive(Clone)]
pub(crate) struct Keeper {
    state: Arc<State>,
}

struct State {
    wanted: Mutex<Wanted>,
    wake: Condvar,
}

#[derive(Default)]
struct Wanted {
    connections: usize,
    stop: bool,
}

impl Keeper {
    /// Starts the keeper for a listener on `addr` whose `SO_RCVTIMEO` is `idle` (zero:
    /// none).
    pub(crate) fn spawn(addr: SocketAddr, idle: Duration) -> io::Result<(Keeper, JoinHandle<()>)> {
        let keeper = Keeper {
            state: Arc::new(State {
                wanted: Mutex::new(Wanted::default()),
                wake: Condvar::new(),
            }),
        };
        let period = if idle.is_zero() {
            MOST_QUIET
        } else {
            (idle / 4).clamp(Duration::from_millis(50), MOST_QUIET)
        };
        let target = reachable(addr);
        let state = keeper.state.clone();
        let thread = thread::Builder::new()
            .name("keeper".into())
            .spawn(move || run(&state, target, period))?;
        Ok((keeper, thread))
    }

    /// Asks for one more connection: a new connection just started, and others that
    /// arrived with it may be queued.
    pub(crate) fn nudge(&self) {
        let mut wanted = self.state.lock();
        wanted.connections = wanted.connections.saturating_add(1);
        self.state.wake.notify_one();
    }

    /// Lets the keeper thread end.
    pub(crate) fn stop(&self) {
        self.state.lock().stop = true;
        self.state.wake.notify_one();
    }
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Wanted> {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The keeper thread: waits for nudges (or the period), then connects.
fn run(state: &State, target: SocketAddr, period: Duration) {
    let mut wanted = state.lock();
    loop {
        if wanted.stop {
            return;
        }
        if wanted.connections == 0 {
            let (w, waited) = state
                .wake
                .wait_timeout(wanted, period)
                .unwrap_or_else(PoisonError::into_inner);
            wanted = w;
            if waited.timed_out() && wanted.connections == 0 {
                wanted.connections = 1;
            }
            continue;
        }
        let n = std::mem::take(&mut wanted.connections).min(MOST_AT_ONCE);
        drop(wanted);
        for _ in 0..n {
            if let Err(e) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
                debug!("keeper could not reach {target}: {e}");
                break;
            }
        }
        wanted = state.lock();
    }
}

/// The address to connect to for a listener on `addr` (loopback for a wildcard).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Tells a connection's first request from its later ones, by the client's address:
/// tiny_http does not say which connection a request came on.
pub(crate) struct NewConnections {
    /// When each client address last sent a request.
    seen: HashMap<SocketAddr, Instant>,
    /// An address silent for this long is forgotten: its connection has timed out (or,
    /// busy with a long download, counts once more as new, which costs one nudge).
    forget: Duration,
    swept: Instant,
}

/// Addresses remembered at most; past that the oldest are forgotten early.
const MOST_REMEMBERED: usize = 100_000;

impl NewConnections {
    /// Forgets addresses silent for `idle` (the idle timeout; zero: ten minutes).
    pub(crate) fn new(idle: Duration) -> NewConnections {
        NewConnections {
            seen: HashMap::new(),
            forget: if idle.is_zero() {
                Duration::from_secs(600)
            } else {
                idle
            },
            swept: Instant::now(),
        }
    }

    /// Records a request from `peer` at `now`; whether it is the first of its
    /// connection.
    pub(crate) fn first_request(&mut self, peer: SocketAddr, now: Instant) -> bool {
        if now.duration_since(self.swept) >= self.forget || self.seen.len() >= MOST_REMEMBERED {
            self.sweep(now);
        }
        match self.seen.insert(peer, now) {
            Some(last) => now.duration_since(last) >= self.forget,
            None => true,
        }
    }

    fn sweep(&mut self, now: Instant) {
        let mut keep = self.forget;
        self.seen.retain(|_, last| now.duration_since(*last) < keep);
        while self.seen.len() >= MOST_REMEMBERED / 2 && !keep.is_zero() {
            keep /= 2;
            self.seen.retain(|_, last| now.duration_since(*last) < keep);
        }
        self.swept = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_connection_counts_as_new_once_until_forgotten() {
        let mut c = NewConnections::new(Duration::from_secs(10));
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1000".parse().unwrap(),
            "127.0.0.1:1001".parse().unwrap(),
        );
        let t = Instant::now();
        assert!(c.first_request(a, t));
        assert!(!c.first_request(a, t + Duration::from_secs(9)));
        assert!(c.first_request(b, t + Duration::from_secs(9)));
        assert!(!c.first_request(b, t + Duration::from_secs(15)));
        // Silent for the whole idle timeout: the server closed it; the address is new.
        assert!(c.first_request(a, t + Duration::from_secs(20)));
    }

    #[test]
    fn nudges_become_connections_and_periods_too() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (keeper, thread) = Keeper::spawn(addr, Duration::from_secs(2)).unwrap();
        for _ in 0..3 {
            keeper.nudge();
        }
        for _ in 0..3 {
            listener.accept().unwrap();
        }
        // A quarter of the idle timeout later, one more without a nudge.
        let t = Instant::now();
        listener.accept().unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        keeper.stop();
        thread.join().unwrap();
    }
}

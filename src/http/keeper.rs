//! The keeper: a thread that opens and at once closes a loopback connection to our own
//! listener every quarter of the idle timeout.
//!
//! `SO_RCVTIMEO` on the listener (the idle timeout, inherited by every accepted socket,
//! [`super::socket`]) also bounds tiny_http's blocking `accept()`, and an error from
//! `accept()` ends its accept loop. A connection that arrives more often than the
//! timeout keeps `accept()` from ever timing out while the server is idle.
//!
//! (It once also freed connections that tiny_http's thread pool queued behind open
//! ones; the vendored tiny_http fixes that at its source: `vendor/tiny_http/PATCHED.md`.)

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::debug;

/// How long one loopback connection may take to be accepted by the kernel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Stops the keeper thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Keeper {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl Keeper {
    /// Starts the keeper for a listener on `addr` whose `SO_RCVTIMEO` is `idle`; with no
    /// idle timeout (zero) nothing needs keeping and no thread starts.
    pub(crate) fn spawn(
        addr: SocketAddr,
        idle: Duration,
    ) -> io::Result<(Keeper, Option<JoinHandle<()>>)> {
        let keeper = Keeper {
            state: Arc::new((Mutex::new(false), Condvar::new())),
        };
        if idle.is_zero() {
            return Ok((keeper, None));
        }
        let period = (idle / 4).max(Duration::from_millis(50));
        let target = reachable(addr);
        let state = keeper.state.clone();
        let thread = thread::Builder::new()
            .name("keeper".into())
            .spawn(move || run(&state, target, period))?;
        Ok((keeper, Some(thread)))
    }

    /// Lets the keeper thread end.
    pub(crate) fn stop(&self) {
        let (stop, wake) = &*self.state;
        *stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_one();
    }
}

/// The keeper thread: connects every `period` until stopped.
fn run(state: &(Mutex<bool>, Condvar), target: SocketAddr, period: Duration) {
    let (stop, wake) = state;
    let mut stopped = stop.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        // Waits out the period unless stopped meanwhile (or before it began).
        stopped = wake
            .wait_timeout_while(stopped, period, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if *stopped {
            return;
        }
        if let Err(e) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            debug!("keeper could not reach {target}: {e}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn connects_every_quarter_of_the_idle_timeout_until_stopped() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (keeper, thread) = Keeper::spawn(addr, Duration::from_secs(2)).unwrap();
        let t = Instant::now();
        listener.accept().unwrap();
        listener.accept().unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        keeper.stop();
        thread.unwrap().join().unwrap();
        let (_, none) = Keeper::spawn(addr, Duration::ZERO).unwrap();
        assert!(none.is_none(), "no idle timeout, nothing to keep");
    }
}

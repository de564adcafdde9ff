//! Socket-level operations tiny_http does not offer: timeouts inherited by accepted
//! connections, and closing a connection whose response broke mid-body.
//!
//! tiny_http owns every accepted socket and exposes none of them. Two kernel facts let
//! us act on them anyway (Linux):
//! - accepted sockets inherit `SO_RCVTIMEO` and `SO_SNDTIMEO` from the listener, so
//!   setting them there gives every connection an idle/read timeout and a send timeout;
//! - a TCP connection is identified by its address pair, so the socket of a request
//!   can be found among this process's descriptors (`/proc/self/fd`) and shut down.

use std::collections::HashMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

/// Sets `SO_RCVTIMEO` (if `read` is non-zero) and `SO_SNDTIMEO` (if `send` is non-zero)
/// on the listener; sockets accepted afterwards inherit both.
///
/// `SO_RCVTIMEO` also bounds `accept()` on the listener itself: the server keeps
/// tiny_http's accept loop alive by connecting to itself more often than that (see
/// `server.rs`).
pub(crate) fn set_listener_timeouts(
    listener: &TcpListener,
    read: Duration,
    send: Duration,
) -> io::Result<()> {
    let fd = listener.as_raw_fd();
    if !read.is_zero() {
        set_timeval(fd, libc::SO_RCVTIMEO, read)?;
    }
    if !send.is_zero() {
        set_timeval(fd, libc::SO_SNDTIMEO, send)?;
    }
    Ok(())
}

fn set_timeval(fd: RawFd, option: libc::c_int, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: fd is a valid socket for the duration of the call and tv outlives it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Shuts down (both directions) this process's TCP connection from `peer` to local
/// port `local_port`, so a client whose response broke mid-body sees the connection
/// close instead of waiting for bytes that will never come. Returns whether a socket
/// was found.
pub(crate) fn shutdown_connection(peer: SocketAddr, local_port: u16) -> bool {
    match find_connection(peer, local_port) {
        Some(fd) => {
            // SAFETY: fd is a socket descriptor we own.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
            true
        }
        None => false,
    }
}

/// A duplicate of this process's descriptor for the TCP connection from `peer` to
/// local port `local_port` (for `sendfile` and shutdown), found among
/// `/proc/self/fd`.
///
/// The descriptor is duplicated and its addresses checked again on the duplicate, so a
/// descriptor number closed and reused by another connection in between is never
/// returned; a connection is unique by its address pair. The last descriptor number
/// found for each peer is remembered, so keep-alive connections are found without a
/// scan.
pub(crate) fn find_connection(peer: SocketAddr, local_port: u16) -> Option<OwnedFd> {
    static LAST: Mutex<Option<HashMap<SocketAddr, RawFd>>> = Mutex::new(None);
    let remembered = LAST
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&peer).copied()));
    if let Some(fd) = remembered.and_then(|fd| verified_dup(fd, peer, local_port)) {
        return Some(fd);
    }
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd <= 2 || !is_connection(fd, peer, local_port) {
            continue;
        }
        if let Some(dup) = verified_dup(fd, peer, local_port) {
            if let Ok(mut last) = LAST.lock() {
                let map = last.get_or_insert_with(HashMap::new);
                if map.len() > 4096 {
                    map.clear();
                }
                map.insert(peer, fd);
            }
            return Some(dup);
        }
    }
    None
}

/// `dup(fd)` if the duplicate is the connection from `peer` to `local_port`.
fn verified_dup(fd: RawFd, peer: SocketAddr, local_port: u16) -> Option<OwnedFd> {
    // SAFETY: dup on any integer is memory-safe; a failure returns -1.
    let dup = unsafe { libc::dup(fd) };
    if dup < 0 {
        return None;
    }
    // SAFETY: dup is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    is_connection(dup, peer, local_port).then_some(owned)
}

/// Sends `len` bytes of `file` from `offset` to the socket `out` with `sendfile(2)`:
/// the kernel copies from the page cache to the socket, with no trip through user
/// space. Returns the bytes sent; an error says whether the file or the socket failed.
///
/// A blocking `sendfile` to a client that lets a few bytes through now and then can
/// wait many send timeouts in one call. So the socket's send timeout is enforced with
/// `poll` instead: each call is made only once the socket is writable, and is sized to
/// about the room in its send buffer, so it returns promptly; a client that accepts
/// nothing for the send timeout is dropped, as with plain writes.
pub(crate) fn sendfile(
    out: &OwnedFd,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> (u64, Option<SendfileError>) {
    let fd = out.as_raw_fd();
    let timeout_ms = send_timeout(fd).map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    let mut off = offset as libc::off_t;
    let end = offset + len;
    while (off as u64) < end {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ready == 0 {
            let e = io::Error::new(io::ErrorKind::TimedOut, "client stopped reading");
            return (off as u64 - offset, Some(SendfileError::Socket(e)));
        }
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return (off as u64 - offset, Some(SendfileError::Socket(e)));
        }
        let want = ((end - off as u64) as usize).min(free_send_space(fd).clamp(256 << 10, 2 << 20));
        // SAFETY: both descriptors are open for the duration; off is a live local.
        let n = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut off, want) };
        if n > 0 {
            continue;
        }
        let err = if n == 0 {
            let e = io::Error::from(io::ErrorKind::UnexpectedEof);
            return (off as u64 - offset, Some(SendfileError::File(e)));
        } else {
            io::Error::last_os_error()
        };
        match err.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            Some(libc::EIO) | Some(libc::EOVERFLOW) | Some(libc::ESPIPE) => {
                return (off as u64 - offset, Some(SendfileError::File(err)));
            }
            _ => return (off as u64 - offset, Some(SendfileError::Socket(err))),
        }
    }
    (len, None)
}

/// The socket's `SO_SNDTIMEO`, if set.
fn send_timeout(fd: RawFd) -> Option<Duration> {
    // SAFETY: timeval is plain data; len says its size.
    let mut tv: libc::timeval = unsafe { zeroed() };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: valid pointers to tv and len.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    let d = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    (rc == 0 && !d.is_zero()).then_some(d)
}

/// Roughly how many bytes the socket's send buffer can take now.
fn free_send_space(fd: RawFd) -> usize {
    let mut size: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    let mut queued: libc::c_int = 0;
    // SAFETY: valid pointers to ints of the sizes given.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut size as *mut libc::c_int).cast(),
            &mut len,
        ) == 0
            && libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) == 0
    };
    if !ok {
        return 0;
    }
    // SO_SNDBUF reports twice the payload room (the kernel counts its overhead too).
    ((size / 2) - queued).max(0) as usize
}

/// Which side of a `sendfile` failed.
#[derive(Debug)]
pub(crate) enum SendfileError {
    /// Reading the file.
    File(io::Error),
    /// Writing the socket (the client went away or stopped reading).
    Socket(io::Error),
}

fn is_connection(fd: RawFd, peer: SocketAddr, local_port: u16) -> bool {
    let same = |a: SocketAddr, b: SocketAddr| a.ip() == b.ip() && a.port() == b.port();
    matches!(address(fd, libc::getpeername), Some(p) if same(p, peer))
        && matches!(address(fd, libc::getsockname), Some(l) if l.port() == local_port)
}

type AddrFn = unsafe extern "C" fn(RawFd, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

fn address(fd: RawFd, get: AddrFn) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage is large enough for any address and len says so.
    let rc = unsafe {
        get(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { *(&storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { *(&storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Raises the soft limit on open files to the hard limit: every connection and every
/// cached file being served holds a descriptor, and tiny_http stops accepting for good
/// when `accept()` fails.
pub fn raise_open_file_limit() -> io::Result<u64> {
    // SAFETY: rlimit is plain data, written by the kernel.
    let mut lim: libc::rlimit = unsafe { zeroed() };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: valid pointer to an rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    #[test]
    fn shuts_down_the_matching_connection_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_a_server, a_peer) = listener.accept().unwrap();
        let mut b = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut b_server, _) = listener.accept().unwrap();

        assert!(shutdown_connection(a_peer, port));
        let mut buf = [0u8; 1];
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), 0, "a sees end of stream");

        b.write_all(b"x").unwrap();
        b_server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x", "b is untouched");
        let unknown: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!shutdown_connection(unknown, port));
    }

    #[test]
    fn accepted_sockets_inherit_timeouts() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        set_listener_timeouts(
            &listener,
            Duration::from_millis(200),
            Duration::from_secs(3),
        )
        .unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        assert_eq!(
            server_side.read_timeout().unwrap(),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            server_side.write_timeout().unwrap(),
            Some(Duration::from_secs(3))
        );
    }
}

//! Socket-level operations tiny_http does not offer: timeouts inherited by accepted
//! connections, and closing a connection whose response broke mid-body.
//!
//! tiny_http owns every accepted socket and exposes none of them. Two kernel facts let
//! us act on them anyway (Linux):
//! - accepted sockets inherit `SO_RCVTIMEO` and `SO_SNDTIMEO` from the listener, so
//!   setting them there gives every connection an idle/read timeout and a send timeout;
//! - a TCP connection is identified by its address pair, so the socket of a request
//!   can be found among this process's descriptors (`/proc/self/fd`) and shut down.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
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
///
/// The descriptor is duplicated and its addresses checked again on the duplicate
/// before the shutdown, so a descriptor number closed and reused by another
/// connection in between is never touched.
pub(crate) fn shutdown_connection(peer: SocketAddr, local_port: u16) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
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
        // SAFETY: dup on any integer is memory-safe; a failure returns -1.
        let dup = unsafe { libc::dup(fd) };
        if dup < 0 {
            continue;
        }
        let found = is_connection(dup, peer, local_port);
        if found {
            // SAFETY: dup is a descriptor we own.
            unsafe { libc::shutdown(dup, libc::SHUT_RDWR) };
        }
        // SAFETY: dup is a descriptor we own and close exactly once.
        unsafe { libc::close(dup) };
        if found {
            return true;
        }
    }
    false
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

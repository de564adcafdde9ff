//! Clients that say nothing, or stop reading, do not starve the others, and are dropped
//! after the idle and send timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::*;

/// A connection whose receive window is tiny, so the server's writes block quickly.
fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("ipv4 only")
    };
    // SAFETY: plain socket calls on a descriptor we own; structs are live locals.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + within;
    // Drain whatever the server had sent until the end of the stream.
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn half_open_and_stalled_clients_do_not_starve_a_fresh_request() {
    package_cache::http::socket::raise_open_file_limit().unwrap();
    let mirror = FakeMirror::start();
    mirror.put("/small", bytes(20 << 10, 1));
    mirror.put("/big", bytes(8 << 20, 2));
    let cache = TestCache::start_with(&[mirror.url()], |c| {
        c.threads = 160;
        c.idle_timeout = Duration::from_secs(3);
        c.send_timeout = Duration::from_secs(3);
    });
    assert_eq!(cache.get("/small").status, 200);
    assert_eq!(cache.get("/big").status, 200);
    cache.settle();

    // 300 connections that send half a request and then nothing.
    let mut half_open: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(cache.addr).unwrap();
            s.write_all(b"GET /small HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    // 128 clients that ask for 8 MiB and never read.
    let mut stalled: Vec<TcpStream> = (0..128)
        .map(|_| {
            let mut s = connect_small_window(cache.addr);
            s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let stats = cache.server.as_ref().unwrap().stats();
    assert!(
        wait_until(Duration::from_secs(5), || stats
            .active
            .load(Ordering::SeqCst)
            >= 128),
        "the stalled downloads occupy workers ({} active)",
        stats.active.load(Ordering::SeqCst)
    );

    let started = Instant::now();
    let r = cache.get("/small");
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(took < Duration::from_secs(1), "fresh request took {took:?}");

    // After the timeouts both kinds are gone and no worker is held.
    assert!(wait_until(Duration::from_secs(10), || stats
        .active
        .load(Ordering::SeqCst)
        == 0));
    for s in half_open.iter_mut().take(20) {
        assert!(
            closed(s, Duration::from_secs(5)),
            "half-open connection dropped"
        );
    }
    for s in stalled.iter_mut().take(5) {
        assert!(closed(s, Duration::from_secs(10)), "stalled reader dropped");
    }
    eprintln!("fresh request answered in {took:?} beside 300 half-open and 128 stalled clients");
}

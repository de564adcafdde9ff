//! A small load generator for `bench/run`: N clients start together (one process, one
//! thread each, so no process start-up skews the timings), each downloads URL R times
//! on fresh connections, and one line reports the result:
//!
//! ```text
//! cargo run --release --example loadgen -- http://127.0.0.1:4000/distfiles/x 32 1
//! clients=32 rounds=1 bytes=671088640 wall=1.0213 slowest=1.0210 fastest=1.0007 errors=0
//! ```
//!
//! `wall` runs from the first client's start to the last client's end; `slowest` and
//! `fastest` are single clients' times.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), clients, rounds) = (
        args.first().cloned(),
        args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1usize),
        args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1usize),
    ) else {
        eprintln!("usage: loadgen URL [CLIENTS] [ROUNDS]");
        std::process::exit(2);
    };
    let Some((host, path)) = url
        .strip_prefix("http://")
        .and_then(|r| r.find('/').map(|i| (r[..i].to_owned(), r[i..].to_owned())))
    else {
        eprintln!("loadgen: {url}: expected http://HOST:PORT/PATH");
        std::process::exit(2);
    };
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (barrier, host, path) = (barrier.clone(), host.clone(), path.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let (mut bytes, mut errors) = (0u64, 0u64);
                for _ in 0..rounds {
                    match fetch(&host, &path) {
                        Ok(n) => bytes += n,
                        Err(e) => {
                            eprintln!("loadgen: {e}");
                            errors += 1;
                        }
                    }
                }
                (start, start.elapsed(), bytes, errors)
            })
        })
        .collect();
    barrier.wait();
    let results: Vec<(Instant, Duration, u64, u64)> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    // Measured from the first client's start.
    let t0 = results
        .iter()
        .map(|r| r.0)
        .min()
        .unwrap_or_else(Instant::now);
    let ends = results
        .iter()
        .map(|(s, d, _, _)| (*s + *d).duration_since(t0));
    let wall = ends.clone().max().unwrap_or_default();
    let slowest = results.iter().map(|r| r.1).max().unwrap_or_default();
    let fastest = results.iter().map(|r| r.1).min().unwrap_or_default();
    let bytes: u64 = results.iter().map(|r| r.2).sum();
    let errors: u64 = results.iter().map(|r| r.3).sum();
    println!(
        "clients={clients} rounds={rounds} bytes={bytes} wall={:.4} slowest={:.4} fastest={:.4} errors={errors}",
        wall.as_secs_f64(),
        slowest.as_secs_f64(),
        fastest.as_secs_f64()
    );
}

/// One GET on a fresh connection; the body is counted and dropped.
fn fetch(host: &str, path: &str) -> Result<u64, String> {
    let stream = TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    write!(
        w,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.split(' ').nth(1) != Some("200") {
        return Err(format!("{path}: {}", line.trim()));
    }
    let mut len = None;
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':')
            && n.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse::<u64>().ok();
        }
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    match len {
        Some(want) if want != got => Err(format!("{path}: {got} of {want} bytes")),
        _ => Ok(got),
    }
}

//! An offline demo: a local "mirror" (made with the same framework) serving one file,
//! a package-cache in front of it, and two downloads through the cache.
//!
//! ```text
//! cargo run --example offline_demo
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use package_cache::config::Config;
use package_cache::http::{Request, Response, Router, Server, ServerConfig};

const NAME: &str = "/distfiles/demo-1.0.tar.gz";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The upstream mirror: 8 MiB of bytes under one name, 404 for everything else.
    let payload: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let served = payload.clone();
    let mirror = Server::bind(
        "127.0.0.1:0",
        Router::new().mount("/", move |req: &mut Request| {
            if req.path_info() == NAME {
                Response::bytes("application/gzip", served.clone())
            } else {
                Response::error(404)
            }
        }),
        ServerConfig {
            threads: 4,
            ..ServerConfig::default()
        },
    )?
    .spawn()?;

    // 2. The cache, with the mirror as its only source, on a temporary directory.
    let cache_dir = std::env::temp_dir().join(format!("package-cache-demo-{}", std::process::id()));
    let config = Config {
        sources: vec![format!("http://{}", mirror.local_addr())],
        host: "127.0.0.1".into(),
        port: 0,
        cache: cache_dir.clone(),
        threads: 8,
        ..Config::default()
    };
    let (cache, _) = package_cache::app::start(&config)?;
    println!(
        "mirror on {}, cache on {}",
        mirror.local_addr(),
        cache.local_addr()
    );

    // 3. Fetch twice: a miss (fetched, streamed and stored), then a hit (from disk).
    for round in 1..=2 {
        let started = Instant::now();
        let (status, x_cache, body) = fetch(cache.local_addr(), NAME)?;
        println!(
            "round {round}: {status} X-Cache: {x_cache}, {} bytes in {:?}, identical: {}",
            body.len(),
            started.elapsed(),
            body == payload
        );
    }
    println!("stored at {}", cache_dir.join(&NAME[1..]).display());
    drop(cache);
    std::fs::remove_dir_all(cache_dir)?;
    Ok(())
}

/// A minimal HTTP/1.1 GET: status, X-Cache and body.
fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut conn = TcpStream::connect(addr)?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let x_cache = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Cache: "))
        .unwrap_or("-")
        .to_owned();
    Ok((status, x_cache, raw[(split + 4).min(raw.len())..].to_vec()))
}

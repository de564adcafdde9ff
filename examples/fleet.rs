//! The fleet benchmark's load generator (`bench/fleet` drives it): many client machines,
//! each fetching a "world update" of distfiles, the way portage does (one file after
//! another, a fresh connection each, flat or GLEP 75 paths).
//!
//! ```text
//! fleet pool DIR [--files N] [--min BYTES] [--max BYTES] [--seed S]
//!     writes N files of MIN..MAX bytes (log-uniform) into DIR and DIR/../pool.txt
//! fleet run BASE_URL POOL_TXT [--machines M] [--concurrency C] [--per-machine K]
//!                              [--zipf S] [--seed S]
//!     M machines, at most C at once (one thread each), each asks BASE_URL for K
//!     distinct files drawn from the pool with Zipf(S) popularity; prints one line of
//!     key=value results
//! ```
//!
//! Every body is checked against the pool's length and checksum. `unique_bytes` is the
//! sum of the sizes of the distinct files asked for: what the origin must have sent
//! if every file was downloaded exactly once.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use package_cache::gentoo::distfiles::store_path;

/// Bodies are generated and checked in blocks of this size.
const BLOCK: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("pool") => pool(&args[1..]),
        Some("run") => run(&args[1..]),
        _ => Err("usage: fleet pool DIR [...] | fleet run BASE_URL POOL_TXT [...]".into()),
    };
    if let Err(e) = result {
        eprintln!("fleet: {e}");
        std::process::exit(1);
    }
}

/// `--name value` from `args`, parsed, or `default`.
fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a value")),
    }
}

// ---------------------------------------------------------------------------------
// The pool

/// SplitMix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// Folds one block into a running checksum (cheap: word-wise, no per-byte chain).
fn mix(sum: u64, block: &[u8]) -> u64 {
    let mut acc = block.len() as u64;
    for (i, w) in block.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..w.len()].copy_from_slice(w);
        acc = acc
            .wrapping_add(u64::from_le_bytes(word).wrapping_mul(0x9e37_79b9_7f4a_7c15 | i as u64));
    }
    sum.rotate_left(7) ^ acc
}

struct PoolFile {
    name: String,
    size: u64,
    sum: u64,
}

fn pool(args: &[String]) -> Result<(), String> {
    let dir = Path::new(args.first().ok_or("pool: which directory?")?);
    let files: usize = flag(args, "--files", 400)?;
    let min: u64 = flag(args, "--min", 10_000)?;
    let max: u64 = flag(args, "--max", 5_000_000)?;
    let mut seed: u64 = flag(args, "--seed", 1)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let list = dir.parent().unwrap_or(Path::new(".")).join("pool.txt");
    let mut out = BufWriter::new(File::create(&list).map_err(|e| e.to_string())?);
    let mut total = 0u64;
    for i in 0..files {
        // Log-uniform: as many 10-100 KB files as 0.5-5 MB ones, like a distfiles mirror.
        let size = ((min as f64).ln() + unit(&mut seed) * ((max as f64).ln() - (min as f64).ln()))
            .exp() as u64;
        let name = if i % 7 == 0 {
            format!("lib+extra-{i}.{}.tar.xz", i % 13)
        } else {
            format!("pkg{i}-{}.{}.tar.gz", i % 9, i % 17)
        };
        let mut body = seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut w = BufWriter::new(File::create(dir.join(&name)).map_err(|e| e.to_string())?);
        let mut sum = 0u64;
        let mut left = size as usize;
        let mut block = vec![0u8; BLOCK];
        while left > 0 {
            let n = left.min(BLOCK);
            for chunk in block[..n].chunks_mut(8) {
                let v = next(&mut body).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            sum = mix(sum, &block[..n]);
            w.write_all(&block[..n]).map_err(|e| e.to_string())?;
            left -= n;
        }
        w.flush().map_err(|e| e.to_string())?;
        writeln!(out, "{name} {size} {sum:016x}").map_err(|e| e.to_string())?;
        total += size;
    }
    out.flush().map_err(|e| e.to_string())?;
    println!(
        "pool: {files} files, {:.1} MB, in {} (list: {})",
        total as f64 / 1e6,
        dir.display(),
        list.display()
    );
    Ok(())
}

fn read_pool(path: &str) -> Result<Vec<PoolFile>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let (Some(name), Some(size), Some(sum)) = (w.next(), w.next(), w.next()) else {
                return Err(format!("{path}: bad line {l:?}"));
            };
            Ok(PoolFile {
                name: name.to_owned(),
                size: size
                    .parse()
                    .map_err(|_| format!("{path}: bad size in {l:?}"))?,
                sum: u64::from_str_radix(sum, 16).map_err(|_| format!("{path}: bad sum"))?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// The fleet

/// What one request gave.
struct Sample {
    ttfb: Duration,
    bytes: u64,
}

fn run(args: &[String]) -> Result<(), String> {
    let base = args.first().ok_or("run: which base URL?")?;
    let host = base
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/').to_owned())
        .ok_or("run: the base URL is http://HOST:PORT")?;
    let files = read_pool(args.get(1).ok_or("run: which pool list?")?)?;
    let machines: usize = flag(args, "--machines", 500)?;
    let concurrency: usize = flag(args, "--concurrency", 200)?;
    let per_machine: usize = flag(args, "--per-machine", 20)?;
    let zipf: f64 = flag(args, "--zipf", 1.0)?;
    let seed: u64 = flag(args, "--seed", 7)?;
    if per_machine > files.len() {
        return Err("--per-machine is larger than the pool".into());
    }

    // Popularity: Zipf over a shuffled order, so popularity does not follow size.
    let mut order: Vec<usize> = (0..files.len()).collect();
    let mut s = seed;
    for i in (1..order.len()).rev() {
        order.swap(i, (next(&mut s) % (i as u64 + 1)) as usize);
    }
    let weights: Vec<f64> = (1..=files.len())
        .map(|rank| 1.0 / (rank as f64).powf(zipf))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(files.len());
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }

    // Each machine's world update, drawn up front so every run asks the same.
    let updates: Vec<Vec<(usize, bool)>> = (0..machines)
        .map(|m| {
            let mut s = seed ^ (m as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f);
            let mut picked = BTreeSet::new();
            let mut list = Vec::new();
            while list.len() < per_machine {
                let u = unit(&mut s);
                let rank = cdf.partition_point(|&c| c < u).min(files.len() - 1);
                let file = order[rank];
                if picked.insert(file) {
                    // Half the machines' requests hashed (portage), half flat (pkgcore).
                    list.push((file, next(&mut s) & 1 == 0));
                }
            }
            list
        })
        .collect();
    let unique: BTreeSet<usize> = updates.iter().flatten().map(|&(f, _)| f).collect();
    let unique_bytes: u64 = unique.iter().map(|&f| files[f].size).sum();

    let next_machine = AtomicUsize::new(0);
    let samples: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.min(machines) {
            scope.spawn(|| {
                let mut buf = vec![0u8; BLOCK];
                let mut mine = Vec::new();
                loop {
                    let m = next_machine.fetch_add(1, Ordering::Relaxed);
                    let Some(update) = updates.get(m) else { break };
                    for &(f, hashed) in update {
                        let file = &files[f];
                        let path = if hashed {
                            store_path(&file.name)
                        } else {
                            format!("/distfiles/{}", file.name)
                        };
                        let path = path.replace('+', "%2B");
                        match fetch(&host, &path, file, &mut buf) {
                            Ok(s) => mine.push(s),
                            Err(e) => errors.lock().unwrap().push(e),
                        }
                    }
                }
                samples.lock().unwrap().extend(mine);
            });
        }
    });
    let wall = started.elapsed();
    let mut samples = samples.into_inner().unwrap();
    let errors = errors.into_inner().unwrap();
    for e in errors.iter().take(5) {
        eprintln!("fleet: {e}");
    }
    samples.sort_by_key(|s| s.ttfb);
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |s| s.ttfb.as_secs_f64() * 1000.0)
    };
    let bytes: u64 = samples.iter().map(|s| s.bytes).sum();
    println!(
        "machines={machines} concurrency={concurrency} per_machine={per_machine} \
         requests={} errors={} wall={:.2} rps={:.0} bytes={bytes} mbps={:.0} \
         unique_files={} unique_bytes={unique_bytes} ttfb_p50_ms={:.1} ttfb_p99_ms={:.1} \
         ttfb_max_ms={:.1}",
        samples.len(),
        errors.len(),
        wall.as_secs_f64(),
        samples.len() as f64 / wall.as_secs_f64(),
        bytes as f64 / 1e6 / wall.as_secs_f64(),
        unique.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} requests failed", errors.len()))
    }
}

/// One `GET` on a fresh connection; checks status, length and checksum.
fn fetch(host: &str, path: &str, file: &PoolFile, buf: &mut [u8]) -> Result<Sample, String> {
    let start = Instant::now();
    let stream = TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    write!(
        w,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Wget/1.21\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("{path}: {e}"))?;
    let ttfb = start.elapsed();
    if line.split(' ').nth(1) != Some("200") {
        return Err(format!("{path}: {}", line.trim()));
    }
    let mut len = None;
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| format!("{path}: {e}"))?;
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
    if len != Some(file.size) {
        return Err(format!(
            "{path}: Content-Length {len:?}, want {}",
            file.size
        ));
    }
    let mut left = file.size as usize;
    let mut sum = 0u64;
    while left > 0 {
        let n = left.min(buf.len());
        r.read_exact(&mut buf[..n])
            .map_err(|e| format!("{path}: {e} with {left} bytes to go"))?;
        sum = mix(sum, &buf[..n]);
        left -= n;
    }
    if sum != file.sum {
        return Err(format!("{path}: wrong bytes"));
    }
    Ok(Sample {
        ttfb,
        bytes: file.size,
    })
}

//! Benchmark of the Gentoo repository index and the digest verifier (issue 15):
//!
//! ```text
//! cargo run --release --example repo_index_bench [-- DIR]
//! ```
//!
//! Generates a synthetic repository the size of Gentoo's (32,000 md5-cache entries,
//! 70,000 DIST lines; `package_cache::gentoo::repo::synth`) in DIR (default: a
//! temporary directory, removed at the end), then reports, one `key=value` line each:
//! - `build_ms`: reading it all (first reading, background thread, warm page cache);
//! - `rss_delta_kib` / `rss_delta_trimmed_kib`: resident memory of the process after
//!   minus before (from `/proc/self/status` VmRSS; "trimmed" after `malloc_trim(0)`
//!   gave back what the parsing left in the allocator), and `heap_kib`: the bytes the
//!   index itself counts (capacities);
//! - `lookup_ns`: one lookup (URLs expanded), averaged over 200,000;
//! - `idle_cpu_ms_per_s`: CPU the follower thread spends per second while nothing
//!   changes, and `hot_cpu_ms_per_s` during the minute after a sync, when every
//!   Manifest is checked at each poll;
//! - `sync_pickup_ms`: a sync that adds a version to 500 packages (new md5-cache entry
//!   and rewritten Manifest each, as rsync writes them), until all 500 new names are
//!   found with their size, at the default 2 s poll; `sync_apply_ms`: the same when
//!   the index is woken at once (`RepoIndex::refresh`), i.e. the work itself;
//! - `verify_*_mbps`: the streaming verifier, MB/s (10^6 bytes) on 256 MiB in 1 MiB
//!   writes: BLAKE2B alone, BLAKE2B + SHA512 (a Manifest entry), BLAKE2B + SHA1 (a
//!   binhost entry).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use package_cache::gentoo::repo::synth::{self, Spec};
use package_cache::gentoo::repo::{Digests, Expected, Lookup, RepoIndex, RepoOptions, Verifier};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_ms() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1000.0 + tv.tv_usec as f64 / 1000.0;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn trim() {
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn wait_all(index: &RepoIndex, names: &[String], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let all = names
            .iter()
            .all(|n| matches!(index.lookup(n), Lookup::Found(d) if d.size.is_some()));
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "sync not picked up within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn verify_mbps(digests: Digests, data: &[u8], rounds: usize) -> f64 {
    let expected = Expected {
        size: None,
        digests,
    };
    let start = Instant::now();
    let mut v = Verifier::new(expected);
    for _ in 0..rounds {
        v.update(data);
    }
    let _ = v.finish();
    (data.len() * rounds) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let arg = std::env::args().nth(1).map(PathBuf::from);
    let temp = arg.is_none();
    let dir = arg.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pc-repo-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let summary = synth::generate(&dir, &Spec::gentoo_sized()).expect("generate");
    println!(
        "generated entries={} dists={} packages={} in {}ms at {}",
        summary.entries,
        summary.dists,
        summary.packages.len(),
        started.elapsed().as_millis(),
        dir.display()
    );
    let names = summary.names.clone();
    trim();
    let before = rss_kib();

    let started = Instant::now();
    let index = RepoIndex::start(std::slice::from_ref(&dir), RepoOptions::default()).unwrap();
    assert!(index.wait_ready(Duration::from_secs(600)));
    let build = started.elapsed();
    let after = rss_kib();
    trim();
    let after_trim = rss_kib();
    let stats = index.stats();
    println!("build_ms={}", build.as_millis());
    println!(
        "names={} files={} records={}",
        stats.names, stats.files, stats.records
    );
    println!("rss_delta_kib={}", after.saturating_sub(before));
    println!(
        "rss_delta_trimmed_kib={}",
        after_trim.saturating_sub(before)
    );
    println!("heap_kib={}", stats.heap_bytes / 1024);

    let n = 200_000;
    let started = Instant::now();
    let mut found = 0;
    for i in 0..n {
        if let Lookup::Found(d) = index.lookup(&names[(i * 7919) % names.len()]) {
            found += d.urls.len().min(1);
        }
    }
    println!(
        "lookup_ns={} (with URLs: {found} of {n})",
        started.elapsed().as_nanos() / n as u128
    );

    let cpu = cpu_ms();
    std::thread::sleep(Duration::from_secs(6));
    println!("idle_cpu_ms_per_s={:.2}", (cpu_ms() - cpu) / 6.0);

    let new = synth::bump(&dir, &summary, 500, 1).expect("bump");
    let pickup = wait_all(&index, &new, Duration::from_secs(60));
    println!("sync_pickup_ms={} (poll 2000 ms)", pickup.as_millis());

    let cpu = cpu_ms();
    std::thread::sleep(Duration::from_secs(6));
    println!("hot_cpu_ms_per_s={:.2}", (cpu_ms() - cpu) / 6.0);

    let new = synth::bump(&dir, &summary, 500, 2).expect("bump");
    index.refresh();
    let apply = wait_all(&index, &new, Duration::from_secs(60));
    println!("sync_apply_ms={}", apply.as_millis());
    trim();
    println!(
        "rss_after_syncs_delta_kib={} heap_kib={}",
        rss_kib().saturating_sub(before),
        index.stats().heap_bytes / 1024
    );
    drop(index);

    let data = vec![0x5au8; 1 << 20];
    let rounds = 256;
    let b2 = Digests {
        blake2b: Some([0; 64]),
        ..Digests::default()
    };
    let manifest = Digests {
        sha512: Some([0; 64]),
        ..b2.clone()
    };
    let binhost = Digests {
        sha1: Some([0; 20]),
        ..b2.clone()
    };
    println!("verify_blake2b_mbps={:.0}", verify_mbps(b2, &data, rounds));
    println!(
        "verify_blake2b_sha512_mbps={:.0}",
        verify_mbps(manifest, &data, rounds)
    );
    println!(
        "verify_blake2b_sha1_mbps={:.0}",
        verify_mbps(binhost, &data, rounds)
    );
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

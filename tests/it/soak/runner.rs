//! The runner: two package-cache processes on one cache directory, clients that ask
//! them for files, a chaos thread that deletes files and kills processes, and the
//! phases of a run from the chaos to the graceful stop.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use super::checker::{Counters, Kind, Verdict, check_store, judge, leftovers, quiesce};
use super::faults::{FaultCounters, picker};
use super::{NEGATIVE_TTL_SECS, READ_TIMEOUT_SECS, Settings, Spec, make_files};
use crate::support::client::{self, Answer};
use crate::support::process::Process;
use crate::support::rng::Rng;
use crate::support::*;

// ---------------------------------------------------------------------------------
// The client: support's raw client, which never panics and reports what arrived.

/// A client's connection, kept between requests when they use keep-alive.
type Kept = Option<(SocketAddr, Conn)>;

/// One request on a fresh connection, or with `keep` on the kept one (if it is to
/// `addr`), which is kept again if the answer was complete and the server did not
/// say close: a response that overran its framing then shows in the next one.
fn exchange(
    kept: &mut Kept,
    addr: SocketAddr,
    method: &str,
    path: &str,
    from: Option<u64>,
    keep: bool,
) -> Answer {
    let reuse = kept.take().filter(|(a, _)| keep && *a == addr);
    let mut conn = match reuse {
        Some((_, c)) => c,
        None => {
            let Some(c) = Conn::connect(addr) else {
                return Answer::Nothing { timed_out: false };
            };
            let _ = c.stream().set_write_timeout(Some(Duration::from_secs(5)));
            c
        }
    };
    let range = from.map_or(String::new(), |n| format!("Range: bytes={n}-\r\n"));
    let connection = if keep { "keep-alive" } else { "close" };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: soak\r\n{range}Connection: {connection}\r\n\r\n"
    );
    if conn.try_send(&req).is_err() {
        return Answer::Nothing { timed_out: false };
    }
    let answer = conn.answer(method == "HEAD");
    if let Answer::Reply(r) = &answer
        && keep
        && r.reusable()
    {
        *kept = Some((addr, conn));
    }
    answer
}

/// Sends one request on a fresh connection and counts its verdict; returns it with
/// the answer.
fn run_one(
    addr: SocketAddr,
    spec: &Spec,
    path: &str,
    kind: Kind,
    counters: &Counters,
) -> (Verdict, Answer) {
    run_on(&mut None, false, addr, spec, path, kind, counters)
}

/// [`run_one`] on a kept connection if `keep`.
fn run_on(
    kept: &mut Kept,
    keep: bool,
    addr: SocketAddr,
    spec: &Spec,
    path: &str,
    kind: Kind,
    counters: &Counters,
) -> (Verdict, Answer) {
    let (method, from) = match kind {
        Kind::Get => ("GET", None),
        Kind::Range(n) => ("GET", Some(n)),
        Kind::Head => ("HEAD", None),
    };
    let answer = exchange(kept, addr, method, path, from, keep);
    if keep {
        counters.keep_alive.fetch_add(1, Ordering::Relaxed);
    }
    let verdict = judge(spec, kind, &answer, counters);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    match &verdict {
        Verdict::Ok => counters.ok.fetch_add(1, Ordering::Relaxed),
        Verdict::Failed => counters.failed.fetch_add(1, Ordering::Relaxed),
        Verdict::Corrupt(why) => {
            let tag = match &answer {
                Answer::Reply(g) => g.header("x-cache").unwrap_or("-").to_owned(),
                _ => "-".into(),
            };
            counters.note(format!(
                "CORRUPT {method} {path} {kind:?} via {addr} (X-Cache {tag}): {why}"
            ));
            counters.corrupt.fetch_add(1, Ordering::Relaxed)
        }
    };
    (verdict, answer)
}

// ---------------------------------------------------------------------------------
// The servers

struct Servers {
    procs: Mutex<[Option<Process>; 2]>,
    addrs: RwLock<[SocketAddr; 2]>,
    args: Vec<String>,
    /// Log lines of processes that ended.
    old_logs: Mutex<Vec<String>>,
}

impl Servers {
    fn start(mirror: &FakeMirror, cache: &Path) -> Servers {
        let args: Vec<String> = [
            "--source",
            &mirror.url(),
            "--cache",
            &cache.display().to_string(),
            "--read-timeout",
            &READ_TIMEOUT_SECS.to_string(),
            "--connect-timeout",
            "2",
            "--idle-timeout",
            "10",
            "--send-timeout",
            "10",
            "--shutdown-grace",
            "5",
            "--threads",
            "96",
            "--negative-ttl",
            &NEGATIVE_TTL_SECS.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = Servers::spawn(&args);
        let b = Servers::spawn(&args);
        Servers {
            addrs: RwLock::new([a.addr, b.addr]),
            procs: Mutex::new([Some(a), Some(b)]),
            args,
            old_logs: Mutex::new(Vec::new()),
        }
    }

    fn spawn(args: &[String]) -> Process {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Process::start(&args)
    }

    fn addr(&self, slot: usize) -> SocketAddr {
        self.addrs.read().unwrap()[slot]
    }

    /// SIGKILLs the process in `slot`, waits `pause`, starts another on the same cache.
    fn kill_and_restart(&self, slot: usize, pause: Duration) {
        let mut procs = self.procs.lock().unwrap();
        if let Some(mut p) = procs[slot].take() {
            p.signal(libc::SIGKILL);
            assert!(
                p.wait_exit(Duration::from_secs(10)).is_some(),
                "a SIGKILLed server did not exit"
            );
            self.old_logs.lock().unwrap().extend(p.drain_log());
        }
        thread::sleep(pause);
        let p = Servers::spawn(&self.args);
        self.addrs.write().unwrap()[slot] = p.addr;
        procs[slot] = Some(p);
    }

    /// SIGTERM both, wait for them to exit; returns their exit codes.
    fn stop(&self) -> Vec<Option<i32>> {
        let mut procs = self.procs.lock().unwrap();
        let mut codes = Vec::new();
        for p in procs.iter_mut().flatten() {
            p.signal(libc::SIGTERM);
        }
        for slot in procs.iter_mut() {
            if let Some(mut p) = slot.take() {
                codes.push(p.wait_exit(Duration::from_secs(15)).and_then(|s| s.code()));
                self.old_logs.lock().unwrap().extend(p.drain_log());
            }
        }
        codes
    }

    fn logs(&self) -> Vec<String> {
        self.old_logs.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------
// A run

pub fn run(seed: u64) {
    let began = Instant::now();
    let mut rng = Rng::new(seed);
    let s = Settings::from_env(&mut rng);
    let (files, cold) = make_files(&s);
    let (files, cold) = (Arc::new(files), Arc::new(cold));
    let present: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].body.is_some())
        .collect();
    let missing: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].body.is_none())
        .collect();
    let total_bytes: usize = files.iter().map(Spec::len).sum();
    eprintln!(
        "soak: seed {seed}, {} mode: {} files ({} MB) + {} missing, {} clients, {:?} or {} requests, kills at {:?}",
        if s.long { "long" } else { "quick" },
        present.len(),
        total_bytes >> 20,
        missing.len(),
        s.clients,
        s.chaos,
        s.max_requests,
        s.kills
    );

    let mirror = FakeMirror::start();
    for f in files.iter() {
        if let Some(b) = &f.body {
            mirror.put(&f.path, b.as_slice().to_vec());
        }
    }
    for f in cold.iter() {
        let len = f.len() as u64;
        // About a second upstream: every client of the coalescing phase is there
        // before it ends.
        mirror.put_file(
            &f.path,
            FakeFile::new(f.body.as_ref().unwrap().as_slice().to_vec())
                .with_fault(Fault::Rate(len)),
        );
    }
    let faults_on = Arc::new(AtomicBool::new(true));
    let fault_counts = Arc::new(FaultCounters::default());
    let lens = files
        .iter()
        .map(|f| (f.path.clone(), f.len()))
        .collect::<HashMap<_, _>>();
    mirror.set_picker(Some(picker(
        rng.next_u64(),
        lens,
        faults_on.clone(),
        s.fault_rate,
        fault_counts.clone(),
    )));

    let dir = TempDir::new("soak");
    let root = dir.path().to_path_buf();
    let servers = Arc::new(Servers::start(&mirror, &root));
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let deletions = Arc::new(AtomicU64::new(0));

    // --- Phase 1: chaos --------------------------------------------------------
    let chaos_start = Instant::now();
    let deadline = chaos_start + s.chaos;
    // A hot set that many clients want at once (and that gets deleted often).
    let hot: Vec<usize> = (0..16)
        .map(|_| present[rng.below(present.len() as u64) as usize])
        .collect();
    let clients: Vec<_> = (0..s.clients)
        .map(|t| {
            let (files, servers, counters, stop) = (
                files.clone(),
                servers.clone(),
                counters.clone(),
                stop.clone(),
            );
            let (present, missing, hot) = (present.clone(), missing.clone(), hot.clone());
            let mut rng = Rng::new(rng.next_u64());
            let max = s.max_requests;
            // A quarter of the clients keep their connections open between requests.
            let keeps = t % 4 == 3;
            thread::spawn(move || {
                let mut kept: Kept = None;
                let mut n = t;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    if counters.requests.load(Ordering::Relaxed) >= max {
                        break;
                    }
                    n += 1;
                    let r = rng.below(100);
                    let i = if r < 4 {
                        missing[rng.below(missing.len() as u64) as usize]
                    } else if r < 45 {
                        hot[rng.below(hot.len() as u64) as usize]
                    } else {
                        present[rng.below(present.len() as u64) as usize]
                    };
                    let spec = &files[i];
                    let path = &spec.forms[rng.below(spec.forms.len() as u64) as usize];
                    let kind = match rng.below(100) {
                        0..72 => Kind::Get,
                        72..90 if spec.len() > 0 => Kind::Range(rng.below(spec.len() as u64)),
                        _ => Kind::Head,
                    };
                    // Keep-alive clients stay with one server for a few requests.
                    let slot = if keeps { (n / 4) % 2 } else { n % 2 };
                    let addr = servers.addr(slot);
                    let (_, answer) = run_on(&mut kept, keeps, addr, spec, path, kind, &counters);
                    if matches!(answer, Answer::Nothing { .. }) {
                        // Refused: a server is being restarted. Back off a little.
                        thread::sleep(rng.millis(20, 120));
                    }
                }
            })
        })
        .collect();

    let chaos = {
        let (files, servers, stop, kills, deletions, counters) = (
            files.clone(),
            servers.clone(),
            stop.clone(),
            kills.clone(),
            deletions.clone(),
            counters.clone(),
        );
        let hot = hot.clone();
        let (long, max_requests) = (s.long, s.max_requests);
        let root = root.clone();
        let mut rng = Rng::new(rng.next_u64());
        let plan = s.kills.clone();
        let delete_every = s.delete_every;
        thread::spawn(move || {
            let mut next_kill = 0;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(rng.millis(
                    delete_every.as_millis() as u64 / 4,
                    delete_every.as_millis() as u64 * 7 / 4,
                ));
                // Delete a complete file behind the servers' back (often a hot one, so
                // that many clients miss it at once).
                for _ in 0..5 {
                    let i = if rng.chance(0.4) {
                        hot[rng.below(hot.len() as u64) as usize]
                    } else {
                        rng.below(files.len() as u64) as usize
                    };
                    let spec = &files[i];
                    if std::fs::remove_file(root.join(&spec.stored)).is_ok() {
                        deletions.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                let done = counters.requests.load(Ordering::Relaxed);
                let by_count = !long
                    && done >= max_requests * (next_kill as u64 + 1) / (plan.len() as u64 + 1);
                if next_kill < plan.len() && (by_count || chaos_start.elapsed() >= plan[next_kill])
                {
                    next_kill += 1;
                    let slot = rng.below(2) as usize;
                    let pause = rng.millis(0, 400);
                    servers.kill_and_restart(slot, pause);
                    kills.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    for c in clients {
        c.join().expect("a client thread panicked");
    }
    stop.store(true, Ordering::SeqCst);
    chaos.join().expect("the chaos thread panicked");
    faults_on.store(false, Ordering::SeqCst);
    let chaos_time = chaos_start.elapsed();
    let chaos_requests = counters.requests.load(Ordering::Relaxed);
    eprintln!(
        "soak: chaos phase: {chaos_requests} requests in {:.1}s, {} corrupt so far",
        chaos_time.as_secs_f64(),
        counters.corrupt.load(Ordering::Relaxed)
    );
    assert_eq!(
        counters.corrupt.load(Ordering::Relaxed),
        0,
        "CORRUPT answers during the chaos phase (seed {seed}): {:#?}",
        counters.problems.lock().unwrap()
    );

    // --- Phase 2: quiet; the downloads still running finish ------------------------
    assert!(
        quiesce(&mirror, &root, Duration::from_secs(30)),
        "downloads still running 30 s after the chaos stopped (seed {seed}): mirror active {}, parts {:?}",
        mirror.active(),
        leftovers(&root)
    );
    // Both processes started after the last kill, so their start-up sweep removes what
    // the killed ones left; nothing else may remain once no download runs.
    let clean = wait_until(Duration::from_secs(5), || leftovers(&root).is_empty());
    let left_after_chaos = leftovers(&root);
    assert!(
        clean,
        "temporary files left with no download running (seed {seed}): {left_after_chaos:?}"
    );
    let by_store: HashMap<String, &Spec> = files
        .iter()
        .chain(cold.iter())
        .map(|f| (f.stored.clone(), f))
        .collect();
    let problems = check_store(&root, &by_store);
    assert!(
        problems.is_empty(),
        "the cache holds wrong files (seed {seed}): {problems:#?}"
    );
    let stored_after_chaos = list_files(&root).len();

    // --- Phase 3: coalescing, no faults, no deletions --------------------------------
    // 8 clients per cold file, half on each process, all at once: one upstream GET each.
    let per_file = 8;
    let barrier = Arc::new(Barrier::new(cold.len() * per_file));
    let herd: Vec<_> = (0..cold.len() * per_file)
        .map(|k| {
            let (cold, servers, counters, barrier) = (
                cold.clone(),
                servers.clone(),
                counters.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                let spec = &cold[k / per_file];
                let addr = servers.addr(k % 2);
                barrier.wait();
                run_one(
                    addr,
                    spec,
                    &spec.forms[k % spec.forms.len()],
                    Kind::Get,
                    &counters,
                )
                .0
            })
        })
        .collect();
    let herd: Vec<Verdict> = herd.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        herd.iter().all(|v| *v == Verdict::Ok),
        "coalesced clients failed (seed {seed}): {herd:?}"
    );
    let gets = mirror.get_counts();
    for f in cold.iter() {
        assert_eq!(
            gets.get(&f.path).copied().unwrap_or(0),
            1,
            "{per_file} clients on two processes, one upstream GET for {} (seed {seed})",
            f.path
        );
    }

    // --- Phase 4: fill; every file once, no faults: all succeed, one GET per absent file
    // (once the 404s injected during the chaos are no longer remembered).
    thread::sleep(Duration::from_secs(NEGATIVE_TTL_SECS) + Duration::from_millis(100));
    let before = mirror.get_counts();
    let absent: HashSet<usize> = present
        .iter()
        .copied()
        .filter(|&i| !root.join(&files[i].stored).exists())
        .collect();
    let fill = |slot_of: fn(usize) -> usize, what: &str| -> Vec<String> {
        let next = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..s.clients)
            .map(|_| {
                let (files, servers, counters, next, present) = (
                    files.clone(),
                    servers.clone(),
                    counters.clone(),
                    next.clone(),
                    present.clone(),
                );
                thread::spawn(move || {
                    let mut bad = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst) as usize;
                        let Some(&i) = present.get(k) else { break };
                        let spec = &files[i];
                        let path = &spec.forms[k % spec.forms.len()];
                        let (v, answer) =
                            run_one(servers.addr(slot_of(k)), spec, path, Kind::Get, &counters);
                        let tag = match &answer {
                            Answer::Reply(g) => g.header("x-cache").unwrap_or("-").to_owned(),
                            _ => "no answer".into(),
                        };
                        bad.push((i, v, tag));
                    }
                    bad
                })
            })
            .collect();
        let mut results: Vec<(usize, Verdict, String)> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        results.sort_by_key(|r| r.0);
        results
            .into_iter()
            .filter(|(_, v, tag)| *v != Verdict::Ok || (what == "hit" && tag != "HIT"))
            .map(|(i, v, tag)| format!("{} {v:?} X-Cache {tag}", files[i].path))
            .collect()
    };
    let bad = fill(|k| k % 2, "fill");
    assert!(
        bad.is_empty(),
        "with faults off, every file must come through (seed {seed}): {bad:#?}"
    );
    let after = mirror.get_counts();
    let mut wrong_counts = Vec::new();
    for &i in &present {
        let f = &files[i];
        let delta =
            after.get(&f.path).copied().unwrap_or(0) - before.get(&f.path).copied().unwrap_or(0);
        let want = usize::from(absent.contains(&i));
        if delta != want {
            wrong_counts.push(format!("{}: {delta} upstream GETs, want {want}", f.path));
        }
    }
    assert!(
        wrong_counts.is_empty(),
        "one upstream GET per absent file, none per stored one (seed {seed}): {wrong_counts:#?}"
    );

    // --- Phase 5: everything is a HIT now, on the other process too -----------------
    // Clients get their last byte before the fsync and rename: wait for those.
    assert!(
        quiesce(&mirror, &root, Duration::from_secs(10)),
        "downloads still running after the fill (seed {seed})"
    );
    let bad = fill(|k| (k + 1) % 2, "hit");
    assert!(
        bad.is_empty(),
        "every file stored and served from disk (seed {seed}): {bad:#?}"
    );
    assert_eq!(mirror.get_counts(), after, "hits ask nobody (seed {seed})");
    for &i in &missing {
        let spec = &files[i];
        let (v, _) = run_one(servers.addr(i % 2), spec, &spec.path, Kind::Get, &counters);
        assert_eq!(v, Verdict::Ok, "404 for {} (seed {seed})", spec.path);
    }

    // --- Phase 6: graceful stop; the store is complete and clean --------------------
    let codes = servers.stop();
    let left_at_end = leftovers(&root);
    let problems = check_store(&root, &by_store);
    let logs = servers.logs();
    let panics: Vec<&String> = logs.iter().filter(|l| l.contains("panick")).collect();
    let warnings = logs.iter().filter(|l| l.contains(" WARN ")).count();
    let errors: Vec<&String> = logs.iter().filter(|l| l.contains(" ERROR ")).collect();

    let c = &counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = format!(
        "soak summary: mode={} seed={seed} secs={:.1} (chaos {:.1}) files={} ({} MB) \
         requests={} (chaos {chaos_requests}) ok={} [get={} range={} head={} not-found={} \
         range-as-200={} head-without-length={} keep-alive={}] visibly-failed={} [truncated={} \
         connection={} timeout={} statuses={:?}] faults={} [{}] kills={} deletions={} \
         corrupt={} bad-meta={} leftovers-after-chaos={} leftovers-at-end={} \
         store-problems={} stored-after-chaos={stored_after_chaos} final-files={} \
         x-cache={:?} upstream-requests={} coalescing={}x{per_file}->1 \
         exit-codes={codes:?} server-warnings={warnings} server-errors={} panics={}",
        if s.long { "long" } else { "quick" },
        began.elapsed().as_secs_f64(),
        chaos_time.as_secs_f64(),
        present.len(),
        total_bytes >> 20,
        load(&c.requests),
        load(&c.ok),
        load(&c.ok_get),
        load(&c.ok_range),
        load(&c.ok_head),
        load(&c.ok_not_found),
        load(&c.range_as_200),
        load(&c.head_without_length),
        load(&c.keep_alive),
        load(&c.failed),
        load(&c.failed_truncated),
        load(&c.failed_connection),
        load(&c.failed_timeout),
        c.statuses.lock().unwrap(),
        fault_counts.total(),
        fault_counts.summary(),
        load(&kills),
        load(&deletions),
        load(&c.corrupt),
        load(&c.bad_meta),
        left_after_chaos.len(),
        left_at_end.len(),
        problems.len(),
        list_files(&root).len(),
        c.tags.lock().unwrap(),
        mirror.request_count(),
        cold.len(),
        errors.len(),
        panics.len(),
    );
    eprintln!("{summary}");
    if let Ok(path) = std::env::var("PC_SOAK_SUMMARY") {
        let _ = std::fs::write(PathBuf::from(path), format!("{summary}\n"));
    }
    assert_eq!(load(&c.corrupt), 0, "CORRUPT answers (seed {seed})");
    assert_eq!(load(&c.bad_meta), 0, "wrong Last-Modified (seed {seed})");
    assert!(
        problems.is_empty(),
        "store after stop (seed {seed}): {problems:#?}"
    );
    assert!(
        left_at_end.is_empty(),
        "temporary files after a graceful stop (seed {seed}): {left_at_end:?}"
    );
    assert!(
        panics.is_empty(),
        "server panics (seed {seed}): {panics:#?}"
    );
    assert!(
        errors.is_empty(),
        "server errors (seed {seed}): {errors:#?}"
    );
    assert_eq!(codes, [Some(0), Some(0)], "graceful exits (seed {seed})");
    assert_eq!(
        load(&c.failed_timeout),
        0,
        "a client waited {:?} for a byte: a hung response (seed {seed})",
        client::READ_TIMEOUT
    );
    assert!(
        load(&c.ok) > 0 && load(&c.failed) > 0 && fault_counts.total() > 0,
        "the soak exercised both outcomes (seed {seed})"
    );
    assert!(
        began.elapsed() < s.chaos + Duration::from_secs(if s.long { 300 } else { 40 }),
        "took {:?} (seed {seed})",
        began.elapsed()
    );
}

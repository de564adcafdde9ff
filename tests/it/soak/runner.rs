//! The runner: two mirrors (the first faulty, the second clean), two package-cache
//! processes on one cache directory with both as sources, clients that ask them for
//! files, a chaos thread that deletes files and kills processes, a publisher that
//! puts new versions of the files that change in place on the mirrors, and the phases
//! of a run from the chaos to the graceful stop.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use super::checker::{
    Counters, Kind, Verdict, check_store, judge, leftovers, quiesce, watch_store,
};
use super::faults::{FaultCounters, Mix, picker, whole_from_second};
use super::{
    Class, MUTABLE_TTL_SECS, NEGATIVE_TTL_SECS, READ_TIMEOUT_SECS, Settings, Spec, make_files,
};
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
/// the answer and, for a file that changes in place, the version it carried.
fn run_one(
    server: Server,
    spec: &Spec,
    path: &str,
    kind: Kind,
    counters: &Counters,
) -> (Verdict, Answer, Option<usize>) {
    run_on(&mut None, false, server, spec, path, kind, counters)
}

/// [`run_one`] on a kept connection if `keep`.
fn run_on(
    kept: &mut Kept,
    keep: bool,
    server: Server,
    spec: &Spec,
    path: &str,
    kind: Kind,
    counters: &Counters,
) -> (Verdict, Answer, Option<usize>) {
    let (method, from) = match kind {
        Kind::Get => ("GET", None),
        Kind::Range(n) => ("GET", Some(n)),
        Kind::Head => ("HEAD", None),
    };
    let addr = server.addr;
    let before = counters.timeline.before(server.id, spec);
    let answer = exchange(kept, addr, method, path, from, keep);
    if keep {
        counters.keep_alive.fetch_add(1, Ordering::Relaxed);
    }
    let (verdict, version) = judge(spec, kind, &answer, counters);
    if let (Some(before), Some(n)) = (before, version) {
        let how = format!(
            "{method} {path} {kind:?} via {addr}, X-Cache {}",
            x_cache(&answer)
        );
        counters.in_order(before, server.id, spec, n, verdict == Verdict::Ok, how);
    }
    counters.requests.fetch_add(1, Ordering::Relaxed);
    match &verdict {
        Verdict::Ok => counters.ok.fetch_add(1, Ordering::Relaxed),
        Verdict::Failed => counters.failed.fetch_add(1, Ordering::Relaxed),
        Verdict::Corrupt(why) => {
            counters.note(format!(
                "CORRUPT {method} {path} {kind:?} via {addr} (X-Cache {}): {why}",
                x_cache(&answer)
            ));
            counters.corrupt.fetch_add(1, Ordering::Relaxed)
        }
    };
    (verdict, answer, version)
}

/// The answer's `X-Cache`, for messages.
fn x_cache(answer: &Answer) -> String {
    match answer {
        Answer::Reply(g) => g.header("x-cache").unwrap_or("-").to_owned(),
        _ => "no answer".into(),
    }
}

// ---------------------------------------------------------------------------------
// The servers

/// One server process: where it listens, and a number no other process of the run
/// has (a restarted one is another process).
#[derive(Clone, Copy, Debug)]
struct Server {
    addr: SocketAddr,
    id: u64,
}

struct Servers {
    procs: Mutex<[Option<Process>; 2]>,
    current: RwLock<[Server; 2]>,
    started: AtomicU64,
    args: Vec<String>,
    /// Log lines of processes that ended.
    old_logs: Mutex<Vec<String>>,
}

impl Servers {
    /// Two processes on `cache`, with the faulty mirror as the first source and the
    /// clean one as the second.
    fn start(first: &FakeMirror, second: &FakeMirror, cache: &Path) -> Servers {
        let args: Vec<String> = [
            "--source",
            &first.url(),
            "--source",
            &second.url(),
            "--mutable-ttl",
            &MUTABLE_TTL_SECS.to_string(),
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
            current: RwLock::new([
                Server {
                    addr: a.addr,
                    id: 0,
                },
                Server {
                    addr: b.addr,
                    id: 1,
                },
            ]),
            procs: Mutex::new([Some(a), Some(b)]),
            started: AtomicU64::new(2),
            args,
            old_logs: Mutex::new(Vec::new()),
        }
    }

    fn spawn(args: &[String]) -> Process {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Process::start(&args)
    }

    fn server(&self, slot: usize) -> Server {
        self.current.read().unwrap()[slot]
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
        self.current.write().unwrap()[slot] = Server {
            addr: p.addr,
            id: self.started.fetch_add(1, Ordering::SeqCst),
        };
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
// The mirrors

/// Both mirrors hold the same files: `first` (the faulty one, asked first) and
/// `second` (clean). A file that changes in place gets its current version, each with
/// its own ETag; a directory answers with a redirect to its listing.
fn fill_mirrors(first: &FakeMirror, second: &FakeMirror, files: &[Spec], cold: &[Spec]) {
    for f in files {
        match &f.class {
            Class::Fixed => {
                let body = f.body.as_ref().unwrap();
                first.put(&f.path, body.as_slice().to_vec());
                second.put(&f.path, body.as_slice().to_vec());
            }
            Class::Mutable(versions) => {
                let v = versions.latest();
                first.put_file(&f.path, v.file('a', versions.seed));
                second.put_file(&f.path, v.file('b', versions.seed));
            }
            Class::Directory => {
                for m in [first, second] {
                    assert_eq!(
                        m.put_directory(&f.path).as_slice(),
                        f.body.as_ref().unwrap().as_slice()
                    );
                }
            }
            Class::Missing => {}
        }
    }
    for f in cold {
        let len = f.len() as u64;
        // About a second upstream: every client of the coalescing phase is there
        // before it ends.
        for m in [first, second] {
            m.put_file(
                &f.path,
                FakeFile::new(f.body.as_ref().unwrap().as_slice().to_vec())
                    .with_fault(Fault::Rate(len)),
            );
        }
    }
}

/// `GET` counts of both mirrors added up, by path.
fn gets_of(first: &FakeMirror, second: &FakeMirror) -> HashMap<String, usize> {
    let mut gets = first.get_counts();
    for (path, n) in second.get_counts() {
        *gets.entry(path).or_default() += n;
    }
    gets
}

fn delta(after: &HashMap<String, usize>, before: &HashMap<String, usize>, path: &str) -> usize {
    after.get(path).copied().unwrap_or(0) - before.get(path).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// A run

pub fn run(seed: u64) {
    let began = Instant::now();
    let mut rng = Rng::new(seed);
    let s = Settings::from_env(&mut rng);
    let (files, cold) = make_files(&s);
    let (files, cold) = (Arc::new(files), Arc::new(cold));
    let of_class = |want: fn(&Class) -> bool| -> Vec<usize> {
        (0..files.len())
            .filter(|&i| want(&files[i].class))
            .collect()
    };
    let present = of_class(|c| matches!(c, Class::Fixed));
    let missing = of_class(|c| matches!(c, Class::Missing));
    let mutable = of_class(|c| matches!(c, Class::Mutable(_)));
    let directories = of_class(|c| matches!(c, Class::Directory));
    let total_bytes: usize = files.iter().map(Spec::len).sum();
    eprintln!(
        "soak: seed {seed}, {} mode: {} files ({} MB) + {} missing + {} changing in place + {} directories, {} clients, {:?} or {} requests, kills at {:?}",
        if s.long { "long" } else { "quick" },
        present.len(),
        total_bytes >> 20,
        missing.len(),
        mutable.len(),
        directories.len(),
        s.clients,
        s.chaos,
        s.max_requests,
        s.kills
    );

    let (first, second) = (FakeMirror::start(), FakeMirror::start());
    fill_mirrors(&first, &second, &files, &cold);
    let faults_on = Arc::new(AtomicBool::new(true));
    let fault_counts = Arc::new(FaultCounters::default());
    let mut lens: HashMap<String, usize> =
        files.iter().map(|f| (f.path.clone(), f.len())).collect();
    for &i in &directories {
        lens.insert(format!("{}/", files[i].path), files[i].len());
    }
    let mix = Mix {
        lens,
        mutable: mutable
            .iter()
            .map(|&i| (files[i].path.clone(), files[i].versions().unwrap().clone()))
            .collect(),
        directories: directories.iter().map(|&i| files[i].path.clone()).collect(),
        with_length: mutable
            .iter()
            .filter(|&&i| files[i].only.is_some())
            .map(|&i| files[i].path.clone())
            .collect(),
        rate: s.fault_rate,
        lag_rate: s.lag_rate,
    };
    first.set_picker(Some(picker(
        rng.next_u64(),
        mix,
        faults_on.clone(),
        fault_counts.clone(),
    )));

    let dir = TempDir::new("soak");
    let root = dir.path().to_path_buf();
    let servers = Arc::new(Servers::start(&first, &second, &root));
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let deletions = Arc::new(AtomicU64::new(0));
    let first = Arc::new(first);
    let second = Arc::new(second);

    // Each phase's length, for the summary.
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let phase = Instant::now();

    // --- Phase 1: chaos --------------------------------------------------------
    // The copy stored for a file only one process serves never goes back in time.
    let watcher = watch_store(
        &root,
        mutable
            .iter()
            .filter(|&&i| files[i].only.is_some())
            .map(|&i| {
                (
                    files[i].stored.clone(),
                    files[i].versions().unwrap().clone(),
                )
            })
            .collect(),
        stop.clone(),
    );
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
            let (mutable, directories) = (mutable.clone(), directories.clone());
            let mut rng = Rng::new(rng.next_u64());
            let max = s.max_requests;
            // A quarter of the clients keep their connections open between requests.
            let keeps = t % 4 == 3;
            thread::spawn(move || {
                let mut kept: Kept = None;
                let mut n = t;
                let one_of = |rng: &mut Rng, list: &[usize]| list[rng.index(list.len())];
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    if counters.requests.load(Ordering::Relaxed) >= max {
                        break;
                    }
                    n += 1;
                    let i = match rng.below(100) {
                        0..4 => one_of(&mut rng, &missing),
                        4..41 => one_of(&mut rng, &hot),
                        41..51 => one_of(&mut rng, &mutable),
                        51..54 => one_of(&mut rng, &directories),
                        _ => one_of(&mut rng, &present),
                    };
                    let spec = &files[i];
                    let path = &spec.forms[rng.below(spec.forms.len() as u64) as usize];
                    let kind = match rng.below(100) {
                        0..72 => Kind::Get,
                        72..90 if spec.len() > 0 => Kind::Range(rng.below(spec.len() as u64)),
                        _ => Kind::Head,
                    };
                    // Keep-alive clients stay with one server for a few requests.
                    let slot = spec.only.unwrap_or(if keeps { (n / 4) % 2 } else { n % 2 });
                    let server = servers.server(slot);
                    let (_, answer, _) =
                        run_on(&mut kept, keeps, server, spec, path, kind, &counters);
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
        // Files that change in place and both processes serve.
        let shared: Vec<usize> = mutable
            .iter()
            .copied()
            .filter(|&i| files[i].only.is_none())
            .collect();
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
                // Delete a complete file behind the servers' back: often a hot one, so
                // that many clients miss it at once, or one that changes in place, so
                // that a process that knows an older version than the other fetches
                // it again.
                for _ in 0..5 {
                    let i = if rng.chance(0.2) {
                        shared[rng.index(shared.len())]
                    } else if rng.chance(0.4) {
                        hot[rng.index(hot.len())]
                    } else {
                        rng.index(files.len())
                    };
                    let spec = &files[i];
                    if spec.only.is_some() {
                        continue;
                    }
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

    // New versions of the files that change in place, on both mirrors (the first one
    // then often answers with an older one: see `faults`).
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (files, mutable, stop) = (files.clone(), mutable.clone(), stop.clone());
        let (first, second, published) = (first.clone(), second.clone(), published.clone());
        let every = s.publish_every.as_millis() as u64;
        let mut rng = Rng::new(rng.next_u64());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(rng.millis(every / 4, every * 7 / 4));
                let spec = &files[mutable[rng.index(mutable.len())]];
                let versions = spec.versions().unwrap();
                let v = versions.publish();
                first.put_file(&spec.path, v.file('a', versions.seed));
                second.put_file(&spec.path, v.file('b', versions.seed));
                published.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for c in clients {
        c.join().expect("a client thread panicked");
    }
    stop.store(true, Ordering::SeqCst);
    chaos.join().expect("the chaos thread panicked");
    publisher.join().expect("the publisher thread panicked");
    let store_regressions = watcher.join().expect("the store watcher panicked");
    faults_on.store(false, Ordering::SeqCst);
    let chaos_time = chaos_start.elapsed();
    let chaos_end = Instant::now();
    let chaos_requests = counters.requests.load(Ordering::Relaxed);
    eprintln!(
        "soak: chaos phase: {chaos_requests} requests in {:.1}s, {} corrupt, {} back in time so far ({} more for files both processes serve)",
        chaos_time.as_secs_f64(),
        counters.corrupt.load(Ordering::Relaxed),
        counters.back_in_time.load(Ordering::Relaxed),
        counters.back_in_time_shared.load(Ordering::Relaxed)
    );
    assert_eq!(
        counters.corrupt.load(Ordering::Relaxed),
        0,
        "CORRUPT answers during the chaos phase (seed {seed}): {:#?}",
        counters.problems.lock().unwrap()
    );
    assert!(
        store_regressions.is_empty(),
        "a stored copy went back in time (seed {seed}): {store_regressions:#?}"
    );
    let back = counters.back_in_time.load(Ordering::Relaxed)
        + counters.back_in_time_shared.load(Ordering::Relaxed);
    assert!(
        back == 0,
        "answers that went back in time during the chaos phase (seed {seed}): {:#?}",
        counters.back_notes.lock().unwrap()
    );

    phases.push(("chaos", phase.elapsed()));
    let phase = Instant::now();
    // --- Phase 2: quiet; the downloads still running finish ------------------------
    let mirrors = [&*first, &*second];
    assert!(
        quiesce(&mirrors, &root, Duration::from_secs(30)),
        "downloads still running 30 s after the chaos stopped (seed {seed}): mirrors active {} {}, parts {:?}",
        first.active(),
        second.active(),
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
    let problems = check_store(&root, &by_store, false);
    assert!(
        problems.is_empty(),
        "the cache holds wrong files (seed {seed}): {problems:#?}"
    );
    let stored_after_chaos = list_files(&root).len();

    phases.push(("quiet", phase.elapsed()));
    let phase = Instant::now();
    // --- Phase 3: coalescing, no faults, no deletions --------------------------------
    // 8 clients per cold file, half on each process, all at once: one upstream GET each
    // (from either mirror: the first may be cooling down after the chaos).
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
                let server = servers.server(k % 2);
                barrier.wait();
                run_one(
                    server,
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
    let gets = gets_of(&first, &second);
    for f in cold.iter() {
        assert_eq!(
            gets.get(&f.path).copied().unwrap_or(0),
            1,
            "{per_file} clients on two processes, one upstream GET for {} (seed {seed})",
            f.path
        );
    }

    phases.push(("coalescing", phase.elapsed()));
    let phase = Instant::now();
    // --- Phase 4: the first mirror has caught up; once the copies' TTL is over, every
    // process serves the newest version of every file that changes in place, and
    // passes every directory on without storing it.
    let ttl = Duration::from_secs(MUTABLE_TTL_SECS) + Duration::from_millis(300);
    thread::sleep(ttl.saturating_sub(chaos_end.elapsed()));
    let (mut behind, mut behind_shared) = (Vec::new(), Vec::new());
    for &i in mutable.iter().chain(&directories) {
        let spec = &files[i];
        for slot in spec.only.map_or(0..2, |s| s..s + 1) {
            let (v, answer, version) =
                run_one(servers.server(slot), spec, &spec.path, Kind::Get, &counters);
            let newest = spec.versions().map(|v| v.latest().n);
            if v != Verdict::Ok || version != newest {
                let line = format!(
                    "{} on process {}: {v:?}, version {version:?} of {newest:?}, X-Cache {}",
                    spec.path,
                    servers.server(slot).id,
                    x_cache(&answer)
                );
                if spec.versions().is_some() && spec.only.is_none() {
                    behind_shared.push(line);
                } else {
                    behind.push(line);
                }
            }
        }
    }
    for line in &behind_shared {
        counters.note(format!(
            "BEHIND after the catch-up (both processes serve it): {line}"
        ));
    }
    assert!(
        behind.is_empty() && behind_shared.is_empty(),
        "after the catch-up, the newest version from every process (seed {seed}): {:#?}",
        [&behind[..], &behind_shared[..]].concat()
    );

    phases.push(("catch-up", phase.elapsed()));
    let phase = Instant::now();
    // --- Phase 5: fill; every fixed file once, no faults: all succeed, one GET (from
    // either mirror) per absent file (once the 404s injected during the chaos are no
    // longer remembered).
    thread::sleep(
        (Duration::from_secs(NEGATIVE_TTL_SECS) + Duration::from_millis(100))
            .saturating_sub(chaos_end.elapsed()),
    );
    let before = gets_of(&first, &second);
    let before_second = second.get_counts();
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
                        let (v, answer, _) =
                            run_one(servers.server(slot_of(k)), spec, path, Kind::Get, &counters);
                        bad.push((i, v, x_cache(&answer)));
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
    let after = gets_of(&first, &second);
    let after_second = second.get_counts();
    let mut wrong_counts = Vec::new();
    let mut fill_from_second = 0;
    for &i in &present {
        let f = &files[i];
        let got = delta(&after, &before, &f.path);
        let want = usize::from(absent.contains(&i));
        if got != want {
            wrong_counts.push(format!(
                "{}: {got} upstream GETs ({} from the second mirror), want {want}",
                f.path,
                delta(&after_second, &before_second, &f.path)
            ));
        }
        fill_from_second += delta(&after_second, &before_second, &f.path);
    }
    assert!(
        wrong_counts.is_empty(),
        "one upstream GET per absent file, none per stored one (seed {seed}): {wrong_counts:#?}"
    );

    phases.push(("fill", phase.elapsed()));
    let phase = Instant::now();
    // --- Phase 6: everything is a HIT now, on the other process too -----------------
    // Clients get their last byte before the fsync and rename: wait for those.
    assert!(
        quiesce(&mirrors, &root, Duration::from_secs(10)),
        "downloads still running after the fill (seed {seed})"
    );
    let bad = fill(|k| (k + 1) % 2, "hit");
    assert!(
        bad.is_empty(),
        "every file stored and served from disk (seed {seed}): {bad:#?}"
    );
    assert_eq!(
        gets_of(&first, &second),
        after,
        "hits ask nobody (seed {seed})"
    );
    for &i in &missing {
        let spec = &files[i];
        let (v, _, _) = run_one(
            servers.server(i % 2),
            spec,
            &spec.path,
            Kind::Get,
            &counters,
        );
        assert_eq!(v, Verdict::Ok, "404 for {} (seed {seed})", spec.path);
    }

    phases.push(("hit", phase.elapsed()));
    let phase = Instant::now();
    // --- Phase 7: graceful stop; the store is complete and clean --------------------
    let codes = servers.stop();
    phases.push(("stop", phase.elapsed()));
    let phases = phases
        .iter()
        .map(|(name, d)| format!("{name}={:.1}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" ");
    let left_at_end = leftovers(&root);
    let problems = check_store(&root, &by_store, true);
    let logs = servers.logs();
    let panics: Vec<&String> = logs.iter().filter(|l| l.contains("panick")).collect();
    let warnings = logs.iter().filter(|l| l.contains(" WARN ")).count();
    let errors: Vec<&String> = logs.iter().filter(|l| l.contains(" ERROR ")).collect();
    let breaks = fault_counts.breaks.lock().unwrap().clone();
    let recovered = whole_from_second(&breaks, &second.completions());
    let upstream_of = |m: &FakeMirror, paths: &[String]| {
        m.seen().iter().filter(|r| paths.contains(&r.path)).count()
    };
    let dir_paths: Vec<String> = directories.iter().map(|&i| files[i].path.clone()).collect();
    let listing_paths: Vec<String> = dir_paths.iter().map(|p| format!("{p}/")).collect();

    let c = &counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = format!(
        "soak summary: mode={} seed={seed} secs={:.1} [{phases}] files={} ({} MB) \
         requests={} (chaos {chaos_requests}) ok={} [get={} range={} head={} not-found={} \
         listing={} redirect={} range-as-200={} head-without-length={} keep-alive={}] \
         visibly-failed={} [truncated={} connection={} timeout={} statuses={:?}] \
         faults={} [{}] broke-on-first={} whole-from-second={} \
         changing-in-place=[files={} versions-published={} answers={} older-than-published={} \
         stored-went-back={} back-in-time={}+{} behind-after-catch-up=0+{}] directories=[upstream-redirects={}+{} upstream-listings={}+{}] \
         kills={} deletions={} corrupt={} bad-meta={} leftovers-after-chaos={} \
         leftovers-at-end={} store-problems={} stored-after-chaos={stored_after_chaos} \
         final-files={} x-cache={:?} upstream-requests={} [first={} second={}] \
         fill-from-second={fill_from_second} coalescing={}x{per_file}->1 \
         exit-codes={codes:?} server-warnings={warnings} server-errors={} panics={}",
        if s.long { "long" } else { "quick" },
        began.elapsed().as_secs_f64(),
        present.len(),
        total_bytes >> 20,
        load(&c.requests),
        load(&c.ok),
        load(&c.ok_get),
        load(&c.ok_range),
        load(&c.ok_head),
        load(&c.ok_not_found),
        load(&c.ok_listing),
        load(&c.ok_redirect),
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
        breaks.len(),
        recovered,
        mutable.len(),
        load(&published),
        load(&c.mutable),
        load(&c.older_than_published),
        store_regressions.len(),
        load(&c.back_in_time),
        load(&c.back_in_time_shared),
        behind_shared.len(),
        upstream_of(&first, &dir_paths),
        upstream_of(&second, &dir_paths),
        upstream_of(&first, &listing_paths),
        upstream_of(&second, &listing_paths),
        load(&kills),
        load(&deletions),
        load(&c.corrupt),
        load(&c.bad_meta),
        left_after_chaos.len(),
        left_at_end.len(),
        problems.len(),
        list_files(&root).len(),
        c.tags.lock().unwrap(),
        first.request_count() + second.request_count(),
        first.request_count(),
        second.request_count(),
        cold.len(),
        errors.len(),
        panics.len(),
    );
    eprintln!("{summary}");
    if let Ok(path) = std::env::var("PC_SOAK_SUMMARY") {
        let _ = std::fs::write(PathBuf::from(path), format!("{summary}\n"));
    }
    assert_eq!(load(&c.corrupt), 0, "CORRUPT answers (seed {seed})");
    assert!(
        load(&c.back_in_time) + load(&c.back_in_time_shared) == 0,
        "back in time (seed {seed})"
    );
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
        load(&c.mutable) > 0 && load(&c.ok_listing) + load(&c.ok_redirect) > 0,
        "the soak asked for files that change in place and for directories (seed {seed})"
    );
    assert!(
        breaks.len() < 5 || recovered > 0,
        "bodies broke {} times on the first mirror, none came whole from the second (seed {seed})",
        breaks.len()
    );
    assert!(
        began.elapsed() < s.chaos + Duration::from_secs(if s.long { 300 } else { 40 }),
        "took {:?} (seed {seed})",
        began.elapsed()
    );
}

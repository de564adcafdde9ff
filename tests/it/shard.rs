//! The sharding configurations in contrib/, run for real: three package-cache processes
//! (the real binary, each with its own cache directory) behind nginx or HAProxy
//! configured from `contrib/nginx/package-cache-shards.conf` and
//! `contrib/haproxy/package-cache-shards.cfg` with only the addresses changed.
//!
//! 1. Hundreds of requests for dozens of files, in every form a client uses (flat,
//!    flat with `%2B`, GLEP 75 BLAKE2B 8 and SHA512 4:8), from many threads: every body
//!    is whole and correct, the origin saw one GET per file, and each file is stored by
//!    exactly one instance (its flat and hashed forms reached the same one).
//! 2. One instance is killed (SIGKILL) while slow cold downloads are streaming: every
//!    client still ends with the whole file, retrying as wget does after a short read;
//!    the balancer sends the dead instance's files to one survivor each.
//!
//! The balancers run as children in a temporary prefix, on 127.0.0.1, and stop with
//! their workers. Without nginx or HAProxy a test says it skipped; in CI (`CI` set and
//! not empty) it fails instead, since `.ci/run` installs them.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::client::READ_TIMEOUT;
use crate::support::daemon::Daemon;
use crate::support::process::{Process, free_port};
use crate::support::rng::Rng;
use crate::support::tools::require_tool;
use crate::support::{FakeFile, FakeMirror, Fault, TempDir, bytes, list_files, stored, wait_until};
use package_cache::gentoo::distfiles::store_path;
use package_cache::gentoo::layout::Layout;

const NGINX_CONF: &str = "contrib/nginx/package-cache-shards.conf";
const HAPROXY_CFG: &str = "contrib/haproxy/package-cache-shards.cfg";
/// The instance addresses in the contrib files, replaced by the test's.
const PLACEHOLDERS: [&str; 3] = [
    "cache1.example.lan:4000",
    "cache2.example.lan:4000",
    "cache3.example.lan:4000",
];
/// Client threads.
const CLIENTS: usize = 16;
/// How long one attempt may wait for a read: the support client's (answers behind
/// nginx keep-alive start at once, as `keepalive.rs` checks; this test is about
/// correctness, and a run takes seconds).
const ATTEMPT_TIMEOUT: Duration = READ_TIMEOUT;
/// How long each phase's clients may take in all, retries included: three reads'
/// worth of silence.
const CLIENTS_DEADLINE: Duration = Duration::from_secs(3 * READ_TIMEOUT.as_secs());

#[test]
fn nginx_shards_by_distfile_name_and_fails_over() {
    let Some(nginx) = require_tool("nginx") else {
        return;
    };
    scenario("nginx", |shards| start_nginx(&nginx, shards));
}

#[test]
fn haproxy_shards_by_distfile_name_and_fails_over() {
    let Some(haproxy) = require_tool("haproxy") else {
        return;
    };
    scenario("haproxy", |shards| start_haproxy(&haproxy, shards));
}

// ---------------------------------------------------------------------------------
// The scenario

fn scenario(label: &str, start: impl FnOnce(&[SocketAddr]) -> Balancer) {
    let mirror = FakeMirror::start();
    let mut files = Files::default();
    // Phase 1: 48 files of 1 KB to 600 KB, some with `+` in the name.
    for i in 0..48 {
        files.add(&mirror, i, 1024 + (i * 12_289) % 600_000, None);
    }
    let dirs: Vec<TempDir> = (0..3).map(|i| TempDir::new(&format!("shard{i}"))).collect();
    let mut instances: Vec<Process> = dirs
        .iter()
        .map(|d| {
            Process::start(&[
                "--cache",
                d.path().to_str().unwrap(),
                "--source",
                &mirror.url(),
            ])
        })
        .collect();
    let shards: Vec<SocketAddr> = instances.iter().map(|p| p.addr).collect();
    let lb = start(&shards);

    // 1. Every form of every file, then random ones: 400 requests.
    let names: Vec<String> = files.names();
    let mut rng = Rng::new(0x5eed_0001);
    let mut work: Vec<String> = names
        .iter()
        .flat_map(|n| FORMS.iter().filter_map(move |f| form(n, *f)))
        .collect();
    while work.len() < 400 {
        let n = &names[rng.index(names.len())];
        let f = FORMS[rng.index(FORMS.len())];
        work.extend(form(n, f));
    }
    shuffle(&mut work, &mut rng);
    let began = Instant::now();
    let run = drive(lb.addr, &files, work, 1, || {});
    eprintln!(
        "{label}: phase 1: {} requests in {:.2}s, slowest {:.2}s, {} over 1 s",
        run.requests,
        began.elapsed().as_secs_f64(),
        run.slowest.as_secs_f64(),
        run.slow
    );
    lb.report_slow(label);
    assert!(
        run.failures.is_empty(),
        "{label}: failed answers: {:?}\n{}",
        run.failures,
        lb.log()
    );

    // One GET per file at the origin, one copy per file in the fleet.
    let owners = wait_for_owners(&dirs, &names);
    let gets = mirror.get_counts();
    for name in &names {
        let n = gets.get(&origin_path(name)).copied().unwrap_or(0);
        assert_eq!(
            n,
            1,
            "{label}: the origin saw {n} GETs for {name}\n{}",
            lb.log()
        );
        assert_eq!(
            owners[name].len(),
            1,
            "{label}: {name} is stored by instances {:?}",
            owners[name]
        );
    }
    let per_shard = count_per_shard(&owners, 3);
    eprintln!("{label}: files per instance after phase 1: {per_shard:?}");
    assert!(
        per_shard.iter().filter(|&&n| n > 0).count() >= 2,
        "{label}: every file went to one instance: {per_shard:?}"
    );
    for d in &dirs {
        let leftovers: Vec<_> = list_files(d.path())
            .into_iter()
            .filter(|f| f.ends_with(".pc-part") || f.ends_with(".pc-lock"))
            .collect();
        assert!(leftovers.is_empty(), "{label}: leftovers {leftovers:?}");
    }

    // 2. New cold files, served slowly by the origin so downloads are streaming when
    //    the instance holding the most files is killed; old files are asked for too.
    let victim = (0..3).max_by_key(|&i| per_shard[i]).unwrap();
    for i in 48..96 {
        files.add(
            &mirror,
            i,
            64 * 1024 + (i * 40_961) % 900_000,
            Some(Fault::Rate(3 << 20)),
        );
    }
    let all: Vec<String> = files.names();
    let mut work: Vec<String> = Vec::new();
    while work.len() < 300 {
        let n = &all[rng.index(all.len())];
        let f = FORMS[rng.index(FORMS.len())];
        work.extend(form(n, f));
    }
    shuffle(&mut work, &mut rng);
    let done = Arc::new(AtomicUsize::new(0));
    let killed_at = Arc::new(Mutex::new(None));
    let began = Instant::now();
    let run = std::thread::scope(|s| {
        let (answered, killed_at) = (done.clone(), killed_at.clone());
        let victim_proc = &mut instances[victim];
        let killer = s.spawn(move || {
            // A quarter of the requests answered: many cold downloads are running.
            wait_until(CLIENTS_DEADLINE, || answered.load(Ordering::SeqCst) >= 75);
            victim_proc.child.kill().expect("kill an instance");
            *killed_at.lock().unwrap() = Some(Instant::now());
        });
        let counter = done.clone();
        let run = drive(lb.addr, &files, work, 8, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        killer.join().unwrap();
        run
    });
    let killed_after = killed_at
        .lock()
        .unwrap()
        .map(|t| t.duration_since(began).as_secs_f64());
    eprintln!(
        "{label}: phase 2: {} requests in {:.2}s, instance {victim} killed at {killed_after:?}s; \
         {} retried after a short or failed answer, slowest {:.2}s, {} over 1 s",
        run.requests,
        began.elapsed().as_secs_f64(),
        run.retried,
        run.slowest.as_secs_f64(),
        run.slow
    );
    lb.report_slow(label);
    assert!(
        run.failures.is_empty(),
        "{label}: clients did not get whole files after the kill: {:?}\n{}",
        run.failures,
        lb.log()
    );
    assert!(
        killed_after.is_some(),
        "{label}: the instance was not killed"
    );

    // Each file is now on at most one survivor (the dead instance's files moved to one
    // survivor each), and no file was fetched more than twice (once by its owner, once
    // more by the survivor that took over from the dead one).
    let asked: Vec<String> = run.asked.iter().cloned().collect();
    let owners = wait_for_owners(&dirs, &asked);
    let gets = mirror.get_counts();
    for name in &asked {
        let survivors: Vec<usize> = owners[name]
            .iter()
            .copied()
            .filter(|&i| i != victim)
            .collect();
        assert!(
            survivors.len() <= 1,
            "{label}: {name} is stored by survivors {survivors:?}"
        );
        let n = gets.get(&origin_path(name)).copied().unwrap_or(0);
        assert!(
            (1..=2).contains(&n),
            "{label}: the origin saw {n} GETs for {name}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Files and the forms clients ask for them in

#[derive(Default)]
struct Files {
    bodies: HashMap<String, Arc<Vec<u8>>>,
}

impl Files {
    fn add(&mut self, mirror: &FakeMirror, i: usize, len: usize, fault: Option<Fault>) {
        // Every fifth name has a `+`, which clients send as `%2B`.
        let name = if i.is_multiple_of(5) {
            format!("gtk+-{i}.3.tar.xz")
        } else {
            format!("pkg{i}-1.{i}.tar.gz")
        };
        let body = bytes(len, 1000 + i as u64);
        let mut file = FakeFile::new(body.clone());
        file.faults.extend(fault);
        mirror.put_file(&origin_path(&name), file);
        self.bodies.insert(name, Arc::new(body));
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.bodies.keys().cloned().collect();
        names.sort();
        names
    }
}

/// How the fake origin (flat, no layout.conf) is asked for `name`.
fn origin_path(name: &str) -> String {
    format!("/distfiles/{name}")
}

#[derive(Clone, Copy)]
enum Form {
    Flat,
    FlatEncoded,
    Blake2b8,
    Sha512x4x8,
}

const FORMS: [Form; 4] = [
    Form::Flat,
    Form::FlatEncoded,
    Form::Blake2b8,
    Form::Sha512x4x8,
];

/// The request path for `name` in form `f` (`None` when the form adds nothing for it).
fn form(name: &str, f: Form) -> Option<String> {
    match f {
        Form::Flat => Some(format!("/distfiles/{name}")),
        Form::FlatEncoded if name.contains('+') => {
            Some(format!("/distfiles/{}", name.replace('+', "%2B")))
        }
        Form::FlatEncoded => None,
        Form::Blake2b8 => Some(store_path(name)),
        Form::Sha512x4x8 => {
            let layout = Layout::parse_entry("filename-hash SHA512 4:8").unwrap();
            Some(format!("/distfiles/{}", layout.path(name)))
        }
    }
}

/// The distfile name a request path names.
fn name_of(path: &str) -> String {
    path.rsplit('/').next().unwrap().replace("%2B", "+")
}

fn shuffle(v: &mut [String], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.index(i + 1);
        v.swap(i, j);
    }
}

/// For each name, the instances whose cache directory holds it, once every name is
/// stored somewhere (a download is renamed into place just after its last byte went
/// out; a killed instance keeps what it had stored).
fn wait_for_owners(dirs: &[TempDir], names: &[String]) -> BTreeMap<String, Vec<usize>> {
    let owners = || -> BTreeMap<String, Vec<usize>> {
        names
            .iter()
            .map(|n| {
                let rel = stored(&format!("/distfiles/{n}"));
                let on: Vec<usize> = (0..dirs.len())
                    .filter(|&i| dirs[i].path().join(&rel).is_file())
                    .collect();
                (n.clone(), on)
            })
            .collect()
    };
    wait_until(Duration::from_secs(10), || {
        owners().values().all(|on| !on.is_empty())
    });
    owners()
}

fn count_per_shard(owners: &BTreeMap<String, Vec<usize>>, n: usize) -> Vec<usize> {
    let mut per = vec![0; n];
    for on in owners.values() {
        for &i in on {
            per[i] += 1;
        }
    }
    per
}

// ---------------------------------------------------------------------------------
// Clients

struct Run {
    requests: usize,
    /// Requests that needed more than one attempt.
    retried: usize,
    /// Requests that never got the whole, correct file: (path, what went wrong).
    failures: Vec<(String, String)>,
    slowest: Duration,
    /// Requests that took more than a second.
    slow: usize,
    /// The names asked for.
    asked: std::collections::BTreeSet<String>,
}

/// One request: its path, the attempt that got the whole file (or what went wrong on
/// the last one), and how long it took in all.
type Outcome = (String, Result<usize, String>, Duration);

/// Runs `work` (request paths) from [`CLIENTS`] threads through `addr`, each request
/// tried up to `attempts` times (a short read, a refused connection or an error
/// status are retried after 200 ms, as wget -t does) until [`CLIENTS_DEADLINE`] has
/// passed, no attempt waiting past it; `each` is called after every request.
fn drive(
    addr: SocketAddr,
    files: &Files,
    work: Vec<String>,
    attempts: usize,
    each: impl Fn() + Sync,
) -> Run {
    let next = AtomicUsize::new(0);
    let deadline = Instant::now() + CLIENTS_DEADLINE;
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(path) = work.get(i) else { break };
                    let want = &files.bodies[&name_of(path)];
                    let started = Instant::now();
                    let mut outcome = Err(String::from("not tried"));
                    for attempt in 1..=attempts {
                        if attempt > 1 {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        if Instant::now() >= deadline {
                            outcome = Err("the test's deadline passed".into());
                            break;
                        }
                        match fetch(addr, path, deadline) {
                            Ok(body) if body == **want => {
                                outcome = Ok(attempt);
                                break;
                            }
                            Ok(body) => {
                                outcome = Err(format!(
                                    "wrong body: {} bytes, want {}",
                                    body.len(),
                                    want.len()
                                ));
                            }
                            Err(e) => outcome = Err(e),
                        }
                    }
                    results
                        .lock()
                        .unwrap()
                        .push((path.clone(), outcome, started.elapsed()));
                    each();
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    Run {
        requests: results.len(),
        retried: results
            .iter()
            .filter(|r| matches!(r.1, Ok(n) if n > 1))
            .count(),
        failures: results
            .iter()
            .filter_map(|(p, r, _)| r.clone().err().map(|e| (p.clone(), e)))
            .collect(),
        slowest: results.iter().map(|r| r.2).max().unwrap_or_default(),
        slow: results
            .iter()
            .filter(|r| r.2 > Duration::from_secs(1))
            .count(),
        asked: results.iter().map(|r| name_of(&r.0)).collect(),
    }
}

/// One `GET` on a fresh connection: the body if the answer was a 200 whose body
/// arrived whole (as its Content-Length said), else what went wrong. A read waits at
/// most [`ATTEMPT_TIMEOUT`], and not past `deadline`.
fn fetch(addr: SocketAddr, path: &str, deadline: Instant) -> Result<Vec<u8>, String> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or("the test's deadline passed")?;
    let stream = TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(5)))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(left.min(ATTEMPT_TIMEOUT)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    write!(
        w,
        "GET {path} HTTP/1.1\r\nHost: cache.example.lan\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("status: {e}"))?;
    let status = line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut len = None;
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(|e| format!("headers: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':')
            && n.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    let read = r.read_to_end(&mut body);
    if status != "200" {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let Some(len) = len else {
        return Err("no Content-Length".into());
    };
    match read {
        Ok(_) if body.len() == len => Ok(body),
        Ok(_) => Err(format!("short body: {} of {len} bytes", body.len())),
        Err(e) => Err(format!("body after {} of {len} bytes: {e}", body.len())),
    }
}

// ---------------------------------------------------------------------------------
// Balancers

/// A load balancer running as a child process; stopped with its workers on drop.
struct Balancer {
    daemon: Daemon,
    addr: SocketAddr,
    dir: TempDir,
}

impl Balancer {
    /// Its error log, for failure messages.
    fn log(&self) -> String {
        let mut out = String::new();
        for name in ["error.log", "stderr.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(name)) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                out.push_str(&format!("--- {name} (last lines)\n{}\n", tail.join("\n")));
            }
        }
        out
    }

    /// Prints (once each) the balancer's access log lines of answers that took over a
    /// second: nginx logs `URI status bytes request_time upstream upstream_status
    /// connect_time header_time response_time`. (A slow answer is not a failure here;
    /// `keepalive.rs` holds answers behind nginx to a prompt first byte.)
    fn report_slow(&self, label: &str) {
        let Ok(text) = std::fs::read_to_string(self.dir.path().join("access.log")) else {
            return;
        };
        let _ = std::fs::write(self.dir.path().join("access.log"), "");
        for line in text.lines() {
            let secs = line
                .split_whitespace()
                .nth(3)
                .and_then(|t| t.parse::<f64>().ok());
            if secs.is_some_and(|t| t > 1.0) {
                eprintln!("{label}: slow answer: {line}");
            }
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `contrib_file` with the instance placeholders replaced by `shards`, and each
/// `(from, to)` of `more` replaced; every one must be found.
fn configure(contrib_file: &str, shards: &[SocketAddr], more: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(root().join(contrib_file)).unwrap();
    let shards: Vec<String> = shards.iter().map(SocketAddr::to_string).collect();
    let pairs = PLACEHOLDERS
        .iter()
        .copied()
        .zip(shards.iter().map(String::as_str))
        .chain(more.iter().copied());
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "{contrib_file} no longer contains `{from}`: update tests/shard.rs"
        );
        text = text.replace(from, to);
    }
    text
}

/// Starts `cmd` (output to files in `dir`) and waits until `GET /-/status.json`
/// through `addr` answers 200.
fn launch(mut cmd: Command, dir: TempDir, addr: SocketAddr) -> Balancer {
    let out = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let daemon = Daemon::spawn(cmd.stdout(out.try_clone().unwrap()).stderr(out))
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let lb = Balancer { daemon, addr, dir };
    let up = wait_until(Duration::from_secs(15), || {
        if let Some(how) = lb.daemon.exited() {
            panic!("{cmd:?} exited ({how})\n{}", lb.log());
        }
        fetch(
            addr,
            "/-/status.json",
            Instant::now() + Duration::from_secs(2),
        )
        .is_ok()
    });
    assert!(up, "{cmd:?} did not answer on {addr}\n{}", lb.log());
    lb
}

fn start_nginx(nginx: &Path, shards: &[SocketAddr]) -> Balancer {
    let dir = TempDir::new("nginx");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listen = format!("listen {addr};");
    let shipped = configure(
        NGINX_CONF,
        shards,
        &[("listen 4000;", &listen), ("listen [::]:4000;", "")],
    );
    let d = dir.path().display();
    std::fs::write(dir.path().join("shards.conf"), shipped).unwrap();
    // The main file a distribution ships, reduced to what runs unprivileged in a
    // temporary prefix; the shipped file is included in http { } as documented.
    let main = format!(
        "daemon off;\n\
         worker_processes 2;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
             log_format timing '$request_uri $status $body_bytes_sent $request_time \
                 $upstream_addr $upstream_status $upstream_connect_time \
                 $upstream_header_time $upstream_response_time';\n\
             access_log {d}/access.log timing;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             include {d}/shards.conf;\n\
         }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(dir.path().join("nginx.conf"));
    launch(cmd, dir, addr)
}

fn start_haproxy(haproxy: &Path, shards: &[SocketAddr]) -> Balancer {
    let dir = TempDir::new("haproxy");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let bind = format!("bind {addr}");
    let cfg = configure(HAPROXY_CFG, shards, &[("bind :4000", &bind)]);
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, cfg).unwrap();
    let mut cmd = Command::new(haproxy);
    // -db: stay in the foreground, as a child of the test.
    cmd.arg("-db").arg("-f").arg(&file);
    launch(cmd, dir, addr)
}

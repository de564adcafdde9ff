//! The binary: the Python original's flags, clear errors, signals.

use std::time::{Duration, Instant};

use crate::support::process::{Process, output};
use crate::support::*;

#[test]
fn version_and_help() {
    let (code, out, _) = output(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("package-cache {}\n", env!("CARGO_PKG_VERSION"))
    );
    for flag in ["-h", "--help"] {
        let (code, out, _) = output(&[flag]);
        assert_eq!(code, 0);
        for needle in [
            "--source",
            "--host",
            "--port",
            "--cache",
            "--verbose",
            "--syslog",
            "default 4000",
            "/tmp/package-cache",
        ] {
            assert!(out.contains(needle), "{flag}: {needle} missing");
        }
    }
}

#[test]
fn bad_values_exit_non_zero_with_one_line_naming_flag_and_value() {
    let file = TempDir::new("notadir");
    let blocker = file.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let cache_arg = format!("{}/sub", blocker.display());
    for (args, needle) in [
        (vec!["--port", "x"], "'--port' with value 'x'"),
        (vec!["--port=99999"], "'--port' with value '99999'"),
        (
            vec!["--source", "ftp://mirror"],
            "--source ftp://mirror: not an http:// or https:// URL",
        ),
        (
            vec!["--source", "http://a", "--cache", &cache_arg],
            "--cache ",
        ),
        (vec!["--threads", "0"], "'--threads' with value '0'"),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ] {
        let (code, _, err) = output(&args);
        assert_ne!(code, 0, "{args:?}");
        let first = err.lines().next().unwrap_or("");
        assert!(first.starts_with("package-cache: "), "{args:?}: {err}");
        assert!(first.contains(needle), "{args:?}: {first}");
        if needle == "--cache " {
            assert!(
                first.contains(&cache_arg) && first.contains("not a directory"),
                "{first}"
            );
        }
    }
}

#[test]
fn serves_with_python_style_flags_and_stops_on_sigterm() {
    let mirror = FakeMirror::start();
    mirror.put("/distfiles/x", b"x".to_vec());
    let cache = TempDir::new("bin");
    let source = format!("--source={}", mirror.url());
    let cache_arg = format!("--cache={}", cache.path().display());
    let mut p = Process::start(&[&source, &cache_arg, "-vv"]);
    let r = get(p.addr, "/distfiles/x");
    assert_eq!((r.status, r.text().as_str()), (200, "x"));
    // -vv shows the access line and the upstream request.
    assert!(
        p.wait_for_line("GET /distfiles/x 200 1", Duration::from_secs(5))
            .is_some()
    );
    assert!(
        p.wait_for_line(
            &format!("GET {}/distfiles/x: 200", mirror.url()),
            Duration::from_secs(5)
        )
        .is_some()
    );

    let started = Instant::now();
    p.signal(libc::SIGTERM);
    let status = p
        .wait_exit(Duration::from_secs(5))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(std::net::TcpStream::connect(p.addr).is_err());
}

#[test]
fn sigint_stops_too_and_a_second_signal_is_immediate() {
    let mirror = FakeMirror::start();
    // A download that would take a long time.
    mirror.put_file(
        "/slow",
        FakeFile::new(bytes(1 << 20, 1)).with_fault(Fault::Rate(10_000)),
    );
    let cache = TempDir::new("bin2");
    let cache_arg = cache.path().display().to_string();
    let mut p = Process::start(&[
        "--source",
        &mirror.url(),
        "--cache",
        &cache_arg,
        "--shutdown-grace",
        "30",
    ]);
    let addr = p.addr;
    let client = std::thread::spawn(move || get(addr, "/slow"));
    assert!(wait_until(Duration::from_secs(5), || mirror.sent("/slow") > 0));
    p.signal(libc::SIGINT);
    // The download holds the server in its grace period...
    assert!(p.wait_exit(Duration::from_millis(500)).is_none());
    // ...until a second signal.
    p.signal(libc::SIGINT);
    let status = p
        .wait_exit(Duration::from_secs(3))
        .expect("exits on the second signal");
    assert!(!status.success());
    let r = client.join().unwrap();
    assert!(!r.complete, "the cut-off download is visibly incomplete");
}

#[test]
fn without_source_uses_gentoo_and_says_so() {
    let cache = TempDir::new("nosource");
    let cache_arg = cache.path().display().to_string();
    let mut p = Process::start(&["--cache", &cache_arg]);
    assert!(
        p.wait_for_line(
            "no --source given: using https://distfiles.gentoo.org",
            Duration::from_secs(5)
        )
        .is_some()
    );
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn syslog_without_a_socket_says_so_and_keeps_logging_to_stderr() {
    if std::path::Path::new("/dev/log").exists() {
        eprintln!("skipped: this machine has a syslog socket");
        return;
    }
    let cache = TempDir::new("syslog");
    let cache_arg = cache.path().display().to_string();
    let mut p = Process::start(&[
        "--syslog",
        "--source",
        "http://127.0.0.1:9",
        "--cache",
        &cache_arg,
    ]);
    let log = p.drain_log();
    assert!(
        log.iter()
            .any(|l| l.contains("cannot reach syslog at /dev/log")),
        "{log:?}"
    );
}

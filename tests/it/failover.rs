//! Sources are tried in order; failures move on to the next; the final status says why.

use std::time::Duration;

use crate::support::*;

/// A URL on which nothing listens (connection refused).
fn dead_source() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

const PATH: &str = "/distfiles/f.tar.xz";

fn good_mirror() -> FakeMirror {
    let m = FakeMirror::start();
    m.put(PATH, b"the real bytes".to_vec());
    m
}

#[test]
fn not_found_moves_to_the_next_source() {
    let (empty, good) = (FakeMirror::start(), good_mirror());
    let cache = TestCache::start(&[empty.url(), good.url()]);
    let r = cache.get(PATH);
    assert_eq!((r.status, r.text().as_str()), (200, "the real bytes"));
    assert_eq!((empty.hits(PATH), good.hits(PATH)), (1, 1));
}

#[test]
fn gone_and_server_errors_move_on() {
    for code in [410, 500, 503, 403] {
        let (bad, good) = (good_mirror(), good_mirror());
        bad.set_faults(PATH, vec![Fault::Status(code)]);
        let cache = TestCache::start(&[bad.url(), good.url()]);
        let r = cache.get(PATH);
        assert_eq!(r.status, 200, "after {code}");
        assert_eq!((bad.hits(PATH), good.hits(PATH)), (1, 1), "after {code}");
    }
}

#[test]
fn refused_connection_moves_on() {
    let good = good_mirror();
    let cache = TestCache::start(&[dead_source(), good.url()]);
    assert_eq!(cache.get(PATH).status, 200);
    assert_eq!(good.hits(PATH), 1);
}

#[test]
fn unresolvable_host_moves_on() {
    let good = good_mirror();
    let cache = TestCache::start(&["http://no-such-host.invalid".into(), good.url()]);
    assert_eq!(cache.get(PATH).status, 200);
}

#[test]
fn silent_source_times_out_and_moves_on() {
    let (slow, good) = (good_mirror(), good_mirror());
    slow.set_faults(PATH, vec![Fault::StallHeaders(Duration::from_secs(5))]);
    let cache = TestCache::start_with(&[slow.url(), good.url()], |c| {
        c.read_timeout = Duration::from_millis(500);
    });
    let started = std::time::Instant::now();
    let r = cache.get(PATH);
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(good.hits(PATH), 1);
}

#[test]
fn all_not_found_is_404_and_nothing_is_stored() {
    let (a, b) = (FakeMirror::start(), FakeMirror::start());
    let cache = TestCache::start(&[a.url(), b.url()]);
    let r = cache.get(PATH);
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("404 Not Found"));
    cache.settle();
    assert_eq!(cache.files(), Vec::<String>::new());
    assert_eq!((a.hits(PATH), b.hits(PATH)), (1, 1));
}

#[test]
fn mixed_failures_are_502() {
    let (a, b) = (FakeMirror::start(), good_mirror());
    b.set_faults(PATH, vec![Fault::Status(500)]);
    let cache = TestCache::start(&[a.url(), b.url(), dead_source()]);
    let r = cache.get(PATH);
    assert_eq!(r.status, 502);
    let text = r.text();
    assert!(
        text.contains("404 not found") && text.contains("500"),
        "{text}"
    );
    cache.settle();
    assert!(cache.files().is_empty());
}

#[test]
fn only_timeouts_and_not_found_is_504() {
    let (a, b) = (FakeMirror::start(), good_mirror());
    b.set_faults(PATH, vec![Fault::StallHeaders(Duration::from_secs(3))]);
    let cache = TestCache::start_with(&[a.url(), b.url()], |c| {
        c.read_timeout = Duration::from_millis(300);
    });
    assert_eq!(cache.get(PATH).status, 504);
}

#[test]
fn a_source_that_failed_to_connect_is_tried_last_for_a_while() {
    let good = good_mirror();
    good.put("/b", b"b".to_vec());
    let dead = dead_source();
    let cache = TestCache::start(&[dead, good.url()]);
    assert_eq!(cache.get(PATH).status, 200);
    assert_eq!(cache.get("/b").status, 200);
    let health = cache.cache.upstream().sources()[0].health();
    assert!(health.down, "the dead source cools down");
    assert!(health.last_error.is_some());
    // Everything still works while the first source is down.
    assert_eq!(good.hits("/b"), 1);
}

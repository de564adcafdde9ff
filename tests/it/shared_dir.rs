//! Several processes on one cache directory (issue 16, item 3): a process following
//! another's download relays only what that leader made durable (the `synced` line of
//! its lock file), never the part file's size alone, which on NFS can run ahead of the
//! data. Where a test needs a leader that does exactly what it is told (a size ahead of
//! the data, a durable length that stops), the test process itself is the leader,
//! through the library's own `Store`/`Lease`, and a real package-cache process follows.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use package_cache::cache::store::{Claim, Key, Lease, Meta, Store};

use crate::support::process::Process;
use crate::support::*;

const PATH: &str = "/distfiles/shared-1.0.tar.gz";

/// A GET whose response is collected as it arrives, to look at while it streams.
struct Streaming {
    got: Arc<Mutex<Vec<u8>>>,
}

impl Streaming {
    fn start(addr: SocketAddr, path: &str) -> Streaming {
        let mut conn = TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Streaming { got }
    }

    /// The body received so far (empty until the headers are complete).
    fn body(&self) -> Vec<u8> {
        let got = self.got.lock().unwrap();
        match got.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => got[at + 4..].to_vec(),
            None => Vec::new(),
        }
    }

    fn head(&self) -> String {
        let got = self.got.lock().unwrap();
        let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
        String::from_utf8_lossy(&got[..end]).into_owned()
    }

    /// Waits until `len` body bytes arrived; then checks that no more come for a while.
    fn settles_at(&self, len: usize) -> bool {
        wait_until(Duration::from_secs(10), || self.body().len() >= len) && {
            thread::sleep(Duration::from_millis(400));
            self.body().len() == len
        }
    }
}

/// The test process takes the entry's lock in `dir`, as a leader in another process
/// (or on another host) would.
fn lead(dir: &TempDir) -> Lease {
    let store = Store::open(dir.path()).unwrap();
    let key = Key::new(&format!("/{}", stored(PATH))).unwrap();
    match store.claim(&key).unwrap() {
        Claim::Leader(lease) => lease,
        Claim::Busy(_) => panic!("someone else holds the lock"),
    }
}

#[test]
fn a_follower_process_never_relays_beyond_the_durable_length() {
    let mirror = FakeMirror::start();
    let dir = TempDir::new("durable");
    let data = bytes(1 << 20, 1701);
    let lease = lead(&dir);
    let part = lease.create_part().unwrap();
    let modified = UNIX_EPOCH + std::time::Duration::from_secs(1_650_000_000);
    lease
        .publish(&Meta {
            len: Some(data.len() as u64),
            modified: Some(modified),
            etag: None,
        })
        .unwrap();
    // Half the data written, the size already at three quarters (zeros beyond the
    // half: what another host can see on NFS), a quarter durable.
    use std::os::unix::fs::FileExt;
    part.write_all_at(&data[..512 << 10], 0).unwrap();
    part.set_len(768 << 10).unwrap();
    lease.publish_synced(256 << 10).unwrap();

    let cache_arg = dir.path().display().to_string();
    let follower = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let client = Streaming::start(follower.addr, PATH);
    assert!(
        client.settles_at(256 << 10),
        "relayed {} bytes with 256 KiB durable",
        client.body().len()
    );
    assert!(
        client.head().starts_with("HTTP/1.1 200"),
        "{}",
        client.head()
    );
    assert!(
        client
            .head()
            .contains(&format!("Content-Length: {}", data.len())),
        "{}",
        client.head()
    );
    assert!(client.body() == data[..256 << 10]);

    lease.publish_synced(512 << 10).unwrap();
    assert!(client.settles_at(512 << 10), "{}", client.body().len());
    assert!(client.body() == data[..512 << 10], "no zeros from the gap");

    // The rest, then the commit (fsync, rename): the follower finishes from the file
    // in place, beyond the last durable length it was told.
    part.write_all_at(&data[512 << 10..], 512 << 10).unwrap();
    lease.commit(&part, Some(modified)).unwrap();
    assert!(wait_until(Duration::from_secs(10), || client.body().len()
        >= data.len()));
    assert!(client.body() == data);
    assert_eq!(mirror.hits(PATH), 0, "the follower never asked the source");
    let again = get(follower.addr, PATH);
    assert_eq!(again.header("x-cache"), Some("HIT"));
}

#[test]
fn a_leader_that_publishes_no_durable_length_is_followed_only_once_complete() {
    // A leader of an older version writes no `synced` line: its followers wait for
    // the file in place rather than trust the part file's size.
    let mirror = FakeMirror::start();
    let dir = TempDir::new("older");
    let data = bytes(300_000, 1702);
    let lease = lead(&dir);
    let part = lease.create_part().unwrap();
    lease
        .publish(&Meta {
            len: Some(data.len() as u64),
            modified: Some(UNIX_EPOCH + std::time::Duration::from_secs(1_650_000_000)),
            etag: None,
        })
        .unwrap();
    use std::os::unix::fs::FileExt;
    part.write_all_at(&data[..200_000], 0).unwrap();
    let cache_arg = dir.path().display().to_string();
    let follower = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let client = Streaming::start(follower.addr, PATH);
    thread::sleep(Duration::from_millis(800));
    assert!(client.body().is_empty(), "{} bytes", client.body().len());
    part.write_all_at(&data[200_000..], 200_000).unwrap();
    lease.commit(&part, None).unwrap();
    assert!(wait_until(Duration::from_secs(10), || client.body().len()
        >= data.len()));
    assert!(client.body() == data);
    assert_eq!(mirror.hits(PATH), 0);
}

#[test]
fn a_stalled_leader_process_has_published_what_its_follower_relays() {
    let mirror = FakeMirror::start();
    let data = bytes(3 << 20, 1703);
    let stall_at = (1 << 20) + 12_345;
    mirror.put_file(
        PATH,
        FakeFile::new(data.clone()).with_fault(Fault::StallAfter(stall_at, Duration::from_secs(3))),
    );
    let dir = TempDir::new("stall");
    let cache_arg = dir.path().display().to_string();
    let leader = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let follower = Process::start(&["--source", &mirror.url(), "--cache", &cache_arg]);
    let first = Streaming::start(leader.addr, PATH);
    assert!(wait_until(Duration::from_secs(5), || first.body().len() >= stall_at));
    let second = Streaming::start(follower.addr, PATH);

    // While the source is silent, the leader's lock file says every byte it has is
    // durable, and the follower has relayed exactly those.
    let lock = dir
        .path()
        .join(stored(PATH))
        .with_file_name(".shared-1.0.tar.gz.pc-lock");
    let synced = format!("synced {stall_at:020} {stall_at:020}\n");
    assert!(
        wait_until(Duration::from_secs(2), || std::fs::read_to_string(&lock)
            .is_ok_and(|t| t.contains(&synced))),
        "{:?}",
        std::fs::read_to_string(&lock)
    );
    assert!(second.settles_at(stall_at), "{}", second.body().len());
    assert!(second.body() == data[..stall_at]);

    // Then the rest, and both end with the whole file; one upstream request.
    assert!(wait_until(Duration::from_secs(10), || second.body().len()
        >= data.len()
        && first.body().len() >= data.len()));
    assert!(first.body() == data && second.body() == data);
    assert_eq!(mirror.gets(PATH), 1);
    assert!(wait_until(Duration::from_secs(5), || list_files(
        dir.path()
    ) == [stored(PATH)]));
}

//! The durable length of a download in progress: how far other processes may follow
//! it.
//!
//! Clients in the leader's process read the part file as it grows (the flight says how
//! far): the page cache is coherent on one host. A follower in another process reads
//! the same part file through the filesystem, and when that filesystem is shared by
//! several hosts (NFSv4, CephFS) the file's size is not a promise about its data: an
//! NFS client flushes dirty pages in parallel and out of order, so the server's size
//! can run ahead of the bytes it holds, and a gap reads as zeros. So, while it copies,
//! the leader runs a syncer beside the tee: every [`SyncPeriod`] it `fdatasync`s the
//! part file and then records the length that was durable before the call in the lock
//! file (`synced N N`, [`Lease::publish_synced`]). Followers in other processes relay
//! only up to that length ([`super::store::Polled::synced`]); the complete file is the
//! one renamed into place, after the leader's final fsync.
//!
//! The syncer runs on its own thread, so the copy never waits for the disk: a sync
//! takes what was written before it started, while the tee goes on writing. The
//! first sync follows the first bytes at once (followers start streaming promptly),
//! later ones when `bytes` more arrived or `time` passed, whichever comes first.
//!
//! This is a separate limit from anything else that holds bytes back from readers: a
//! follower relays the smallest of the durable length, the part file's size as it
//! sees it, and whatever else the flight allows.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::flight::Flight;
use super::store::Lease;
use super::tee::CopyEnd;

/// How often the leader makes its part file durable and says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPeriod {
    /// Sync once this many bytes arrived since the last sync...
    pub bytes: u64,
    /// ...or once this much time passed with bytes waiting, whichever comes first.
    pub time: Duration,
}

impl Default for SyncPeriod {
    /// Every 16 MiB or 250 ms: see the README ("Sharing one cache directory") for what
    /// it costs a cold miss.
    fn default() -> SyncPeriod {
        SyncPeriod {
            bytes: 16 << 20,
            time: Duration::from_millis(250),
        }
    }
}

/// Runs `copy` (the tee, writing `part` and advancing `flight`) with a syncer beside
/// it that publishes the durable length through `lease` every `period`; returns how
/// the copy ended once the syncer has stopped. A copy that completed after a sync
/// failed ends as a disk failure at the last durable length: after a failed
/// `fdatasync` the kernel may have dropped the data, and a later fsync can succeed
/// anyway, so the file must not be committed.
pub(crate) fn copy_syncing(
    lease: &Lease,
    part: &File,
    flight: &Flight,
    period: SyncPeriod,
    copy: impl FnOnce() -> CopyEnd,
) -> CopyEnd {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let syncer = thread::Builder::new()
            .name("syncer".into())
            .spawn_scoped(scope, || sync_while(lease, part, flight, period, &stop));
        if let Err(e) = &syncer {
            warn!(
                "cannot start a syncer for {}: {e}; other processes follow it only once complete",
                lease.target().display()
            );
        }
        let end = copy();
        stop.store(true, Ordering::Relaxed);
        flight.wake();
        let failed = match syncer {
            Ok(handle) => handle.join().ok().and_then(Result::err),
            Err(_) => None,
        };
        match (end, failed) {
            (CopyEnd::Done(_), Some((synced, e))) => CopyEnd::Disk(synced, e),
            (end, _) => end,
        }
    })
}

/// The syncer: until `stop`, makes what `flight` says was written durable and
/// publishes it. A failed sync is published at once as a disk failure at the last
/// durable length (followers elsewhere continue from the source), syncing stops, and
/// the error is returned with that length.
fn sync_while(
    lease: &Lease,
    part: &File,
    flight: &Flight,
    period: SyncPeriod,
    stop: &AtomicBool,
) -> Result<(), (u64, io::Error)> {
    let stopped = || stop.load(Ordering::Relaxed);
    let mut synced = 0u64;
    let mut last: Option<Instant> = None;
    loop {
        if stopped() || flight.phase().is_final() {
            return Ok(());
        }
        let written = flight.written();
        let waiting = written - synced.min(written);
        let due_in = last.map_or(Duration::ZERO, |t| period.time.saturating_sub(t.elapsed()));
        if waiting > 0 && (waiting >= period.bytes || due_in.is_zero()) {
            let at = Instant::now();
            let done = part
                .sync_data()
                .and_then(|()| lease.publish_synced(written));
            if let Err(e) = done {
                warn!(
                    "cannot make {} durable: {e}; other processes following it continue from the source",
                    lease.target().display()
                );
                if let Err(e) = lease.publish_disk_failure(synced) {
                    debug!("cannot note the failure: {e}");
                }
                return Err((synced, e));
            }
            debug!(
                "{}: {written} bytes durable ({}ms)",
                lease.target().display(),
                at.elapsed().as_millis()
            );
            synced = written;
            last = Some(Instant::now());
            continue;
        }
        // Nothing waiting: sleep until bytes arrive. Bytes waiting: until enough for a
        // sync by size, or until it is due by time.
        let (timeout, target) = if waiting == 0 {
            (period.time.max(Duration::from_millis(100)), synced + 1)
        } else {
            (due_in, synced.saturating_add(period.bytes))
        };
        flight.wait_written(timeout, |w| w >= target || stopped());
    }
}

/// How long a follower waits on a leader whose lock it cannot test (see
/// [`super::store::Leader::Unknown`]) while nothing moves: the lock may be held by a
/// live leader behind a flaky NFS lock manager, or by nobody behind a stale file
/// handle. Once neither the lock answered nor a byte arrived for `limit`, the leader
/// counts as gone.
#[derive(Debug)]
pub(crate) struct Patience {
    limit: Duration,
    moved: Instant,
    unknown_since: Option<Instant>,
}

impl Patience {
    pub(crate) fn new(limit: Duration) -> Patience {
        Patience {
            limit,
            moved: Instant::now(),
            unknown_since: None,
        }
    }

    /// Records one poll: whether bytes (or the metadata) arrived, and whether the lock
    /// could be tested. Returns whether patience ran out.
    pub(crate) fn poll(&mut self, progressed: bool, lock_known: bool) -> bool {
        self.poll_at(Instant::now(), progressed, lock_known)
    }

    fn poll_at(&mut self, now: Instant, progressed: bool, lock_known: bool) -> bool {
        if progressed {
            self.moved = now;
        }
        if lock_known {
            self.unknown_since = None;
            return false;
        }
        let since = *self.unknown_since.get_or_insert(now);
        let quiet = now.saturating_duration_since(self.moved);
        now.saturating_duration_since(since) >= self.limit && quiet >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_runs_out_only_when_the_lock_is_unknown_and_nothing_moves() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Patience {
            limit: s(30),
            moved: t0,
            unknown_since: None,
        };
        assert!(!p.poll_at(t0 + s(10), false, false), "unknown since 10 s");
        assert!(!p.poll_at(t0 + s(39), false, false), "unknown for 29 s");
        assert!(!p.poll_at(t0 + s(39), true, false), "bytes arrived");
        assert!(!p.poll_at(t0 + s(60), false, false), "quiet for only 21 s");
        assert!(
            p.poll_at(t0 + s(70), false, false),
            "unknown and quiet for 30 s"
        );
        // A lock that answers again resets it.
        assert!(!p.poll_at(t0 + s(71), false, true));
        assert!(!p.poll_at(t0 + s(72), false, false));
        assert!(p.poll_at(t0 + s(102), false, false));
        // A held lock with nothing moving is not a reason to give up: the lock's
        // owner (or the server's lease) decides.
        let mut held = Patience::new(s(1));
        assert!(!held.poll_at(Instant::now() + s(100), false, true));
    }
}

//! Downloads in progress in this process, one per entry, shared by every client that
//! wants the entry meanwhile.
//!
//! A [`Flight`] is the meeting point: one download thread produces (it writes the part
//! file and calls `Flight::advance`), any number of clients consume through
//! [`GrowingReader`](crate::cache::tee::GrowingReader)s, woken by a condition variable on every step. Clients
//! hold a [`Ticket`] while attached, which is how the download knows whether anyone
//! still wants it.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Error;
use super::store::{Key, Meta};

/// Where a download stands.
#[derive(Clone, Debug)]
pub enum Phase {
    /// Asking the sources; no headers yet.
    Connecting,
    /// Bytes are arriving; the metadata is what the upstream announced.
    Streaming(Meta),
    /// Every byte is on disk (`Meta::len` is known).
    Complete(Meta),
    /// The upstream confirmed that the copy we have is current.
    NotModified,
    /// Failed before any byte arrived; the error says how to answer.
    Failed(Arc<Error>),
    /// Broke after bytes arrived. With `disk_at`, the upstream was fine but writing to
    /// disk failed once that many bytes were stored: readers may continue from the
    /// upstream directly.
    Broken {
        /// What happened, for logs and the client's error.
        reason: String,
        /// Bytes safely on disk when a disk write failed.
        disk_at: Option<u64>,
    },
    /// Nothing can be stored for this entry (the lock or part file cannot be created):
    /// clients fetch for themselves without storing.
    NoStore(String),
    /// The download another process was running ended without a file; try again.
    LeaderGone,
}

impl Phase {
    /// Whether the phase is final.
    pub fn is_final(&self) -> bool {
        !matches!(self, Phase::Connecting | Phase::Streaming(_))
    }
}

/// Where to continue from when the disk fails mid-download.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The source index that is sending the file.
    pub source: usize,
    /// The path asked of that source.
    pub path: String,
    /// The download runs in this process from that source. False for a follower of
    /// another process's download, whose source is only a guess (our first one).
    pub led: bool,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    file: Option<Arc<File>>,
    announced: Option<Meta>,
    written: u64,
    origin: Option<Origin>,
    readers: usize,
    alone_since: Option<Instant>,
    /// When the headers arrived (for the transfer rate).
    begun: Option<Instant>,
    /// Completed from a file already on disk, without a transfer.
    from_disk: bool,
    /// Counts [`Flight::wake`] calls.
    wakes: u64,
}

/// One download in progress.
#[derive(Debug)]
pub struct Flight {
    key: Key,
    started: Instant,
    state: Mutex<State>,
    cond: Condvar,
}

/// A snapshot of a flight, for the status page.
#[derive(Clone, Debug)]
pub struct FlightInfo {
    /// The entry.
    pub key: String,
    /// Bytes received.
    pub written: u64,
    /// Total, when known.
    pub len: Option<u64>,
    /// Clients attached.
    pub readers: usize,
    /// Time since the download started.
    pub elapsed: Duration,
}

impl Flight {
    fn new(key: Key) -> Flight {
        Flight {
            key,
            started: Instant::now(),
            state: Mutex::new(State {
                phase: Phase::Connecting,
                file: None,
                announced: None,
                written: 0,
                origin: None,
                readers: 0,
                alone_since: Some(Instant::now()),
                begun: None,
                from_disk: false,
                wakes: 0,
            }),
            cond: Condvar::new(),
        }
    }

    /// The entry being downloaded.
    pub fn key(&self) -> &Key {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a client; it counts as attached until the ticket is dropped.
    pub fn attach(self: &Arc<Self>) -> Ticket {
        let mut s = self.lock();
        s.readers += 1;
        s.alone_since = None;
        Ticket {
            flight: self.clone(),
        }
    }

    /// Blocks until the upstream's headers arrived or the flight ended; returns the
    /// phase then.
    pub fn wait_for_headers(&self) -> Phase {
        let mut s = self.lock();
        while matches!(s.phase, Phase::Connecting) {
            s = self.cond.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.phase.clone()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase.clone()
    }

    /// Whether it is still asking the sources (no headers yet).
    pub fn is_connecting(&self) -> bool {
        matches!(self.lock().phase, Phase::Connecting)
    }

    /// Whether it broke or failed, or its leader in another process went away: a
    /// client that comes now must start a new download.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.lock().phase,
            Phase::Broken { .. } | Phase::LeaderGone | Phase::Failed(_)
        )
    }

    /// The length the upstream announced, if it did (kept after the flight ends).
    pub fn announced_len(&self) -> Option<u64> {
        self.lock().announced.as_ref().and_then(|m| m.len)
    }

    /// Where the bytes come from (for continuing after a disk failure).
    pub fn origin(&self) -> Option<Origin> {
        self.lock().origin.clone()
    }

    /// The file the bytes are written to, once there is one.
    pub fn file(&self) -> Option<Arc<File>> {
        self.lock().file.clone()
    }

    /// Blocks until more than `pos` bytes are on disk or the flight is final; returns
    /// the bytes on disk, the phase, and the file to read them from.
    pub(crate) fn wait_beyond(&self, pos: u64) -> (u64, Phase, Option<Arc<File>>) {
        let mut s = self.lock();
        while s.written <= pos && !s.phase.is_final() {
            s = self.cond.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        (s.written, s.phase.clone(), s.file.clone())
    }

    /// Like [`Flight::wait_beyond`], but gives up after `timeout`; returns the bytes
    /// on disk and the phase then.
    pub(crate) fn wait_beyond_for(&self, pos: u64, timeout: Duration) -> (u64, Phase) {
        let s = self.lock();
        let (s, _) = self
            .cond
            .wait_timeout_while(s, timeout, |s| s.written <= pos && !s.phase.is_final())
            .unwrap_or_else(PoisonError::into_inner);
        (s.written, s.phase.clone())
    }

    /// Blocks until `enough(written)` holds, or [`Flight::wake`] is called, or the
    /// flight is final, or `timeout` passes; returns the bytes on disk then. (For the
    /// leader's own helpers, such as the syncer of [`durable`](crate::cache::durable), which wait on the
    /// download's progress with conditions of their own.)
    pub(crate) fn wait_written(&self, timeout: Duration, enough: impl Fn(u64) -> bool) -> u64 {
        let s = self.lock();
        let woken = s.wakes;
        let (s, _) = self
            .cond
            .wait_timeout_while(s, timeout, |s| {
                !enough(s.written) && s.wakes == woken && !s.phase.is_final()
            })
            .unwrap_or_else(PoisonError::into_inner);
        s.written
    }

    /// Bytes on disk now.
    pub(crate) fn written(&self) -> u64 {
        self.lock().written
    }

    /// Wakes every [`Flight::wait_written`] now, whatever its condition.
    pub(crate) fn wake(&self) {
        let mut s = self.lock();
        s.wakes = s.wakes.wrapping_add(1);
        self.cond.notify_all();
    }

    /// Bytes per second since the headers arrived, once some arrived.
    pub fn rate(&self) -> Option<f64> {
        let s = self.lock();
        let secs = s.begun?.elapsed().as_secs_f64();
        (s.written > 0 && secs > 0.0).then(|| s.written as f64 / secs)
    }

    /// Whether every byte has arrived (the file may still be being committed).
    pub fn all_arrived(&self) -> bool {
        let s = self.lock();
        match &s.phase {
            Phase::Complete(_) => true,
            Phase::Streaming(meta) => meta.len == Some(s.written),
            _ => false,
        }
    }

    /// How many clients are attached now.
    #[cfg(test)]
    pub fn readers(&self) -> usize {
        self.lock().readers
    }

    /// How long nobody has been attached (`None` while someone is).
    pub fn alone_for(&self) -> Option<Duration> {
        self.lock().alone_since.map(|t| t.elapsed())
    }

    /// A snapshot for the status page.
    pub fn info(&self) -> FlightInfo {
        let s = self.lock();
        let len = match &s.phase {
            Phase::Streaming(m) | Phase::Complete(m) => m.len,
            _ => None,
        };
        FlightInfo {
            key: self.key.as_str().to_owned(),
            written: s.written,
            len,
            readers: s.readers,
            elapsed: self.started.elapsed(),
        }
    }

    /// Headers arrived: bytes will appear in `file`.
    pub(crate) fn begin(&self, meta: Meta, file: Arc<File>, origin: Option<Origin>) {
        let mut s = self.lock();
        s.announced = Some(meta.clone());
        s.phase = Phase::Streaming(meta);
        s.file = Some(file);
        s.origin = origin;
        s.begun = Some(Instant::now());
        self.cond.notify_all();
    }

    /// `written` bytes are now on disk.
    pub(crate) fn advance(&self, written: u64) {
        let mut s = self.lock();
        s.written = written;
        self.cond.notify_all();
    }

    /// The flight ended: every byte in `file` (or none) and the final phase.
    pub(crate) fn finish(&self, phase: Phase) {
        let mut s = self.lock();
        if let Phase::Complete(Meta { len: Some(len), .. }) = &phase {
            s.written = *len;
        }
        s.phase = phase;
        self.cond.notify_all();
    }

    /// The entry turned out to be complete already (another download finished just
    /// before this one could start): serve `file`.
    pub(crate) fn complete_with(&self, file: File, meta: Meta) {
        let mut s = self.lock();
        s.file = Some(Arc::new(file));
        s.written = meta.len.unwrap_or(0);
        s.phase = Phase::Complete(meta);
        s.from_disk = true;
        self.cond.notify_all();
    }

    /// Whether the flight was answered from a complete file that appeared on disk
    /// (another process finished it just before), so no transfer happened for it.
    pub fn from_disk(&self) -> bool {
        self.lock().from_disk
    }
}

/// A client's attachment to a flight (see [`Flight::attach`]).
#[derive(Debug)]
pub struct Ticket {
    flight: Arc<Flight>,
}

impl Ticket {
    /// The flight.
    pub fn flight(&self) -> &Arc<Flight> {
        &self.flight
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.flight.lock();
        s.readers -= 1;
        if s.readers == 0 {
            s.alone_since = Some(Instant::now());
        }
    }
}

/// The flights of this process, by entry.
#[derive(Debug, Default)]
pub struct Flights {
    map: Mutex<HashMap<Key, Arc<Flight>>>,
}

impl Flights {
    /// The flight for `key` and whether it was just created (the caller must then
    /// start the download). The returned ticket is already attached, so a new flight
    /// never looks abandoned.
    pub fn join(&self, key: &Key) -> (Ticket, bool) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // A download that broke or failed is still listed until its thread ends: a
        // client that starts over, or comes after it, must get a new one ("no source
        // has it" is remembered by the negative cache, not by a dead flight).
        if let Some(f) = map.get(key)
            && !f.is_dead()
        {
            return (f.attach(), false);
        }
        let flight = Arc::new(Flight::new(key.clone()));
        map.insert(key.clone(), flight.clone());
        (flight.attach(), true)
    }

    /// The flight for `key`, if one is running (for answering `HEAD`).
    pub fn get(&self, key: &Key) -> Option<Arc<Flight>> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Forgets `flight` (when its download thread ends).
    pub fn remove(&self, flight: &Arc<Flight>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(flight.key())
            .is_some_and(|f| Arc::ptr_eq(f, flight))
        {
            map.remove(flight.key());
        }
    }

    /// Snapshots of every flight.
    pub fn list(&self) -> Vec<FlightInfo> {
        let flights: Vec<_> = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        flights.iter().map(|f| f.info()).collect()
    }

    /// How many downloads are running.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no download is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn a_flight_completed_from_disk_says_so() {
        let flights = Flights::default();
        let (ticket, _) = flights.join(&Key::new("/b").unwrap());
        let flight = ticket.flight().clone();
        assert!(!flight.from_disk());
        let meta = Meta {
            len: Some(0),
            ..Meta::default()
        };
        flight.complete_with(tempfile(), meta);
        assert!(flight.from_disk());
        assert!(matches!(flight.phase(), Phase::Complete(_)));
    }

    #[test]
    fn one_flight_per_key_and_readers_are_counted() {
        let flights = Flights::default();
        let key = Key::new("/a").unwrap();
        let (t1, new1) = flights.join(&key);
        let (t2, new2) = flights.join(&key);
        assert!(new1 && !new2);
        assert!(Arc::ptr_eq(t1.flight(), t2.flight()));
        let flight = t1.flight().clone();
        assert_eq!(flight.readers(), 2);
        assert_eq!(flight.alone_for(), None);
        drop((t1, t2));
        assert_eq!(flight.readers(), 0);
        assert!(flight.alone_for().is_some());
        flights.remove(&flight);
        assert!(flights.is_empty());
        assert!(flights.join(&key).1, "a new flight after removal");
    }

    #[test]
    fn waiters_wake_on_progress() {
        let flight = Arc::new(Flight::new(Key::new("/a").unwrap()));
        let waiter = {
            let flight = flight.clone();
            thread::spawn(move || {
                let phase = flight.wait_for_headers();
                let (written, _, _) = flight.wait_beyond(0);
                (phase, written)
            })
        };
        let file = Arc::new(tempfile());
        flight.begin(
            Meta {
                len: Some(10),
                ..Meta::default()
            },
            file,
            None,
        );
        flight.advance(4);
        let (phase, written) = waiter.join().unwrap();
        assert!(matches!(phase, Phase::Streaming(_)));
        assert!(written >= 4);
        flight.finish(Phase::Complete(Meta {
            len: Some(10),
            ..Meta::default()
        }));
        assert_eq!(flight.wait_beyond(9).0, 10);
    }

    fn tempfile() -> File {
        let p = std::env::temp_dir().join(format!("pc-flight-{}", std::process::id()));
        let f = File::create(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}

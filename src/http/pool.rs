//! The hand-off from the acceptor to a fixed pool of workers, most recently idle first.
//!
//! Each worker has a private one-job mailbox; idle workers wait on theirs and sit on a
//! stack. A job goes to the worker that became idle last, so under light and
//! moderate load the same few threads do the work: their stacks and caches stay warm,
//! and the others' stack pages are never touched (a FIFO queue would rotate through all
//! of them, which with hundreds of workers costs megabytes of memory and throughput).
//! When every worker is busy, jobs wait in a bounded backlog that workers drain before
//! going idle again.
//!
//! The one subtle case, a job queued in the backlog just as the last busy worker decides
//! to go idle, is excluded by a mutex: the dispatcher's "no idle worker, queue it" and a
//! worker's "backlog empty, register as idle" never interleave.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// One worker's mailbox: a job, or `None` to say the pool closed. A plain mutex and
/// condition variable, so an idle worker sleeps at once instead of spinning first as a
/// channel's receive does (which on two cores took a sixth of the CPU from the
/// threads doing work).
struct Slot<T> {
    mail: Mutex<Option<Option<T>>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    fn put(&self, msg: Option<T>) {
        *self.mail.lock().unwrap_or_else(PoisonError::into_inner) = Some(msg);
        self.ready.notify_one();
    }

    fn take(&self) -> Option<T> {
        let mut mail = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(msg) = mail.take() {
                return msg;
            }
            mail = self
                .ready
                .wait(mail)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

struct State<T> {
    idle: Vec<Arc<Slot<T>>>,
    closed: bool,
}

/// The dispatcher's side.
pub(crate) struct Pool<T> {
    state: Arc<Mutex<State<T>>>,
    backlog_tx: Sender<T>,
    backlog_rx: Receiver<T>,
}

/// One worker's side.
pub(crate) struct Worker<T> {
    state: Arc<Mutex<State<T>>>,
    backlog: Receiver<T>,
    slot: Arc<Slot<T>>,
}

fn lock<T>(m: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Pool<T> {
    /// A pool whose backlog holds `backlog` jobs.
    pub(crate) fn new(backlog: usize) -> Pool<T> {
        let (backlog_tx, backlog_rx) = crossbeam_channel::bounded(backlog.max(1));
        Pool {
            state: Arc::new(Mutex::new(State {
                idle: Vec::new(),
                closed: false,
            })),
            backlog_tx,
            backlog_rx,
        }
    }

    /// A new worker's handle.
    pub(crate) fn worker(&self) -> Worker<T> {
        Worker {
            state: self.state.clone(),
            backlog: self.backlog_rx.clone(),
            slot: Arc::new(Slot {
                mail: Mutex::new(None),
                ready: Condvar::new(),
            }),
        }
    }

    /// Hands `job` to the most recently idle worker, or queues it. While every worker is
    /// busy and the backlog is full it retries every millisecond (always under the
    /// mutex, so a job is never queued behind a worker's back), checking `give_up`;
    /// returns the job if it gave up.
    pub(crate) fn dispatch(&self, mut job: T, give_up: impl Fn() -> bool) -> Result<(), T> {
        loop {
            let mut state = lock(&self.state);
            if let Some(worker) = state.idle.pop() {
                drop(state);
                // A worker is on the idle stack only while it waits on its slot.
                worker.put(Some(job));
                return Ok(());
            }
            match self.backlog_tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => job = j,
            }
            drop(state);
            if give_up() {
                return Err(job);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lets idle workers exit; busy ones exit once the backlog is empty.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        for idle in state.idle.drain(..) {
            idle.put(None);
        }
    }
}

impl<T> Worker<T> {
    /// The next job, or `None` once the pool is closed and the backlog drained.
    pub(crate) fn next(&self) -> Option<T> {
        {
            let mut state = lock(&self.state);
            if let Ok(job) = self.backlog.try_recv() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.idle.push(self.slot.clone());
        }
        self.slot.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn most_recently_idle_worker_gets_the_job() {
        let pool: Pool<usize> = Pool::new(4);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..4)
            .map(|id| {
                let (w, seen) = (pool.worker(), seen.clone());
                let h = thread::spawn(move || {
                    while let Some(job) = w.next() {
                        seen.lock().unwrap().push((id, job));
                    }
                });
                // Let each worker register before the next starts: idle order 0,1,2,3.
                thread::sleep(Duration::from_millis(50));
                h
            })
            .collect();
        for job in 0..3 {
            pool.dispatch(job, || false).unwrap();
            thread::sleep(Duration::from_millis(50));
        }
        pool.close();
        for h in handles {
            h.join().unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        // Worker 3 went idle last, took job 0, went idle again (now last), and so on.
        assert_eq!(seen, [(3, 0), (3, 1), (3, 2)]);
    }

    #[test]
    fn every_job_is_done_under_load_and_close_drains() {
        let pool: Pool<usize> = Pool::new(8);
        let done = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (w, done) = (pool.worker(), done.clone());
                thread::spawn(move || {
                    while let Some(_job) = w.next() {
                        thread::sleep(Duration::from_micros(200));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for job in 0..2000 {
            pool.dispatch(job, || false).unwrap();
        }
        pool.close();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 2000);
    }

    #[test]
    fn dispatch_gives_up_when_asked() {
        let pool: Pool<usize> = Pool::new(1);
        pool.dispatch(1, || false).unwrap();
        assert_eq!(pool.dispatch(2, || true), Err(2));
    }
}

//! Running a [`Check`] beside the transfer it checks.
//!
//! Digests cost more CPU per byte than the rest of a miss (BLAKE2b-512 and SHA-512
//! together run at a few hundred MB/s per core, the tee at several GB/s). So a large
//! file's check is split into its parts ([`Check::split`]: one per digest) and each
//! part runs on a thread of its own, fed a copy of every block through a short
//! bounded queue: the download thread only copies, the digests are computed in
//! parallel with the transfer and with each other, and at the end the download
//! waits only for the last blocks. Memory stays fixed: at most [`QUEUE`] + 2 blocks
//! per part, recycled. Small files (and a part whose thread cannot start) are checked
//! on the calling thread.

use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use super::Check;

/// Files at least this large are checked on threads of their own.
pub(super) const THREADED_FROM: u64 = 1 << 20;

/// Blocks waiting for a part's thread (the download blocks when it falls behind).
const QUEUE: usize = 2;

/// A check in progress.
pub(crate) struct Digester {
    inline: Vec<Box<dyn Check>>,
    workers: Vec<Worker>,
}

/// One part of a check, on its own thread.
struct Worker {
    blocks: Sender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
    done: JoinHandle<Result<(), String>>,
}

impl Digester {
    /// Runs `check` for a file of `size` bytes: inline, or on threads when large.
    pub(crate) fn new(check: Box<dyn Check>, size: u64) -> Digester {
        let mut d = Digester {
            inline: Vec::new(),
            workers: Vec::new(),
        };
        if size < THREADED_FROM {
            d.inline.push(check);
            return d;
        }
        for part in check.split() {
            match Worker::start() {
                Some((worker, give)) => {
                    // The part goes to its thread only once that thread runs.
                    let _ = give.send(part);
                    d.workers.push(worker);
                }
                None => d.inline.push(part),
            }
        }
        d
    }

    /// Feeds the next bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for part in &mut self.inline {
            part.update(bytes);
        }
        for w in &self.workers {
            let mut block = w.spare.try_recv().unwrap_or_default();
            block.clear();
            block.extend_from_slice(bytes);
            // A part whose thread died reports it at the end.
            let _ = w.blocks.send(block);
        }
    }

    /// Waits for every part; the first that failed says why.
    pub(crate) fn finish(self) -> Result<(), String> {
        let mut result = Ok(());
        for part in self.inline {
            result = result.and(part.finish());
        }
        for w in self.workers {
            drop(w.blocks);
            let r = w
                .done
                .join()
                .unwrap_or_else(|_| Err("the digest thread failed".into()));
            result = result.and(r);
        }
        result
    }
}

impl Worker {
    /// Starts a thread waiting for its part, then for blocks; `None` if no thread
    /// can be started.
    fn start() -> Option<(Worker, Sender<Box<dyn Check>>)> {
        let (give, part) = bounded::<Box<dyn Check>>(1);
        let (blocks, rx) = bounded::<Vec<u8>>(QUEUE);
        let (back, spare) = unbounded::<Vec<u8>>();
        let done = thread::Builder::new()
            .name("digest".into())
            .spawn(move || {
                let mut part = part.recv().map_err(|_| "no digest to compute".to_owned())?;
                for block in rx {
                    part.update(&block);
                    let _ = back.send(block);
                }
                part.finish()
            })
            .ok()?;
        Some((
            Worker {
                blocks,
                spare,
                done,
            },
            give,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums the bytes; split in two halves that each count one parity of position.
    struct Sum {
        want: u64,
        got: u64,
        parts: bool,
    }

    impl Check for Sum {
        fn update(&mut self, bytes: &[u8]) {
            self.got += bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        fn finish(self: Box<Self>) -> Result<(), String> {
            if self.got == self.want {
                Ok(())
            } else {
                Err(format!("sum {} not {}", self.got, self.want))
            }
        }
        fn split(self: Box<Self>) -> Vec<Box<dyn Check>> {
            if !self.parts {
                return vec![self];
            }
            // Two parts that each check the whole sum.
            let one = || {
                Box::new(Sum {
                    want: self.want,
                    got: 0,
                    parts: false,
                }) as Box<dyn Check>
            };
            vec![one(), one()]
        }
    }

    #[test]
    fn large_files_are_checked_on_threads_with_the_same_result() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let want: u64 = data.iter().map(|&b| u64::from(b)).sum();
        for (size, parts) in [
            (data.len() as u64, true),
            (10, true),
            (data.len() as u64, false),
        ] {
            for wrong in [false, true] {
                let check = Box::new(Sum {
                    want: want + u64::from(wrong),
                    got: 0,
                    parts,
                });
                let mut d = Digester::new(check, size);
                assert_eq!(
                    d.workers.len(),
                    if size > 10 && parts {
                        2
                    } else {
                        usize::from(size > 10)
                    }
                );
                for block in data.chunks(65_536) {
                    d.update(block);
                }
                assert_eq!(d.finish().is_ok(), !wrong, "{size} {parts} {wrong}");
            }
        }
    }
}

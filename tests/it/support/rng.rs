//! The seeded generator every random choice in the tests comes from (SplitMix64):
//! tiny, fast, reproducible, no crates. The property tests draw their inputs from it and
//! the soak its files, faults and clients, so that a seed replays a run.

use std::time::Duration;

/// Advances `state` and returns the next 64 random bits (SplitMix64).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a: a seed (or any stable number) from a name.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A SplitMix64 stream from a seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// Uniform in `0..n` (`0` when `n` is 0; the modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `0..n`, as an index.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).max(1))
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.index(items.len())]
    }

    /// One item of the lists together, all items equally likely.
    pub fn pick_among<'a, T: ?Sized>(&mut self, lists: &[&[&'a T]]) -> &'a T {
        let mut i = self.index(lists.iter().map(|l| l.len()).sum());
        for list in lists {
            if i < list.len() {
                return list[i];
            }
            i -= list.len();
        }
        unreachable!("index below the total length")
    }

    /// A u64 that is often small, often near a power of two, sometimes anything.
    pub fn interesting_u64(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(4),
            1 => self.below(100_000),
            2 => {
                let p = 1u64 << self.below(64);
                p.wrapping_add(self.below(3)).wrapping_sub(1)
            }
            3 => u64::MAX - self.below(4),
            _ => self.next_u64() >> self.below(64),
        }
    }

    /// Up to `max_len` random bytes.
    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.index(max_len + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// A string of `max` tokens or fewer drawn from `tokens`.
    pub fn tokens(&mut self, tokens: &[&str], max: usize) -> String {
        self.tokens_among(&[tokens], max)
    }

    /// A string of `max` tokens or fewer drawn from the lists together.
    pub fn tokens_among(&mut self, lists: &[&[&str]], max: usize) -> String {
        let n = self.index(max + 1);
        (0..n).map(|_| self.pick_among(lists)).collect()
    }

    /// A random `char`: ASCII mostly, with controls, Latin-1, BMP and astral ones.
    pub fn char(&mut self) -> char {
        let code = match self.below(8) {
            0 => self.below(0x20) as u32,
            1 => 0x80 + self.below(0x80) as u32,
            2 => self.below(0xd800) as u32,
            3 => 0x1_0000 + self.below(0x10_0000) as u32,
            _ => 0x20 + self.below(0x5f) as u32,
        };
        char::from_u32(code).unwrap_or('\u{fffd}')
    }

    /// Up to `max_len` random chars.
    pub fn string(&mut self, max_len: usize) -> String {
        let len = self.index(max_len + 1);
        (0..len).map(|_| self.char()).collect()
    }
}

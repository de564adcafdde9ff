//! Property tests for every parser that sees client or upstream input: request
//! targets, `Range`, HTTP dates, conditional headers, GLEP 75 `layout.conf` and size
//! suffixes.
//!
//! No property-testing crate: a tiny deterministic PRNG (SplitMix64) generates
//! thousands of random and structured inputs per property, built from raw bytes and
//! from mixes of the tokens that make parsers trip ("%2e", "..", "//", "bytes=", huge
//! numbers, ...). Every case has its own seed; a failure names the property and the
//! seed, and `PROPERTY_SEED=<seed> cargo test --test it <name>` replays that case
//! first.
//!
//! The invariants themselves are in `invariants.rs`, shared with the fuzz targets in
//! `fuzz/`. The other files here, one per parser, generate inputs and add the
//! properties that need to know how an input was made (round trips of generated
//! values, regressions); this one holds the runner they share.

mod invariants;

mod conditional;
mod date;
mod layout;
mod path;
mod range;
mod size;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::support::rng::{Rng, fnv1a};

/// Runs `property` on `cases` generated inputs, each from its own seed; a failure
/// reports the property and seed. `PROPERTY_SEED` replays one seed first.
fn check(name: &str, cases: u64, mut property: impl FnMut(&mut Rng)) {
    let base = fnv1a(name.as_bytes());
    let replay = std::env::var("PROPERTY_SEED").ok().map(|s| {
        let s = s.trim_start_matches("0x");
        u64::from_str_radix(s, 16).expect("PROPERTY_SEED is hex")
    });
    let seeds = replay
        .into_iter()
        .chain((0..cases).map(|i| Rng::new(base ^ i).next_u64()));
    for seed in seeds {
        let result = catch_unwind(AssertUnwindSafe(|| property(&mut Rng::new(seed))));
        if result.is_err() {
            // libtest names the thread after the test.
            let test = std::thread::current().name().unwrap_or("").to_owned();
            panic!(
                "property {name:?} failed for seed {seed:#x}; replay with \
                 PROPERTY_SEED={seed:x} cargo test --test it -- --exact {test}"
            );
        }
    }
}

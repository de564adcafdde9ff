//! Fault injection: which faults the fake mirror adds to an upstream request, drawn
//! from the seed, and how many of each it added.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::READ_TIMEOUT_SECS;
use crate::support::Fault;
use crate::support::mirror::FaultPicker;
use crate::support::rng::Rng;

const FAULT_KINDS: [&str; 10] = [
    "reset",
    "short",
    "stall-continue",
    "stall-abort",
    "header-stall",
    "5xx",
    "404",
    "slow",
    "no-length",
    "chunked",
];

#[derive(Default)]
pub struct FaultCounters {
    by_kind: [AtomicU64; FAULT_KINDS.len()],
    head: AtomicU64,
}

impl FaultCounters {
    pub fn total(&self) -> u64 {
        self.by_kind
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.head.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = FAULT_KINDS
            .iter()
            .zip(&self.by_kind)
            .map(|(k, c)| format!("{k}={}", c.load(Ordering::Relaxed)))
            .collect();
        parts.push(format!("head={}", self.head.load(Ordering::Relaxed)));
        parts.join(" ")
    }
}

/// Random faults for upstream requests while `on` is set.
pub fn picker(
    seed: u64,
    lens: HashMap<String, usize>,
    on: Arc<AtomicBool>,
    rate: f64,
    counts: Arc<FaultCounters>,
) -> FaultPicker {
    let mut rng = Rng::new(seed);
    Box::new(move |method, path| {
        if !on.load(Ordering::SeqCst) || path == "/distfiles/layout.conf" {
            return Vec::new();
        }
        if method == "HEAD" {
            if !rng.chance(0.15) {
                return Vec::new();
            }
            counts.head.fetch_add(1, Ordering::Relaxed);
            return if rng.chance(0.5) {
                vec![Fault::Status(503)]
            } else {
                vec![Fault::StallHeaders(rng.millis(100, 3_000))]
            };
        }
        if !rng.chance(rate) {
            return Vec::new();
        }
        let len = lens.get(path).copied().unwrap_or(1000) as u64;
        let kind = rng.below(FAULT_KINDS.len() as u64) as usize;
        counts.by_kind[kind].fetch_add(1, Ordering::Relaxed);
        // Slow enough that clients join (and get headers) before the break.
        let paced = |rng: &mut Rng| Fault::Rate((len * 1000 / rng.range(200, 1000)).max(16 << 10));
        let at = rng.below(len) as usize;
        match FAULT_KINDS[kind] {
            "reset" => vec![Fault::ResetAfter(at), paced(&mut rng)],
            "short" => vec![Fault::ShortBody(at), paced(&mut rng)],
            "stall-continue" => vec![Fault::StallAfter(at, rng.millis(100, 1_200))],
            "stall-abort" => vec![Fault::StallAfter(
                at,
                rng.millis(
                    READ_TIMEOUT_SECS * 1000 + 600,
                    READ_TIMEOUT_SECS * 1000 + 1500,
                ),
            )],
            "header-stall" => vec![Fault::StallHeaders(rng.millis(100, 3_000))],
            "5xx" => vec![Fault::Status([500, 502, 503][rng.below(3) as usize])],
            "404" => vec![Fault::Status(404)],
            "slow" => vec![Fault::Rate(
                (len * 1000 / rng.range(500, 2_500)).max(32 << 10),
            )],
            "no-length" => vec![Fault::NoLength],
            _ => vec![Fault::Chunked],
        }
    })
}

//! Request-target decoding: `parse_target`, `decode`, `encode`, `check`.
//!
//! The invariants are `invariants::check_path`, shared with the
//! property tests in `tests/it/properties`.
#![no_main]

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_path(data));

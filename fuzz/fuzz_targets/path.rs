//! Request-target decoding: `parse_target`, `decode`, `encode`, `check`.
//!
//! The invariants are `invariants::check_path`, shared with `tests/properties.rs`.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_path(data));

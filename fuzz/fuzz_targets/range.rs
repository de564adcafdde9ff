//! `Range` headers: `parse`, `select`, `content_range`.
//!
//! The invariants are `invariants::check_range`, shared with the
//! property tests in `tests/it/properties`.
#![no_main]

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_range(data));

//! `Range` headers: `parse`, `select`, `content_range`.
//!
//! The invariants are `invariants::check_range`, shared with `tests/properties.rs`.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_range(data));

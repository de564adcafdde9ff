//! Conditional and range requests: `If-None-Match`, `If-Modified-Since`, `If-Range`
//! and `Range` evaluated against a representation (`conditional::{evaluate, answer}`).
//!
//! The invariants are `invariants::check_conditional`, shared with the
//! property tests in `tests/it/properties`.
#![no_main]

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_conditional(data));

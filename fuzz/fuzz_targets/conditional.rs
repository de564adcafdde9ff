//! Conditional and range requests: `If-None-Match`, `If-Modified-Since`, `If-Range`
//! and `Range` evaluated against a representation (`conditional::{evaluate, answer}`).
//!
//! The invariants are `invariants::check_conditional`, shared with `tests/properties.rs`.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_conditional(data));

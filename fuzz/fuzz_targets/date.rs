//! HTTP dates: `parse` (IMF-fixdate, RFC 850, asctime) and `format`.
//!
//! The invariants are `invariants::check_date`, shared with `tests/properties.rs`.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_date(data));

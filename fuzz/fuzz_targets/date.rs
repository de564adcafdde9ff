//! HTTP dates: `parse` (IMF-fixdate, RFC 850, asctime) and `format`.
//!
//! The invariants are `invariants::check_date`, shared with the
//! property tests in `tests/it/properties`.
#![no_main]

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_date(data));

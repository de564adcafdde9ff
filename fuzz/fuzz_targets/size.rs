//! Size suffixes: `parse` (`500M`, `1.5G`, `10GiB`) and `format`.
//!
//! The invariants are `invariants::check_size`, shared with the
//! property tests in `tests/it/properties`.
#![no_main]

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_size(data));

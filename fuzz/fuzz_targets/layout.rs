//! GLEP 75 `layout.conf`: `parse_structure`, `best`, `portage_choice`, `usable_by_us`,
//! `render`, `Layout::parse_entry`, `Layout::path`, `Layout::dirs`, `dirs_match`.
//!
//! The invariants are `invariants::check_layout`, shared with the
//! property tests in `tests/it/properties`.
#![no_main]

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_layout(data));

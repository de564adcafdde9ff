//! GLEP 75 `layout.conf`: `parse_structure`, `best`, `portage_choice`, `usable_by_us`,
//! `render`, `Layout::parse_entry`, `Layout::path`, `Layout::dirs`, `dirs_match`.
//!
//! The invariants are `invariants::check_layout`, shared with `tests/properties.rs`.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_layout(data));

#![no_main]
//! Fuzz target `layout`: see `tests/fuzz_checks/mod.rs` (`check_layout_target`) for the invariants.

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::check_layout_target(data));

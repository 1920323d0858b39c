#![no_main]
//! Fuzz target `gzip_stream`: see `tests/fuzz_checks/mod.rs` (`check_gzip_stream`) for the invariants.

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::check_gzip_stream(data));

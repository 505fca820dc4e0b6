//! A gateway config file, parsed and compiled. See `portcullis::fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz::config(data));

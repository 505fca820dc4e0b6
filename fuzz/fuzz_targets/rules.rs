//! A rule file: parsed, validated, compiled, its inline tests run. See `portcullis::fuzz::rules`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz::rules(data));

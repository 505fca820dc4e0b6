//! The WAF with the shipped rules over an arbitrary request. See `portcullis::fuzz::inspect`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz::inspect(data));

//! A transform chain over arbitrary text, checked against the byte profiles. See `portcullis::fuzz::transforms`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz::transforms(data));

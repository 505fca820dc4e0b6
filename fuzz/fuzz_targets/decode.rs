//! A request body in a content coding, decoded for inspection. See `portcullis::fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz::decode(data));

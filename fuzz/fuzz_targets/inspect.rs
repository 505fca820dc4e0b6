//! The WAF with the shipped rules over an arbitrary request. See `portcullis::fuzz::inspect`.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: portcullis::fuzz::warm_up(),
    |data: &[u8]| portcullis::fuzz::inspect(data)
);

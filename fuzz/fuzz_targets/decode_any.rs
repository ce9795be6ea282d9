//! Arbitrary bytes through every decoder mode: must never panic or over-allocate.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_codec::fuzzing::decode_any(data));

//! Every packet that decodes re-encodes to bytes that decode to the same packet.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_codec::fuzzing::roundtrip(data));

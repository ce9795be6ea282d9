//! The subscription index answers every operation exactly as the naive oracle does.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_topic::fuzzing::index_vs_oracle(data));

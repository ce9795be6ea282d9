//! Arbitrary snapshot and log files through the durable store's recovery.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_session::fuzzing::store_recovery(data));

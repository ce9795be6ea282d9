//! Arbitrary server packets through the client session machine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_session::fuzzing::client_session(data));

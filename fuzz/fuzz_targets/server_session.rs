//! Arbitrary client packets through the server session machine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_session::fuzzing::server_session(data));

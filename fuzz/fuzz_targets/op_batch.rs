#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| omniman_http::fuzzing::op_batch(data));

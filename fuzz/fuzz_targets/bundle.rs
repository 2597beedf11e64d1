#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| metricann::fuzzing::bundle(data));

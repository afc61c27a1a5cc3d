//! libFuzzer entry of the `node` target (see `distlock_fuzz::node`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlock_fuzz::node::run(data));

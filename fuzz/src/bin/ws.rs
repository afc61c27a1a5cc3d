//! libFuzzer entry of the `ws` target (see `distlock_fuzz::ws`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlock_fuzz::ws::run(data));

//! libFuzzer entry of the `tcp` target (see `distlock_fuzz::tcp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlock_fuzz::tcp::run(data));

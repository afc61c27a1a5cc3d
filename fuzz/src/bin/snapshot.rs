//! libFuzzer entry of the `snapshot` target (see `distlock_fuzz::snapshot`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlock_fuzz::snapshot::run(data));

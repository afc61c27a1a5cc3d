//! libFuzzer entry of the `wal` target (see `distlock_fuzz::wal`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlock_fuzz::wal::run(data));

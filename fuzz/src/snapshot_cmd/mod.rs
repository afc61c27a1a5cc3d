//! The code of `distlock snapshot restore` that reads a backup file and
//! seeds a data directory, compiled from the command line's own sources
//! (the binary crate has no library to depend on).
#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../../../cli/src/snapshot_cmd/file.rs"]
pub mod file;
#[path = "../../../cli/src/snapshot_cmd/restore.rs"]
pub mod restore;

//! Snapshot restore: the lock state's snapshot decoder, the backup file of
//! `distlock snapshot save`, and `distlock snapshot restore`'s path from a
//! file to a data directory a server starts from.
//!
//! Input: a mode byte, then
//! - the bytes of a lock-state snapshot: a state that restores must pass
//!   its invariants and snapshot to bytes that restore to the same state;
//! - the bytes of a backup file (`Backup::decode`);
//! - a header and a state chunk that the harness frames into a backup file
//!   with valid lengths and checksum: a backup that decodes must seed an
//!   empty data directory (as `restore` does), which must load and start a
//!   node whose lock state is the backup's.

use distlock_core::ids::NodeId;
use distlock_core::locks::{Command, LockState};
use distlock_core::node::{Node, NodeConfig};
use distlock_core::raft::{Config, Membership, StateMachine, Stored};
use distlock_core::time::Instant;
use distlock_server::storage::{FileStorage, FileStorageOptions, Storage};
use std::collections::BTreeMap;
use std::path::Path;

use crate::input::Input;
use crate::snapshot_cmd::file::Backup;
use crate::snapshot_cmd::restore::seed_data_dir;
use crate::wal::scratch_dir;

/// The first bytes of a backup file, and its format version.
pub const BACKUP_MAGIC: &[u8; 8] = b"DLBACKUP";

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => lock_state(input.rest()),
        1 => {
            let _ = Backup::decode(Path::new("fuzz.snap"), input.rest());
        }
        _ => {
            let meta = input.chunk();
            let state = input.rest();
            restore(&frame_backup(meta, state));
        }
    }
}

fn lock_state(bytes: &[u8]) {
    let mut state = LockState::default();
    if state.restore(bytes).is_err() {
        return;
    }
    if let Err(broken) = state.broken_invariant() {
        panic!("a restored lock state breaks an invariant: {broken}");
    }
    let again = state.snapshot();
    let mut copy = LockState::default();
    copy.restore(&again)
        .expect("the snapshot of a restored state restores");
    assert_eq!(copy.snapshot(), again, "a snapshot changed through restore");
}

/// `restore`'s reading and seeding, then a server's start from the result.
fn restore(file: &[u8]) {
    let Ok((backup, state)) = Backup::decode(Path::new("fuzz.snap"), file) else {
        return;
    };
    if let Err(broken) = state.broken_invariant() {
        panic!("a backup's lock state breaks an invariant: {broken}");
    }
    let scratch = scratch_dir();
    let dir = scratch.path().join("data");
    let me = NodeId(1);
    let peers: BTreeMap<NodeId, String> = [(me, "127.0.0.1:7101".to_owned())].into();
    let snapshot = seed_data_dir(&backup, &dir, "fuzz", me, &peers)
        .expect("a backup that decodes seeds an empty data directory");
    let mut storage: FileStorage<Command> =
        FileStorage::open(&dir, FileStorageOptions::default()).expect("the seeded directory opens");
    let stored = storage.load().expect("a seeded directory loads");
    assert_eq!(
        stored.snapshot.as_ref(),
        Some(&snapshot),
        "the seeded snapshot read back"
    );
    let cfg = NodeConfig {
        raft: Config::new(me),
        members: Vec::new(),
        advertise: None,
    };
    let stored = Stored {
        initial_membership: Membership::default(),
        ..stored
    };
    let node = Node::new(cfg, LockState::default(), stored, 1, Instant::ZERO)
        .expect("a server starts from a restored data directory");
    assert_eq!(
        node.raft().state_machine().snapshot(),
        state.snapshot(),
        "the server's lock state is not the backup's"
    );
}

/// A backup file around `meta` (a postcard header) and `state` (a lock
/// state snapshot), with valid lengths and checksum.
#[must_use]
pub fn frame_backup(meta: &[u8], state: &[u8]) -> Vec<u8> {
    let mut out = BACKUP_MAGIC.to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(state);
    let crc = crc32fast::hash(&out[BACKUP_MAGIC.len()..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A backup file as `distlock snapshot save` writes it, and its header's
/// bytes alone (for the seeds).
#[must_use]
pub fn backup_file(
    index: distlock_core::ids::LogIndex,
    term: distlock_core::ids::Term,
    membership: Membership,
    state: Vec<u8>,
) -> (Vec<u8>, Vec<u8>) {
    let meta = crate::snapshot_cmd::file::BackupMeta {
        index,
        term,
        membership,
        taken_unix_ms: 1_700_000_000_000,
    };
    let header = postcard::to_stdvec(&meta).expect("a header encodes");
    (Backup { meta, state }.encode(), header)
}

//! Recovery of a data directory whose write-ahead log segments and snapshot
//! files hold arbitrary bytes.
//!
//! Input: an options byte, then files, each a kind byte, a number byte and
//! a chunk: a raw segment, a segment whose records the harness frames (so
//! that their checksums hold and recovery reads their postcard), a raw
//! snapshot file, a snapshot file the harness frames, a leftover `.tmp`.
//!
//! Opening it must give a typed error or a state that: loads again to the
//! same state (recovery is idempotent); takes a write after its end and
//! gives it back on the next load; and starts a node, or is refused by
//! the node with a typed error.

use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::{Command, LockState};
use distlock_core::node::{Node, NodeConfig};
use distlock_core::raft::{
    Config, Entry, EntryPayload, HardState, Membership, Persist, PersistSeq, Stored,
};
use distlock_core::time::Instant;
use distlock_server::storage::{FileStorage, FileStorageOptions, FsyncPolicy, Storage};
use std::path::Path;

use crate::input::Input;

/// Files per input, at most.
const MAX_FILES: usize = 8;
/// The first bytes of a segment and of a snapshot file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"DLWAL\0\0\x01";
/// See [`SEGMENT_MAGIC`].
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"DLSNAP\0\x01";

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let dir = scratch_dir();
    let mut input = Input::new(data);
    let options = input.byte();
    for _ in 0..MAX_FILES {
        if input.is_empty() {
            break;
        }
        let kind = input.byte();
        let number = u64::from(input.byte());
        let chunk = input.chunk();
        let (name, bytes) = match kind % 5 {
            0 => (segment_name(number), chunk.to_vec()),
            1 => (segment_name(number), frame_segment(chunk)),
            2 => (snapshot_name(number), chunk.to_vec()),
            3 => (snapshot_name(number), frame_snapshot(chunk)),
            _ => (format!("{}.tmp", snapshot_name(number)), chunk.to_vec()),
        };
        std::fs::write(dir.path().join(name), bytes).expect("the scratch directory takes files");
    }
    let opts = FileStorageOptions {
        segment_size: if options & 1 == 0 { 256 } else { 64 << 20 },
        fsync: if options & 2 == 0 {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::Never
        },
        preallocate: if options & 4 == 0 { 0 } else { 512 },
    };
    check_recovery(dir.path(), &opts);
}

/// A fresh directory on a memory file system when there is one.
#[must_use]
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("distlock-fuzz-")
        .tempdir_in(base)
        .expect("a scratch directory")
}

/// What a load returned, comparable.
type Loaded = (
    HardState,
    Option<distlock_core::raft::Snapshot>,
    Vec<Entry<Command>>,
);

fn load(dir: &Path, opts: &FileStorageOptions) -> Option<(FileStorage<Command>, Loaded)> {
    let mut storage = FileStorage::open(dir, opts.clone()).ok()?;
    let stored = storage.load().ok()?;
    Some((
        storage,
        (stored.hard_state, stored.snapshot, stored.entries),
    ))
}

/// See the module documentation.
pub fn check_recovery(dir: &Path, opts: &FileStorageOptions) {
    let Some((storage, first)) = load(dir, opts) else {
        return;
    };
    drop(storage);
    let (mut storage, again) = load(dir, opts).expect("a recovered directory loads again");
    assert_eq!(again, first, "a second load saw another state");
    start_node(&first);

    // A write after recovery lands where the log ends and reads back.
    let (hard_state, snapshot, mut entries) = first;
    let last = entries
        .last()
        .map(|e| e.index)
        .or_else(|| snapshot.as_ref().map(|s| s.meta.last_index))
        .unwrap_or(LogIndex(0));
    let term = Term(hard_state.term.0.max(1));
    let Some(next) = last.0.checked_add(1).map(LogIndex) else {
        return;
    };
    let entry = Entry {
        index: next,
        term,
        payload: EntryPayload::Noop,
    };
    let hard_state = HardState {
        term,
        voted_for: Some(NodeId(1)),
    };
    let write = Persist {
        seq: PersistSeq(1),
        hard_state: Some(hard_state),
        truncate_from: None,
        entries: vec![entry.clone()],
        snapshot: None,
    };
    if storage.write(&write).is_err() || storage.sync().is_err() {
        return;
    }
    drop(storage);
    let (_, after) = load(dir, opts).expect("a directory written after recovery loads");
    entries.push(entry);
    assert_eq!(
        after,
        (hard_state, snapshot, entries),
        "a write after recovery did not read back"
    );
}

/// Starts a node from a recovered state: a typed refusal is fine, a panic
/// or a broken lock state is not.
fn start_node((hard_state, snapshot, entries): &Loaded) {
    let me = NodeId(1);
    let stored = Stored {
        hard_state: *hard_state,
        snapshot: snapshot.clone(),
        entries: entries.clone(),
        initial_membership: Membership::with_voters([me]),
    };
    let cfg = NodeConfig {
        raft: Config::new(me),
        members: Vec::new(),
        advertise: None,
    };
    if let Ok(node) = Node::new(cfg, LockState::default(), stored, 1, Instant::ZERO)
        && let Err(broken) = node.raft().state_machine().broken_invariant()
    {
        panic!("a recovered lock state breaks an invariant: {broken}");
    }
}

fn segment_name(seq: u64) -> String {
    format!("wal-{seq:012}.log")
}

fn snapshot_name(index: u64) -> String {
    format!("snapshot-{index:020}")
}

/// A segment whose records are `chunk`'s pieces (each a length byte and
/// that many bytes), framed with valid lengths and checksums.
#[must_use]
pub fn frame_segment(chunk: &[u8]) -> Vec<u8> {
    let mut pieces = Input::new(chunk);
    let mut records = Vec::new();
    while !pieces.is_empty() {
        let len = usize::from(pieces.byte());
        records.push(pieces.take(len).to_vec());
    }
    segment_of(&records)
}

/// A segment holding `records` (postcard payloads), framed.
#[must_use]
pub fn segment_of(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = SEGMENT_MAGIC.to_vec();
    for payload in records {
        let len = u32::try_from(payload.len())
            .expect("a small record")
            .to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(payload);
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// A snapshot file holding `payload` (a postcard `Snapshot`), framed.
#[must_use]
pub fn frame_snapshot(payload: &[u8]) -> Vec<u8> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

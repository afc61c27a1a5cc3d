//! Tests of [`FileStorage`]: round trips against an in-memory model of the
//! persistence contract, torn tails, corruption, segment roll-over and
//! compaction, snapshot crashes, fail-stop and full disks.

use super::*;
use distlock_core::ids::{NodeId, Term};
use distlock_core::raft::{
    Entry, EntryPayload, HardState, Membership, PersistSeq, Snapshot, SnapshotMeta,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Cmd = u64;

/// What the persistence contract says the disk holds (a reimplementation of
/// the core's test-kit disk).
#[derive(Debug, Default)]
struct Model {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry<Cmd>>,
}

impl Model {
    fn floor(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.last_index.0)
    }

    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.floor(), |e| e.index.0)
    }

    fn term_at(&self, i: u64) -> Term {
        if let Some(s) = &self.snapshot {
            if s.meta.last_index.0 == i {
                return s.meta.last_term;
            }
        }
        self.entries
            .iter()
            .find(|e| e.index.0 == i)
            .map_or(Term(0), |e| e.term)
    }

    fn apply(&mut self, p: &Persist<Cmd>) {
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
        if let Some(from) = p.truncate_from {
            self.entries.retain(|e| e.index < from);
        }
        if let Some(s) = &p.snapshot {
            if self
                .snapshot
                .as_ref()
                .is_none_or(|old| old.meta.last_index < s.meta.last_index)
            {
                self.snapshot = Some((**s).clone());
                self.entries.retain(|e| e.index > s.meta.last_index);
                if self
                    .entries
                    .first()
                    .is_some_and(|e| e.index != s.meta.last_index.next())
                {
                    self.entries.clear();
                }
            }
        }
        let floor = self.floor();
        for e in p.entries.iter().filter(|e| e.index.0 > floor) {
            assert_eq!(e.index.0, self.last_index() + 1, "test generated a gap");
            self.entries.push(e.clone());
        }
    }

    fn check(&self, stored: &Stored<Cmd>) {
        assert_eq!(stored.hard_state, self.hard_state, "hard state");
        assert_eq!(stored.snapshot, self.snapshot, "snapshot");
        assert_eq!(stored.entries, self.entries, "entries");
    }
}

/// A tiny deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn entry(index: u64, term: u64) -> Entry<Cmd> {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Command(index * 1000 + term),
    }
}

fn entries(from: u64, n: u64, term: u64) -> Vec<Entry<Cmd>> {
    (from..from + n).map(|i| entry(i, term)).collect()
}

fn snapshot(index: u64, term: u64) -> Box<Snapshot> {
    Box::new(Snapshot {
        meta: SnapshotMeta {
            last_index: LogIndex(index),
            last_term: Term(term),
            membership: Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]),
        },
        data: Arc::from(vec![index as u8; 100 + (index % 50) as usize]),
    })
}

fn persist(seq: u64) -> Persist<Cmd> {
    Persist {
        seq: PersistSeq(seq),
        hard_state: None,
        truncate_from: None,
        entries: Vec::new(),
        snapshot: None,
    }
}

fn append(seq: u64, from: u64, n: u64, term: u64) -> Persist<Cmd> {
    Persist {
        entries: entries(from, n, term),
        ..persist(seq)
    }
}

/// Plain appends: a segment file ends where its records do, so the tests of
/// record framing can cut and flip bytes by file length.
fn opts(segment_size: u64) -> FileStorageOptions {
    FileStorageOptions {
        segment_size,
        fsync: FsyncPolicy::Always,
        preallocate: 0,
    }
}

fn open(dir: &Path, segment_size: u64) -> FileStorage<Cmd> {
    FileStorage::open(dir, opts(segment_size)).expect("open")
}

fn reload(dir: &Path, segment_size: u64) -> (FileStorage<Cmd>, Stored<Cmd>) {
    reload_with(dir, opts(segment_size))
}

fn reload_with(dir: &Path, o: FileStorageOptions) -> (FileStorage<Cmd>, Stored<Cmd>) {
    let mut s: FileStorage<Cmd> = FileStorage::open(dir, o).expect("open");
    let stored = s.load().expect("load");
    (s, stored)
}

/// Segments grown `preallocate` zero bytes at a time.
fn preallocating(segment_size: u64, preallocate: u64) -> FileStorageOptions {
    FileStorageOptions {
        preallocate,
        ..opts(segment_size)
    }
}

/// A Raft-like random persist for the model's current state.
fn random_persist(rng: &mut Rng, m: &Model, seq: u64, term: &mut u64) -> Persist<Cmd> {
    let mut p = persist(seq);
    let last = m.last_index();
    let floor = m.floor();
    let r = rng.below(100);
    if r < 10 {
        *term += 1;
        p.hard_state = Some(HardState {
            term: Term(*term),
            voted_for: Some(NodeId(rng.below(3) + 1)),
        });
    }
    if r < 15 && last > floor {
        let from = floor + 1 + rng.below(last - floor);
        p.truncate_from = Some(LogIndex(from));
        p.entries = entries(from, 1 + rng.below(4), *term);
    } else if r < 22 && last > floor {
        let at = floor + 1 + rng.below(last - floor);
        p.snapshot = Some(snapshot(at, m.term_at(at).0));
        p.entries = entries(last + 1, rng.below(3), *term);
    } else if r < 25 {
        // InstallSnapshot from a leader that is far ahead.
        let at = last + 1 + rng.below(20);
        p.snapshot = Some(snapshot(at, *term));
        p.entries = entries(at + 1, rng.below(3), *term);
    } else {
        p.entries = entries(last + 1, 1 + rng.below(8), *term);
    }
    p
}

#[test]
fn round_trip_matches_the_model_across_restarts() {
    for seed in [
        0x9e37_79b9_7f4a_7c15,
        1,
        0xdead_beef,
        42,
        7,
        99,
        12345,
        31337,
    ] {
        // Plain appends; zeros grown in steps smaller and larger than a
        // segment (so segments are trimmed when they roll over).
        for preallocate in [0, 300, 4096] {
            round_trip(seed, preallocating(2048, preallocate));
        }
    }
}

fn round_trip(seed: u64, o: FileStorageOptions) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let (mut s, stored) = reload_with(dir.path(), o.clone());
    model.check(&stored);
    let mut term = 1;
    for seq in 1..=2000 {
        let p = random_persist(&mut rng, &model, seq, &mut term);
        s.write(&p).expect("write");
        model.apply(&p);
        if rng.below(3) == 0 {
            s.sync().expect("sync");
        }
        if rng.below(50) == 0 {
            s.sync().expect("sync");
            drop(s);
            let (s2, stored) = reload_with(dir.path(), o.clone());
            model.check(&stored);
            s = s2;
        }
    }
    s.sync().expect("sync");
    assert!(
        s.segment_numbers().len() < 20,
        "compaction keeps the log short"
    );
    drop(s);
    let (_, stored) = reload_with(dir.path(), o);
    model.check(&stored);
}

impl Model {
    fn state(&self) -> (HardState, Option<Snapshot>, Vec<Entry<Cmd>>) {
        (self.hard_state, self.snapshot.clone(), self.entries.clone())
    }
}

#[test]
fn a_crash_at_any_byte_keeps_a_prefix_of_the_requests() {
    crash_at_any_byte(0);
}

#[test]
fn a_crash_at_any_byte_of_preallocated_space_keeps_a_prefix_of_the_requests() {
    crash_at_any_byte(DEFAULT_PREALLOCATE);
}

/// Writes requests, then replays every image a crash may leave: the synced
/// bytes, a prefix of the rest, then what the file held before (nothing,
/// or the zeros grown ahead of the records).
fn crash_at_any_byte(preallocate: u64) {
    let o = preallocating(DEFAULT_SEGMENT_SIZE, preallocate);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(7);
    let mut model = Model::default();
    let (mut s, _) = reload_with(dir.path(), o.clone());
    let mut term = 1;
    // Reach a state with some history first.
    for seq in 0..50 {
        let p = random_persist(&mut rng, &model, seq, &mut term);
        s.write(&p).expect("write");
        model.apply(&p);
    }
    s.sync().expect("sync");
    let path = s.segment_paths().pop().expect("segment");
    let synced = s.records_end();
    // Every state a prefix of the next requests (and of their parts) may leave.
    let mut states = vec![model.state()];
    for seq in 50..80 {
        let mut p = random_persist(&mut rng, &model, seq, &mut term);
        p.snapshot = None; // snapshot files are tested separately
        if let Some(first) = p.entries.first().map(|e| e.index.0) {
            if p.truncate_from.is_none() && first != model.last_index() + 1 {
                continue;
            }
        }
        let mut partial = Model {
            hard_state: p.hard_state.unwrap_or(model.hard_state),
            snapshot: model.snapshot.clone(),
            entries: model.entries.clone(),
        };
        states.push(partial.state());
        if let Some(from) = p.truncate_from {
            partial.entries.retain(|e| e.index < from);
            states.push(partial.state());
        }
        s.write(&p).expect("write");
        model.apply(&p);
        states.push(model.state());
    }
    let records_end = usize::try_from(s.records_end()).expect("small");
    drop(s);
    let full = fs::read(&path).expect("read");
    assert_eq!(full.len() > records_end, preallocate > 0, "zeros ahead");
    let mut cut = usize::try_from(synced).expect("small");
    while cut <= records_end {
        let mut image = full[..cut].to_vec();
        if preallocate > 0 {
            image.resize(full.len(), 0);
        }
        fs::write(&path, &image).expect("cut");
        let (_, stored) = reload_with(dir.path(), o.clone());
        let got = (stored.hard_state, stored.snapshot, stored.entries);
        assert!(states.contains(&got), "cut at {cut}: not a prefix state");
        cut += 1 + rng.below(40) as usize;
    }
    assert_eq!(states.last(), Some(&model.state()));
}

#[test]
fn zeros_ahead_of_the_records_are_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = preallocating(DEFAULT_SEGMENT_SIZE, 4096);
    let mut model = Model::default();
    let (mut s, _) = reload_with(dir.path(), o.clone());
    let path = s.segment_paths().pop().expect("segment");
    let header_and_checkpoint = fs::metadata(&path).expect("stat").len();
    for seq in 1..=3 {
        let p = append(seq, seq * 2 - 1, 2, 1);
        s.write(&p).expect("write");
        s.sync().expect("sync");
        model.apply(&p);
    }
    let end = s.records_end();
    drop(s);
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        header_and_checkpoint + 4096
    );
    // Not a torn tail: nothing is cut, and the next record goes right
    // after the last one.
    let (mut s, stored) = reload_with(dir.path(), o.clone());
    model.check(&stored);
    assert_eq!(s.records_end(), end);
    let p = append(4, 7, 2, 1);
    s.write(&p).expect("write");
    s.sync().expect("sync");
    model.apply(&p);
    drop(s);
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        header_and_checkpoint + 4096
    );
    let (_, stored) = reload_with(dir.path(), o);
    model.check(&stored);
}

/// Writes three synced persists and returns the model after the first two,
/// the segment path, and the offsets where the third record starts and ends.
fn three_records(dir: &Path) -> (Model, PathBuf, u64, u64) {
    let mut model = Model::default();
    let (mut s, _) = reload(dir, DEFAULT_SEGMENT_SIZE);
    let first = Persist {
        hard_state: Some(HardState {
            term: Term(2),
            voted_for: Some(NodeId(1)),
        }),
        ..append(1, 1, 3, 2)
    };
    let second = append(2, 4, 2, 2);
    for p in [&first, &second] {
        s.write(p).expect("write");
        s.sync().expect("sync");
        model.apply(p);
    }
    let path = s.segment_paths().pop().expect("a segment");
    let start = fs::metadata(&path).expect("stat").len();
    s.write(&append(3, 6, 4, 2)).expect("write");
    s.sync().expect("sync");
    let end = fs::metadata(&path).expect("stat").len();
    (model, path, start, end)
}

#[test]
fn torn_tail_at_every_offset_drops_only_the_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, path, start, end) = three_records(dir.path());
    let full = fs::read(&path).expect("read");
    for cut in start..end {
        fs::write(&path, &full[..cut as usize]).expect("cut");
        let (_, stored) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
        model.check(&stored);
        assert_eq!(fs::metadata(&path).expect("stat").len(), start, "cut {cut}");
    }
    // Garbage after the last complete record (a torn block) is a torn tail too.
    let mut garbage = full[..start as usize].to_vec();
    garbage.extend_from_slice(&[0; 100]);
    fs::write(&path, &garbage).expect("write");
    let (mut s, stored) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    model.check(&stored);
    // And the store appends after the truncated tail.
    s.write(&append(9, 6, 1, 3)).expect("write");
    s.sync().expect("sync");
    drop(s);
    let (_, stored) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    assert_eq!(stored.entries.last().map(|e| e.index), Some(LogIndex(6)));
}

#[test]
fn bit_flip_in_an_earlier_record_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, path, start, _) = three_records(dir.path());
    let full = fs::read(&path).expect("read");
    // The second record ends where the third starts; find where it begins.
    let mut off = SEGMENT_MAGIC_LEN;
    let mut starts = Vec::new();
    while off < start as usize {
        starts.push(off);
        let (_, next) = super::record::frame_at(&full, off).expect("valid record");
        off = next;
    }
    let second = *starts.last().expect("records");
    for byte in second..start as usize {
        let mut bad = full.clone();
        bad[byte] ^= 0x10;
        fs::write(&path, &bad).expect("write");
        let err = open(dir.path(), DEFAULT_SEGMENT_SIZE)
            .load()
            .expect_err("corruption must be detected");
        match &err {
            StorageError::Corrupt { file, offset, .. } => {
                assert_eq!(file, &path);
                assert_eq!(*offset, second as u64, "flip at {byte}");
            }
            other => panic!("expected Corrupt, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("wal-000000000001.log"), "{msg}");
        assert!(msg.contains(&format!("offset {second}")), "{msg}");
        assert!(msg.contains("refusing to start"), "{msg}");
    }
    // The file was left untouched by the failed loads.
    assert_eq!(fs::read(&path).expect("read").len(), full.len());
}

const SEGMENT_MAGIC_LEN: usize = 8;

#[test]
fn damage_in_an_earlier_segment_is_corruption_even_at_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = reload(dir.path(), 256);
    for i in 0..20 {
        s.write(&append(i, i * 4 + 1, 4, 1)).expect("write");
        s.sync().expect("sync");
    }
    let paths = s.segment_paths();
    assert!(paths.len() > 2);
    drop(s);
    let first = &paths[0];
    let len = fs::metadata(first).expect("stat").len();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(first)
        .expect("open");
    f.set_len(len - 3).expect("truncate");
    drop(f);
    let err = open(dir.path(), 256).load().expect_err("must fail");
    assert!(
        matches!(&err, StorageError::Corrupt { file, .. } if file == first),
        "{err}"
    );
}

#[test]
fn segments_roll_over_and_are_compacted_only_after_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::default();
    let (mut s, _) = reload(dir.path(), 200);
    for i in 0..50 {
        let p = append(i, i * 4 + 1, 4, 1);
        s.write(&p).expect("write");
        model.apply(&p);
    }
    s.sync().expect("sync");
    let before = s.segment_numbers();
    assert!(before.len() > 4, "rolled over: {before:?}");
    assert_eq!(before[0], 1, "nothing compacted without a snapshot");
    assert_eq!(
        fs::read_dir(dir.path()).expect("ls").count(),
        before.len(),
        "only segments on disk"
    );

    let p = Persist {
        snapshot: Some(snapshot(120, 1)),
        ..persist(100)
    };
    s.write(&p).expect("write");
    s.sync().expect("sync");
    model.apply(&p);
    let after = s.segment_numbers();
    assert!(after[0] > 1, "old segments deleted: {after:?}");
    assert!(after.last() >= before.last());
    for seq in before.iter().filter(|n| !after.contains(n)) {
        assert!(!dir.path().join(format!("wal-{seq:012}.log")).exists());
    }
    drop(s);
    let (_, stored) = reload(dir.path(), 200);
    model.check(&stored);
    assert_eq!(stored.entries.first().map(|e| e.index), Some(LogIndex(121)));
}

#[test]
fn a_snapshot_tmp_file_left_by_a_crash_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::default();
    let (mut s, _) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    let p = append(1, 1, 10, 1);
    s.write(&p).expect("write");
    s.sync().expect("sync");
    model.apply(&p);
    drop(s);
    let tmp = dir.path().join("snapshot-00000000000000000005.tmp");
    fs::write(&tmp, b"half a snapshot").expect("write");
    let (_, stored) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    model.check(&stored);
    assert!(!tmp.exists(), "the leftover is removed");
}

#[test]
fn a_snapshot_renamed_before_its_marker_was_logged_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::default();
    let (mut s, _) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    let p = append(1, 1, 10, 1);
    s.write(&p).expect("write");
    s.sync().expect("sync");
    model.apply(&p);
    drop(s);
    // A crash right after the rename: the file is there, the marker is not.
    let snap = snapshot(6, 1);
    super::snapshot_file::write_atomic(dir.path(), &snap, true).expect("snapshot");
    model.apply(&Persist {
        snapshot: Some(snap),
        ..persist(2)
    });
    let (_, stored) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    model.check(&stored);
}

#[test]
fn a_corrupt_snapshot_file_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    s.write(&append(1, 1, 10, 1)).expect("write");
    s.write(&Persist {
        snapshot: Some(snapshot(5, 1)),
        ..persist(2)
    })
    .expect("write");
    s.sync().expect("sync");
    drop(s);
    let path = dir.path().join("snapshot-00000000000000000005");
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let err = open(dir.path(), DEFAULT_SEGMENT_SIZE)
        .load()
        .expect_err("must fail");
    assert!(
        matches!(&err, StorageError::Corrupt { file, .. } if file == &path),
        "{err}"
    );
}

#[test]
fn an_fsync_failure_poisons_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    s.write(&append(1, 1, 1, 1)).expect("write");
    s.fail_next_sync = true;
    assert!(matches!(s.sync(), Err(StorageError::Fsync { .. })));
    assert!(s.is_poisoned());
    assert!(matches!(s.sync(), Err(StorageError::Poisoned)));
    assert!(matches!(
        s.write(&append(2, 2, 1, 1)),
        Err(StorageError::Poisoned)
    ));
    assert!(matches!(s.load(), Err(StorageError::Poisoned)));
}

#[test]
fn a_full_disk_rejects_the_write_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::default();
    let (mut s, _) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    let p1 = append(1, 1, 5, 1);
    s.write(&p1).expect("write");
    s.sync().expect("sync");
    model.apply(&p1);
    let path = s.segment_paths().pop().expect("segment");
    let len = fs::metadata(&path).expect("stat").len();

    let p2 = Persist {
        hard_state: Some(HardState {
            term: Term(2),
            voted_for: None,
        }),
        ..append(2, 6, 5, 2)
    };
    s.disk_full_after = Some(7);
    let err = s.write(&p2).expect_err("disk full");
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("disk full"));
    assert!(!s.is_poisoned());
    assert_eq!(fs::metadata(&path).expect("stat").len(), len, "rolled back");
    // Retry once there is space again.
    s.write(&p2).expect("retry");
    s.sync().expect("sync");
    model.apply(&p2);
    drop(s);
    let (_, stored) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    model.check(&stored);
}

#[test]
fn a_request_with_a_gap_is_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = reload(dir.path(), DEFAULT_SEGMENT_SIZE);
    s.write(&append(1, 1, 3, 1)).expect("write");
    let err = s.write(&append(2, 7, 1, 1)).expect_err("gap");
    assert!(matches!(
        err,
        StorageError::NotContiguous {
            expected: LogIndex(4),
            found: LogIndex(7)
        }
    ));
    assert!(!s.is_poisoned());
}

#[test]
fn fsync_never_round_trips_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = FileStorageOptions {
        segment_size: 1024,
        fsync: FsyncPolicy::Never,
        // Asked for, but not used without fsyncs (checked below).
        preallocate: 300,
    };
    let mut s: FileStorage<Cmd> = FileStorage::open(dir.path(), o.clone()).expect("open");
    s.load().expect("load");
    let mut model = Model::default();
    for i in 0..100 {
        let p = append(i, i * 2 + 1, 2, 1);
        s.write(&p).expect("write");
        s.sync().expect("sync");
        model.apply(&p);
    }
    let path = s.segment_paths().pop().expect("segment");
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        s.records_end(),
        "no zeros after the records without fsyncs"
    );
    drop(s);
    let mut s: FileStorage<Cmd> = FileStorage::open(dir.path(), o).expect("open");
    model.check(&s.load().expect("load"));
}

#[test]
fn fsync_policy_parses_its_flag_values() {
    assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
    assert_eq!("never".parse(), Ok(FsyncPolicy::Never));
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
    assert_eq!(FsyncPolicy::default().to_string(), "always");
}

#[test]
#[ignore = "timing measurement; run with --ignored --nocapture"]
fn measure_write_and_sync() {
    use std::time::Instant;
    for (policy, preallocate) in [
        (FsyncPolicy::Always, DEFAULT_PREALLOCATE),
        (FsyncPolicy::Always, 0),
        (FsyncPolicy::Never, 0),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = FileStorageOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            fsync: policy,
            preallocate,
        };
        let mut s: FileStorage<Cmd> = FileStorage::open(dir.path(), o).expect("open");
        s.load().expect("load");
        let n = 10_000;
        let t = Instant::now();
        for i in 0..n {
            s.write(&append(i, i + 1, 1, 1)).expect("write");
            s.sync().expect("sync");
        }
        let single = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        // 32-entry writes, enough bytes to grow the zeroed space several
        // times: the slowest include those growths (and the syncs that
        // flushed them).
        let grown = 10_000;
        let mut each = Vec::with_capacity(grown as usize);
        for i in 0..grown {
            let op = Instant::now();
            s.write(&append(n + i, 1 + n + i * 32, 32, 1))
                .expect("write");
            s.sync().expect("sync");
            each.push(op.elapsed().as_secs_f64() * 1e6);
        }
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        each.sort_by(f64::total_cmp);
        let at = |q: f64| each[((each.len() - 1) as f64 * q) as usize];
        println!(
            "{policy:?}, preallocate {preallocate}: 32-entry write+sync p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs ({} MiB on disk)",
            at(0.5),
            at(0.99),
            at(0.999),
            at(1.0),
            on_disk >> 20
        );
        let t = Instant::now();
        for b in 0..100 {
            s.write(&append(2 * n + b, 1 + n + grown * 32 + b * 100, 100, 1))
                .expect("write");
            s.sync().expect("sync");
        }
        let batch = t.elapsed().as_secs_f64() * 1e6 / 100.0;
        println!(
            "{policy:?}, preallocate {preallocate}: single-entry write+sync {single:.1} µs/op; 100-entry batch + one sync {batch:.1} µs/batch ({:.2} µs/entry)",
            batch / 100.0
        );
    }
}

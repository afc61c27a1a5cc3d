//! [`FileStorage`]: the [`Storage`] of a real server, in one data directory.
//!
//! # On-disk format (version 1)
//!
//! * `wal-<seq:012>.log`: write-ahead log segments, numbered consecutively
//!   from 1. Each starts with the 8-byte magic `DLWAL\0\0\x01`, followed by
//!   records `[u32 len][u32 crc32][payload]` (little-endian; the CRC covers
//!   the four length bytes and the payload; `len` is 1..=2^30). The payload
//!   is a postcard-encoded record: `HardState`, `Truncate(from)`,
//!   `Entries(batch)` or `SnapshotMarker(last_index, last_term)` (which
//!   discards the entries it covers; when a snapshot also discards entries
//!   above it, because they do not follow it, an explicit `Truncate(0)`
//!   follows the marker). A new
//!   segment is started once the current one reaches the configured size; it
//!   begins with a checkpoint (the current hard state and, if any, a marker of
//!   the current snapshot), so older segments are only ever needed for their
//!   entries.
//!   The last segment may end in zeros: space grown ahead of its records
//!   (see `active.rs`), trimmed off when the segment is closed.
//! * `snapshot-<index:020>`: the latest snapshot, `[8-byte magic DLSNAP\0\x01]
//!   [u64 len][u32 crc32][postcard Snapshot]`, written as
//!   `snapshot-<index>.tmp`, fsynced, renamed, and the directory fsynced. An
//!   older snapshot file is removed once a newer one is durable; leftover
//!   `.tmp` files are interrupted writes and are deleted at load.
//!
//! # Write order
//! One [`Persist`] is written as: hard state and truncation records; then, if
//! it carries a snapshot newer than the stored one, the log is fsynced, the
//! snapshot file written atomically, whole segments whose entries are all
//! covered by it deleted (oldest first), and a snapshot marker record
//! appended; then the entries. A crash therefore keeps a prefix of the
//! request's parts, as the persistence contract requires.
//!
//! # Recovery
//! Segments are replayed in order. An all-zero tail of the last segment is
//! that grown space and ends its records. A record that is cut short or fails its
//! checksum at the end of the last segment, with no valid record after it, is
//! a torn write that was never acknowledged: the file is truncated there
//! (with a warning naming what was dropped). A bad record anywhere else is
//! [`StorageError::Corrupt`], as is a bad snapshot file, a missing segment,
//! or a log that is not contiguous after the snapshot.

mod active;
mod recovery;

use super::record::{self, Bad, RecordIn, RecordOut, SEGMENT_MAGIC, frame_at, valid_record_after};
use super::snapshot_file::{self, is_snapshot_tmp, parse_snapshot_name, sync_dir};
use super::{Storage, StorageError, is_disk_full};
use active::{ActiveSegment, AppendError};
use distlock_core::ids::{LogIndex, Term};
use distlock_core::raft::{Entry, HardState, Membership, Persist, Snapshot, Stored};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The default size at which a new log segment is started: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// The default zero-filled space a segment grows by ahead of its records:
/// 1 MiB (see [`FileStorageOptions::preallocate`]).
pub const DEFAULT_PREALLOCATE: u64 = 1 << 20;

/// When data is forced to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync on every [`Storage::sync`], before snapshots are renamed into
    /// place and after directory changes (`--fsync always`, the default).
    #[default]
    Always,
    /// Never fsync (`--fsync never`): for benchmarks only; a machine crash
    /// may lose acknowledged data.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    /// Parses the `--fsync` flag's value: `always` or `never`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(ParseFsyncPolicyError(other.to_owned())),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::Never => "never",
        })
    }
}

/// An `--fsync` value that is neither `always` nor `never`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fsync policy {0:?}: expected \"always\" or \"never\"")]
pub struct ParseFsyncPolicyError(pub String);

/// How a [`FileStorage`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStorageOptions {
    /// Start a new segment once the current one holds this many bytes.
    pub segment_size: u64,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Grow the active segment by this many zero bytes at a time, ahead of
    /// its records, so that a sync flushes data, not a new file size (0:
    /// plain appends; only under [`FsyncPolicy::Always`]).
    pub preallocate: u64,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            fsync: FsyncPolicy::Always,
            preallocate: DEFAULT_PREALLOCATE,
        }
    }
}

/// One log segment.
#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The highest entry index it holds that was not truncated away (0: none).
    max_entry: u64,
}

/// The shape of the stored log, to check requests before writing them.
#[derive(Clone, Copy, Debug, Default)]
struct LogShape {
    /// The stored snapshot's index and term.
    snapshot: Option<(LogIndex, Term)>,
    /// First and last stored entry, when there are any.
    range: Option<(u64, u64)>,
}

impl LogShape {
    fn floor(&self) -> u64 {
        self.snapshot.map_or(0, |(i, _)| i.0)
    }

    fn truncate(&mut self, from: LogIndex) {
        if let Some((first, last)) = self.range {
            if from.0 <= first {
                self.range = None;
            } else if from.0 <= last {
                self.range = Some((first, from.0 - 1));
            }
        }
    }

    /// Installs a snapshot if it is newer: `None` if it is not, else whether
    /// the entries above it had to be discarded because they did not start
    /// right after it.
    fn install(&mut self, index: LogIndex, term: Term) -> Option<bool> {
        if self.snapshot.is_some_and(|(i, _)| i >= index) {
            return None;
        }
        self.snapshot = Some((index, term));
        let (range, cleared) = match self.range {
            Some((first, last)) if last > index.0 && first <= index.0 + 1 => {
                (Some((index.0 + 1, last)), false)
            }
            Some((_, last)) if last > index.0 => (None, true),
            _ => (None, false),
        };
        self.range = range;
        Some(cleared)
    }

    /// The part of `entries` above the snapshot, checked for contiguity.
    fn append<'e, C>(&mut self, entries: &'e [Entry<C>]) -> Result<&'e [Entry<C>], StorageError> {
        let floor = self.floor();
        let skip = entries.iter().take_while(|e| e.index.0 <= floor).count();
        let fresh = &entries[skip..];
        for e in fresh {
            let expected = self.range.map_or(floor, |(_, last)| last) + 1;
            if e.index.0 != expected {
                return Err(StorageError::NotContiguous {
                    expected: LogIndex(expected),
                    found: e.index,
                });
            }
            self.range = Some((self.range.map_or(expected, |(first, _)| first), expected));
        }
        Ok(fresh)
    }
}

/// A [`Storage`] in a data directory: segmented WAL plus snapshot files.
///
/// Create it with [`FileStorage::open`], then call [`Storage::load`] once
/// before writing.
#[derive(Debug)]
pub struct FileStorage<C> {
    dir: PathBuf,
    opts: FileStorageOptions,
    poisoned: bool,
    /// The segment being appended to; `None` before `load`.
    active: Option<ActiveSegment>,
    segments: Vec<Segment>,
    hard_state: HardState,
    shape: LogShape,
    snapshot_path: Option<PathBuf>,
    buf: Vec<u8>,
    /// Bytes appended to segments, for metrics.
    written: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    #[cfg(test)]
    pub(crate) fail_next_sync: bool,
    #[cfg(test)]
    pub(crate) disk_full_after: Option<usize>,
    _command: PhantomData<fn() -> C>,
}

/// The name of segment `seq`.
fn segment_name(seq: u64) -> String {
    format!("wal-{seq:012}.log")
}

/// Parses a segment file name into its number.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

fn corrupt(file: &Path, offset: usize, reason: String) -> StorageError {
    StorageError::Corrupt {
        file: file.to_owned(),
        offset: offset as u64,
        reason,
    }
}

impl<C> FileStorage<C> {
    /// Opens (creating it if needed) the data directory `dir`. Reads
    /// nothing yet: call [`Storage::load`].
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(
        dir: impl Into<PathBuf>,
        mut opts: FileStorageOptions,
    ) -> Result<Self, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if opts.fsync == FsyncPolicy::Never {
            // Without fsyncs there is no journal commit to save, and no
            // zeros means none a machine crash could leave at the end of
            // an older segment.
            opts.preallocate = 0;
        }
        Ok(Self {
            dir,
            opts,
            poisoned: false,
            active: None,
            segments: Vec::new(),
            hard_state: HardState::default(),
            shape: LogShape::default(),
            snapshot_path: None,
            buf: Vec::new(),
            written: None,
            #[cfg(test)]
            fail_next_sync: false,
            #[cfg(test)]
            disk_full_after: None,
            _command: PhantomData,
        })
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a fatal error stopped the store.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The numbers of the live segments, oldest first.
    #[must_use]
    pub fn segment_numbers(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.seq).collect()
    }

    fn always(&self) -> bool {
        self.opts.fsync == FsyncPolicy::Always
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.poisoned {
            Err(StorageError::Poisoned)
        } else if self.active.is_none() {
            Err(StorageError::NotLoaded)
        } else {
            Ok(())
        }
    }

    /// Records a fatal error: the store accepts no more calls.
    fn poison(&mut self, e: StorageError) -> StorageError {
        self.poisoned = true;
        tracing::error!(error = %e, "storage stopped");
        e
    }

    fn active_path(&self) -> PathBuf {
        self.segments
            .last()
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    /// fsyncs the active segment (poisoning on failure).
    fn fsync_active(&mut self) -> Result<(), StorageError> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_sync) {
            let e = StorageError::Fsync {
                path: self.active_path(),
                source: io::Error::other("injected fsync failure"),
            };
            return Err(self.poison(e));
        }
        let Some(active) = &self.active else {
            return Err(StorageError::NotLoaded);
        };
        if let Err(source) = active.file.sync_data() {
            let e = StorageError::Fsync {
                path: self.active_path(),
                source,
            };
            return Err(self.poison(e));
        }
        Ok(())
    }

    fn fsync_dir(&mut self) -> Result<(), StorageError> {
        sync_dir(&self.dir).map_err(|e| self.poison(e))
    }

    /// Appends `self.buf` to the active segment; on failure rolls the file
    /// back to where it was, so a full disk leaves no partial record.
    fn write_buf(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.active_path();
        let Some(active) = &mut self.active else {
            return Err(StorageError::NotLoaded);
        };
        #[cfg(test)]
        let full_after = self.disk_full_after.take();
        let write = |file: &File, buf: &[u8], at: u64| {
            #[cfg(test)]
            if let Some(n) = full_after {
                return file
                    .write_all_at(&buf[..n.min(buf.len())], at)
                    .and_then(|()| Err(io::Error::from(io::ErrorKind::StorageFull)));
            }
            file.write_all_at(buf, at)
        };
        match active.append(&self.buf, self.opts.preallocate, write) {
            Ok(()) => {
                if let Some(w) = &self.written {
                    w.fetch_add(self.buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            }
            Err(AppendError::Undone(source)) if is_disk_full(&source) => {
                tracing::warn!(file = %path.display(), "disk full: write rejected and rolled back");
                Err(StorageError::DiskFull { path })
            }
            Err(AppendError::Undone(source) | AppendError::Unknown(source)) => {
                Err(self.poison(StorageError::Io { path, source }))
            }
        }
    }
}

impl<C: Serialize> FileStorage<C> {
    /// Appends the checkpoint that starts every segment to `self.buf`.
    fn encode_checkpoint(&mut self) -> Result<(), StorageError> {
        record::encode(&RecordOut::<C>::HardState(self.hard_state), &mut self.buf)?;
        if let Some((i, t)) = self.shape.snapshot {
            record::encode(&RecordOut::<C>::SnapshotMarker(i, t), &mut self.buf)?;
        }
        Ok(())
    }

    /// Creates segment `seq` with its header and checkpoint and makes it the
    /// active one (fsyncing it and the directory under `Always`).
    fn start_segment(&mut self, seq: u64) -> Result<(), StorageError> {
        let path = self.dir.join(segment_name(seq));
        self.buf.clear();
        self.buf.extend_from_slice(SEGMENT_MAGIC);
        self.encode_checkpoint()?;
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&self.buf).map(|()| f));
        let file = match created {
            Ok(f) => f,
            Err(source) => {
                let _ = fs::remove_file(&path);
                if is_disk_full(&source) {
                    return Err(StorageError::DiskFull { path });
                }
                return Err(self.poison(StorageError::Io { path, source }));
            }
        };
        let len = self.buf.len() as u64;
        self.buf.clear();
        self.segments.push(Segment {
            seq,
            path,
            max_entry: 0,
        });
        self.active = Some(ActiveSegment::new(file, len, len));
        if self.always() {
            self.fsync_active()?;
            self.fsync_dir()?;
        }
        Ok(())
    }

    /// Closes the active segment (without its spare zeros, and durably
    /// under `Always`) and starts the next.
    fn roll_over(&mut self) -> Result<(), StorageError> {
        if let Some(active) = &mut self.active {
            if let Err(source) = active.trim() {
                let path = self.active_path();
                return Err(self.poison(StorageError::Io { path, source }));
            }
        }
        if self.always() {
            self.fsync_active()?;
        }
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let previous = self.active.take();
        if let Err(e) = self.start_segment(seq) {
            if self.active.is_none() {
                self.active = previous;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes a snapshot durably, then drops what it makes obsolete.
    fn install_snapshot(&mut self, s: &Snapshot) -> Result<(), StorageError> {
        if self.always() {
            self.fsync_active()?;
        }
        let path = match snapshot_file::write_atomic(&self.dir, s, self.always()) {
            Ok(p) => p,
            Err(e @ StorageError::DiskFull { .. }) => return Err(e),
            Err(e) => return Err(self.poison(e)),
        };
        if let Some(old) = self.snapshot_path.replace(path) {
            if let Err(e) = fs::remove_file(&old) {
                tracing::warn!(file = %old.display(), error = %e, "cannot remove old snapshot");
            }
        }
        let _newer = self.shape.install(s.meta.last_index, s.meta.last_term);
        self.compact(s.meta.last_index.0)
    }

    /// Deletes the oldest segments while every entry they hold is covered by
    /// the durable snapshot at `index` (never the active segment).
    fn compact(&mut self, index: u64) -> Result<(), StorageError> {
        while self.segments.len() > 1 && self.segments[0].max_entry <= index {
            let path = self.segments[0].path.clone();
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove compacted segment");
                break;
            }
            self.segments.remove(0);
            if self.always() {
                self.fsync_dir()?;
            }
            tracing::debug!(file = %path.display(), "compacted log segment");
        }
        Ok(())
    }
}

impl<C: Serialize + DeserializeOwned> Storage<C> for FileStorage<C> {
    fn load(&mut self) -> Result<Stored<C>, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        self.load_inner()
    }

    fn write(&mut self, p: &Persist<C>) -> Result<(), StorageError> {
        self.check_usable()?;
        // Check the whole request first: nothing is written if it is invalid.
        let mut shape = self.shape;
        if let Some(from) = p.truncate_from {
            shape.truncate(from);
        }
        let new_snapshot = p.snapshot.as_deref().and_then(|s| {
            shape
                .install(s.meta.last_index, s.meta.last_term)
                .map(|cleared| (s, cleared))
        });
        let fresh = shape.append(&p.entries)?;

        if self
            .active
            .as_ref()
            .is_some_and(|a| a.len >= self.opts.segment_size)
        {
            self.roll_over()?;
        }
        self.buf.clear();
        if let Some(hs) = p.hard_state {
            record::encode(&RecordOut::<C>::HardState(hs), &mut self.buf)?;
        }
        if let Some(from) = p.truncate_from {
            record::encode(&RecordOut::<C>::Truncate(from), &mut self.buf)?;
        }
        self.write_buf()?;
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
        if let Some(from) = p.truncate_from {
            self.shape.truncate(from);
            let keep = from.0.saturating_sub(1);
            for s in &mut self.segments {
                s.max_entry = s.max_entry.min(keep);
            }
        }
        self.buf.clear();
        if let Some((s, cleared)) = new_snapshot {
            self.install_snapshot(s)?;
            record::encode(
                &RecordOut::<C>::SnapshotMarker(s.meta.last_index, s.meta.last_term),
                &mut self.buf,
            )?;
            if cleared {
                record::encode(&RecordOut::<C>::Truncate(LogIndex(0)), &mut self.buf)?;
            }
        }
        if !fresh.is_empty() {
            record::encode(&RecordOut::Entries(fresh), &mut self.buf)?;
        }
        self.write_buf()?;
        if let Some(last) = fresh.last() {
            self.shape.append(fresh)?;
            if let Some(seg) = self.segments.last_mut() {
                seg.max_entry = seg.max_entry.max(last.index.0);
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.always() {
            self.fsync_active()?;
        }
        Ok(())
    }

    fn count_written_bytes(&mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.written = Some(counter);
    }
}

#[cfg(test)]
impl<C> FileStorage<C> {
    /// The paths of the live segments (tests).
    pub(crate) fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Where the active segment's records end (tests).
    pub(crate) fn records_end(&self) -> u64 {
        self.active.as_ref().map_or(0, |a| a.len)
    }
}

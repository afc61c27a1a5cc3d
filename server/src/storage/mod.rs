//! Durable storage for a Raft server: hard state, log and snapshots.
//!
//! [`Storage`] is what the runtime's storage task drives: it hands every
//! [`Persist`] request to [`Storage::write`] in the order the core issued them,
//! calls [`Storage::sync`] once for a batch of writes (group commit), and only
//! then reports the batch's highest sequence number to the core as persisted.
//! [`FileStorage`] implements it with a segmented write-ahead log and
//! atomically written snapshot files in a data directory (the on-disk format
//! is described in [`file`](mod@file)).
//!
//! All of it is synchronous `std::fs`; the runtime calls it from a dedicated
//! task or thread.

mod data_dir;
pub mod file;
mod record;
mod snapshot_file;
#[cfg(test)]
mod tests;

pub use data_dir::{DataDir, DataDirError};
pub use file::{
    DEFAULT_PREALLOCATE, DEFAULT_SEGMENT_SIZE, FileStorage, FileStorageOptions, FsyncPolicy,
    ParseFsyncPolicyError,
};

use distlock_core::ids::LogIndex;
use distlock_core::raft::{Persist, Stored};
use std::io;
use std::path::PathBuf;

/// A server's durable state: a write-ahead log of [`Persist`] requests and
/// the latest snapshot.
///
/// # Contract
/// * [`Storage::load`] is called once at startup, before any write; it
///   recovers the directory (dropping a torn tail of records that were never
///   acknowledged) and returns what survived.
/// * [`Storage::write`] applies the parts of one request in the contract's
///   order (hard state, truncation, snapshot, entries). It may return before
///   the data is durable.
/// * [`Storage::sync`] makes every write since the previous sync durable
///   with one fsync (group commit). Only after it returned `Ok` may the
///   caller report those requests as persisted.
///
/// # Fail-stop
/// After an fsync failed (in [`Storage::sync`], or in a `write` that must
/// make a snapshot durable) the store is *poisoned*: the kernel may have
/// dropped the dirty pages, so retrying could claim durability for data that
/// is gone. Every later call returns [`StorageError::Poisoned`] and the
/// server must stop. The same holds for any I/O error the store cannot undo.
///
/// A full disk ([`StorageError::DiskFull`] from `write`) is not fatal: the
/// partial write is rolled back, nothing acknowledged is lost, and the caller
/// may retry the same request later.
pub trait Storage<C> {
    /// Recovers the directory and reads back hard state, the latest snapshot
    /// and the log after it. `initial_membership` is left empty: the caller
    /// sets it.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when anything but a torn tail of the last
    /// log segment is damaged; [`StorageError::Io`] when files cannot be read.
    fn load(&mut self) -> Result<Stored<C>, StorageError>;

    /// Writes one request (buffered in the OS until the next [`Storage::sync`]).
    ///
    /// # Errors
    /// [`StorageError::DiskFull`] (retryable), [`StorageError::NotContiguous`]
    /// for a request that breaks the log's contiguity (nothing is written),
    /// [`StorageError::Poisoned`] after a fatal error, or the fatal error itself.
    fn write(&mut self, p: &Persist<C>) -> Result<(), StorageError>;

    /// Makes every write since the previous sync durable (one fsync).
    ///
    /// # Errors
    /// Any error here is fatal: the store is poisoned afterwards.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// How long the next [`Storage::sync`] takes on a simulated device. The
    /// runtime waits this long (in virtual time) before calling `sync` when
    /// it runs under the simulator; a real store blocks in `sync` for real
    /// and keeps the default of zero.
    fn sync_latency(&mut self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Counts the bytes this store writes from now on into `counter` (an
    /// atomic, read by `/metrics`); a store that does not count ignores it.
    fn count_written_bytes(&mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let _ = counter;
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O operation failed.
    #[error("storage I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An fsync failed; the store is poisoned and the server must stop.
    #[error(
        "fsync of {} failed: {source}; stopping (fail-stop: an fsync is never retried)",
        path.display()
    )]
    Fsync {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The disk is full. The failed write was rolled back; everything written
    /// before it is intact and the write may be retried once space is freed.
    #[error("disk full while writing {}: the write was rejected and rolled back, nothing acknowledged was lost; free space and retry", path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Stored data is damaged somewhere other than a torn tail; the server
    /// refuses to start rather than run with a corrupted log.
    #[error(
        "storage is corrupt: {} at byte offset {offset}: {reason}; refusing to start (restore this server's data directory from a backup or re-add it to the cluster empty)",
        file.display()
    )]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier fatal error stopped the store.
    #[error("storage is stopped after an earlier fatal error (fail-stop); restart the server")]
    Poisoned,
    /// [`Storage::write`] or [`Storage::sync`] was called before [`Storage::load`].
    #[error("storage used before load()")]
    NotLoaded,
    /// A request appends entries that do not follow the stored log.
    #[error("persist request appends entry {found} but the stored log continues at {expected}")]
    NotContiguous {
        /// The index that should come next.
        expected: LogIndex,
        /// The index the request carried.
        found: LogIndex,
    },
    /// A value could not be encoded.
    #[error("cannot encode a storage record: {0}")]
    Encode(#[from] postcard::Error),
    /// One record would exceed the format's size limit.
    #[error("storage record of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its encoded size.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Whether an I/O error means the disk (or quota) is full.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(28)
}

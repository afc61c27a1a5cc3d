//! Snapshot files: `snapshot-<index>` holding `[8-byte magic][u64 len]
//! [u32 crc32][postcard Snapshot]`, written atomically through
//! `snapshot-<index>.tmp`, fsync, rename, fsync of the directory.

use super::{StorageError, is_disk_full};
use distlock_core::raft::Snapshot;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first bytes of every snapshot file (format version 1).
const SNAPSHOT_MAGIC: &[u8; 8] = b"DLSNAP\0\x01";
/// Magic, length and checksum.
const HEADER: usize = 20;

/// The final name of the snapshot covering up to `index`.
pub(crate) fn snapshot_name(index: u64) -> String {
    format!("snapshot-{index:020}")
}

/// Parses a final snapshot file name into its index.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a snapshot temp file left by an interrupted write.
pub(crate) fn is_snapshot_tmp(name: &str) -> bool {
    name.starts_with("snapshot-") && name.ends_with(".tmp")
}

/// Encodes a snapshot file's full contents.
fn encode(s: &Snapshot) -> Result<Vec<u8>, StorageError> {
    let payload = postcard::to_stdvec(s)?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Writes `s` atomically into `dir`; returns the final path. With `fsync`
/// false nothing is fsynced (benchmark mode).
///
/// On a full disk the temp file is removed and [`StorageError::DiskFull`]
/// returned; an fsync failure returns [`StorageError::Fsync`].
pub(crate) fn write_atomic(dir: &Path, s: &Snapshot, fsync: bool) -> Result<PathBuf, StorageError> {
    let name = snapshot_name(s.meta.last_index.0);
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let bytes = encode(s)?;
    let io = |path: &Path, source: std::io::Error| {
        if is_disk_full(&source) {
            StorageError::DiskFull {
                path: path.to_owned(),
            }
        } else {
            StorageError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let written = File::create(&tmp).and_then(|mut f| f.write_all(&bytes).map(|()| f));
    let f = match written {
        Ok(f) => f,
        Err(e) => {
            // Best effort: a leftover temp file is ignored and removed at load.
            let _ = fs::remove_file(&tmp);
            return Err(io(&tmp, e));
        }
    };
    if fsync {
        f.sync_all().map_err(|source| StorageError::Fsync {
            path: tmp.clone(),
            source,
        })?;
    }
    drop(f);
    fs::rename(&tmp, &dst).map_err(|e| io(&dst, e))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(dst)
}

/// Fsyncs a directory, so that renames, creations and removals in it survive.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StorageError::Fsync {
            path: dir.to_owned(),
            source,
        })
}

/// Reads and verifies a snapshot file.
pub(crate) fn read(path: &Path) -> Result<Snapshot, StorageError> {
    let bytes = fs::read(path).map_err(|source| StorageError::Io {
        path: path.to_owned(),
        source,
    })?;
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        file: path.to_owned(),
        offset,
        reason,
    };
    if bytes.len() < HEADER || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad header)".to_owned()));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[8..16]);
    let mut crc4 = [0u8; 4];
    crc4.copy_from_slice(&bytes[16..20]);
    let payload = &bytes[HEADER..];
    if u64::from_le_bytes(len8) != payload.len() as u64 {
        return Err(corrupt(
            8,
            format!(
                "snapshot length field says {} bytes but {} follow",
                u64::from_le_bytes(len8),
                payload.len()
            ),
        ));
    }
    if crc32fast::hash(payload) != u32::from_le_bytes(crc4) {
        return Err(corrupt(
            HEADER as u64,
            "snapshot checksum mismatch".to_owned(),
        ));
    }
    let s: Snapshot = postcard::from_bytes(payload)
        .map_err(|e| corrupt(HEADER as u64, format!("snapshot does not decode: {e}")))?;
    let expected = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_snapshot_name);
    if expected != Some(s.meta.last_index.0) {
        return Err(corrupt(
            HEADER as u64,
            format!(
                "snapshot covers index {} but its name says otherwise",
                s.meta.last_index
            ),
        ));
    }
    Ok(s)
}

//! The backup file of `distlock snapshot save` (format version 1).
//!
//! ```text
//! offset  size       field
//! 0       8          magic "DLBACKUP"
//! 8       4          format version, u32 little-endian (1)
//! 12      8          meta_len, u64 little-endian
//! 20      8          state_len, u64 little-endian
//! 28      meta_len   postcard BackupMeta: index, term, membership, taken_unix_ms
//! ..      state_len  the lock state, in the state machine's own versioned
//!                    snapshot format (as in a server's snapshot files)
//! end-4   4          crc32 (IEEE) of every byte from offset 8 to here
//! ```
//!
//! The checksum covers the header fields as well as both parts, so a file
//! that was cut short, padded or damaged anywhere is refused before a byte
//! of it is decoded; then both parts must decode, and the lock state must
//! pass the state machine's own consistency checks. A file is written
//! through `FILE.tmp`, fsynced, renamed over `FILE`, and the directory
//! fsynced, so `FILE` is always either the old file or the whole new one.

use distlock_core::ids::{LogIndex, Term};
use distlock_core::locks::LockState;
use distlock_core::raft::{Membership, StateMachine};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first bytes of every backup file.
const MAGIC: &[u8; 8] = b"DLBACKUP";
/// The format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Magic, version and the two lengths.
const HEADER: usize = 28;
/// The trailing checksum.
const TRAILER: usize = 4;

/// Where a backup sits in the log it was taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BackupMeta {
    /// The last log index the state reflects: every fencing token and
    /// session id in it is at most this.
    pub(crate) index: LogIndex,
    /// The term of the entry at `index`.
    pub(crate) term: Term,
    /// The configuration in force at `index` (voters, learners, addresses).
    pub(crate) membership: Membership,
    /// When the snapshot was saved, by the saving machine's wall clock
    /// (milliseconds since the Unix epoch); for people, never for
    /// decisions.
    pub(crate) taken_unix_ms: u64,
}

/// A backup: its position and the lock state's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Backup {
    /// Where it sits in the log.
    pub(crate) meta: BackupMeta,
    /// The lock state ([`StateMachine::snapshot`] bytes).
    pub(crate) state: Vec<u8>,
}

/// A backup file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupFileError {
    /// Reading, writing or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not start like a backup.
    #[error("{} is not a distlock snapshot file (its first bytes are not the DLBACKUP magic)", path.display())]
    NotABackup {
        /// The file.
        path: PathBuf,
    },
    /// Written by a build with another format.
    #[error("{} is snapshot format version {version}; this build reads version {FORMAT_VERSION}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it names.
        version: u32,
    },
    /// Shorter (or longer) than its header says: cut short by a copy or a
    /// full disk, or padded.
    #[error("{} is truncated or damaged: its header announces {expected} bytes but it has {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The length the header announces.
        expected: u64,
        /// Its length.
        found: u64,
    },
    /// The checksum does not match: the file was damaged.
    #[error("{} is corrupt: checksum mismatch (stored crc32 {stored:08x}, computed {computed:08x})", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The checksum the file carries.
        stored: u32,
        /// The checksum of what it holds.
        computed: u32,
    },
    /// The checksum matches but a part does not decode (a file written by
    /// a faulty build).
    #[error("{} is invalid: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What does not decode.
        reason: String,
    },
}

impl Backup {
    /// The file's bytes.
    #[must_use]
    pub(crate) fn encode(&self) -> Vec<u8> {
        // postcard fails only on a full buffer or a sequence of unknown
        // length; a Vec grows, and every sequence here knows its length.
        let meta = postcard::to_stdvec(&self.meta).expect("encoding into a Vec cannot fail");
        let mut out = Vec::with_capacity(HEADER + meta.len() + self.state.len() + TRAILER);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.state.len() as u64).to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&self.state);
        let crc = crc32fast::hash(&out[MAGIC.len()..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a file's bytes: checks length and checksum, then decodes.
    ///
    /// # Errors
    /// Every [`BackupFileError`] but `Io`, naming `path`.
    pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<(Self, LockState), BackupFileError> {
        let path = path.to_owned();
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(BackupFileError::NotABackup { path });
        }
        let found = bytes.len() as u64;
        let truncated = |expected: u64| BackupFileError::Truncated {
            path: path.clone(),
            expected,
            found,
        };
        if bytes.len() < HEADER + TRAILER {
            return Err(truncated((HEADER + TRAILER) as u64));
        }
        let version = u32::from_le_bytes(le_bytes(&bytes[8..12]));
        if version != FORMAT_VERSION {
            return Err(BackupFileError::UnsupportedVersion { path, version });
        }
        let meta_len = u64::from_le_bytes(le_bytes(&bytes[12..20]));
        let state_len = u64::from_le_bytes(le_bytes(&bytes[20..28]));
        let expected = meta_len
            .checked_add(state_len)
            .and_then(|n| n.checked_add((HEADER + TRAILER) as u64))
            .unwrap_or(u64::MAX);
        if expected != found {
            return Err(truncated(expected));
        }
        let body_end = bytes.len() - TRAILER;
        let stored = u32::from_le_bytes(le_bytes(&bytes[body_end..]));
        let computed = crc32fast::hash(&bytes[MAGIC.len()..body_end]);
        if stored != computed {
            return Err(BackupFileError::Checksum {
                path,
                stored,
                computed,
            });
        }
        // Both lengths are within the file now, so they fit a usize.
        let meta_end = HEADER + usize::try_from(meta_len).unwrap_or(usize::MAX);
        let invalid = |reason: String| BackupFileError::Invalid {
            path: path.clone(),
            reason,
        };
        let meta: BackupMeta = postcard::from_bytes(&bytes[HEADER..meta_end])
            .map_err(|e| invalid(format!("its header does not decode: {e}")))?;
        let state = bytes[meta_end..body_end].to_vec();
        let mut locks = LockState::default();
        locks
            .restore(&state)
            .map_err(|e| invalid(format!("its lock state does not decode: {e}")))?;
        if locks.last_applied() > meta.index {
            return Err(invalid(format!(
                "its lock state was applied up to index {} but it claims index {}",
                locks.last_applied().0,
                meta.index.0
            )));
        }
        Ok((Self { meta, state }, locks))
    }

    /// The CRC-32 its file ends in.
    #[must_use]
    pub(crate) fn checksum(&self) -> u32 {
        let bytes = self.encode();
        u32::from_le_bytes(le_bytes(&bytes[bytes.len() - TRAILER..]))
    }

    /// Writes the file atomically: `FILE.tmp`, fsync, rename, fsync of the
    /// directory.
    ///
    /// # Errors
    /// [`BackupFileError::Io`]; the temporary file is removed.
    pub(crate) fn write_atomic(&self, path: &Path) -> Result<(), BackupFileError> {
        let bytes = self.encode();
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BackupFileError::Io { path, source }
        };
        let written =
            File::create(&tmp).and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            // Best effort: the temporary file is garbage either way.
            let _ = fs::remove_file(&tmp);
            return Err(io(&tmp)(e));
        }
        fs::rename(&tmp, path).map_err(io(path))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    }

    /// Reads and verifies a backup file.
    ///
    /// # Errors
    /// Any [`BackupFileError`].
    pub(crate) fn read(path: &Path) -> Result<(Self, LockState), BackupFileError> {
        let bytes = fs::read(path).map_err(|source| BackupFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::decode(path, &bytes)
    }
}

/// The array a little-endian number is read from; `bytes` has its length.
fn le_bytes<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_core::ids::NodeId;
    use distlock_core::locks::{ClientCommand, Command, Mode, Wait};
    use distlock_core::locks::{Seq, SessionId};
    use distlock_core::raft::MemberAddrs;

    fn state() -> LockState {
        let mut s = LockState::default();
        s.apply(
            LogIndex(3),
            &Command::Client(ClientCommand::OpenSession {
                nonce: 1,
                ttl_ms: 10_000,
            }),
        );
        s.apply(
            LogIndex(4),
            &Command::Client(ClientCommand::Acquire {
                session: SessionId(3),
                seq: Seq(1),
                ack: Seq(1),
                lock: "db".to_owned(),
                mode: Mode::Exclusive,
                wait: Wait::Try,
                lock_delay_ms: 0,
            }),
        );
        s
    }

    fn backup() -> Backup {
        let mut membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
        membership.learners.insert(NodeId(4));
        membership.addrs.insert(
            NodeId(4),
            MemberAddrs {
                peer: "10.0.0.4:7101".to_owned(),
                client: "10.0.0.4:7001".to_owned(),
                ws: None,
            },
        );
        Backup {
            meta: BackupMeta {
                index: LogIndex(9),
                term: Term(2),
                membership,
                taken_unix_ms: 1_700_000_000_000,
            },
            state: state().snapshot(),
        }
    }

    #[test]
    fn a_backup_round_trips_through_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("backup.snap");
        let b = backup();
        b.write_atomic(&path).expect("written");
        assert!(!dir.path().join("backup.snap.tmp").exists());
        let (read, locks) = Backup::read(&path).expect("read back");
        assert_eq!(read, b);
        assert_eq!(locks, state());
        assert_eq!(locks.max_token().map(|t| t.0), Some(4));
        // Written again over itself: replaced whole.
        let mut newer = b;
        newer.meta.index = LogIndex(10);
        newer.write_atomic(&path).expect("rewritten");
        assert_eq!(
            Backup::read(&path).expect("read").0.meta.index,
            LogIndex(10)
        );
    }

    #[test]
    fn a_damaged_byte_anywhere_is_refused() {
        let bytes = backup().encode();
        let path = Path::new("b.snap");
        for at in 8..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let e = Backup::decode(path, &bad).expect_err("damage is found");
            assert!(
                matches!(
                    e,
                    BackupFileError::Checksum { .. }
                        | BackupFileError::Truncated { .. }
                        | BackupFileError::UnsupportedVersion { .. }
                ),
                "byte {at}: {e}"
            );
        }
        let mut bad = bytes;
        let last = bad.len() - 10;
        bad[last] ^= 1;
        let e = Backup::decode(path, &bad).expect_err("corrupt");
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused() {
        let bytes = backup().encode();
        let path = Path::new("b.snap");
        for len in [0, 4, 8, 20, HEADER + 3, bytes.len() / 2, bytes.len() - 1] {
            let e = Backup::decode(path, &bytes[..len]).expect_err("short");
            assert!(
                matches!(
                    e,
                    BackupFileError::Truncated { .. } | BackupFileError::NotABackup { .. }
                ),
                "{len} bytes: {e}"
            );
        }
        let e = Backup::decode(path, &bytes[..bytes.len() - 1]).expect_err("short");
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Backup::decode(path, &longer),
            Err(BackupFileError::Truncated { .. })
        ));
        assert!(matches!(
            Backup::decode(path, b"DLSNAP\0\x01 not a backup"),
            Err(BackupFileError::NotABackup { .. })
        ));
        let mut future = bytes;
        future[8] = 2;
        assert!(matches!(
            Backup::decode(path, &future),
            Err(BackupFileError::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn a_consistent_file_with_a_bad_state_is_refused() {
        let mut b = backup();
        b.state = b"DLks garbage".to_vec();
        let e = Backup::decode(Path::new("b.snap"), &b.encode()).expect_err("invalid");
        assert!(matches!(e, BackupFileError::Invalid { .. }), "{e}");
        let mut b = backup();
        b.meta.index = LogIndex(2);
        let e = Backup::decode(Path::new("b.snap"), &b.encode()).expect_err("invalid");
        assert!(e.to_string().contains("applied up to index 4"), "{e}");
    }
}

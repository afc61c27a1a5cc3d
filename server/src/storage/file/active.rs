//! The segment being written, and the zero-filled space kept ahead of its
//! records.
//!
//! Why zeros ahead: an fdatasync after an append must also commit the file's
//! new size (a journal commit on ext4 and XFS), while one after overwriting
//! blocks the file already has flushes the data alone. On the disk we
//! measure on, 100 B + fdatasync costs 210 µs appended and 132 µs
//! overwritten, and every grant waits for one. So the segment grows by a
//! whole chunk of real zeros at a time (not `fallocate`: its unwritten
//! extents need the same journal commit on first write) and records
//! overwrite them; one sync in a chunk's worth of records pays for the
//! growth. Recovery reads an all-zero tail of the last segment as this
//! space, not as damage (see `recovery.rs`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Zeros written per call while growing a segment.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Why [`ActiveSegment::append`] failed.
#[derive(Debug)]
pub(super) enum AppendError {
    /// The write failed and was undone: the file ends where its records
    /// did (without the zeros it may have had after them).
    Undone(io::Error),
    /// Undoing a failed write failed too: the file's tail is unknown.
    Unknown(io::Error),
}

/// The segment being appended to.
#[derive(Debug)]
pub(super) struct ActiveSegment {
    pub(super) file: File,
    /// Where its records end: the next record goes here.
    pub(super) len: u64,
    /// The file's length: records, then zeros up to here.
    pub(super) allocated: u64,
}

impl ActiveSegment {
    /// A segment whose file holds records up to `len` and is `allocated`
    /// bytes long.
    pub(super) fn new(file: File, len: u64, allocated: u64) -> Self {
        Self {
            file,
            len,
            allocated: allocated.max(len),
        }
    }

    /// Writes `buf` after the records, growing the file by at least `chunk`
    /// zeros first when `buf` does not fit (`chunk` 0: plain appends). On an
    /// error the file is cut back to where the records ended, so nothing of
    /// `buf` and no partial growth remains. `write` writes at an offset (a
    /// parameter so tests can inject a full disk).
    pub(super) fn append(
        &mut self,
        buf: &[u8],
        chunk: u64,
        write: impl FnOnce(&File, &[u8], u64) -> io::Result<()>,
    ) -> Result<(), AppendError> {
        let start = self.len;
        let end = start + buf.len() as u64;
        let written = self
            .grow(end, chunk)
            .and_then(|()| write(&self.file, buf, start));
        match written {
            Ok(()) => {
                self.len = end;
                self.allocated = self.allocated.max(end);
                Ok(())
            }
            Err(e) => {
                self.file.set_len(start).map_err(AppendError::Unknown)?;
                self.allocated = start;
                Err(AppendError::Undone(e))
            }
        }
    }

    /// Zero-fills the file up to at least `end`, a whole `chunk` past what it
    /// had, when `end` is beyond it.
    fn grow(&mut self, end: u64, chunk: u64) -> io::Result<()> {
        if chunk == 0 || end <= self.allocated {
            return Ok(());
        }
        let target = end.max(self.allocated + chunk);
        let mut at = self.allocated;
        while at < target {
            let n = usize::try_from(target - at).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        self.allocated = target;
        Ok(())
    }

    /// Cuts the zeros after the records off, when the segment is closed: only
    /// the last segment may end in zeros.
    pub(super) fn trim(&mut self) -> io::Result<()> {
        if self.allocated > self.len {
            self.file.set_len(self.len)?;
            self.allocated = self.len;
        }
        Ok(())
    }
}

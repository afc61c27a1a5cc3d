//! WAL records: framing (`[u32 len][u32 crc32][payload]`, little-endian,
//! the CRC covering the length bytes and the payload), the payload types, and
//! the scan of one segment's bytes that tells valid records from a torn tail
//! and from corruption.

use distlock_core::ids::{LogIndex, Term};
use distlock_core::raft::{Entry, HardState};
use serde::{Deserialize, Serialize};

/// The first bytes of every segment file (format version 1).
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"DLWAL\0\0\x01";
/// Bytes of a record's frame before the payload.
pub(crate) const FRAME_HEADER: usize = 8;
/// The largest payload a record may have.
pub(crate) const MAX_RECORD: usize = 1 << 30;

/// A record as written: borrows the entries it frames.
///
/// Variant order and shapes MUST match [`RecordIn`]: postcard encodes the
/// variant index and a slice exactly as it encodes a `Vec`.
#[derive(Serialize)]
pub(crate) enum RecordOut<'a, C> {
    /// Term and vote; the last one in the log wins.
    HardState(HardState),
    /// Discard entries with this index or higher.
    Truncate(LogIndex),
    /// Append these.
    Entries(&'a [Entry<C>]),
    /// A snapshot covering up to `.0` (of term `.1`) became durable here.
    SnapshotMarker(LogIndex, Term),
}

/// A record as read back.
#[derive(Deserialize)]
pub(crate) enum RecordIn<C> {
    /// See [`RecordOut::HardState`].
    HardState(HardState),
    /// See [`RecordOut::Truncate`].
    Truncate(LogIndex),
    /// See [`RecordOut::Entries`].
    Entries(Vec<Entry<C>>),
    /// See [`RecordOut::SnapshotMarker`].
    SnapshotMarker(LogIndex, Term),
}

/// The CRC of a record: over its length bytes and its payload.
fn record_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `buf`.
pub(crate) fn encode<C: Serialize>(
    rec: &RecordOut<'_, C>,
    buf: &mut Vec<u8>,
) -> Result<(), super::StorageError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER]);
    let taken = std::mem::take(buf);
    *buf = postcard::to_extend(rec, taken)?;
    let len = buf.len() - start - FRAME_HEADER;
    if len > MAX_RECORD {
        buf.truncate(start);
        return Err(super::StorageError::TooLarge {
            len: len as u64,
            max: MAX_RECORD as u64,
        });
    }
    // `len <= MAX_RECORD < u32::MAX`, checked above.
    let len_bytes = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
    let crc = record_crc(len_bytes, &buf[start + FRAME_HEADER..]);
    buf[start..start + 4].copy_from_slice(&len_bytes);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer bytes than a frame header remain.
    ShortHeader,
    /// The length field is zero or beyond the limit.
    Length(u32),
    /// The payload runs past the end of the file.
    ShortPayload { len: u32 },
    /// The checksum does not match.
    Checksum,
}

impl Bad {
    /// A human-readable reason.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::ShortHeader => "record header cut short".to_owned(),
            Self::Length(n) => format!("implausible record length {n}"),
            Self::ShortPayload { len } => {
                format!("record of {len} bytes cut short by the end of the file")
            }
            Self::Checksum => "record checksum mismatch".to_owned(),
        }
    }
}

/// The payload of the record at `off` in `bytes`, and the offset after it.
pub(crate) fn frame_at(bytes: &[u8], off: usize) -> Result<(&[u8], usize), Bad> {
    let rest = bytes.get(off..).unwrap_or(&[]);
    let (Some(len4), Some(crc4)) = (rest.get(0..4), rest.get(4..8)) else {
        return Err(Bad::ShortHeader);
    };
    let len_bytes: [u8; 4] = [len4[0], len4[1], len4[2], len4[3]];
    let len = u32::from_le_bytes(len_bytes);
    let stored_crc = u32::from_le_bytes([crc4[0], crc4[1], crc4[2], crc4[3]]);
    let ulen = len as usize;
    if ulen == 0 || ulen > MAX_RECORD {
        return Err(Bad::Length(len));
    }
    let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + ulen) else {
        return Err(Bad::ShortPayload { len });
    };
    if record_crc(len_bytes, payload) != stored_crc {
        return Err(Bad::Checksum);
    }
    Ok((payload, off + FRAME_HEADER + ulen))
}

/// Whether any valid record starts after `off` (used to tell a torn tail,
/// after which nothing valid follows, from corruption in the middle).
pub(crate) fn valid_record_after(bytes: &[u8], off: usize) -> Option<usize> {
    (off + 1..bytes.len().saturating_sub(FRAME_HEADER)).find(|&p| frame_at(bytes, p).is_ok())
}

//! Length-prefixed framing (PROTOCOL.md §2.1): each frame is a big-endian `u32`
//! payload length followed by the postcard payload.
//!
//! [`FrameReader`] checks every announced length against its limit before
//! allocating anything, and reuses one buffer for all frames. Its reads are
//! cancel-safe: its progress lives in the reader, so it can sit in a
//! `tokio::select!` branch or under `tokio::time::timeout` and be polled
//! again later without losing bytes.
//!
//! [`FrameWriter`] encodes into one reused buffer and writes nothing until
//! [`FrameWriter::flush`] (or until a large batch builds up), so callers
//! write many frames and flush once. Under madsim the bytes travel only when
//! flushed, so every batch must end with a flush.

use crate::error::{FrameError, TransportError};
use distlock_core::proto::{MAX_FRAME_BYTES, check_frame_len, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// Size of the reader's internal read buffer (small frames are read in one
/// system call per batch rather than two per frame).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Pending bytes above which [`FrameWriter::write_frame`] starts writing to
/// the stream (still without flushing) to bound the buffer.
const WRITE_HIGH_WATER: usize = 64 * 1024;

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: BufReader<R>,
    max_frame_bytes: usize,
    /// The length prefix being read, and how much of it has arrived.
    prefix: [u8; PREFIX_BYTES],
    prefix_filled: usize,
    /// The payload's bytes that have arrived, and its announced length.
    /// The buffer grows as bytes arrive, never ahead of them by more than
    /// [`READ_CHUNK_BYTES`]: a peer that announces a large frame and then
    /// trickles (or sends nothing) holds no more memory than it sent.
    /// Reused between frames.
    payload: Vec<u8>,
    payload_len: usize,
}

/// The most the payload buffer grows ahead of the bytes that arrived.
const READ_CHUNK_BYTES: usize = 64 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader accepting frames of up to [`MAX_FRAME_BYTES`].
    pub fn new(inner: R) -> Self {
        Self::with_max_frame_bytes(inner, MAX_FRAME_BYTES)
    }

    /// A reader accepting frames of up to `max_frame_bytes` (payload only,
    /// excluding the prefix).
    pub fn with_max_frame_bytes(inner: R, max_frame_bytes: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_BUFFER_BYTES, inner),
            max_frame_bytes,
            prefix: [0; PREFIX_BYTES],
            prefix_filled: 0,
            payload: Vec::new(),
            payload_len: 0,
        }
    }

    /// The largest payload accepted.
    #[must_use]
    pub const fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Reads the next frame's payload, undecoded. `Ok(None)` on a clean end
    /// of stream (between frames).
    ///
    /// Cancel-safe: if the future is dropped mid-frame, the next call
    /// resumes where it stopped.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] as soon as a length above the limit is
    /// announced (before its payload is read or allocated);
    /// [`FrameError::Truncated`] when the stream ends inside a frame;
    /// [`FrameError::Io`]. After an error the connection must be closed.
    pub async fn read_frame_bytes(&mut self) -> Result<Option<&[u8]>, FrameError> {
        while self.prefix_filled < PREFIX_BYTES {
            let n = self
                .inner
                .read(&mut self.prefix[self.prefix_filled..])
                .await?;
            if n == 0 {
                if self.prefix_filled == 0 {
                    return Ok(None);
                }
                return Err(FrameError::Truncated {
                    received: to_u64(self.prefix_filled),
                    expected: to_u64(PREFIX_BYTES),
                });
            }
            self.prefix_filled += n;
            if self.prefix_filled == PREFIX_BYTES {
                let announced = u32::from_be_bytes(self.prefix);
                let len = usize::try_from(announced).unwrap_or(usize::MAX);
                if check_frame_len(len, self.max_frame_bytes).is_err() {
                    // Start afresh should the caller (wrongly) read again.
                    self.prefix_filled = 0;
                    return Err(FrameError::TooLarge {
                        len: u64::from(announced),
                        max: to_u64(self.max_frame_bytes),
                    });
                }
                self.payload.clear();
                self.payload_len = len;
            }
        }
        while self.payload.len() < self.payload_len {
            let want = (self.payload_len - self.payload.len()).min(READ_CHUNK_BYTES);
            self.payload.reserve(want);
            let n = (&mut self.inner)
                .take(to_u64(want))
                .read_buf(&mut self.payload)
                .await?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    received: to_u64(PREFIX_BYTES + self.payload.len()),
                    expected: to_u64(PREFIX_BYTES + self.payload_len),
                });
            }
        }
        self.prefix_filled = 0;
        self.payload_len = 0;
        Ok(Some(&self.payload))
    }

    /// Reads and decodes the next frame. `Ok(None)` on a clean end of
    /// stream (between frames). Cancel-safe, like
    /// [`FrameReader::read_frame_bytes`].
    ///
    /// # Errors
    /// As [`FrameReader::read_frame_bytes`], and [`FrameError::Malformed`]
    /// when the payload is not a `T`.
    pub async fn read_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.read_frame_bytes().await? {
            Some(bytes) => Ok(Some(decode(bytes)?)),
            None => Ok(None),
        }
    }

    /// The underlying stream. Bytes already buffered by the reader are lost.
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }
}

/// Writes frames to a byte stream, in batches.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    max_frame_bytes: usize,
    /// Encoded frames not yet written; `buf[written..]` is still pending.
    buf: Vec<u8>,
    written: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer refusing to send frames above [`MAX_FRAME_BYTES`].
    pub fn new(inner: W) -> Self {
        Self::with_max_frame_bytes(inner, MAX_FRAME_BYTES)
    }

    /// A writer refusing to send payloads above `max_frame_bytes` (the
    /// receiver would refuse them anyway; failing here names the culprit).
    pub fn with_max_frame_bytes(inner: W, max_frame_bytes: usize) -> Self {
        Self {
            inner,
            max_frame_bytes,
            buf: Vec::new(),
            written: 0,
        }
    }

    /// Queues one frame. Nothing is flushed: call [`FrameWriter::flush`]
    /// after the batch. If a large batch is pending, part of it is written
    /// (not flushed) first.
    ///
    /// Cancel-safe: if the future is dropped, the frame was not queued and
    /// the frames queued before it are intact.
    ///
    /// # Errors
    /// [`FrameError::OutgoingTooLarge`] (the frame is not queued),
    /// [`FrameError::Encode`], or [`FrameError::Io`] from writing the
    /// pending batch.
    pub async fn write_frame<T: Serialize + ?Sized>(
        &mut self,
        frame: &T,
    ) -> Result<(), FrameError> {
        if self.pending() >= WRITE_HIGH_WATER {
            self.write_pending().await?;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; PREFIX_BYTES]);
        if let Err(e) = encode(frame, &mut self.buf) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        let len = self.buf.len() - start - PREFIX_BYTES;
        let announced = match u32::try_from(len) {
            Ok(n) if len <= self.max_frame_bytes => n,
            _ => {
                self.buf.truncate(start);
                return Err(FrameError::OutgoingTooLarge {
                    len: to_u64(len),
                    max: to_u64(self.max_frame_bytes),
                });
            }
        };
        self.buf[start..start + PREFIX_BYTES].copy_from_slice(&announced.to_be_bytes());
        Ok(())
    }

    /// Writes every queued frame and flushes the stream.
    ///
    /// Cancel-safe: if the future is dropped, the next call carries on.
    ///
    /// # Errors
    /// [`FrameError::Io`].
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        self.write_pending().await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Flushes, then shuts the stream down for writing (the peer reads end
    /// of stream after the queued frames).
    ///
    /// # Errors
    /// [`FrameError::Io`].
    pub async fn shutdown(&mut self) -> Result<(), FrameError> {
        self.flush().await?;
        self.inner.shutdown().await?;
        Ok(())
    }

    /// Bytes queued but not yet written to the stream.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// The underlying stream. Queued frames not yet written are lost.
    pub fn into_inner(self) -> W {
        self.inner
    }

    async fn write_pending(&mut self) -> Result<(), FrameError> {
        while self.written < self.buf.len() {
            let n = self.inner.write(&self.buf[self.written..]).await?;
            if n == 0 {
                return Err(FrameError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Ok(())
    }
}

/// Reads the next frame, failing with [`TransportError::IdleTimeout`] if
/// none completes within `idle` (the connection's idle deadline).
///
/// The read is cancel-safe, so after a timeout the reader is still in step
/// with the stream; callers normally close an idle connection all the same.
///
/// # Errors
/// [`TransportError::IdleTimeout`], or any error of
/// [`FrameReader::read_frame`] converted.
pub async fn read_frame_timeout<R, T>(
    reader: &mut FrameReader<R>,
    idle: std::time::Duration,
) -> Result<Option<T>, TransportError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    match tokio::time::timeout(idle, reader.read_frame::<T>()).await {
        Ok(result) => Ok(result?),
        Err(_elapsed) => Err(TransportError::IdleTimeout(idle)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that announces a 1 MiB frame and sends 10 bytes of it makes
    /// the reader hold about 64 KiB, not 1 MiB; the frame still arrives
    /// whole once the rest does.
    #[tokio::test]
    async fn the_payload_buffer_grows_with_the_bytes_that_arrive() {
        let (mut near, far) = tokio::io::duplex(4 << 20);
        let mut reader = FrameReader::new(far);
        let len: u32 = 1 << 20;
        near.write_all(&len.to_be_bytes()).await.expect("prefix");
        near.write_all(&[7; 10]).await.expect("a few bytes");
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            reader.read_frame_bytes(),
        )
        .await;
        assert!(waiting.is_err(), "the frame is not complete yet");
        assert!(
            reader.payload.capacity() <= 2 * READ_CHUNK_BYTES,
            "{} bytes held for 10 received",
            reader.payload.capacity()
        );
        near.write_all(&vec![7; (1 << 20) - 10])
            .await
            .expect("the rest");
        let frame = reader
            .read_frame_bytes()
            .await
            .expect("read")
            .expect("a frame");
        assert_eq!(frame.len(), 1 << 20);
        assert!(frame.iter().all(|&b| b == 7));
    }
}

//! [`Metered`]: a stream that counts the bytes read through it, so that a
//! server can tell a connection with a frame under way (bytes arrived
//! since the last complete frame) from an idle one, and cut a frame that
//! trickles ([`Meter::mid_frame`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from a connection, and how many of them made up the frames
/// handed on so far.
#[derive(Debug, Default)]
pub struct Meter {
    read: AtomicU64,
    consumed: AtomicU64,
}

impl Meter {
    /// Records that every byte read so far belongs to frames handed on
    /// (call after each complete frame).
    pub fn frame_done(&self) {
        self.consumed
            .store(self.read.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether bytes arrived since the last complete frame.
    #[must_use]
    pub fn mid_frame(&self) -> bool {
        self.read.load(Ordering::Relaxed) > self.consumed.load(Ordering::Relaxed)
    }
}

/// A stream whose reads are counted by a [`Meter`].
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> Metered<S> {
    /// `inner`, counted by a new meter.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            meter: Arc::new(Meter::default()),
        }
    }

    /// Its meter.
    #[must_use]
    pub fn meter(&self) -> Arc<Meter> {
        Arc::clone(&self.meter)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.meter
                .read
                .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_bytes_until_a_frame_is_done() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut m = Metered::new(a);
        let meter = m.meter();
        assert!(!meter.mid_frame());
        b.write_all(b"abc").await.expect("writes");
        let mut buf = [0u8; 3];
        m.read_exact(&mut buf).await.expect("reads");
        assert!(meter.mid_frame());
        meter.frame_done();
        assert!(!meter.mid_frame());
    }
}

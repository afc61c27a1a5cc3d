//! The plain-HTTP side of the WebSocket port: reading a request's head
//! before deciding what it is (an upgrade, or a request for the dashboard
//! page), answering plain requests, and handing an upgrade's bytes back to
//! tungstenite through [`Prefixed`].

use crate::error::WsError;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The largest request head read (browsers send 1-2 KiB; the limit stops a
/// client from making the server buffer without end).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most headers a request may have.
const MAX_HEADERS: usize = 64;

/// A stream that first yields bytes already read from it (the request
/// head) and then reads on; writes go straight through.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, whose first bytes `prefix` were already taken from it.
    pub const fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            read: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What matters of a request head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// `Host`.
    pub host: Option<String>,
    /// `Origin`, sent by browsers.
    pub origin: Option<String>,
    /// Whether it asks for `Upgrade: websocket`.
    pub upgrade: bool,
}

/// Reads a request head (up to the blank line) from `stream`.
///
/// Returns the head and every byte read (the head and whatever followed
/// it), for [`Prefixed`].
///
/// # Errors
/// [`WsError::Closed`] when the stream ends first; [`WsError::BadRequest`]
/// for a head above [`MAX_HEAD_BYTES`] or one that is not HTTP/1.x;
/// [`WsError::Io`].
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(RequestHead, Vec<u8>), WsError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(WsError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(|v| v.trim().to_owned())
                };
                let upgrade =
                    header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
                let head = RequestHead {
                    method: request.method.unwrap_or_default().to_owned(),
                    path: request.path.unwrap_or_default().to_owned(),
                    host: header("host"),
                    origin: header("origin"),
                    upgrade,
                };
                return Ok((head, buf));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {}
            Ok(httparse::Status::Partial) => {
                return Err(WsError::BadRequest(format!(
                    "request head above {MAX_HEAD_BYTES} bytes"
                )));
            }
            Err(e) => return Err(WsError::BadRequest(e.to_string())),
        }
    }
}

/// Writes a whole HTTP/1.1 response and shuts the stream down for writing.
///
/// # Errors
/// [`WsError::Io`].
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<(), WsError> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    stream.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_head_and_gives_every_byte_back() {
        let raw =
            b"GET /x HTTP/1.1\r\nHost: a:1\r\nOrigin: http://a:1\r\nUpgrade: WebSocket\r\n\r\nrest";
        let (head, bytes) = read_head(&mut &raw[..]).await.expect("parses");
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/x");
        assert_eq!(head.host.as_deref(), Some("a:1"));
        assert_eq!(head.origin.as_deref(), Some("http://a:1"));
        assert!(head.upgrade);
        let mut replay = Prefixed::new(bytes, &b" and more"[..]);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.expect("reads");
        assert!(all.ends_with(b"rest and more"), "{all:?}");
        assert!(matches!(
            read_head(&mut &b"\x00\x01garbage\r\n\r\n"[..]).await,
            Err(WsError::BadRequest(_))
        ));
        assert!(matches!(
            read_head(&mut &b"GET / HTTP/1.1\r\n"[..]).await,
            Err(WsError::Closed)
        ));
    }
}

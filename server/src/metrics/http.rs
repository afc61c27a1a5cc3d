//! The metrics listener (`--metrics-addr`): `GET /metrics` (Prometheus
//! text format), `GET /healthz` (the process serves: always 200) and
//! `GET /readyz` (200 once [`Metrics::readiness`] holds, else 503 with the
//! reason). One request per connection; anything else is 404 or 405.
//!
//! TLS: [`serve_connection`] takes any byte stream, so a TLS acceptor
//! wraps the accepted socket before handing it over (see
//! [`MetricsConfig`]).

use super::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The longest request head read, and how long a client has to send it.
const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how the metrics endpoint listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The listening address; `None`: no metrics endpoint.
    pub addr: Option<SocketAddr>,
}

impl MetricsConfig {
    /// The default port of `distlock serve --metrics-addr` on loopback.
    pub const DEFAULT_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);
}

/// A scrape's request for the lock table's sizes, which the node task
/// counts (one pass over the locks) only when asked.
#[derive(Debug, Default)]
pub(crate) struct CensusRequest {
    wanted: AtomicBool,
    done: tokio::sync::Notify,
}

impl CensusRequest {
    /// Whether a scrape asked (and clears the request).
    pub(crate) fn wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn done(&self) {
        self.done.notify_waiters();
    }

    /// Asks for a census and waits (a little) for the node task to make it.
    async fn ask(&self) {
        let done = self.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        self.wanted.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(super::PUBLISH_EVERY * 3, done).await;
    }
}

/// Serves the endpoint on `listener` for ever.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve_connection(stream, Arc::clone(&metrics)));
    }
}

/// Answers one request on `stream` (plain TCP, or a TLS stream wrapped
/// around it), then closes it.
pub async fn serve_connection<S>(mut stream: S, metrics: Arc<Metrics>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream, &mut buf)).await;
    let (status, content_type, body) = match head {
        Ok(Some((method, path))) => route(&method, &path, &metrics).await,
        Ok(None) => (400, "text/plain", "bad request\n".to_owned()),
        Err(_) => return,
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn route(method: &str, path: &str, metrics: &Metrics) -> (u16, &'static str, String) {
    let path = path.split('?').next().unwrap_or(path);
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET\n".to_owned());
    }
    match path {
        "/metrics" => {
            metrics.census.ask().await;
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        }
        "/healthz" | "/livez" => (200, "text/plain", "ok\n".to_owned()),
        "/readyz" => match metrics.readiness() {
            Ok(()) => (200, "text/plain", "ready\n".to_owned()),
            Err(why) => (503, "text/plain", format!("not ready: {why}\n")),
        },
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    }
}

/// Reads until the end of the request head; its method and path, or
/// `None` for a malformed or oversized head.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Option<(String, String)> {
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                return Some((req.method?.to_owned(), req.path?.to_owned()));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return None,
        }
    }
}

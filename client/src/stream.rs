//! Dialling one server: TCP, then TLS when the client is configured with
//! it ([`ClientTls`]): every connection of the client library and of the
//! operator commands opens here.

use distlock_transport_tcp::tls::{ClientTls, MaybeTls};
use std::io;
use std::time::Duration;
use tokio::net::TcpStream;

/// A connection to a server, plain or TLS.
pub type ServerStream = MaybeTls<TcpStream>;

/// Dials `addr` (`HOST:PORT`) within `limit`: TCP, then, with `tls`, a TLS
/// handshake that verifies the server's certificate names `HOST`.
///
/// # Errors
/// A refused or timed-out dial; a failed TLS handshake, as an
/// [`io::Error`] whose message says what to fix (a missing `--tls-ca`, a
/// server that does not speak TLS, ...).
pub async fn open_stream(
    addr: &str,
    tls: Option<&ClientTls>,
    limit: Duration,
) -> io::Result<ServerStream> {
    let work = async {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => Ok(MaybeTls::Plain(stream)),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                tls.connect(stream, host).await.map_err(io::Error::other)
            }
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {addr} timed out"),
        )),
    }
}

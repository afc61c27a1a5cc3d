//! distlock's TCP transport (PROTOCOL.md §2.1 and §3): length-prefixed postcard frames
//! over any byte stream, and the versioned handshakes of the client and
//! peer links.
//!
//! - [`frame`]: [`FrameReader`] and [`FrameWriter`] (a big-endian `u32`
//!   length, then the postcard payload; lengths checked before allocating;
//!   batched writes, flushed once), and the idle deadline
//!   [`read_frame_timeout`].
//! - [`handshake`]: [`client_handshake`], [`accept_client`],
//!   [`peer_handshake`] and [`accept_peer`], each under a deadline.
//! - [`error`]: [`FrameError`] and [`TransportError`].
//! - [`tls`]: TLS sessions under the frames ([`tls::MaybeTls`]), a
//!   listener's reloadable certificates ([`tls::ServerTls`]) and a
//!   client's trust ([`tls::ClientTls`]).
//! - [`addr`]: [`HostPort`], the `HOST:PORT` addresses (DNS names
//!   included) that servers and clients dial.
//!
//! All IO goes through the workspace `tokio` (madsim-tokio), so the same
//! code runs over real sockets and in simulation. Streams are split with
//! `tokio::io::split` (madsim's `TcpStream` has no `into_split`), and every
//! batch of frames must be flushed (madsim delivers only on flush).

pub mod addr;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod meter;
pub mod tls;

pub use addr::{AddrError, HostPort};
pub use error::{FrameError, TransportError};
pub use frame::{FrameReader, FrameWriter, PREFIX_BYTES, read_frame_timeout};
pub use handshake::{
    Admission, ClientHello, DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, HandshakeConfig,
    PendingClient, Reader, WelcomeInfo, Writer, accept_client, accept_peer, client_handshake,
    looks_like_tls, peer_handshake, send_peer_error,
};
pub use meter::{Meter, Metered};

//! distlock's WebSocket transport (PROTOCOL.md §2.2): the client protocol for
//! browsers and edge services, and the port that serves the dashboard.
//!
//! One protocol frame per WebSocket message: a **binary** message carries
//! the frame's postcard encoding (a TCP frame without its length prefix), a
//! **text** message its JSON (serde_json of the same `ClientFrame` and
//! `ServerFrame` types). A connection speaks the encoding of its `Hello`:
//! every frame the server sends it comes in that encoding. The opening is
//! the TCP one (`Hello`, then `Welcome` or `Error` and a close), with the
//! same deadline, the same 1 MiB limit (tungstenite refuses a longer
//! message or frame as soon as its length is announced) and the same
//! refusals.
//!
//! - [`server`]: [`accept_ws_client`] reads the HTTP request first: a plain
//!   `GET /` gets the configured page (the dashboard), an upgrade is checked
//!   against the [`OriginPolicy`], then the `Hello` against the
//!   [`Admission`](distlock_transport_tcp::Admission).
//! - [`client`]: [`ws_client_handshake`] upgrades a stream the caller
//!   dialled and opens the protocol.
//! - [`link`]: [`WsReader`] and [`WsWriter`], the framed halves.
//! - [`codec`]: one frame to and from one message.
//! - [`dashboard`]: the page.
//!
//! Built on `tokio_tungstenite::{accept_async, client_async}` over streams
//! we provide (never its `connect`, which would use the real network), and
//! on the workspace `tokio` (madsim-tokio), so it runs in the simulation as
//! it does in production.

pub mod client;
pub mod codec;
pub mod dashboard;
pub mod error;
pub mod host;
pub mod http;
pub mod link;
pub mod origin;
pub mod server;

pub use client::{ws_client_handshake, ws_upgrade};
pub use codec::{Decoded, Encoding, decode_message, encode_message};
pub use dashboard::DASHBOARD_HTML;
pub use error::WsError;
/// The stream combinators its connections are used with, for tests.
pub use futures_util;
pub use host::HostPolicy;
pub use http::Prefixed;
pub use link::{WsReader, WsWriter};
pub use origin::OriginPolicy;
pub use server::{PendingWsClient, ServerReader, ServerWriter, WsServerConfig, accept_ws_client};
/// The WebSocket library, for tests that send what no client library would.
pub use tokio_tungstenite;

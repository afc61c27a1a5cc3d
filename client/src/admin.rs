//! One-shot requests to one server over a fresh connection, for the
//! operator commands (`status`, `members`, `dev`) and the simulation's
//! operator: connect, handshake, send each request in turn, read each
//! answer, with a deadline on the whole exchange.

use crate::stream::open_stream;
use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterStatusView, ProtoError, Request, RequestBody, RequestId,
    ResponseBody, ServerFrame,
};
use distlock_transport_tcp::HostPort;
use distlock_transport_tcp::tls::ClientTls;
use distlock_transport_tcp::{HandshakeConfig, TransportError, WelcomeInfo, client_handshake};
use std::time::Duration;

/// How long one server gets to connect and answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a server could not answer a request.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Connecting failed.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The connection failed or the server broke the protocol.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered with an error.
    #[error("{0}")]
    Refused(ProtoError),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered something else than was asked.
    #[error("unexpected answer from the server")]
    Unexpected,
}

/// Connects to `addr`, sends each request in turn on one connection and
/// returns the welcome and the answers.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use distlock_client::admin::ask;
/// use distlock_core::proto::{RequestBody, ResponseBody};
///
/// let (welcome, answers) = ask(&"node1.example.com:7001".parse()?, vec![RequestBody::ClusterStatus]).await?;
/// println!("node {} answered", welcome.node_id);
/// if let Some(ResponseBody::ClusterStatus(view)) = answers.first() {
///     println!("leader: {:?}", view.leader);
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// When connecting, the handshake or any request fails.
pub async fn ask(
    addr: &HostPort,
    bodies: Vec<RequestBody>,
) -> Result<(WelcomeInfo, Vec<ResponseBody>), AskError> {
    ask_with(addr, None, None, bodies).await
}

/// [`ask`] over TLS when `tls` is given, presenting `auth` in the `Hello`
/// (servers with authentication on refuse a connection without valid
/// credentials).
///
/// # Errors
/// As [`ask`]; a failed TLS handshake is [`AskError::Connect`].
pub async fn ask_with(
    addr: &HostPort,
    tls: Option<&ClientTls>,
    auth: Option<AuthToken>,
    bodies: Vec<RequestBody>,
) -> Result<(WelcomeInfo, Vec<ResponseBody>), AskError> {
    let work = async {
        let stream = open_stream(addr.as_str(), tls, ASK_TIMEOUT)
            .await
            .map_err(AskError::Connect)?;
        let (mut reader, mut writer, welcome) =
            client_handshake(stream, None, auth, &HandshakeConfig::default()).await?;
        let mut answers = Vec::with_capacity(bodies.len());
        for (n, body) in (1..).zip(bodies) {
            let id = RequestId(n);
            writer
                .write_frame(&ClientFrame::Request(Request { id, body }))
                .await
                .map_err(TransportError::from)?;
            writer.flush().await.map_err(TransportError::from)?;
            loop {
                match reader
                    .read_frame::<ServerFrame>()
                    .await
                    .map_err(TransportError::from)?
                {
                    Some(ServerFrame::Response(r)) if r.id == id => {
                        answers.push(r.result.map_err(AskError::Refused)?);
                        break;
                    }
                    Some(ServerFrame::Error(e)) => return Err(AskError::Refused(e)),
                    Some(_) => {}
                    None => return Err(TransportError::Closed.into()),
                }
            }
        }
        Ok((welcome, answers))
    };
    tokio::time::timeout(ASK_TIMEOUT, work)
        .await
        .unwrap_or(Err(AskError::Timeout(ASK_TIMEOUT)))
}

/// The cluster as the server at `addr` sees it.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let view = distlock_client::admin::cluster_status(&"node1.example.com:7001".parse()?).await?;
/// println!("term {}, leader {:?}, {} members", view.term, view.leader, view.members.len());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`ask`]; [`AskError::Unexpected`] for another answer.
pub async fn cluster_status(addr: &HostPort) -> Result<ClusterStatusView, AskError> {
    cluster_status_with(addr, None, None).await
}

/// [`cluster_status`] over TLS when `tls` is given, presenting `auth`.
///
/// # Errors
/// As [`cluster_status`].
pub async fn cluster_status_with(
    addr: &HostPort,
    tls: Option<&ClientTls>,
    auth: Option<AuthToken>,
) -> Result<ClusterStatusView, AskError> {
    let (_, answers) = ask_with(addr, tls, auth, vec![RequestBody::ClusterStatus]).await?;
    match answers.into_iter().next() {
        Some(ResponseBody::ClusterStatus(view)) => Ok(view),
        _ => Err(AskError::Unexpected),
    }
}

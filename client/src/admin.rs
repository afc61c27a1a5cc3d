//! One-shot requests to one server over a fresh connection, for the
//! operator commands (`status`, `members`, `dev`) and the simulation's
//! operator: connect, handshake, send each request in turn, read each
//! answer, with a deadline on the whole exchange.

use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterStatusView, ProtoError, Request, RequestBody, RequestId,
    ResponseBody, ServerFrame,
};
use distlock_transport_tcp::HostPort;
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
    ask_as(addr, None, bodies).await
}

/// [`ask`], presenting `auth` in the `Hello` (servers with authentication
/// on refuse a connection without valid credentials).
///
/// # Errors
/// As [`ask`].
pub async fn ask_as(
    addr: &HostPort,
    auth: Option<AuthToken>,
    bodies: Vec<RequestBody>,
) -> Result<(WelcomeInfo, Vec<ResponseBody>), AskError> {
    let work = async {
        let stream = tokio::net::TcpStream::connect(addr.as_str())
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
    let (_, answers) = ask(addr, vec![RequestBody::ClusterStatus]).await?;
    match answers.into_iter().next() {
        Some(ResponseBody::ClusterStatus(view)) => Ok(view),
        _ => Err(AskError::Unexpected),
    }
}

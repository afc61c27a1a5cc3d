//! Talking to servers: a raw wire-protocol connection ([`Conn`]) and
//! sessions of the Rust client library ([`client_session`]).

use crate::PATIENCE;
use crate::wait::within;
use distlock_client::{Client, ClientOptions, Session};
use distlock_core::locks::{ClientCommand, FencingToken, Mode, Outcome, Seq, SessionId, Wait};
use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterStatusView, LockStatusView, ProtoError, Request, RequestBody,
    RequestId, ResponseBody, ServerFrame,
};
use distlock_transport_tcp::{
    HandshakeConfig, Reader, TransportError, WelcomeInfo, Writer, client_handshake,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long one request may go unanswered before [`Conn::ask`] sends it
/// again (a request can be lost with a forward to a leader that died).
const RESEND_AFTER: Duration = Duration::from_secs(3);

/// A raw wire-protocol connection to one server, past the handshake.
#[derive(Debug)]
pub struct Conn {
    /// The reading half.
    pub reader: Reader<TcpStream>,
    /// The writing half.
    pub writer: Writer<TcpStream>,
    /// What the server said in its `Welcome`.
    pub welcome: WelcomeInfo,
    next_id: u64,
}

impl Conn {
    /// One attempt to connect and shake hands, within 2 s.
    pub async fn try_connect(addr: SocketAddr) -> Option<Self> {
        let attempt = async {
            let stream = TcpStream::connect(addr).await.ok()?;
            let (reader, writer, welcome) =
                client_handshake(stream, None, None, &HandshakeConfig::default())
                    .await
                    .ok()?;
            Some(Self {
                reader,
                writer,
                welcome,
                next_id: 1,
            })
        };
        tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .ok()
            .flatten()
    }

    /// One attempt to connect presenting `auth` in the `Hello`, within
    /// 5 s; the transport's error (a refusal among them) if it fails.
    ///
    /// # Errors
    /// As [`client_handshake`], and a timeout as
    /// [`TransportError::HandshakeTimeout`].
    pub async fn connect_as(
        addr: SocketAddr,
        auth: Option<AuthToken>,
    ) -> Result<Self, TransportError> {
        let attempt = async {
            let stream = TcpStream::connect(addr).await?;
            let (reader, writer, welcome) =
                client_handshake(stream, None, auth, &HandshakeConfig::default()).await?;
            Ok(Self {
                reader,
                writer,
                welcome,
                next_id: 1,
            })
        };
        let limit = Duration::from_secs(5);
        tokio::time::timeout(limit, attempt)
            .await
            .unwrap_or(Err(TransportError::HandshakeTimeout(limit)))
    }

    /// Connects once the server accepts.
    ///
    /// # Panics
    /// When it does not within [`PATIENCE`].
    pub async fn connect(addr: SocketAddr) -> Self {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(c) = Self::try_connect(addr).await {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "server at {addr} did not accept within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `body` once and waits up to `limit` for its answer; `None` if
    /// none came or the connection failed.
    pub async fn ask_once(
        &mut self,
        body: RequestBody,
        limit: Duration,
    ) -> Option<Result<ResponseBody, ProtoError>> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let exchange = async {
            self.writer
                .write_frame(&ClientFrame::Request(Request { id, body }))
                .await
                .ok()?;
            self.writer.flush().await.ok()?;
            loop {
                match self.reader.read_frame::<ServerFrame>().await.ok()?? {
                    ServerFrame::Response(r) if r.id == id => return Some(r.result),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(limit, exchange).await.ok().flatten()
    }

    /// Sends `body` and waits for its answer, sending it again (with a new
    /// request id; log requests are idempotent by their seq) while there
    /// is no leader yet or no answer comes.
    ///
    /// # Panics
    /// When the connection fails, or there is no final answer within
    /// [`PATIENCE`].
    pub async fn ask(&mut self, body: RequestBody) -> Result<ResponseBody, ProtoError> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let id = RequestId(self.next_id);
            self.next_id += 1;
            self.writer
                .write_frame(&ClientFrame::Request(Request {
                    id,
                    body: body.clone(),
                }))
                .await
                .expect("send");
            self.writer.flush().await.expect("flush");
            let reader = &mut self.reader;
            let read = async {
                loop {
                    match reader
                        .read_frame::<ServerFrame>()
                        .await
                        .expect("read")
                        .expect("connection open")
                    {
                        ServerFrame::Response(r) if r.id == id => break r.result,
                        _ => {}
                    }
                }
            };
            let Ok(result) = tokio::time::timeout(RESEND_AFTER, read).await else {
                assert!(
                    Instant::now() < deadline,
                    "no answer to {body:?} within {PATIENCE:?}"
                );
                continue;
            };
            match result {
                Err(ProtoError::NoLeader | ProtoError::NotLeader { .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// The cluster's status as `addr` reports it, in one attempt.
    pub async fn status_once(addr: SocketAddr) -> Option<ClusterStatusView> {
        let mut conn = Self::try_connect(addr).await?;
        match conn
            .ask_once(RequestBody::ClusterStatus, Duration::from_secs(2))
            .await
        {
            Some(Ok(ResponseBody::ClusterStatus(view))) => Some(view),
            _ => None,
        }
    }

    /// The cluster's status (a linearizable read).
    ///
    /// # Panics
    /// On any other answer.
    pub async fn cluster_status(&mut self) -> ClusterStatusView {
        match self.ask(RequestBody::ClusterStatus).await {
            Ok(ResponseBody::ClusterStatus(view)) => view,
            other => panic!("cluster status answered {other:?}"),
        }
    }

    /// A lock's holders and waiters (a linearizable read); `None` for a
    /// lock nobody holds or waits for.
    ///
    /// # Panics
    /// On any other answer.
    pub async fn lock_status(&mut self, lock: &str) -> Option<LockStatusView> {
        match self
            .ask(RequestBody::LockStatus {
                lock: lock.to_owned(),
            })
            .await
        {
            Ok(ResponseBody::LockStatus(view)) => view,
            other => panic!("status of {lock} answered {other:?}"),
        }
    }

    /// Polls `lock`'s status until `pred` holds for it, and returns that
    /// status.
    ///
    /// # Panics
    /// When it does not within [`PATIENCE`]; the message names `what` and
    /// shows the last status seen.
    pub async fn wait_lock(
        &mut self,
        lock: &str,
        what: &str,
        pred: impl Fn(Option<&LockStatusView>) -> bool,
    ) -> Option<LockStatusView> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let view = self.lock_status(lock).await;
            if pred(view.as_ref()) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting until {what}; {lock}: {view:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens a session with `ttl_ms`.
    ///
    /// # Panics
    /// On any answer but a new session.
    pub async fn open_session(&mut self, nonce: u128, ttl_ms: u64) -> SessionId {
        match self
            .ask(RequestBody::Log(ClientCommand::OpenSession {
                nonce,
                ttl_ms,
            }))
            .await
        {
            Ok(ResponseBody::SessionOpened { session, .. }) => session,
            other => panic!("open answered {other:?}"),
        }
    }

    /// Proves on this connection that it speaks for `session`, opened
    /// with `nonce` (as a client does after reconnecting).
    ///
    /// # Panics
    /// On any answer but `Attached`.
    pub async fn attach(&mut self, session: SessionId, nonce: u128) {
        match self
            .ask(RequestBody::Attach {
                session,
                secret: nonce,
            })
            .await
        {
            Ok(ResponseBody::Attached { session: s }) if s == session => {}
            other => panic!("attach answered {other:?}"),
        }
    }

    /// Sends an exclusive `try` acquire of `lock` as request `seq` of
    /// `session` and returns the answer.
    pub async fn acquire(
        &mut self,
        session: SessionId,
        seq: u64,
        lock: &str,
    ) -> Result<ResponseBody, ProtoError> {
        self.ask(acquire_body(session, seq, lock)).await
    }

    /// As [`Self::acquire`], expecting a grant.
    ///
    /// # Panics
    /// On any other answer.
    pub async fn acquire_try(&mut self, session: SessionId, seq: u64, lock: &str) -> FencingToken {
        granted(self.acquire(session, seq, lock).await)
    }

    /// Releases `lock` held with `token`, as request `seq` of `session`.
    pub async fn release(
        &mut self,
        session: SessionId,
        seq: u64,
        lock: &str,
        token: FencingToken,
    ) -> Result<ResponseBody, ProtoError> {
        self.ask(RequestBody::Log(ClientCommand::Release {
            session,
            seq: Seq(seq),
            ack: Seq(seq),
            lock: lock.to_owned(),
            token,
        }))
        .await
    }
}

/// An exclusive `try` acquire of `lock` as request `seq` of `session`.
#[must_use]
pub fn acquire_body(session: SessionId, seq: u64, lock: &str) -> RequestBody {
    RequestBody::Log(ClientCommand::Acquire {
        session,
        seq: Seq(seq),
        ack: Seq(seq),
        lock: lock.to_owned(),
        mode: Mode::Exclusive,
        wait: Wait::Try,
        lock_delay_ms: 0,
    })
}

/// The token of a grant.
///
/// # Panics
/// When `answer` is not a grant.
#[must_use]
pub fn granted(answer: Result<ResponseBody, ProtoError>) -> FencingToken {
    match answer {
        Ok(ResponseBody::Lock(Outcome::Granted { token })) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// A client-library session with `ttl` on a new client of `servers`
/// (dialled in order), with default options.
///
/// # Panics
/// When no server accepts or no session opens within [`PATIENCE`].
pub async fn client_session(servers: &[SocketAddr], ttl: Duration) -> Session {
    client_session_with(servers, ttl, ClientOptions::default()).await
}

/// Client options that keep a client on the server it reached: it does
/// not move to the leader a follower names, so a test can put it where it
/// wants it.
#[must_use]
pub fn staying_put() -> ClientOptions {
    ClientOptions {
        session: distlock_core::client::Config {
            follow_leader: false,
            ..distlock_core::client::Config::default()
        },
        ..ClientOptions::default()
    }
}

/// As [`client_session`], with `options`.
///
/// # Panics
/// When no server accepts or no session opens within [`PATIENCE`].
pub async fn client_session_with(
    servers: &[SocketAddr],
    ttl: Duration,
    options: ClientOptions,
) -> Session {
    let client = Client::connect_within(servers.to_vec(), options, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("no server of {servers:?} accepted within {PATIENCE:?}: {e}"));
    within("opening a session", PATIENCE, client.open_session(ttl))
        .await
        .expect("session opened")
}

/// Waits until `session`'s lease has been extended by a keepalive sent
/// after `since`: proof that the cluster, as it is now, acknowledged the
/// session (its client failed over if its server went away). `ttl` is the
/// session's TTL; the client's lease is `ttl × (1 − 2·1%)` from the send.
///
/// # Panics
/// When the session is lost, or no such keepalive is acknowledged within
/// [`PATIENCE`].
pub async fn wait_keepalive_after(session: &Session, since: tokio::time::Instant, ttl: Duration) {
    // A keepalive sent before `since` ends its lease before this; one
    // sent after ends it after (less 1 ms for the microsecond rounding).
    let threshold = since + ttl * 98 / 100 - Duration::from_millis(1);
    let id = session.id();
    crate::wait::wait_until_async(
        &format!("a keepalive of session {id:?} sent after the fault is acknowledged"),
        PATIENCE,
        || {
            assert!(!session.is_lost(), "session {id:?} was lost");
            std::future::ready(session.lease_deadline().filter(|d| *d > threshold))
        },
    )
    .await;
}

//! Black-box tests of the `distlock` binary: real processes on loopback,
//! spoken to over the wire protocol.

mod common;

use common::{Cluster, Server, free_addr};
use distlock_core::locks::{ClientCommand, FencingToken, Mode, Outcome, Seq, SessionId, Wait};
use distlock_core::proto::{
    ClientFrame, ProtoError, Request, RequestBody, RequestId, ResponseBody, ServerFrame,
};
use distlock_transport_tcp::{HandshakeConfig, Reader, Writer, client_handshake};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

type Conn = (Reader<TcpStream>, Writer<TcpStream>);

/// Connects once the server accepts, within a deadline.
async fn connect(addr: SocketAddr) -> Conn {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(stream) = TcpStream::connect(addr).await {
            if let Ok((r, w, _)) =
                client_handshake(stream, None, None, &HandshakeConfig::default()).await
            {
                return (r, w);
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {addr} did not accept within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a request and waits for its answer, retrying while there is no
/// leader yet (the server is still electing itself after a start).
async fn ask(conn: &mut Conn, id: u64, body: RequestBody) -> Result<ResponseBody, ProtoError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let rid = RequestId(id * 1000 + attempt);
        conn.1
            .write_frame(&ClientFrame::Request(Request {
                id: rid,
                body: body.clone(),
            }))
            .await
            .expect("send");
        conn.1.flush().await.expect("flush");
        // A request can be lost with a connection or a forward: wait a
        // while, then ask again (requests are idempotent by their seq).
        let read = async {
            loop {
                match conn
                    .0
                    .read_frame::<ServerFrame>()
                    .await
                    .expect("read")
                    .expect("connection open")
                {
                    ServerFrame::Response(r) if r.id == rid => break r.result,
                    _ => {}
                }
            }
        };
        let Ok(result) = tokio::time::timeout(Duration::from_secs(3), read).await else {
            assert!(
                Instant::now() < deadline,
                "no answer to {body:?} within 20 s"
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

fn acquire(session: SessionId, seq: u64, lock: &str) -> RequestBody {
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

async fn open(conn: &mut Conn, nonce: u128) -> SessionId {
    match ask(
        conn,
        1,
        RequestBody::Log(ClientCommand::OpenSession {
            nonce,
            ttl_ms: 30_000,
        }),
    )
    .await
    {
        Ok(ResponseBody::SessionOpened { session, .. }) => session,
        other => panic!("open answered {other:?}"),
    }
}

/// Asserts (through a linearizable read) that `lock` is held by `session`
/// with `token`.
async fn assert_held(
    conn: &mut Conn,
    id: u64,
    lock: &str,
    session: SessionId,
    token: FencingToken,
) {
    match ask(
        conn,
        id,
        RequestBody::LockStatus {
            lock: lock.to_owned(),
        },
    )
    .await
    {
        Ok(ResponseBody::LockStatus(Some(status))) => {
            assert_eq!(status.holders.len(), 1, "{status:?}");
            assert_eq!(
                (status.holders[0].session, status.holders[0].token),
                (session, token)
            );
        }
        other => panic!("status of {lock} answered {other:?}"),
    }
}

fn granted(r: Result<ResponseBody, ProtoError>) -> FencingToken {
    match r {
        Ok(ResponseBody::Lock(Outcome::Granted { token })) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// A lock acknowledged before a kill -9 is still held after the restart,
/// and tokens continue upward.
#[tokio::test]
async fn locks_survive_kill_9_and_tokens_continue_upward() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (client, peer) = (free_addr(), free_addr());
    let mut server = Server::start(dir.path(), client, peer, &[]);
    let mut conn = connect(server.client).await;
    let session = open(&mut conn, 7).await;
    let t1 = granted(ask(&mut conn, 2, acquire(session, 1, "db")).await);
    server.kill();
    drop(conn);

    let server = Server::start(dir.path(), client, peer, &[]);
    let mut conn = connect(server.client).await;
    assert_held(&mut conn, 3, "db", session, t1).await;
    let release = RequestBody::Log(ClientCommand::Release {
        session,
        seq: Seq(2),
        ack: Seq(2),
        lock: "db".to_owned(),
        token: t1,
    });
    assert_eq!(
        ask(&mut conn, 4, release).await,
        Ok(ResponseBody::Lock(Outcome::Released))
    );
    let t2 = granted(ask(&mut conn, 5, acquire(session, 3, "db")).await);
    assert!(t2 > t1, "token {t2} after {t1}");
}

/// Malformed and oversized frames get an error and change nothing.
#[tokio::test]
async fn bad_frames_get_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), free_addr(), free_addr(), &[]);
    let mut good = connect(server.client).await;
    let session = open(&mut good, 9).await;
    let t = granted(ask(&mut good, 2, acquire(session, 1, "x")).await);

    for payload in [vec![0xff_u8; 16], vec![1, 200, 200, 200, 200, 200]] {
        let (mut r, w) = connect(server.client).await;
        let mut raw = w.into_inner();
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        raw.write_all(&frame).await.expect("write garbage");
        raw.flush().await.expect("flush");
        let answer = r.read_frame::<ServerFrame>().await.expect("read");
        assert!(
            matches!(
                answer,
                Some(ServerFrame::Error(ProtoError::Malformed { .. }))
            ),
            "{answer:?}"
        );
    }
    let (mut r, w) = connect(server.client).await;
    let mut raw = w.into_inner();
    raw.write_all(&(2_u32 << 20).to_be_bytes())
        .await
        .expect("write an oversized prefix");
    raw.flush().await.expect("flush");
    let answer = r.read_frame::<ServerFrame>().await.expect("read");
    assert!(
        matches!(
            answer,
            Some(ServerFrame::Error(ProtoError::FrameTooLarge { .. }))
        ),
        "{answer:?}"
    );

    // Nothing changed: the lock is still held with the same token.
    match ask(
        &mut good,
        3,
        RequestBody::LockStatus {
            lock: "x".to_owned(),
        },
    )
    .await
    {
        Ok(ResponseBody::LockStatus(Some(status))) => {
            assert_eq!(status.holders.len(), 1);
            assert_eq!(status.holders[0].token, t);
        }
        other => panic!("status answered {other:?}"),
    }
}

/// A bad configuration gets a clear message and a failing exit status.
#[test]
fn bad_configuration_gets_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(["serve", "--id", "2", "--peers", "1=127.0.0.1:1"])
        .output()
        .expect("run distlock");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--peers must include this server's own id 2"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(["serve", "--peers", "1=not-an-address"])
        .output()
        .expect("run distlock");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ID=HOST:PORT"));
}

/// Three servers: kill -9 the leader while a lock is held; the lock and its
/// token survive on the others, and the next grant's token is higher.
#[tokio::test]
async fn three_servers_survive_the_leader_being_killed() {
    let mut cluster = Cluster::start(3);
    let clients = cluster.clients.clone();
    let mut conn = connect(clients[0]).await;
    let session = open(&mut conn, 11).await;
    let t1 = granted(ask(&mut conn, 2, acquire(session, 1, "shared-db")).await);
    let leader = match ask(&mut conn, 3, RequestBody::ClusterStatus).await {
        Ok(ResponseBody::ClusterStatus(s)) => s.leader.expect("a leader"),
        other => panic!("status answered {other:?}"),
    };
    let leader_slot = usize::try_from(leader.0 - 1).expect("id");
    if let Some(mut s) = cluster.servers[leader_slot].take() {
        s.kill();
    }
    let survivor = (0..3).find(|&i| i != leader_slot).expect("a survivor");
    let mut conn = connect(clients[survivor]).await;
    assert_held(&mut conn, 4, "shared-db", session, t1).await;
    let other = open(&mut conn, 12).await;
    let t2 = granted(ask(&mut conn, 5, acquire(other, 1, "another")).await);
    assert!(t2 > t1, "token {t2} after {t1}");
}

/// SIGTERM on the leader: it hands leadership over and exits within a few
/// seconds; the lock and its token stay with the cluster.
#[tokio::test]
async fn sigterm_on_the_leader_hands_over_and_exits() {
    let mut cluster = Cluster::start(3);
    let clients = cluster.clients.clone();
    let mut conn = connect(clients[0]).await;
    let session = open(&mut conn, 21).await;
    let t1 = granted(ask(&mut conn, 2, acquire(session, 1, "graceful")).await);
    let leader = match ask(&mut conn, 3, RequestBody::ClusterStatus).await {
        Ok(ResponseBody::ClusterStatus(s)) => s.leader.expect("a leader"),
        other => panic!("status answered {other:?}"),
    };
    let slot = usize::try_from(leader.0 - 1).expect("id");
    let server = cluster.servers[slot].as_mut().expect("running");
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = server.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "graceful exit: {exit:?}");
    let survivor = (0..3).find(|&i| i != slot).expect("a survivor");
    let mut conn = connect(clients[survivor]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ask(&mut conn, 4, RequestBody::ClusterStatus).await {
            Ok(ResponseBody::ClusterStatus(s)) if s.leader.is_some_and(|l| l != leader) => break,
            other => assert!(Instant::now() < deadline, "no new leader: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_held(&mut conn, 5, "graceful", session, t1).await;
}

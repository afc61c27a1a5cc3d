//! Black-box tests of the `distlock` binary: real processes on loopback,
//! spoken to over the wire protocol.

use distlock_core::locks::{FencingToken, Outcome, SessionId};
use distlock_core::proto::{ProtoError, ResponseBody, ServerFrame};
use distlock_tests::{Cluster, Conn, PATIENCE, Server, distlock, run_within, wait_until};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Asserts (through a linearizable read) that `lock` is held by `session`
/// with `token`.
async fn assert_held(conn: &mut Conn, lock: &str, session: SessionId, token: FencingToken) {
    let status = conn
        .lock_status(lock)
        .await
        .unwrap_or_else(|| panic!("{lock} is free"));
    assert_eq!(status.holders.len(), 1, "{status:?}");
    assert_eq!(
        (status.holders[0].session, status.holders[0].token),
        (session, token)
    );
}

/// A lock acknowledged before a kill -9 is still held after the restart,
/// and tokens continue upward.
#[tokio::test]
async fn locks_survive_kill_9_and_tokens_continue_upward() {
    let mut server = Server::single();
    let mut conn = Conn::connect(server.client_addr).await;
    let session = conn.open_session(7, 30_000).await;
    let t1 = conn.acquire_try(session, 1, "db").await;
    server.kill();
    drop(conn);

    server.restart();
    let mut conn = Conn::connect(server.client_addr).await;
    assert_held(&mut conn, "db", session, t1).await;
    conn.attach(session, 7).await;
    assert_eq!(
        conn.release(session, 2, "db", t1).await,
        Ok(ResponseBody::Lock(Outcome::Released))
    );
    let t2 = conn.acquire_try(session, 3, "db").await;
    assert!(t2 > t1, "token {t2} after {t1}");
}

/// Malformed and oversized frames get an error and change nothing.
#[tokio::test]
async fn bad_frames_get_errors_and_change_nothing() {
    let server = Server::single();
    let mut good = Conn::connect(server.client_addr).await;
    let session = good.open_session(9, 30_000).await;
    let t = good.acquire_try(session, 1, "x").await;

    for payload in [vec![0xff_u8; 16], vec![1, 200, 200, 200, 200, 200]] {
        let Conn {
            mut reader, writer, ..
        } = Conn::connect(server.client_addr).await;
        let mut raw = writer.into_inner();
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        raw.write_all(&frame).await.expect("write garbage");
        raw.flush().await.expect("flush");
        let answer = reader.read_frame::<ServerFrame>().await.expect("read");
        assert!(
            matches!(
                answer,
                Some(ServerFrame::Error(ProtoError::Malformed { .. }))
            ),
            "{answer:?}"
        );
    }
    let Conn {
        mut reader, writer, ..
    } = Conn::connect(server.client_addr).await;
    let mut raw = writer.into_inner();
    raw.write_all(&(2_u32 << 20).to_be_bytes())
        .await
        .expect("write an oversized prefix");
    raw.flush().await.expect("flush");
    let answer = reader.read_frame::<ServerFrame>().await.expect("read");
    assert!(
        matches!(
            answer,
            Some(ServerFrame::Error(ProtoError::FrameTooLarge { .. }))
        ),
        "{answer:?}"
    );

    // Nothing changed: the lock is still held with the same token.
    let status = good.lock_status("x").await.expect("x is held");
    assert_eq!(status.holders.len(), 1);
    assert_eq!(status.holders[0].token, t);
}

/// A bad configuration gets a clear message and a failing exit status.
#[test]
fn bad_configuration_gets_a_clear_message() {
    let limit = Duration::from_secs(20);
    let out = run_within(
        distlock().args(["serve", "--id", "2", "--peers", "1=127.0.0.1:1"]),
        limit,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--peers must include this server's own id 2"),
        "{err}"
    );
    let out = run_within(
        distlock().args(["serve", "--peers", "1=not-an-address"]),
        limit,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ID=HOST:PORT"));
    let out = run_within(distlock().args(["serve", "--busy-poll", "1s"]), limit);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--busy-poll 1s is too long: at most 10ms"),
        "{err}"
    );
}

/// Three servers: kill -9 the leader while a lock is held; the lock and its
/// token survive on the others, and the next grant's token is higher.
#[tokio::test]
async fn three_servers_survive_the_leader_being_killed() {
    leader_killed_while_a_lock_is_held(Cluster::start(3)).await;
}

/// The same with servers that busy poll (`--busy-poll`): polling changes
/// when threads sleep, never what they do.
#[tokio::test]
async fn busy_polling_servers_survive_the_leader_being_killed() {
    leader_killed_while_a_lock_is_held(Cluster::start_with(3, &["--busy-poll", "300us"])).await;
}

async fn leader_killed_while_a_lock_is_held(mut cluster: Cluster) {
    let mut conn = Conn::connect(cluster.addr(1)).await;
    let session = conn.open_session(11, 30_000).await;
    let t1 = conn.acquire_try(session, 1, "shared-db").await;
    let leader = conn.cluster_status().await.leader.expect("a leader").0;
    cluster.server(leader).kill();
    let survivor = cluster.running()[0];
    let mut conn = Conn::connect(cluster.addr(survivor)).await;
    assert_held(&mut conn, "shared-db", session, t1).await;
    let other = conn.open_session(12, 30_000).await;
    let t2 = conn.acquire_try(other, 1, "another").await;
    assert!(t2 > t1, "token {t2} after {t1}");
}

/// SIGTERM on the leader: it hands leadership over and exits within a few
/// seconds; the lock and its token stay with the cluster.
#[tokio::test]
async fn sigterm_on_the_leader_hands_over_and_exits() {
    let mut cluster = Cluster::start(3);
    let mut conn = Conn::connect(cluster.addr(1)).await;
    let session = conn.open_session(21, 30_000).await;
    let t1 = conn.acquire_try(session, 1, "graceful").await;
    let leader = conn.cluster_status().await.leader.expect("a leader").0;
    let server = cluster.server(leader);
    server.terminate();
    let exit = server.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "graceful exit: {exit:?}");
    let survivor = cluster.running()[0];
    let mut conn = Conn::connect(cluster.addr(survivor)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let view = conn.cluster_status().await;
        if view.leader.is_some_and(|l| l.0 != leader) {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_held(&mut conn, "graceful", session, t1).await;
}

/// A process that knows the cluster's name but is no member dials every
/// server's peer port as node 99 and sends a forced vote and an append a
/// million terms ahead. Every server turns it away (and says so in its
/// log) before Raft sees the frames: the term and the leader stay.
#[tokio::test]
async fn a_rogue_peer_moves_no_term() {
    use distlock_core::ids::{LogIndex, NodeId, Term};
    use distlock_core::proto::{ClusterId, PeerFrame};
    use distlock_core::raft::{Message, MessageBody};
    use distlock_transport_tcp::{HandshakeConfig, peer_handshake};

    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let mut conn = Conn::connect(cluster.addr(leader)).await;
    let before = conn.cluster_status().await;
    for id in cluster.ids() {
        let addr = cluster.server(id).peer_addr;
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the peer port accepts");
        let config = HandshakeConfig::default();
        let linked = peer_handshake(
            stream,
            ClusterId::new("distlock"),
            NodeId(99),
            None,
            &config,
        )
        .await;
        let Ok((_reader, mut writer)) = linked else {
            continue;
        };
        let far = LogIndex(1 << 40);
        let bodies = [
            MessageBody::Vote {
                last_index: far,
                last_term: Term(1_000_000),
                transfer: true,
            },
            MessageBody::Append {
                prev_index: far,
                prev_term: Term(1_000_000),
                entries: Vec::new(),
                commit: far,
                round: 1,
            },
        ];
        for body in bodies {
            let frame = PeerFrame::Raft(Message {
                from: NodeId(99),
                to: NodeId(id),
                term: Term(1_000_000),
                body,
            });
            let _ = writer.write_frame(&frame).await;
        }
        let _ = writer.flush().await;
    }
    for id in cluster.ids() {
        let server = cluster.server(id);
        wait_until("the server refuses the rogue peer", PATIENCE, || {
            server
                .log_tail(200)
                .contains("server 99 is not a member")
                .then_some(())
        });
    }
    let after = conn.cluster_status().await;
    assert_eq!((after.leader, after.term), (before.leader, before.term));
}

//! Hostile input against real servers started with their defaults:
//! - a process that reaches a peer port and claims to be a member cannot
//!   stop the cluster: the term attack (a heartbeat at term 2^64 - 1) is
//!   refused by every server, which keeps electing leaders and granting
//!   locks at ordinary terms;
//! - a web page using DNS rebinding (its own name resolving to the
//!   server) cannot open a WebSocket or read the dashboard.

use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::Command;
use distlock_core::proto::{ClusterId, PeerFrame};
use distlock_core::raft::{Message, MessageBody};
use distlock_tests::{Cluster, PATIENCE, distlock, run_within, status_json, within};
use distlock_transport_tcp::{HandshakeConfig, peer_handshake};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_heartbeat_at_the_last_term_is_refused() {
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    let servers = cluster.servers_arg();
    // Claim to be a member and send each server the highest term there is.
    for id in cluster.ids() {
        let victim = cluster.server(id).peer_addr;
        let claimed = if id == 2 { NodeId(3) } else { NodeId(2) };
        let stream = within(
            "dial the peer port",
            PATIENCE,
            tokio::net::TcpStream::connect(victim),
        )
        .await
        .expect("the peer port accepts");
        let (_reader, mut writer) = within(
            "peer handshake",
            PATIENCE,
            peer_handshake(
                stream,
                ClusterId::new("distlock"),
                claimed,
                None,
                &HandshakeConfig::default(),
            ),
        )
        .await
        .expect("handshake");
        let forged: PeerFrame = PeerFrame::Raft(Message::<Command> {
            from: claimed,
            to: NodeId(id),
            term: Term(u64::MAX),
            body: MessageBody::Heartbeat {
                commit: LogIndex(0),
                round: 1,
            },
        });
        writer.write_frame(&forged).await.expect("send");
        writer.flush().await.expect("flush");
    }
    // Every server still serves, at an ordinary term, with the same leader
    // or a new one elected the ordinary way.
    let mut cmd = distlock();
    cmd.args([
        "lock",
        "--servers",
        &servers,
        "--wait",
        "10s",
        "after-attack",
        "--",
        "true",
    ]);
    let out = run_within(&mut cmd, Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = tokio::task::spawn_blocking(move || status_json(&servers, None))
        .await
        .expect("join");
    let term = v["term"].as_u64().expect("a term");
    assert!(term < 1000, "the forged term was adopted: {v}");
    assert!(v["leader"].is_u64(), "{v}");
}

/// `Host: rebind.example:PORT` with the matching `Origin` (what a
/// browser sends after DNS rebinding) is refused with 403, for the
/// upgrade and for the dashboard; the server's own address still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_requests_are_refused() {
    use std::io::{Read, Write};
    let (c, p, w) = (
        distlock_tests::free_addr(),
        distlock_tests::free_addr(),
        distlock_tests::free_addr(),
    );
    let mut server =
        distlock_tests::Server::new(1, c, p, vec!["--ws-addr".to_owned(), w.to_string()]);
    server.start();
    let ask = |host: &str, upgrade: bool| -> String {
        distlock_tests::wait_until("the WebSocket port answers", PATIENCE, || {
            let mut s = std::net::TcpStream::connect(w).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let upgrade_headers = if upgrade {
                "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            } else {
                ""
            };
            let request = format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n{upgrade_headers}\r\n"
            );
            s.write_all(request.as_bytes()).ok()?;
            let mut head = [0u8; 64];
            let n = s.read(&mut head).ok()?;
            let text = String::from_utf8_lossy(&head[..n]).into_owned();
            (!text.is_empty()).then_some(text)
        })
    };
    let rebound = format!("rebind.example:{}", w.port());
    let answer = ask(&rebound, true);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let answer = ask(&rebound, false);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let answer = ask(&w.to_string(), true);
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let answer = ask(&format!("localhost:{}", w.port()), false);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// "Anyone can release your lock": while `distlock lock victim` holds the
/// lock, a second client that reads the session id and token from
/// `distlock status victim --json` and sends `Release`, `CloseSession` and
/// `KeepAlive` for that session is refused `NotAttached`; guessing the
/// session's secret is refused `NotSessionOwner`; the lock stays held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_and_a_token_are_not_enough_to_release_a_lock() {
    use distlock_core::locks::{ClientCommand, FencingToken, Seq, SessionId};
    use distlock_core::proto::{ProtoError, RequestBody};
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    let servers = cluster.servers_arg();
    let victim = distlock_tests::HeldLock::start(&servers, &[], "victim");
    let status = {
        let servers = servers.clone();
        tokio::task::spawn_blocking(move || status_json(&servers, Some("victim")))
            .await
            .expect("join")
    };
    let holder = &status["holders"][0];
    let session = SessionId(holder["session"].as_u64().expect("session id"));
    let token = FencingToken(holder["token"].as_u64().expect("token"));
    for id in cluster.ids() {
        let mut attacker = distlock_tests::Conn::connect(cluster.addr(id)).await;
        let release = RequestBody::Log(ClientCommand::Release {
            session,
            seq: Seq(1 << 62),
            ack: Seq(1 << 62),
            lock: "victim".to_owned(),
            token,
        });
        assert_eq!(attacker.ask(release).await, Err(ProtoError::NotAttached));
        let close = RequestBody::Log(ClientCommand::CloseSession {
            session,
            seq: Seq(1 << 62),
            ack: Seq(1 << 62),
        });
        assert_eq!(attacker.ask(close).await, Err(ProtoError::NotAttached));
        let guess = RequestBody::Attach {
            session,
            secret: u128::from(token.0),
        };
        assert_eq!(attacker.ask(guess).await, Err(ProtoError::NotSessionOwner));
    }
    let mut other = distlock();
    other.args([
        "lock",
        "--servers",
        &servers,
        "--try",
        "victim",
        "--",
        "true",
    ]);
    let out = run_within(&mut other, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(75),
        "the lock was freed by a stranger"
    );
    assert_eq!(
        victim.finish().code(),
        Some(0),
        "the victim kept its session"
    );
}

//! A process that reaches a peer port and claims to be a member cannot
//! stop the cluster: the term attack (a heartbeat at term 2^64 - 1) is
//! refused by every server, which keeps electing leaders and granting
//! locks at ordinary terms.

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
        let stream = within("dial the peer port", PATIENCE, tokio::net::TcpStream::connect(victim))
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
    cmd.args(["lock", "--servers", &servers, "--wait", "10s", "after-attack", "--", "true"]);
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

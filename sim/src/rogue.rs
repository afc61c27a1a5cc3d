//! A rogue peer (SIMULATION.md, S19): a process that knows the cluster's name
//! but is no member of it dials every server's peer port as node
//! [`ROGUE_ID`] and sends what would disrupt a cluster that listened:
//! votes and appends with a term a million ahead, a forced (transfer)
//! vote, a heartbeat claiming leadership. Servers must turn it away before
//! its frames reach Raft; the checker flags any server that ever logs a
//! term of [`ROGUE_TERM`] or more.

use crate::clock::TrueTime;
use crate::history::{Ev, History};
use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::proto::{ClusterId, PeerFrame};
use distlock_core::raft::{Message, MessageBody};
use distlock_transport_tcp::{HandshakeConfig, peer_handshake};
use std::net::SocketAddr;
use std::time::Duration;

/// The rogue's node id: never a member.
pub const ROGUE_ID: u64 = 200;

/// The term the rogue claims; members must never reach it.
pub const ROGUE_TERM: u64 = 1_000_000;

fn frames(to: u64) -> Vec<PeerFrame> {
    let msg = |body| {
        PeerFrame::Raft(Message {
            from: NodeId(ROGUE_ID),
            to: NodeId(to),
            term: Term(ROGUE_TERM),
            body,
        })
    };
    let far = LogIndex(u64::MAX / 2);
    vec![
        msg(MessageBody::PreVote {
            last_index: far,
            last_term: Term(ROGUE_TERM),
        }),
        msg(MessageBody::Vote {
            last_index: far,
            last_term: Term(ROGUE_TERM),
            transfer: true,
        }),
        msg(MessageBody::Heartbeat {
            commit: LogIndex(0),
            round: 1,
        }),
        msg(MessageBody::Append {
            prev_index: far,
            prev_term: Term(ROGUE_TERM),
            entries: Vec::new(),
            commit: far,
            round: 2,
        }),
    ]
}

/// Dials each server's peer address in turn and sends the rogue frames
/// over every link the handshake lets through; records what happened.
pub async fn run(peers: Vec<(u64, SocketAddr)>, history: History, time: TrueTime) {
    for (id, addr) in peers {
        let what = match tokio::net::TcpStream::connect(addr).await {
            Err(e) => format!("rogue n{ROGUE_ID} cannot reach s{id}: {e}"),
            Ok(stream) => {
                let handshake = peer_handshake(
                    stream,
                    ClusterId::new("sim"),
                    NodeId(ROGUE_ID),
                    None,
                    &HandshakeConfig::default(),
                )
                .await;
                match handshake {
                    Err(e) => format!("rogue n{ROGUE_ID} refused by s{id}: {e}"),
                    Ok((_reader, mut writer)) => {
                        let mut sent = 0;
                        for frame in frames(id) {
                            if writer.write_frame(&frame).await.is_err() {
                                break;
                            }
                            sent += 1;
                        }
                        let _ = writer.flush().await;
                        // Give the server time to act on them, if it would.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        format!(
                            "rogue n{ROGUE_ID} linked to s{id}, sent {sent} frames with term {ROGUE_TERM}"
                        )
                    }
                }
            }
        };
        history.push(time.now_us(), Ev::Fault { what });
    }
}

//! Pins the JSON of every client and server frame shape (WebSocket text
//! messages) to `clients/ts/test/samples.json`, which the TypeScript
//! client's tests read too: a change of the Rust types that changes their
//! JSON fails here, and the samples file says what the TypeScript side
//! must match.
//!
//! `DISTLOCK_WRITE_SAMPLES=1 cargo test -p distlock-transport-ws --test
//! json_samples` rewrites the file after a deliberate protocol change.

use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::{
    ClientCommand, FencingToken, LockDelay, LockError, LockKind, MetaError, MetaField, Mode,
    Outcome, Seq, SessionId, SessionMeta, Wait,
};
use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterId, ClusterStatusView, HolderEntryView, HolderView, LeaderView,
    LockEntryView, LockEvent, LockListView, LockStatusView, MemberInfo, MemberRole, MemberStatus,
    ProtoError, Request, RequestBody, RequestId, Response, ResponseBody, ServerFrame,
    SessionEntryView, SessionListView, WaiterEntryView, WaiterView, WatchEvent,
};
use distlock_core::raft::{MemberAddrs, MembershipChange, MembershipError};
use serde_json::Value;
use std::path::PathBuf;

fn samples_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/ts/test/samples.json")
}

fn request(id: u64, body: RequestBody) -> ClientFrame {
    ClientFrame::Request(Request {
        id: RequestId(id),
        body,
    })
}

fn reply(id: u64, result: Result<ResponseBody, ProtoError>) -> ServerFrame {
    ServerFrame::Response(Response {
        id: RequestId(id),
        result,
    })
}

/// Who opened a session, as the samples show it.
fn sample_meta() -> SessionMeta {
    SessionMeta {
        name: "alice@db1 4242".to_owned(),
        host: "db1".to_owned(),
        pid: Some(4242),
        labels: [("role".to_owned(), "backup".to_owned())].into(),
    }
}

fn client_samples() -> Vec<(&'static str, ClientFrame)> {
    let s = SessionId(42);
    vec![
        (
            "hello",
            ClientFrame::Hello {
                protocol_version: 1,
                cluster_id: None,
                auth: None,
            },
        ),
        (
            "hello_with_cluster_and_auth",
            ClientFrame::Hello {
                protocol_version: 1,
                cluster_id: Some(ClusterId::new("prod-locks")),
                auth: Some(AuthToken::new("s3cret")),
            },
        ),
        (
            "open_session",
            request(
                1,
                RequestBody::Log(ClientCommand::OpenSession {
                    nonce: u128::MAX,
                    ttl_ms: 10_000,
                }),
            ),
        ),
        (
            "keepalive",
            request(2, RequestBody::KeepAlive { session: s }),
        ),
        (
            "acquire_exclusive_try",
            request(
                3,
                RequestBody::Log(ClientCommand::Acquire {
                    session: s,
                    seq: Seq(1),
                    ack: Seq(1),
                    lock: "orders-db".to_owned(),
                    mode: Mode::Exclusive,
                    wait: Wait::Try,
                    lock_delay_ms: 0,
                }),
            ),
        ),
        (
            "acquire_shared_wait",
            request(
                4,
                RequestBody::Log(ClientCommand::Acquire {
                    session: s,
                    seq: Seq(2),
                    ack: Seq(1),
                    lock: "jobs/ü".to_owned(),
                    mode: Mode::Shared,
                    wait: Wait::For(30_000),
                    lock_delay_ms: 5_000,
                }),
            ),
        ),
        (
            "acquire_semaphore_forever",
            request(
                5,
                RequestBody::Log(ClientCommand::Acquire {
                    session: s,
                    seq: Seq(3),
                    ack: Seq(3),
                    lock: "pool".to_owned(),
                    mode: Mode::Semaphore(4),
                    wait: Wait::Forever,
                    lock_delay_ms: 0,
                }),
            ),
        ),
        (
            "release",
            request(
                6,
                RequestBody::Log(ClientCommand::Release {
                    session: s,
                    seq: Seq(4),
                    ack: Seq(4),
                    lock: "orders-db".to_owned(),
                    token: FencingToken(17),
                }),
            ),
        ),
        (
            "cancel_wait",
            request(
                7,
                RequestBody::Log(ClientCommand::CancelWait {
                    session: s,
                    seq: Seq(5),
                    ack: Seq(5),
                    lock: "pool".to_owned(),
                }),
            ),
        ),
        (
            "close_session",
            request(
                8,
                RequestBody::Log(ClientCommand::CloseSession {
                    session: s,
                    seq: Seq(6),
                    ack: Seq(6),
                }),
            ),
        ),
        (
            "check_token",
            request(
                9,
                RequestBody::CheckToken {
                    lock: "orders-db".to_owned(),
                    token: FencingToken(17),
                },
            ),
        ),
        (
            "lock_status",
            request(
                10,
                RequestBody::LockStatus {
                    lock: "orders-db".to_owned(),
                },
            ),
        ),
        ("cluster_status", request(11, RequestBody::ClusterStatus)),
        (
            "watch",
            request(
                12,
                RequestBody::Watch {
                    lock: "orders-db".to_owned(),
                },
            ),
        ),
        (
            "unwatch",
            request(
                13,
                RequestBody::Unwatch {
                    lock: "orders-db".to_owned(),
                },
            ),
        ),
        (
            "change_membership_add",
            request(
                14,
                RequestBody::ChangeMembership(MembershipChange::AddLearner(
                    NodeId(4),
                    MemberAddrs {
                        peer: "10.0.0.4:7101".to_owned(),
                        client: "10.0.0.4:7001".to_owned(),
                        ws: Some("10.0.0.4:7201".to_owned()),
                    },
                )),
            ),
        ),
        (
            "change_membership_remove",
            request(
                15,
                RequestBody::ChangeMembership(MembershipChange::Remove(NodeId(1))),
            ),
        ),
        (
            "attach",
            request(
                17,
                RequestBody::Attach {
                    session: SessionId(42),
                    secret: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
                },
            ),
        ),
        (
            "change_membership_set_addrs",
            request(
                16,
                RequestBody::ChangeMembership(MembershipChange::SetAddrs(
                    NodeId(2),
                    MemberAddrs {
                        peer: "node2.example:7101".to_owned(),
                        client: "node2.example:7001".to_owned(),
                        ws: None,
                    },
                )),
            ),
        ),
        (
            "take_snapshot",
            request(17, RequestBody::TakeSnapshot { max_len: 131_072 }),
        ),
        (
            "snapshot_chunk",
            request(
                18,
                RequestBody::SnapshotChunk {
                    index: LogIndex(900),
                    offset: 131_072,
                    max_len: 131_072,
                },
            ),
        ),
        (
            "open_session_with_meta",
            request(
                18,
                RequestBody::Log(ClientCommand::OpenSessionWithMeta {
                    nonce: 7,
                    ttl_ms: 10_000,
                    meta: sample_meta(),
                }),
            ),
        ),
        (
            "list_locks",
            request(
                19,
                RequestBody::ListLocks {
                    prefix: "jobs/".to_owned(),
                    after: Some("jobs/a".to_owned()),
                    limit: 100,
                },
            ),
        ),
        (
            "list_sessions",
            request(
                20,
                RequestBody::ListSessions {
                    after: None,
                    limit: 0,
                },
            ),
        ),
        (
            "revoke_session",
            request(21, RequestBody::RevokeSession { session: s }),
        ),
        (
            "campaign",
            request(
                22,
                RequestBody::Log(ClientCommand::Campaign {
                    session: s,
                    seq: Seq(4),
                    ack: Seq(4),
                    election: "scheduler".to_owned(),
                    value: "10.0.0.7:8080".to_owned(),
                    wait: Wait::Forever,
                    lock_delay_ms: 0,
                }),
            ),
        ),
        (
            "proclaim",
            request(
                23,
                RequestBody::Log(ClientCommand::Proclaim {
                    session: s,
                    seq: Seq(5),
                    ack: Seq(5),
                    election: "scheduler".to_owned(),
                    token: FencingToken(44),
                    value: "10.0.0.7:9090".to_owned(),
                }),
            ),
        ),
        (
            "leader",
            request(
                24,
                RequestBody::Leader {
                    election: "scheduler".to_owned(),
                },
            ),
        ),
    ]
}

fn server_samples() -> Vec<(&'static str, ServerFrame)> {
    let s = SessionId(42);
    let members = vec![
        MemberInfo {
            id: NodeId(1),
            client_addr: "127.0.0.1:7001".to_owned(),
            ws_addr: Some("127.0.0.1:7201".to_owned()),
        },
        MemberInfo {
            id: NodeId(2),
            client_addr: "127.0.0.1:7002".to_owned(),
            ws_addr: None,
        },
    ];
    let lock_err = |e| reply(20, Err(ProtoError::Lock(e)));
    vec![
        (
            "welcome",
            ServerFrame::Welcome {
                node_id: NodeId(1),
                leader_hint: Some(NodeId(2)),
                members,
            },
        ),
        (
            "session_opened",
            reply(
                1,
                Ok(ResponseBody::SessionOpened {
                    session: s,
                    ttl_ms: 10_000,
                }),
            ),
        ),
        (
            "keepalive_ack",
            reply(2, Ok(ResponseBody::KeepAliveAck { session: s })),
        ),
        (
            "granted",
            reply(
                3,
                Ok(ResponseBody::Lock(Outcome::Granted {
                    token: FencingToken(17),
                })),
            ),
        ),
        (
            "released",
            reply(6, Ok(ResponseBody::Lock(Outcome::Released))),
        ),
        (
            "wait_cancelled",
            reply(7, Ok(ResponseBody::Lock(Outcome::WaitCancelled))),
        ),
        ("closed", reply(8, Ok(ResponseBody::Lock(Outcome::Closed)))),
        (
            "pending",
            reply(5, Ok(ResponseBody::Lock(Outcome::Pending))),
        ),
        ("token_valid", reply(9, Ok(ResponseBody::TokenValid(true)))),
        (
            "lock_status_free",
            reply(10, Ok(ResponseBody::LockStatus(None))),
        ),
        (
            "lock_status_held",
            reply(
                10,
                Ok(ResponseBody::LockStatus(Some(LockStatusView {
                    mode: Some(Mode::Exclusive),
                    kind: LockKind::ReadWrite,
                    holders: vec![HolderView {
                        session: s,
                        token: FencingToken(17),
                    }],
                    waiters: vec![
                        WaiterView {
                            session: SessionId(43),
                            mode: Mode::Shared,
                            timeout_ms: Some(30_000),
                        },
                        WaiterView {
                            session: SessionId(44),
                            mode: Mode::Exclusive,
                            timeout_ms: None,
                        },
                    ],
                    delay: None,
                }))),
            ),
        ),
        (
            "lock_status_delayed_semaphore",
            reply(
                10,
                Ok(ResponseBody::LockStatus(Some(LockStatusView {
                    mode: None,
                    kind: LockKind::Semaphore(4),
                    holders: vec![],
                    waiters: vec![],
                    delay: Some(LockDelay {
                        since: LogIndex(90),
                        delay_ms: 5_000,
                    }),
                }))),
            ),
        ),
        (
            "cluster_status",
            reply(
                11,
                Ok(ResponseBody::ClusterStatus(ClusterStatusView {
                    leader: Some(NodeId(1)),
                    term: Term(3),
                    commit_index: LogIndex(120),
                    members: vec![
                        MemberStatus {
                            id: NodeId(1),
                            client_addr: "127.0.0.1:7001".to_owned(),
                            ws_addr: Some("127.0.0.1:7201".to_owned()),
                            role: MemberRole::Leader,
                            match_index: Some(LogIndex(120)),
                        },
                        MemberStatus {
                            id: NodeId(2),
                            client_addr: "127.0.0.1:7002".to_owned(),
                            ws_addr: None,
                            role: MemberRole::Follower,
                            match_index: None,
                        },
                    ],
                })),
            ),
        ),
        ("watching", reply(12, Ok(ResponseBody::Watching))),
        ("unwatched", reply(13, Ok(ResponseBody::Unwatched))),
        (
            "not_leader",
            reply(
                3,
                Err(ProtoError::NotLeader {
                    leader_hint: Some(NodeId(2)),
                }),
            ),
        ),
        ("no_leader", reply(3, Err(ProtoError::NoLeader))),
        (
            "attached",
            reply(
                17,
                Ok(ResponseBody::Attached {
                    session: SessionId(42),
                }),
            ),
        ),
        ("not_attached", reply(4, Err(ProtoError::NotAttached))),
        (
            "forbidden",
            reply(
                5,
                Err(ProtoError::Forbidden {
                    right: distlock_core::auth::Right::Lock,
                    lock: Some("payroll".to_owned()),
                }),
            ),
        ),
        (
            "too_many_sessions",
            reply(5, Err(ProtoError::TooManySessions { max: 1024 })),
        ),
        (
            "too_many_watches",
            reply(5, Err(ProtoError::TooManyWatches { max: 256 })),
        ),
        (
            "too_many_in_flight",
            reply(5, Err(ProtoError::TooManyInFlight { max: 4096 })),
        ),
        (
            "rate_limited",
            reply(5, Err(ProtoError::RateLimited { per_second: 20000 })),
        ),
        (
            "leader_unreachable",
            reply(3, Err(ProtoError::LeaderUnreachable { leader: NodeId(2) })),
        ),
        ("unknown_session", reply(2, Err(ProtoError::UnknownSession))),
        (
            "membership_changed",
            reply(
                14,
                Ok(ResponseBody::MembershipChanged {
                    index: LogIndex(512),
                }),
            ),
        ),
        (
            "membership_not_caught_up",
            reply(
                14,
                Err(ProtoError::Membership(MembershipError::NotCaughtUp {
                    id: NodeId(4),
                    match_index: LogIndex(10),
                    last_index: LogIndex(512),
                })),
            ),
        ),
        (
            "membership_in_progress",
            reply(
                15,
                Err(ProtoError::Membership(MembershipError::ChangeInProgress)),
            ),
        ),
        (
            "membership_quorum_unreachable",
            reply(
                16,
                Err(ProtoError::Membership(MembershipError::QuorumUnreachable {
                    reachable: 1,
                    needed: 2,
                })),
            ),
        ),
        ("busy", lock_err(LockError::Busy { delayed: false })),
        (
            "already_held",
            lock_err(LockError::AlreadyHeld {
                token: FencingToken(17),
            }),
        ),
        ("session_expired", lock_err(LockError::SessionExpired)),
        ("timed_out", lock_err(LockError::TimedOut)),
        (
            "mode_mismatch",
            lock_err(LockError::ModeMismatch {
                kind: LockKind::Semaphore(4),
            }),
        ),
        (
            "watch_acquired",
            ServerFrame::Watch(WatchEvent {
                lock: "orders-db".into(),
                event: LockEvent::Acquired {
                    index: LogIndex(17),
                    session: s,
                    token: FencingToken(17),
                    mode: Mode::Semaphore(4),
                },
            }),
        ),
        (
            "watch_released",
            ServerFrame::Watch(WatchEvent {
                lock: "orders-db".into(),
                event: LockEvent::Released {
                    index: LogIndex(18),
                    session: s,
                    token: FencingToken(17),
                },
            }),
        ),
        (
            "watch_expired",
            ServerFrame::Watch(WatchEvent {
                lock: "orders-db".into(),
                event: LockEvent::Expired {
                    index: LogIndex(19),
                    session: s,
                    token: FencingToken(17),
                },
            }),
        ),
        (
            "hello_required",
            ServerFrame::Error(ProtoError::HelloRequired),
        ),
        (
            "too_many_connections",
            ServerFrame::Error(ProtoError::TooManyConnections { max: 1024 }),
        ),
        (
            "frame_timeout",
            ServerFrame::Error(ProtoError::FrameTimeout { secs: 10 }),
        ),
        (
            "malformed",
            ServerFrame::Error(ProtoError::Malformed {
                reason: "JSON message: EOF while parsing".to_owned(),
            }),
        ),
        (
            "frame_too_large",
            ServerFrame::Error(ProtoError::FrameTooLarge {
                len: 2_000_000,
                max: 1_048_576,
            }),
        ),
        (
            "unsupported_version",
            ServerFrame::Error(ProtoError::UnsupportedVersion {
                server: 1,
                client: 2,
            }),
        ),
        (
            "wrong_cluster",
            ServerFrame::Error(ProtoError::WrongCluster),
        ),
        (
            "snapshot_chunk",
            reply(
                16,
                Ok(ResponseBody::SnapshotChunk {
                    index: LogIndex(900),
                    term: Term(4),
                    offset: 0,
                    total_len: 5,
                    data: vec![68, 76, 107, 115, 1],
                }),
            ),
        ),
        (
            "snapshot_unavailable",
            reply(
                17,
                Err(ProtoError::SnapshotUnavailable {
                    index: LogIndex(900),
                }),
            ),
        ),
        (
            "locks",
            reply(
                19,
                Ok(ResponseBody::Locks(LockListView {
                    index: LogIndex(40),
                    locks: vec![LockEntryView {
                        name: "jobs/b".to_owned(),
                        kind: LockKind::ReadWrite,
                        mode: Some(Mode::Exclusive),
                        holders: vec![HolderEntryView {
                            session: s,
                            token: FencingToken(17),
                            since: LogIndex(17),
                            owner: Some(sample_meta()),
                        }],
                        waiters: vec![WaiterEntryView {
                            session: SessionId(43),
                            mode: Mode::Shared,
                            timeout_ms: None,
                            owner: None,
                        }],
                        delay: None,
                    }],
                    next: Some("jobs/b".to_owned()),
                })),
            ),
        ),
        (
            "sessions",
            reply(
                20,
                Ok(ResponseBody::Sessions(SessionListView {
                    index: LogIndex(40),
                    sessions: vec![SessionEntryView {
                        session: s,
                        ttl_ms: 10_000,
                        held: 1,
                        waiting: 0,
                        owner: Some(sample_meta()),
                    }],
                    next: None,
                })),
            ),
        ),
        (
            "revoked",
            reply(21, Ok(ResponseBody::Revoked { session: s })),
        ),
        (
            "invalid_session_meta",
            lock_err(LockError::InvalidSessionMeta(MetaError::Length {
                field: MetaField::Name,
                len: 300,
                max: 128,
            })),
        ),
        (
            "proclaimed",
            reply(23, Ok(ResponseBody::Lock(Outcome::Proclaimed))),
        ),
        (
            "leader_view",
            reply(
                24,
                Ok(ResponseBody::Leader(Some(LeaderView {
                    session: s,
                    token: FencingToken(44),
                    value: Some("10.0.0.7:9090".to_owned()),
                    owner: Some(sample_meta()),
                }))),
            ),
        ),
        ("no_leader_view", reply(24, Ok(ResponseBody::Leader(None)))),
        (
            "watch_proclaimed",
            ServerFrame::Watch(WatchEvent {
                lock: "scheduler".into(),
                event: LockEvent::Proclaimed {
                    index: LogIndex(45),
                    session: s,
                    token: FencingToken(44),
                },
            }),
        ),
        (
            "invalid_value",
            lock_err(LockError::InvalidValue {
                len: 5_000,
                max: 4_096,
            }),
        ),
    ]
}

/// Every sample as `{"name", "type", "json"}`, `json` being serde_json's
/// exact text.
fn render() -> Value {
    let mut out = Vec::new();
    for (name, frame) in client_samples() {
        let json = serde_json::to_string(&frame).expect("encodes");
        let back: ClientFrame = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, frame, "{name} round-trips");
        out.push(serde_json::json!({"name": name, "type": "ClientFrame", "json": json}));
    }
    for (name, frame) in server_samples() {
        let json = serde_json::to_string(&frame).expect("encodes");
        let back: ServerFrame = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, frame, "{name} round-trips");
        out.push(serde_json::json!({"name": name, "type": "ServerFrame", "json": json}));
    }
    Value::Array(out)
}

#[test]
fn json_of_every_frame_shape_is_pinned() {
    let rendered = render();
    let path = samples_path();
    if std::env::var_os("DISTLOCK_WRITE_SAMPLES").is_some() {
        let text = serde_json::to_string_pretty(&rendered).expect("renders") + "\n";
        std::fs::write(&path, text).expect("write the samples");
        return;
    }
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let pinned: Value = serde_json::from_str(&text).expect("the samples file is JSON");
    let (Value::Array(now), Value::Array(then)) = (&rendered, &pinned) else {
        panic!("the samples file must be an array");
    };
    for (a, b) in now.iter().zip(then) {
        assert_eq!(
            a, b,
            "the JSON of sample {} changed: update the TypeScript client and the samples",
            a["name"]
        );
    }
    assert_eq!(now.len(), then.len(), "samples were added or removed");
    // The nonce must be written as exact digits, not a float.
    assert!(text.contains("340282366920938463463374607431768211455"));
}

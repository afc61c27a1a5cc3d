//! Test fixtures: at least one value of every variant of every protocol
//! enum, with extreme numbers where they change the encoding's size, and
//! the round-trip check the tests share.

// Outside tests only the frame lists are used (by the fuzz corpora), and
// only the testkit feature exports them.
#![cfg_attr(not(test), allow(dead_code))]
#![cfg_attr(not(feature = "testkit"), allow(unreachable_pub))]

use super::*;
use crate::ids::{LogIndex, NodeId, Term};
use crate::locks::ClientCommand;
use crate::locks::{
    Command, FencingToken, LockDelay, LockError, LockKind, MetaError, MetaField, Mode, Outcome,
    Seq, SessionId, SessionMeta, Wait,
};
use crate::raft::{
    AppendConflict, Entry, EntryPayload, MemberAddrs, Membership, MembershipChange,
    MembershipError, Message, MessageBody, SnapshotMeta,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// Encodes and decodes `value`, which must come back equal.
pub(super) fn roundtrip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut bytes = Vec::new();
    encode(value, &mut bytes).expect("protocol values encode");
    assert!(check_frame_len(bytes.len(), MAX_FRAME_BYTES).is_ok());
    assert_eq!(decode::<T>(&bytes).as_ref(), Ok(value), "bytes {bytes:?}");
}

/// The variant tag an enum value is encoded with (its leading varint).
pub(super) fn tag_of<T: Serialize>(value: &T) -> u32 {
    let mut bytes = Vec::new();
    encode(value, &mut bytes).expect("protocol values encode");
    postcard::take_from_bytes::<u32>(&bytes)
        .expect("an enum starts with its tag")
        .0
}

const S: SessionId = SessionId(u64::MAX);
const Q: Seq = Seq(1 << 40);
const A: Seq = Seq(0);

pub(super) fn request_bodies() -> Vec<RequestBody> {
    vec![
        RequestBody::Log(ClientCommand::OpenSession {
            nonce: u128::MAX,
            ttl_ms: 10_000,
        }),
        RequestBody::KeepAlive { session: S },
        RequestBody::Log(ClientCommand::CloseSession {
            session: S,
            seq: Q,
            ack: A,
        }),
        RequestBody::Log(ClientCommand::Acquire {
            session: S,
            seq: Q,
            ack: A,
            lock: "jobs/ü".to_owned(),
            mode: Mode::Semaphore(u32::MAX),
            wait: Wait::For(u64::MAX),
            lock_delay_ms: 60_000,
        }),
        RequestBody::Log(ClientCommand::Acquire {
            session: SessionId(1),
            seq: Seq(1),
            ack: Seq(1),
            lock: "x".repeat(512),
            mode: Mode::Shared,
            wait: Wait::Forever,
            lock_delay_ms: 0,
        }),
        RequestBody::Log(ClientCommand::Acquire {
            session: SessionId(1),
            seq: Seq(2),
            ack: Seq(1),
            lock: String::new(),
            mode: Mode::Exclusive,
            wait: Wait::Try,
            lock_delay_ms: 0,
        }),
        RequestBody::Log(ClientCommand::Release {
            session: S,
            seq: Q,
            ack: A,
            lock: "a".to_owned(),
            token: FencingToken(u64::MAX),
        }),
        RequestBody::Log(ClientCommand::CancelWait {
            session: S,
            seq: Q,
            ack: A,
            lock: "a".to_owned(),
        }),
        RequestBody::CheckToken {
            lock: "a".to_owned(),
            token: FencingToken(42),
        },
        RequestBody::LockStatus {
            lock: "a".to_owned(),
        },
        RequestBody::ClusterStatus,
        RequestBody::Watch {
            lock: "a".to_owned(),
        },
        RequestBody::Unwatch {
            lock: "a".to_owned(),
        },
        RequestBody::ChangeMembership(MembershipChange::AddLearner(
            NodeId(4),
            MemberAddrs {
                peer: "10.0.0.4:7101".into(),
                client: "10.0.0.4:7001".into(),
                ws: Some("10.0.0.4:7201".into()),
            },
        )),
        RequestBody::ChangeMembership(MembershipChange::Promote(NodeId(4))),
        RequestBody::ChangeMembership(MembershipChange::Remove(NodeId(1))),
        RequestBody::Attach {
            session: SessionId(7),
            secret: u128::MAX - 5,
        },
        RequestBody::ChangeMembership(MembershipChange::SetAddrs(
            NodeId(2),
            MemberAddrs {
                peer: "node2.example:7101".into(),
                client: "node2.example:7001".into(),
                ws: None,
            },
        )),
        RequestBody::TakeSnapshot {
            max_len: SNAPSHOT_CHUNK_MAX,
        },
        RequestBody::SnapshotChunk {
            index: LogIndex(u64::MAX),
            offset: 1 << 40,
            max_len: u32::MAX,
        },
    ]
    .into_iter()
    .chain(listing_requests())
    .collect()
}

/// Who opened a session, with every field set.
pub(super) fn session_meta() -> SessionMeta {
    SessionMeta {
        name: "alice@db1 4242".to_owned(),
        host: "db1.example".to_owned(),
        pid: Some(u32::MAX),
        labels: [("role".to_owned(), "backup".to_owned())].into(),
    }
}

/// The requests of listings, session metadata and revocation.
fn listing_requests() -> Vec<RequestBody> {
    vec![
        RequestBody::Log(ClientCommand::OpenSessionWithMeta {
            nonce: u128::MAX,
            ttl_ms: 10_000,
            meta: session_meta(),
        }),
        RequestBody::ListLocks {
            prefix: "jobs/".to_owned(),
            after: Some("jobs/ü".to_owned()),
            limit: u32::MAX,
        },
        RequestBody::ListLocks {
            prefix: String::new(),
            after: None,
            limit: 0,
        },
        RequestBody::ListSessions {
            after: Some(S),
            limit: 100,
        },
        RequestBody::RevokeSession { session: S },
        RequestBody::Log(ClientCommand::Campaign {
            session: S,
            seq: Q,
            ack: A,
            election: "leader/ü".to_owned(),
            value: "v".repeat(4_096),
            wait: Wait::Forever,
            lock_delay_ms: 60_000,
        }),
        RequestBody::Log(ClientCommand::Proclaim {
            session: S,
            seq: Q,
            ack: A,
            election: "leader/ü".to_owned(),
            token: FencingToken(u64::MAX),
            value: String::new(),
        }),
        RequestBody::Leader {
            election: "leader/ü".to_owned(),
        },
    ]
}

/// The answers of listings and revocation.
fn listing_responses() -> Vec<ResponseBody> {
    vec![
        ResponseBody::Locks(LockListView {
            index: LogIndex(u64::MAX),
            locks: vec![LockEntryView {
                name: "jobs/ü".to_owned(),
                kind: LockKind::Semaphore(u32::MAX),
                mode: Some(Mode::Semaphore(u32::MAX)),
                holders: vec![HolderEntryView {
                    session: S,
                    token: FencingToken(12),
                    since: LogIndex(12),
                    owner: Some(session_meta()),
                }],
                waiters: vec![WaiterEntryView {
                    session: SessionId(7),
                    mode: Mode::Semaphore(u32::MAX),
                    timeout_ms: Some(u64::MAX),
                    owner: None,
                }],
                delay: Some(LockDelay {
                    since: LogIndex(11),
                    delay_ms: 5_000,
                }),
            }],
            next: Some("jobs/ü".to_owned()),
        }),
        ResponseBody::Locks(LockListView {
            index: LogIndex(0),
            locks: Vec::new(),
            next: None,
        }),
        ResponseBody::Sessions(SessionListView {
            index: LogIndex(40),
            sessions: vec![SessionEntryView {
                session: S,
                ttl_ms: 10_000,
                held: u32::MAX,
                waiting: 0,
                owner: Some(session_meta()),
            }],
            next: Some(S),
        }),
        ResponseBody::Revoked { session: S },
        ResponseBody::Lock(Outcome::Proclaimed),
        ResponseBody::Leader(None),
        ResponseBody::Leader(Some(LeaderView {
            session: S,
            token: FencingToken(u64::MAX),
            value: Some("10.0.0.1:8080".to_owned()),
            owner: Some(session_meta()),
        })),
    ]
}

pub(super) fn proto_errors() -> Vec<ProtoError> {
    vec![
        ProtoError::UnsupportedVersion {
            server: PROTOCOL_VERSION,
            client: u32::MAX,
        },
        ProtoError::WrongCluster,
        ProtoError::Unauthorized,
        ProtoError::HelloRequired,
        ProtoError::FrameTooLarge {
            len: u64::MAX,
            max: 1 << 20,
        },
        ProtoError::Malformed {
            reason: "invalid bool (neither 0 nor 1)".to_owned(),
        },
        ProtoError::NotLeader {
            leader_hint: Some(NodeId(3)),
        },
        ProtoError::NotLeader { leader_hint: None },
        ProtoError::NoLeader,
        ProtoError::Lock(LockError::StaleSequence { floor: Seq(9) }),
        ProtoError::Lock(LockError::ModeMismatch {
            kind: LockKind::Semaphore(2),
        }),
        ProtoError::Lock(LockError::Busy { delayed: true }),
        ProtoError::ShuttingDown,
        ProtoError::Overloaded,
        ProtoError::Timeout,
        ProtoError::UnknownSession,
        ProtoError::Membership(MembershipError::ChangeInProgress),
        ProtoError::Membership(MembershipError::NotCaughtUp {
            id: NodeId(4),
            match_index: LogIndex(3),
            last_index: LogIndex(900),
        }),
        ProtoError::Membership(MembershipError::QuorumUnreachable {
            reachable: 1,
            needed: 2,
        }),
        ProtoError::LeaderUnreachable { leader: NodeId(2) },
        ProtoError::SnapshotUnavailable {
            index: LogIndex(4096),
        },
        ProtoError::NotAttached,
        ProtoError::NotSessionOwner,
        ProtoError::Lock(LockError::InvalidSessionMeta(MetaError::Length {
            field: MetaField::Name,
            len: 1 << 20,
            max: 128,
        })),
        ProtoError::Lock(LockError::InvalidSessionMeta(MetaError::TooManyLabels {
            count: 17,
            max: 16,
        })),
        ProtoError::Lock(LockError::InvalidSessionMeta(MetaError::ControlCharacter {
            field: MetaField::LabelValue,
        })),
        ProtoError::Lock(LockError::InvalidValue {
            len: u64::MAX,
            max: 4_096,
        }),
        ProtoError::Forbidden {
            right: crate::auth::Right::Lock,
            lock: Some("billing/nightly".to_owned()),
        },
        ProtoError::Forbidden {
            right: crate::auth::Right::Admin,
            lock: None,
        },
        ProtoError::TooManyConnections { max: 1024 },
        ProtoError::TooManySessions { max: 1024 },
        ProtoError::TooManyWatches { max: 256 },
        ProtoError::TooManyInFlight { max: 1024 },
        ProtoError::RateLimited { per_second: 1000 },
        ProtoError::FrameTimeout { secs: 10 },
    ]
}

pub(super) fn lock_status() -> LockStatusView {
    LockStatusView {
        mode: Some(Mode::Shared),
        kind: LockKind::ReadWrite,
        holders: vec![
            HolderView {
                session: SessionId(4),
                token: FencingToken(10),
            },
            HolderView {
                session: SessionId(6),
                token: FencingToken(12),
            },
        ],
        waiters: vec![WaiterView {
            session: SessionId(7),
            mode: Mode::Exclusive,
            timeout_ms: None,
        }],
        delay: Some(LockDelay {
            since: LogIndex(11),
            delay_ms: 5_000,
        }),
    }
}

pub(super) fn cluster_status() -> ClusterStatusView {
    ClusterStatusView {
        leader: Some(NodeId(1)),
        term: Term(7),
        commit_index: LogIndex(1_234_567),
        members: vec![
            MemberStatus {
                id: NodeId(1),
                client_addr: "10.0.0.1:7001".to_owned(),
                ws_addr: Some("10.0.0.1:7003".to_owned()),
                role: MemberRole::Leader,
                match_index: Some(LogIndex(1_234_570)),
            },
            MemberStatus {
                id: NodeId(2),
                client_addr: "[::1]:7001".to_owned(),
                ws_addr: None,
                role: MemberRole::Learner,
                match_index: None,
            },
        ],
    }
}

pub(super) fn response_bodies() -> Vec<ResponseBody> {
    vec![
        ResponseBody::SessionOpened {
            session: S,
            ttl_ms: 300_000,
        },
        ResponseBody::KeepAliveAck { session: S },
        ResponseBody::Lock(Outcome::Granted {
            token: FencingToken(u64::MAX),
        }),
        ResponseBody::Lock(Outcome::Released),
        ResponseBody::Lock(Outcome::WaitCancelled),
        ResponseBody::Lock(Outcome::Closed),
        ResponseBody::Lock(Outcome::Pending),
        ResponseBody::TokenValid(true),
        ResponseBody::TokenValid(false),
        ResponseBody::LockStatus(None),
        ResponseBody::LockStatus(Some(lock_status())),
        ResponseBody::ClusterStatus(cluster_status()),
        ResponseBody::ClusterStatus(ClusterStatusView {
            leader: None,
            term: Term(0),
            commit_index: LogIndex(0),
            members: Vec::new(),
        }),
        ResponseBody::Watching,
        ResponseBody::Unwatched,
        ResponseBody::MembershipChanged {
            index: LogIndex(77),
        },
        ResponseBody::SnapshotChunk {
            index: LogIndex(900),
            term: Term(4),
            offset: 0,
            total_len: 3,
            data: vec![0, 1, 255],
        },
        ResponseBody::SnapshotChunk {
            index: LogIndex(u64::MAX),
            term: Term(u64::MAX),
            offset: u64::MAX,
            total_len: u64::MAX,
            data: Vec::new(),
        },
        ResponseBody::Attached { session: S },
    ]
    .into_iter()
    .chain(listing_responses())
    .collect()
}

pub(super) fn lock_events() -> Vec<LockEvent> {
    vec![
        LockEvent::Acquired {
            index: LogIndex(5),
            session: SessionId(2),
            token: FencingToken(5),
            mode: Mode::Semaphore(3),
        },
        LockEvent::Released {
            index: LogIndex(6),
            session: SessionId(2),
            token: FencingToken(5),
        },
        LockEvent::Expired {
            index: LogIndex(u64::MAX),
            session: SessionId(2),
            token: FencingToken(5),
        },
        LockEvent::Proclaimed {
            index: LogIndex(u64::MAX),
            session: S,
            token: FencingToken(u64::MAX),
        },
    ]
}

/// Every client frame variant.
pub fn client_frames() -> Vec<ClientFrame> {
    let mut frames = vec![
        ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: Some(ClusterId::new("prod-locks")),
            auth: Some(AuthToken::new("s3cret")),
        },
        ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: None,
            auth: None,
        },
    ];
    frames.extend((0..).zip(request_bodies()).map(|(id, body)| {
        ClientFrame::Request(Request {
            id: RequestId(u64::MAX - id),
            body,
        })
    }));
    frames
}

/// Every server frame variant.
pub fn server_frames() -> Vec<ServerFrame> {
    let mut frames = vec![
        ServerFrame::Welcome {
            node_id: NodeId(2),
            leader_hint: Some(NodeId(1)),
            members: vec![
                MemberInfo {
                    id: NodeId(1),
                    client_addr: "10.0.0.1:7001".to_owned(),
                    ws_addr: Some("10.0.0.1:7003".to_owned()),
                },
                MemberInfo {
                    id: NodeId(2),
                    client_addr: "10.0.0.2:7001".to_owned(),
                    ws_addr: None,
                },
            ],
        },
        ServerFrame::Welcome {
            node_id: NodeId(1),
            leader_hint: None,
            members: Vec::new(),
        },
    ];
    frames.extend(
        (0..)
            .zip(response_bodies())
            .map(|(id, body)| ServerFrame::Response(Response::ok(RequestId(id), body))),
    );
    frames.extend(
        (1000..)
            .zip(proto_errors())
            .map(|(id, e)| ServerFrame::Response(Response::err(RequestId(id), e))),
    );
    frames.extend(lock_events().into_iter().map(|event| {
        ServerFrame::Watch(WatchEvent {
            lock: Arc::from("jobs/nightly"),
            event,
        })
    }));
    frames.extend(proto_errors().into_iter().map(ServerFrame::Error));
    frames
}

fn raft_bodies() -> Vec<MessageBody<Command>> {
    let membership = Membership {
        voters: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
        learners: [NodeId(4)].into_iter().collect(),
        addrs: [(
            NodeId(4),
            MemberAddrs {
                peer: "10.0.0.4:7101".into(),
                client: "10.0.0.4:7001".into(),
                ws: None,
            },
        )]
        .into_iter()
        .collect(),
    };
    let entries = vec![
        Entry {
            index: LogIndex(10),
            term: Term(3),
            payload: EntryPayload::Noop,
        },
        Entry {
            index: LogIndex(11),
            term: Term(3),
            payload: EntryPayload::Command(Command::ExpireSession { session: S }),
        },
        Entry {
            index: LogIndex(12),
            term: Term(3),
            payload: EntryPayload::Command(Command::WaitTimedOut {
                session: S,
                lock: "a".to_owned(),
                acquire_seq: Q,
            }),
        },
        Entry {
            index: LogIndex(13),
            term: Term(3),
            payload: EntryPayload::Command(Command::LockDelayOver {
                lock: "a".to_owned(),
                since: LogIndex(2),
            }),
        },
        Entry {
            index: LogIndex(14),
            term: Term(3),
            payload: EntryPayload::Membership(membership.clone()),
        },
    ];
    vec![
        MessageBody::PreVote {
            last_index: LogIndex(9),
            last_term: Term(2),
        },
        MessageBody::PreVoteResponse { granted: true },
        MessageBody::Vote {
            last_index: LogIndex(9),
            last_term: Term(2),
            transfer: true,
        },
        MessageBody::VoteResponse { granted: false },
        MessageBody::Append {
            prev_index: LogIndex(9),
            prev_term: Term(2),
            entries,
            commit: LogIndex(8),
            round: 77,
        },
        MessageBody::AppendResponse {
            result: Ok(LogIndex(14)),
            round: 77,
        },
        MessageBody::AppendResponse {
            result: Err(AppendConflict {
                rejected: LogIndex(9),
                conflict_term: Some(Term(1)),
                hint_index: LogIndex(4),
            }),
            round: 78,
        },
        MessageBody::Heartbeat {
            commit: LogIndex(14),
            round: u64::MAX,
        },
        MessageBody::HeartbeatResponse { round: u64::MAX },
        MessageBody::InstallSnapshot {
            meta: Box::new(SnapshotMeta {
                last_index: LogIndex(100),
                last_term: Term(3),
                membership,
            }),
            offset: 4096,
            data: vec![0, 1, 2, 255],
            done: false,
            round: 3,
        },
        MessageBody::InstallSnapshotResponse {
            last_index: LogIndex(100),
            next_offset: Some(4100),
            round: 3,
        },
        MessageBody::InstallSnapshotResponse {
            last_index: LogIndex(100),
            next_offset: None,
            round: 4,
        },
        MessageBody::TimeoutNow,
    ]
}

/// Every peer frame variant.
pub fn peer_frames() -> Vec<PeerFrame> {
    let mut frames = vec![
        PeerFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: ClusterId::new("prod-locks"),
            from: NodeId(2),
            auth: Some(AuthToken::new("peer-secret")),
        },
        PeerFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: ClusterId::new(""),
            from: NodeId(u64::MAX),
            auth: None,
        },
    ];
    frames.extend(raft_bodies().into_iter().map(|body| {
        PeerFrame::Raft(Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body,
        })
    }));
    frames.extend(
        (0..)
            .zip(request_bodies())
            .map(|(id, body)| PeerFrame::Forward {
                origin: NodeId(3),
                request: ForwardedRequest {
                    id: ForwardId(id),
                    body,
                },
            }),
    );
    frames.extend(
        (0..)
            .zip(response_bodies())
            .map(|(id, body)| PeerFrame::ForwardReply {
                id: ForwardId(id),
                result: Ok(body),
            }),
    );
    frames.extend(
        (100..)
            .zip(proto_errors())
            .map(|(id, e)| PeerFrame::ForwardReply {
                id: ForwardId(id),
                result: Err(e),
            }),
    );
    frames.push(PeerFrame::Error(ProtoError::WrongCluster));
    frames.push(PeerFrame::Members {
        index: LogIndex(146),
        members: vec![
            (NodeId(2), "10.0.1.2:7101".to_owned()),
            (NodeId(4), "10.0.1.4:7101".to_owned()),
        ],
    });
    frames
}

//! Writes the seed inputs of every target into `corpus/<target>/seed-*`:
//! the protocol's sample frames (one of every variant), a scripted session
//! against a node, real data directories written by the server's storage,
//! and real snapshots and backup files.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin seeds`; the fuzzer then
//! grows the corpora from them.

use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::{
    ClientCommand, Command, FencingToken, LockState, Mode, Seq, SessionId, Wait,
};
use distlock_core::proto::sample_frames::{client_frames, peer_frames, server_frames};
use distlock_core::proto::{
    ClientFrame, ClusterId, PROTOCOL_VERSION, PeerFrame, Request, RequestBody, RequestId,
    ServerFrame, encode,
};
use distlock_core::raft::{
    Entry, EntryPayload, HardState, Membership, Persist, PersistSeq, Snapshot, SnapshotMeta,
    StateMachine,
};
use distlock_fuzz::input::put_chunk;
use distlock_fuzz::snapshot::backup_file;
use distlock_fuzz::wal::scratch_dir;
use distlock_server::storage::{FileStorage, FileStorageOptions, FsyncPolicy, Storage};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn postcard<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out).expect("samples encode");
    out
}

fn framed<T: Serialize>(value: &T) -> Vec<u8> {
    let payload = postcard(value);
    let mut out = u32::try_from(payload.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&payload);
    out
}

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(root: &Path, target: &str) -> Self {
        let dir = root.join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        Self { dir, count: 0 }
    }

    fn add(&mut self, bytes: &[u8]) {
        let path = self.dir.join(format!("seed-{:03}", self.count));
        std::fs::write(path, bytes).expect("seed written");
        self.count += 1;
    }
}

fn client_hello() -> ClientFrame {
    ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: Some(ClusterId::new("fuzz")),
        auth: None,
    }
}

fn request(id: u64, body: RequestBody) -> ClientFrame {
    ClientFrame::Request(Request {
        id: RequestId(id),
        body,
    })
}

fn tcp(root: &Path) {
    let mut s = Seeds::new(root, "tcp");
    let hello = framed(&client_hello());
    for frame in client_frames() {
        s.add(&[&[0u8, 0][..], &hello, &framed(&frame)].concat());
    }
    let peer_hello = framed(&PeerFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: ClusterId::new("fuzz"),
        from: NodeId(2),
        auth: None,
    });
    for frame in peer_frames() {
        s.add(&[&[1u8, 0][..], &peer_hello, &framed(&frame)].concat());
    }
    for frame in server_frames() {
        let first = matches!(frame, ServerFrame::Welcome { .. });
        if first {
            s.add(&[&[2u8, 0][..], &framed(&frame)].concat());
        }
    }
    let welcome = server_frames()
        .into_iter()
        .find(|f| matches!(f, ServerFrame::Welcome { .. }))
        .expect("a Welcome sample");
    for frame in server_frames() {
        s.add(&[&[2u8, 0][..], &framed(&welcome), &framed(&frame)].concat());
    }
    // Too large for the small limits, and a frame cut short.
    s.add(&[&[0u8, 2][..], &hello].concat());
    s.add(&[0, 0, 0, 0, 0, 9, 0]);
}

/// A masked client WebSocket frame (mask 0: the payload reads as is).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | u8::try_from(len).expect("small"));
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&u16::try_from(len).expect("small").to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

fn ws(root: &Path) {
    let mut s = Seeds::new(root, "ws");
    for frame in client_frames() {
        let json = serde_json::to_string(&frame).expect("JSON");
        s.add(&[&[0u8][..], json.as_bytes()].concat());
        s.add(&[&[1u8][..], &postcard(&frame)].concat());
    }
    for frame in server_frames() {
        let json = serde_json::to_string(&frame).expect("JSON");
        s.add(&[&[2u8][..], json.as_bytes()].concat());
        s.add(&[&[3u8][..], &postcard(&frame)].concat());
    }
    let upgrade = "GET / HTTP/1.1\r\nHost: distlock.example:7201\r\nOrigin: http://allowed.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let hello = serde_json::to_string(&client_hello()).expect("JSON");
    for frame in client_frames().into_iter().take(8) {
        let json = serde_json::to_string(&frame).expect("JSON");
        s.add(
            &[
                &[4u8][..],
                upgrade.as_bytes(),
                &ws_frame(1, hello.as_bytes()),
                &ws_frame(1, json.as_bytes()),
                &ws_frame(8, &[3, 232]),
            ]
            .concat(),
        );
    }
    let binary_hello = postcard(&client_hello());
    s.add(
        &[
            &[4u8][..],
            upgrade.as_bytes(),
            &ws_frame(2, &binary_hello),
            &ws_frame(9, b"ping"),
        ]
        .concat(),
    );
    s.add(&[&[4u8][..], b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"].concat());
}

/// A node script's operations (see `distlock_fuzz::node`).
struct Script(Vec<u8>);

impl Script {
    fn client(&mut self, to: u8, conn: u8, frame: &ClientFrame) {
        self.0.extend_from_slice(&[conn << 4, to]);
        put_chunk(&mut self.0, &postcard(frame));
    }
    fn peer(&mut self, to: u8, from: u8, frame: &PeerFrame) {
        self.0.extend_from_slice(&[2 | (from << 4), to]);
        put_chunk(&mut self.0, &postcard(frame));
    }
    fn settle(&mut self) {
        self.0.extend_from_slice(&[7, 0]);
    }
    fn wait(&mut self, ms: u16) {
        self.0.extend_from_slice(&[3, 0]);
        self.0.extend_from_slice(&ms.to_le_bytes());
    }
}

fn session_script(setup: u8) -> Script {
    let mut s = Script(vec![setup]);
    s.settle();
    for to in 0..3 {
        s.client(to, 1, &client_hello());
    }
    s.client(
        0,
        1,
        &request(
            1,
            RequestBody::Log(ClientCommand::OpenSession {
                nonce: 7,
                ttl_ms: 10_000,
            }),
        ),
    );
    s.settle();
    for session in [2, 3] {
        let session = SessionId(session);
        let acquire = |seq, lock: &str, mode, wait| {
            RequestBody::Log(ClientCommand::Acquire {
                session,
                seq: Seq(seq),
                ack: Seq(seq),
                lock: lock.to_owned(),
                mode,
                wait,
                lock_delay_ms: 1_000,
            })
        };
        s.client(
            0,
            1,
            &request(2, acquire(1, "a", Mode::Exclusive, Wait::Try)),
        );
        s.client(
            0,
            1,
            &request(3, acquire(2, "b", Mode::Shared, Wait::Forever)),
        );
        s.client(0, 1, &request(4, RequestBody::KeepAlive { session }));
        s.settle();
        s.client(
            0,
            1,
            &request(
                5,
                RequestBody::Log(ClientCommand::Release {
                    session,
                    seq: Seq(3),
                    ack: Seq(3),
                    lock: "a".to_owned(),
                    token: FencingToken(4),
                }),
            ),
        );
        s.client(
            0,
            1,
            &request(
                6,
                RequestBody::Watch {
                    lock: "b".to_owned(),
                },
            ),
        );
        s.client(0, 1, &request(7, RequestBody::ClusterStatus));
        s.client(0, 1, &request(8, RequestBody::TakeSnapshot { max_len: 64 }));
        s.settle();
    }
    s.wait(20_000);
    s.settle();
    s
}

fn node(root: &Path) {
    let mut s = Seeds::new(root, "node");
    for setup in [0, 1] {
        s.add(&session_script(setup).0);
    }
    // Every request variant, after a leader is elected and a session opened.
    for setup in [0, 1] {
        let mut script = session_script(setup);
        for (i, frame) in client_frames().iter().enumerate() {
            script.client(u8::try_from(i % 3).expect("small"), 1, frame);
        }
        script.settle();
        s.add(&script.0);
    }
    // Forged peer frames of every variant, at a single server and at one
    // of three, claiming to come from member 2.
    for setup in [2, 3] {
        let mut script = Script(vec![setup]);
        script.settle();
        for frame in peer_frames() {
            script.peer(0, 2, &frame);
            script.settle();
        }
        s.add(&script.0);
    }
}

fn lock_state() -> LockState {
    let mut state = LockState::default();
    let commands = [
        Command::Client(ClientCommand::OpenSession {
            nonce: 1,
            ttl_ms: 10_000,
        }),
        Command::Client(ClientCommand::OpenSession {
            nonce: 2,
            ttl_ms: 5_000,
        }),
        Command::Client(ClientCommand::Acquire {
            session: SessionId(3),
            seq: Seq(1),
            ack: Seq(1),
            lock: "db".to_owned(),
            mode: Mode::Exclusive,
            wait: Wait::Try,
            lock_delay_ms: 500,
        }),
        Command::Client(ClientCommand::Acquire {
            session: SessionId(4),
            seq: Seq(1),
            ack: Seq(1),
            lock: "db".to_owned(),
            mode: Mode::Exclusive,
            wait: Wait::For(5_000),
            lock_delay_ms: 0,
        }),
        Command::Client(ClientCommand::Acquire {
            session: SessionId(4),
            seq: Seq(2),
            ack: Seq(1),
            lock: "pool".to_owned(),
            mode: Mode::Semaphore(3),
            wait: Wait::Try,
            lock_delay_ms: 0,
        }),
        Command::ExpireSession {
            session: SessionId(3),
        },
    ];
    for (i, command) in commands.iter().enumerate() {
        state.apply(LogIndex(3 + i as u64), command);
    }
    state
}

fn snapshot_of(state: &LockState, index: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_index: LogIndex(index),
            last_term: Term(2),
            membership: Membership::with_voters([NodeId(1)]),
        },
        data: Arc::from(state.snapshot()),
    }
}

/// The files of a data directory, packed as the `wal` target reads them.
fn pack_dir(options: u8, dir: &Path) -> Vec<u8> {
    let mut out = vec![options];
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("data directory")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .collect();
    names.sort();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).expect("file");
        let (kind, number) = if let Some(n) = name.strip_prefix("wal-") {
            (
                0,
                n.trim_end_matches(".log").parse::<u64>().expect("number"),
            )
        } else if let Some(n) = name.strip_prefix("snapshot-") {
            (2, n.parse::<u64>().expect("number"))
        } else {
            continue;
        };
        out.extend_from_slice(&[kind, u8::try_from(number).expect("small")]);
        put_chunk(&mut out, &bytes);
    }
    out
}

fn entry(index: u64, term: u64, payload: EntryPayload<Command>) -> Entry<Command> {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload,
    }
}

/// Writes a real data directory with the server's storage and packs it.
fn written(options: u8, snapshot_at: Option<u64>) -> Vec<u8> {
    let scratch = scratch_dir();
    let opts = FileStorageOptions {
        segment_size: if options & 1 == 0 { 256 } else { 64 << 20 },
        fsync: FsyncPolicy::Never,
        preallocate: 0,
    };
    let mut storage: FileStorage<Command> = FileStorage::open(scratch.path(), opts).expect("opens");
    storage.load().expect("loads");
    let open = |nonce| {
        Command::Client(ClientCommand::OpenSession {
            nonce,
            ttl_ms: 10_000,
        })
    };
    let mut seq = 0;
    let mut persist = |storage: &mut FileStorage<Command>, p: Persist<Command>| {
        seq += 1;
        storage
            .write(&Persist {
                seq: PersistSeq(seq),
                ..p
            })
            .expect("writes");
        storage.sync().expect("syncs");
    };
    let base = Persist {
        seq: PersistSeq(0),
        hard_state: None,
        truncate_from: None,
        entries: Vec::new(),
        snapshot: None,
    };
    persist(
        &mut storage,
        Persist {
            hard_state: Some(HardState {
                term: Term(1),
                voted_for: Some(NodeId(1)),
            }),
            entries: vec![
                entry(1, 1, EntryPayload::Noop),
                entry(2, 1, EntryPayload::Command(open(1))),
                entry(
                    3,
                    1,
                    EntryPayload::Membership(Membership::with_voters([NodeId(1), NodeId(2)])),
                ),
            ],
            ..base.clone()
        },
    );
    persist(
        &mut storage,
        Persist {
            hard_state: Some(HardState {
                term: Term(2),
                voted_for: None,
            }),
            truncate_from: Some(LogIndex(3)),
            entries: (3..12)
                .map(|i| entry(i, 2, EntryPayload::Command(open(u128::from(i)))))
                .collect(),
            ..base.clone()
        },
    );
    if let Some(at) = snapshot_at {
        persist(
            &mut storage,
            Persist {
                snapshot: Some(Box::new(snapshot_of(&lock_state(), at))),
                ..base.clone()
            },
        );
    }
    drop(storage);
    pack_dir(options, scratch.path())
}

fn wal(root: &Path) {
    let mut s = Seeds::new(root, "wal");
    for options in [0u8, 1, 2] {
        s.add(&written(options, None));
        s.add(&written(options, Some(9)));
    }
    // A torn tail, and records the harness frames.
    let mut torn = written(1, None);
    torn.truncate(torn.len() - 3);
    s.add(&torn);
    let hard_state = postcard(&(
        0u32,
        HardState {
            term: Term(3),
            voted_for: None,
        },
    ));
    let mut framed = vec![1u8, 1, 1];
    let mut records = vec![u8::try_from(hard_state.len()).expect("small")];
    records.extend_from_slice(&hard_state);
    put_chunk(&mut framed, &records);
    s.add(&framed);
}

fn snapshot(root: &Path) {
    let mut s = Seeds::new(root, "snapshot");
    let state = lock_state();
    s.add(&[&[0u8][..], &state.snapshot()].concat());
    s.add(&[&[0u8][..], &LockState::default().snapshot()].concat());
    let (file, header) = backup_file(
        LogIndex(20),
        Term(2),
        Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]),
        state.snapshot(),
    );
    s.add(&[&[1u8][..], &file].concat());
    let mut structured = vec![2u8];
    put_chunk(&mut structured, &header);
    structured.extend_from_slice(&state.snapshot());
    s.add(&structured);
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    tcp(root);
    ws(root);
    node(root);
    wal(root);
    snapshot(root);
    println!("seeds written under {}", root.join("corpus").display());
}

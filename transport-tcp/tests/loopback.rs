//! The transport over real loopback TCP: framing, limits, truncation,
//! handshakes and their refusals, deadlines.

use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::{FencingToken, SessionId};
use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterId, ForwardId, ForwardedRequest, LockEvent, MAX_FRAME_BYTES,
    MemberInfo, PROTOCOL_VERSION, PeerFrame, ProtoError, Request, RequestBody, RequestId, Response,
    ResponseBody, ServerFrame, WatchEvent, encode,
};
use distlock_core::raft::{Message, MessageBody};
use distlock_transport_tcp::{
    Admission, FrameError, FrameReader, FrameWriter, HandshakeConfig, TransportError, WelcomeInfo,
    accept_client, accept_peer, client_handshake, peer_handshake, read_frame_timeout,
};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A guard against hangs: every awaited step must finish well within this.
const GUARD: Duration = Duration::from_secs(10);

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (dialled.expect("connect"), accepted.expect("accept").0)
}

async fn guarded<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("step finished within the guard")
}

fn cluster() -> ClusterId {
    ClusterId::new("test-cluster")
}

fn admission() -> Admission {
    Admission {
        cluster_id: cluster(),
        auth: None,
    }
}

fn short() -> HandshakeConfig {
    HandshakeConfig {
        timeout: Duration::from_millis(100),
        ..HandshakeConfig::default()
    }
}

fn request(id: u64) -> ClientFrame {
    ClientFrame::Request(Request {
        id: RequestId(id),
        body: RequestBody::KeepAlive {
            session: SessionId(id * 7),
        },
    })
}

fn client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: Some(cluster()),
            auth: Some(AuthToken::new("secret")),
        },
        ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: None,
            auth: None,
        },
        request(1),
        ClientFrame::Request(Request {
            id: RequestId(u64::MAX),
            body: RequestBody::CheckToken {
                lock: "jobs/ü".to_owned(),
                token: FencingToken(9),
            },
        }),
    ]
}

fn server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome {
            node_id: NodeId(1),
            leader_hint: Some(NodeId(2)),
            members: vec![MemberInfo {
                id: NodeId(2),
                client_addr: "10.0.0.2:7000".to_owned(),
                ws_addr: Some("10.0.0.2:7001".to_owned()),
            }],
        },
        ServerFrame::Response(Response::ok(
            RequestId(3),
            ResponseBody::KeepAliveAck {
                session: SessionId(4),
            },
        )),
        ServerFrame::Response(Response::err(RequestId(5), ProtoError::NoLeader)),
        ServerFrame::Watch(WatchEvent {
            lock: "jobs".into(),
            event: LockEvent::Released {
                index: LogIndex(8),
                session: SessionId(4),
                token: FencingToken(11),
            },
        }),
        ServerFrame::Error(ProtoError::WrongCluster),
    ]
}

fn peer_frames() -> Vec<PeerFrame> {
    vec![
        PeerFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: cluster(),
            from: NodeId(3),
            auth: None,
        },
        PeerFrame::Raft(Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::Heartbeat {
                commit: LogIndex(4),
                round: 5,
            },
        }),
        PeerFrame::Forward {
            origin: NodeId(2),
            request: ForwardedRequest {
                id: ForwardId(6),
                body: RequestBody::LockStatus {
                    lock: "a".to_owned(),
                },
            },
        },
        PeerFrame::ForwardReply {
            id: ForwardId(6),
            result: Ok(ResponseBody::Watching),
        },
        PeerFrame::Error(ProtoError::Unauthorized),
    ]
}

#[tokio::test]
async fn every_frame_type_round_trips() {
    let (a, b) = pair().await;
    let mut writer = FrameWriter::new(a);
    let mut reader = FrameReader::new(b);
    for frame in client_frames() {
        guarded(writer.write_frame(&frame)).await.expect("write");
        guarded(writer.flush()).await.expect("flush");
        let got = guarded(reader.read_frame::<ClientFrame>()).await;
        assert_eq!(got.expect("read"), Some(frame));
    }
    for frame in server_frames() {
        guarded(writer.write_frame(&frame)).await.expect("write");
        guarded(writer.flush()).await.expect("flush");
        let got = guarded(reader.read_frame::<ServerFrame>()).await;
        assert_eq!(got.expect("read"), Some(frame));
    }
    for frame in peer_frames() {
        guarded(writer.write_frame(&frame)).await.expect("write");
        guarded(writer.flush()).await.expect("flush");
        let got = guarded(reader.read_frame::<PeerFrame>()).await;
        assert_eq!(got.expect("read"), Some(frame));
    }
}

#[tokio::test]
async fn many_frames_then_one_flush_arrive_in_order() {
    let (a, b) = pair().await;
    let mut writer = FrameWriter::new(a);
    let mut reader = FrameReader::new(b);
    let frames: Vec<ClientFrame> = (0..1_000).map(request).collect();
    let mut expected_bytes = 0;
    for frame in &frames {
        guarded(writer.write_frame(frame)).await.expect("write");
        let mut payload = Vec::new();
        encode(frame, &mut payload).expect("encodes");
        expected_bytes += 4 + payload.len();
    }
    // Below the high-water mark nothing has been written yet.
    assert_eq!(writer.pending(), expected_bytes);
    guarded(writer.flush()).await.expect("flush");
    assert_eq!(writer.pending(), 0);
    drop(writer);
    for frame in frames {
        let got = guarded(reader.read_frame::<ClientFrame>()).await;
        assert_eq!(got.expect("read"), Some(frame));
    }
    let end = guarded(reader.read_frame::<ClientFrame>()).await;
    assert_eq!(end.expect("clean end"), None);
}

#[tokio::test]
async fn a_large_batch_crosses_the_high_water_mark_intact() {
    let (a, b) = pair().await;
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| vec![u8::try_from(i % 251).expect("fits"); 4_000])
        .collect();
    let sent = frames.clone();
    let writing = tokio::spawn(async move {
        let mut writer = FrameWriter::new(a);
        for frame in &sent {
            writer.write_frame(frame).await.expect("write");
        }
        writer.flush().await.expect("flush");
    });
    let mut reader = FrameReader::new(b);
    for frame in frames {
        let got = guarded(reader.read_frame::<Vec<u8>>()).await;
        assert_eq!(got.expect("read"), Some(frame));
    }
    assert_eq!(
        guarded(reader.read_frame::<Vec<u8>>()).await.expect("end"),
        None
    );
    guarded(writing).await.expect("writer task");
}

#[tokio::test]
async fn an_oversized_prefix_is_refused_before_its_payload() {
    for announced in [MAX_FRAME_BYTES + 1, u32::MAX as usize] {
        let (mut a, b) = pair().await;
        let prefix = u32::try_from(announced).expect("fits").to_be_bytes();
        a.write_all(&prefix).await.expect("write prefix");
        a.flush().await.expect("flush");
        // Only the prefix was sent and `a` stays open: a reader waiting for
        // the payload would hang (and trip the guard).
        let mut reader = FrameReader::new(b);
        let got = guarded(reader.read_frame::<ClientFrame>()).await;
        match got {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(len, announced as u64);
                assert_eq!(max, MAX_FRAME_BYTES as u64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        drop(a);
    }
}

#[tokio::test]
async fn a_configured_limit_is_enforced_both_ways() {
    let (mut a, b) = pair().await;
    a.write_all(&101u32.to_be_bytes()).await.expect("write");
    a.flush().await.expect("flush");
    let mut reader = FrameReader::with_max_frame_bytes(b, 100);
    let got = guarded(reader.read_frame::<Vec<u8>>()).await;
    assert!(
        matches!(got, Err(FrameError::TooLarge { len: 101, max: 100 })),
        "{got:?}"
    );

    // The writer refuses too, and keeps what it had queued.
    let (c, d) = pair().await;
    let mut writer = FrameWriter::with_max_frame_bytes(c, 100);
    guarded(writer.write_frame(&vec![1u8; 99]))
        .await
        .expect("99 + 1 bytes fit");
    let queued = writer.pending();
    let err = guarded(writer.write_frame(&vec![1u8; 100])).await;
    assert!(
        matches!(
            err,
            Err(FrameError::OutgoingTooLarge { len: 101, max: 100 })
        ),
        "{err:?}"
    );
    assert_eq!(writer.pending(), queued);
    guarded(writer.flush()).await.expect("flush");
    drop(writer);
    let mut reader = FrameReader::with_max_frame_bytes(d, 100);
    let got = guarded(reader.read_frame::<Vec<u8>>()).await;
    assert_eq!(got.expect("read"), Some(vec![1u8; 99]));
    assert_eq!(
        guarded(reader.read_frame::<Vec<u8>>()).await.expect("end"),
        None
    );
}

#[tokio::test]
async fn frames_of_the_limit_and_one_below_are_accepted() {
    // A Vec<u8> of n < 2^21 bytes encodes as a 3-byte varint and the bytes.
    let at_limit = vec![7u8; MAX_FRAME_BYTES - 3];
    let below = vec![8u8; MAX_FRAME_BYTES - 4];
    for frame in [&at_limit, &below] {
        let mut payload = Vec::new();
        encode(frame, &mut payload).expect("encodes");
        assert!(payload.len() == MAX_FRAME_BYTES || payload.len() == MAX_FRAME_BYTES - 1);
    }
    let (a, b) = pair().await;
    let sent = [at_limit.clone(), below.clone()];
    let writing = tokio::spawn(async move {
        let mut writer = FrameWriter::new(a);
        for frame in &sent {
            writer.write_frame(frame).await.expect("write");
        }
        writer.flush().await.expect("flush");
    });
    let mut reader = FrameReader::new(b);
    let got = guarded(reader.read_frame::<Vec<u8>>()).await;
    assert_eq!(got.expect("limit accepted"), Some(at_limit));
    let got = guarded(reader.read_frame::<Vec<u8>>()).await;
    assert_eq!(got.expect("limit - 1 accepted"), Some(below));
    guarded(writing).await.expect("writer task");
}

#[tokio::test]
async fn a_frame_cut_short_is_an_error() {
    // The payload is cut.
    let (mut a, b) = pair().await;
    a.write_all(&10u32.to_be_bytes()).await.expect("write");
    a.write_all(&[1, 2, 3]).await.expect("write");
    a.shutdown().await.expect("shutdown");
    let mut reader = FrameReader::new(b);
    let got = guarded(reader.read_frame::<ClientFrame>()).await;
    assert!(
        matches!(
            got,
            Err(FrameError::Truncated {
                received: 7,
                expected: 14
            })
        ),
        "{got:?}"
    );

    // Only a prefix, then the end.
    let (mut a, b) = pair().await;
    a.write_all(&10u32.to_be_bytes()).await.expect("write");
    a.shutdown().await.expect("shutdown");
    let mut reader = FrameReader::new(b);
    let got = guarded(reader.read_frame::<ClientFrame>()).await;
    assert!(
        matches!(got, Err(FrameError::Truncated { received: 4, .. })),
        "{got:?}"
    );

    // The prefix itself is cut.
    let (mut a, b) = pair().await;
    a.write_all(&[0, 0]).await.expect("write");
    a.shutdown().await.expect("shutdown");
    let mut reader = FrameReader::new(b);
    let got = guarded(reader.read_frame::<ClientFrame>()).await;
    assert!(
        matches!(
            got,
            Err(FrameError::Truncated {
                received: 2,
                expected: 4
            })
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_garbage_payload_is_malformed() {
    let (mut a, b) = pair().await;
    let garbage = [0xff; 12];
    a.write_all(&12u32.to_be_bytes()).await.expect("write");
    a.write_all(&garbage).await.expect("write");
    a.flush().await.expect("flush");
    let mut reader = FrameReader::new(b);
    let got = guarded(reader.read_frame::<ClientFrame>()).await;
    let err = got.expect_err("garbage does not decode");
    assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
    assert!(matches!(err.to_proto(), Some(ProtoError::Malformed { .. })));
    assert!(TransportError::from(err).to_string().contains("malformed"));
}

#[tokio::test]
async fn a_clean_end_is_none() {
    let (a, b) = pair().await;
    drop(a);
    let mut reader = FrameReader::new(b);
    let got = guarded(reader.read_frame::<ClientFrame>()).await;
    assert_eq!(got.expect("clean end"), None);
}

#[tokio::test]
async fn a_read_interrupted_mid_frame_resumes() {
    let (mut a, b) = pair().await;
    let frame = request(42);
    let mut payload = Vec::new();
    encode(&frame, &mut payload).expect("encodes");
    let len = u32::try_from(payload.len()).expect("fits");
    a.write_all(&len.to_be_bytes()).await.expect("write");
    a.write_all(&payload[..2]).await.expect("write");
    a.flush().await.expect("flush");
    let mut reader = FrameReader::new(b);
    let idle = read_frame_timeout::<_, ClientFrame>(&mut reader, Duration::from_millis(50)).await;
    assert!(
        matches!(idle, Err(TransportError::IdleTimeout(_))),
        "{idle:?}"
    );
    a.write_all(&payload[2..]).await.expect("write");
    a.flush().await.expect("flush");
    let got = guarded(reader.read_frame::<ClientFrame>()).await;
    assert_eq!(got.expect("read"), Some(frame));
}

#[tokio::test]
async fn client_handshake_happy_path() {
    let (a, b) = pair().await;
    let server = tokio::spawn(async move {
        let pending = accept_client(b, &admission(), &HandshakeConfig::default())
            .await
            .expect("accepted");
        assert_eq!(pending.hello().cluster_id, Some(cluster()));
        assert_eq!(pending.hello().protocol_version, PROTOCOL_VERSION);
        let (mut reader, mut writer) = pending
            .welcome(WelcomeInfo {
                node_id: NodeId(1),
                leader_hint: Some(NodeId(2)),
                members: Vec::new(),
            })
            .await
            .expect("welcome sent");
        let got = reader.read_frame::<ClientFrame>().await.expect("read");
        assert_eq!(got, Some(request(9)));
        writer
            .write_frame(&ServerFrame::Response(Response::err(
                RequestId(9),
                ProtoError::NoLeader,
            )))
            .await
            .expect("write");
        writer.flush().await.expect("flush");
    });
    let (mut reader, mut writer, welcome) = guarded(client_handshake(
        a,
        Some(cluster()),
        None,
        &HandshakeConfig::default(),
    ))
    .await
    .expect("welcomed");
    assert_eq!(welcome.node_id, NodeId(1));
    assert_eq!(welcome.leader_hint, Some(NodeId(2)));
    guarded(writer.write_frame(&request(9)))
        .await
        .expect("write");
    guarded(writer.flush()).await.expect("flush");
    let got = guarded(reader.read_frame::<ServerFrame>())
        .await
        .expect("read");
    assert_eq!(
        got,
        Some(ServerFrame::Response(Response::err(
            RequestId(9),
            ProtoError::NoLeader
        )))
    );
    guarded(server).await.expect("server task");
}

#[tokio::test]
async fn the_runtime_can_refuse_a_client_after_the_hello() {
    let (a, b) = pair().await;
    let server = tokio::spawn(async move {
        let pending = accept_client(b, &admission(), &HandshakeConfig::default())
            .await
            .expect("accepted by the transport");
        pending.refuse(ProtoError::ShuttingDown).await
    });
    let got = guarded(client_handshake(a, None, None, &HandshakeConfig::default())).await;
    assert!(
        matches!(got, Err(TransportError::Refused(ProtoError::ShuttingDown))),
        "{got:?}"
    );
    let server_side = guarded(server).await.expect("server task");
    assert!(matches!(
        server_side,
        TransportError::Rejected(ProtoError::ShuttingDown)
    ));
}

#[tokio::test]
async fn a_client_of_another_cluster_is_refused() {
    let (a, b) = pair().await;
    let server =
        tokio::spawn(
            async move { accept_client(b, &admission(), &HandshakeConfig::default()).await },
        );
    let got = guarded(client_handshake(
        a,
        Some(ClusterId::new("elsewhere")),
        None,
        &HandshakeConfig::default(),
    ))
    .await;
    assert!(
        matches!(got, Err(TransportError::Refused(ProtoError::WrongCluster))),
        "{got:?}"
    );
    let server_side = guarded(server).await.expect("server task");
    assert!(
        matches!(
            server_side,
            Err(TransportError::Rejected(ProtoError::WrongCluster))
        ),
        "{server_side:?}"
    );
}

/// Sends `first` raw as the first frame and returns what the server
/// answers, checking that the connection is closed after it.
async fn refusal_of(first: &[u8], admission: Admission) -> ProtoError {
    let (mut a, b) = pair().await;
    let server =
        tokio::spawn(
            async move { accept_client(b, &admission, &HandshakeConfig::default()).await },
        );
    let len = u32::try_from(first.len()).expect("fits");
    a.write_all(&len.to_be_bytes()).await.expect("write");
    a.write_all(first).await.expect("write");
    a.flush().await.expect("flush");
    let mut reader = FrameReader::new(a);
    let answer = guarded(reader.read_frame::<ServerFrame>())
        .await
        .expect("read");
    let Some(ServerFrame::Error(error)) = answer else {
        panic!("expected an error frame, got {answer:?}");
    };
    let end = guarded(reader.read_frame::<ServerFrame>())
        .await
        .expect("read");
    assert_eq!(end, None, "the server closes after the error");
    drop(reader);
    let server_side = guarded(server).await.expect("server task");
    match server_side {
        Err(TransportError::Rejected(e)) => assert_eq!(e, error),
        other => panic!("expected Rejected, got {other:?}"),
    }
    error
}

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out).expect("encodes");
    out
}

#[tokio::test]
async fn a_client_of_another_version_is_refused() {
    let hello = ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION + 1,
        cluster_id: None,
        auth: None,
    };
    let error = refusal_of(&encoded(&hello), admission()).await;
    assert_eq!(
        error,
        ProtoError::UnsupportedVersion {
            server: PROTOCOL_VERSION,
            client: PROTOCOL_VERSION + 1
        }
    );

    // A future Hello that no longer decodes is still told the version.
    let mut future = encoded(&(0u32, 9u32));
    future.extend_from_slice(&[7, 7, 7]);
    let error = refusal_of(&future, admission()).await;
    assert_eq!(
        error,
        ProtoError::UnsupportedVersion {
            server: PROTOCOL_VERSION,
            client: 9
        }
    );
}

#[tokio::test]
async fn other_bad_first_frames_are_refused() {
    let error = refusal_of(&[0xff; 8], admission()).await;
    assert!(matches!(error, ProtoError::Malformed { .. }), "{error:?}");

    let error = refusal_of(&encoded(&request(1)), admission()).await;
    assert_eq!(error, ProtoError::HelloRequired);

    let guarded_cluster = Admission {
        cluster_id: cluster(),
        auth: Some(AuthToken::new("right")),
    };
    let hello = ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: None,
        auth: Some(AuthToken::new("wrong")),
    };
    let error = refusal_of(&encoded(&hello), guarded_cluster.clone()).await;
    assert_eq!(error, ProtoError::Unauthorized);
    let hello = ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: None,
        auth: None,
    };
    let error = refusal_of(&encoded(&hello), guarded_cluster).await;
    assert_eq!(error, ProtoError::Unauthorized);
}

#[tokio::test]
async fn an_oversized_first_frame_is_refused() {
    let (mut a, b) = pair().await;
    let server =
        tokio::spawn(
            async move { accept_client(b, &admission(), &HandshakeConfig::default()).await },
        );
    let announced = u32::try_from(MAX_FRAME_BYTES + 1).expect("fits");
    a.write_all(&announced.to_be_bytes()).await.expect("write");
    a.flush().await.expect("flush");
    let mut reader = FrameReader::new(a);
    let answer = guarded(reader.read_frame::<ServerFrame>())
        .await
        .expect("read");
    assert!(
        matches!(
            answer,
            Some(ServerFrame::Error(ProtoError::FrameTooLarge { .. }))
        ),
        "{answer:?}"
    );
    let server_side = guarded(server).await.expect("server task");
    assert!(matches!(
        server_side,
        Err(TransportError::Rejected(ProtoError::FrameTooLarge { .. }))
    ));
}

#[tokio::test]
async fn peer_handshake_happy_path() {
    let (a, b) = pair().await;
    let auth = Some(AuthToken::new("cluster-secret"));
    let admission = Admission {
        cluster_id: cluster(),
        auth: auth.clone(),
    };
    let server =
        tokio::spawn(async move { accept_peer(b, &admission, &HandshakeConfig::default()).await });
    let (_reader, mut writer) = guarded(peer_handshake(
        a,
        cluster(),
        NodeId(7),
        auth,
        &HandshakeConfig::default(),
    ))
    .await
    .expect("hello sent");
    let frame = peer_frames().swap_remove(1);
    guarded(writer.write_frame(&frame)).await.expect("write");
    guarded(writer.flush()).await.expect("flush");
    let (from, mut reader, _writer) = guarded(server)
        .await
        .expect("server task")
        .expect("accepted");
    assert_eq!(from, NodeId(7));
    let got = guarded(reader.read_frame::<PeerFrame>())
        .await
        .expect("read");
    assert_eq!(got, Some(frame));
}

#[tokio::test]
async fn a_peer_of_another_cluster_or_version_is_refused() {
    for (hello, expected) in [
        (
            PeerFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id: ClusterId::new("elsewhere"),
                from: NodeId(2),
                auth: None,
            },
            ProtoError::WrongCluster,
        ),
        (
            PeerFrame::Hello {
                protocol_version: PROTOCOL_VERSION + 3,
                cluster_id: cluster(),
                from: NodeId(2),
                auth: None,
            },
            ProtoError::UnsupportedVersion {
                server: PROTOCOL_VERSION,
                client: PROTOCOL_VERSION + 3,
            },
        ),
        (
            PeerFrame::Error(ProtoError::NoLeader),
            ProtoError::HelloRequired,
        ),
    ] {
        let (a, b) = pair().await;
        let server =
            tokio::spawn(
                async move { accept_peer(b, &admission(), &HandshakeConfig::default()).await },
            );
        let (r, w) = tokio::io::split(a);
        let mut writer = FrameWriter::new(w);
        let mut reader = FrameReader::new(r);
        guarded(writer.write_frame(&hello)).await.expect("write");
        guarded(writer.flush()).await.expect("flush");
        let answer = guarded(reader.read_frame::<PeerFrame>())
            .await
            .expect("read");
        assert_eq!(answer, Some(PeerFrame::Error(expected.clone())));
        let end = guarded(reader.read_frame::<PeerFrame>())
            .await
            .expect("read");
        assert_eq!(end, None, "the server closes after the error");
        drop((reader, writer));
        let server_side = guarded(server).await.expect("server task");
        match server_side {
            Err(TransportError::Rejected(e)) => assert_eq!(e, expected),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_client_times_out_the_server_handshake() {
    let (a, b) = pair().await;
    let got = guarded(accept_client(b, &admission(), &short())).await;
    assert!(
        matches!(got, Err(TransportError::HandshakeTimeout(_))),
        "{got:?}"
    );
    let (c, d) = pair().await;
    let got = guarded(accept_peer(d, &admission(), &short())).await;
    assert!(
        matches!(got, Err(TransportError::HandshakeTimeout(_))),
        "{got:?}"
    );
    drop((a, c));
}

#[tokio::test]
async fn a_silent_server_times_out_the_client_handshake() {
    let (a, b) = pair().await;
    let got = guarded(client_handshake(a, None, None, &short())).await;
    assert!(
        matches!(got, Err(TransportError::HandshakeTimeout(_))),
        "{got:?}"
    );
    assert!(
        got.expect_err("timed out")
            .to_string()
            .contains("handshake")
    );
    drop(b);
}

#[tokio::test]
async fn a_server_closing_without_answer_is_reported() {
    let (a, b) = pair().await;
    drop(b);
    let got = guarded(client_handshake(a, None, None, &HandshakeConfig::default())).await;
    assert!(
        matches!(got, Err(TransportError::Closed | TransportError::Io(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_times_out() {
    let (a, b) = pair().await;
    let mut reader = FrameReader::new(b);
    let got = read_frame_timeout::<_, ClientFrame>(&mut reader, Duration::from_millis(50)).await;
    let err = got.expect_err("idle");
    assert!(matches!(err, TransportError::IdleTimeout(_)), "{err:?}");
    assert!(err.to_string().contains("idle"));
    drop(a);
}

//! What one client can take from a server, against real servers: each
//! limit is answered with its typed error, and the server goes on serving
//! others.
//! - one client opening sessions without end is refused `TooManySessions`
//!   long before 100,000;
//! - connections that announce a 1 MiB frame and go quiet hold no
//!   megabyte each, and are cut at the frame deadline (TCP and WebSocket);
//! - a near-1 MiB `Acquire` is refused before it reaches the log;
//! - watches, requests in flight, request rate and connections per source
//!   are limited.

use distlock_core::locks::{ClientCommand, LockError, Mode, Seq, SessionId, Wait};
use distlock_core::proto::{
    ClientFrame, ProtoError, Request, RequestBody, RequestId, ResponseBody, ServerFrame,
};
use distlock_tests::{Conn, PATIENCE, Server, free_addr, within};
use distlock_transport_tcp::TransportError;
use std::io::{Read, Write};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn server_with(flags: &[&str]) -> Server {
    let mut s = Server::new(
        1,
        free_addr(),
        free_addr(),
        flags.iter().map(|f| (*f).to_owned()).collect(),
    );
    s.start();
    s
}

/// Sends every body at once on `conn` and returns the answers, in order.
async fn pipeline(
    conn: &mut Conn,
    bodies: Vec<RequestBody>,
) -> Vec<Result<ResponseBody, ProtoError>> {
    let n = bodies.len();
    for (i, body) in bodies.into_iter().enumerate() {
        let id = RequestId(1_000_000 + i as u64);
        conn.writer
            .write_frame(&ClientFrame::Request(Request { id, body }))
            .await
            .expect("send");
    }
    conn.writer.flush().await.expect("flush");
    let mut answers: Vec<Option<Result<ResponseBody, ProtoError>>> = vec![None; n];
    let mut got = 0;
    while got < n {
        let frame = within("answers", PATIENCE, conn.reader.read_frame::<ServerFrame>())
            .await
            .expect("read")
            .expect("open");
        if let ServerFrame::Response(r) = frame {
            let i = usize::try_from(r.id.0 - 1_000_000).expect("index");
            answers[i] = Some(r.result);
            got += 1;
        }
    }
    answers.into_iter().map(|a| a.expect("answered")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_open_a_hundred_thousand_sessions() {
    let server = server_with(&[]);
    let mut conn = Conn::connect(server.client_addr).await;
    // Once there is a leader (this one counts too).
    conn.open_session(u128::MAX, 60_000).await;
    let mut opened = 1u32;
    let mut refusal = None;
    'open: for batch in 0..400u128 {
        let bodies = (0..250u128)
            .map(|i| {
                RequestBody::Log(ClientCommand::OpenSession {
                    nonce: batch * 1000 + i + 1,
                    ttl_ms: 60_000,
                })
            })
            .collect();
        for answer in pipeline(&mut conn, bodies).await {
            match answer {
                Ok(ResponseBody::SessionOpened { .. }) => opened += 1,
                Err(e) => {
                    refusal = Some(e);
                    break 'open;
                }
                other => panic!("open answered {other:?}"),
            }
        }
    }
    assert_eq!(
        refusal,
        Some(ProtoError::TooManySessions { max: 1024 }),
        "after {opened} sessions"
    );
    assert!(opened <= 1024, "{opened} sessions opened");
    // The server still serves.
    let mut other = Conn::connect(server.client_addr).await;
    assert!(matches!(
        other.ask(RequestBody::ClusterStatus).await,
        Ok(ResponseBody::ClusterStatus(_))
    ));
}

/// The peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_connections_announcing_a_megabyte_hold_none_and_are_cut() {
    let mut server = server_with(&["--limit-frame-timeout", "2s"]);
    let pid = server.pid().expect("running");
    // Up, and its peak so far.
    Conn::connect(server.client_addr).await;
    let before = peak_rss_kib(pid);
    let mut conns = Vec::new();
    for _ in 0..200 {
        let c = Conn::connect(server.client_addr).await;
        // A 1 MiB frame announced, and its first byte.
        let mut raw = c.writer.into_inner();
        raw.write_all(&[0, 0x10, 0, 0, 1]).await.expect("send");
        raw.flush().await.expect("flush");
        conns.push((c.reader, raw));
    }
    // Each is cut at the deadline with FrameTimeout.
    // (A new Welcome may come first, when the configuration changes.)
    for (reader, _) in &mut conns {
        let last = within("the cut", PATIENCE, async {
            loop {
                match reader.read_frame::<ServerFrame>().await.expect("read") {
                    Some(ServerFrame::Welcome { .. }) => {}
                    other => return other,
                }
            }
        })
        .await;
        assert_eq!(
            last,
            Some(ServerFrame::Error(ProtoError::FrameTimeout { secs: 2 }))
        );
    }
    let grown = peak_rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "200 quiet connections grew the server's peak memory by {grown} KiB"
    );
}

#[test]
fn a_trickling_websocket_message_is_cut() {
    let ws = free_addr();
    let _server = server_with(&["--ws-addr", &ws.to_string(), "--limit-frame-timeout", "2s"]);
    let mut s = distlock_tests::wait_until("the WebSocket port answers", PATIENCE, || {
        std::net::TcpStream::connect(ws).ok()
    });
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let upgrade = format!(
        "GET / HTTP/1.1\r\nHost: {ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(upgrade.as_bytes()).expect("upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A masked text message with the JSON Hello (mask 0: the bytes as they are).
    let hello = br#"{"Hello":{"protocol_version":1,"cluster_id":null,"auth":null}}"#;
    let mut frame = vec![
        0x81,
        0x80 | u8::try_from(hello.len()).expect("short"),
        0,
        0,
        0,
        0,
    ];
    frame.extend_from_slice(hello);
    s.write_all(&frame).expect("hello");
    // A binary message of 100 bytes announced, then a byte now and then.
    s.write_all(&[0x82, 0x80 | 100, 0, 0, 0, 0, 1])
        .expect("header");
    let reader = s.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        let mut s = reader;
        for _ in 0..40 {
            if s.write_all(&[1]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    // Everything the server sends until it closes: the Welcome, then the
    // error.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&seen).contains("FrameTimeout") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("FrameTimeout"), "{text}");
    let _ = trickle.join();
}

/// The bytes under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_megabyte_acquire_never_reaches_the_log() {
    let server = server_with(&[]);
    let mut conn = Conn::connect(server.client_addr).await;
    let session = conn.open_session(1, 10_000).await;
    conn.acquire_try(session, 1, "small").await;
    let before = dir_bytes(&server.data_dir());
    let name = "n".repeat((1 << 20) - 200);
    let answer = conn
        .ask(RequestBody::Log(ClientCommand::Acquire {
            session,
            seq: Seq(2),
            ack: Seq(2),
            lock: name,
            mode: Mode::Exclusive,
            wait: Wait::Try,
            lock_delay_ms: 0,
        }))
        .await;
    assert!(
        matches!(answer, Err(ProtoError::Lock(LockError::InvalidName { .. }))),
        "{answer:?}"
    );
    // A later entry is logged; the big one never was.
    conn.acquire_try(session, 3, "after").await;
    let grown = dir_bytes(&server.data_dir()).saturating_sub(before);
    assert!(grown < 64 * 1024, "the log grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_limited_per_connection() {
    let server = server_with(&["--limit-watches", "3"]);
    // Three, then refused; watching one of them again is fine.
    let mut w = Conn::connect(server.client_addr).await;
    for name in ["a", "b", "c", "a"] {
        let ok = w
            .ask(RequestBody::Watch {
                lock: name.to_owned(),
            })
            .await;
        assert_eq!(ok, Ok(ResponseBody::Watching), "{name}");
    }
    assert_eq!(
        w.ask(RequestBody::Watch {
            lock: "d".to_owned()
        })
        .await,
        Err(ProtoError::TooManyWatches { max: 3 })
    );
    // Unwatching makes room.
    assert_eq!(
        w.ask(RequestBody::Unwatch {
            lock: "b".to_owned()
        })
        .await,
        Ok(ResponseBody::Unwatched)
    );
    assert_eq!(
        w.ask(RequestBody::Watch {
            lock: "d".to_owned()
        })
        .await,
        Ok(ResponseBody::Watching)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_limited_per_connection() {
    let server = server_with(&["--limit-in-flight", "2"]);
    // Two acquires wait behind a holder; a third request is refused.
    let mut holder = Conn::connect(server.client_addr).await;
    let h = holder.open_session(11, 30_000).await;
    let t1 = holder.acquire_try(h, 1, "x1").await;
    holder.acquire_try(h, 2, "x2").await;
    let mut waiter = Conn::connect(server.client_addr).await;
    let s: SessionId = waiter.open_session(12, 30_000).await;
    let wait = |seq: u64, lock: &str| {
        RequestBody::Log(ClientCommand::Acquire {
            session: s,
            seq: Seq(seq),
            ack: Seq(1),
            lock: lock.to_owned(),
            mode: Mode::Exclusive,
            wait: Wait::Forever,
            lock_delay_ms: 0,
        })
    };
    for (i, body) in [wait(1, "x1"), wait(2, "x2")].into_iter().enumerate() {
        waiter
            .writer
            .write_frame(&ClientFrame::Request(Request {
                id: RequestId(100 + i as u64),
                body,
            }))
            .await
            .expect("send");
    }
    waiter.writer.flush().await.expect("flush");
    for lock in ["x1", "x2"] {
        holder
            .wait_lock(lock, "the acquire queues", |v| {
                v.is_some_and(|v| !v.waiters.is_empty())
            })
            .await;
    }
    assert_eq!(
        waiter.ask_once(RequestBody::ClusterStatus, PATIENCE).await,
        Some(Err(ProtoError::TooManyInFlight { max: 2 }))
    );
    // Once one is answered, there is room again.
    holder.release(h, 3, "x1", t1).await.expect("released");
    let mut answered = false;
    let deadline = std::time::Instant::now() + PATIENCE;
    while !answered {
        assert!(
            std::time::Instant::now() < deadline,
            "no room after an answer"
        );
        answered = matches!(
            waiter.ask_once(RequestBody::ClusterStatus, PATIENCE).await,
            Some(Ok(ResponseBody::ClusterStatus(_)))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_rate_is_limited_per_connection() {
    let server = server_with(&["--limit-rate", "5"]);
    let mut fast = Conn::connect(server.client_addr).await;
    let mut refused = None;
    for _ in 0..50 {
        if let Some(Err(e)) = fast.ask_once(RequestBody::ClusterStatus, PATIENCE).await {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused, Some(ProtoError::RateLimited { per_second: 5 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_address_are_limited() {
    let server = server_with(&["--limit-connections-per-source", "3"]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Conn::connect(server.client_addr).await);
    }
    let fourth = Conn::connect_as(server.client_addr, None).await;
    assert!(
        matches!(
            fourth,
            Err(TransportError::Refused(ProtoError::TooManyConnections {
                max: 3
            }))
        ),
        "{fourth:?}"
    );
    // A closed connection makes room.
    drop(held.pop());
    let deadline = std::time::Instant::now() + PATIENCE;
    while Conn::connect_as(server.client_addr, None).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

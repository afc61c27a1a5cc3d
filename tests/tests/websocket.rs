//! The WebSocket endpoint of real servers (issue 6): the handshake in both
//! encodings, JSON and binary round trips, malformed and oversized
//! messages (an error, a close, and no change of state), the `Origin`
//! allow-list, the dashboard page, and the Rust client library over
//! WebSocket failing over when its server is killed.

use distlock_client::{Client, ClientOptions, Transport};
use distlock_core::proto::{
    ClientFrame, PROTOCOL_VERSION, ProtoError, ServerFrame, decode, encode,
};
use distlock_tests::{Conn, PATIENCE, Server, free_addr, wait_until_async, within};
use distlock_transport_tcp::HandshakeConfig;
use distlock_transport_ws::futures_util::{SinkExt, StreamExt};
use distlock_transport_ws::tokio_tungstenite::tungstenite::client::IntoClientRequest;
use distlock_transport_ws::tokio_tungstenite::tungstenite::http::HeaderValue;
use distlock_transport_ws::tokio_tungstenite::tungstenite::{Error as WsLibError, Message};
use distlock_transport_ws::tokio_tungstenite::{WebSocketStream, client_async};
use distlock_transport_ws::{Encoding, ws_client_handshake};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALLOWED: &str = "https://ops.example.com";
const HELLO_JSON: &str = r#"{"Hello":{"protocol_version":1,"cluster_id":null,"auth":null}}"#;

/// One started server with a WebSocket address, and that address.
fn ws_server() -> (Server, SocketAddr) {
    let ws = free_addr();
    let mut s = Server::new(
        1,
        free_addr(),
        free_addr(),
        vec![
            "--ws-addr".to_owned(),
            ws.to_string(),
            "--ws-allow-origin".to_owned(),
            ALLOWED.to_owned(),
        ],
    );
    s.start();
    (s, ws)
}

type Ws = WebSocketStream<TcpStream>;

/// A raw WebSocket to `addr`, with `Origin: origin` if given.
async fn raw(addr: SocketAddr, origin: Option<&str>) -> Result<Ws, WsLibError> {
    let mut request = format!("ws://{addr}/").into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert(
            "Origin",
            HeaderValue::from_str(origin).expect("a valid header"),
        );
    }
    let stream = TcpStream::connect(addr).await.map_err(WsLibError::Io)?;
    client_async(request, stream).await.map(|(ws, _)| ws)
}

/// A raw WebSocket once the server accepts (it may still be starting).
async fn raw_ready(addr: SocketAddr) -> Ws {
    wait_until_async("the WebSocket endpoint accepts", PATIENCE, || async {
        raw(addr, None).await.ok()
    })
    .await
}

/// The next data message (pings and pongs skipped); `None` once closed.
async fn next_data(ws: &mut Ws) -> Option<Message> {
    within("a message", PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Some(m),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
}

/// The next text message as JSON.
async fn next_json(ws: &mut Ws) -> serde_json::Value {
    match next_data(ws).await {
        Some(Message::Text(t)) => serde_json::from_str(t.as_str()).expect("the server sends JSON"),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Sends JSON text and returns the answer to request `id`, skipping
/// anything else.
async fn ask_json(ws: &mut Ws, id: u64, body: &str) -> serde_json::Value {
    let text = format!(r#"{{"Request":{{"id":{id},"body":{body}}}}}"#);
    ws.send(Message::text(text)).await.expect("sent");
    loop {
        let v = next_json(ws).await;
        if v["Response"]["id"] == id {
            return v["Response"]["result"].clone();
        }
    }
}

/// Opens a JSON connection past the handshake, retrying while the
/// cluster has no leader yet, and returns it with the session it opened.
async fn json_session(addr: SocketAddr) -> (Ws, u64) {
    let mut ws = raw_ready(addr).await;
    ws.send(Message::text(HELLO_JSON))
        .await
        .expect("hello sent");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["Welcome"]["node_id"], 1, "{welcome}");
    // The nonce is u128::MAX: JSON numbers of any size are exact here.
    let open = r#"{"Log":{"OpenSession":{"nonce":340282366920938463463374607431768211455,"ttl_ms":30000}}}"#;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut id = 1;
    let session = loop {
        id += 1;
        let r = ask_json(&mut ws, id, open).await;
        if let Some(session) = r["Ok"]["SessionOpened"]["session"].as_u64() {
            break session;
        }
        // No leader yet (NoLeader): ask again, up to the deadline.
        assert!(tokio::time::Instant::now() < deadline, "no session: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (ws, session)
}

#[tokio::test]
async fn json_handshake_and_round_trips_speak_text() {
    let (_server, ws_addr) = ws_server();
    let mut ws = raw_ready(ws_addr).await;
    ws.send(Message::text(HELLO_JSON))
        .await
        .expect("hello sent");
    let welcome = next_json(&mut ws).await;
    let members = &welcome["Welcome"]["members"];
    assert_eq!(members[0]["ws_addr"], ws_addr.to_string(), "{welcome}");
    drop(ws);

    let (mut ws, session) = json_session(ws_addr).await;
    let acquire = format!(
        r#"{{"Log":{{"Acquire":{{"session":{session},"seq":1,"ack":1,"lock":"j","mode":"Exclusive","wait":"Try","lock_delay_ms":0}}}}}}"#
    );
    let r = ask_json(&mut ws, 100, &acquire).await;
    let token = r["Ok"]["Lock"]["Granted"]["token"]
        .as_u64()
        .unwrap_or_else(|| panic!("granted: {r}"));
    let r = ask_json(&mut ws, 101, r#"{"LockStatus":{"lock":"j"}}"#).await;
    assert_eq!(r["Ok"]["LockStatus"]["holders"][0]["token"], token, "{r}");
    let r = ask_json(&mut ws, 102, r#""ClusterStatus""#).await;
    assert_eq!(r["Ok"]["ClusterStatus"]["leader"], 1, "{r}");
    // A watch streams events as text too.
    let r = ask_json(&mut ws, 103, r#"{"Watch":{"lock":"j"}}"#).await;
    assert_eq!(r["Ok"], "Watching", "{r}");
    let release = format!(
        r#"{{"Log":{{"Release":{{"session":{session},"seq":2,"ack":2,"lock":"j","token":{token}}}}}}}"#
    );
    ws.send(Message::text(format!(
        r#"{{"Request":{{"id":104,"body":{release}}}}}"#
    )))
    .await
    .expect("sent");
    let mut saw = (false, false);
    while saw != (true, true) {
        let v = next_json(&mut ws).await;
        if v["Watch"]["event"]["Released"]["token"] == token {
            saw.0 = true;
        }
        if v["Response"]["id"] == 104 {
            assert_eq!(v["Response"]["result"]["Ok"]["Lock"], "Released", "{v}");
            saw.1 = true;
        }
    }
}

#[tokio::test]
async fn binary_handshake_and_the_client_library_over_websocket() {
    let (_server, ws_addr) = ws_server();
    let _ = raw_ready(ws_addr).await;
    let stream = TcpStream::connect(ws_addr).await.expect("connects");
    let (_r, _w, welcome) = ws_client_handshake(
        stream,
        &ws_addr.to_string(),
        Encoding::Binary,
        None,
        None,
        &HandshakeConfig::default(),
    )
    .await
    .expect("welcomed");
    assert_eq!(welcome.members[0].ws_addr, Some(ws_addr.to_string()));

    let client = Client::connect_ws(vec![ws_addr], ClientOptions::default())
        .await
        .expect("connects");
    let session = within(
        "open",
        PATIENCE,
        client.open_session(Duration::from_secs(10)),
    )
    .await
    .expect("session");
    let guard = within("lock", PATIENCE, session.lock("b"))
        .await
        .expect("lock");
    assert!(guard.token().0 > 0);
    assert!(
        within("try", PATIENCE, session.try_lock("b"))
            .await
            .is_err(),
        "already held by this session"
    );
    within("release", PATIENCE, guard.release())
        .await
        .expect("released");
    within("close", PATIENCE, session.close())
        .await
        .expect("closed");
}

#[tokio::test]
async fn malformed_messages_get_errors_and_change_nothing() {
    let (server, ws_addr) = ws_server();
    let (mut ws, session) = json_session(ws_addr).await;
    let acquire = format!(
        r#"{{"Log":{{"Acquire":{{"session":{session},"seq":1,"ack":1,"lock":"m","mode":"Exclusive","wait":"Try","lock_delay_ms":0}}}}}}"#
    );
    let r = ask_json(&mut ws, 50, &acquire).await;
    assert!(r["Ok"]["Lock"]["Granted"].is_object(), "{r}");
    let mut tcp = Conn::connect(server.client_addr).await;
    let before = (
        tcp.lock_status("m").await,
        tcp.cluster_status().await.commit_index,
    );

    // Broken JSON, then JSON of the wrong shape: an error and a close each.
    for bad in [
        r#"{"Request":"#,
        r#"{"Request":{"id":1,"body":{"Explode":{}}}}"#,
    ] {
        let mut ws = raw_ready(ws_addr).await;
        ws.send(Message::text(HELLO_JSON))
            .await
            .expect("hello sent");
        assert!(next_json(&mut ws).await["Welcome"].is_object());
        ws.send(Message::text(bad)).await.expect("sent");
        let v = next_json(&mut ws).await;
        assert!(v["Error"]["Malformed"]["reason"].is_string(), "{v}");
        assert!(next_data(&mut ws).await.is_none(), "closed after the error");
    }
    // Binary garbage on a binary connection: a binary error.
    let mut bin = raw_ready(ws_addr).await;
    let mut hello = Vec::new();
    encode(
        &ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: None,
            auth: None,
        },
        &mut hello,
    )
    .expect("encodes");
    bin.send(Message::binary(hello)).await.expect("sent");
    let garbage = vec![
        1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 77,
    ];
    bin.send(Message::binary(garbage)).await.expect("sent");
    let mut frames = Vec::new();
    while let Some(m) = next_data(&mut bin).await {
        match m {
            Message::Binary(b) => frames.push(decode::<ServerFrame>(&b).expect("postcard")),
            other => panic!("expected binary messages, got {other:?}"),
        }
    }
    assert!(
        matches!(
            frames.as_slice(),
            [
                ServerFrame::Welcome { .. },
                ServerFrame::Error(ProtoError::Malformed { .. })
            ]
        ),
        "{frames:?}"
    );
    // A request before the Hello.
    let mut early = raw_ready(ws_addr).await;
    early
        .send(Message::text(
            r#"{"Request":{"id":1,"body":"ClusterStatus"}}"#,
        ))
        .await
        .expect("sent");
    assert_eq!(next_json(&mut early).await["Error"], "HelloRequired");

    let after = (
        tcp.lock_status("m").await,
        tcp.cluster_status().await.commit_index,
    );
    assert_eq!(before, after, "bad input changed the state");
    // The session and its first connection are untouched.
    let r = ask_json(&mut ws, 51, r#"{"LockStatus":{"lock":"m"}}"#).await;
    assert_eq!(
        r["Ok"]["LockStatus"]["holders"][0]["session"], session,
        "{r}"
    );
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let (_server, ws_addr) = ws_server();
    let mut ws = raw_ready(ws_addr).await;
    ws.send(Message::text(HELLO_JSON))
        .await
        .expect("hello sent");
    let _welcome = next_json(&mut ws).await;
    let big = format!(
        r#"{{"Request":{{"id":1,"body":{{"LockStatus":{{"lock":"{}"}}}}}}}}"#,
        "x".repeat((1 << 20) + 10)
    );
    // The server refuses as soon as the length is announced, so the send
    // itself may fail half-way; the error frame arrives all the same.
    let _ = ws.send(Message::text(big)).await;
    match next_data(&mut ws).await {
        Some(Message::Text(t)) => {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON");
            assert_eq!(v["Error"]["FrameTooLarge"]["max"], 1 << 20, "{v}");
        }
        None => panic!("closed without the FrameTooLarge error"),
        other => panic!("expected the FrameTooLarge error, got {other:?}"),
    }
    assert!(
        next_data(&mut ws).await.is_none(),
        "the connection is closed"
    );
}

#[tokio::test]
async fn browser_origins_must_be_allowed() {
    let (_server, ws_addr) = ws_server();
    let _ = raw_ready(ws_addr).await;
    match raw(ws_addr, Some("https://evil.example")).await {
        Err(WsLibError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    for origin in [ALLOWED.to_owned(), format!("http://{ws_addr}")] {
        let mut ws = raw(ws_addr, Some(&origin)).await.expect("allowed origin");
        ws.send(Message::text(HELLO_JSON)).await.expect("sent");
        assert!(next_json(&mut ws).await["Welcome"].is_object(), "{origin}");
    }
}

#[tokio::test]
async fn the_dashboard_is_served_over_plain_http() {
    let (_server, ws_addr) = ws_server();
    let _ = raw_ready(ws_addr).await;
    let get = |path: &'static str| async move {
        let mut s = TcpStream::connect(ws_addr).await.expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ws_addr}\r\n\r\n");
        s.write_all(request.as_bytes()).await.expect("sent");
        let mut out = String::new();
        within("the response", PATIENCE, s.read_to_string(&mut out))
            .await
            .expect("read");
        out
    };
    let page = get("/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page:.200}");
    assert!(page.contains("text/html"), "{page:.300}");
    assert!(page.contains("<html"), "{page:.500}");
    assert!(get("/nothing").await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn websocket_clients_fail_over_when_their_server_dies() {
    let n = 3;
    let clients: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
    let peers: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
    let wss: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
    let list = |addrs: &[SocketAddr]| distlock_tests::member_list(addrs);
    let mut servers: Vec<Server> = (0..n)
        .map(|i| {
            let extra = [
                "--id",
                &(i + 1).to_string(),
                "--peers",
                &list(&peers),
                "--ws-addr",
                &wss[i].to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            let mut s = Server::new(i as u64 + 1, clients[i], peers[i], extra);
            s.start();
            s
        })
        .collect();
    let options = ClientOptions {
        transport: Transport::WebSocket,
        ..ClientOptions::default()
    };
    let client = wait_until_async("a WebSocket client connects", PATIENCE, || {
        let options = options.clone();
        let addr = wss[0];
        async move { Client::connect(vec![addr], options).await.ok() }
    })
    .await;
    let session = within(
        "open",
        PATIENCE,
        client.open_session(Duration::from_secs(10)),
    )
    .await
    .expect("session");
    let guard = within("lock", PATIENCE, session.lock("f"))
        .await
        .expect("lock");
    // The client talks to server 1 (it follows the leader only if server
    // 1 is not it; either way killing 1 and then the leader tests failover
    // to a member it learnt from the Welcome).
    servers[0].kill();
    let token = guard.token();
    within("release after failover", PATIENCE, guard.release())
        .await
        .expect("released through another server");
    let again = within("lock again", PATIENCE, session.lock("f"))
        .await
        .expect("locks again");
    assert!(again.token() > token);
    assert!(!session.is_lost());
    let mut tcp = Conn::connect(clients[1]).await;
    let status = tcp.lock_status("f").await.expect("held");
    assert_eq!(status.holders[0].token, again.token());
    match within("closing", PATIENCE, session.close()).await {
        Ok(()) => {}
        Err(e) => panic!("close failed: {e}"),
    }
}

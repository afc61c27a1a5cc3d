//! Authentication and authorization against a real server started with
//! `--auth-file`, as docs/SECURITY.md sets it up:
//! - a `Hello` without a valid token is answered `Unauthorized` and the
//!   connection closed;
//! - a principal without the admin right cannot change the membership
//!   (the command line and the raw request alike), nor lock or read
//!   outside its prefixes;
//! - a session belongs to the principal that opened it, even to one who
//!   learns its secret;
//! - tokens rotate without a restart;
//! - a server without authentication says so when it starts.

use distlock_core::auth::Right;
use distlock_core::locks::{ClientCommand, SessionId};
use distlock_core::proto::{AuthToken, ProtoError, RequestBody, ResponseBody};
use distlock_core::raft::{MemberAddrs, MembershipChange};
use distlock_tests::{Conn, PATIENCE, Server, distlock, free_addr, run_within, wait_until};
use distlock_transport_tcp::TransportError;
use std::path::PathBuf;
use std::time::Duration;

const APP: &str = "app-token-6b1d0c2f9e8a7d6c5b4a39281706f5e4";
const OPS: &str = "ops-token-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const OTHER: &str = "other-token-11223344556677889900aabbccddeeff";

/// `sha256:HEX` of a token, as `distlock auth hash-token` prints it.
fn hash(token: &str) -> String {
    let out = run_within(
        distlock().args(["auth", "hash-token", token]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn auth_file(app_tokens: &[&str]) -> String {
    let app: Vec<String> = app_tokens
        .iter()
        .map(|t| format!("{:?}", hash(t)))
        .collect();
    format!(
        r#"
peer_secret = "a-cluster-secret-of-enough-length"

[roles.billing]
lock = ["billing/"]
read = ["billing/"]

[roles.ops]
admin = true
read = [""]

[principals.app]
tokens = [{}]
roles = ["billing"]

[principals.other]
tokens = [{:?}]
roles = ["billing"]

[principals.ops]
tokens = [{:?}]
roles = ["ops"]
"#,
        app.join(", "),
        hash(OTHER),
        hash(OPS)
    )
}

/// A single server with authentication on; the auth file's path.
fn start(dir: &tempfile::TempDir) -> (Server, PathBuf) {
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, auth_file(&[APP])).expect("write the auth file");
    let mut server = Server::new(
        1,
        free_addr(),
        free_addr(),
        vec!["--auth-file".to_owned(), path.display().to_string()],
    );
    server.start();
    (server, path)
}

async fn connect(server: &Server, token: &str) -> Conn {
    let addr = server.client_addr;
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match Conn::connect_as(addr, Some(AuthToken::new(token))).await {
            Ok(c) => return c,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "no connection as {token}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_without_a_valid_token_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _) = start(&dir);
    // Up and accepting with a good token first.
    let mut ok = connect(&server, APP).await;
    assert!(matches!(
        ok.ask(RequestBody::ClusterStatus).await,
        Ok(ResponseBody::ClusterStatus(_))
    ));
    for auth in [
        None,
        Some(AuthToken::new("wrong")),
        Some(AuthToken::new("")),
    ] {
        let refused = Conn::connect_as(server.client_addr, auth).await;
        assert!(
            matches!(
                refused,
                Err(TransportError::Refused(ProtoError::Unauthorized))
            ),
            "{refused:?}"
        );
    }
    // The command line without a token is refused too, and says why.
    let servers = server.client_addr.to_string();
    let out = run_within(
        distlock().args(["status", "--servers", &servers]),
        Duration::from_secs(30),
    );
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unauthorized"), "{err}");
    // `lock` with a token the servers do not know is refused at once, and
    // says why.
    let out = run_within(
        distlock()
            .args([
                "lock",
                "--servers",
                &servers,
                "--try",
                "auth-x",
                "--",
                "true",
            ])
            .env("DISTLOCK_AUTH_TOKEN", "not-a-token"),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused by the server") && err.contains("unauthorized"),
        "{err}"
    );
    let out = run_within(
        distlock()
            .args(["status", "--servers", &servers])
            .env("DISTLOCK_AUTH_TOKEN", APP),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_right_changes_the_membership() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _) = start(&dir);
    let servers = server.client_addr.to_string();
    let (peer, client) = (free_addr().to_string(), free_addr().to_string());
    for (verb, extra) in [
        ("add", vec!["--peer-addr", &peer, "--client-addr", &client]),
        ("remove", vec![]),
    ] {
        let id = if verb == "add" { "2" } else { "1" };
        let out = run_within(
            distlock()
                .args([
                    "members",
                    verb,
                    id,
                    "--servers",
                    &servers,
                    "--timeout",
                    "5s",
                ])
                .args(&extra)
                .env("DISTLOCK_AUTH_TOKEN", APP),
            Duration::from_secs(60),
        );
        assert_ne!(out.status.code(), Some(0), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("forbidden"), "{verb}: {err}");
    }
    let add = RequestBody::ChangeMembership(MembershipChange::AddLearner(
        distlock_core::ids::NodeId(2),
        MemberAddrs {
            peer: peer.clone(),
            client: client.clone(),
            ws: None,
        },
    ));
    let mut app = connect(&server, APP).await;
    assert_eq!(
        app.ask(add.clone()).await,
        Err(ProtoError::Forbidden {
            right: Right::Admin,
            lock: None
        })
    );
    assert_eq!(
        app.ask(RequestBody::TakeSnapshot { max_len: 1024 }).await,
        Err(ProtoError::Forbidden {
            right: Right::Admin,
            lock: None
        })
    );
    // Still one member.
    let status = app.cluster_status().await;
    assert_eq!(status.members.len(), 1, "{status:?}");
    // The operator may.
    let mut ops = connect(&server, OPS).await;
    assert!(
        matches!(
            ops.ask(add).await,
            Ok(ResponseBody::MembershipChanged { .. })
        ),
        "the admin was refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_hold_on_their_prefixes_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _) = start(&dir);
    let mut app = connect(&server, APP).await;
    let session = app.open_session(7, 10_000).await;
    app.acquire_try(session, 1, "billing/nightly").await;
    let outside = app
        .ask(distlock_tests::acquire_body(session, 2, "payroll"))
        .await;
    assert_eq!(
        outside,
        Err(ProtoError::Forbidden {
            right: Right::Lock,
            lock: Some("payroll".to_owned())
        })
    );
    assert_eq!(
        app.ask(RequestBody::LockStatus {
            lock: "payroll".to_owned()
        })
        .await,
        Err(ProtoError::Forbidden {
            right: Right::Read,
            lock: Some("payroll".to_owned())
        })
    );
    // The operator reads everything but may not lock.
    let mut ops = connect(&server, OPS).await;
    assert!(ops.lock_status("billing/nightly").await.is_some());
    assert_eq!(
        ops.ask(RequestBody::Log(ClientCommand::OpenSession {
            nonce: 9,
            ttl_ms: 10_000
        }))
        .await,
        Err(ProtoError::Forbidden {
            right: Right::Lock,
            lock: None
        })
    );
    // `distlock lock` outside the prefix fails and says why.
    let servers = server.client_addr.to_string();
    let out = lock_as(&servers, APP, "payroll");
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forbidden"), "{err}");
    let out = lock_as(&servers, APP, "billing/x");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `distlock lock --try NAME -- true` as the principal of `token`.
fn lock_as(servers: &str, token: &str, name: &str) -> std::process::Output {
    run_within(
        distlock()
            .args(["lock", "--servers", servers, "--try", name, "--", "true"])
            .env("DISTLOCK_AUTH_TOKEN", token),
        Duration::from_secs(30),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_principal_that_opened_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _) = start(&dir);
    let nonce = 0x5eed_u128;
    let mut app = connect(&server, APP).await;
    let session: SessionId = app.open_session(nonce, 10_000).await;
    // Another principal with the same rights, who even knows the secret.
    let mut other = connect(&server, OTHER).await;
    assert_eq!(
        other
            .ask(RequestBody::Attach {
                session,
                secret: nonce
            })
            .await,
        Err(ProtoError::NotSessionOwner)
    );
    // The opener attaches it again on a new connection.
    let mut again = connect(&server, APP).await;
    assert_eq!(
        again
            .ask(RequestBody::Attach {
                session,
                secret: nonce
            })
            .await,
        Ok(ResponseBody::Attached { session })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, path) = start(&dir);
    let pid = server.pid();
    let new = "app-token-rotated-99887766554433221100ffee";
    connect(&server, APP).await;
    // Both tokens during the rotation, then the new one alone.
    std::fs::write(&path, auth_file(&[APP, new])).expect("rewrite");
    let addr = server.client_addr;
    let accepted = |token: &'static str| async move {
        Conn::connect_as(addr, Some(AuthToken::new(token)))
            .await
            .is_ok()
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while !accepted(new).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the new token is never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted(APP).await);
    std::fs::write(&path, auth_file(&[new])).expect("rewrite");
    let deadline = std::time::Instant::now() + PATIENCE;
    while accepted(APP).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the old token is never refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted(new).await);
    assert_eq!(server.pid(), pid, "the server restarted");
}

#[test]
fn a_server_without_authentication_says_so() {
    let server = Server::single();
    let log = server.log_path();
    wait_until("the start-up warning", PATIENCE, || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("authentication off").then_some(())
    });
}

/// Servers sharing an auth file with a `peer_secret` form a cluster; a
/// process that dials a peer port without the secret, claiming to be a
/// member, is refused `Unauthorized` before any of its frames counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_must_present_the_cluster_secret() {
    use distlock_core::ids::NodeId;
    use distlock_core::proto::{ClusterId, PeerFrame};
    use distlock_transport_tcp::{HandshakeConfig, peer_handshake};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, auth_file(&[APP])).expect("write the auth file");
    let path = path.display().to_string();
    let mut cluster = distlock_tests::Cluster::start_with(3, &["--auth-file", &path]);
    let servers = cluster.servers_arg();
    // A leader is elected over authenticated peer links.
    wait_until("a leader", PATIENCE, || {
        let out = run_within(
            distlock()
                .args(["status", "--json", "--servers", &servers])
                .env("DISTLOCK_AUTH_TOKEN", OPS),
            Duration::from_secs(30),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["leader"].is_u64().then_some(())
    });
    let victim = cluster.server(1).peer_addr;
    for secret in [None, Some(AuthToken::new("not-the-cluster-secret!"))] {
        let stream = tokio::net::TcpStream::connect(victim)
            .await
            .expect("the peer port accepts");
        let (mut reader, _writer) = peer_handshake(
            stream,
            ClusterId::new("distlock"),
            NodeId(2),
            secret,
            &HandshakeConfig::default(),
        )
        .await
        .expect("hello sent");
        let answer =
            distlock_tests::within("the refusal", PATIENCE, reader.read_frame::<PeerFrame>())
                .await
                .expect("read");
        assert!(
            matches!(answer, Some(PeerFrame::Error(ProtoError::Unauthorized))),
            "{answer:?}"
        );
    }
}

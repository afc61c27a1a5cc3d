//! TLS on every port of real servers: a 3-server cluster with TLS on the
//! client, WebSocket and peer ports serves locks over TCP and over wss; a
//! peer whose certificate names another node than its `Hello` claims is
//! refused; clients without TLS, or without the CA, are told what to fix;
//! SIGHUP reloads the certificates without dropping open connections; a
//! verified client certificate proves the principal that names it.
//! The certificates come from `distlock tls dev-ca`, made at test time.

use distlock_client::admin::cluster_status_with;
use distlock_client::stream::open_stream;
use distlock_client::{Client, ClientOptions, ClientTls, HostPort, PemSource, Transport};
use distlock_core::ids::NodeId;
use distlock_core::locks::FencingToken;
use distlock_core::proto::{ClusterId, PeerFrame, ProtoError};
use distlock_tests::{
    Cluster, PATIENCE, Server, distlock, free_addr, member_list, run_within, send_signal,
    wait_until, wait_until_async, within,
};
use distlock_transport_tcp::tls::{PemSource as Pem, ServerTls, TlsFiles, TlsRole};
use distlock_transport_tcp::{HandshakeConfig, peer_handshake};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `distlock tls dev-ca DIR --nodes N`, as a user runs it.
fn dev_ca(dir: &Path, nodes: u64) {
    let out = run_within(
        distlock()
            .args(["tls", "dev-ca"])
            .arg(dir)
            .args(["--nodes", &nodes.to_string()]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "distlock tls dev-ca failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `serve` flags for TLS on every port with node `id`'s certificate.
fn tls_flags(dir: &Path, id: u64) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        "--tls-cert".to_owned(),
        file(&format!("node-{id}.pem")),
        "--tls-key".to_owned(),
        file(&format!("node-{id}.key")),
        "--tls-ca".to_owned(),
        file("ca.pem"),
    ]
}

fn client_tls(dir: &Path) -> ClientTls {
    ClientTls::load(Some(&PemSource::File(dir.join("ca.pem"))), None, None).expect("client TLS")
}

fn first_cert(path: &PathBuf) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

/// Runs `distlock ARGS`; its exit status and stderr.
fn cli(args: &[&str]) -> (i32, String) {
    let out = run_within(distlock().args(args), Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Takes lock `tls-tcp` through `servers` over TLS with `transport`, frees
/// it, and returns the grant's token.
async fn take_and_free(
    servers: Vec<SocketAddr>,
    tls: &ClientTls,
    transport: Transport,
) -> FencingToken {
    let options = ClientOptions {
        tls: Some(tls.clone()),
        transport,
        ..ClientOptions::default()
    };
    let client = Client::connect_within(servers, options, PATIENCE)
        .await
        .expect("a client over TLS");
    let session = client
        .open_session(Duration::from_secs(10))
        .await
        .expect("session");
    let guard = session
        .try_lock("tls-tcp")
        .await
        .expect("lock")
        .expect("free");
    let token = guard.token();
    guard.release().await.expect("release");
    token
}

/// Waits until some server of `addrs` names a leader, over TLS.
async fn tls_leader(addrs: &[SocketAddr], tls: &ClientTls) -> u64 {
    wait_until_async("a leader over TLS", PATIENCE, || async {
        for addr in addrs {
            if let Ok(view) = cluster_status_with(&HostPort::from(*addr), Some(tls), None).await
                && let Some(leader) = view.leader
            {
                return Some(leader.0);
            }
        }
        None
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_locks_over_tcp_and_wss_and_refuses_impostors() {
    let certs = tempfile::tempdir().expect("temp dir");
    let dir = certs.path();
    dev_ca(dir, 3);
    let mut cluster = Cluster::configured(3);
    let ws: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let ws_list = member_list(&ws);
    for id in 1..=3u64 {
        let mut flags = tls_flags(dir, id);
        flags.extend([
            "--ws-addr".to_owned(),
            ws[usize::try_from(id - 1).expect("small")].to_string(),
            "--ws-addrs".to_owned(),
            ws_list.clone(),
        ]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        cluster.server(id).start_with(&flags);
    }
    let tls = client_tls(dir);
    let leader = tls_leader(&cluster.client_addrs(), &tls).await;
    assert!((1..=3).contains(&leader));
    wait_until("server 1 says TLS is on", PATIENCE, || {
        std::fs::read_to_string(cluster.server(1).log_path())
            .ok()
            .filter(|log| {
                log.contains("TLS on: client port: TLS, WebSocket port: TLS, peer port: mutual TLS")
            })
    });

    // A lock over TCP, through the command line and the client library.
    let servers = cluster.servers_arg();
    let ca = dir.join("ca.pem").display().to_string();
    let (code, err) = cli(&[
        "lock",
        "tls-cli",
        "--servers",
        &servers,
        "--tls-ca",
        &ca,
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "lock over TLS failed: {err}");
    let tcp_token = take_and_free(cluster.client_addrs(), &tls, Transport::Tcp).await;
    // The same lock over wss.
    let wss_token = take_and_free(ws.clone(), &tls, Transport::WebSocket).await;
    assert!(wss_token > tcp_token, "one lock, one token order");

    // A plain client, and a TLS client without the CA, are told what to fix.
    let (code, err) = cli(&["status", "--servers", &servers]);
    assert_ne!(code, 0);
    assert!(err.contains("the server speaks TLS on this port"), "{err}");
    let (code, err) = cli(&["status", "--servers", &servers, "--tls"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("not signed by a trusted CA") && err.contains("--tls-ca"),
        "{err}"
    );
    // `lock` too: the refusal ends its attempts and says why, rather than
    // retrying until its patience runs out with "no quorum answered".
    let (code, err) = lock_over_tls(&servers, &[], "tls-plain");
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("the server speaks TLS on this port"), "{err}");
    let (code, err) = lock_over_tls(&servers, &["--tls"], "tls-no-ca");
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains("not signed by a trusted CA") && err.contains("--tls-ca"),
        "{err}"
    );

    // An impostor: node 3's valid certificate, claiming to be node 2.
    let impostor = ServerTls::load(
        TlsFiles {
            cert: Pem::File(dir.join("node-3.pem")),
            key: Pem::File(dir.join("node-3.key")),
            ca: Some(Pem::File(dir.join("ca.pem"))),
        },
        TlsRole::Peers,
    )
    .expect("node 3's TLS");
    let peer_addr = cluster.server(1).peer_addr;
    let refusal = within("the impostor's refusal", PATIENCE, async {
        let stream = tokio::net::TcpStream::connect(peer_addr)
            .await
            .expect("dial");
        let stream = impostor
            .connect_peer(stream, NodeId(1))
            .await
            .expect("node 3's certificate passes the TLS handshake");
        let config = HandshakeConfig::default();
        let (mut reader, _writer) =
            peer_handshake(stream, ClusterId::new("distlock"), NodeId(2), None, &config)
                .await
                .expect("hello sent");
        reader.read_frame::<PeerFrame>().await
    })
    .await;
    assert!(
        matches!(
            refusal,
            Ok(Some(PeerFrame::Error(ProtoError::Unauthorized)))
        ),
        "{refusal:?}"
    );
    wait_until("server 1 logs the refusal", PATIENCE, || {
        std::fs::read_to_string(cluster.server(1).log_path())
            .ok()
            .filter(|log| log.contains("its certificate does not name node-2"))
    });
    // The cluster is unharmed: still one leader, still serving.
    let (code, err) = cli(&[
        "lock",
        "tls-after",
        "--servers",
        &servers,
        "--tls-ca",
        &ca,
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "lock after the impostor failed: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_certificates_and_keeps_open_connections() {
    let certs = tempfile::tempdir().expect("temp dir");
    let dir = certs.path();
    dev_ca(dir, 1);
    let mut server = Server::new(1, free_addr(), free_addr(), tls_flags(dir, 1));
    server.start();
    let addr = server.client_addr;
    let tls = client_tls(dir);
    tls_leader(&[addr], &tls).await;
    let presented = || async {
        let stream = open_stream(&addr.to_string(), Some(&tls), Duration::from_secs(5))
            .await
            .ok()?;
        stream.peer_certificate().cloned()
    };
    let old = first_cert(&dir.join("node-1.pem"));
    assert_eq!(presented().await, Some(old.clone()));

    // A session holding a lock across the reload.
    let options = ClientOptions {
        tls: Some(tls.clone()),
        ..ClientOptions::default()
    };
    let client = Client::connect_within(vec![addr], options, PATIENCE)
        .await
        .expect("client");
    let session = client
        .open_session(Duration::from_secs(10))
        .await
        .expect("session");
    let guard = session
        .try_lock("across")
        .await
        .expect("lock")
        .expect("free");

    // New certificates from the same CA, then SIGHUP.
    dev_ca(dir, 1);
    let new = first_cert(&dir.join("node-1.pem"));
    assert_ne!(new, old);
    let pid = server.pid().expect("running");
    assert!(send_signal(i64::from(pid), "HUP"));
    wait_until_async(
        "a new connection sees the new certificate",
        PATIENCE,
        || {
            let new = new.clone();
            let presented = presented();
            async move { (presented.await == Some(new)).then_some(()) }
        },
    )
    .await;
    assert!(
        std::fs::read_to_string(server.log_path())
            .expect("log")
            .contains("SIGHUP: TLS certificates reloaded")
    );
    // The open connection was not dropped: the same session goes on.
    assert!(session.is_valid(), "the session survived the reload");
    let second = session
        .try_lock("after")
        .await
        .expect("lock")
        .expect("free");
    assert!(second.token() > guard.token());
    second.release().await.expect("release");
    guard.release().await.expect("release");

    // A broken file keeps the certificates in force.
    std::fs::write(dir.join("node-1.pem"), "not a certificate").expect("write");
    assert!(send_signal(i64::from(pid), "HUP"));
    wait_until("the failed reload is logged", PATIENCE, || {
        std::fs::read_to_string(server.log_path())
            .ok()
            .filter(|log| log.contains("TLS certificates not reloaded"))
    });
    assert_eq!(presented().await, Some(new));
}

#[test]
fn a_server_without_tls_says_so_at_start() {
    let server = Server::single();
    wait_until("the server warns that TLS is off", PATIENCE, || {
        std::fs::read_to_string(server.log_path())
            .ok()
            .filter(|log| log.contains("TLS is off on every port"))
    });
}

/// `distlock lock --try NAME -- true` over TLS with `extra` TLS flags.
fn lock_over_tls(servers: &str, extra: &[&str], name: &str) -> (i32, String) {
    let mut args = vec!["lock", "--servers", servers, "--try", name];
    args.extend_from_slice(extra);
    args.extend(["--", "true"]);
    cli(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_proves_its_principal() {
    let certs = tempfile::tempdir().expect("temp dir");
    let dir = certs.path();
    dev_ca(dir, 1);
    // `client.pem` names `client`: the principal it proves, without a token.
    let auth = dir.join("auth.toml");
    std::fs::write(
        &auth,
        r#"
[roles.billing]
lock = ["billing/"]
read = ["billing/"]

[principals.worker]
certificate = "client"
roles = ["billing"]
"#,
    )
    .expect("write the auth file");
    let mut flags = tls_flags(dir, 1);
    flags.extend(["--auth-file".to_owned(), auth.display().to_string()]);
    let mut server = Server::new(1, free_addr(), free_addr(), flags);
    server.start();
    let file = |name: &str| dir.join(name).display().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let with_cert = ClientTls::load(
        Some(&PemSource::File(dir.join("ca.pem"))),
        Some(&PemSource::File(dir.join("client.pem"))),
        Some(&PemSource::File(dir.join("client.key"))),
    )
    .expect("client TLS with a certificate");
    tls_leader(&[server.client_addr], &with_cert).await;

    let servers = server.client_addr.to_string();
    let certified = ["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    let (code, err) = lock_over_tls(&servers, &certified, "billing/x");
    assert_eq!(
        code, 0,
        "the certificate's principal may lock billing/: {err}"
    );
    let (code, err) = lock_over_tls(&servers, &certified, "payroll");
    assert_ne!(code, 0, "outside its prefix");
    assert!(err.contains("forbidden"), "{err}");
    // TLS without a client certificate proves nobody.
    let (code, err) = lock_over_tls(&servers, &["--tls-ca", &ca], "billing/x");
    assert_ne!(code, 0, "no certificate, no token: {err}");
    assert!(
        cluster_status_with(
            &HostPort::from(server.client_addr),
            Some(&client_tls(dir)),
            None
        )
        .await
        .is_err(),
        "a Hello without credentials is refused"
    );
}

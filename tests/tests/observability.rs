//! Metrics, probes and logs against real processes: `/metrics` passes
//! `promtool check metrics`, `/healthz` and `/readyz` agree with
//! `distlock status --check`, a real Prometheus server scraping a
//! 3-server cluster reads the term and the locks held, and
//! `--log-format json` logs the operator's events with their fields.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package
//! (scripts/test installs it where it can); without them those checks say
//! they were skipped.

use distlock_tests::{
    Cluster, HeldLock, PATIENCE, Server, distlock, free_addr, run_within, status_json, wait_until,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One plain HTTP/1.1 GET: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A metric's value in the text format (the first sample whose name and
/// labels start with `series`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn tool(name: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!path.is_empty()).then_some(path)
}

fn status_check(servers: &str) -> i32 {
    let out = run_within(
        distlock().args(["status", "--check", "--servers", servers]),
        PATIENCE,
    );
    out.status.code().unwrap_or(-1)
}

/// `/metrics` names every family the documentation lists and passes
/// `promtool check metrics`; the probes answer; `status --check` says the
/// same as `/readyz`.
#[test]
fn metrics_pass_promtool_and_the_probes_agree_with_status_check() {
    let metrics = free_addr();
    let mut server = Server::new(1, free_addr(), free_addr(), Vec::new());
    server.start_with(&["--metrics-addr", &metrics.to_string()]);
    let servers = server.client_addr.to_string();
    let held = HeldLock::start(&servers, &[], "jobs/nightly");

    let text = wait_until("the metrics show the lock held", PATIENCE, || {
        let (code, body) = http_get(metrics, "/metrics")?;
        assert_eq!(code, 200);
        (sample(&body, "distlock_locks_held{mode=\"exclusive\"}") == Some(1.0)).then_some(body)
    });
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OBSERVABILITY.md"),
    )
    .expect("docs/OBSERVABILITY.md");
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = line.split(' ').next().unwrap_or_default();
        if name.starts_with("distlock_") {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in docs/OBSERVABILITY.md"
            );
        }
    }
    assert_eq!(sample(&text, "distlock_raft_leader_id"), Some(1.0));
    assert_eq!(
        sample(&text, "distlock_raft_role{role=\"leader\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "distlock_sessions"), Some(1.0));
    assert!(sample(&text, "distlock_lock_grants_total") >= Some(1.0));
    assert!(sample(&text, "distlock_storage_fsync_duration_seconds_count") >= Some(1.0));
    assert!(sample(&text, "distlock_storage_written_bytes_total") > Some(0.0));
    assert!(sample(&text, "distlock_clients_connected{transport=\"tcp\"}") >= Some(1.0));

    match tool("promtool") {
        Some(promtool) => {
            let mut child = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run promtool");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("feed promtool");
            let out = child.wait_with_output().expect("promtool finishes");
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => eprintln!(
            "SKIPPED: promtool check metrics (promtool is not installed: apt-get install prometheus)"
        ),
    }

    assert_eq!(http_get(metrics, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(
        http_get(metrics, "/readyz"),
        Some((200, "ready\n".to_owned()))
    );
    assert_eq!(http_get(metrics, "/nothing").map(|r| r.0), Some(404));
    assert_eq!(status_check(&servers), 0);
    drop(held);

    server.terminate();
    assert_eq!(status_check(&servers), 69, "no server answers");
}

/// One server of three, alone: it answers but knows no leader, so
/// `/readyz` says 503 and `status --check` exits 75, while `/healthz`
/// says the process serves; once a second server starts, both say ready.
#[test]
fn a_server_without_a_leader_is_live_but_not_ready() {
    let mut cluster = Cluster::configured(3);
    let metrics = free_addr();
    cluster
        .server(1)
        .start_with(&["--metrics-addr", &metrics.to_string()]);
    let servers = cluster.servers_arg_of(&[1]);
    wait_until("the metrics endpoint answers", PATIENCE, || {
        http_get(metrics, "/healthz")
    });
    let (code, body) = http_get(metrics, "/readyz").expect("readyz");
    assert_eq!((code, body.as_str()), (503, "not ready: no leader known\n"));
    assert_eq!(status_check(&servers), 75);
    cluster.server(2).start();
    wait_until("the server becomes ready", PATIENCE, || {
        (http_get(metrics, "/readyz")?.0 == 200).then_some(())
    });
    assert_eq!(status_check(&servers), 0);
}

/// A real Prometheus server scrapes a 3-server cluster; its query API
/// gives the cluster's term and the lock held.
#[test]
fn prometheus_scrapes_a_cluster_and_answers_term_and_locks_held() {
    let Some(prometheus) = tool("prometheus") else {
        eprintln!(
            "SKIPPED: Prometheus scrape test (prometheus is not installed: apt-get install prometheus)"
        );
        return;
    };
    let mut cluster = Cluster::configured(3);
    let targets: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    for (id, addr) in (1..=3).zip(&targets) {
        cluster
            .server(id)
            .start_with(&["--metrics-addr", &addr.to_string()]);
    }
    let servers = cluster.servers_arg();
    let held = HeldLock::start(&servers, &[], "reports");
    let term = wait_until("the cluster reports a leader", PATIENCE, || {
        let s = status_json(&servers, None);
        s["leader"].as_u64().and(s["term"].as_u64())
    });

    let home = tempfile::tempdir().expect("temp dir");
    let list: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
    let config = home.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: distlock\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        ),
    )
    .expect("write prometheus.yml");
    let web = free_addr();
    let mut prom = distlock_tests::Process::spawn(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                home.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let query = |q: &str| -> Option<Vec<Value>> {
        let path = format!(
            "/api/v1/query?query={}",
            q.replace(' ', "%20")
                .replace('(', "%28")
                .replace(')', "%29")
        );
        let (code, body) = http_get(web, &path)?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then(|| v["data"]["result"].as_array().cloned())?
    };
    let value = |r: &Value| r["value"][1].as_str().and_then(|s| s.parse::<f64>().ok());
    let scraped_term = wait_until(
        "Prometheus has scraped every server's term",
        Duration::from_secs(60),
        || {
            let r = query("distlock_raft_term")?;
            (r.len() == 3).then_some(())?;
            let terms: Vec<f64> = r.iter().filter_map(value).collect();
            (terms.len() == 3 && terms.iter().all(|t| *t == terms[0])).then_some(terms[0])
        },
    );
    assert_eq!(
        scraped_term, term as f64,
        "Prometheus reads the term status reports"
    );
    let held_sum = wait_until(
        "Prometheus sees the lock held on every server",
        Duration::from_secs(60),
        || {
            let r = query("sum by (instance) (distlock_locks_held)")?;
            let counts: Vec<f64> = r.iter().filter_map(value).collect();
            (counts.len() == 3 && counts.iter().all(|c| *c == 1.0)).then_some(counts)
        },
    );
    assert_eq!(held_sum, vec![1.0, 1.0, 1.0]);
    let leaders = query("sum (distlock_raft_role{role=\"leader\"})").expect("query");
    assert_eq!(
        leaders.first().and_then(value),
        Some(1.0),
        "exactly one leader"
    );
    drop(held);
    prom.kill();
}

/// `--log-format json` writes one JSON object per line, and the leader
/// change is one of them, with its fields.
#[test]
fn json_logs_carry_the_leader_change_with_its_fields() {
    let mut server = Server::new(1, free_addr(), free_addr(), Vec::new());
    server.start_with(&["--log-format", "json", "--log-level", "info"]);
    let event = wait_until("the leader change is logged", PATIENCE, || {
        let log = std::fs::read_to_string(server.log_path()).ok()?;
        log.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<Value>(l).expect("every log line is JSON"))
            .find(|v| v["event"] == "leader_changed")
    });
    assert_eq!(event["leader"], 1);
    assert_eq!(event["term"], 1);
    assert_eq!(event["level"], "INFO");
}

/// A session whose client dies expires: the leader logs it once, with
/// the lock it lost and its token, and the counters say so.
#[test]
fn an_expired_session_is_logged_with_its_locks_and_counted() {
    let metrics = free_addr();
    let mut server = Server::new(1, free_addr(), free_addr(), Vec::new());
    server.start_with(&[
        "--log-format",
        "json",
        "--metrics-addr",
        &metrics.to_string(),
    ]);
    let servers = server.client_addr.to_string();
    wait_until("the server is ready", PATIENCE, || {
        (http_get(metrics, "/readyz")?.0 == 200).then_some(())
    });
    let mut holder = distlock_tests::Process::spawn(
        distlock()
            .args([
                "lock",
                "--ttl",
                "1s",
                "--servers",
                &servers,
                "expiring",
                "--",
                "sleep",
                "20",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let token = wait_until("the lock is held", PATIENCE, || {
        status_json(&servers, Some("expiring"))["holders"][0]["token"].as_u64()
    });
    // The client dies without closing its session: only its lease ends it.
    holder.kill();
    let event = wait_until("the expiry is logged", PATIENCE, || {
        let log = std::fs::read_to_string(server.log_path()).ok()?;
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "session_expired")
    });
    assert_eq!(event["locks"], format!("expiring@{token}"));
    assert!(event["session"].as_u64().is_some());
    let log = std::fs::read_to_string(server.log_path()).expect("log");
    assert_eq!(log.matches("\"session_expired\"").count(), 1, "logged once");
    wait_until("the counters show the expiry", PATIENCE, || {
        let (_, body) = http_get(metrics, "/metrics")?;
        (sample(&body, "distlock_sessions_expired_total") == Some(1.0)
            && sample(&body, "distlock_lock_expiries_total") == Some(1.0)
            && sample(&body, "distlock_sessions") == Some(0.0))
        .then_some(())
    });
}

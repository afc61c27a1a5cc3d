//! `distlock elect` and `distlock leader` against a real server: the
//! leader runs its command with its term of office as the token, and when
//! its process is killed -9 the next campaigner is elected with a higher
//! token and its own value.

use distlock_tests::{PATIENCE, Process, Server, distlock, run_within, send_signal, wait_until};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// `distlock elect svc VALUE --ttl 2s -- sh -c ...`: the command writes
/// its token, value and shell pid to `out`, then sleeps.
fn elect(servers: &str, value: &str, name: &str, out: &Path) -> Process {
    let script = format!(
        "echo \"$DISTLOCK_TOKEN $DISTLOCK_VALUE $$\" > {o}.tmp; mv {o}.tmp {o}; exec sleep 120",
        o = out.display()
    );
    Process::spawn(
        distlock()
            .args(["elect", "svc", value, "--ttl", "2s", "--name", name])
            .args(["--servers", servers, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// (token, value, pid) as the elected command wrote them.
fn elected(out: &Path) -> Option<(u64, String, i64)> {
    let text = std::fs::read_to_string(out).ok()?;
    let mut words = text.split_whitespace();
    Some((
        words.next()?.parse().ok()?,
        words.next()?.to_owned(),
        words.next()?.parse().ok()?,
    ))
}

fn leader_json(servers: &str) -> (i32, Value) {
    let out = run_within(
        distlock().args(["leader", "svc", "--json", "--servers", servers]),
        Duration::from_secs(20),
    );
    let value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    (out.status.code().unwrap_or(-1), value)
}

#[test]
fn killing_the_leader_elects_the_next_with_a_higher_token() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a_out, b_out) = (dir.path().join("a"), dir.path().join("b"));

    let (code, nobody) = leader_json(&servers);
    assert_eq!((code, &nobody["leader"]), (3, &Value::Null));

    let mut a = elect(&servers, "a:8080", "alpha", &a_out);
    let (a_token, a_value, a_shell) = wait_until("alpha is elected", PATIENCE, || elected(&a_out));
    assert_eq!(a_value, "a:8080");
    let mut b = elect(&servers, "b:8080", "beta", &b_out);
    wait_until("beta campaigns", PATIENCE, || {
        let locks = run_within(
            distlock().args(["locks", "svc", "--json", "--servers", &servers]),
            Duration::from_secs(20),
        );
        let v: Value = serde_json::from_slice(&locks.stdout).ok()?;
        (v["locks"][0]["waiters"].as_array()?.len() == 1).then_some(())
    });
    let (code, view) = leader_json(&servers);
    assert_eq!(code, 0);
    assert_eq!(view["leader"]["value"], "a:8080");
    assert_eq!(view["leader"]["token"], a_token);
    assert_eq!(view["leader"]["owner"]["name"], "alpha");
    assert!(elected(&b_out).is_none(), "one leader at a time");

    // kill -9: no release, no resignation; the session expires.
    a.kill();
    let (b_token, b_value, b_shell) = wait_until("beta is elected", PATIENCE, || elected(&b_out));
    assert_eq!(b_value, "b:8080");
    assert!(
        b_token > a_token,
        "the next term of office has a higher token"
    );
    let (_, view) = leader_json(&servers);
    assert_eq!(view["leader"]["token"], b_token);
    assert_eq!(view["leader"]["value"], "b:8080");
    assert_eq!(view["leader"]["owner"]["name"], "beta");

    // Beta resigns as its command ends (SIGTERM is passed on): nobody leads.
    b.signal("TERM");
    assert_eq!(b.wait_exit(PATIENCE).code(), Some(128 + 15));
    wait_until("nobody leads", PATIENCE, || {
        (leader_json(&servers).0 == 3).then_some(())
    });
    // Alpha's command outlived its `distlock elect` (nothing survives
    // SIGKILL to pass it on); end it.
    send_signal(a_shell, "KILL");
    send_signal(b_shell, "KILL");
}

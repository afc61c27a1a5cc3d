//! `distlock lock NAME -- CMD` against real servers: holders never
//! overlap, tokens increase, `--try` on a held lock exits 75, a session
//! lost while CMD runs kills CMD's process group and exits 70, and no
//! reachable quorum exits 69.

use distlock_tests::{
    Cluster, KILL_GUARD_LOG, PATIENCE, Process, Server, distlock, free_addr, process_alive,
    send_signal, wait_until,
};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn distlock_lock(servers: &str, args: &[&str], script: &str) -> Process {
    distlock_lock_named("test-lock", servers, args, script)
}

fn distlock_lock_named(lock: &str, servers: &str, args: &[&str], script: &str) -> Process {
    Process::spawn(
        distlock()
            .args(["lock", lock, "--servers", servers])
            .args(args)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Waits for `p` to exit, within `limit`.
fn exit_of(p: &mut Process, limit: Duration) -> ExitStatus {
    p.wait_exit(limit)
}

#[test]
fn concurrent_holders_never_overlap_and_tokens_increase() {
    let server = Server::single();
    let work = tempfile::tempdir().expect("work dir");
    let counter = work.path().join("counter");
    let tokens = work.path().join("tokens");
    std::fs::write(&counter, "0").expect("init counter");
    // Read, pause, write: any overlap of two holders loses an increment.
    let script = format!(
        "v=$(cat {c}); sleep 0.05; echo $((v+1)) > {c}; echo $DISTLOCK_TOKEN >> {t}",
        c = counter.display(),
        t = tokens.display()
    );
    let servers = server.client_addr.to_string();
    let runs = 8;
    let mut children: Vec<_> = (0..runs)
        .map(|_| distlock_lock(&servers, &["--wait", "60s"], &script))
        .collect();
    let mut ok = 0;
    for child in &mut children {
        if exit_of(child, Duration::from_secs(90)).success() {
            ok += 1;
        }
    }
    assert_eq!(ok, runs, "every run got the lock and succeeded");
    let count: u32 = std::fs::read_to_string(&counter)
        .expect("counter")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(
        count, runs,
        "the counter equals the successful runs: no overlap"
    );
    let seen: Vec<u64> = std::fs::read_to_string(&tokens)
        .expect("tokens")
        .lines()
        .map(|l| l.trim().parse().expect("a token"))
        .collect();
    assert_eq!(seen.len(), runs as usize);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "tokens strictly increase in holding order: {seen:?}"
    );
}

#[test]
fn try_on_a_held_lock_exits_75_and_the_command_status_is_passed_through() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let work = tempfile::tempdir().expect("work dir");
    let started = work.path().join("started");
    let release = work.path().join("release");
    let script = format!(
        "touch {s}; while [ ! -e {r} ]; do sleep 0.02; done",
        s = started.display(),
        r = release.display()
    );
    let mut holder = distlock_lock(&servers, &["--wait", "60s"], &script);
    wait_until("the holder's command runs", PATIENCE, || {
        started.exists().then_some(())
    });
    let status = exit_of(&mut distlock_lock(&servers, &["--try"], "exit 0"), PATIENCE);
    assert_eq!(status.code(), Some(75), "--try on a held lock");
    std::fs::write(&release, "").expect("release the holder");
    assert!(exit_of(&mut holder, PATIENCE).success());
    let status = exit_of(&mut distlock_lock(&servers, &["--try"], "exit 3"), PATIENCE);
    assert_eq!(status.code(), Some(3), "the command's own status");
}

/// Reads a pid a script wrote to `path` (atomically, by renaming).
fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills process group `.0` when dropped.
struct KillGroupOnDrop(u32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        send_signal(-i64::from(self.0), "KILL");
    }
}

/// kill -9 every server while CMD runs: the session's lease (TTL 2 s) runs
/// out, so `distlock lock` kills CMD's whole process group (CMD and the
/// background child it started) and exits 70. (The harness puts a guard
/// `kill` on the servers' PATH that refuses `kill -SIG -PGID` without `--`,
/// which procps-ng's `kill` misreads as signalling every process.)
#[test]
fn a_session_lost_while_the_command_runs_kills_its_process_group_and_exits_70() {
    let mut cluster = Cluster::start(3);
    let work = tempfile::tempdir().expect("work dir");
    let (sh_pid, bg_pid) = (work.path().join("sh.pid"), work.path().join("bg.pid"));
    let refused = work.path().join("refused-kills");
    let script = format!(
        "sleep 1000 & echo $! > {bg}.tmp; mv {bg}.tmp {bg}; echo $$ > {sh}.tmp; mv {sh}.tmp {sh}; wait",
        bg = bg_pid.display(),
        sh = sh_pid.display()
    );
    let mut lock = Process::spawn(
        distlock()
            .args(["lock", "test-lock", "--ttl", "2s", "--servers"])
            .arg(cluster.servers_arg())
            .args(["--", "sh", "-c", &script])
            .env(KILL_GUARD_LOG, &refused)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let (sh, bg) = wait_until("the command and its child run", PATIENCE, || {
        Some((read_pid(&sh_pid)?, read_pid(&bg_pid)?))
    });
    assert!(process_alive(sh) && process_alive(bg));
    // Whatever happens below, the command's group does not outlive the test.
    let _group = KillGroupOnDrop(sh);

    let killed = Instant::now();
    cluster.kill_all();
    let status = wait_until("distlock lock exits", Duration::from_secs(20), || {
        if let Ok(cmd) = std::fs::read_to_string(&refused) {
            panic!(
                "distlock lock tried to kill its command's process group with `{}`: \
                 procps-ng's kill reads a negative pid not after `--` wrongly (it \
                 signals minus the first digit: group -1, every process, for a pgid \
                 starting with 1), so the group survives and distlock lock waits for \
                 it for ever; the test's kill guard refused it. Use `kill -s KILL -- -PGID`.",
                cmd.trim().trim_start_matches("refused: ")
            );
        }
        lock.try_exit()
    });
    assert_eq!(
        status.code(),
        Some(70),
        "distlock lock exits 70 when its session is lost ({status:?})"
    );
    // The lease was 2 s: the session cannot be reported lost much before.
    assert!(
        killed.elapsed() >= Duration::from_secs(1),
        "lost after only {:?}",
        killed.elapsed()
    );
    // The command and its background child were killed with the group.
    wait_until(
        "the command's process group is gone",
        Duration::from_secs(5),
        || (!process_alive(sh) && !process_alive(bg)).then_some(()),
    );
}

/// Ctrl-C, SIGTERM or SIGHUP to `distlock lock` reaches the command (its
/// own process group: the terminal's Ctrl-C would not): the command and
/// its background child are gone, `distlock lock` exits with the
/// command's status (128 + the signal), and the lock is free.
#[test]
fn signals_to_distlock_lock_reach_the_command_and_free_the_lock() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    for (signal, number) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
        let work = tempfile::tempdir().expect("work dir");
        let (sh_pid, bg_pid) = (work.path().join("sh.pid"), work.path().join("bg.pid"));
        let script = format!(
            "sleep 1000 & echo $! > {bg}.tmp; mv {bg}.tmp {bg}; echo $$ > {sh}.tmp; mv {sh}.tmp {sh}; wait",
            bg = bg_pid.display(),
            sh = sh_pid.display()
        );
        let mut lock = distlock_lock_named("interrupted", &servers, &[], &script);
        let (sh, bg) = wait_until("the command and its child run", PATIENCE, || {
            Some((read_pid(&sh_pid)?, read_pid(&bg_pid)?))
        });
        let _group = KillGroupOnDrop(sh);
        lock.signal(signal);
        let status = exit_of(&mut lock, PATIENCE);
        assert_eq!(
            status.code(),
            Some(128 + number),
            "after SIG{signal}: {status:?}"
        );
        wait_until(
            "the command's process group is gone",
            Duration::from_secs(5),
            || (!process_alive(sh) && !process_alive(bg)).then_some(()),
        );
        let free = exit_of(
            &mut distlock_lock_named("interrupted", &servers, &["--try"], "true"),
            PATIENCE,
        );
        assert!(
            free.success(),
            "the lock is free after SIG{signal}: {free:?}"
        );
    }
}

/// Started from a background job or `nohup`, `distlock lock` inherits an
/// ignored SIGINT; the command it runs must not, or the Ctrl-C it passes
/// on is lost and it waits for ever.
#[test]
fn ctrl_c_reaches_the_command_when_distlock_lock_started_ignoring_it() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let work = tempfile::tempdir().expect("work dir");
    let sh_pid = work.path().join("sh.pid");
    let script = format!(
        "echo $$ > {sh}.tmp; mv {sh}.tmp {sh}; sleep 1000 & wait",
        sh = sh_pid.display()
    );
    let plain = distlock();
    let mut ignoring = std::process::Command::new("sh");
    for (key, value) in plain.get_envs() {
        match value {
            Some(value) => ignoring.env(key, value),
            None => ignoring.env_remove(key),
        };
    }
    ignoring
        .args(["-c", "trap '' INT; exec \"$0\" \"$@\""])
        .arg(plain.get_program())
        .args(["lock", "ignored-int", "--servers", &servers])
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut lock = Process::spawn(&mut ignoring);
    let sh = wait_until("the command runs", PATIENCE, || read_pid(&sh_pid));
    let _group = KillGroupOnDrop(sh);
    lock.signal("INT");
    let status = exit_of(&mut lock, PATIENCE);
    assert_eq!(status.code(), Some(130), "after SIGINT: {status:?}");
    let free = exit_of(
        &mut distlock_lock_named("ignored-int", &servers, &["--try"], "true"),
        PATIENCE,
    );
    assert!(free.success(), "the lock is free: {free:?}");
}

/// No server listens at the address given: exit 69, and the command never
/// runs.
#[test]
fn no_reachable_server_exits_69_without_running_the_command() {
    let work = tempfile::tempdir().expect("work dir");
    let ran = work.path().join("ran");
    let nobody: SocketAddr = free_addr();
    let mut lock = distlock_lock(
        &nobody.to_string(),
        &[],
        &format!("touch {}", ran.display()),
    );
    let status = exit_of(&mut lock, PATIENCE);
    assert_eq!(status.code(), Some(69), "no server reachable ({status:?})");
    assert!(!ran.exists(), "the command must not run without the lock");
}

/// One server of three is up: it accepts connections but there is no
/// quorum, so no session can open: exit 69, and the command never runs.
#[test]
fn no_quorum_exits_69_without_running_the_command() {
    let mut cluster = Cluster::start(3);
    cluster.server(2).kill();
    cluster.server(3).kill();
    let work = tempfile::tempdir().expect("work dir");
    let ran = work.path().join("ran");
    let mut lock = distlock_lock_named(
        "no-quorum",
        &cluster.addr(1).to_string(),
        &[],
        &format!("touch {}", ran.display()),
    );
    let status = exit_of(&mut lock, PATIENCE);
    assert_eq!(status.code(), Some(69), "no quorum ({status:?})");
    assert!(!ran.exists(), "the command must not run without the lock");
}

/// `--semaphore 2`: two commands hold the lock at once, a third `--try`
/// exits 75; `--shared` and `--semaphore` together are refused.
#[test]
fn a_semaphore_admits_n_holders() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let first = distlock_tests::HeldLock::start(&servers, &["--semaphore", "2"], "pool");
    let second = distlock_tests::HeldLock::start(&servers, &["--semaphore", "2"], "pool");
    let third = exit_of(
        &mut distlock_lock_named("pool", &servers, &["--semaphore", "2", "--try"], "true"),
        PATIENCE,
    );
    assert_eq!(third.code(), Some(75), "a third permit: {third:?}");
    assert!(first.finish().success());
    let again = exit_of(
        &mut distlock_lock_named("pool", &servers, &["--semaphore", "2", "--try"], "true"),
        PATIENCE,
    );
    assert!(again.success(), "a permit was given back: {again:?}");
    assert!(second.finish().success());
    let both = exit_of(
        &mut distlock_lock_named("pool", &servers, &["--semaphore", "2", "--shared"], "true"),
        PATIENCE,
    );
    assert_eq!(
        both.code(),
        Some(2),
        "clap refuses --shared with --semaphore"
    );
}

/// `distlock completions bash` prints a completion script naming the
/// commands.
#[test]
fn completions_are_printed_for_a_shell() {
    let out = distlock_tests::run_within(distlock().args(["completions", "bash"]), PATIENCE);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_distlock") && script.contains("snapshot"),
        "{script:.300}"
    );
}

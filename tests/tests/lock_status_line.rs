//! The status line of a waiting `distlock lock` on a terminal (given by
//! `script`, from util-linux): it names the holder and our place in the
//! queue, and is erased once the lock is granted; `--quiet` shows none.

use distlock_tests::{HeldLock, PATIENCE, Process, Server, distlock_bin, wait_until};
use std::path::Path;
use std::process::{Command, Stdio};

/// `distlock lock ARGS x -- true` on a pseudo-terminal, its output
/// (stdout and stderr) written to `typescript`.
fn waiter_on_a_terminal(servers: &str, args: &str, typescript: &Path) -> Process {
    let line = format!(
        "{} lock x --servers {servers} {args} -- true",
        distlock_bin().display()
    );
    Process::spawn(
        Command::new("script")
            .args(["-qfc", &line])
            .arg(typescript)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

#[test]
fn a_waiting_lock_shows_who_holds_it_and_erases_the_line_once_granted() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let holder = HeldLock::start(&servers, &["--name", "nightly-backup"], "x");
    let dir = tempfile::tempdir().expect("temp dir");
    let (shown, quiet) = (dir.path().join("shown"), dir.path().join("quiet"));
    let mut waiter = waiter_on_a_terminal(&servers, "", &shown);
    let mut silent = waiter_on_a_terminal(&servers, "--quiet", &quiet);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_until("the waiter shows the holder", PATIENCE, || {
        let text = read(&shown);
        (text.contains("waiting for \"x\": held by nightly-backup") && text.contains("in line"))
            .then_some(())
    });
    assert!(holder.finish().success());
    assert!(waiter.wait_exit(PATIENCE).success());
    assert!(silent.wait_exit(PATIENCE).success());
    let text = read(&shown);
    // The last line drawn is erased before the command runs.
    let last = text.rfind("in line").expect("a line was drawn");
    assert!(text[last..].contains("\r\x1b[K"), "{text:?}");
    assert!(
        !read(&quiet).contains("waiting for"),
        "--quiet shows nothing"
    );
}

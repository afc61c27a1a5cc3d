//! A `distlock lock` whose command holds the lock until the test lets it
//! finish: the command marks a file once it runs (so the test knows the
//! lock is held) and waits for another file to appear. However the test
//! ends, dropping the holder lets the command finish, so no shell is left
//! waiting behind a failed test.

use crate::{PATIENCE, Process, distlock, wait_until};
use std::path::PathBuf;
use std::process::ExitStatus;

/// A running `distlock lock ARGS NAME -- sh -c ...` that holds `NAME`.
#[derive(Debug)]
pub struct HeldLock {
    process: Process,
    done: PathBuf,
    _dir: tempfile::TempDir,
}

impl HeldLock {
    /// Starts `distlock lock --servers SERVERS ARGS NAME` and waits until
    /// its command runs, that is until it holds the lock.
    ///
    /// # Panics
    /// When the command does not start within [`PATIENCE`].
    #[must_use]
    pub fn start(servers: &str, args: &[&str], name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let holding = dir.path().join("holding");
        let done = dir.path().join("done");
        let script = format!(
            // Ends too when the test is gone (its directory with it).
            "touch {h}; while ! test -e {d}; do test -e {h} || exit 1; sleep 0.05; done",
            h = holding.display(),
            d = done.display()
        );
        let mut cmd = distlock();
        cmd.args(["lock", "--servers", servers])
            .args(args)
            .args([name, "--", "sh", "-c", &script]);
        let process = Process::spawn(&mut cmd);
        wait_until("the holder runs its command", PATIENCE, || {
            holding.exists().then_some(())
        });
        Self {
            process,
            done,
            _dir: dir,
        }
    }

    /// Lets the command finish and waits for `distlock lock` to exit.
    ///
    /// # Panics
    /// When it has not exited within [`PATIENCE`].
    pub fn finish(mut self) -> ExitStatus {
        self.let_finish();
        self.process.wait_exit(PATIENCE)
    }

    fn let_finish(&self) {
        let _ = std::fs::write(&self.done, b"");
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.let_finish();
    }
}

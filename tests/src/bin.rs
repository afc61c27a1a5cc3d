//! Finding (and building) the `distlock` binary under test.
//!
//! Cargo gives an integration test `CARGO_BIN_EXE_<name>` only for the
//! binaries of its own package, and `cargo test -p distlock-tests` builds
//! just the *library* of its dependencies, never the `distlock` package's binary
//! (artifact dependencies are unstable). So the harness locates the binary
//! the way any other package's tests must, from the test executable's own
//! path (`target/<profile>/deps/<test>` → `target/<profile>/distlock`), and
//! before the first use runs `cargo build -p distlock --bin
//! distlock` for that target directory and profile. When the binary is up
//! to date that costs one no-op cargo run (under a second); it also means
//! a change to the server is never tested against a stale binary. Cargo
//! no longer holds the build-directory lock while tests run, so the nested
//! build does not deadlock (it waits, as any cargo does, while another
//! cargo builds).
//!
//! Set `DISTLOCK_BIN=/path/to/distlock` to test a given binary without
//! building anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `distlock` binary under test, built (once per process) if needed.
///
/// # Panics
/// When the binary is missing and cannot be built; the message says how
/// to build it by hand.
pub fn distlock_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(locate)
}

/// A `Command` running the binary under test, with no `DISTLOCK_SERVERS`
/// from the caller's environment, and the [`kill` guard](kill_guard_dir)
/// first on its `PATH`.
///
/// # Panics
/// When the `kill` guard cannot be written.
#[must_use]
pub fn distlock() -> Command {
    let mut cmd = Command::new(distlock_bin());
    cmd.env_remove("DISTLOCK_SERVERS");
    let mut path = vec![kill_guard_dir().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    cmd.env(
        "PATH",
        std::env::join_paths(path).expect("PATH entries without separators"),
    );
    cmd
}

/// The environment variable naming the file where the [`kill`
/// guard](kill_guard_dir) logs the commands it refused.
pub const KILL_GUARD_LOG: &str = "DISTLOCK_TESTS_KILL_LOG";

/// A directory holding a `kill` script that stands in for the system's
/// `kill` command in the processes the tests start.
///
/// `distlock lock` kills its command's process group by running `kill
/// -KILL -PGID`. procps-ng's `kill` (4.0.2 here) misreads a negative pid
/// not preceded by `--`: it signals process group minus the pid's *first
/// digit*, so a PGID starting with 1 becomes `kill(-1, SIGKILL)`, every
/// process the user may signal (as root: the whole machine). The guard
/// passes every other use through to the real `kill`, and refuses that
/// form (exit 1), appending the command to the file named by
/// [`KILL_GUARD_LOG`] (else to stderr), so the tests can report it
/// instead of killing everything.
///
/// # Panics
/// When the script cannot be written.
pub fn kill_guard_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let real = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("kill"))
            .find(|k| k.is_file())
            .unwrap_or_else(|| PathBuf::from("/bin/kill"));
        // Next to the binary (target/<profile>/), else in the temp directory
        // (a DISTLOCK_BIN in a read-only place).
        let dir = [
            distlock_bin()
                .parent()
                .map(|d| d.join("distlock-tests-kill-guard")),
            Some(std::env::temp_dir().join("distlock-tests-kill-guard")),
        ]
        .into_iter()
        .flatten()
        .find(|d| std::fs::create_dir_all(d).is_ok())
        .expect("create the kill guard's directory");
        let script = format!(
            r#"#!/bin/sh
# Written by distlock-tests (tests/src/bin.rs): refuses `kill -SIG -PGID`
# without `--`, which procps-ng's kill turns into a signal to the wrong
# process group (-1 when PGID starts with 1).
seen_dashdash=0
first=1
for a in "$@"; do
    if [ "$first" = 1 ]; then first=0; continue; fi
    case "$a" in
        --) seen_dashdash=1 ;;
        -[0-9]*)
            if [ "$seen_dashdash" = 0 ]; then
                echo "refused: kill $*" >> "${{{log}:-/dev/stderr}}"
                exit 1
            fi ;;
    esac
done
exec '{real}' "$@"
"#,
            log = KILL_GUARD_LOG,
            real = real.display()
        );
        let target = dir.join("kill");
        let tmp = dir.join(format!("kill.{}", std::process::id()));
        std::fs::write(&tmp, script).expect("write the kill guard");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .expect("make the kill guard executable");
        }
        std::fs::rename(&tmp, &target).expect("install the kill guard");
        dir
    })
}

fn locate() -> PathBuf {
    if let Some(given) = std::env::var_os("DISTLOCK_BIN") {
        let given = PathBuf::from(given);
        assert!(
            given.is_file(),
            "DISTLOCK_BIN={} is not a file",
            given.display()
        );
        return given;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash>; with --target: target/<triple>/<profile>/deps/...
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join(format!("distlock{}", std::env::consts::EXE_SUFFIX));
    let built = build(&profile_dir);
    match built {
        Ok(()) => {}
        // Without cargo (a test binary copied elsewhere), use what is there.
        Err(why) if bin.is_file() && why.starts_with("cannot run cargo") => {
            eprintln!(
                "distlock-tests: {why}; testing the existing {}",
                bin.display()
            );
        }
        Err(why) => panic!(
            "could not build the distlock binary at {}: {why}\n\
             build it with `cargo build -p distlock --bin distlock` \
             (with the same --release/--profile as the tests), \
             or set DISTLOCK_BIN to a distlock binary",
            bin.display()
        ),
    }
    assert!(
        bin.is_file(),
        "the distlock binary is missing at {}: run `cargo build -p distlock` \
         (with the same --release/--profile as the tests), or set DISTLOCK_BIN",
        bin.display()
    );
    bin
}

/// Runs `cargo build -p distlock --bin distlock` into the target
/// directory and profile that `profile_dir` (target/<profile>) belongs to.
fn build(profile_dir: &Path) -> Result<(), String> {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the profile directory has no name")?;
    let mut target_dir = profile_dir
        .parent()
        .ok_or("the profile directory has no parent")?;
    let mut triple = None;
    // target/<triple>/<profile>: the target directory is one level higher.
    if !target_dir.join("CACHEDIR.TAG").exists()
        && target_dir
            .parent()
            .is_some_and(|p| p.join("CACHEDIR.TAG").exists())
    {
        triple = target_dir.file_name().and_then(|n| n.to_str());
        target_dir = target_dir.parent().ok_or("no target directory")?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "distlock", "--bin", "distlock"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(triple) = triple {
        cmd.args(["--target", triple]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo ({e})"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build -p distlock --bin distlock` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

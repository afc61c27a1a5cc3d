//! Transcript files, in the style of etcd-io/raft's `testdata/*.txt`: a
//! test script of commands, each followed by the output it must produce.
//!
//! A line `> command args…` is a command; the indented lines after it are
//! its expected output; lines starting with `#` and blank lines are
//! comments, kept as they are. With the environment variable
//! `DISTLOCK_REWRITE_TRANSCRIPTS=1` the runner writes the output it got
//! back into the file instead of comparing (review the diff before
//! committing it).
//!
//! The Raft transcripts (`core/testdata/raft/`, run by
//! `raft::tests::transcript`) and the node transcripts
//! (`core/testdata/node/`, run by `node::tests::transcript`) share the
//! hand-driven network ([`net`]) and the way Raft's messages, writes and
//! state print ([`raft_text`]); each adds only its own commands.

#[cfg(test)]
pub(crate) mod net;
#[cfg(test)]
pub(crate) mod raft_text;

use std::fmt::Write as _;
use std::path::Path;

/// The environment variable that turns comparison into rewriting.
pub const REWRITE_ENV: &str = "DISTLOCK_REWRITE_TRANSCRIPTS";

/// Runs the transcript at `path`: each command goes to `exec`, which
/// returns its output lines (unindented). Panics with a diff of the first
/// file that differs, unless rewriting.
///
/// # Panics
/// When the file cannot be read (or written when rewriting), or when the
/// output differs from the file.
pub fn run_file(path: &Path, mut exec: impl FnMut(&str) -> Vec<String>) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut got = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(cmd) = line.strip_prefix("> ") {
            got.push_str(line);
            got.push('\n');
            // The expected output: skip it, the command's output replaces it.
            while lines.peek().is_some_and(|l| l.starts_with("  ")) {
                lines.next();
            }
            for out in exec(cmd.trim()) {
                let _ = writeln!(got, "  {out}");
            }
        } else {
            got.push_str(line);
            got.push('\n');
        }
    }
    if std::env::var_os(REWRITE_ENV).is_some() {
        std::fs::write(path, &got)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    if got != text {
        let diff = first_difference(&text, &got);
        panic!(
            "{} differs from what the run printed (set {REWRITE_ENV}=1 to rewrite it):\n{diff}",
            path.display()
        );
    }
}

/// The first differing line, with a little context.
fn first_difference(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let at = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    let from = at.saturating_sub(3);
    let mut out = String::new();
    for (i, l) in g.iter().enumerate().skip(from).take(8) {
        let mark = if i == at { "got >" } else { "     " };
        let _ = writeln!(out, "{mark} {l}");
    }
    let _ = writeln!(
        out,
        "want> {}",
        w.get(at).copied().unwrap_or("(end of file)")
    );
    out
}

/// `core/testdata/<dir>/<name>.txt`.
#[cfg(test)]
pub(crate) fn testdata(dir: &str, name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
        .join(format!("{name}.txt"))
}

//! `--export-edn`: a seed's exclusive-lock operations as a Jepsen history,
//! checked by a model of a fenced lock written apart from the simulator
//! (tests/support/lock_model.py, Python's standard library only): a real
//! seed's history is accepted, and two tampered copies are rejected (a
//! grant whose token goes down; a lock whose release and expiry are
//! removed, so the next grant overlaps it).

#![cfg(madsim)]

use std::path::Path;
use std::process::{Command, Output};

const SIM: &str = env!("CARGO_BIN_EXE_distlock-sim");

fn model(history: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lock_model.py");
    Command::new("python3")
        .arg(script)
        .arg(history)
        .output()
        .expect("python3 starts")
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(":{key} "))? + key.len() + 2;
    let rest = &line[start..];
    Some(&rest[..rest.find([',', '}'])?])
}

#[test]
fn an_exported_history_passes_the_model_and_tampered_ones_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edn = dir.path().join("seed-1.edn");
    let out = Command::new(SIM)
        .args(["run", "--seed", "1", "--duration", "60s", "--export-edn"])
        .arg(&edn)
        .output()
        .expect("distlock-sim starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&edn).expect("the export");
    let lines: Vec<&str> = text.lines().collect();
    let grants: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(":type :ok") && l.contains(":lock \"x0\""))
        .collect();
    assert!(grants.len() >= 5, "x0 was granted often: {text}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(field(l, "index"), Some(i.to_string().as_str()));
    }

    let good = model(&edn);
    let said = String::from_utf8_lossy(&good.stdout).into_owned();
    assert!(
        good.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(said.starts_with("ok: 2 locks"), "{said}");

    // A later grant of x0 with a token lower than an earlier one's.
    let later = grants[3];
    let lowered = later.replace(
        &format!(":value {}", field(later, "value").expect("a token")),
        ":value 1",
    );
    let bad = dir.path().join("lower-token.edn");
    std::fs::write(&bad, text.replacen(later, &lowered, 1)).expect("write");
    let rejected = model(&bad);
    assert_eq!(rejected.status.code(), Some(1), "{rejected:?}");
    assert!(String::from_utf8_lossy(&rejected.stdout).contains("lock x0: not linearizable"));

    // x0's first grant never freed: its release and expiry are gone, so
    // the next grant of x0 overlaps it.
    let token = field(grants[0], "value").expect("a token");
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            !(l.contains(":lock \"x0\"")
                && (l.contains(":f :release") || l.contains(":f :expire"))
                && field(l, "value") == Some(token))
        })
        .collect();
    assert!(kept.len() < lines.len());
    let bad = dir.path().join("never-freed.edn");
    std::fs::write(&bad, kept.join("\n")).expect("write");
    let rejected = model(&bad);
    assert_eq!(rejected.status.code(), Some(1), "{rejected:?}");
}

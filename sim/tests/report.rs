//! `--report out.html` looked at, not just read: a real seed's timeline,
//! and the same history with a violation marked, are rendered by headless
//! Chromium into screenshots (kept in target/sim/tmp/sim-report/ to look
//! at) whose pixels are then counted: leaders' green and grants' blue are
//! on the page, and a violation is a red line across the chart at its
//! time, absent when none was found.
//!
//! Chromium is Debian's (`apt-get install chromium`, as
//! scripts/browser-test installs it; `CHROMIUM` names another binary).
//! Without it, or without python3 to read the PNG, the test says so and
//! checks only that the report was written.

#![cfg(madsim)]

use distlock_sim::checks::Violation;
use distlock_sim::faults::FaultSet;
use distlock_sim::report::{self, Header};
use distlock_sim::run::{SimConfig, run_seed};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SIM: &str = env!("CARGO_BIN_EXE_distlock-sim");
/// The page's body margin (report/svg.rs's CSS) and the chart's left
/// edge and width (its LEFT and WIDTH).
const MARGIN: f64 = 16.0;
const LEFT: f64 = 70.0;
const WIDTH: f64 = 1500.0;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| on_path("chromium"))
        .or_else(|| on_path("chromium-browser"))
}

fn screenshot(chromium: &Path, html: &Path, png: &Path) {
    let profile = tempfile::tempdir().expect("a profile directory");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1620,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium starts");
    assert!(
        png.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pixels of each colour, and the tallest column of each.
fn colours(png: &Path, wanted: &[&str]) -> Vec<(u64, u64, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/png_colours.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(png)
        .args(wanted)
        .output()
        .expect("python3 starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    wanted
        .iter()
        .map(|c| {
            let entry = &v["colours"][c];
            let (x, n) = entry["columns"]
                .as_object()
                .expect("columns")
                .iter()
                .map(|(x, n)| (x.parse::<f64>().unwrap_or(0.0), n.as_u64().unwrap_or(0)))
                .fold((0.0, 0), |best, c| if c.1 > best.1 { c } else { best });
            (entry["pixels"].as_u64().unwrap_or(0), n, x)
        })
        .collect()
}

#[test]
fn the_report_shows_the_run_and_its_violation() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim-report");
    std::fs::create_dir_all(&dir).expect("report dir");
    // A real seed, through the documented command.
    let page = dir.join("seed-3.html");
    let out = Command::new(SIM)
        .args(["run", "--seed", "3", "--duration", "30s", "--report"])
        .arg(&page)
        .output()
        .expect("distlock-sim starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("the report");
    assert!(html.contains("distlock-sim seed 3") && html.contains("lock x0"));
    // The same seed's history with a violation marked at 12 s (the
    // checkers find none in a correct cluster; their self-tests build
    // bad histories by hand the same way).
    let mut cfg = SimConfig::new(3);
    cfg.duration = Duration::from_secs(30);
    cfg.faults = FaultSet::all();
    let history = run_seed(&cfg, true).history.expect("the history");
    let (_, end) = report::sections(&history);
    let t = 12_000_000;
    let header = Header {
        title: "distlock-sim seed 3 with a violation marked".to_owned(),
        summary: String::new(),
        violations: vec![Violation {
            property: "mutual_exclusion",
            t,
            detail: "two holders wrote with one token".to_owned(),
        }],
    };
    let bad = dir.join("violation.html");
    std::fs::write(&bad, report::render(&header, &history)).expect("write");

    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED the screenshots: Chromium is not installed (apt-get install chromium)");
        return;
    };
    if on_path("python3").is_none() {
        eprintln!("SKIPPED the screenshots: python3 is not installed");
        return;
    }
    let (good_png, bad_png) = (dir.join("seed-3.png"), dir.join("violation.png"));
    screenshot(&chromium, &page, &good_png);
    screenshot(&chromium, &bad, &bad_png);
    let wanted = ["2e7d32", "3182bd", "de2d26"];
    let good = colours(&good_png, &wanted);
    assert!(good[0].0 > 1_000, "leaders are drawn: {good:?}");
    assert!(good[1].0 > 1_000, "grants are drawn: {good:?}");
    assert!(good[2].1 < 50, "no red line without a violation: {good:?}");
    let marked = colours(&bad_png, &wanted);
    #[allow(clippy::cast_precision_loss)]
    let expect_x = MARGIN + LEFT + WIDTH * t as f64 / end as f64;
    let (_, tallest, x) = marked[2];
    assert!(
        tallest > 300,
        "the violation is a tall red line: {marked:?}"
    );
    assert!(
        (x - expect_x).abs() <= 4.0,
        "the red line is at x {x}, its time is at x {expect_x:.1}"
    );
}

//! Draws the report's sections as one inline SVG in a self-contained HTML
//! page (no scripts, no outside files): time runs left to right, each lane
//! is a row, hovering a bar or marker shows its full text, and every
//! violation is a red line across all rows at its time.

use super::{Header, Kind, Section, secs};
use std::fmt::Write;

const LEFT: f64 = 70.0;
const WIDTH: f64 = 1500.0;
const ROW: f64 = 20.0;
const HEAD: f64 = 22.0;
const TOP: f64 = 34.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Leader => "#2e7d32",
        Kind::Follower => "#9ecae1",
        Kind::Candidate => "#fdae6b",
        Kind::OtherRole => "#c6b3e0",
        Kind::Down => "#525252",
        Kind::Paused => "#bdbdbd",
        Kind::Disk => "#8c510a",
        Kind::Network => "#756bb1",
        Kind::Hold => "#3182bd",
        Kind::LostHold => "#e6550d",
        Kind::Lease => "#74c476",
        Kind::CheckValid => "#31a354",
        Kind::CheckInvalid => "#222222",
        Kind::WriteOk => "#ffffff",
        Kind::WriteRefused => "#de2d26",
        Kind::Note => "#636363",
    }
}

#[allow(clippy::cast_precision_loss)]
fn x(t: u64, end: u64) -> f64 {
    LEFT + WIDTH * (t as f64) / (end as f64)
}

/// A tick step (µs) giving at most about 15 ticks.
fn step(end: u64) -> u64 {
    [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200]
        .iter()
        .map(|s| s * 1_000_000)
        .find(|s| end / s <= 15)
        .unwrap_or(3_600_000_000)
}

fn axis(out: &mut String, y: f64, bottom: f64, end: u64) {
    let st = step(end);
    let mut t = 0;
    while t <= end {
        let xt = x(t, end);
        let _ = write!(
            out,
            r##"<line x1="{xt:.1}" y1="{y:.1}" x2="{xt:.1}" y2="{bottom:.1}" stroke="#eee"/><text x="{xt:.1}" y="{:.1}" class="tick">{}s</text>"##,
            y - 4.0,
            t / 1_000_000
        );
        t += st;
    }
}

fn mark(out: &mut String, m: &super::Mark, y: f64, end: u64) {
    let (x0, x1) = (x(m.from, end), x(m.to, end));
    let c = colour(m.kind);
    let tip = esc(&m.tip);
    match m.kind {
        Kind::WriteOk | Kind::WriteRefused => {
            // On the lease line, below the bar's label.
            let r = if m.kind == Kind::WriteRefused {
                4.0
            } else {
                2.2
            };
            let _ = write!(
                out,
                r##"<circle cx="{x0:.1}" cy="{:.1}" r="{r}" fill="{c}" stroke="#08306b" stroke-width="0.8"><title>{tip}</title></circle>"##,
                y + 16.5
            );
        }
        Kind::CheckValid | Kind::CheckInvalid => {
            let _ = write!(
                out,
                r##"<path d="M{x0:.1} {:.1} l-3 -5 h6 z" fill="{c}"><title>{tip}</title></path>"##,
                y + 3.0
            );
        }
        Kind::Note => {
            let _ = write!(
                out,
                r##"<path d="M{x0:.1} {:.1} l-4 7 h8 z" fill="{c}"><title>{tip}</title></path>"##,
                y + 4.0
            );
        }
        Kind::Lease => {
            let _ = write!(
                out,
                r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="3" fill="{c}"><title>{tip}</title></rect>"##,
                y + 15.0,
                (x1 - x0).max(1.0)
            );
        }
        _ => {
            let (top, h) = if matches!(m.kind, Kind::Hold | Kind::LostHold) {
                (y + 2.0, 12.0)
            } else {
                (y + 2.0, 15.0)
            };
            let w = (x1 - x0).max(1.5);
            let dash = if m.kind == Kind::LostHold {
                r##" stroke="#a63603" stroke-dasharray="3 2""##
            } else {
                ""
            };
            let _ = write!(
                out,
                r##"<rect x="{x0:.1}" y="{top:.1}" width="{w:.1}" height="{h}" fill="{c}"{dash}><title>{tip}</title></rect>"##
            );
            // A label only where it fits (about 6 px per character).
            #[allow(clippy::cast_precision_loss)]
            let fits = !m.label.is_empty() && w > 6.0 * m.label.len() as f64 + 4.0;
            if fits {
                let fill = if matches!(m.kind, Kind::Follower | Kind::Candidate | Kind::Paused) {
                    "#000"
                } else {
                    "#fff"
                };
                let _ = write!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}" class="lbl" fill="{fill}">{}</text>"##,
                    x0 + 3.0,
                    top + 10.0,
                    esc(&m.label)
                );
            }
        }
    }
}

fn legend() -> String {
    let items = [
        (Kind::Leader, "leader (Tn = term)"),
        (Kind::Follower, "follower"),
        (Kind::Candidate, "candidate / pre-candidate"),
        (Kind::Down, "down (killed, crashed, exited)"),
        (Kind::Paused, "paused"),
        (Kind::Disk, "disk fault"),
        (Kind::Network, "network fault in force"),
        (Kind::Hold, "grant, until released"),
        (
            Kind::LostHold,
            "grant never released (lost), until its believed lease",
        ),
        (Kind::Lease, "holder's believed lease"),
        (Kind::CheckValid, "token check: servers say valid"),
        (
            Kind::CheckInvalid,
            "token check: servers say no longer valid",
        ),
        (
            Kind::WriteRefused,
            "write refused by the fenced resource (○ on the lease: accepted)",
        ),
    ];
    let mut out = String::from("<ul class=\"legend\">");
    for (k, name) in items {
        let _ = write!(
            out,
            r#"<li><span style="background:{}"></span>{}</li>"#,
            colour(k),
            esc(name)
        );
    }
    out.push_str("<li><span style=\"background:#de2d26\"></span>violation (red line)</li></ul>");
    out
}

/// The page.
#[must_use]
pub(super) fn page(header: &Header, sections: &[Section], end: u64) -> String {
    let rows: usize = sections.iter().map(|s| s.lanes.len()).sum();
    #[allow(clippy::cast_precision_loss)]
    let height = TOP + sections.len() as f64 * HEAD + rows as f64 * ROW + 10.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{height:.0}" font-family="sans-serif">"#,
        LEFT + WIDTH + 20.0
    );
    axis(&mut svg, TOP - 6.0, height, end);
    let mut y = TOP;
    for section in sections {
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}" class="sec">{}</text>"#,
            y + 15.0,
            esc(&section.title)
        );
        y += HEAD;
        for (i, lane) in section.lanes.iter().enumerate() {
            if i % 2 == 0 {
                let _ = write!(
                    svg,
                    r##"<rect x="{LEFT}" y="{y:.1}" width="{WIDTH}" height="{ROW}" fill="#f7f7f7"/>"##
                );
            }
            let _ = write!(
                svg,
                r#"<text x="4" y="{:.1}" class="lane">{}</text>"#,
                y + 14.0,
                esc(&lane.name)
            );
            // Bars first, markers on top.
            for m in lane
                .marks
                .iter()
                .filter(|m| m.from != m.to || m.kind == Kind::Lease)
            {
                mark(&mut svg, m, y, end);
            }
            for m in lane
                .marks
                .iter()
                .filter(|m| m.from == m.to && m.kind != Kind::Lease)
            {
                mark(&mut svg, m, y, end);
            }
            y += ROW;
        }
    }
    for v in &header.violations {
        let xv = x(v.t.min(end), end);
        let tip = esc(&format!("{} at {}: {}", v.property, secs(v.t), v.detail));
        let _ = write!(
            svg,
            r##"<g class="violation"><rect x="{:.1}" y="{TOP}" width="8" height="{:.1}" fill="#de2d26" opacity="0.18"/><line x1="{xv:.1}" y1="{TOP}" x2="{xv:.1}" y2="{height:.1}" stroke="#de2d26" stroke-width="2.5"/><text x="{:.1}" y="{:.1}" class="vio">{}</text><title>{tip}</title></g>"##,
            xv - 4.0,
            height - TOP,
            xv + 4.0,
            TOP + 12.0,
            esc(v.property)
        );
    }
    svg.push_str("</svg>");
    let violations = if header.violations.is_empty() {
        "<p class=\"ok\">No property was broken.</p>".to_owned()
    } else {
        let mut v = String::from("<div class=\"bad\"><b>Violations</b><ul>");
        for viol in &header.violations {
            let _ = write!(
                v,
                "<li><b>{}</b> at {}: {}</li>",
                esc(viol.property),
                secs(viol.t),
                esc(&viol.detail)
            );
        }
        v.push_str("</ul></div>");
        v
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 6px; }}
code {{ font-size: 12px; color: #555; word-break: break-all; }}
.ok {{ color: #2e7d32; font-weight: bold; }}
.bad {{ border: 2px solid #de2d26; background: #fee0d2; padding: 6px 10px; margin: 8px 0; }}
.legend {{ list-style: none; padding: 0; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; }}
.legend span {{ display: inline-block; width: 14px; height: 10px; margin-right: 5px; border: 1px solid #999; }}
svg .tick {{ font-size: 11px; fill: #777; text-anchor: middle; }}
svg .sec {{ font-size: 13px; font-weight: bold; fill: #333; }}
svg .lane {{ font-size: 12px; fill: #333; }}
svg .lbl {{ font-size: 10px; }}
svg .vio {{ font-size: 12px; font-weight: bold; fill: #de2d26; }}
</style></head><body>
<h1>{title}</h1>
<details><summary>the seed's summary line</summary><code>{summary}</code></details>
{violations}
{legend}
<p style="font-size:12px;color:#555">Hover a bar or marker for its details. Times are true (simulated) seconds; servers' and clients' own clocks drift from them.</p>
{svg}
</body></html>
"#,
        title = esc(&header.title),
        summary = esc(&header.summary),
        legend = legend(),
    )
}

//! The report from a hand-written history: every kind of record lands in
//! its lane with the right span, and the page stands alone.

use super::*;

const HISTORY: &str = r#"{"t":100000,"ev":"role","node":1,"role":"Candidate","term":1}
{"t":200000,"ev":"role","node":1,"role":"Leader","term":1}
{"t":210000,"ev":"role","node":2,"role":"Follower","term":1}
{"t":300000,"ev":"session_opened","client":1,"session":5,"ttl_ms":2000,"ws":false}
{"t":300000,"ev":"acquire_invoke","op":1,"client":1,"session":5,"lock":"x0","mode":"exclusive"}
{"t":400000,"ev":"acquire_return","op":1,"result":{"is":"granted","token":9},"deadline":2400000}
{"t":500000,"ev":"belief","session":5,"lock":"x0","token":9,"deadline":2600000}
{"t":600000,"ev":"write","client":1,"session":5,"lock":"x0","token":9,"accepted":true}
{"t":700000,"ev":"token_check","session":5,"lock":"x0","token":9,"invoked":650000,"valid":true}
{"t":1000000,"ev":"fault","what":"kill s1 (unsynced 0, kept 0, torn false)"}
{"t":1100000,"ev":"fault","what":"partition [[1], [2, 3]]"}
{"t":1200000,"ev":"fault","what":"s2: disk full"}
{"t":1300000,"ev":"fault","what":"crash client node c1"}
{"t":1500000,"ev":"role","node":2,"role":"Leader","term":2}
{"t":1600000,"ev":"acquire_invoke","op":2,"client":2,"session":6,"lock":"x0","mode":"exclusive"}
{"t":1700000,"ev":"acquire_return","op":2,"result":{"is":"granted","token":12},"deadline":3700000}
{"t":1800000,"ev":"write","client":1,"session":5,"lock":"x0","token":9,"accepted":false}
{"t":1900000,"ev":"release_invoke","session":6,"lock":"x0","token":12}
{"t":2000000,"ev":"fault","what":"heal network"}
{"t":2100000,"ev":"fault","what":"restart s1"}
{"t":2200000,"ev":"fault","what":"disk of s2 healthy"}
{"t":2300000,"ev":"fault","what":"client node c1 back"}
{"t":3000000,"ev":"exit","node":3,"why":"storage failed"}
"#;

fn lane<'a>(sections: &'a [Section], name: &str) -> &'a Lane {
    sections
        .iter()
        .flat_map(|s| &s.lanes)
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no lane {name}"))
}

fn spans(lane: &Lane, kind: Kind) -> Vec<(u64, u64, &str)> {
    lane.marks
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| (m.from, m.to, m.label.as_str()))
        .collect()
}

#[test]
fn every_record_lands_in_its_lane() {
    let (sections, end) = sections(HISTORY);
    assert_eq!(end, 3_000_000);
    let s1 = lane(&sections, "s1");
    assert_eq!(spans(s1, Kind::Candidate), [(100_000, 200_000, "")]);
    assert_eq!(spans(s1, Kind::Leader), [(200_000, 1_000_000, "T1")]);
    assert_eq!(
        spans(s1, Kind::Down),
        [(
            1_000_000,
            2_100_000,
            "kill s1 (unsynced 0, kept 0, torn false)"
        )]
    );
    let s2 = lane(&sections, "s2");
    assert_eq!(spans(s2, Kind::Leader), [(1_500_000, 3_000_000, "T2")]);
    assert_eq!(
        spans(s2, Kind::Disk),
        [(1_200_000, 2_200_000, "s2: disk full")]
    );
    assert_eq!(spans(lane(&sections, "s3"), Kind::Down).len(), 1);
    assert_eq!(
        spans(lane(&sections, "partition"), Kind::Network),
        [(1_100_000, 2_000_000, "partition [[1], [2, 3]]")]
    );
    assert_eq!(
        spans(lane(&sections, "c1"), Kind::Down),
        [(1_300_000, 2_300_000, "crash client node c1")]
    );
    // Lock x0: token 9 never released (lost) until its believed lease,
    // token 12 released; they overlap, so token 12 gets a row of its own.
    let x0: Vec<&Section> = sections
        .iter()
        .filter(|s| s.title.starts_with("lock x0"))
        .collect();
    assert_eq!(x0.len(), 1);
    let rows = &x0[0].lanes;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        spans(&rows[0], Kind::LostHold),
        [(400_000, 2_600_000, "9 s5")]
    );
    assert_eq!(spans(&rows[0], Kind::Lease), [(400_000, 2_600_000, "")]);
    assert_eq!(spans(&rows[0], Kind::WriteOk), [(600_000, 600_000, "")]);
    assert_eq!(
        spans(&rows[0], Kind::WriteRefused),
        [(1_800_000, 1_800_000, "")]
    );
    assert_eq!(spans(&rows[0], Kind::CheckValid), [(700_000, 700_000, "")]);
    assert_eq!(
        spans(&rows[1], Kind::Hold),
        [(1_700_000, 1_900_000, "12 s6")]
    );
}

#[test]
fn the_page_stands_alone_and_shows_violations() {
    let header = Header {
        title: "seed 1 <test>".to_owned(),
        summary: "{\"seed\":1}".to_owned(),
        violations: vec![Violation {
            property: "mutual_exclusion",
            t: 1_800_000,
            detail: "token 9 written after token 12".to_owned(),
        }],
    };
    let html = render(&header, HISTORY);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("seed 1 &lt;test&gt;"));
    assert!(html.contains("<b>mutual_exclusion</b> at 1.800s: token 9 written after token 12"));
    assert_eq!(html.matches("class=\"violation\"").count(), 1);
    for outside in ["<script", " src=", "href=", "@import", "url("] {
        assert!(!html.contains(outside), "the page refers to {outside}");
    }
    let good = render(
        &Header {
            violations: Vec::new(),
            ..header
        },
        HISTORY,
    );
    assert!(good.contains("No property was broken."));
    assert!(!good.contains("class=\"violation\""));
}

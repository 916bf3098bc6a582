//! Records and pipelines that must not stop or poison a run, through `yujing
//! replay` (the same engine the daemon drives): events dated in the future are
//! dead letters judged against the processing clock and never move a watermark;
//! an oversized field, invalid UTF-8 and deep nesting are dead letters with
//! their reason; a pipeline whose SQL fails at run time on some windows leaves
//! the other pipelines' results exactly as they are without it.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{GRID_RULES, Replay, escalating_incidents, json_lines, with_hostile_records};

/// Replays `records` (raw lines) of police_incident through the pipelines in
/// `pipelines`; returns the output directory.
fn replay(
    dir: &Path,
    name: &str,
    pipelines: &[(&str, &str)],
    records: &[Vec<u8>],
    now: &str,
) -> std::path::PathBuf {
    let pdir = dir.join(format!("{name}-pipelines"));
    std::fs::create_dir_all(&pdir).expect("mkdir");
    for (n, text) in pipelines {
        std::fs::write(pdir.join(format!("{n}.toml")), text).expect("write");
    }
    let mut input = Vec::new();
    for r in records {
        input.extend_from_slice(r);
        input.push(b'\n');
    }
    let file = dir.join(format!("{name}.jsonl"));
    std::fs::write(&file, input).expect("write");
    let out = dir.join(format!("{name}-out"));
    Replay {
        pipelines: &pdir,
        input: &file,
        out: &out,
        updates: None,
        now: Some(now),
    }
    .run();
    out
}

fn good() -> Vec<Vec<u8>> {
    escalating_incidents()
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

#[test]
fn hostile_records_are_dead_letters_and_the_good_ones_count_as_if_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = "2026-03-15T00:00:00Z";
    let pipelines = [("grid_rules", GRID_RULES)];
    let alone = replay(dir.path(), "alone", &pipelines, &good(), now);
    let (records, reasons) = with_hostile_records();
    let mixed = replay(dir.path(), "mixed", &pipelines, &records, now);
    for f in ["alerts.jsonl", "tasks.jsonl", "windows.jsonl"] {
        assert_eq!(
            std::fs::read(alone.join(f)).expect("alone"),
            std::fs::read(mixed.join(f)).expect("mixed"),
            "{f}: the hostile records changed the good ones' results"
        );
    }
    assert!(!json_lines(&alone.join("alerts.jsonl")).is_empty());
    let dead = json_lines(&mixed.join("dead_letters.jsonl"));
    let mut got: Vec<&str> = dead
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or(""))
        .collect();
    let mut want = reasons.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "one dead letter per hostile record: {dead:?}");
    for d in &dead {
        let size = d.to_string().len();
        assert!(size < 16 * 1024, "a dead letter of {size} bytes");
    }
    let future = dead
        .iter()
        .find(|d| d["reason"] == "future")
        .expect("future");
    assert_eq!(future["field"], "event_time");
    assert!(
        future["detail"]
            .as_str()
            .is_some_and(|t| t.contains("ahead of the processing clock")),
        "{future}"
    );
}

#[test]
fn a_near_future_record_counts_and_the_processing_clock_decides_what_is_future() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipelines = [("grid_rules", GRID_RULES)];
    // The red hour's events judged at 02:30: those after 02:35 are future.
    let out = replay(
        dir.path(),
        "at-0230",
        &pipelines,
        &good(),
        "2026-03-14T02:30:00Z",
    );
    let dead = json_lines(&out.join("dead_letters.jsonl"));
    let ids: Vec<&str> = dead.iter().filter_map(|d| d["event_id"].as_str()).collect();
    // 02:41, 02:49, 10:30, 12:10 are more than 5 minutes ahead; 02:33 is not.
    assert_eq!(
        ids,
        ["PI-0009", "PI-0010", "PI-0090", "PI-0091"],
        "{dead:?}"
    );
    assert!(dead.iter().all(|d| d["reason"] == "future"));
}

/// Divides by zero in the windows where the count is exactly 3.
const FAILS_SOMETIMES: &str = r#"name = "fails_sometimes"
lateness = "0s"
sql = """
SELECT district, street, count(*) / (count(*) - 3) AS r
FROM police_incident
GROUP BY district, street, tumble(INTERVAL '1 hour')
"""
"#;

#[test]
fn a_pipeline_failing_at_run_time_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = "2026-03-15T00:00:00Z";
    let alone = replay(
        dir.path(),
        "alone",
        &[("grid_rules", GRID_RULES)],
        &good(),
        now,
    );
    let both = replay(
        dir.path(),
        "both",
        &[
            ("grid_rules", GRID_RULES),
            ("fails_sometimes", FAILS_SOMETIMES),
        ],
        &good(),
        now,
    );
    for f in ["alerts.jsonl", "tasks.jsonl"] {
        assert_eq!(
            std::fs::read(alone.join(f)).expect("alone"),
            std::fs::read(both.join(f)).expect("both"),
            "{f}"
        );
    }
    // The failing pipeline's other windows still close.
    let windows = json_lines(&both.join("windows.jsonl"));
    let own: Vec<&Value> = windows
        .iter()
        .filter(|w| w["pipeline"] == "fails_sometimes")
        .collect();
    assert_eq!(own.len(), 3, "{own:?}");
    let dead = json_lines(&both.join("dead_letters.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["reason"], "pipeline_error");
    assert_eq!(dead[0]["pipeline"], "fails_sometimes");
    assert_eq!(dead[0]["source"]["window_start"], "2026-03-14T01:00:00Z");
    assert!(
        dead[0]["detail"]
            .as_str()
            .is_some_and(|d| d.to_lowercase().contains("divide by zero")),
        "{}",
        dead[0]
    );
}

/// At most two streets per hour.
const TWO_STREETS: &str = r#"name = "two_streets"
lateness = "0s"
max_keys = 2
sql = """
SELECT district, street, count(*) AS n
FROM police_incident
GROUP BY district, street, tumble(INTERVAL '1 hour')
"""
"#;

#[test]
fn a_record_that_would_open_a_key_past_max_keys_is_a_dead_letter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let street = |i: usize, name: &str, time: &str| {
        common::incident(i, time)
            .replace("北山街道", name)
            .into_bytes()
    };
    let records = vec![
        street(1, "甲街道", "2026-03-14T01:05:00Z"),
        street(2, "乙街道", "2026-03-14T01:10:00Z"),
        street(3, "丙街道", "2026-03-14T01:15:00Z"),
        street(4, "甲街道", "2026-03-14T01:20:00Z"),
        // A new hour: room again.
        street(5, "丙街道", "2026-03-14T02:05:00Z"),
    ];
    let out = replay(
        dir.path(),
        "keys",
        &[("two_streets", TWO_STREETS)],
        &records,
        "2026-03-15T00:00:00Z",
    );
    let dead = json_lines(&out.join("dead_letters.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["reason"], "too_many_keys");
    assert_eq!(dead[0]["event_id"], "PI-0003");
    assert_eq!(dead[0]["pipeline"], "two_streets");
    let windows = json_lines(&out.join("windows.jsonl"));
    let first: Vec<(&str, i64)> = windows
        .iter()
        .filter(|w| w["window_start"] == "2026-03-14T01:00:00Z")
        .map(|w| {
            (
                w["street"].as_str().unwrap_or(""),
                w["n"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(first, [("乙街道", 1), ("甲街道", 2)]);
    assert_eq!(windows.len(), 3);
}

//! Scoring by hand: three labels, four alert episodes of two pipelines, each
//! case of detected, missed, late, at level and false alarm counted here.

use super::*;
use crate::alert::Measure;
use crate::core::key::{Cell, Key};
use crate::core::time::{HOUR, format_rfc3339};

const T0: Millis = 1_777_000_000_000 - 1_777_000_000_000 % DAY;

fn alert(
    pipeline: &str,
    incident: &str,
    status: Status,
    level: Level,
    key: &[(&str, &str)],
    hours: (i64, i64),
) -> Alert {
    Alert {
        alert_id: format!("{incident}-{}", hours.0),
        incident_id: incident.into(),
        status,
        level,
        pipeline: pipeline.into(),
        feeds: vec!["petition".into()],
        key: Key::new(
            key.iter()
                .map(|(k, v)| (k.to_string(), Cell::Text(v.to_string())))
                .collect(),
        ),
        window_start: T0 + hours.0 * HOUR,
        window_end: T0 + hours.1 * HOUR,
        measure: Measure::observed(1.0, "rule".into()),
        summary: String::new(),
        event_ids: Vec::new(),
    }
}

fn labels_file(lines: &[Value]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.jsonl");
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    (dir, path)
}

// layout: long — one hand-counted scenario: each assertion stands beside the
// case it counts, which splitting would hide.
#[test]
fn episodes_are_scored_against_labels_as_counted_by_hand() {
    let at = |h: i64| format_rfc3339(T0 + h * HOUR);
    let (_dir, path) = labels_file(&[
        // A surge on 北山街道 from 09:00 to 17:00, expected orange.
        serde_json::json!({"id": "surge", "feed": "petition", "district": "西湖区", "street": "北山街道",
                           "start": at(9), "end": at(17), "level": "orange"}),
        // A district-wide event nobody alerts on.
        serde_json::json!({"id": "quiet", "feed": "petition", "district": "上城区", "start": at(30), "end": at(31)}),
        // Meant for the daily pipeline only, keyed by street alone.
        serde_json::json!({"id": "named", "key": {"street": "湖滨街道"}, "start": at(40), "end": at(41),
                           "pipelines": ["street_day"], "level": "red"}),
    ]);
    let labels = read_labels(&path).unwrap();
    assert_eq!(labels.len(), 3);
    let west = [("district", "西湖区"), ("street", "北山街道")];
    let alerts = vec![
        // hourly: yellow at 10–11 inside the surge, orange at 12–13, then resolved.
        alert(
            "street_hour",
            "a",
            Status::Firing,
            Level::Yellow,
            &west,
            (10, 11),
        ),
        alert(
            "street_hour",
            "a",
            Status::Firing,
            Level::Orange,
            &west,
            (12, 13),
        ),
        alert(
            "street_hour",
            "a",
            Status::Resolved,
            Level::Orange,
            &west,
            (14, 15),
        ),
        // hourly: the same street a day later, outside every label — a false alarm.
        alert(
            "street_hour",
            "b",
            Status::Firing,
            Level::Blue,
            &west,
            (33, 34),
        ),
        // hourly: another district at the surge's hours — no shared value, a false alarm.
        alert(
            "street_hour",
            "c",
            Status::Firing,
            Level::Blue,
            &[("district", "上城区"), ("street", "湖滨街道")],
            (10, 11),
        ),
        // daily: the whole day 0–24 on 北山街道, yellow only.
        alert(
            "street_day",
            "d",
            Status::Firing,
            Level::Yellow,
            &west,
            (0, 24),
        ),
    ];
    let watchers = [
        Watcher {
            name: "street_hour".into(),
            feeds: vec!["petition".into()],
            keys: vec!["district".into(), "street".into()],
        },
        Watcher {
            name: "street_day".into(),
            feeds: vec!["petition".into()],
            keys: vec!["district".into(), "street".into()],
        },
    ];
    let s = score(&alerts, &watchers, &labels, 14 * DAY);
    assert_eq!(s.weeks, 2.0);

    let hour = &s.pipelines[0];
    // surge and quiet are its to catch ("named" is meant for street_day).
    assert_eq!(
        (hour.labels, hour.detected, hour.missed, hour.at_level),
        (2, 1, 1, 1)
    );
    assert_eq!(hour.episodes, 3);
    assert_eq!(hour.false_alarms, 2);
    assert_eq!(hour.false_alarms_per_week, 1.0);
    // First alert window inside the surge ends at 11:00: two hours after 09:00.
    assert_eq!(hour.outcomes[0].delay_minutes, Some(120.0));
    assert_eq!(hour.outcomes[0].level, Some(Level::Orange));
    assert_eq!(
        hour.outcomes[1],
        Outcome {
            label: "quiet".into(),
            detected: false,
            delay_minutes: None,
            level: None,
            at_level: None
        }
    );

    let day = &s.pipelines[1];
    // surge, quiet and named: the day caught the surge (yellow, below orange), missed the others.
    assert_eq!(
        (day.labels, day.detected, day.missed, day.at_level),
        (3, 1, 2, 0)
    );
    assert_eq!(day.outcomes[0].delay_minutes, Some(15.0 * 60.0));
    assert_eq!(day.outcomes[2].at_level, Some(false));
    assert_eq!(day.false_alarms, 0);

    // Overall: the surge by both (earliest two hours, orange), quiet and named missed; false alarms b, c.
    let all = &s.overall;
    assert_eq!(
        (all.labels, all.detected, all.missed, all.at_level),
        (3, 1, 2, 1)
    );
    assert_eq!(all.median_delay_minutes, Some(120.0));
    assert_eq!((all.episodes, all.false_alarms), (4, 2));
}

#[test]
fn the_generator_manifest_is_a_labels_file_and_bad_labels_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    std::fs::write(
        &path,
        r#"{"seed": 1, "incidents": [{"id": "x", "feed": "petition", "kind": "surge",
        "description": "d", "key": {"district": "西湖区"}, "start": "2026-04-29T09:00:00+08:00",
        "end": "2026-04-29T17:00:00+08:00", "events": 30}]}"#,
    )
    .unwrap();
    let labels = read_labels(&path).unwrap();
    assert_eq!(labels[0].id, "x");
    assert_eq!(
        labels[0].key.len(),
        1,
        "kind, description and events are not key columns"
    );
    assert_eq!(labels[0].end - labels[0].start, 8 * HOUR);

    let (_d, path) = labels_file(&[
        serde_json::json!({"district": "a", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}),
        serde_json::json!({"district": "a", "start": "yesterday", "end": "2026-01-01T01:00:00Z"}),
    ]);
    let e = read_labels(&path).unwrap_err().to_string();
    assert!(
        e.contains("labels.jsonl:2:") && e.contains("`start`"),
        "{e}"
    );
    let (_d, path) = labels_file(&[
        serde_json::json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "level": "purple"}),
    ]);
    let e = read_labels(&path).unwrap_err().to_string();
    assert!(e.contains(":1:"), "{e}");
}

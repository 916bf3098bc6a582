//! Response tasks end to end through `yujing replay`: an orange alert opens three
//! routed tasks, its red escalation updates them, a scripted update file
//! acknowledges some in time and some not, and overdue and escalation happen at
//! the right event times.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{GRID_RULES, Replay, escalating_incidents, json_lines};

/// The scenario as one JSON-lines file.
fn input() -> String {
    escalating_incidents().join("\n") + "\n"
}

fn replay(dir: &Path, out: &str, updates: Option<&Path>) -> Vec<Value> {
    let run = Replay {
        pipelines: &dir.join("pipelines"),
        input: &dir.join("police.jsonl"),
        out: &dir.join(out),
        updates,
        now: None,
    };
    run.run();
    run.output("tasks.jsonl")
}

fn field<'a>(e: &'a Value, path: &[&str]) -> &'a str {
    let mut v = e;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or_default()
}

#[test]
fn orange_opens_three_red_updates_and_deadlines_run_in_event_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("pipelines")).expect("mkdir");
    std::fs::write(dir.path().join("pipelines/grid_rules.toml"), GRID_RULES).expect("write");
    std::fs::write(dir.path().join("police.jsonl"), input()).expect("write");

    // First without updates, to learn the task ids as an operator would.
    let first = replay(dir.path(), "first", None);
    let opened: Vec<&Value> = first.iter().filter(|e| e["change"] == "opened").collect();
    assert_eq!(opened.len(), 3, "exactly three tasks");
    let id_of = |track: &str| {
        opened
            .iter()
            .find(|e| e["task"]["track"] == track)
            .map(|e| field(e, &["task", "task_id"]).to_string())
            .expect("track")
    };
    for (track, department) in [
        ("legal", "西湖公安分局"),
        ("opinion", "区委宣传部（网信办）"),
        ("control", "北山街道、西湖公安分局"),
    ] {
        let e = opened
            .iter()
            .find(|e| e["task"]["track"] == track)
            .expect("track");
        assert_eq!(field(e, &["task", "department"]), department);
        assert_eq!(field(e, &["task", "level"]), "orange");
        assert_eq!(field(e, &["time"]), "2026-03-14T02:00:00Z");
        assert_eq!(field(e, &["task", "deadline"]), "2026-03-14T06:00:00Z");
    }
    let dispatch: Vec<&str> = opened
        .iter()
        .map(|e| field(e, &["task", "dispatch_id"]))
        .collect();
    assert!(dispatch.iter().all(|d| *d == dispatch[0]));

    // Legal acknowledged in time; opinion after its deadline; control never; one
    // malformed line and one for a task that does not exist.
    let updates = dir.path().join("updates.jsonl");
    std::fs::write(
        &updates,
        format!(
            "{}\n{}\n{}\n{}\n",
            format_args!(
                r#"{{"time":"2026-03-14T03:30:00Z","task_id":"{}","action":"acknowledge","actor":"西湖公安分局值班室"}}"#,
                id_of("legal")
            ),
            format_args!(
                r#"{{"time":"2026-03-14T05:00:00Z","task_id":"{}","action":"acknowledge","actor":"区委政法委值班室","note":"已接收"}}"#,
                id_of("opinion")
            ),
            r#"{"time":"around noon","task_id":"x","action":"done","actor":"a"}"#,
            r#"{"time":"2026-03-14T04:10:00Z","task_id":"no-such-task","action":"done","actor":"a"}"#,
        ),
    )
    .expect("write");
    let events = replay(dir.path(), "second", Some(&updates));
    let seen: Vec<(String, String, String, String)> = events
        .iter()
        .map(|e| {
            (
                field(e, &["task", "track"]).to_string(),
                field(e, &["change"]).to_string(),
                field(e, &["time"]).to_string(),
                field(e, &["task", "department"]).to_string(),
            )
        })
        .collect();
    let row = |t: &str, c: &str, at: &str, d: &str| {
        (
            t.to_string(),
            c.to_string(),
            format!("2026-03-14T{at}:00Z"),
            d.to_string(),
        )
    };
    let want = vec![
        row("legal", "opened", "02:00", "西湖公安分局"),
        row("opinion", "opened", "02:00", "区委宣传部（网信办）"),
        row("control", "opened", "02:00", "北山街道、西湖公安分局"),
        // The red escalation of the same incident: same tasks, deadline 03:00 + 1 h.
        row("legal", "level_raised", "03:00", "西湖公安分局"),
        row("opinion", "level_raised", "03:00", "区委宣传部（网信办）"),
        row("control", "level_raised", "03:00", "北山街道、西湖公安分局"),
        row("legal", "acknowledged", "03:30", "西湖公安分局"),
        row("opinion", "overdue", "04:00", "区委宣传部（网信办）"),
        row("opinion", "escalated", "04:00", "区委政法委"),
        row("control", "overdue", "04:00", "北山街道、西湖公安分局"),
        row("control", "escalated", "04:00", "区委政法委"),
        row("opinion", "acknowledged", "05:00", "区委政法委"),
        // Control climbs the default chain, 2 h each, and stays at the last.
        row("control", "overdue", "06:00", "区委政法委"),
        row(
            "control",
            "escalated",
            "06:00",
            "区委办公室（区应急指挥中心）",
        ),
        row(
            "control",
            "overdue",
            "08:00",
            "区委办公室（区应急指挥中心）",
        ),
        row("legal", "incident_resolved", "11:00", "西湖公安分局"),
        row("opinion", "incident_resolved", "11:00", "区委政法委"),
        row(
            "control",
            "incident_resolved",
            "11:00",
            "区委办公室（区应急指挥中心）",
        ),
    ];
    assert_eq!(seen, want);
    assert!(
        events[3..6]
            .iter()
            .all(|e| e["task"]["level"] == "red" && e["task"]["deadline"] == "2026-03-14T04:00:00Z")
    );
    assert_eq!(events.iter().filter(|e| e["change"] == "opened").count(), 3);

    // The bad lines are dead letters with their reasons; nothing else is.
    let dead = json_lines(&dir.path().join("second/dead_letters.jsonl"));
    let reasons: Vec<&str> = dead.iter().map(|d| field(d, &["reason"])).collect();
    assert_eq!(reasons, ["bad_time", "rejected"]);
    assert!(dead.iter().all(|d| d["feed"] == "task_updates"));
    assert_eq!(dead[0]["source"]["line"], 3);

    // Replaying again gives the same bytes.
    replay(dir.path(), "third", Some(&updates));
    assert_eq!(
        std::fs::read(dir.path().join("second/tasks.jsonl")).expect("read"),
        std::fs::read(dir.path().join("third/tasks.jsonl")).expect("read")
    );
}

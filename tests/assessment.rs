//! `yujing report tasks`: the monthly assessment of departments (考核督导),
//! checked against a hand count on a small file and recounted independently on
//! the demo's own tasks (its simulated duty desk answers some tasks on time,
//! some late and some never).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

mod common;
use yujing::core::time::{DAY, HOUR, MINUTE, Millis, format_rfc3339, parse_rfc3339};

fn yujing(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_yujing"))
        .args(args)
        .output()
        .expect("run yujing");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `yujing report tasks` for March 2026 over `input`, its CSV to `csv`.
fn march(input: &Path, csv: &Path) -> String {
    yujing(&[
        "report",
        "tasks",
        "--month",
        "2026-03",
        "--input",
        input.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ])
}

struct Task<'a> {
    id: &'a str,
    department: &'a str,
    opened: Millis,
}

/// A task event as the engine writes it (the fields the report reads).
fn event(t: &Task, version: u32, change: &str, at: Millis, department: &str, late: bool) -> String {
    json!({
        "event_id": format!("{}-{version}", t.id), "change": change, "time": format_rfc3339(at),
        "actor": "值班室",
        "task": {
            "task_id": t.id, "dispatch_id": "d", "incident_id": "i", "track": "legal",
            "department": department, "owner": t.department, "level": "orange",
            "status": "open", "pipeline": "p", "key": {}, "alert_id": "a",
            "opened_at": format_rfc3339(t.opened), "deadline": format_rfc3339(t.opened + 4 * HOUR),
            "complete_by": format_rfc3339(t.opened + 3 * DAY), "completion_overdue": late,
            "escalations": 0, "incident_firing": true, "version": version
        }
    })
    .to_string()
}

fn csv_rows(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "department,received,acknowledged_on_time,done_on_time,overdue,escalated,median_acknowledge_minutes,median_complete_minutes"
        )
    );
    lines
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(str::to_string).collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}

#[test]
fn the_monthly_table_matches_a_hand_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = |s: &str| parse_rfc3339(s).expect("time");
    let (a, b) = ("区委信访局", "区人社局");
    // On time: acknowledged in 30 minutes, done in 10 hours.
    let t1 = Task {
        id: "t1",
        department: a,
        opened: t("2026-03-10T02:00:00Z"),
    };
    // Late: overdue at 4 h, escalated, acknowledged at 5 h, done after 4 days.
    let t2 = Task {
        id: "t2",
        department: a,
        opened: t("2026-03-11T02:00:00Z"),
    };
    // Opened 07:00 on 1 March in UTC+8 (still February in UTC); never answered.
    let t3 = Task {
        id: "t3",
        department: b,
        opened: t("2026-02-28T23:00:00Z"),
    };
    // April in UTC+8: not March's.
    let t4 = Task {
        id: "t4",
        department: a,
        opened: t("2026-03-31T17:00:00Z"),
    };
    let lines = [
        event(&t1, 1, "opened", t1.opened, a, false),
        event(&t1, 2, "acknowledged", t1.opened + 30 * MINUTE, a, false),
        event(&t1, 3, "done", t1.opened + 10 * HOUR, a, false),
        event(&t2, 1, "opened", t2.opened, a, false),
        event(&t2, 2, "overdue", t2.opened + 4 * HOUR, a, false),
        event(
            &t2,
            3,
            "escalated",
            t2.opened + 4 * HOUR,
            "区委政法委",
            false,
        ),
        event(
            &t2,
            4,
            "acknowledged",
            t2.opened + 5 * HOUR,
            "区委政法委",
            false,
        ),
        event(
            &t2,
            5,
            "completion_overdue",
            t2.opened + 3 * DAY,
            "区委政法委",
            true,
        ),
        event(&t2, 6, "done", t2.opened + 4 * DAY, "区委政法委", true),
        event(&t3, 1, "opened", t3.opened, b, false),
        event(&t3, 2, "overdue", t3.opened + 4 * HOUR, b, false),
        event(&t4, 1, "opened", t4.opened, a, false),
        event(&t4, 2, "acknowledged", t4.opened + MINUTE, a, false),
        "not a task event".to_string(),
    ];
    let input = dir.path().join("tasks.jsonl");
    // Out of order, as partitions of a topic may deliver them.
    let mut shuffled = lines.to_vec();
    shuffled.reverse();
    std::fs::write(&input, shuffled.join("\n") + "\n").expect("write");
    let csv = dir.path().join("march.csv");
    let table = march(&input, &csv);
    assert!(table.contains("任务考核 2026-03"), "{table}");
    assert!(table.contains("2 departments, 3 tasks"), "{table}");
    assert!(table.contains("1 lines were not task events"), "{table}");
    let rows = csv_rows(&csv);
    // Hand count. 区委信访局: t1 and t2; acknowledged on time t1; done on time
    // t1; overdue and escalated t2; medians of 30 and 300 minutes, and of 600
    // and 5760 minutes.
    assert_eq!(rows[a], ["2", "1", "1", "1", "1", "165", "3180"]);
    // 区人社局: t3 only, overdue, nothing answered.
    assert_eq!(rows[b], ["1", "0", "0", "1", "0", "", ""]);
    assert_eq!(rows.len(), 2);
}

/// The same figures counted here, independently, from the task events.
fn recount(events: &[Value], from: Millis, to: Millis) -> BTreeMap<String, [u64; 5]> {
    let mut by_task: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events {
        by_task
            .entry(e["task"]["task_id"].as_str().unwrap().into())
            .or_default()
            .push(e);
    }
    let mut out: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    let time = |v: &Value| parse_rfc3339(v.as_str().unwrap()).unwrap();
    for evs in by_task.values() {
        let opened = evs
            .iter()
            .find(|e| e["change"] == "opened")
            .expect("opened");
        let at = time(&opened["task"]["opened_at"]);
        if at < from || at >= to {
            continue;
        }
        let first_overdue = evs
            .iter()
            .filter(|e| e["change"] == "overdue")
            .map(|e| e["task"]["version"].as_u64().unwrap())
            .min();
        let ack = evs.iter().find(|e| e["change"] == "acknowledged");
        let done = evs.iter().find(|e| e["change"] == "done");
        let row = out
            .entry(opened["task"]["department"].as_str().unwrap().into())
            .or_default();
        row[0] += 1;
        row[1] += u64::from(ack.is_some_and(|a| {
            first_overdue.is_none_or(|o| a["task"]["version"].as_u64().unwrap() < o)
        }));
        row[2] += u64::from(done.is_some_and(|d| {
            d["task"]["completion_overdue"] == false
                && time(&d["time"]) <= time(&d["task"]["complete_by"])
        }));
        row[3] += u64::from(first_overdue.is_some());
        row[4] += u64::from(evs.iter().any(|e| e["change"] == "escalated"));
    }
    out
}

#[test]
fn the_demos_tasks_report_as_counted_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    yujing(&["demo", "--out", out.to_str().unwrap()]);
    let input = out.join("tasks.jsonl");
    let events = common::json_lines(&input);
    assert!(
        events.iter().any(|e| e["change"] == "acknowledged"),
        "the duty desk answers"
    );
    let csv = dir.path().join("march.csv");
    let table = march(&input, &csv);
    let rows = csv_rows(&csv);
    let (from, to) = (
        parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap(),
        parse_rfc3339("2026-04-01T00:00:00+08:00").unwrap(),
    );
    let want = recount(&events, from, to);
    assert!(!want.is_empty(), "the demo opens tasks in March");
    let got: BTreeMap<String, [u64; 5]> = rows
        .iter()
        .map(|(d, cells)| {
            let n = |i: usize| cells[i].parse::<u64>().expect("count");
            (d.clone(), [n(0), n(1), n(2), n(3), n(4)])
        })
        .collect();
    assert_eq!(got, want, "{table}");
    // Some on time, some not: the table tells them apart.
    let total = |i: usize| want.values().map(|r| r[i]).sum::<u64>();
    assert!(total(1) > 0 && total(1) < total(0), "{table}");
    assert!(total(3) > 0, "{table}");
}

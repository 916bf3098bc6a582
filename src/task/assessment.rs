//! Assessment (考核督导): per department and month, how tasks were handled —
//! received, acknowledged on time, done on time, overdue, escalated, and the
//! median times to acknowledge and to complete — from the task events of a
//! run (`tasks.jsonl` or the tasks topic). `yujing report tasks` prints it as a
//! table and writes it as CSV.
//!
//! A task counts for the month (UTC+8) it opened in, and for the department it
//! was first given to: an escalation is that department's miss. It was
//! acknowledged on time if its first acknowledgement came before any
//! `overdue`; done on time if done by its time to complete.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{Change, Task};
use crate::core::time::{LOCAL_OFFSET, Millis, format_local};

/// One task event as the report reads it.
#[derive(Debug, Deserialize)]
struct Event {
    change: Change,
    #[serde(with = "crate::core::time::rfc3339")]
    time: Millis,
    task: Task,
}

/// What happened to one task.
#[derive(Debug, Default)]
struct Life {
    department: String,
    opened_at: Millis,
    acknowledged: Option<Millis>,
    acknowledged_late: bool,
    done: Option<Millis>,
    done_late: bool,
    overdue: bool,
    escalated: bool,
}

/// One department's month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub department: String,
    pub received: u64,
    pub acknowledged_on_time: u64,
    pub done_on_time: u64,
    pub overdue: u64,
    pub escalated: u64,
    /// Minutes, over the tasks acknowledged (done).
    pub median_acknowledge_minutes: Option<f64>,
    pub median_complete_minutes: Option<f64>,
}

/// `2026-03` → the first instant of that month and of the next, UTC+8.
pub fn month_bounds(month: &str) -> Option<(Millis, Millis)> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) {
        return None;
    }
    let at = |y: i32, m: u32| {
        crate::core::time::parse_rfc3339(&format!("{y:04}-{m:02}-01T00:00:00Z"))
            .map(|utc| utc - LOCAL_OFFSET)
    };
    let next = if m == 12 { at(y + 1, 1) } else { at(y, m + 1) };
    Some((at(y, m)?, next?))
}

/// The report over task events (JSON lines); lines that are not task events
/// are counted and skipped.
pub fn assess(lines: &str, month: (Millis, Millis)) -> (Vec<Row>, usize) {
    let mut lives: BTreeMap<String, Life> = BTreeMap::new();
    let mut skipped = 0;
    let mut events: Vec<Event> = Vec::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) => skipped += 1,
        }
    }
    // Topics are read partition by partition: put each task's story in order.
    events.sort_by_key(|e| (e.task.version, e.time));
    for e in &events {
        let t = &e.task;
        let life = lives.entry(t.task_id.clone()).or_insert_with(|| Life {
            department: t.owner().to_string(),
            opened_at: t.opened_at,
            ..Life::default()
        });
        if e.change == Change::Opened {
            life.department = t.department.clone();
        }
        match e.change {
            Change::Acknowledged if life.acknowledged.is_none() => {
                life.acknowledged = Some(e.time);
                life.acknowledged_late = life.overdue;
            }
            Change::Done if life.done.is_none() => {
                life.done = Some(e.time);
                life.done_late =
                    t.completion_overdue || (t.complete_by > 0 && e.time > t.complete_by);
            }
            Change::Overdue => life.overdue = true,
            Change::Escalated => life.escalated = true,
            _ => {}
        }
    }
    let mut rows: BTreeMap<String, (Row, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for life in lives
        .values()
        .filter(|l| l.opened_at >= month.0 && l.opened_at < month.1)
    {
        let (row, acks, dones) = rows.entry(life.department.clone()).or_default();
        row.department = life.department.clone();
        row.received += 1;
        row.acknowledged_on_time +=
            u64::from(life.acknowledged.is_some() && !life.acknowledged_late);
        row.done_on_time += u64::from(life.done.is_some() && !life.done_late);
        row.overdue += u64::from(life.overdue);
        row.escalated += u64::from(life.escalated);
        let minutes = |t: Millis| (t - life.opened_at) as f64 / 60_000.0;
        acks.extend(life.acknowledged.map(minutes));
        dones.extend(life.done.map(minutes));
    }
    let rows = rows
        .into_values()
        .map(|(mut row, mut acks, mut dones)| {
            row.median_acknowledge_minutes = median(&mut acks);
            row.median_complete_minutes = median(&mut dones);
            row
        })
        .collect();
    (rows, skipped)
}

/// `yujing report tasks`: the table for `month` over the task events in
/// `text` (JSON lines), and the CSV written to `csv_out` when asked.
pub fn report(
    text: &str,
    month: &str,
    csv_out: Option<&std::path::Path>,
) -> crate::error::Result<String> {
    use crate::error::Error;
    let bounds = month_bounds(month)
        .ok_or_else(|| Error::Other(format!("--month `{month}`: expected YYYY-MM")))?;
    let (rows, skipped) = assess(text, bounds);
    if let Some(path) = csv_out {
        std::fs::write(path, csv(&rows)).map_err(|e| Error::io(path, e))?;
    }
    let mut out = table(&rows, month, bounds);
    if skipped > 0 {
        let _ = writeln!(
            out,
            "({skipped} lines were not task events and were skipped)"
        );
    }
    Ok(out)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

const HEADER: [&str; 8] = [
    "department",
    "received",
    "acknowledged_on_time",
    "done_on_time",
    "overdue",
    "escalated",
    "median_acknowledge_minutes",
    "median_complete_minutes",
];

fn minutes(m: Option<f64>) -> String {
    m.map_or(String::new(), |m| format!("{m:.0}"))
}

/// The rows as CSV, with a header line.
pub fn csv(rows: &[Row]) -> String {
    let mut out = HEADER.join(",") + "\n";
    for r in rows {
        let dept = if r.department.contains([',', '"']) {
            format!("\"{}\"", r.department.replace('"', "\"\""))
        } else {
            r.department.clone()
        };
        let _ = writeln!(
            out,
            "{dept},{},{},{},{},{},{},{}",
            r.received,
            r.acknowledged_on_time,
            r.done_on_time,
            r.overdue,
            r.escalated,
            minutes(r.median_acknowledge_minutes),
            minutes(r.median_complete_minutes)
        );
    }
    out
}

/// `s` padded to `width` terminal columns (CJK characters take two), on the
/// right (`left`) or the left.
fn pad(s: &str, width: usize, left: bool) -> String {
    let wide = s.chars().filter(|c| *c >= '\u{2e80}').count();
    let fill = " ".repeat(width.saturating_sub(s.chars().count() + wide));
    if left {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

/// The rows as a table for the terminal, with the month's totals.
pub fn table(rows: &[Row], month: &str, bounds: (Millis, Millis)) -> String {
    let mut out = format!(
        "任务考核 {month}（{} – {}，按首次派发部门）\n",
        format_local(bounds.0).get(..10).unwrap_or_default(),
        format_local(bounds.1 - 1).get(..10).unwrap_or_default()
    );
    let line = |cells: [String; 8]| {
        let mut l = pad(&cells[0], 30, true);
        for c in &cells[1..] {
            l.push_str(&pad(c, 14, false));
        }
        l + "\n"
    };
    out.push_str(&line(
        [
            "部门 department",
            "收到 recv",
            "按时签收 ack",
            "按时办结 done",
            "超时 late",
            "升级 esc",
            "签收中位 min",
            "办结中位 min",
        ]
        .map(String::from),
    ));
    let pct = |n: u64, of: u64| {
        if of == 0 {
            "-".to_string()
        } else {
            format!("{n} ({:.0}%)", 100.0 * n as f64 / of as f64)
        }
    };
    for r in rows {
        out.push_str(&line([
            r.department.clone(),
            r.received.to_string(),
            pct(r.acknowledged_on_time, r.received),
            pct(r.done_on_time, r.received),
            r.overdue.to_string(),
            r.escalated.to_string(),
            minutes(r.median_acknowledge_minutes),
            minutes(r.median_complete_minutes),
        ]));
    }
    let total: u64 = rows.iter().map(|r| r.received).sum();
    let _ = writeln!(out, "{} departments, {total} tasks", rows.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::format_rfc3339;

    #[test]
    fn months_are_local_and_december_rolls_over() {
        let (a, b) = month_bounds("2026-12").expect("month");
        assert_eq!(format_rfc3339(a), "2026-11-30T16:00:00Z");
        assert_eq!(format_rfc3339(b), "2026-12-31T16:00:00Z");
        assert_eq!(month_bounds("2026-13"), None);
        assert_eq!(month_bounds("March"), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}

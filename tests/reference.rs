//! Reference tables in the running daemon, on the broker: a pipeline joins a
//! list of watched grids and a route fills the control department from the
//! grid's worker. The list file is changed while the daemon runs; the file
//! watch reads it again (the version metric goes to 2), and the windows after
//! the change use it: a grid added to the list alerts, and the tasks opened
//! after go to the worker the new file names.

use std::time::Duration;

mod broker;
mod common;
use broker::{Setup, eventually, http, read_topic, stop};

const WATCHED: &str = r#"name = "watched_grid_hour"
lateness = "0s"
sql = """
SELECT p.district, p.grid_id, count(*) AS n
FROM police_incident p JOIN watched_grids g ON p.grid_id = g.grid_id
GROUP BY p.district, p.grid_id, tumble(INTERVAL '1 hour')
"""

[[rule]]
when = "n >= 2"
level = "orange"
"#;

const TABLE: &str = r#"
[tables.watched_grids]
file = "watched_grids.csv"
key = "grid_id"
columns = [
  { name = "grid_id", type = "string", required = true },
  { name = "worker", type = "string", required = true },
]
"#;

const ROUTING: &str = r#"
[default]
legal = "区委政法委"
opinion = "区委宣传部（网信办）"
control = "西湖公安分局"

[[route]]
pipeline = "watched_grid_hour"
control = "{watched_grids.worker}"
"#;

fn incident(id: &str, grid: &str, time: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_time":"{time}","district":"西湖区","street":"北山街道","grid_id":"{grid}","kind":"dispute","deaths":0,"injuries":0}}"#
    )
}

fn version(port: u16) -> (Option<f64>, String) {
    let (_, text) = http(port, "GET", "/metrics", &[], "");
    let v = text
        .lines()
        .find(|l| l.starts_with("yujing_reference_table_version{table=\"watched_grids\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok());
    (v, text)
}

/// Produces two incidents in hour `h` on each of XH-01-21 and XH-01-22, and
/// one on XH-01-23 an hour later (closing the window); returns the grids that
/// fire in hour `h`, once `n` alerts of that hour are on the topic.
fn firing_in_hour(s: &Setup, h: u32, n: usize) -> Vec<String> {
    let at = |hour: u32, minute: u32| format!("2026-03-14T{hour:02}:{minute:02}:00Z");
    s.produce(&[
        incident(&format!("a{h}"), "XH-01-21", &at(h, 5)),
        incident(&format!("b{h}"), "XH-01-21", &at(h, 10)),
        incident(&format!("c{h}"), "XH-01-22", &at(h, 15)),
        incident(&format!("d{h}"), "XH-01-22", &at(h, 20)),
        incident(&format!("e{h}"), "XH-01-23", &at(h + 1, 30)),
    ]);
    let start = at(h, 0);
    let of_hour = |a: &&serde_json::Value| a["window_start"] == start.as_str();
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("ref{h}{}", s.id),
        Duration::from_secs(60),
        |v| v.iter().filter(of_hour).count() >= n,
    );
    let mut grids: Vec<String> = alerts
        .iter()
        .filter(of_hour)
        .filter(|a| a["status"] == "firing")
        .filter_map(|a| a["key"]["grid_id"].as_str().map(str::to_string))
        .collect();
    grids.sort();
    grids
}

#[test]
fn a_reference_file_changed_while_running_is_used_by_the_windows_after() {
    let s = Setup::with(&[("watched_grid_hour", WATCHED)], TABLE);
    let dir = s.dir.path();
    std::fs::write(dir.join("routing.toml"), ROUTING).expect("write");
    // A top-level key, so before the tables Setup wrote.
    let config = std::fs::read_to_string(dir.join("yujing.toml")).expect("read");
    std::fs::write(
        dir.join("yujing.toml"),
        format!("routing = \"routing.toml\"\n{config}"),
    )
    .expect("write");
    let file = dir.join("watched_grids.csv");
    std::fs::write(&file, "grid_id,worker\nXH-01-21,甲网格员\n").expect("write");
    let daemon = s.start();
    let port = s.port;
    assert_eq!(version(port).0, Some(1.0), "{}", version(port).1);

    // Hour 01: two incidents on each of two grids; only XH-01-21 is watched.
    let grids = firing_in_hour(&s, 1, 1);
    assert_eq!(grids, ["XH-01-21"]);

    // The list changes: XH-01-22 joins, XH-01-21 gets another worker.
    std::fs::write(
        &file,
        "grid_id,worker\nXH-01-21,乙网格员\nXH-01-22,乙网格员\n",
    )
    .expect("write");
    eventually(30, "the file read again", || {
        let (v, text) = version(port);
        ((v == Some(2.0)).then_some(()), text)
    });

    // Hour 05: the same two grids again; the added grid alerts too.
    let grids = firing_in_hour(&s, 5, 2);
    assert_eq!(grids, ["XH-01-21", "XH-01-22"]);

    let tasks = read_topic(
        &s.topic("tasks"),
        &format!("ref3{}", s.id),
        Duration::from_secs(60),
        |v| {
            v.iter().any(|t| {
                t["task"]["key"]["grid_id"] == "XH-01-22" && t["task"]["track"] == "control"
            })
        },
    );
    // In the order the tasks opened (the topic's partitions keep no order between them).
    let control = |grid: &str| -> Vec<String> {
        let mut opened: Vec<(String, String)> = tasks
            .iter()
            .filter(|t| t["change"] == "opened")
            .filter(|t| t["task"]["key"]["grid_id"] == grid && t["task"]["track"] == "control")
            .map(|t| {
                let field = |f: &str| t["task"][f].as_str().unwrap_or_default().to_string();
                (field("opened_at"), field("department"))
            })
            .collect();
        opened.sort();
        opened.into_iter().map(|(_, d)| d).collect()
    };
    assert_eq!(control("XH-01-21"), ["甲网格员", "乙网格员"], "{tasks:?}");
    assert_eq!(control("XH-01-22"), ["乙网格员"], "{tasks:?}");
    stop(daemon);
}

//! A live redeploy on the broker (`kill -HUP`, `POST /api/reload`): the
//! shipped deaths pipeline and a rules pipeline each hold an open incident; a
//! broken set is refused with its located error and the daemon runs on; then the rules pipeline changes: its incident is withdrawn
//! and it starts afresh under its new rule, while the deaths pipeline keeps its
//! incident and its state (a second red day is the same incident, not a new one).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod broker;
mod common;
use broker::{AUTH, Setup, eventually, http, read_topic, stop};
use common::{GRID_RULES, incident};

const DEATHS: &str = include_str!("../pipelines/police_deaths_district_day.toml");

/// An accident with `deaths` deaths on 北山街道, 西湖区.
fn accident(id: &str, time: &str, deaths: u32) -> String {
    format!(
        r#"{{"event_id":"{id}","event_time":"{time}","district":"西湖区","street":"北山街道","grid_id":"XH-01-21","kind":"accident","deaths":{deaths},"injuries":0}}"#
    )
}

fn hangup(daemon: &broker::Daemon) {
    let pid = daemon.0.id().to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The value of a metric line that starts with `prefix` (0 when absent).
fn metric(port: u16, prefix: &str) -> (f64, String) {
    let (_, text) = http(port, "GET", "/metrics", &[], "");
    let value = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (value, text)
}

fn open_incidents(port: u16) -> Vec<Value> {
    let (_, body) = http(port, "GET", "/api/alerts", &[AUTH], "");
    serde_json::from_str(&body).unwrap_or_default()
}

#[test]
fn sighup_swaps_a_changed_pipeline_keeps_the_others_and_refuses_a_broken_set() {
    let s = Setup::with(
        &[
            ("police_deaths_district_day", DEATHS),
            ("grid_rules", GRID_RULES),
        ],
        "",
    );
    let daemon = s.start();
    let port = s.port;
    // Day one: four incidents in 01:00–02:00 (grid_rules orange), one of them an
    // accident with three deaths (the shipped rule: red); 19:00 closes both windows.
    let mut records: Vec<String> = [5, 20, 40]
        .iter()
        .enumerate()
        .map(|(i, m)| incident(i, &format!("2026-03-14T01:{m:02}:00Z")))
        .collect();
    records.push(accident("A-1", "2026-03-14T01:50:00Z", 3));
    records.push(incident(10, "2026-03-14T19:00:00Z"));
    s.produce(&records);
    let before = eventually(60, "both incidents open", || {
        let open = open_incidents(port);
        let pipelines: Vec<&str> = open.iter().filter_map(|a| a["pipeline"].as_str()).collect();
        let both =
            pipelines.contains(&"grid_rules") && pipelines.contains(&"police_deaths_district_day");
        (both.then(|| open.clone()), format!("{open:?}"))
    });
    let deaths_incident = before
        .iter()
        .find(|a| a["pipeline"] == "police_deaths_district_day")
        .map(|a| a["incident_id"].clone())
        .expect("deaths incident");
    let grid_incident = before
        .iter()
        .find(|a| a["pipeline"] == "grid_rules")
        .map(|a| a["incident_id"].clone())
        .expect("grid incident");

    // A broken set is refused: the daemon runs on with the old one.
    let file = s.dir.path().join("pipelines/grid_rules.toml");
    std::fs::write(
        &file,
        GRID_RULES.replace("count(*) AS n", "count(*) AS n, no_such_column"),
    )
    .expect("write");
    hangup(&daemon);
    eventually(30, "the broken set refused", || {
        let (refused, text) = metric(port, "yujing_reloads_total{result=\"refused\"}");
        ((refused == 1.0).then_some(()), text)
    });
    assert_eq!(open_incidents(port).len(), 2, "nothing changed");
    let (status, _) = http(port, "GET", "/healthz", &[], "");
    assert_eq!(status, 200, "still running");

    // The rules pipeline changes: orange from 4 an hour (was 3).
    std::fs::write(&file, GRID_RULES.replace("n >= 3", "n >= 4")).expect("write");
    hangup(&daemon);
    let (_, text) = eventually(30, "the new set applied", || {
        let (applied, text) = metric(port, "yujing_reloads_total{result=\"applied\"}");
        ((applied == 1.0).then_some(((), text.clone())), text)
    });
    let definitions: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("yujing_pipeline_definition{"))
        .collect();
    assert_eq!(definitions.len(), 2, "{definitions:?}");
    let open = open_incidents(port);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0]["incident_id"], deaths_incident,
        "the unchanged pipeline keeps its incident"
    );

    // Day two: another accident with deaths (red again) and four incidents in
    // 03:00–04:00 (orange under the new rule); 19:00 closes both.
    let mut records: Vec<String> = [5, 15, 25, 35]
        .iter()
        .enumerate()
        .map(|(i, m)| incident(20 + i, &format!("2026-03-15T03:{m:02}:00Z")))
        .collect();
    records.push(accident("A-2", "2026-03-15T02:00:00Z", 4));
    records.push(incident(30, "2026-03-15T19:00:00Z"));
    s.produce(&records);
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("ra{}", s.id),
        Duration::from_secs(60),
        // Alerts are keyed by incident, so they sit on different partitions:
        // wait for the withdrawal as well as the new firing, whichever comes first.
        |v| {
            let grid = |a: &Value| a["pipeline"] == "grid_rules";
            v.iter().any(|a| {
                grid(a) && a["status"] == "firing" && a["window_start"] == "2026-03-15T03:00:00Z"
            }) && v
                .iter()
                .any(|a| grid(a) && a["status"] == "resolved" && a["incident_id"] == grid_incident)
        },
    );
    let of = |pipeline: &str| -> Vec<&Value> {
        alerts
            .iter()
            .filter(|a| a["pipeline"] == pipeline)
            .collect()
    };
    let grid = of("grid_rules");
    let withdrawn: Vec<&&Value> = grid
        .iter()
        .filter(|a| a["status"] == "resolved" && a["incident_id"] == grid_incident)
        .collect();
    assert_eq!(
        withdrawn.len(),
        1,
        "the changed pipeline's incident is withdrawn: {grid:?}"
    );
    assert!(
        withdrawn[0]["method"]
            .as_str()
            .is_some_and(|m| m.contains("definition changed")),
        "{withdrawn:?}"
    );
    let fresh = grid
        .iter()
        .find(|a| a["status"] == "firing" && a["window_start"] == "2026-03-15T03:00:00Z")
        .unwrap_or_else(|| panic!("the new rule's incident: {alerts:#?}"));
    assert_ne!(fresh["incident_id"], grid_incident);
    // The deaths pipeline's state went on: day two's red is the same open
    // incident, so no second firing alert and no resolution.
    let deaths = of("police_deaths_district_day");
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_eq!(deaths[0]["incident_id"], deaths_incident);
    stop(daemon);
}

/// Police incidents per street and hour against the last 24 hours: it judges
/// nothing until it has 24 windows of a street.
const STREET_POISSON: &str = r#"name = "street_poisson"
lateness = "0s"
sql = """
SELECT district, street, count(*) AS n
FROM police_incident
GROUP BY district, street, tumble(INTERVAL '1 hour')
"""

[detect]
value = "n"
key = ["district", "street"]
method = "poisson"
baseline = 24
alpha = 1e-3
"#;

#[test]
fn a_pipeline_added_live_is_warmed_from_a_replay_over_history() {
    let s = Setup::with(&[("grid_rules", GRID_RULES)], "");
    // History: one incident an hour on 北山街道 for two days, replayed through
    // the new pipeline, its state saved.
    let history: Vec<String> = (0..48)
        .map(|h| {
            incident(
                100 + h,
                &format!("2026-03-{:02}T{:02}:10:00Z", 10 + h / 24, h % 24),
            )
        })
        .collect();
    let dir = s.dir.path();
    std::fs::write(dir.join("history.jsonl"), history.join("\n") + "\n").expect("write");
    std::fs::create_dir_all(dir.join("new")).expect("mkdir");
    std::fs::write(dir.join("new/street_poisson.toml"), STREET_POISSON).expect("write");
    let saved = dir.join("saved.json");
    let out = Command::new(env!("CARGO_BIN_EXE_yujing"))
        .args([
            "replay",
            "--quiet",
            "--now",
            "2026-12-01T00:00:00Z",
            "--pipelines",
        ])
        .arg(dir.join("new"))
        .arg("--input")
        .arg(format!(
            "police_incident={}",
            dir.join("history.jsonl").display()
        ))
        .arg("--out")
        .arg(dir.join("history-out"))
        .arg("--save-state")
        .arg(&saved)
        .env("YUJING_PII_KEY", common::PII_KEY)
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let daemon = s.start();
    let port = s.port;
    // The daemon's state dir takes the saved state as warm.json; the new
    // pipeline joins the running set over the API.
    std::fs::copy(&saved, dir.join("state/warm.json")).expect("copy");
    std::fs::write(dir.join("pipelines/street_poisson.toml"), STREET_POISSON).expect("write");
    let (status, body) = http(port, "POST", "/api/reload", &[AUTH], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"added ["street_poisson"]"#), "{body}");
    assert!(body.contains(r#"warmed ["street_poisson"]"#), "{body}");

    // Live, the next day: twelve incidents in 10:00–11:00 and one at 12:30.
    // Without its history the pipeline would still be warming up (24 windows).
    let mut live: Vec<String> = (0..12)
        .map(|i| incident(300 + i, &format!("2026-03-12T10:{:02}:00Z", i * 4)))
        .collect();
    live.push(incident(400, "2026-03-12T12:30:00Z"));
    s.produce(&live);
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("rw{}", s.id),
        Duration::from_secs(60),
        |v| v.iter().any(|a| a["pipeline"] == "street_poisson"),
    );
    let warmed: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["pipeline"] == "street_poisson")
        .collect();
    assert_eq!(warmed.len(), 1, "{alerts:?}");
    assert_eq!(warmed[0]["status"], "firing");
    assert_eq!(warmed[0]["window_start"], "2026-03-12T10:00:00Z");
    assert_eq!(warmed[0]["value"], 12.0);
    stop(daemon);
}

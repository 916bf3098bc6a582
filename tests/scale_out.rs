//! State per partition, on the broker: three instances of the shipped daemon
//! (`[state] per_partition = true`) share one group on six-partition feed
//! topics fed by an independent producer; one is killed with SIGKILL mid-run
//! and later a fourth joins. The union of what they sent equals `yujing
//! replay` of the same input: every closable alert once, nothing replay did
//! not raise, every task replay opened for them opened once, and no dead
//! letter replay did not write (none made late by a handoff).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod broker;
mod common;
use broker::{AUTH, Daemon, Setup, brokers, http, not_by_deadline, shipped, stop, wait_ready};

const FEEDS: [(&str, &str); 4] = [
    ("public_opinion", "opinion6"),
    ("petition", "petition6"),
    ("labor_dispute", "labor6"),
    ("police_incident", "police6"),
];

/// Writes the first or second half of `from`'s lines to `to`.
fn half(from: &Path, to: &Path, second: bool) {
    let text = std::fs::read_to_string(from).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() / 2;
    let chosen = if second { &lines[cut..] } else { &lines[..cut] };
    std::fs::write(to, chosen.join("\n") + "\n").expect("write");
}

/// Starts instance `name` (its own state dir and HTTP port) and waits until it
/// is ready, unless `ready` is false.
fn instance(s: &Setup, config: &str, name: &str, ready: bool) -> (Daemon, u16) {
    let port = broker::free_port();
    let text = config
        .replace("dir = \"state\"", &format!("dir = \"{name}\""))
        .replace(
            &format!("127.0.0.1:{}", s.port),
            &format!("127.0.0.1:{port}"),
        );
    let file = format!("{name}.toml");
    std::fs::write(s.dir.path().join(&file), text).expect("write");
    let mut d = s.spawn(&file);
    if ready {
        wait_ready(&mut d, port);
    }
    (d, port)
}

/// The ids of the tasks an instance's API lists.
fn listed_tasks(port: u16) -> Vec<String> {
    let (status, body) = http(port, "GET", "/api/tasks", &[AUTH], "");
    assert_eq!(status, 200, "{body}");
    let tasks: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    tasks
        .iter()
        .filter_map(|t| t["task_id"].as_str().map(str::to_string))
        .collect()
}

/// Task events of tasks opened for `incidents`: (task, change, level), sorted.
fn task_changes(events: &[Value], incidents: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter(|e| {
            e["change"] == "opened"
                && e["task"]["incident_id"]
                    .as_str()
                    .is_some_and(|i| incidents.contains(i))
        })
        .map(|e| format!("{} {}", e["task"]["task_id"], e["task"]["level"]))
        .collect();
    out.sort();
    out
}

#[test]
fn three_instances_one_killed_and_a_fourth_joining_send_what_replay_raises_once() {
    let s = Setup::new();
    let names: Vec<&str> = FEEDS.iter().map(|(_, n)| *n).collect();
    s.add_topics_with(&names, 6);
    let config = shipped::config(&s, &FEEDS)
        .replace(
            "checkpoint_interval = \"10s\"",
            "checkpoint_interval = \"1s\"",
        )
        .replace("dir = \"state\"", "dir = \"state\"\nper_partition = true");
    let data = shipped::generate(&s, 10);
    let want = shipped::replay_alerts(&s, &data);
    let last_day = "2026-03-11T00:00:00Z";
    let closable = shipped::closable(&want, last_day);
    assert!(closable.len() >= 5, "{} closable alerts", closable.len());

    let (mut a, _) = instance(&s, &config, "a", true);
    let (b, port_b) = instance(&s, &config, "b", true);
    let (c, port_c) = instance(&s, &config, "c", true);
    // The first half, then the second half arriving when `a` is killed.
    let mut rest = Vec::new();
    for (feed, name) in FEEDS {
        let source = data.join(format!("{feed}.jsonl"));
        let (first, second) = (
            s.dir.path().join(format!("{name}-1.jsonl")),
            s.dir.path().join(format!("{name}-2.jsonl")),
        );
        half(&source, &first, false);
        half(&source, &second, true);
        broker::produce_file(&brokers(), &s.topic(name), &first);
        rest.push((s.topic(name), second));
    }
    std::thread::sleep(Duration::from_secs(4));
    let producer = std::thread::spawn(move || {
        for (topic, file) in rest {
            broker::produce_file(&brokers(), &topic, &file);
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    a.0.kill().expect("kill -9");
    a.0.wait().expect("wait");
    producer.join().expect("producer");
    // A fourth instance joins once the killed one's session (20 s in the tasks
    // group) is over: the group hands it (and the others) the killed one's tasks.
    std::thread::sleep(Duration::from_secs(22));
    let (d, port_d) = instance(&s, &config, "d", true);

    let got = shipped::alerts_once_closed(&s, last_day, closable.len());
    // Each instance's API lists the tasks of the engines it runs: no task on
    // two; one acknowledged through the instance that lists it is applied
    // once, and the others do not know it.
    let ports = [port_b, port_c, port_d];
    let listed: Vec<Vec<String>> = ports.iter().map(|p| listed_tasks(*p)).collect();
    let mut all: Vec<&String> = listed.iter().flatten().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a task listed by two instances: {listed:?}");
    let (at, task) = (listed.iter().enumerate())
        .find_map(|(i, l)| Some((i, l.first()?.clone())))
        .expect("an instance lists a task");
    let path = format!("/api/tasks/{task}");
    let auth = [("Content-Type", "application/json"), AUTH];
    let body = r#"{"action":"acknowledge"}"#;
    let elsewhere = ports[(at + 1) % ports.len()];
    assert_eq!(http(elsewhere, "POST", &path, &auth, body).0, 404);
    assert_eq!(http(ports[at], "POST", &path, &auth, body).0, 202);
    let acknowledged = |v: &[Value]| {
        v.iter()
            .filter(|e| e["change"] == "acknowledged" && e["task"]["task_id"] == task.as_str())
            .count()
    };
    let seen = broker::read_all_at(
        &brokers(),
        &s.topic("tasks"),
        Duration::from_secs(30),
        |v| acknowledged(v) > 0,
    );
    assert_eq!(acknowledged(&seen), 1, "acknowledged once");
    for daemon in [b, c, d] {
        stop(daemon);
    }
    // Dead letters first, none that replay did not write: one made late by a
    // handoff would explain a wrong alert.
    let replayed_dead = common::json_lines(&s.dir.path().join("replay/dead_letters.jsonl"));
    let key = |d: &Value| format!("{} {}", d["event_id"], d["reason"]);
    let want_dead: BTreeSet<String> = replayed_dead.iter().map(key).collect();
    let sent_dead =
        broker::read_all_at(&brokers(), &s.topic("dead"), Duration::from_secs(5), |_| {
            true
        });
    for d in &sent_dead {
        assert!(
            want_dead.contains(&key(d)),
            "a dead letter replay did not write: {d}"
        );
    }
    shipped::assert_as_replayed(&got, &want, last_day);

    // Tasks: every task replay opened for a closable incident, opened once;
    // no task event replay did not make.
    let replayed_tasks = common::json_lines(&s.dir.path().join("replay/tasks.jsonl"));
    let sent_tasks = broker::read_all_at(
        &brokers(),
        &s.topic("tasks"),
        Duration::from_secs(10),
        |_| true,
    );
    let incidents: BTreeSet<String> = closable
        .iter()
        .filter_map(|a| a["incident_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        task_changes(&sent_tasks, &incidents),
        task_changes(&replayed_tasks, &incidents),
        "tasks opened for the closable incidents"
    );
    let replay_changes: BTreeSet<String> = replayed_tasks
        .iter()
        .filter(|e| not_by_deadline(e))
        .map(|e| format!("{} {}", e["task"]["task_id"], e["change"]))
        .collect();
    let mut ids = BTreeSet::new();
    // (The acknowledgement above is the test's own.)
    for e in (sent_tasks.iter()).filter(|e| not_by_deadline(e) && e["change"] != "acknowledged") {
        let change = format!("{} {}", e["task"]["task_id"], e["change"]);
        assert!(replay_changes.contains(&change), "not in replay: {change}");
        assert!(ids.insert(e["event_id"].to_string()), "sent twice: {e}");
    }
}

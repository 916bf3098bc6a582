//! The people who act, against the real programs: a daemon on the broker with
//! the shipped petition pipeline, routing table and Alertmanager config, its
//! processing clock driven through `--clock-file`. Tasks open, fall overdue and
//! escalate on that clock while the feeds are quiet; acknowledgements are dated
//! when they were made; a real Alertmanager sends each task to its department's
//! receiver (a local webhook) and the escalation to the next department's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod broker;
mod common;
use broker::{AUTH, OPERATOR_NAME, Setup, Webhook, eventually, http, read_topic, stop};
use yujing::core::time::{HOUR, MINUTE, Millis, format_rfc3339, parse_rfc3339, wall_now};

const PETITIONS: &str = include_str!("../pipelines/petition_collective.toml");

fn set_clock(file: &Path, t: Millis) {
    std::fs::write(file, t.to_string()).expect("clock file");
}

fn time(e: &Value, field: &str) -> Millis {
    e[field]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("{field} in {e}"))
}

/// The task events of the legal task seen on the tasks topic so far.
fn legal_events(s: &Setup, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let group = format!("read-{}", wall_now());
    let all = read_topic(&s.topic("tasks"), &group, Duration::from_secs(60), |v| {
        until(&legal(v))
    });
    legal(&all)
}

fn legal(v: &[Value]) -> Vec<Value> {
    v.iter()
        .filter(|e| e["task"]["track"] == "legal")
        .cloned()
        .collect()
}

fn changes(v: &[Value]) -> Vec<&str> {
    v.iter().filter_map(|e| e["change"].as_str()).collect()
}

#[test]
fn on_the_wall_clock_a_quiet_feed_still_makes_a_task_overdue_escalate_and_notify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = Webhook::start();
    let config = broker::shipped_alertmanager_config(dir.path(), hook.port);
    let (_am, am_port) = broker::alertmanager_with(dir.path(), &config, &[]);
    let s = Setup::with(
        &[("petition_collective", PETITIONS)],
        &format!(
            "[alertmanager]\nurl = \"http://127.0.0.1:{am_port}\"\nresend_interval = \"2s\"\n"
        ),
    );
    s.add_feed("petition", "petition");
    let clock = s.dir.path().join("clock");
    let wall0 = wall_now() / 1000 * 1000;
    set_clock(&clock, wall0);
    let daemon = s.spawn_with(
        "yujing.toml",
        &["--clock-file", clock.to_str().expect("path")],
    );
    let mut daemon = daemon;
    broker::wait_ready(&mut daemon, s.port);
    // A collective petition three hours ago, a single one an hour ago (its
    // event time closes the first one's window); then the feed goes quiet.
    let records = [
        common::petition(wall0 - 3 * HOUR, "p-1", 60),
        common::petition(wall0 - HOUR, "p-2", 1),
    ];
    s.produce_to("petition", "西湖区", &records);

    // The task opens at the wall time the alert arrived.
    let seen = legal_events(&s, |v| changes(v).contains(&"opened"));
    let opened = &seen[0];
    assert_eq!(opened["change"], "opened");
    assert_eq!(opened["task"]["department"], "区委信访局");
    assert_eq!(
        time(opened, "time"),
        wall0,
        "opened on the processing clock"
    );
    assert_eq!(time(&opened["task"], "deadline"), wall0 + 4 * HOUR);
    let task_id = opened["task"]["task_id"].as_str().expect("id").to_string();
    eventually(60, "区委信访局's receiver hears of its task", || {
        let got = hook.alerts_at("/department/petitions");
        let hit = got.iter().any(|a| {
            a["labels"]["task_id"] == task_id.as_str()
                && a["labels"]["department"] == "区委信访局"
                && a["labels"]["track"] == "legal"
                && a["labels"]["dispatch_id"].is_string()
        });
        (hit.then_some(()), format!("{got:?} / {:?}", hook.received))
    });

    // No event arrives; the wall clock passes the four-hour deadline.
    set_clock(&clock, wall0 + 4 * HOUR + MINUTE);
    let seen = legal_events(&s, |v| changes(v).contains(&"escalated"));
    let escalated = seen
        .iter()
        .find(|e| e["change"] == "escalated")
        .expect("escalated");
    assert_eq!(time(escalated, "time"), wall0 + 4 * HOUR);
    assert_eq!(escalated["task"]["department"], "区委政法委");
    eventually(
        60,
        "the escalation reaches 区委政法委's receiver",
        || {
            let got = hook.alerts_at("/department/political-legal");
            let hit = got.iter().any(|a| {
                a["labels"]["task_id"] == task_id.as_str()
                    && a["labels"]["department"] == "区委政法委"
            });
            (hit.then_some(()), format!("{got:?}"))
        },
    );

    // Acknowledged through the API at a wall time of its own: recorded then.
    let acked_at = wall0 + 4 * HOUR + 30 * MINUTE;
    set_clock(&clock, acked_at);
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http(
        s.port,
        "POST",
        &format!("/api/tasks/{task_id}"),
        &[AUTH, ("Content-Type", "application/json")],
        r#"{"action": "acknowledge"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let seen = legal_events(&s, |v| changes(v).contains(&"acknowledged"));
    let ack = seen
        .iter()
        .find(|e| e["change"] == "acknowledged")
        .expect("ack");
    assert_eq!(time(ack, "time"), acked_at, "dated when it was made");
    assert_eq!(ack["actor"], OPERATOR_NAME);

    // The month's assessment, read out of the tasks topic: 区委信访局 received the
    // task, missed its deadline (overdue, escalated), and it was acknowledged
    // 4 h 30 min after it opened.
    let month = &format_rfc3339(wall0 + 8 * HOUR)[..7];
    let csv = s.dir.path().join("month.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_yujing"))
        .args(["report", "tasks", "--month", month, "--config"])
        .arg(s.dir.path().join("yujing.toml"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("report");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(&csv).expect("csv");
    assert!(
        csv.lines().any(|l| l == "区委信访局,1,0,0,1,1,270,"),
        "{csv}"
    );
    stop(daemon);
}

#[test]
fn replay_of_the_same_petitions_keeps_event_time_and_is_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).expect("mkdir");
    std::fs::write(pipelines.join("petition_collective.toml"), PETITIONS).expect("write");
    let t = parse_rfc3339("2026-03-14T10:00:00+08:00").expect("time");
    let input = dir.path().join("petition.jsonl");
    let lines = [
        common::petition(t - 90 * MINUTE, "p-1", 60),
        common::petition(t + 210 * MINUTE, "p-2", 1),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").expect("write");
    let run = |out: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_yujing"))
            .args([
                "replay",
                "--quiet",
                "--now",
                "2026-03-20T00:00:00Z",
                "--pipelines",
            ])
            .arg(&pipelines)
            .arg("--input")
            .arg(format!("petition={}", input.display()))
            .arg("--out")
            .arg(dir.path().join(out))
            .env("YUJING_PII_KEY", common::PII_KEY)
            .output()
            .expect("replay");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(dir.path().join(out).join("tasks.jsonl")).expect("tasks")
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(a, b, "byte-identical");
    let events = common::json_lines(&dir.path().join("a/tasks.jsonl"));
    let opened = events
        .iter()
        .find(|e| e["change"] == "opened")
        .expect("a task opened");
    // Event time: the task opens at its alert's window end, not at the wall clock.
    assert_eq!(time(opened, "time"), t - HOUR);
    assert!(
        events.iter().any(|e| e["change"] == "escalated"),
        "the second petition's window passes the deadline in event time"
    );
}

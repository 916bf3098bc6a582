//! A restart after the feed topics' older records are gone, on another machine:
//! the shipped daemon reads the first half of ten generated days and stops; a
//! second one, with an empty state dir, starts on new topics that hold only the
//! records after the checkpoint (as when retention has deleted the rest). Its
//! state comes from the state topic and its open windows from the checkpoint,
//! not from re-reading, so its alerts equal one uninterrupted `yujing replay` —
//! the homicide rate's year-long running count included.

use std::path::Path;
use std::time::{Duration, Instant};

mod broker;
mod common;
use broker::{Setup, brokers, shipped, stop, wait_ready};

/// Writes lines `range` of `from` to `to`; returns how many.
fn part(from: &Path, to: &Path, half: Half) -> usize {
    let text = std::fs::read_to_string(from).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() / 2;
    let chosen = match half {
        Half::First => &lines[..cut],
        Half::Second => &lines[cut..],
    };
    std::fs::write(to, chosen.join("\n") + "\n").expect("write");
    chosen.len()
}

#[derive(Clone, Copy)]
enum Half {
    First,
    Second,
}

/// The offsets the daemon's latest checkpoint says it consumed, per topic: of
/// `dir/state`, or with state per partition, of its tasks' dirs (a partition
/// two tasks read counts as far as the one behind).
fn consumed(dir: &Path) -> std::collections::BTreeMap<String, i64> {
    let state = dir.join("state");
    let mut files = vec![state.join("checkpoint.json")];
    if let Ok(tasks) = std::fs::read_dir(&state) {
        files.extend(tasks.flatten().map(|e| e.path().join("checkpoint.json")));
    }
    let mut at: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let cp: serde_json::Value = serde_json::from_str(&text).expect("checkpoint");
        for (t, parts) in cp["consumed"].as_object().into_iter().flatten() {
            for (p, o) in parts.as_object().into_iter().flatten() {
                let o = o.as_i64().unwrap_or(0);
                let e = at.entry((t.clone(), p.clone())).or_insert(o);
                *e = (*e).min(o);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for ((t, _), o) in at {
        *out.entry(t).or_insert(0) += o;
    }
    out
}

/// Waits until the checkpoint in `dir/state` says every record of `expected`
/// (topic → records) was consumed.
fn wait_consumed(dir: &Path, expected: &std::collections::BTreeMap<String, i64>) {
    let end = Instant::now() + Duration::from_secs(120);
    while consumed(dir) != *expected {
        assert!(
            Instant::now() < end,
            "consumed {:?} of {expected:?}",
            consumed(dir)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn taken_over_with_an_empty_state_dir_on_topics_without_the_older_records_the_shipped_daemon_emits_replays_alerts()
 {
    taken_over(false);
}

/// The same with state per partition: each task's state comes from the state
/// topic under its own key.
#[test]
fn with_state_per_partition_taken_over_on_topics_without_the_older_records_the_tasks_emit_replays_alerts()
 {
    taken_over(true);
}

fn taken_over(per_partition: bool) {
    let s = Setup::new();
    let first: Vec<(&str, String)> = shipped::FEEDS
        .iter()
        .map(|(feed, name)| (*feed, format!("{name}-1")))
        .collect();
    let second: Vec<(&str, String)> = shipped::FEEDS
        .iter()
        .map(|(feed, name)| (*feed, format!("{name}-2")))
        .collect();
    let names: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|(_, n)| n.as_str())
        .collect();
    s.add_topics(&names);
    let with_checkpoints = |feeds: &[(&str, String)]| {
        let feeds: Vec<(&str, &str)> = feeds.iter().map(|(f, n)| (*f, n.as_str())).collect();
        let config = shipped::config(&s, &feeds).replace(
            "checkpoint_interval = \"10s\"",
            "checkpoint_interval = \"1s\"",
        );
        if per_partition {
            config.replace("dir = \"state\"", "dir = \"state\"\nper_partition = true")
        } else {
            config
        }
    };
    std::fs::write(s.dir.path().join("first.toml"), with_checkpoints(&first)).expect("write");
    // The second instance's state dir is new: all it has is the state topic.
    std::fs::write(
        s.dir.path().join("second.toml"),
        with_checkpoints(&second).replace("dir = \"state\"", "dir = \"elsewhere\""),
    )
    .expect("write");

    let data = shipped::generate(&s, 10);
    // Eight homicides in 西湖区 (1.13 million residents), four in each half:
    // 0.71 per 100 000 in the year so far is orange, but only if the running
    // count of the first half survives the restart.
    shipped::add_homicides(
        &data,
        &[
            "2026-03-03T10:00:00+08:00",
            "2026-03-04T10:00:00+08:00",
            "2026-03-05T10:00:00+08:00",
            "2026-03-05T14:00:00+08:00",
            "2026-03-08T10:00:00+08:00",
            "2026-03-08T15:00:00+08:00",
            "2026-03-09T10:00:00+08:00",
            "2026-03-09T12:00:00+08:00",
        ],
    );
    let want = shipped::replay_alerts(&s, &data);
    let last_day = "2026-03-11T00:00:00Z";
    let closable = shipped::closable(&want, last_day).len();
    assert!(closable >= 5, "{closable} closable alerts");
    assert!(
        want.iter()
            .any(|a| a["pipeline"] == "negative_list_homicide_rate"),
        "the year-long pipeline alerts in these days"
    );

    // The first half, read to the end and checkpointed, then a clean stop.
    let mut daemon = s.spawn("first.toml");
    wait_ready(&mut daemon, s.port);
    let mut expected = std::collections::BTreeMap::new();
    for (feed, name) in &first {
        let file = s.dir.path().join(format!("{name}.jsonl"));
        let n = part(&data.join(format!("{feed}.jsonl")), &file, Half::First);
        expected.insert(s.topic(name), n as i64);
        broker::produce_file(&brokers(), &s.topic(name), &file);
    }
    wait_consumed(s.dir.path(), &expected);
    stop(daemon);

    // The rest, on topics that never held the first half.
    assert!(!s.dir.path().join("elsewhere").exists());
    let mut daemon = s.spawn("second.toml");
    wait_ready(&mut daemon, s.port);
    for (feed, name) in &second {
        let file = s.dir.path().join(format!("{name}.jsonl"));
        part(&data.join(format!("{feed}.jsonl")), &file, Half::Second);
        broker::produce_file(&brokers(), &s.topic(name), &file);
    }
    shipped::assert_daemon_sent_as_replayed(&s, daemon, &want, last_day);
}

/// Ten generated days arrive while the shipped daemon runs; it is killed with
/// SIGKILL while the second half arrives, and a second instance with a state dir of its own
/// (empty: another machine) joins the group once the first one's session is
/// over. It resumes from the state topic's checkpoint: the alerts on the topic
/// are replay's, none missing and none twice.
#[test]
fn killed_and_replaced_by_an_instance_with_an_empty_state_dir_the_shipped_daemon_emits_each_alert_once()
 {
    let s = Setup::new();
    s.add_topics(&["opinion", "petition", "labor"]);
    let config = shipped::config(&s, &shipped::FEEDS).replace(
        "checkpoint_interval = \"10s\"",
        "checkpoint_interval = \"1s\"",
    );
    std::fs::write(s.dir.path().join("a.toml"), &config).expect("write");
    std::fs::write(
        s.dir.path().join("b.toml"),
        config.replace("dir = \"state\"", "dir = \"b\""),
    )
    .expect("write");
    let data = shipped::generate(&s, 10);
    let want = shipped::replay_alerts(&s, &data);
    let last_day = "2026-03-11T00:00:00Z";
    let mut a = s.spawn("a.toml");
    wait_ready(&mut a, s.port);
    // The first half, consumed and checkpointed; the second half arriving when
    // the first instance is killed.
    let mut expected = std::collections::BTreeMap::new();
    let mut rest = Vec::new();
    for (feed, name) in shipped::FEEDS {
        let (first, second) = (
            s.dir.path().join(format!("{name}-1.jsonl")),
            s.dir.path().join(format!("{name}-2.jsonl")),
        );
        let source = data.join(format!("{feed}.jsonl"));
        let n = part(&source, &first, Half::First);
        part(&source, &second, Half::Second);
        expected.insert(s.topic(name), n as i64);
        broker::produce_file(&brokers(), &s.topic(name), &first);
        rest.push((s.topic(name), second));
    }
    wait_consumed(s.dir.path(), &expected);
    let producer = std::thread::spawn(move || {
        for (topic, file) in rest {
            broker::produce_file(&brokers(), &topic, &file);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    a.0.kill().expect("SIGKILL");
    let _ = a.0.wait();
    // A supervisor elsewhere starts the replacement after the session timeout.
    std::thread::sleep(Duration::from_secs(7));
    let mut b = s.spawn("b.toml");
    wait_ready(&mut b, s.port);
    producer.join().expect("producer");
    shipped::assert_daemon_sent_as_replayed(&s, b, &want, last_day);
}

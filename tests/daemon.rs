//! The daemon on a real Kafka-protocol broker (`KAFKA_BROKERS`, started by
//! `scripts/broker.sh start`, which `scripts/test.sh` runs): events produced to a
//! feed topic come out of `yujing run` as the same alerts and task events that
//! `yujing replay` writes for the same records; bad records reach the dead-letter
//! topic with their partition and offset; the HTTP API serves metrics, alerts and
//! tasks and applies a task update with a bearer token; SIGTERM exits 0 quickly;
//! a daemon stopped half way and started again resumes from its checkpoint (its
//! API showing the open incident and tasks again) and together they emit exactly
//! what replay does: nothing lost, nothing twice; one
//! killed with SIGKILL before any checkpoint is not repeated by its successor.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

mod broker;
mod common;
use broker::{AUTH, OPERATOR_NAME, Setup, brokers, http, read_topic, sorted, stop, task_lifecycle};
use common::escalating_incidents;

/// The escalating incidents with a malformed record before the last two.
fn records() -> Vec<String> {
    let mut out = escalating_incidents();
    out.insert(10, "this is not JSON".into());
    out
}

#[test]
fn the_daemon_on_a_broker_matches_replay_and_serves_its_api() {
    let s = Setup::new();
    let (id, port) = (&s.id, s.port);
    let topic = |name: &str| s.topic(name);
    // Produced by an independent client (Python confluent-kafka), keyed by district.
    let feed = s.dir.path().join("feed.jsonl");
    std::fs::write(&feed, records().join("\n") + "\n").expect("write");
    broker::produce_file(&brokers(), &topic("police"), &feed);
    // Ready once partitions are assigned.
    let daemon = s.start();
    // The same records through replay: the reference output.
    let (want_alerts, want_tasks) = s.replay(&records());
    assert_eq!(want_alerts.len(), 3, "orange, its red escalation, resolved");

    let alerts = read_topic(
        &topic("alerts"),
        &format!("ra{id}"),
        Duration::from_secs(60),
        |v| v.len() >= want_alerts.len(),
    );
    assert_eq!(sorted(alerts), sorted(want_alerts));
    let tasks = read_topic(
        &topic("tasks"),
        &format!("rt{id}"),
        Duration::from_secs(60),
        |v| v.len() >= want_tasks.len(),
    );
    assert_eq!(task_lifecycle(&tasks), task_lifecycle(&want_tasks));
    let dead = read_topic(
        &topic("dead"),
        &format!("rd{id}"),
        Duration::from_secs(30),
        |v| !v.is_empty(),
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "invalid_json");
    assert_eq!(dead[0]["source"]["topic"], topic("police"));
    // Not JSON: nothing of the line is repeated, only its length (docs/security.md).
    assert_eq!(dead[0]["raw"], "[withheld: 16 bytes]");
    // Its partition and offset name the message: read it back from there.
    let (p, o) = (
        dead[0]["source"]["partition"].as_i64().expect("partition") as i32,
        dead[0]["source"]["offset"].as_i64().expect("offset"),
    );
    let at: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("rp{id}"))
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    // From the partition's start: with tansu, a consumer assigned straight at the
    // offset sometimes got nothing within 30 s (about 1 run in 3).
    tpl.add_partition_offset(&topic("police"), p, rdkafka::Offset::Beginning)
        .expect("tpl");
    at.assign(&tpl).expect("assign");
    let end = Instant::now() + Duration::from_secs(30);
    let message = loop {
        if let Some(Ok(m)) = at.poll(Duration::from_millis(200))
            && m.offset() == o
        {
            break m.payload().map(|b| String::from_utf8_lossy(b).into_owned());
        }
        assert!(Instant::now() < end, "nothing at partition {p} offset {o}");
    };
    assert_eq!(message.as_deref(), Some("this is not JSON"));

    // The API.
    let (status, metrics) = http(port, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("yujing_events_total{feed=\"police_incident\"} 12"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "yujing_dead_letters_total{feed=\"police_incident\",reason=\"invalid_json\"} 1"
        ),
        "{metrics}"
    );
    let (status, body) = http(port, "GET", "/api/alerts", &[AUTH], "");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON"),
        serde_json::json!([]),
        "the incident resolved"
    );
    let (status, body) = http(port, "GET", "/api/tasks", &[AUTH], "");
    assert_eq!(status, 200);
    let listed: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    assert_eq!(listed.len(), 3);
    let legal = listed
        .iter()
        .find(|t| t["track"] == "legal")
        .and_then(|t| t["task_id"].as_str())
        .expect("legal task")
        .to_string();
    let path = format!("/api/tasks/{legal}");
    // An `actor` in the body is ignored: the token's name is recorded.
    let body = r#"{"action":"acknowledge","actor":"someone else"}"#;
    assert_eq!(
        http(
            port,
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            body
        )
        .0,
        401
    );
    let auth = [("Content-Type", "application/json"), AUTH];
    assert_eq!(http(port, "POST", "/api/tasks/nope", &auth, body).0, 404);
    assert_eq!(http(port, "POST", &path, &auth, body).0, 202);
    let n = want_tasks.len();
    let after = read_topic(
        &topic("tasks"),
        &format!("rt2{id}"),
        Duration::from_secs(30),
        |v| v.len() > n,
    );
    assert!(
        after.iter().any(|e| e["change"] == "acknowledged"
            && e["task"]["task_id"] == legal.as_str()
            && e["actor"] == OPERATOR_NAME),
        "{after:?}"
    );

    // SIGTERM: out within 10 s, status 0.
    stop(daemon);
}

#[test]
fn a_restart_resumes_from_the_checkpoint_without_loss_or_duplicates() {
    let s = Setup::new();
    let all = records();
    let (want_alerts, want_tasks) = s.replay(&all);
    // The first ten records: the orange window closes, the red one is still open.
    s.produce(&all[..10]);
    let first = s.start();
    let early = read_topic(
        &s.topic("alerts"),
        &format!("ea{}", s.id),
        Duration::from_secs(60),
        |v| !v.is_empty(),
    );
    assert_eq!(early.len(), 1, "the orange alert");
    stop(first);
    assert!(s.dir.path().join("state/checkpoint.json").exists());
    // A new process takes over from the checkpoint: before any new record, its API
    // and gauges show the open incident and its tasks again.
    let second = s.start();
    let (_, body) = http(s.port, "GET", "/api/alerts", &[AUTH], "");
    let open: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    assert_eq!(open.len(), 1, "{body}");
    assert_eq!(open[0]["alert_id"], early[0]["alert_id"]);
    let (_, body) = http(s.port, "GET", "/api/tasks", &[AUTH], "");
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&body)
            .expect("JSON")
            .len(),
        3
    );
    let (_, metrics) = http(s.port, "GET", "/metrics", &[], "");
    assert!(
        metrics.contains("yujing_incidents_firing{level=\"orange\",pipeline=\"grid_rules\"} 1"),
        "{metrics}"
    );
    // Then the rest arrives.
    s.produce(&all[10..]);
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("ra{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_alerts.len(),
    );
    let tasks = read_topic(
        &s.topic("tasks"),
        &format!("rt{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_tasks.len(),
    );
    // Anything extra would have arrived by now.
    std::thread::sleep(Duration::from_secs(2));
    let alerts_again = read_topic(
        &s.topic("alerts"),
        &format!("rb{}", s.id),
        Duration::from_secs(10),
        |v| v.len() > want_alerts.len(),
    );
    stop(second);
    assert_eq!(sorted(alerts), sorted(want_alerts.clone()));
    assert_eq!(alerts_again.len(), want_alerts.len(), "no alert twice");
    assert_eq!(task_lifecycle(&tasks), task_lifecycle(&want_tasks));
}

#[test]
fn two_instances_in_one_group_never_emit_the_same_alert() {
    let s = Setup::new();
    // Two districts, each in a partition of its own.
    let west = records();
    let east: Vec<String> = west
        .iter()
        .map(|r| r.replace("西湖区", "上城区").replace("PI-", "PE-"))
        .collect();
    // The reference reads one file: the two partitions merged in event-time order.
    let mut both = west.clone();
    both.extend(east.iter().cloned());
    let time = |r: &String| {
        serde_json::from_str::<Value>(r)
            .ok()
            .and_then(|v| v["event_time"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    both.sort_by_key(time);
    let (want_alerts, _) = s.replay(&both);
    assert_eq!(want_alerts.len(), 6);
    let a = s.start();
    let (config2, port2) = s.second_instance();
    let b = s.start_with(&config2, port2);
    // Let the group settle on sharing the partitions before any event arrives.
    std::thread::sleep(Duration::from_secs(8));
    // Both districts' events as they happen, each to its district's partition.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (i, (w, e)) in west.iter().zip(&east).enumerate() {
        for (r, p) in [(w, 0), (e, 1)] {
            let key = format!("{i}");
            producer
                .send(
                    BaseRecord::to(&s.topic("police"))
                        .key(&key)
                        .payload(r)
                        .partition(p),
                )
                .expect("send");
        }
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("ra{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_alerts.len(),
    );
    std::thread::sleep(Duration::from_secs(3));
    let again = read_topic(
        &s.topic("alerts"),
        &format!("rb{}", s.id),
        Duration::from_secs(10),
        |v| v.len() > want_alerts.len(),
    );
    stop(a);
    stop(b);
    assert_eq!(sorted(alerts), sorted(want_alerts.clone()));
    assert_eq!(again.len(), want_alerts.len(), "each alert once");
}

#[test]
fn after_a_kill_the_successor_does_not_send_again_what_was_sent() {
    let s = Setup::new();
    // No checkpoint will be taken before the kill.
    s.checkpoint_every("1h");
    let all = records();
    let (want_alerts, want_tasks) = s.replay(&all);
    s.produce(&all);
    let mut first = s.start();
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("ka{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_alerts.len(),
    );
    assert_eq!(alerts.len(), want_alerts.len());
    let tasks = read_topic(
        &s.topic("tasks"),
        &format!("kt{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_tasks.len(),
    );
    assert_eq!(tasks.len(), want_tasks.len());
    first.0.kill().expect("SIGKILL");
    let _ = first.0.wait();
    assert!(!s.dir.path().join("state/checkpoint.json").exists());
    let before = read_topic(
        &s.topic("tasks"),
        &format!("kx{}", s.id),
        Duration::from_secs(5),
        |v| v.len() > want_tasks.len(),
    );
    assert_eq!(
        before.len(),
        want_tasks.len(),
        "the killed process sent each once"
    );
    // The successor re-reads everything (no checkpoint) but sends nothing again.
    let second = s.start();
    std::thread::sleep(Duration::from_secs(5));
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("kb{}", s.id),
        Duration::from_secs(10),
        |v| v.len() > want_alerts.len(),
    );
    let tasks = read_topic(
        &s.topic("tasks"),
        &format!("kc{}", s.id),
        Duration::from_secs(10),
        |v| v.len() > want_tasks.len(),
    );
    let dead = read_topic(
        &s.topic("dead"),
        &format!("kd{}", s.id),
        Duration::from_secs(10),
        |v| v.len() > 1,
    );
    stop(second);
    assert_eq!(sorted(alerts), sorted(want_alerts));
    assert_eq!(task_lifecycle(&tasks), task_lifecycle(&want_tasks));
    assert_eq!(dead.len(), 1);
}

#[test]
fn killed_at_several_points_while_records_arrive_the_topics_hold_each_output_once() {
    let s = Setup::new();
    // Checkpoints every second, so kills fall before, between and after them.
    s.checkpoint_every("1s");
    let all = records();
    let (want_alerts, want_tasks) = s.replay(&all);
    let mut daemon = s.start();
    // Records arrive one by one while the daemon is killed and restarted.
    let feed = {
        let (all, s_id) = (all.clone(), s.topic("police"));
        std::thread::spawn(move || {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", brokers())
                .set("enable.idempotence", "true")
                .create()
                .expect("producer");
            for r in &all {
                producer
                    .send(BaseRecord::to(&s_id).key("西湖区").payload(r))
                    .expect("send");
                producer.flush(Duration::from_secs(10)).expect("flush");
                std::thread::sleep(Duration::from_millis(700));
            }
        })
    };
    for after in [1500, 400, 2600, 900] {
        std::thread::sleep(Duration::from_millis(after));
        daemon.0.kill().expect("SIGKILL");
        let _ = daemon.0.wait();
        // Restarted at once, as a careless operator (or systemd) would, while the
        // killed member's session is still live on the broker.
        daemon = s.start();
    }
    feed.join().expect("producer thread");
    let alerts = read_topic(
        &s.topic("alerts"),
        &format!("ma{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_alerts.len(),
    );
    let tasks = read_topic(
        &s.topic("tasks"),
        &format!("mt{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= want_tasks.len(),
    );
    // Anything extra would have arrived by now.
    std::thread::sleep(Duration::from_secs(3));
    let again = |name: &str, n: usize| {
        read_topic(
            &s.topic(name),
            &format!("m{name}{}", s.id),
            Duration::from_secs(10),
            |v| v.len() > n,
        )
        .len()
    };
    assert_eq!(
        again("alerts", want_alerts.len()),
        want_alerts.len(),
        "no alert twice"
    );
    assert_eq!(
        again("tasks", want_tasks.len()),
        want_tasks.len(),
        "no task event twice"
    );
    assert_eq!(again("dead", 1), 1, "the dead letter once");
    stop(daemon);
    assert_eq!(sorted(alerts), sorted(want_alerts));
    assert_eq!(task_lifecycle(&tasks), task_lifecycle(&want_tasks));
}

#[test]
fn stopping_and_restarting_the_broker_mid_run_loses_nothing() {
    let store = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", broker::free_port());
    let kafka = broker::TestBroker::start(store.path(), &addr);
    let s = Setup::on(&addr, &[("grid_rules", common::GRID_RULES)], "");
    let all = records();
    let (want_alerts, want_tasks) = s.replay(&all);
    s.produce(&all[..10]);
    let daemon = s.start();
    let read = |name: &str, group: &str, n: usize, more: bool| {
        broker::read_topic_at(
            &addr,
            &s.topic(name),
            &format!("{group}{}", s.id),
            Duration::from_secs(if more { 10 } else { 90 }),
            |v| if more { v.len() > n } else { v.len() >= n },
        )
    };
    assert_eq!(read("alerts", "ba", 1, false).len(), 1, "the orange alert");
    // The broker goes away mid-run; the daemon keeps running and serving.
    kafka.stop();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(http(s.port, "GET", "/healthz", &[], "").0, 200);
    // Back with the same storage: the rest arrives and the run completes.
    let _kafka = broker::TestBroker::start(store.path(), &addr);
    s.produce(&all[10..]);
    let alerts = read("alerts", "bb", want_alerts.len(), false);
    let tasks = read("tasks", "bt", want_tasks.len(), false);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        read("alerts", "bc", want_alerts.len(), true).len(),
        want_alerts.len()
    );
    let dead = read("dead", "bd", 1, true);
    assert_eq!(dead.len(), 1, "the dead letter once: {dead:?}");
    stop(daemon);
    assert_eq!(sorted(alerts), sorted(want_alerts));
    assert_eq!(task_lifecycle(&tasks), task_lifecycle(&want_tasks));
}

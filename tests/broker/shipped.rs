//! The shipped `deploy/yujing.toml`, pipelines and routing table on generated
//! feeds, as a user runs them: the config pointed at a test's topics, the
//! generated days, their `yujing replay`, and the comparison of what the
//! daemon sent with what the replay raised.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{Setup, sorted};

/// The four feeds and the names of their topics in a test.
pub const FEEDS: [(&str, &str); 4] = [
    ("public_opinion", "opinion"),
    ("petition", "petition"),
    ("labor_dispute", "labor"),
    ("police_incident", "police"),
];

/// The shipped `deploy/yujing.toml` with its brokers, topics, state and HTTP
/// pointed at this test (no SASL, no Alertmanager, plain HTTP; its tokens are
/// kept, with the secrets `Setup` gives every daemon); the shipped pipelines
/// and routing table. `feeds` maps a feed to the name of its topic.
pub fn config(s: &Setup, feeds: &[(&str, &str)]) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/yujing.toml"))
            .expect("deploy/yujing.toml");
    let mut config: toml::Table = text.parse().expect("toml");
    let kafka = config["kafka"].as_table_mut().expect("[kafka]");
    kafka.insert("brokers".into(), s.brokers.clone().into());
    kafka.insert("group_id".into(), format!("shipped{}", s.id).into());
    kafka.remove("settings");
    let topics = kafka["topics"].as_table_mut().expect("[kafka.topics]");
    for (key, name) in [
        ("alerts", "alerts"),
        ("tasks", "tasks"),
        ("task_updates", "updates"),
        ("dead_letters", "dead"),
    ] {
        topics.insert(key.into(), s.topic(name).into());
    }
    let feed_topics = topics["feeds"].as_table_mut().expect("feeds");
    for (feed, name) in feeds {
        feed_topics.insert((*feed).into(), s.topic(name).into());
    }
    let state = config["state"].as_table_mut().expect("[state]");
    state.insert("dir".into(), "state".into());
    state.insert("topic".into(), s.topic("state").into());
    let http = config["http"].as_table_mut().expect("[http]");
    http.insert("listen".into(), format!("127.0.0.1:{}", s.port).into());
    http.remove("tls_cert");
    http.remove("tls_key");
    config.remove("alertmanager");
    toml::to_string(&config).expect("toml")
}

/// `yujing gen --days N --seed 99` into the setup's `data/`.
pub fn generate(s: &Setup, days: u32) -> PathBuf {
    let data = s.dir.path().join("data");
    let generated = Command::new(env!("CARGO_BIN_EXE_yujing"))
        .args(["gen", "--days", &days.to_string(), "--seed", "99", "--out"])
        .arg(&data)
        .output()
        .expect("gen");
    assert!(generated.status.success());
    data
}

/// The alerts of `yujing replay` of the generated feeds in `data` with the
/// shipped pipelines: the reference a daemon's outputs are held to.
pub fn replay_alerts(s: &Setup, data: &Path) -> Vec<Value> {
    let mut replay = Command::new(env!("CARGO_BIN_EXE_yujing"));
    replay
        .args(["replay", "--quiet", "--out"])
        .arg(s.dir.path().join("replay"))
        .env("YUJING_PII_KEY", crate::common::PII_KEY);
    for (feed, _) in FEEDS {
        replay.arg("--input").arg(format!(
            "{feed}={}",
            data.join(format!("{feed}.jsonl")).display()
        ));
    }
    let out = replay.output().expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::common::json_lines(&s.dir.path().join("replay/alerts.jsonl"))
}

/// Alerts of windows ending at or before `last_day`: those every partition's
/// clock has closed once all the records are in.
pub fn closable<'a>(alerts: &'a [Value], last_day: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["window_end"].as_str().is_some_and(|e| e <= last_day))
        .collect()
}

/// The daemon sent every closable alert the replay raised, none it did not,
/// and none twice.
pub fn assert_as_replayed(got: &[Value], want: &[Value], last_day: &str) {
    let got_closable = sorted(closable(got, last_day).into_iter().cloned().collect());
    let want_closable = sorted(closable(want, last_day).into_iter().cloned().collect());
    let missing: Vec<&String> = want_closable
        .iter()
        .filter(|a| !got_closable.contains(a))
        .collect();
    let extra: Vec<&String> = got_closable
        .iter()
        .filter(|a| !want_closable.contains(a))
        .collect();
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = got_closable.iter().filter(|a| !seen.insert(*a)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && twice.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}\ntwice {twice:#?}"
    );
    assert_eq!(got_closable.len(), want_closable.len(), "no alert twice");
    // Nothing the replay did not raise, and nothing twice.
    let want_all = sorted(want.to_vec());
    for a in sorted(got.to_vec()) {
        assert!(
            want_all.binary_search(&a).is_ok(),
            "not in replay: {a:.300}"
        );
    }
    let mut ids: Vec<&str> = got.iter().filter_map(|a| a["alert_id"].as_str()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an alert twice");
}

/// Adds a homicide on 北山街道, 西湖区 at each of `times` (RFC 3339, local) to
/// the generated police feed, each before the first record that is later.
pub fn add_homicides(data: &Path, times: &[&str]) {
    let path = data.join("police_incident.jsonl");
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (i, time) in times.iter().enumerate() {
        let at = yujing::core::time::parse_rfc3339(time).expect("time");
        let before = lines
            .iter()
            .position(|l| {
                let v: Value = serde_json::from_str(l).expect("JSON");
                v["event_time"]
                    .as_str()
                    .is_some_and(|t| yujing::core::time::parse_rfc3339(t).is_some_and(|t| t > at))
            })
            .unwrap_or(lines.len());
        lines.insert(
            before,
            format!(
                r#"{{"event_id":"PI-H{i:04}","event_time":"{time}","district":"西湖区","street":"北山街道","community":"北山街道第2社区","grid_id":"XH-01-21","incident_id":"JQH{i:04}","kind":"homicide","deaths":1,"injuries":0,"severity":4}}"#
            ),
        );
    }
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
}

/// The alerts on the setup's topic once the closable ones number `closable`
/// (and three seconds more, so anything sent twice has arrived too).
pub fn alerts_once_closed(s: &Setup, last_day: &str, closable: usize) -> Vec<Value> {
    let alerts = s.topic("alerts");
    let got = super::read_all_at(
        &super::brokers(),
        &alerts,
        std::time::Duration::from_secs(180),
        |v| self::closable(v, last_day).len() >= closable,
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    super::read_all_at(
        &super::brokers(),
        &alerts,
        std::time::Duration::from_secs(10),
        |v| v.len() >= got.len(),
    )
}

/// Once the daemon has sent the closable alerts: it is still running, it stops
/// cleanly, and what it sent is what the replay raised (see [`assert_as_replayed`]).
pub fn assert_daemon_sent_as_replayed(
    s: &Setup,
    mut daemon: super::Daemon,
    want: &[Value],
    last_day: &str,
) {
    let got = alerts_once_closed(s, last_day, closable(want, last_day).len());
    assert!(
        daemon.0.try_wait().expect("wait").is_none(),
        "the daemon exited"
    );
    super::stop(daemon);
    assert_as_replayed(&got, want, last_day);
}

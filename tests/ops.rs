//! Operations, tested against the real programs (Debian's `prometheus`,
//! `promtool`, `prometheus-alertmanager`, `amtool`; `.ci/run` installs them):
//! deploy/ passes their checks and rule unit tests; the Grafana dashboard is
//! well-formed dashboard JSON whose every query is valid PromQL over metrics the
//! engine exports; `yujing demo --listen --hold` serves metrics `promtool`
//! accepts; JSON logs carry pipeline and window spans and no PII; and on the
//! broker, a real Prometheus scrapes the daemon and a real Alertmanager receives
//! its alerts, inhibits by level and sees them resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

mod broker;
mod common;
use broker::{AUTH, Daemon, Setup, eventually, free_port, http, stop};
use common::{GRID_RULES, escalating_incidents};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program from Debian's prometheus packages.
fn tool(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} is missing: apt-get install prometheus prometheus-alertmanager (.ci/run does)"
    );
    path
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

/// `promtool check metrics` on an exposition: prints nothing when all is well.
fn promtool_check_metrics(text: &str) -> String {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(out.status.success(), "{out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn prometheus_and_alertmanager_files_pass_their_tools_checks_and_rule_tests() {
    let deploy = repo().join("deploy");
    // As installed: beside it the CA files and secrets it names (here empty).
    let installed = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        deploy.join("prometheus/prometheus.yml"),
        installed.path().join("prometheus.yml"),
    )
    .expect("copy");
    std::fs::create_dir(installed.path().join("rules")).expect("mkdir");
    std::fs::copy(
        deploy.join("prometheus/rules/yujing.yml"),
        installed.path().join("rules/yujing.yml"),
    )
    .expect("copy");
    for f in [
        "alertmanager-ca.pem",
        "alertmanager-password",
        "yujing-ca.pem",
        "yujing-metrics-token",
    ] {
        std::fs::write(installed.path().join(f), "").expect("write");
    }
    let out = run_ok(
        Command::new(tool("promtool"))
            .args(["check", "config"])
            .arg(installed.path().join("prometheus.yml")),
    );
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    let out = run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(deploy.join("prometheus/rules/yujing.yml")),
    );
    assert!(out.contains("SUCCESS: 16 rules found"), "{out}");
    run_ok(
        Command::new(tool("promtool"))
            .args(["test", "rules"])
            .arg(deploy.join("prometheus/rules/yujing_test.yml")),
    );
    let out = run_ok(
        Command::new(tool("amtool"))
            .args(["check-config"])
            .arg(deploy.join("alertmanager/alertmanager.yml")),
    );
    assert!(out.contains("3 inhibit rules"), "{out}");
    // The example config and the systemd unit's command line.
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_yujing"))
            .args(["check", "--config"])
            .arg(deploy.join("yujing.toml")),
    );
    let unit = std::fs::read_to_string(deploy.join("systemd/yujing.service")).expect("unit");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/yujing "))
        .expect("ExecStart");
    let help = Command::new(env!("CARGO_BIN_EXE_yujing"))
        .args(
            exec.replace("run --config", "run --help --config")
                .split(' '),
        )
        .output()
        .expect("yujing");
    assert!(help.status.success(), "the unit's flags parse: {help:?}");
}

/// The part of Grafana's dashboard JSON model that a dashboard must have.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dashboard {
    uid: String,
    title: String,
    schema_version: u32,
    time: TimeRange,
    templating: Templating,
    panels: Vec<Panel>,
}

#[derive(Debug, Deserialize)]
struct TimeRange {
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
struct Templating {
    list: Vec<Variable>,
}

#[derive(Debug, Deserialize)]
struct Variable {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    query: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Panel {
    id: u32,
    #[serde(rename = "type")]
    kind: String,
    title: String,
    grid_pos: GridPos,
    datasource: DataSourceRef,
    targets: Vec<Target>,
    field_config: Value,
}

#[derive(Debug, Deserialize)]
struct GridPos {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

#[derive(Debug, Deserialize)]
struct DataSourceRef {
    #[serde(rename = "type")]
    kind: String,
    uid: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    ref_id: String,
    expr: String,
}

fn dashboard() -> Dashboard {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/dashboards/yujing.json"))
        .expect("dashboard");
    serde_json::from_str(&text).expect("Grafana dashboard JSON")
}

/// The yujing metric families a PromQL expression reads.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("yujing_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// A panel's query as Prometheus takes it: Grafana's variables filled in.
fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

#[test]
fn the_dashboard_is_grafana_json_and_every_query_is_promql_over_exported_metrics() {
    let d = dashboard();
    assert!(!d.title.is_empty());
    assert!(
        d.uid.len() <= 40
            && d.uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "uid {:?}",
        d.uid
    );
    assert!(d.schema_version >= 36, "Grafana 9 or later");
    assert!(d.time.from.starts_with("now-") && d.time.to == "now");
    let ds = d
        .templating
        .list
        .iter()
        .find(|v| v.kind == "datasource")
        .expect("a data source variable");
    assert_eq!(ds.query, "prometheus");
    let variables: BTreeSet<String> = d.templating.list.iter().map(|v| v.name.clone()).collect();
    let exported: BTreeSet<String> = yujing::metrics::Metrics::new()
        .names()
        .iter()
        .cloned()
        .collect();
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    let mut read = BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for p in &d.panels {
        assert!(ids.insert(p.id), "panel id {} twice", p.id);
        assert!(
            ["timeseries", "stat", "table", "bargauge", "gauge"].contains(&p.kind.as_str()),
            "{}: panel type {}",
            p.title,
            p.kind
        );
        assert!(p.field_config.get("defaults").is_some(), "{}", p.title);
        let g = &p.grid_pos;
        assert!(
            g.w >= 1 && g.h >= 1 && g.x + g.w <= 24,
            "{}: {g:?}",
            p.title
        );
        for x in g.x..g.x + g.w {
            for y in g.y..g.y + g.h {
                if let Some(other) = cells.insert((x, y), p.id) {
                    panic!("panels {other} and {} overlap at ({x}, {y})", p.id);
                }
            }
        }
        assert_eq!(
            (p.datasource.kind.as_str(), p.datasource.uid.as_str()),
            ("prometheus", "${datasource}")
        );
        assert!(!p.targets.is_empty(), "{}", p.title);
        for t in &p.targets {
            // Every variable a query uses is defined (Grafana's own start with `__`).
            for var in t.expr.split('$').skip(1) {
                let name: String = var
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || variables.contains(&name),
                    "{}: ${name} is not a dashboard variable",
                    p.title
                );
            }
            let names = metrics_in(&t.expr);
            assert!(!names.is_empty(), "{}: {}", p.title, t.expr);
            for n in names {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s).filter(|f| exported.contains(*f)))
                    .unwrap_or(&n)
                    .to_string();
                assert!(
                    exported.contains(&family),
                    "{}: {n} is not a metric yujing exports",
                    p.title
                );
                read.insert(family);
            }
            rules.push_str(&format!(
                "      - record: dashboard:panel{}_{}\n        expr: {}\n",
                p.id,
                t.ref_id,
                serde_json::to_string(&concrete(&t.expr)).expect("quote")
            ));
        }
    }
    // What the operators asked to see.
    for needed in [
        "yujing_events_total",
        "yujing_dead_letters_total",
        "yujing_watermark_lag_seconds",
        "yujing_window_close_latency_seconds",
        "yujing_alerts_total",
        "yujing_tasks_open",
        "yujing_tasks_overdue",
        "yujing_kafka_consumer_lag_messages",
        "yujing_checkpoint_duration_seconds",
    ] {
        assert!(read.contains(needed), "no panel shows {needed}");
    }
    // promtool parses every query (as recording rules).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard_rules.yml");
    std::fs::write(&file, rules).expect("write");
    run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(&file),
    );
}

/// Lines a child writes to stderr, as they come.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_demo_serves_metrics_that_promtool_accepts_and_holds_until_sigterm() {
    let port = free_port();
    let mut demo = Daemon(
        Command::new(env!("CARGO_BIN_EXE_yujing"))
            .args(["demo", "--hold", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("YUJING_DEMO_TOKEN", broker::OPERATOR_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("demo"),
    );
    let lines = stderr_lines(&mut demo.0);
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        match lines.recv_timeout(Duration::from_secs(1)) {
            Ok(l) if l.starts_with("holding") => break,
            _ => assert!(Instant::now() < end, "the demo did not finish in 120 s"),
        }
    }
    // Done with the data, and still serving.
    std::thread::sleep(Duration::from_millis(500));
    assert!(demo.0.try_wait().expect("wait").is_none());
    let (status, text) = http(port, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert_eq!(promtool_check_metrics(&text), "", "promtool found problems");
    for feed in [
        "petition",
        "labor_dispute",
        "police_incident",
        "public_opinion",
    ] {
        let n = metric(&text, &format!("yujing_events_total{{feed=\"{feed}\"}}"));
        assert!(n.is_some_and(|n| n > 100.0), "{feed}: {n:?}");
    }
    let red = metric(
        &text,
        "yujing_alerts_total{level=\"red\",pipeline=\"district_compound_risk\",status=\"firing\"}",
    );
    assert_eq!(red, Some(1.0), "the demo's compound red alert");
    assert!(text.contains("yujing_dead_letters_total{feed=\"petition\",reason=\"invalid_json\"}"));
    assert!(text.contains("yujing_window_close_latency_seconds_bucket{pipeline="));
    assert!(text.contains("yujing_tasks_open{department="));
    assert_eq!(http(port, "GET", "/api/tasks", &[], "").0, 401, "no token");
    let (status, body) = http(port, "GET", "/api/tasks", &[AUTH], "");
    assert_eq!(status, 200);
    let tasks: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    assert_eq!(tasks.len() % 3, 0);
    assert!(!tasks.is_empty());
    assert_eq!(http(port, "GET", "/readyz", &[], "").0, 200);
    stop(demo);
}

#[test]
fn json_logs_carry_pipeline_and_window_spans_and_no_pii() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yujing = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
        c.env("YUJING_PII_KEY", "log-test");
        c
    };
    run_ok(
        yujing()
            // Four days: the injected incidents (from the third day) raise alerts.
            .args(["gen", "--days", "4", "--bad", "4", "--out"])
            .arg(dir.path().join("in")),
    );
    let petitions =
        std::fs::read_to_string(dir.path().join("in/petition.jsonl")).expect("petitions");
    let ids: Vec<String> = petitions
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["petitioner_id"].as_str().map(str::to_string))
        .collect();
    assert!(ids.len() > 10);
    let out = yujing()
        .env("YUJING_LOG", "yujing=debug")
        .args(["--log-format", "json", "replay", "--quiet"])
        .args(
            [
                "petition",
                "police_incident",
                "public_opinion",
                "labor_dispute",
            ]
            .iter()
            .flat_map(|f| {
                [
                    "--input".to_string(),
                    format!("{f}={}", dir.path().join(format!("in/{f}.jsonl")).display()),
                ]
            }),
        )
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("replay");
    assert!(out.status.success(), "{out:?}");
    let logs = String::from_utf8_lossy(&out.stderr);
    let mut window_spans = 0;
    let mut alert_events = 0;
    for line in logs.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let spans = v["spans"].as_array().cloned().unwrap_or_default();
        let named = |n: &str| spans.iter().any(|s| s["name"] == n);
        if named("window") && named("pipeline") {
            window_spans += 1;
        }
        if v["fields"]["message"] == "alert" {
            alert_events += 1;
            assert!(v["fields"]["pipeline"].is_string(), "{line}");
        }
    }
    assert!(window_spans > 0, "no event inside a window span");
    assert!(alert_events > 0, "no alert logged");
    // No petitioner id anywhere: logs, alerts, tasks, dead letters.
    let mut everything = logs.into_owned();
    for f in ["alerts", "tasks", "dead_letters"] {
        everything.push_str(
            &std::fs::read_to_string(dir.path().join(format!("out/{f}.jsonl"))).unwrap_or_default(),
        );
    }
    for id in &ids {
        assert!(
            !everything.contains(id.as_str()),
            "petitioner id {id} leaked"
        );
    }
}

/// A second rules pipeline on the same key: orange from 3 incidents an hour.
const GRID_WATCH: &str = r#"name = "grid_watch"
lateness = "0s"
sql = """
SELECT district, street, count(*) AS n
FROM police_incident
GROUP BY district, street, tumble(INTERVAL '1 hour')
"""

[[rule]]
when = "n >= 3"
level = "orange"
"#;

/// A program under test, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    while http_ok(port, "/-/ready").is_none() {
        assert!(Instant::now() < end, "{what} not ready in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_ok(port: u16, path: &str) -> Option<String> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let (status, body) = http(port, "GET", path, &[], "");
    (status == 200).then_some(body)
}

/// The value of an instant query that returns one series.
fn prom_value(port: u16, query: &str) -> (Option<f64>, String) {
    let path = format!("/api/v1/query?query={}", urlencode(query));
    let body = http_ok(port, &path).unwrap_or_default();
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let value = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok());
    (value, body)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn am_alerts(port: u16) -> Vec<Value> {
    http_ok(port, "/api/v2/alerts")
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default()
}

fn find<'a>(alerts: &'a [Value], name: &str, severity: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["severity"] == severity)
}

#[test]
fn prometheus_scrapes_the_daemon_and_alertmanager_receives_inhibits_and_resolves_its_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Alertmanager with the shipped config.
    let (_am, am_port) = broker::alertmanager(dir.path(), &[]);
    let s = Setup::with(
        &[("grid_rules", GRID_RULES), ("grid_watch", GRID_WATCH)],
        &format!(
            "[alertmanager]\nurl = \"http://127.0.0.1:{am_port}\"\nresend_interval = \"5s\"\n"
        ),
    );
    s.checkpoint_every("1s");
    // Prometheus scraping the daemon every second, with the shipped health rules.
    let prom_port = free_port();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: yujing\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            repo().join("deploy/prometheus/rules/yujing.yml").display(),
            s.port
        ),
    )
    .expect("write");
    let _prom = Server(
        Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    wait_ready(am_port, "Alertmanager");
    wait_ready(prom_port, "Prometheus");

    // First the rising incidents, a malformed record, and one at 03:10 that closes
    // 02:00–03:00: grid_rules is red, grid_watch orange, on the same street.
    let all = escalating_incidents();
    let mut first: Vec<String> = all[..10].to_vec();
    first.push("{\"event_id\": ".into());
    first.push(common::incident(80, "2026-03-14T03:10:00Z"));
    s.produce(&first);
    let daemon = s.start();

    let alerts = eventually(60, "red and orange in Alertmanager", || {
        let a = am_alerts(am_port);
        let ok =
            find(&a, "grid_rules", "red").is_some() && find(&a, "grid_watch", "orange").is_some();
        (ok.then(|| a.clone()), format!("{a:?}"))
    });
    let red = find(&alerts, "grid_rules", "red").expect("red");
    assert_eq!(red["labels"]["district"], "西湖区");
    assert_eq!(red["labels"]["street"], "北山街道");
    assert_eq!(red["labels"]["feed"], "police_incident");
    assert_eq!(red["annotations"]["value"], "7");
    assert_eq!(red["annotations"]["method"], "rule: n >= 6", "{red}");
    assert_eq!(red["status"]["state"], "active");
    // The orange it replaced was ended, not left firing beside it.
    assert!(
        find(&alerts, "grid_rules", "orange").is_none(),
        "{alerts:?}"
    );
    // Red mutes the other pipeline's orange on the same street.
    let orange = find(&alerts, "grid_watch", "orange").expect("orange");
    assert_eq!(orange["status"]["state"], "suppressed", "{orange}");
    assert_eq!(
        orange["status"]["inhibitedBy"],
        serde_json::json!([red["fingerprint"]])
    );
    // The dispatch's tasks are named on the alert once they are open.
    let alerts = eventually(30, "task ids on the red alert", || {
        let a = am_alerts(am_port);
        let ids = find(&a, "grid_rules", "red")
            .and_then(|r| r["annotations"]["task_ids"].as_str())
            .map(|s| s.split(',').count());
        ((ids == Some(3)).then(|| a.clone()), format!("{a:?}"))
    });
    // Firing alerts are sent again (every 5 s here), so Alertmanager moves their end on.
    let ends = |a: &[Value]| {
        find(a, "grid_rules", "red").and_then(|r| r["endsAt"].as_str().map(str::to_string))
    };
    let before = ends(&alerts);
    assert!(before.is_some());
    eventually(20, "the red alert sent again", || {
        let now = ends(&am_alerts(am_port));
        (
            (now > before).then_some(()),
            format!("{now:?} after {before:?}"),
        )
    });

    // Prometheus scraped the counts.
    let q = |query: &str, want: f64| {
        eventually(30, &format!("{query} = {want}"), || {
            let (v, body) = prom_value(prom_port, query);
            ((v == Some(want)).then_some(()), body)
        })
    };
    q(
        "yujing_events_total{job=\"yujing\",feed=\"police_incident\"}",
        11.0,
    );
    q(
        "yujing_dead_letters_total{feed=\"police_incident\",reason=\"invalid_json\"}",
        1.0,
    );
    q(
        "yujing_alerts_total{pipeline=\"grid_rules\",level=\"red\",status=\"firing\"}",
        1.0,
    );
    q(
        "yujing_alerts_total{pipeline=\"grid_rules\",level=\"orange\",status=\"firing\"}",
        1.0,
    );
    q("sum(yujing_incidents_firing{pipeline=\"grid_rules\"})", 1.0);
    q("sum(yujing_tasks_open)", 6.0);
    q("yujing_ready", 1.0);
    q(
        "sum(yujing_kafka_consumer_lag_messages{partition=~\".+\"})",
        0.0,
    );
    // The exposition itself, with alerts, tasks and dead letters in it.
    let (_, exposition) = http(s.port, "GET", "/metrics", &[], "");
    assert!(exposition.contains("yujing_task_events_total{change=\"opened\"} 6"));
    assert_eq!(
        promtool_check_metrics(&exposition),
        "",
        "promtool found problems"
    );
    // Every dashboard query runs, and every metric it reads has series.
    for p in dashboard().panels {
        for t in p.targets {
            let path = format!("/api/v1/query?query={}", urlencode(&concrete(&t.expr)));
            let body = http_ok(prom_port, &path).unwrap_or_default();
            assert!(
                body.contains("\"status\":\"success\""),
                "{}: {body}",
                p.title
            );
            for name in metrics_in(&t.expr) {
                eventually(30, &format!("series of {name}"), || {
                    let (v, body) = prom_value(prom_port, &format!("count({name})"));
                    (v.filter(|n| *n > 0.0), body)
                });
            }
        }
    }

    // Then the quiet hours: both incidents resolve, and leave Alertmanager.
    s.produce(&all[10..]);
    eventually(60, "alerts resolved in Alertmanager", || {
        let a = am_alerts(am_port);
        let gone =
            find(&a, "grid_rules", "red").is_none() && find(&a, "grid_watch", "orange").is_none();
        (gone.then_some(()), format!("{a:?}"))
    });
    q("sum(yujing_incidents_firing)", 0.0);
    q(
        "clamp_max(sum(yujing_alertmanager_posts_total{outcome=\"ok\"}), 1)",
        1.0,
    );
    stop(daemon);
}

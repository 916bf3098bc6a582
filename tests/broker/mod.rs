//! What the tests on the broker share: its address (`KAFKA_BROKERS`), a test's
//! own topics, config and daemon (`Setup`), reading a topic back, a plain HTTP
//! client, and stopping a daemon with SIGTERM.

// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

use super::common::GRID_RULES;

pub mod shipped;

/// The API token of the daemons' one operator, and its name (the recorded actor).
pub const OPERATOR_TOKEN: &str = "operator-token-for-the-tests";
pub const OPERATOR_NAME: &str = "西湖公安分局值班室";

/// The header that carries [`OPERATOR_TOKEN`].
pub const AUTH: (&str, &str) = ("Authorization", "Bearer operator-token-for-the-tests");

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect(
        "KAFKA_BROKERS must name a running broker: scripts/test.sh starts one with scripts/broker.sh",
    )
}

pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// A chunked body, joined (large answers, e.g. Alertmanager's, come so).
/// Chunks are counted in bytes, which may cut a character: join bytes.
fn dechunk(body: &str) -> String {
    let mut rest = body.as_bytes();
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let after = &rest[eol + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Alertmanager (Debian's `prometheus-alertmanager`) with the shipped config,
/// its data in `dir`, on a free port, clustering off, with `extra` arguments
/// (such as `--web.config.file`). Returns it and its port.
pub fn alertmanager(dir: &Path, extra: &[String]) -> (Daemon, u16) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.yml");
    alertmanager_with(dir, &config, extra)
}

/// The shipped Alertmanager config with its webhook receivers (127.0.0.1:9095)
/// pointed at `port`, written into `dir`.
pub fn shipped_alertmanager_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.yml");
    let text = std::fs::read_to_string(shipped)
        .expect("shipped config")
        .replace(
            "http://127.0.0.1:9095/",
            &format!("http://127.0.0.1:{port}/"),
        );
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, text).expect("write");
    path
}

/// [`alertmanager`] with the config at `config`.
pub fn alertmanager_with(dir: &Path, config: &Path, extra: &[String]) -> (Daemon, u16) {
    let port = free_port();
    let child = Command::new("/usr/bin/prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (scripts/deps.sh installs it)");
    (Daemon(child), port)
}

/// Polls until `check` returns something, or fails after `secs` with the last value seen.
pub fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> (Option<T>, String)) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let (got, seen) = check();
        if let Some(v) = got {
            return v;
        }
        assert!(Instant::now() < end, "{what}; last seen: {seen}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Reads every message of `topic` that arrives until `done` says so or time runs out.
pub fn read_topic(
    topic: &str,
    group: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    read_topic_at(&brokers(), topic, group, timeout, done)
}

/// [`read_topic`] on the broker at `brokers`.
pub fn read_topic_at(
    brokers: &str,
    topic: &str,
    group: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    // A rebalance of the reading group may deliver a record again: counted once
    // (a record really on the topic twice has two offsets).
    let mut seen = std::collections::HashSet::new();
    let end = Instant::now() + timeout;
    while Instant::now() < end && !done(&out) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200))
            && seen.insert((m.partition(), m.offset()))
        {
            out.push(serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON"));
        }
    }
    out
}

/// Every message of `topic` on the broker at `brokers`, read by assigning all
/// its partitions from the start (no group, so no rebalance re-delivers
/// anything): until `done` holds and nothing more came for a second, or time
/// runs out. What a topic holds, each record as many times as it is there.
pub fn read_all_at(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("read-all-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), rdkafka::Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let end = Instant::now() + timeout;
    let mut last = Instant::now();
    while Instant::now() < end && !(done(&out) && last.elapsed() > Duration::from_secs(1)) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON"));
            last = Instant::now();
        }
    }
    out
}

/// Produces the JSON lines of `file` to `topic` with an independent client
/// (`scripts/produce.py`, Python confluent-kafka), keyed by district.
pub fn produce_file(brokers: &str, topic: &str, file: &Path) {
    let python = std::env::var("YUJING_PYTHON").expect(
        "YUJING_PYTHON must name a python with confluent-kafka: scripts/test.sh sets it up",
    );
    let status = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/produce.py"))
        .args(["--brokers", brokers, "--topic", topic, "--file"])
        .arg(file)
        .status()
        .expect("produce.py");
    assert!(status.success());
}

pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

pub fn sorted(mut v: Vec<Value>) -> Vec<String> {
    let mut s: Vec<String> = v.drain(..).map(|x| x.to_string()).collect();
    s.sort();
    s
}

/// Topics, config and a running daemon for one test.
pub struct Setup {
    pub id: String,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The broker this setup's topics live on.
    pub brokers: String,
}

impl Setup {
    /// The grid_rules pipeline, nothing else configured.
    pub fn new() -> Setup {
        Setup::with(&[("grid_rules", GRID_RULES)], "")
    }

    /// These pipelines (name, text), and `extra` appended to yujing.toml.
    pub fn with(pipelines: &[(&str, &str)], extra: &str) -> Setup {
        Setup::on(&brokers(), pipelines, extra)
    }

    /// [`Setup::with`] on the broker at `brokers`.
    pub fn on(brokers: &str, pipelines: &[(&str, &str)], extra: &str) -> Setup {
        let id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let s = Setup {
            id,
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            brokers: brokers.to_string(),
        };
        s.add_topics(&["police", "alerts", "tasks", "updates", "dead"]);
        std::fs::create_dir(s.dir.path().join("pipelines")).expect("mkdir");
        for (name, text) in pipelines {
            std::fs::write(s.dir.path().join(format!("pipelines/{name}.toml")), text)
                .expect("write");
        }
        let config = format!(
            "pipelines = \"pipelines\"\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"g{}\"\nidle_timeout = \"1s\"\n[kafka.topics]\nalerts = \"{}\"\ntasks = \"{}\"\ntask_updates = \"{}\"\ndead_letters = \"{}\"\n[kafka.topics.feeds]\npolice_incident = \"{}\"\n[state]\ndir = \"state\"\n[http]\nlisten = \"127.0.0.1:{}\"\n[[http.tokens]]\nname = \"{OPERATOR_NAME}\"\nrole = \"operator\"\nsecret = \"YUJING_TEST_OPERATOR_TOKEN\"\n",
            s.brokers,
            s.id,
            s.topic("alerts"),
            s.topic("tasks"),
            s.topic("updates"),
            s.topic("dead"),
            s.topic("police"),
            s.port,
        );
        std::fs::write(s.dir.path().join("yujing.toml"), config + extra).expect("write");
        s
    }

    /// Creates these topics of this setup (three partitions each).
    pub fn add_topics(&self, names: &[&str]) {
        self.add_topics_with(names, 3);
    }

    /// Creates these topics of this setup with `partitions` partitions each.
    pub fn add_topics_with(&self, names: &[&str], partitions: i32) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("admin");
        let new: Vec<String> = names.iter().map(|n| self.topic(n)).collect();
        let new: Vec<NewTopic> = new
            .iter()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .collect();
        rt.block_on(admin.create_topics(&new, &AdminOptions::new()))
            .expect("create topics");
    }

    /// Sets the daemon's `checkpoint_interval`.
    pub fn checkpoint_every(&self, interval: &str) {
        let path = self.dir.path().join("yujing.toml");
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replace(
            "dir = \"state\"",
            &format!("dir = \"state\"\ncheckpoint_interval = \"{interval}\""),
        );
        std::fs::write(&path, text).expect("write");
    }

    pub fn topic(&self, name: &str) -> String {
        format!("t{}-{name}", self.id)
    }

    /// Sends `records` to this setup's police topic, keyed by district.
    pub fn produce(&self, records: &[String]) {
        self.produce_to("police", "西湖区", records);
    }

    pub fn start(&self) -> Daemon {
        self.start_with("yujing.toml", self.port)
    }

    /// Another instance in the same group, with its own HTTP port and state.
    pub fn second_instance(&self) -> (String, u16) {
        let port = free_port();
        let text = std::fs::read_to_string(self.dir.path().join("yujing.toml"))
            .expect("read")
            .replace("dir = \"state\"", "dir = \"state2\"")
            .replace(
                &format!("127.0.0.1:{}", self.port),
                &format!("127.0.0.1:{port}"),
            );
        std::fs::write(self.dir.path().join("yujing2.toml"), text).expect("write");
        ("yujing2.toml".into(), port)
    }

    /// Adds a feed topic (`name`) for `feed` to the config.
    pub fn add_feed(&self, feed: &str, name: &str) {
        self.add_topics(&[name]);
        let path = self.dir.path().join("yujing.toml");
        let text = std::fs::read_to_string(&path).expect("read").replace(
            "[kafka.topics.feeds]\n",
            &format!("[kafka.topics.feeds]\n{feed} = \"{}\"\n", self.topic(name)),
        );
        std::fs::write(&path, text).expect("write");
    }

    /// Sends `records` to this setup's topic `name`, keyed by `key`.
    pub fn produce_to(&self, name: &str, key: &str, records: &[String]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        for r in records {
            producer
                .send(BaseRecord::to(&self.topic(name)).key(key).payload(r))
                .expect("send");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    }

    /// Starts the daemon without waiting for it to be ready.
    pub fn spawn(&self, config: &str) -> Daemon {
        self.spawn_with(config, &[])
    }

    /// [`Setup::spawn`] with more arguments to `yujing run`.
    pub fn spawn_with(&self, config: &str, args: &[&str]) -> Daemon {
        Daemon(
            Command::new(env!("CARGO_BIN_EXE_yujing"))
                .args(["run", "--config"])
                .arg(self.dir.path().join(config))
                .args(args)
                .env("YUJING_PII_KEY", crate::common::PII_KEY)
                .env("YUJING_TEST_OPERATOR_TOKEN", OPERATOR_TOKEN)
                // The secrets the shipped deploy/yujing.toml names.
                .env("YUJING_TOKEN_DUTY", OPERATOR_TOKEN)
                .env("YUJING_METRICS_TOKEN", "metrics-token-for-the-tests")
                .spawn()
                .expect("spawn"),
        )
    }

    pub fn start_with(&self, config: &str, port: u16) -> Daemon {
        let mut d = self.spawn(config);
        wait_ready(&mut d, port);
        d
    }
}

/// Waits until the daemon answers /readyz with 200 (60 s at most).
pub fn wait_ready(d: &mut Daemon, port: u16) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/readyz", &[], "").0 == 200
        {
            return;
        }
        assert!(Instant::now() < end, "not ready within 60 s");
        assert!(d.0.try_wait().expect("wait").is_none(), "the daemon exited");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a task event was not made by a deadline. Replay runs deadlines on
/// event time and the daemon on the wall clock, so only the others compare.
pub fn not_by_deadline(e: &Value) -> bool {
    !matches!(
        e["change"].as_str(),
        Some("overdue" | "escalated" | "completion_overdue")
    )
}

/// Task events as far as both clocks agree: which task, what changed, at what
/// level, by whom, the incident firing or not; sorted. (Times, versions and
/// departments depend on the deadlines that ran.)
pub fn task_lifecycle(v: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .filter(|e| not_by_deadline(e))
        .map(|e| {
            let t = &e["task"];
            format!(
                "{} {} {} {} {}",
                t["task_id"], e["change"], t["level"], e["actor"], t["incident_firing"]
            )
        })
        .collect();
    out.sort();
    out
}

impl Setup {
    /// Replays the same records: the reference alerts, and the task events not
    /// made by deadlines (see [`task_lifecycle`]).
    pub fn replay(&self, records: &[String]) -> (Vec<Value>, Vec<Value>) {
        let dir = self.dir.path();
        std::fs::write(dir.join("police.jsonl"), records.join("\n") + "\n").expect("write");
        let run = crate::common::Replay {
            pipelines: &dir.join("pipelines"),
            input: &dir.join("police.jsonl"),
            out: &dir.join("replay"),
            updates: None,
            now: None,
        };
        run.run();
        let tasks = run.output("tasks.jsonl");
        (
            run.output("alerts.jsonl"),
            tasks.into_iter().filter(not_by_deadline).collect(),
        )
    }
}

pub fn stop(mut daemon: Daemon) {
    let pid = daemon.0.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < end, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

/// A tansu broker of the test's own, storing to SQLite in `dir`, so a restart keeps its topics.
pub struct TestBroker {
    child: std::process::Child,
}

impl TestBroker {
    pub fn start(dir: &Path, addr: &str) -> TestBroker {
        let tansu = std::env::var("YUJING_TANSU").expect(
            "YUJING_TANSU must name a tansu built with SQLite storage: scripts/test.sh sets it",
        );
        let log = std::fs::File::create(dir.join("tansu.log")).expect("log");
        let child = Command::new(tansu)
            .current_dir(dir)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://{addr}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{addr}"))
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu");
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < end, "tansu did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        TestBroker { child }
    }

    /// SIGTERM, as an operator stopping it would.
    pub fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        let end = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("wait").is_none() {
            if Instant::now() > end {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver for Alertmanager: every POST's path and JSON body.
pub struct Webhook {
    pub port: u16,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(got) = read_post(stream) {
                    into.lock().expect("lock").push(got);
                }
            }
        });
        Webhook { port, received }
    }

    /// The alerts posted to `path` so far (each with its notification's status).
    pub fn alerts_at(&self, path: &str) -> Vec<Value> {
        let got = self.received.lock().expect("lock");
        got.iter()
            .filter(|(p, _)| p == path)
            .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// One request: its path and JSON body; answers 200.
fn read_post(mut stream: TcpStream) -> Option<(String, Value)> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some((path, serde_json::from_slice(&body).ok()?))
}

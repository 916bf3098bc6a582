//! Personal data never leaks, and the daemon speaks HTTPS (docs/security.md).
//! A corpus of broken and good records carrying known personal data goes
//! through `yujing replay` and through `yujing run` on the broker; none of
//! those values appears in windows, alerts, tasks, dead letters, logs,
//! metrics, the API, or what a real Alertmanager received. The daemon serves
//! its API over TLS to curl with the CA and refuses plain HTTP, and posts its
//! alerts to an Alertmanager behind TLS and basic auth. The shipped systemd
//! unit passes `systemd-analyze verify` and its exposure stays at or below 2.0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

mod broker;
mod common;
use broker::{Daemon, OPERATOR_TOKEN, Setup, eventually, read_topic, stop};
use common::pii::{MAX_RECORD_BYTES, corpus, leaks};
use common::{GRID_RULES, PII_KEY, escalating_incidents};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, for grepping.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn replay_of_the_pii_corpus_leaks_nothing_and_withholds_what_it_cannot_redact() {
    let c = corpus();
    assert_eq!(
        leaks(&c, "a self-test", c.secrets[11].as_bytes()).len(),
        1,
        "the grep finds what it looks for"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut by_feed: std::collections::BTreeMap<&str, Vec<u8>> = Default::default();
    for (feed, line) in &c.lines {
        let f = by_feed.entry(feed).or_default();
        f.extend_from_slice(line);
        f.push(b'\n');
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yujing"));
    std::fs::write(
        dir.path().join("yujing.toml"),
        format!("max_record_bytes = {MAX_RECORD_BYTES}\n"),
    )
    .expect("write");
    cmd.env("YUJING_PII_KEY", PII_KEY)
        .env("YUJING_LOG", "yujing=debug")
        .args([
            "--log-format",
            "json",
            "replay",
            "--quiet",
            "--now",
            "2026-03-15T00:00:00Z",
        ])
        .arg("--config")
        .arg(dir.path().join("yujing.toml"));
    for (feed, text) in &by_feed {
        let path = dir.path().join(format!("{feed}.jsonl"));
        std::fs::write(&path, text).expect("write");
        cmd.arg("--input").arg(format!("{feed}={}", path.display()));
    }
    let out_dir = dir.path().join("out");
    let o = cmd.arg("--out").arg(&out_dir).output().expect("replay");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut found = leaks(&c, "stdout", &o.stdout);
    found.extend(leaks(&c, "the log", &o.stderr));
    for f in files(&out_dir) {
        found.extend(leaks(
            &c,
            &f.display().to_string(),
            &std::fs::read(&f).expect("read"),
        ));
    }
    assert!(found.is_empty(), "personal data leaked: {found:#?}");

    // Each broken line is a dead letter, and says what it could.
    let dead = common::json_lines(&out_dir.join("dead_letters.jsonl"));
    let by_id = |id: &str| dead.iter().find(|d| d["event_id"] == id).cloned();
    // A numeric id: refused, and its hash stands in the raw object.
    let p2 = by_id("P-2").expect("P-2");
    assert_eq!(p2["reason"], "bad_type");
    let raw: Value = serde_json::from_str(p2["raw"].as_str().expect("raw")).expect("object");
    assert_eq!(
        raw["petitioner_id"].as_str().map(str::len),
        Some(32),
        "{raw}"
    );
    assert_eq!(
        raw["district"], "西湖区",
        "fields that are not personal stay readable"
    );
    // Unknown fields are counted, not shown.
    let p5 = by_id("P-5").expect("P-5");
    let raw: Value = serde_json::from_str(p5["raw"].as_str().expect("raw")).expect("object");
    assert_eq!(raw["_withheld_fields"], 1, "{raw}");
    // Free text is withheld; the key fingerprint travels with the pseudonyms.
    let o2 = by_id("O-2").expect("O-2");
    let raw: Value = serde_json::from_str(o2["raw"].as_str().expect("raw")).expect("object");
    assert!(
        raw["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[withheld")),
        "{raw}"
    );
    assert_eq!(o2["pii_key"].as_str().map(str::len), Some(8));
    // What does not parse as an object shows its length only.
    let withheld = dead
        .iter()
        .filter(|d| {
            d["raw"]
                .as_str()
                .is_some_and(|r| r.starts_with("[withheld: "))
        })
        .count();
    assert_eq!(
        withheld, 5,
        "cut, not UTF-8, too large, an array, a string: {dead:#?}"
    );
    // The late petition is a dead letter of each pipeline that found it late, redacted.
    assert!(
        dead.iter()
            .any(|d| d["event_id"] == "P-10" && d["reason"] == "late")
    );
}

#[test]
fn the_shipped_systemd_unit_verifies_and_its_exposure_is_at_most_2() {
    let unit = repo().join("deploy/systemd/yujing.service");
    let text = std::fs::read_to_string(&unit).expect("unit");
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is part of systemd");
    let report =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("exposure level for yujing.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in: {report}"));
    assert!(score <= 2.0, "exposure {score}:\n{report}");
    // The recorded score is the current one.
    let recorded =
        std::fs::read_to_string(repo().join("deploy/systemd/exposure.txt")).expect("exposure.txt");
    assert!(
        recorded.contains(&format!("yujing.service: {score:.1}")),
        "deploy/systemd/exposure.txt is stale: now {score}"
    );
    // `verify` needs the commands to exist: the unit as installed, with this build's binary.
    let dir = tempfile::tempdir().expect("tempdir");
    let installed = dir.path().join("yujing.service");
    std::fs::write(
        &installed,
        text.replace("/usr/local/bin/yujing", env!("CARGO_BIN_EXE_yujing")),
    )
    .expect("write");
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&installed)
        .output()
        .expect("verify");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost, by openssl.
fn certificates(dir: &Path) {
    let sh = |args: &str| {
        let o = Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(dir)
            .output()
            .expect("sh");
        assert!(
            o.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout ca.key -out ca.crt -subj /CN=yujing-test-ca 2>/dev/null",
    );
    sh(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null",
    );
    sh(
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && \
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out server.crt 2>/dev/null",
    );
}

/// curl over HTTPS with the test CA: (HTTP status, body); status 0 if no HTTP answer came.
fn curl(dir: &Path, url: &str, extra: &[&str]) -> (u16, String) {
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-w",
            "\\n%{http_code}",
            "--cacert",
        ])
        .arg(dir.join("ca.crt"))
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn produce(brokers: &str, topic: &str, lines: &[Vec<u8>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for l in lines {
        producer
            .send(
                BaseRecord::<str, [u8]>::to(topic)
                    .key("西湖区")
                    .payload(&l[..]),
            )
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

const AM_PASSWORD: &str = "alertmanager-test-password";
/// bcrypt of [`AM_PASSWORD`], for Alertmanager's `basic_auth_users`.
const AM_PASSWORD_BCRYPT: &str = "$2b$10$gV.ENTRoGJTAgAKc5qEIb.HHyvreLI7qi7kkb89lrmHB1/2kNXj1O";

#[test]
fn the_daemon_serves_https_posts_to_alertmanager_over_tls_and_leaks_no_pii() {
    let c = corpus();
    let s = Setup::with(
        &[
            ("grid_rules", GRID_RULES),
            (
                "petition_collective",
                include_str!("../pipelines/petition_collective.toml"),
            ),
            (
                "opinion_negative_topic",
                include_str!("../pipelines/opinion_negative_topic.toml"),
            ),
        ],
        "",
    );
    let dir = s.dir.path();
    certificates(dir);
    // Alertmanager behind TLS and basic auth (its --web.config.file).
    std::fs::write(
        dir.join("am-web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\nbasic_auth_users:\n  yujing: {AM_PASSWORD_BCRYPT}\n",
            d = dir.display()
        ),
    )
    .expect("write");
    let (_am, am_port) = broker::alertmanager(
        dir,
        &[format!(
            "--web.config.file={}",
            dir.join("am-web.yml").display()
        )],
    );
    let am = format!("https://127.0.0.1:{am_port}");
    let am_auth = format!("yujing:{AM_PASSWORD}");
    eventually(30, "Alertmanager over TLS", || {
        let (status, body) = curl(dir, &format!("{am}/-/ready"), &["-u", &am_auth]);
        ((status == 200).then_some(()), format!("{status} {body}"))
    });
    assert_eq!(
        curl(dir, &format!("{am}/api/v2/alerts"), &[]).0,
        401,
        "Alertmanager wants its password"
    );

    // The daemon: feeds for petitions and posts too, small records, HTTPS, Alertmanager.
    s.add_topics(&["petition", "opinion"]);
    let config = dir.join("yujing.toml");
    let text = std::fs::read_to_string(&config).expect("read");
    let text = format!("max_record_bytes = {MAX_RECORD_BYTES}\n")
        + &text
            .replace(
                "[kafka.topics.feeds]\n",
                &format!(
                    "[kafka.topics.feeds]\npetition = \"{}\"\npublic_opinion = \"{}\"\n",
                    s.topic("petition"),
                    s.topic("opinion")
                ),
            )
            .replace(
                "[http]\n",
                "[http]\ntls_cert = \"server.crt\"\ntls_key = \"server.key\"\n",
            )
        + &format!(
            "[alertmanager]\nurl = \"{am}\"\nca_file = \"ca.crt\"\nusername = \"yujing\"\npassword_secret = \"YUJING_TEST_AM_PASSWORD\"\nresend_interval = \"5s\"\n"
        );
    std::fs::write(&config, text).expect("write");
    let for_feed = |feed: &str| -> Vec<Vec<u8>> {
        c.lines
            .iter()
            .filter(|(f, _)| *f == feed)
            .map(|(_, l)| l.clone())
            .collect()
    };
    produce(&s.brokers, &s.topic("petition"), &for_feed("petition"));
    produce(&s.brokers, &s.topic("opinion"), &for_feed("public_opinion"));
    // The grid turns red at 03:00 and stays firing (the ops test's first half).
    let mut incidents = escalating_incidents()[..10].to_vec();
    incidents.push(common::incident(80, "2026-03-14T03:10:00Z"));
    s.produce(&incidents);
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_yujing"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("YUJING_LOG", "yujing=debug")
            .env("YUJING_PII_KEY", PII_KEY)
            .env("YUJING_TEST_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("YUJING_TEST_AM_PASSWORD", AM_PASSWORD)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("daemon"),
    );
    let api = format!("https://127.0.0.1:{}", s.port);
    let auth = format!("Authorization: Bearer {OPERATOR_TOKEN}");
    eventually(60, "the daemon ready over HTTPS", || {
        let (status, body) = curl(dir, &format!("{api}/readyz"), &[]);
        ((status == 200).then_some(()), format!("{status} {body}"))
    });
    // Plain HTTP gets no HTTP answer from a TLS port.
    let plain = curl(dir, &format!("http://127.0.0.1:{}/healthz", s.port), &[]);
    assert_eq!(plain.0, 0, "plain HTTP was answered: {plain:?}");

    // The grid's red alert reaches Alertmanager over TLS, with the password.
    let am_alerts = || {
        let (_, body) = curl(dir, &format!("{am}/api/v2/alerts"), &["-u", &am_auth]);
        body
    };
    let log = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    eventually(60, "the red alert in Alertmanager", || {
        let alerts = am_alerts();
        (
            alerts.contains("\"severity\":\"red\"").then_some(()),
            format!("Alertmanager has {alerts}\nthe daemon logged:\n{}", log()),
        )
    });
    let dead = read_topic(
        &s.topic("dead"),
        &format!("sd{}", s.id),
        Duration::from_secs(60),
        |v| v.len() >= 10,
    );
    assert!(dead.len() >= 10, "{dead:?}");

    // Nothing personal anywhere the daemon writes or answers.
    let mut found = Vec::new();
    for topic in ["alerts", "tasks", "dead"] {
        let got = read_topic(
            &s.topic(topic),
            &format!("sx{topic}{}", s.id),
            Duration::from_secs(5),
            |_| false,
        );
        found.extend(leaks(
            &c,
            topic,
            serde_json::to_string(&got).expect("json").as_bytes(),
        ));
    }
    for path in ["/metrics", "/api/alerts", "/api/tasks"] {
        let (status, body) = curl(dir, &format!("{api}{path}"), &["-H", &auth]);
        assert_eq!(status, 200, "{path}");
        found.extend(leaks(&c, path, body.as_bytes()));
    }
    found.extend(leaks(&c, "Alertmanager", am_alerts().as_bytes()));
    stop(daemon);
    found.extend(leaks(
        &c,
        "the daemon's log",
        &std::fs::read(dir.join("daemon.log")).expect("log"),
    ));
    assert!(found.is_empty(), "personal data leaked: {found:#?}");
}

//! What the task and daemon tests share: a rules pipeline over police incidents
//! per street and hour, and the incidents of one street that it turns orange,
//! then red, then resolved; hostile records to put between them; and the one
//! way the tests run `yujing replay`.

// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

pub mod pii;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The PII key every test run uses, so replay and the daemon hash alike.
pub const PII_KEY: &str = "test-pii-key-of-thirty-two-bytes";

/// `yujing replay` of police incidents through the pipelines of a folder.
pub struct Replay<'a> {
    pub pipelines: &'a Path,
    /// Police incidents, one JSON object a line.
    pub input: &'a Path,
    pub out: &'a Path,
    pub updates: Option<&'a Path>,
    /// The processing clock (RFC 3339); the wall clock if `None`.
    pub now: Option<&'a str>,
}

impl Replay<'_> {
    /// Runs it; fails the test with replay's own words if replay fails.
    pub fn run(&self) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
        c.args(["replay", "--quiet", "--pipelines"])
            .arg(self.pipelines)
            .arg("--input")
            .arg(format!("police_incident={}", self.input.display()))
            .arg("--out")
            .arg(self.out)
            .env("YUJING_PII_KEY", PII_KEY);
        if let Some(u) = self.updates {
            c.arg("--task-updates").arg(u);
        }
        if let Some(now) = self.now {
            c.args(["--now", now]);
        }
        let o = c.output().expect("run replay");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// What it wrote to `name` (`alerts.jsonl`, `tasks.jsonl`, …).
    pub fn output(&self, name: &str) -> Vec<Value> {
        json_lines(&self.out.join(name))
    }
}

/// Runs `cmd`; fails the test with its stderr unless it succeeds.
pub fn succeed(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().expect(what);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON objects of a JSON-lines file; none if there is no file.
pub fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

/// Orange at 3 incidents an hour, red at 6; lateness 0.
pub const GRID_RULES: &str = r#"name = "grid_rules"
lateness = "0s"
sql = """
SELECT district, street, count(*) AS n
FROM police_incident
GROUP BY district, street, tumble(INTERVAL '1 hour')
"""

[[rule]]
when = "n >= 3"
level = "orange"

[[rule]]
when = "n >= 6"
level = "red"
"#;

/// One police incident on 北山街道, 西湖区.
pub fn incident(i: usize, time: &str) -> String {
    format!(
        r#"{{"event_id":"PI-{i:04}","event_time":"{time}","district":"西湖区","street":"北山街道","grid_id":"XH-01-21","kind":"dispute","deaths":0,"injuries":0}}"#
    )
}

/// A pension petition on 北山街道, 西湖区, at `at` by `persons` people (with a
/// petitioner id, which must never come out): 50 or more is orange under the
/// shipped `petition_collective`, and its legal track goes to 区委信访局.
pub fn petition(at: i64, id: &str, persons: u32) -> String {
    serde_json::json!({
        "event_id": id,
        "event_time": yujing::core::time::format_rfc3339(at),
        "district": "西湖区",
        "street": "北山街道",
        "category": "pension",
        "persons": persons,
        "petitioner_id": "110101199001011234",
    })
    .to_string()
}

/// 3 incidents in 01:00–02:00 (orange), 7 in 02:00–03:00 (red), one at 10:30 and
/// one at 12:10 (normal: the incident resolves at 11:00).
pub fn escalating_incidents() -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    for m in [5, 20, 40] {
        i += 1;
        out.push(incident(i, &format!("2026-03-14T01:{m:02}:00Z")));
    }
    for m in [1, 9, 17, 25, 33, 41, 49] {
        i += 1;
        out.push(incident(i, &format!("2026-03-14T02:{m:02}:00Z")));
    }
    out.push(incident(90, "2026-03-14T10:30:00Z"));
    out.push(incident(91, "2026-03-14T12:10:00Z"));
    out
}

/// The escalating incidents with hostile records between them, and the
/// dead-letter reason each hostile record must get: event times in 2031, 2099
/// and 9999, a 900 KB street, a line that is not UTF-8, 100 000 nested arrays.
pub fn with_hostile_records() -> (Vec<Vec<u8>>, Vec<&'static str>) {
    let mut records: Vec<Vec<u8>> = escalating_incidents()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let big_street =
        incident(200, "2026-03-14T01:30:00Z").replace("北山街道", &"街".repeat(300_000));
    let deep = "[".repeat(100_000);
    let mut bad_utf8 = incident(201, "2026-03-14T01:31:00Z").into_bytes();
    // The quote closing the event id.
    bad_utf8[20] = 0xff;
    let hostile: Vec<(Vec<u8>, &str)> = vec![
        (incident(300, "2031-01-01T00:00:00Z").into_bytes(), "future"),
        (incident(301, "2099-06-01T00:00:00Z").into_bytes(), "future"),
        (incident(302, "9999-12-31T23:59:59Z").into_bytes(), "future"),
        (big_street.into_bytes(), "too_large"),
        (bad_utf8, "invalid_json"),
        (deep.into_bytes(), "invalid_json"),
    ];
    let mut reasons = Vec::new();
    for (i, (h, reason)) in hostile.into_iter().enumerate() {
        records.insert(2 + i * 3, h);
        reasons.push(reason);
    }
    (records, reasons)
}

//! Window behaviour from data files: each folder under `tests/windows/` holds
//! `pipelines/*.toml`, `input/FEED.jsonl`, and the expected `windows.jsonl` and
//! `dead_letters.jsonl` (the latter as feed, reason, field, line, event_id and
//! pipeline). A `case.toml` may set `max_record_bytes`, the processing clock
//! `now`, and declare reference `[tables]` (files relative to the case). `YUJING_BLESS=1` rewrites the expectations from the engine's output,
//! for review in the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use yujing::decode::DecodeOptions;
use yujing::pipeline;
use yujing::reference::TableDef;
use yujing::replay::replay_to_dir;
use yujing::schema::Catalog;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/windows")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn project_dead_letter(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).expect("dead letter is JSON");
    json!({
        "feed": v["feed"],
        "reason": v["reason"],
        "field": v["field"],
        "line": v["source"]["line"],
        "event_id": v.get("event_id").cloned().unwrap_or(Value::Null),
        "pipeline": v.get("pipeline").cloned().unwrap_or(Value::Null),
    })
}

fn project_alert(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).expect("alert is JSON");
    json!({
        "status": v["status"],
        "level": v["level"],
        "key": v["key"],
        "window_start": v["window_start"],
        "method": v["method"],
    })
}

fn run_case(dir: &Path, out: &Path) {
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime"),
    );
    let mut catalog = Catalog::embedded().expect("schemas");
    let case: toml::Table = std::fs::read_to_string(dir.join("case.toml"))
        .map(|text| toml::from_str(&text).expect("case.toml"))
        .unwrap_or_default();
    // Reference tables of the case, with files relative to its folder.
    if let Some(tables) = case.get("tables") {
        let defs: BTreeMap<String, TableDef> =
            tables.clone().try_into().expect("case.toml [tables]");
        let key = DecodeOptions::with_secret("case").pii_key;
        let loaded = yujing::reference::load_all(&defs, dir, key)
            .unwrap_or_else(|d| panic!("{}: {d:?}", dir.display()));
        catalog.tables.extend(loaded);
    }
    let compiled = rt
        .block_on(pipeline::compile_dir(&dir.join("pipelines"), &catalog))
        .unwrap_or_else(|d| panic!("{}: {d}", dir.display()));
    let mut inputs: Vec<(String, PathBuf)> = std::fs::read_dir(dir.join("input"))
        .expect("input dir")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            (
                p.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                p,
            )
        })
        .collect();
    inputs.sort();
    let mut options = DecodeOptions::with_secret("case");
    if let Some(n) = case.get("max_record_bytes").and_then(|v| v.as_integer()) {
        options.max_record_bytes = n as usize;
    }
    // The processing clock of a case dated after today (else its events are `future`).
    if let Some(now) = case.get("now").and_then(|v| v.as_str()) {
        let t = yujing::core::time::parse_rfc3339(now).expect("case.toml now");
        options.clock = yujing::core::time::Clock::Fixed(t);
    }
    replay_to_dir(
        catalog,
        compiled,
        yujing::replay::Inputs {
            feeds: &inputs,
            task_updates: None,
            // Read and decoded ahead on two workers even on one core: the
            // cases hold for the threaded path, which every multi-core run takes.
            decode_threads: Some(2),
        },
        options,
        rt,
        yujing::replay::Outputs {
            dir: out,
            progress: false,
            report: None,
            save_state: None,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
}

/// The expected lines of a case; a missing file fails the case rather than
/// passing as empty.
fn expected(path: &Path) -> Result<Vec<String>, String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .map_err(|e| {
            format!(
                "{}: {e} (run with YUJING_BLESS=1 to write it, then review it)",
                path.display()
            )
        })
}

/// What a case produced, in the form its expected files hold: windows as
/// written, dead letters and alerts projected onto what the case is about.
fn produced(out: &Path) -> [(&'static str, Vec<String>); 3] {
    let projected = |name: &str, project: fn(&str) -> Value| {
        lines(&out.join(name))
            .iter()
            .map(|l| project(l).to_string())
            .collect::<Vec<String>>()
    };
    [
        ("windows.jsonl", lines(&out.join("windows.jsonl"))),
        (
            "dead_letters.jsonl",
            projected("dead_letters.jsonl", project_dead_letter),
        ),
        ("alerts.jsonl", projected("alerts.jsonl", project_alert)),
    ]
}

#[test]
fn window_cases_match_their_expected_output() {
    let bless = std::env::var_os("YUJING_BLESS").is_some();
    let mut failures = Vec::new();
    for dir in cases() {
        let out = tempfile::tempdir().expect("tempdir");
        run_case(&dir, out.path());
        let expected_dir = dir.join("expected");
        for (name, got) in produced(out.path()) {
            let path = expected_dir.join(name);
            if bless {
                let text: String = got.iter().map(|l| format!("{l}\n")).collect();
                std::fs::write(&path, text).expect("write");
                continue;
            }
            let want = match expected(&path) {
                Ok(w) => w,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            // Dead letters and alerts compare as JSON, so key order does not matter.
            let parse = |ls: &[String]| -> Vec<Value> {
                ls.iter()
                    .map(|l| serde_json::from_str(l).expect("JSON"))
                    .collect()
            };
            let same = if name == "windows.jsonl" {
                got == want
            } else {
                parse(&got) == parse(&want)
            };
            if !same {
                failures.push(format!(
                    "{}: {name}\n got: {got:#?}\nwant: {want:#?}",
                    dir.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn replay_is_deterministic_byte_for_byte() {
    for dir in cases() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        run_case(&dir, a.path());
        run_case(&dir, b.path());
        for f in ["windows.jsonl", "dead_letters.jsonl", "alerts.jsonl"] {
            let x = std::fs::read(a.path().join(f)).expect("read");
            let y = std::fs::read(b.path().join(f)).expect("read");
            assert_eq!(x, y, "{}: {f} differs between runs", dir.display());
        }
    }
}

#[test]
fn dead_letters_carry_no_pii() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows/dead_letter_reasons");
    let out = tempfile::tempdir().expect("tempdir");
    run_case(&dir, out.path());
    let text = std::fs::read_to_string(out.path().join("dead_letters.jsonl")).expect("read");
    assert!(!text.is_empty());
    assert!(!text.contains("张三"));
}

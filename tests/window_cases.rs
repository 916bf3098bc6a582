//! Window behaviour from data files: each folder under `tests/windows/` holds
//! `pipelines/*.toml`, `input/FEED.jsonl`, and the expected `windows.jsonl` and
//! `dead_letters.jsonl` (the latter as feed, reason, field, line, event_id and
//! pipeline). `YUJING_BLESS=1` rewrites the expectations from the engine's output,
//! for review in the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use yujing::decode::DecodeOptions;
use yujing::pipeline;
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
    let catalog = Catalog::embedded().expect("schemas");
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
    if let Ok(text) = std::fs::read_to_string(dir.join("case.toml")) {
        let t: toml::Table = toml::from_str(&text).expect("case.toml");
        if let Some(n) = t.get("max_record_bytes").and_then(|v| v.as_integer()) {
            options.max_record_bytes = n as usize;
        }
    }
    replay_to_dir(
        catalog,
        compiled,
        yujing::replay::Inputs {
            feeds: &inputs,
            task_updates: None,
        },
        options,
        rt,
        out,
        false,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
}

#[test]
fn window_cases_match_their_expected_output() {
    let bless = std::env::var_os("YUJING_BLESS").is_some();
    let mut failures = Vec::new();
    for dir in cases() {
        let out = tempfile::tempdir().expect("tempdir");
        run_case(&dir, out.path());
        let windows = lines(&out.path().join("windows.jsonl"));
        let dead: Vec<Value> = lines(&out.path().join("dead_letters.jsonl"))
            .iter()
            .map(|l| project_dead_letter(l))
            .collect();
        let expected_dir = dir.join("expected");
        if bless {
            std::fs::write(
                expected_dir.join("windows.jsonl"),
                windows.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .expect("write");
            std::fs::write(
                expected_dir.join("dead_letters.jsonl"),
                dead.iter().map(|v| format!("{v}\n")).collect::<String>(),
            )
            .expect("write");
            continue;
        }
        let want_windows = lines(&expected_dir.join("windows.jsonl"));
        let want_dead: Vec<Value> = lines(&expected_dir.join("dead_letters.jsonl"))
            .iter()
            .map(|l| serde_json::from_str(l).expect("expected dead letter is JSON"))
            .collect();
        let alerts_file = expected_dir.join("alerts.jsonl");
        if alerts_file.exists() {
            let got: Vec<Value> = lines(&out.path().join("alerts.jsonl"))
                .iter()
                .map(|l| project_alert(l))
                .collect();
            let want: Vec<Value> = lines(&alerts_file)
                .iter()
                .map(|l| serde_json::from_str(l).expect("expected alert is JSON"))
                .collect();
            if got != want {
                failures.push(format!(
                    "{}: alerts\n got: {got:#?}\nwant: {want:#?}",
                    dir.display()
                ));
            }
        }
        if windows != want_windows {
            failures.push(format!(
                "{}: windows\n got: {windows:#?}\nwant: {want_windows:#?}",
                dir.display()
            ));
        }
        if dead != want_dead {
            failures.push(format!(
                "{}: dead letters\n got: {dead:#?}\nwant: {want_dead:#?}",
                dir.display()
            ));
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

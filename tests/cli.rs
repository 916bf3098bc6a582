//! The command line as users call it: `check`, `gen`, `replay`, `demo`. What
//! `check` says about mistakes is held as data in `tests/check/` (`tests/cases.rs`).

use std::path::Path;
use std::process::Command;

mod common;
use common::succeed;

fn yujing() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
    c.env("YUJING_PII_KEY", "cli-test-key");
    c
}

/// `yujing replay --quiet` over the four feeds `yujing gen` wrote to `data`.
fn replay_of(data: &Path, out: &Path) -> Command {
    let mut cmd = yujing();
    cmd.arg("replay").arg("--quiet").arg("--out").arg(out);
    for feed in [
        "public_opinion",
        "petition",
        "labor_dispute",
        "police_incident",
    ] {
        cmd.arg("--input").arg(format!(
            "{feed}={}",
            data.join(format!("{feed}.jsonl")).display()
        ));
    }
    cmd
}

/// Runs `cmd`; fails the test with its stderr unless it succeeded.
fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn check_accepts_the_shipped_pipelines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let out = succeed(yujing().arg("check").arg("--pipelines").arg(&dir), "run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ok: 11 pipelines"));
    // Which pipelines keep a key's state in one partition of district-keyed feeds.
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start}: {text}"))
            .to_string()
    };
    let together = line("co-partitioned by district: ");
    assert!(together.contains("police_grid_hour") && together.contains("labor_key_enterprise_day"));
    assert!(!together.contains("labor_industry_week"));
    let apart = line("not co-partitioned");
    assert!(
        apart.contains("labor_industry_week (by industry)"),
        "{apart}"
    );
    assert!(
        apart.contains("opinion_negative_topic (by topic)"),
        "{apart}"
    );
}

#[test]
fn gen_is_deterministic_and_replay_dead_letters_every_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for d in [&a, &b] {
        succeed(
            yujing()
                .args([
                    "gen", "--days", "3", "--scale", "0.3", "--late", "10", "--bad", "12",
                    "--seed", "11", "--out",
                ])
                .arg(d),
            "gen",
        );
    }
    for f in ["petition.jsonl", "police_incident.jsonl", "manifest.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).expect("a"),
            std::fs::read(b.join(f)).expect("b"),
            "{f}"
        );
    }
    let out_dir = dir.path().join("out");
    let out = succeed(&mut replay_of(&a, &out_dir), "replay");
    assert!(String::from_utf8_lossy(&out.stderr).contains("replay: "));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("manifest.json")).expect("manifest"))
            .expect("json");
    let dead = std::fs::read_to_string(out_dir.join("dead_letters.jsonl")).expect("dead letters");
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for bad in manifest["bad"].as_array().expect("bad") {
        let found = dead.iter().any(|d| {
            d["feed"] == bad["feed"]
                && d["source"]["line"] == bad["line"]
                && d["reason"] == bad["reason"]
        });
        assert!(found, "bad record {bad} not dead-lettered with its reason");
    }
    for late in manifest["late"].as_array().expect("late") {
        assert!(
            dead.iter()
                .any(|d| d["event_id"] == late["event_id"] && d["reason"] == "late"),
            "late record {late} not dead-lettered"
        );
    }
    let windows = std::fs::read_to_string(out_dir.join("windows.jsonl")).expect("windows");
    assert!(windows.lines().count() > 100);
    // No petitioner or author id in clear anywhere in the outputs.
    let petitions = std::fs::read_to_string(a.join("petition.jsonl")).expect("petitions");
    let first: serde_json::Value =
        serde_json::from_str(petitions.lines().next().expect("line")).expect("json");
    let pid = first["petitioner_id"].as_str().expect("pid");
    let all = windows + &dead.iter().map(|d| d.to_string()).collect::<String>();
    assert!(!all.contains(pid));
}

#[test]
fn demo_shows_windows_over_the_injected_incidents() {
    let out = succeed(yujing().args(["demo", "--days", "4"]), "demo");
    let text = String::from_utf8_lossy(&out.stdout);
    for p in [
        "police_grid_hour",
        "petition_street_day",
        "opinion_negative_topic",
        "district_petition_labor_day",
    ] {
        assert!(
            text.contains(&format!("▸ {p}: ")),
            "{p} missing from:\n{text}"
        );
    }
    // The injected police spike (25 incidents in one grid-hour) tops its pipeline.
    let after = text.split("▸ police_grid_hour").nth(1).expect("section");
    let top = after.lines().nth(2).expect("top row");
    let n: i64 = top
        .rsplit("incidents=")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .expect("count");
    assert!(n >= 25, "{top}");
    assert!(text.contains("late"), "{text}");
    // The spike raises a red alert from the hourly Poisson baseline.
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("red")
            && l.contains("police_grid_hour")
            && l.contains("value 25")),
        "{text}"
    );
}

#[test]
fn replay_reads_its_inputs_and_output_from_a_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let case = root.join("tests/windows/tumble_boundary_late");
    write(
        dir.path(),
        "yujing.toml",
        &format!(
            "pipelines = \"{}\"\n[replay]\nout = \"out\"\n[replay.inputs]\npolice_incident = \"{}\"\n",
            case.join("pipelines").display(),
            case.join("input/police_incident.jsonl").display()
        ),
    );
    succeed(
        yujing()
            .args(["replay", "--quiet", "--config"])
            .arg(dir.path().join("yujing.toml")),
        "replay",
    );
    // `out` is relative to the config file.
    let got = std::fs::read_to_string(dir.path().join("out/windows.jsonl")).expect("windows");
    let want = std::fs::read_to_string(case.join("expected/windows.jsonl")).expect("expected");
    assert_eq!(got, want);

    write(dir.path(), "bad.toml", "pipelines = \"p\"\ncolour = 1\n");
    let out = yujing()
        .args(["check", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .expect("check");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:2:1: unknown field `colour`"),
        "{stderr}"
    );
}

#[test]
fn replay_refuses_a_bad_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("p.jsonl"), "").expect("write");
    let out = yujing()
        .args(["replay", "--quiet", "--now", "tomorrow", "--input"])
        .arg(format!(
            "police_incident={}",
            dir.path().join("p.jsonl").display()
        ))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--now tomorrow"));
}

/// `yujing eval --nab` on a labelled series of its own: hourly values around 50
/// for ten days, then a jump to 200 inside the labelled window.
#[test]
fn eval_nab_scores_a_labelled_series_and_refuses_an_unknown_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("realTraffic")).expect("mkdir");
    let mut csv = String::from("timestamp,value\n");
    for h in 0..300u32 {
        let value = if (240..250).contains(&h) {
            200
        } else {
            50 + (h * 7) % 5
        };
        csv += &format!("2015-09-{:02} {:02}:00:00,{value}\n", 1 + h / 24, h % 24);
    }
    write(&dir.path().join("realTraffic"), "x.csv", &csv);
    write(
        dir.path(),
        "combined_windows.json",
        r#"{"realTraffic/x.csv": [["2015-09-11 00:00:00.000000", "2015-09-11 23:00:00.000000"]]}"#,
    );
    let run = |detect: &str| {
        yujing()
            .args(["eval", "--nab"])
            .arg(dir.path())
            .args(["--detect", detect])
            .output()
            .expect("eval")
    };
    let out = run("method = \"robust_z\"\nbaseline = {day}\nalpha = 1e-6");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("### realTraffic (1 files, 1 windows)"),
        "{text}"
    );
    // The jump opens the window: found at once, a perfect 100 on every profile.
    let row = text
        .lines()
        .find(|l| l.starts_with("| method = \"robust_z\""))
        .expect("row");
    assert!(row.ends_with("| 100.0 | 100.0 | 100.0 | 1 | 0 |"), "{row}");
    let bad = run("method = \"robust_z\"\nbaseline = {fortnight}");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown span {fortnight}"));
}

#[test]
fn replay_writes_the_same_bytes_on_one_thread_and_on_several() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    succeed(
        yujing()
            .args([
                "gen", "--days", "30", "--seed", "99", "--late", "20", "--bad", "30", "--out",
            ])
            .arg(&data),
        "gen",
    );
    let replay = |threads: &str| {
        let out_dir = dir.path().join(format!("out{threads}"));
        succeed(
            replay_of(&data, &out_dir).args([
                "--now",
                "2026-06-01T00:00:00Z",
                "--threads",
                threads,
            ]),
            "replay",
        );
        out_dir
    };
    let one = replay("1");
    let three = replay("3");
    for f in [
        "windows.jsonl",
        "alerts.jsonl",
        "tasks.jsonl",
        "dead_letters.jsonl",
    ] {
        let a = std::fs::read(one.join(f)).expect("one");
        let b = std::fs::read(three.join(f)).expect("three");
        assert!(
            !a.is_empty(),
            "{f} is empty: the comparison would prove nothing"
        );
        assert!(a == b, "{f} differs between one decode thread and three");
    }
}

//! The command line as users call it: `check`, `gen`, `replay`, `demo`.

use std::path::Path;
use std::process::Command;

fn yujing() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
    c.env("YUJING_PII_KEY", "cli-test-key");
    c
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// Runs `yujing check` on a folder that has mistakes; returns what it printed.
fn check_fails(dir: &Path) -> String {
    let out = yujing()
        .arg("check")
        .arg("--pipelines")
        .arg(dir)
        .output()
        .expect("run");
    assert!(!out.status.success(), "check must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `yujing check --config` on a config with mistakes; returns what it printed.
fn check_config_fails(config: &Path) -> String {
    let out = yujing()
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run");
    assert!(!out.status.success(), "check must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_accepts_the_shipped_pipelines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let out = yujing()
        .arg("check")
        .arg("--pipelines")
        .arg(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 9 pipelines"));
}

#[test]
fn check_reports_every_mistake_with_file_line_col() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bad.toml",
        "name = \"bad\"\nlateness = \"5 parsecs\"\nthreshold = 3\nsql = \"\"\"\nSELECT grid_id, count(*) AS n\nFROM police_incident\nWHERE nonexistent > 1\nGROUP BY grid_id, tumble(INTERVAL '1 hour')\n\"\"\"\n",
    );
    write(
        dir.path(),
        "bad_window.toml",
        "name = \"bad_window\"\nlateness = \"5m\"\nsql = \"\"\"\nSELECT count(*) FROM petition\nGROUP BY tumble('one hour')\n\"\"\"\n",
    );
    write(
        dir.path(),
        "no_table.toml",
        "name = \"no_table\"\nlateness = \"5m\"\nsql = \"SELECT count(*) FROM tweets GROUP BY tumble(INTERVAL '1 hour')\"\n",
    );
    let stderr = check_fails(dir.path());
    let lines: Vec<&str> = stderr.lines().collect();
    let bad = dir.path().join("bad.toml").display().to_string();
    let has = |prefix: String, what: &str| {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(what)),
            "missing `{prefix}` … `{what}` in:\n{stderr}"
        )
    };
    // Three mistakes in one file: two keys and the SQL.
    has(format!("{bad}:2:12: "), "bad lateness");
    has(format!("{bad}:3:1: "), "unknown key `threshold`");
    has(format!("{bad}:7:7: "), "nonexistent");
    let win = dir.path().join("bad_window.toml").display().to_string();
    has(format!("{win}:5:17: "), "interval");
    let nt = dir.path().join("no_table.toml").display().to_string();
    has(format!("{nt}:3:"), "tweets");
    assert_eq!(
        lines.iter().filter(|l| l.contains(".toml:")).count(),
        5,
        "{stderr}"
    );
}

#[test]
fn check_locates_unknown_columns_in_the_sql() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "p.toml",
        "name = \"p\"\nlateness = \"5m\"\nsql = \"\"\"\nSELECT grid_id, count(*) AS n\nFROM police_incident\nWHERE nonexistent > 1\nGROUP BY grid_id, tumble(INTERVAL '1 hour')\n\"\"\"\n",
    );
    let stderr = check_fails(dir.path());
    let p = dir.path().join("p.toml").display().to_string();
    assert!(stderr.starts_with(&format!("{p}:6:7: ")), "{stderr}");
    assert!(stderr.contains("nonexistent"), "{stderr}");
}

#[test]
fn gen_is_deterministic_and_replay_dead_letters_every_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for d in [&a, &b] {
        let out = yujing()
            .args([
                "gen", "--days", "3", "--scale", "0.3", "--late", "10", "--bad", "12", "--seed",
                "11", "--out",
            ])
            .arg(d)
            .output()
            .expect("gen");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
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
    let mut cmd = yujing();
    cmd.arg("replay").arg("--quiet").arg("--out").arg(&out_dir);
    for feed in [
        "public_opinion",
        "petition",
        "labor_dispute",
        "police_incident",
    ] {
        cmd.arg("--input").arg(format!(
            "{feed}={}",
            a.join(format!("{feed}.jsonl")).display()
        ));
    }
    let out = cmd.output().expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = yujing()
        .args(["demo", "--days", "4"])
        .output()
        .expect("demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = yujing()
        .args(["replay", "--quiet", "--config"])
        .arg(dir.path().join("yujing.toml"))
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
fn check_locates_mistakes_in_detect_and_rule_sections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = "sql = \"\"\"\nSELECT street, count(*) AS petitions, max(persons) AS persons\nFROM petition\nGROUP BY street, tumble(INTERVAL '1 day')\n\"\"\"\n";
    write(
        dir.path(),
        "a.toml",
        &format!(
            "name = \"a\"\nlateness = \"1h\"\n{sql}[detect]\nvalue = \"petitons\"\nmethod = \"bayes\"\n\n[[rule]]\nwhen = \"persons >= \"\nlevel = \"yellow\"\n"
        ),
    );
    write(
        dir.path(),
        "b.toml",
        &format!(
            "name = \"b\"\nlateness = \"1h\"\n{sql}[detect]\nvalue = \"petitions\"\nmethod = \"bayes\"\nwindow = 3\n"
        ),
    );
    write(
        dir.path(),
        "c.toml",
        &format!(
            "name = \"c\"\nlateness = \"1h\"\n{sql}[[rule]]\nwhen = \"persons >= 5\"\nlevel = \"purple\"\n"
        ),
    );
    write(
        dir.path(),
        "ok.toml",
        &format!(
            "name = \"ok\"\nlateness = \"1h\"\n{sql}[detect]\nvalue = \"petitions\"\nkey = [\"street\"]\nmethod = \"poisson\"\nseasonality = \"day_of_week\"\nbaseline = 4\nlevels = {{ yellow = 0.001, red = 0.00001 }}\n\n[[rule]]\nwhen = \"persons >= 5\"\nlevel = \"yellow\"\n"
        ),
    );
    let stderr = check_fails(dir.path());
    let file = |n: &str| dir.path().join(n).display().to_string();
    let has = |prefix: String, what: &str| {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(what)),
            "missing `{prefix}` … `{what}` in:\n{stderr}"
        )
    };
    has(format!("{}:9:9: ", file("a.toml")), "no column `petitons`");
    has(format!("{}:13:9: ", file("a.toml")), "in rule");
    has(
        format!("{}:11:1: ", file("b.toml")),
        "unknown field `window`",
    );
    has(format!("{}:10:9: ", file("c.toml")), "purple");
    assert!(!stderr.contains("ok.toml"), "{stderr}");
}

#[test]
fn check_reports_bad_daemon_durations_with_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("yujing.toml");
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\ngroup_id = \"g\"\nidle_timeout = \"soon\"\n[state]\ndir = \"s\"\ncheckpoint_interval = \"10 fortnights\"\n",
    )
    .expect("write");
    let text = check_config_fails(&config);
    let file = config.display().to_string();
    assert!(
        text.contains(&format!("{file}:4:1: bad `idle_timeout`")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{file}:7:1: bad `checkpoint_interval`")),
        "{text}"
    );
}

#[test]
fn check_reports_routing_mistakes_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let routing = dir.path().join("routing.toml");
    std::fs::write(
        &routing,
        "open_at = \"orange\"\n[default]\nlegal = \"a\"\nopinion = \"b\"\ncontrol = \"c\"\n[[route]]\nfeed = \"weather\"\nlegal = \"x\"\n[[route]]\nfeed = \"petition\"\nlegal = \"y\"\n[[route]]\nfeed = \"petition\"\nlegal = \"z\"\n",
    )
    .expect("write");
    let config = dir.path().join("yujing.toml");
    std::fs::write(&config, "routing = \"routing.toml\"\n").expect("write");
    let text = check_config_fails(&config);
    let file = routing.display().to_string();
    assert!(
        text.contains(&format!("{file}:7:8: unknown feed `weather`")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{file}:12:1: unreachable route")),
        "{text}"
    );
}

#[test]
fn check_refuses_a_topic_for_a_name_that_is_not_a_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("yujing.toml");
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\ngroup_id = \"g\"\n[kafka.topics.feeds]\npolice_incident = \"feeds.police\"\ndistrict_population = \"population\"\n",
    )
    .expect("write");
    let text = check_config_fails(&config);
    let file = config.display().to_string();
    assert!(
        text.contains(&format!(
            "{file}:6:1: `district_population` in [kafka.topics.feeds] is not a feed"
        )),
        "{text}"
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

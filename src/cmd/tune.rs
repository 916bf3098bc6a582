//! `yujing tune`: one pipeline replayed once per combination of settings and
//! scored against labels, so an analyst picks a setting from evidence — the
//! incidents each finds and misses, its delay and its false alarms per week.
//! Each run is an ordinary replay of that pipeline alone (the others do not
//! change its alerts), over the inputs of the feeds it reads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use yujing::eval::labels::Score;
use yujing::http::console::Lang;
use yujing::replay::{Inputs, Outputs, Report, replay_to_dir};

/// `yujing tune` arguments.
#[derive(clap::Args)]
pub struct Tune {
    #[command(flatten)]
    sources: crate::Sources,
    /// The pipeline to tune (by name).
    #[arg(long)]
    pipeline: String,
    /// KEY=V1,V2,…: values to try; KEY is a key of `[detect]` (`alpha`,
    /// `method`, …) or a dotted path from the file's top (`detect.levels.red`).
    /// Several --set give every combination.
    #[arg(long = "set", value_name = "KEY=VALUES", required = true)]
    sets: Vec<String>,
    /// Known incidents (JSON lines, or gen's manifest.json).
    #[arg(long, value_name = "PATH")]
    labels: PathBuf,
    /// FEED=PATH, once per input file (feeds the pipeline does not read are skipped).
    #[arg(long = "input", value_name = "FEED=PATH", required = true)]
    inputs: Vec<String>,
    /// The processing clock (RFC 3339) for future-dated events; default: the wall clock.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Also write the rows here as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Also write the table and a plot (false alarms a week against incidents
    /// detected, a point per setting) as one self-contained HTML file.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
}

/// One setting and how it scored.
#[derive(serde::Serialize)]
struct Row {
    setting: Vec<(String, String)>,
    score: Score,
}

pub fn run(t: Tune) -> anyhow::Result<ExitCode> {
    let settings = combinations(&t.sets)?;
    let file = pipeline_file(&t.sources, &t.pipeline)?;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let work = tempfile::tempdir().context("a working directory")?;
    // One runtime for every setting's replay.
    let rt = crate::runtime()?;
    let mut rows = Vec::new();
    for (i, setting) in settings.iter().enumerate() {
        let dir = work.path().join(format!("setting-{i}"));
        std::fs::create_dir_all(dir.join("pipelines"))?;
        let changed = with_setting(&text, setting)?;
        std::fs::write(
            dir.join("pipelines")
                .join(file.file_name().unwrap_or_default()),
            changed,
        )?;
        let score = replay_one(&t, &dir, rt.clone())?;
        eprintln!("tune: {} done", describe(setting));
        rows.push(Row {
            setting: setting.clone(),
            score,
        });
    }
    print!("{}", table(&rows));
    if let Some(path) = &t.html {
        let named: Vec<(String, Score)> = rows
            .iter()
            .map(|r| (describe(&r.setting), r.score.clone()))
            .collect();
        let page = yujing::http::console::report::tune_page(Lang::Zh, &t.pipeline, &named);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &t.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Every combination of the `KEY=V1,V2` lists, in the order given.
fn combinations(sets: &[String]) -> anyhow::Result<Vec<Vec<(String, String)>>> {
    let mut all: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for set in sets {
        let Some((key, values)) = set.split_once('=') else {
            bail!("--set {set}: expected KEY=V1,V2,…");
        };
        let values: Vec<&str> = values
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if key.trim().is_empty() || values.is_empty() {
            bail!("--set {set}: expected KEY=V1,V2,…");
        }
        all = all
            .into_iter()
            .flat_map(|s| {
                values.iter().map(move |v| {
                    let mut s = s.clone();
                    s.push((key.trim().to_string(), v.to_string()));
                    s
                })
            })
            .collect();
    }
    Ok(all)
}

/// The file of pipeline `name` in the pipelines directory.
fn pipeline_file(sources: &crate::Sources, name: &str) -> anyhow::Result<PathBuf> {
    let loaded = crate::load(sources)?;
    let dir = loaded
        .pipelines_dir
        .context("tune edits a pipeline file: give --pipelines DIR (e.g. pipelines/)")?;
    for path in yujing::schema::toml_files(&dir)? {
        let text = std::fs::read_to_string(&path)?;
        let table: toml::Table = match toml::from_str(&text) {
            Ok(t) => t,
            Err(_) => continue,
        };
        if table.get("name").and_then(|n| n.as_str()) == Some(name) {
            if table.contains_key("compound") {
                bail!("{name} is a compound pipeline; tune one with [detect]");
            }
            return Ok(path);
        }
    }
    bail!("no pipeline named {name} in {}", dir.display())
}

/// The pipeline file's text with one setting applied.
fn with_setting(text: &str, setting: &[(String, String)]) -> anyhow::Result<String> {
    let mut table: toml::Table = toml::from_str(text)?;
    for (key, value) in setting {
        let path: Vec<&str> = if key.contains('.') {
            key.split('.').collect()
        } else {
            vec!["detect", key.as_str()]
        };
        // A TOML value where the text is one (1e-5, 24, true), else a string.
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, parents) = path.split_last().context("an empty key")?;
        let mut at = &mut table;
        for p in parents {
            at = at
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--set {key}: `{p}` is not a table"))?;
        }
        at.insert(last.to_string(), value);
    }
    Ok(toml::to_string(&table)?)
}

/// Replays the changed pipeline alone; its score against the labels.
fn replay_one(
    t: &Tune,
    dir: &Path,
    rt: std::sync::Arc<tokio::runtime::Runtime>,
) -> anyhow::Result<Score> {
    let sources = crate::Sources {
        config: t.sources.config.clone(),
        pipelines: Some(dir.join("pipelines")),
        schemas: t.sources.schemas.clone(),
    };
    let (config, catalog, compiled) = crate::load(&sources)?.compile(&rt)?;
    let mut options =
        crate::cmd::load::decode_options(&config, crate::KeyPolicy::DevelopmentAllowed)?;
    if let Some(now) = &t.now {
        let at = yujing::core::time::parse_rfc3339(now)
            .with_context(|| format!("--now {now}: expected an RFC 3339 time"))?;
        options.clock = yujing::core::time::Clock::Fixed(at);
    }
    let reads: Vec<String> = compiled
        .watchers()
        .into_iter()
        .flat_map(|w| w.feeds)
        .collect();
    let mut files = Vec::new();
    for i in &t.inputs {
        let Some((feed, path)) = i.split_once('=') else {
            bail!("--input {i}: expected FEED=PATH");
        };
        if reads.iter().any(|r| r == feed) {
            files.push((feed.to_string(), PathBuf::from(path)));
        }
    }
    let summary = replay_to_dir(
        catalog,
        compiled,
        Inputs {
            feeds: &files,
            task_updates: None,
            decode_threads: config.decode_threads,
        },
        options,
        rt,
        Outputs {
            dir: &dir.join("out"),
            progress: false,
            report: Some(Report {
                labels: Some(&t.labels),
                lang: Lang::En,
                plot: &[],
            }),
            save_state: None,
        },
    )?;
    summary
        .scores
        .and_then(|s| s.pipelines.into_iter().find(|p| p.pipeline == t.pipeline))
        .with_context(|| format!("{} did not run", t.pipeline))
}

fn describe(setting: &[(String, String)]) -> String {
    setting
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rows as a text table.
fn table(rows: &[Row]) -> String {
    let head = [
        "setting",
        "labels",
        "detected",
        "missed",
        "at level",
        "median delay (min)",
        "episodes",
        "false alarms",
        "per week",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = &r.score;
            vec![
                describe(&r.setting),
                s.labels.to_string(),
                s.detected.to_string(),
                s.missed.to_string(),
                s.at_level.to_string(),
                s.median_delay_minutes
                    .map_or("-".into(), |d| format!("{d:.0}")),
                s.episodes.to_string(),
                s.false_alarms.to_string(),
                format!("{:.2}", s.false_alarms_per_week),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let line = |c: &[String]| {
        let mut out = String::new();
        for (i, v) in c.iter().enumerate() {
            let pad = width(i) - v.chars().count();
            if i == 0 {
                out.push_str(&format!("{v}{}  ", " ".repeat(pad)));
            } else {
                out.push_str(&format!("{}{v}  ", " ".repeat(pad)));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&head.map(String::from));
    for c in &cells {
        out.push_str(&line(c));
    }
    out
}

//! `yujing demo`: the embedded default. Generates two weeks of the four feeds in
//! memory (with injected incidents, some late and some malformed records), runs
//! the shipped pipelines over them, and prints what the windows show.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use crate::alert::{Alert, Status};
use crate::core::deadletter::{DeadLetter, Reason};
use crate::core::level::Level;
use crate::core::time::{HOUR, Millis, format_local};
use crate::decode::DecodeOptions;
use crate::driver::Driver;
use crate::engine::Engine;
use crate::error::Result;
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::observe::{Observed, Observers};
use crate::sink::{MemorySink, Sink, window_rows};
use crate::source::Reader;
use crate::source::generated::GeneratedReader;
use crate::source::merge::Merge;
use crate::synth::{GenOptions, generate};
use crate::task::{Change, TaskEvent};
use crate::window::WindowResult;

/// How the demo's simulated departments answer a task, chosen by its id (so
/// every run answers alike): most acknowledge within half an hour and finish
/// within a day; some acknowledge only after the deadline (the task has
/// escalated by then) and finish late; some acknowledge and never finish; some
/// never answer.
fn duty_desk(t: &crate::task::Task) -> Vec<crate::task::Command> {
    use crate::core::time::{DAY, MINUTE};
    use crate::task::{Action, Command};
    let pick = t
        .task_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 10;
    let (ack, done) = match pick {
        0..=5 => (
            Some(t.opened_at + 30 * MINUTE),
            Some(t.opened_at + 20 * HOUR),
        ),
        6 | 7 => (Some(t.deadline + 30 * MINUTE), Some(t.opened_at + 4 * DAY)),
        8 => (Some(t.opened_at + 10 * MINUTE), None),
        _ => (None, None),
    };
    let command = |time, action| Command {
        time,
        task_id: t.task_id.clone(),
        action,
        actor: "demo duty desk".into(),
        department: None,
        note: None,
        origin: None,
    };
    ack.map(|a| command(a, Action::Acknowledge))
        .into_iter()
        .chain(done.map(|d| command(d, Action::Done)))
        .collect()
}

/// Lines per chunk of a generated feed.
const CHUNK_LINES: usize = 4096;

/// Per pipeline: windows, rows, and the rows with the largest measure.
#[derive(Default)]
struct PipelineSummary {
    windows: u64,
    rows: u64,
    top: Vec<(f64, String)>,
}

/// What the demo prints.
#[derive(Default)]
struct Summary {
    windows: BTreeMap<String, PipelineSummary>,
    dead: BTreeMap<Reason, u64>,
    /// Alerts and task events, kept as they came.
    kept: MemorySink,
}

impl Summary {
    /// The run's alerts and task events, as replay writes them.
    fn write(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
        let lines = |items: Vec<String>| items.join("\n") + "\n";
        let alerts = self
            .kept
            .alerts
            .iter()
            .filter_map(|a| serde_json::to_string(a).ok())
            .collect();
        let tasks = self
            .kept
            .tasks
            .iter()
            .filter_map(|t| serde_json::to_string(t).ok())
            .collect();
        for (name, text) in [
            ("alerts.jsonl", lines(alerts)),
            ("tasks.jsonl", lines(tasks)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| crate::error::Error::io(&path, e))?;
        }
        Ok(())
    }
}

impl Sink for Summary {
    fn window(&mut self, window: &WindowResult, ordered: bool) -> Result<()> {
        let entry = self.windows.entry(window.pipeline.to_string()).or_default();
        entry.windows += 1;
        for row in window_rows(window, ordered) {
            entry.rows += 1;
            // The first numeric column after the keys is the pipeline's headline measure.
            let Some((name, v)) = row
                .iter()
                .skip(3)
                .find_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
            else {
                continue;
            };
            let keys: Vec<String> = row
                .iter()
                .skip(3)
                .filter_map(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            // Shown in the districts' local time (UTC+8): `03-07 20:00`, or the
            // date alone for windows of a day or more.
            let daily = window.end - window.start >= crate::core::time::DAY;
            let local = |ms| {
                let s = format_local(ms);
                if daily {
                    s[..10].to_string()
                } else {
                    s[5..].to_string()
                }
            };
            let line = format!(
                "{} – {}  {}  {name}={}",
                local(window.start),
                local(window.end),
                keys.join(" "),
                trim_float(v)
            );
            entry.top.push((v, line));
            entry
                .top
                .sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            entry.top.truncate(3);
        }
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        *self.dead.entry(dead.reason).or_default() += 1;
        Ok(())
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        self.kept.alert(alert)
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        self.kept.task(event)
    }
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Runs the demo and returns the report it prints.
pub fn run(
    catalog: Catalog,
    compiled: Compiled,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    gen_options: &GenOptions,
    observers: &Observers,
    out: Option<&std::path::Path>,
) -> Result<String> {
    let mut generated = generate(gen_options);
    let mut descriptions: BTreeMap<String, String> = compiled
        .pipelines
        .iter()
        .map(|p| (p.def.name.clone(), p.def.description.clone()))
        .collect();
    for c in &compiled.compounds {
        descriptions.insert(c.def.name.clone(), c.def.description.clone());
    }
    let engine = Engine::compiled(catalog, compiled, options, runtime)?;
    let readers = std::mem::take(&mut generated.feeds)
        .into_iter()
        .map(|(feed, lines)| {
            Box::new(GeneratedReader::new("demo", &feed, lines, CHUNK_LINES)) as Box<dyn Reader>
        })
        .collect();
    let sink = Observed::new(Summary::default(), observers);
    let started = std::time::Instant::now();
    let mut engine = engine;
    // A simulated duty desk answers the tasks as they open, so the tasks have
    // acknowledgements, completions and misses to show (and to assess).
    engine.set_task_responder(Box::new(duty_desk));
    let mut driver = Driver::new(engine, Merge::new(readers), sink)?;
    driver.run()?;
    let seconds = started.elapsed().as_secs_f64();
    let (engine, sink) = (driver.engine, driver.sink);
    let summary = sink.inner;
    if let Some(dir) = out {
        summary.write(dir)?;
    }

    let mut out = String::new();
    let s = engine.stats;
    let _ = writeln!(
        out,
        "yujing demo: {} days of generated feeds, {} records → {} events, {} windows, {} dead letters ({:.0} events/s)\n",
        gen_options.days,
        s.records,
        s.events,
        s.windows,
        s.dead_letters,
        s.records as f64 / seconds.max(1e-9)
    );
    summary.windows_section(&mut out, &descriptions);
    summary.alerts_section(&mut out);
    summary.dispatches_section(&mut out);
    summary.dead_letters_section(&mut out);
    incidents_section(&mut out, &generated.manifest.incidents);
    let _ = writeln!(
        out,
        "\nEvery window row is in the pipelines' SQL terms; `yujing replay` writes them all as JSON lines."
    );
    Ok(out)
}

/// The report's sections, in the order printed.
impl Summary {
    /// Per pipeline: windows, rows, and the rows with the largest measure.
    fn windows_section(&self, out: &mut String, descriptions: &BTreeMap<String, String>) {
        for (name, p) in &self.windows {
            let _ = writeln!(out, "▸ {name}: {} windows, {} rows", p.windows, p.rows);
            if let Some(d) = descriptions.get(name) {
                let _ = writeln!(out, "  {d}");
            }
            for (_, line) in &p.top {
                let _ = writeln!(out, "    {line}");
            }
        }
    }

    /// Firing alerts: orange and red in full, blue and yellow counted per pipeline.
    fn alerts_section(&self, out: &mut String) {
        let firing: Vec<&Alert> = self
            .kept
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .collect();
        let _ = writeln!(
            out,
            "\nalerts: {} firing, {} resolved",
            firing.len(),
            self.kept.alerts.len() - firing.len()
        );
        // Orange and red in full; blue and yellow counted per pipeline.
        for level in Level::ALL.iter().rev() {
            if *level < Level::Orange {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for a in firing.iter().filter(|a| a.level == *level) {
                    *counts.entry(a.pipeline.as_str()).or_default() += 1;
                }
                for (pipeline, n) in counts {
                    let _ = writeln!(out, "    {:<6} {pipeline:<28} {n} alerts", level.as_str());
                }
                continue;
            }
            for a in firing.iter().filter(|a| a.level == *level) {
                let keys: Vec<String> = a
                    .key
                    .values()
                    .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                    .collect();
                let local = |ms: Millis| format_local(ms)[5..].to_string();
                let _ = writeln!(
                    out,
                    "    {:<6} {:<28} {}  {}  value {}{}  ({})",
                    a.level.as_str(),
                    a.pipeline,
                    local(a.window_start),
                    keys.join(" "),
                    trim_float(a.measure.value),
                    a.measure
                        .expected
                        .map_or(String::new(), |e| format!(", expected {e:.2}")),
                    a.measure.method
                );
            }
        }
    }

    /// Dispatches: the three tasks each opened, with departments and deadlines.
    fn dispatches_section(&self, out: &mut String) {
        // Dispatches: the three tasks each opened, with departments and deadlines.
        let opened: Vec<&TaskEvent> = self
            .kept
            .tasks
            .iter()
            .filter(|e| e.change == Change::Opened)
            .collect();
        let _ = writeln!(
            out,
            "\n三同步 dispatches: {} opened ({} tasks), {} task events",
            opened.len() / 3,
            opened.len(),
            self.kept.tasks.len()
        );
        for e in &opened {
            let t = &e.task;
            let keys: Vec<String> = t
                .key
                .values()
                .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                .collect();
            let local = |ms: crate::core::time::Millis| format_local(ms)[5..].to_string();
            let _ = writeln!(
                out,
                "    {}  {:<6} {:<28} {:<10} → {}  时限 {}  ({})",
                local(t.opened_at),
                t.level.as_str(),
                t.pipeline,
                t.track.zh(),
                t.department,
                local(t.deadline),
                keys.join(" "),
            );
        }
        let mut changes: BTreeMap<String, usize> = BTreeMap::new();
        for e in &self.kept.tasks {
            let name = crate::task::wire_name(e.change);
            *changes.entry(name).or_default() += 1;
        }
        let shown: Vec<String> = changes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "    task events: {}", shown.join(", "));
    }

    fn dead_letters_section(&self, out: &mut String) {
        let _ = writeln!(out, "\ndead letters by reason:");
        for (reason, n) in &self.dead {
            let _ = writeln!(out, "    {:<14} {n}", reason.as_str());
        }
    }
}

/// The incidents the generator injected: what the alerts should have found.
fn incidents_section(out: &mut String, incidents: &[crate::synth::Incident]) {
    let _ = writeln!(
        out,
        "\ninjected incidents (ground truth from the generator):"
    );
    for i in incidents {
        let _ = writeln!(
            out,
            "    {:<20} {}  ({} – {})",
            i.id,
            i.description,
            &i.start[..16],
            &i.end[11..16]
        );
    }
}

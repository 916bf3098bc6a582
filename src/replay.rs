//! `yujing replay`: the pipelines over JSON-lines files. Inputs are read in
//! chunks, always from the input that is furthest behind in event time, so several
//! files interleave roughly in event-time order and the run is deterministic.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::core::deadletter::Origin;
use crate::decode::{DecodeOptions, DecodePool};
use crate::driver::Driver;
use crate::engine::{Engine, EngineStats};
use crate::error::{Error, Result};
use crate::eval::backtest::{Backtest, Recorder};
use crate::eval::labels::{Scores, read_labels, score};
use crate::http::console::Lang;
use crate::http::console::report::{RunFigures, render};
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::JsonlSink;
use crate::source::Arrival;
use crate::source::Reader;
use crate::source::file::FileReader;
use crate::source::merge::Merge;

/// Lines per chunk: large enough for vectorised work, small enough for event-time interleaving.
pub const CHUNK_LINES: usize = 8192;

#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub stats: EngineStats,
    /// Events that missed some of their (hopping) windows but counted in the open ones.
    pub partially_late: u64,
    /// Detector points that stayed silent because their baseline was still too short.
    pub warming_up: u64,
    pub seconds: f64,
    /// The scores against the report's labels, if any.
    pub scores: Option<Scores>,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        write!(
            f,
            "replay: {} events ({} records), {} windows ({} rows), {} alerts ({} points warming up), {} dead letters, {} partially late, {:.0} events/s in {:.2}s",
            s.events,
            s.records,
            s.windows,
            s.window_rows,
            s.alerts,
            self.warming_up,
            s.dead_letters,
            self.partially_late,
            s.records as f64 / self.seconds.max(1e-9),
            self.seconds
        )
    }
}

/// What a replay reads: (feed, file) pairs, and task updates if any.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub feeds: &'a [(String, PathBuf)],
    pub task_updates: Option<&'a Path>,
    /// Threads that read and decode ahead of the window stage; `None`: one per
    /// core the process may use; 1: decode inline. The output is the same.
    pub decode_threads: Option<usize>,
}

/// Where a replay writes, and what besides its JSON lines.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    pub dir: &'a Path,
    /// A progress bar on a terminal.
    pub progress: bool,
    /// Also `report.html` (and `scores.json` with labels).
    pub report: Option<Report<'a>>,
    /// Also the engine's state at the end, as JSON: the daemon warms pipelines
    /// it starts afresh from it (its state dir's `warm.json`).
    pub save_state: Option<&'a Path>,
}

/// The backtest report asked for.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// Known incidents to score against (JSON lines, or the generator's manifest).
    pub labels: Option<&'a Path>,
    pub lang: Lang,
    /// Keys to plot whether or not they alerted: each a list of (column, value).
    pub plot: &'a [Vec<(String, String)>],
}

/// `yujing replay … --out DIR`: runs the pipelines over `inputs` and writes
/// `windows.jsonl`, `alerts.jsonl`, `tasks.jsonl` and `dead_letters.jsonl`,
/// and the report if asked.
pub fn replay_to_dir(
    catalog: Catalog,
    compiled: Compiled,
    inputs: Inputs<'_>,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    outputs: Outputs<'_>,
) -> Result<ReplaySummary> {
    let started = Instant::now();
    // Labels are read first: a bad file stops the run before it starts.
    let labels = match outputs.report.and_then(|r| r.labels) {
        Some(path) => Some(read_labels(path)?),
        None => None,
    };
    let watchers = outputs.report.map(|_| compiled.watchers());
    for (feed, _) in inputs.feeds {
        if catalog.get(feed).is_none() {
            return Err(Error::Other(format!(
                "--input {feed}=…: unknown feed (known: {})",
                catalog.names().join(", ")
            )));
        }
    }
    let mut source = Merge::new(
        inputs
            .feeds
            .iter()
            .map(|(feed, path)| {
                FileReader::open(feed, path, CHUNK_LINES).map(|r| Box::new(r) as Box<dyn Reader>)
            })
            .collect::<Result<Vec<_>>>()?,
    );
    if let Some(path) = inputs.task_updates {
        source = source.with_first(read_task_updates(path)?);
    }
    if outputs.progress && std::io::stderr().is_terminal() {
        source = source.with_progress_bar(progress_bar(inputs.feeds));
    }
    let engine = Engine::compiled(catalog, compiled, options, runtime)?;
    if let Some(pool) = DecodePool::for_cores(inputs.decode_threads) {
        source = source.read_ahead(&pool, |feed| engine.decode_spec(feed));
    }
    let sink = Recorder::new(JsonlSink::create(outputs.dir)?, watchers);
    let mut driver = Driver::new(engine, source, sink)?;
    driver.run()?;
    let Driver {
        mut engine, sink, ..
    } = driver;
    if let Some(path) = outputs.save_state {
        let text =
            serde_json::to_string(&engine.state()).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    let (mut jsonl, run) = sink.finish();
    jsonl.flush()?;
    let engine = &engine;
    let mut summary = ReplaySummary {
        stats: engine.stats,
        partially_late: engine
            .operator_stats()
            .iter()
            .map(|(_, s)| s.partially_late)
            .sum(),
        warming_up: engine.warming_up(),
        seconds: started.elapsed().as_secs_f64(),
        scores: None,
    };
    if let (Some(report), Some(mut run)) = (outputs.report, run) {
        run.first = summary.stats.first_event;
        run.asked = report.plot.to_vec();
        run.last = summary.stats.last_event;
        let scores = labels.map(|l| score(&run.alerts, &run.pipelines, &l, run.span()));
        write_report(outputs.dir, report.lang, &run, &summary, scores.as_ref())?;
        summary.scores = scores;
    }
    Ok(summary)
}

/// `report.html` of the run, and `scores.json` when there are labels.
fn write_report(
    dir: &Path,
    lang: Lang,
    run: &Backtest,
    summary: &ReplaySummary,
    scores: Option<&Scores>,
) -> Result<()> {
    if let Some(scores) = scores {
        let path = dir.join("scores.json");
        let text = serde_json::to_string_pretty(scores).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(path, e))?;
    }
    let figures = RunFigures {
        events: summary.stats.events,
        records: summary.stats.records,
        dead_letters: summary.stats.dead_letters,
        seconds: summary.seconds,
    };
    let path = dir.join("report.html");
    std::fs::write(&path, render(lang, run, &figures, scores)).map_err(|e| Error::io(path, e))
}

fn progress_bar(inputs: &[(String, PathBuf)]) -> indicatif::ProgressBar {
    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = indicatif::ProgressBar::new(total_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The task updates of a file (JSON lines), for the driver to parse and queue
/// before any event.
fn read_task_updates(path: &Path) -> Result<Vec<Arrival>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Arrival::TaskUpdate {
            text: line.to_string(),
            origin: Origin::File {
                file: path.display().to_string(),
                line: i as u64 + 1,
            },
        })
        .collect())
}

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

/// `yujing replay … --out DIR`: runs the pipelines over `inputs` and writes
/// `windows.jsonl`, `alerts.jsonl`, `tasks.jsonl` and `dead_letters.jsonl`.
pub fn replay_to_dir(
    catalog: Catalog,
    compiled: Compiled,
    inputs: Inputs<'_>,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    out: &Path,
    progress: bool,
) -> Result<ReplaySummary> {
    let started = Instant::now();
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
    if progress && std::io::stderr().is_terminal() {
        source = source.with_progress_bar(progress_bar(inputs.feeds));
    }
    let engine = Engine::compiled(catalog, compiled, options, runtime)?;
    if let Some(pool) = DecodePool::for_cores(inputs.decode_threads) {
        source = source.read_ahead(&pool, |feed| engine.decode_spec(feed));
    }
    let mut driver = Driver::new(engine, source, JsonlSink::create(out)?)?;
    driver.run()?;
    driver.sink.flush()?;
    let engine = &driver.engine;
    Ok(ReplaySummary {
        stats: engine.stats,
        partially_late: engine
            .operator_stats()
            .iter()
            .map(|(_, s)| s.partially_late)
            .sum(),
        warming_up: engine.warming_up(),
        seconds: started.elapsed().as_secs_f64(),
    })
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

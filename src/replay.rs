//! `yujing replay`: the pipelines over JSON-lines files. Inputs are read in
//! chunks, always from the input that is furthest behind in event time, so several
//! files interleave roughly in event-time order and the run is deterministic.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::decode::DecodeOptions;
use crate::engine::{Engine, EngineStats};
use crate::error::{Error, Result};
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::{JsonlSink, Sink};
use crate::source::file::FileSource;
use crate::time::Millis;

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
}

/// Runs `pipelines` over `inputs` into `sink`.
pub fn replay_into(
    catalog: Catalog,
    compiled: Compiled,
    inputs: Inputs<'_>,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    sink: &mut dyn Sink,
    progress: bool,
) -> Result<ReplaySummary> {
    let started = Instant::now();
    let (inputs, task_updates) = (inputs.feeds, inputs.task_updates);
    for (feed, _) in inputs {
        if catalog.get(feed).is_none() {
            return Err(Error::Other(format!(
                "--input {feed}=…: unknown feed (known: {})",
                catalog.names().join(", ")
            )));
        }
    }
    let tasks = compiled.task_manager();
    let limits = options.command_limits();
    let mut engine = Engine::new(catalog, compiled.pipelines, options, runtime)?
        .with_compounds(compiled.compounds)
        .with_tasks(tasks);
    if let Some(path) = task_updates {
        read_task_updates(&mut engine, path, limits, sink)?;
    }
    // Feeds no input provides do not hold any pipeline's watermark back.
    for feed in engine.feeds_read() {
        if !inputs.iter().any(|(f, _)| *f == feed) {
            engine.finish_feed(&feed, sink)?;
        }
    }
    let mut sources = inputs
        .iter()
        .map(|(feed, path)| FileSource::open(feed, path).map(|s| (s, Millis::MIN, false)))
        .collect::<Result<Vec<_>>>()?;
    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = (progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total_bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    loop {
        // The input furthest behind in event time goes next; ties go to the first given.
        let next = sources
            .iter()
            .enumerate()
            .filter(|(_, (_, _, done))| !done)
            .min_by_key(|(i, (_, progress, _))| (*progress, *i))
            .map(|(i, _)| i);
        let Some(i) = next else { break };
        let (source, progress, done) = &mut sources[i];
        match source.next_chunk(CHUNK_LINES)? {
            Some(chunk) => {
                if let Some(t) = engine.process(&chunk, sink)? {
                    *progress = (*progress).max(t);
                }
            }
            None => {
                *done = true;
                let feed = source.feed().clone();
                let others_open = sources
                    .iter()
                    .any(|(s, _, d)| !*d && s.feed().as_ref() == feed.as_ref());
                if !others_open {
                    engine.finish_feed(&feed, sink)?;
                }
            }
        }
        if let Some(bar) = &bar {
            bar.set_position(sources.iter().map(|(s, _, _)| s.bytes_read()).sum());
        }
    }
    engine.finish(sink)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
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

/// Reads task updates (JSON lines); a line that is not a valid command goes to the
/// dead letters with its reason, the others wait in the engine for their time.
fn read_task_updates(
    engine: &mut Engine,
    path: &Path,
    limits: crate::task::command::Limits,
    sink: &mut dyn Sink,
) -> Result<()> {
    use crate::deadletter::{DeadLetter, Origin};
    use crate::task::Command;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = Origin::File {
            file: path.display().to_string(),
            line: i as u64 + 1,
        };
        match Command::parse_within(line, limits) {
            Ok(mut c) => {
                c.origin = Some(origin);
                engine.task_command(c);
            }
            Err((reason, field, detail)) => {
                engine.stats.dead_letters += 1;
                sink.dead_letter(&DeadLetter {
                    feed: crate::task::command::INPUT.into(),
                    reason,
                    field,
                    detail,
                    raw: crate::decode::capped_raw(line),
                    source: origin,
                    event_id: None,
                    pipeline: None,
                })?;
            }
        }
    }
    Ok(())
}

/// `yujing replay … --out DIR`: writes `windows.jsonl`, `alerts.jsonl`,
/// `tasks.jsonl` and `dead_letters.jsonl`.
pub fn replay_to_dir(
    catalog: Catalog,
    compiled: Compiled,
    inputs: Inputs<'_>,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    out: &Path,
    progress: bool,
) -> Result<ReplaySummary> {
    let mut sink = JsonlSink::create(out)?;
    let summary = replay_into(
        catalog, compiled, inputs, options, runtime, &mut sink, progress,
    )?;
    sink.flush()?;
    Ok(summary)
}

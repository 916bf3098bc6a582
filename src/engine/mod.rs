//! The engine drives the stages for a set of pipelines: each chunk of raw records
//! is decoded once per feed, its dead letters go to the sink, and its rows go to
//! every pipeline that reads the feed; closed windows go to the sink. Sources and
//! sinks differ between replay, demo and the daemon; this code path does not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::core::deadletter::{DeadLetter, Origin, Reason};
use crate::core::time::Millis;
use crate::decode::{DecodeOptions, DecodeSpec, Decoded, Decoder, columns_to_build};
use crate::detect::compound::{CompoundDef, CompoundDetector};
use crate::detect::runner::PipelineDetector;
use crate::error::{Error, Result};
use crate::pipeline::{Compiled, Pipeline};
use crate::query::tables::feed_table_schema;
use crate::schema::Catalog;
use crate::sink::Sink;
use crate::source::Chunk;
use crate::task::command::INPUT;
use crate::task::{TaskClock, TaskManager};
use crate::window::{OperatorStats, WindowOperator, WindowResult};
use datafusion::error::DataFusionError;

mod redeploy;
mod running;
mod state;

pub use redeploy::Redeployed;

use running::RunningPipeline;
pub use state::EngineState;

/// Totals over a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineStats {
    /// Raw records read.
    pub records: u64,
    /// Records that decoded into rows.
    pub events: u64,
    /// Dead letters of any reason (a late event counts once per pipeline it was late for).
    pub dead_letters: u64,
    pub windows: u64,
    pub window_rows: u64,
    pub alerts: u64,
    /// The earliest and latest event time of the events decoded.
    pub first_event: Option<Millis>,
    pub last_event: Option<Millis>,
}

pub struct Engine {
    catalog: Catalog,
    decoders: HashMap<String, Decoder>,
    pipelines: Vec<RunningPipeline>,
    /// Compound pipelines, fed every alert the pipelines raise.
    compounds: Vec<CompoundDetector>,
    /// Response tasks opened by alerts, when a routing table is given.
    tasks: Option<TaskManager>,
    /// The latest event time seen in any input.
    max_time: Option<Millis>,
    /// What records and task updates may be: sizes, and how far ahead of the
    /// processing clock.
    options: DecodeOptions,
    pub stats: EngineStats,
    /// What a pipeline added by a redeploy is built with.
    runtime: Arc<tokio::runtime::Runtime>,
    table_schemas: HashMap<String, arrow::datatypes::SchemaRef>,
    /// Inputs with watermarks of their own (feed, input), and those ended or
    /// idle now: a pipeline added by a redeploy starts with the same.
    inputs: Vec<(String, String)>,
    ended: std::collections::BTreeSet<String>,
}

impl Engine {
    pub fn new(
        catalog: Catalog,
        pipelines: Vec<Pipeline>,
        options: DecodeOptions,
        runtime: Arc<tokio::runtime::Runtime>,
    ) -> Result<Self> {
        let decoders = decoders(&catalog, &pipelines, &options);
        let table_schemas: HashMap<_, _> = catalog
            .feeds
            .iter()
            .map(|(name, s)| (name.clone(), feed_table_schema(s)))
            .collect();
        let pipelines = pipelines
            .into_iter()
            .map(|p| running(p, &runtime, &table_schemas))
            .collect();
        Ok(Engine {
            catalog,
            decoders,
            pipelines,
            compounds: Vec::new(),
            tasks: None,
            max_time: None,
            options,
            stats: EngineStats::default(),
            runtime,
            table_schemas,
            inputs: Vec::new(),
            ended: Default::default(),
        })
    }

    /// The engine of a compiled set of pipelines: its pipelines, its compound
    /// pipelines and, over its routing table, a task manager.
    pub fn compiled(
        catalog: Catalog,
        compiled: Compiled,
        options: DecodeOptions,
        runtime: Arc<tokio::runtime::Runtime>,
    ) -> Result<Self> {
        Self::compiled_on(catalog, compiled, options, runtime, TaskClock::EventTime)
    }

    /// [`Engine::compiled`], its tasks on `clock`: the daemon's run on the
    /// processing clock.
    pub fn compiled_on(
        catalog: Catalog,
        compiled: Compiled,
        options: DecodeOptions,
        runtime: Arc<tokio::runtime::Runtime>,
        clock: TaskClock,
    ) -> Result<Self> {
        let tasks =
            TaskManager::new(compiled.routing.clone(), compiled.task_levels()).with_clock(clock);
        Ok(Engine::new(catalog, compiled.pipelines, options, runtime)?
            .with_compounds(compiled.compounds)
            .with_tasks(tasks))
    }

    /// Opens response tasks for alerts, as the task manager's routing says.
    pub fn with_tasks(mut self, tasks: TaskManager) -> Self {
        self.tasks = Some(tasks);
        self
    }

    /// Lets a simulated department answer every task as it opens (the demo).
    pub fn set_task_responder(&mut self, responder: crate::task::Responder) {
        if let Some(t) = self.tasks.as_mut() {
            t.set_responder(responder);
        }
    }

    /// What a task update may be, judged against the processing clock now.
    pub fn command_limits(&self) -> crate::task::command::Limits {
        self.options.command_limits()
    }

    /// Queues a task update; it applies when the clock reaches its time.
    pub fn task_command(&mut self, c: crate::task::Command) {
        if let Some(t) = self.tasks.as_mut() {
            t.command(c);
        }
    }

    /// Whether the task stage holds task `id`.
    pub fn holds_task(&self, id: &str) -> bool {
        self.tasks.as_ref().is_some_and(|t| t.holds(id))
    }

    /// The task stage's clock: the processing clock when it runs on one, else
    /// the lowest watermark of the pipelines, so every alert of a window that
    /// ended before it has been raised.
    fn task_clock(&self) -> Option<Millis> {
        if let Some(now) = self.tasks.as_ref().and_then(TaskManager::processing_now) {
            return Some(now);
        }
        let lowest = self
            .pipelines
            .iter()
            .map(|p| p.operator.watermark())
            .min()?;
        // Inputs that ended push watermarks to the end of time; the clock stops at
        // the data.
        Some(lowest.min(self.max_time?))
    }

    /// Advances the task clock to `now` and writes what happened.
    fn advance_tasks(&mut self, now: Option<Millis>, sink: &mut dyn Sink) -> Result<()> {
        let (Some(tasks), Some(now)) = (self.tasks.as_mut(), now) else {
            return Ok(());
        };
        let (events, rejected) = tasks.advance(now);
        for e in &events {
            sink.task(e)?;
        }
        for (c, why) in rejected {
            self.stats.dead_letters += 1;
            // Updates come with their origin; one without (never so far) is shown as such.
            let origin = c.origin.clone().unwrap_or(Origin::Generated {
                generator: "task_updates".into(),
                seq: 0,
            });
            let raw =
                crate::decode::redacted_command(&serde_json::to_string(&c).unwrap_or_default());
            sink.dead_letter(
                &DeadLetter::new(INPUT, Reason::Rejected, why.to_string(), raw, origin)
                    .field(Some("task_id".into())),
            )?;
        }
        Ok(())
    }

    /// Adds an input of `feed` with a watermark of its own (a Kafka partition) to
    /// every pipeline that reads the feed.
    pub fn add_input(&mut self, feed: &str, input: &str) {
        self.inputs.push((feed.to_string(), input.to_string()));
        self.ended.remove(input);
        for p in &mut self.pipelines {
            if p.operator.reads(feed) {
                p.operator.add_input(input);
            }
        }
    }

    /// The inputs every pipeline reading them has stepped aside (idle when
    /// the state was taken): a restarted source starts them idle, so a
    /// partition without data does not hold the watermark back again.
    pub fn finished_inputs(&self) -> std::collections::BTreeSet<String> {
        let mut finished = std::collections::BTreeSet::new();
        for p in &self.pipelines {
            finished.extend(p.operator.finished_inputs().map(str::to_string));
        }
        finished.retain(|i| {
            (self.pipelines.iter())
                .all(|p| p.operator.finished_inputs().any(|f| f == i) || !p.operator.has_input(i))
        });
        finished
    }

    /// The task stage's current time, for updates that arrive without one (HTTP).
    pub fn task_time(&self) -> Option<Millis> {
        let tasks = self.tasks.as_ref();
        tasks
            .and_then(TaskManager::processing_now)
            .or(tasks.and_then(|t| t.now()))
            .or(self.max_time)
    }

    /// Applies what is due on the task clock now (updates that arrived while no
    /// events did).
    pub fn tick(&mut self, sink: &mut dyn Sink) -> Result<()> {
        self.advance_tasks(self.task_clock(), sink)
    }

    /// Adds compound pipelines, which read the alerts of the others.
    pub fn with_compounds(mut self, defs: Vec<CompoundDef>) -> Self {
        self.compounds
            .extend(defs.into_iter().map(CompoundDetector::new));
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn operator_stats(&self) -> Vec<(Arc<str>, OperatorStats)> {
        self.pipelines
            .iter()
            .map(|p| (p.name.clone(), p.operator.stats))
            .collect()
    }

    /// Window bins held open across all pipelines: what state grows with.
    pub fn open_bins(&self) -> usize {
        self.pipelines.iter().map(|p| p.operator.open_bins()).sum()
    }

    /// Detector points judged while their baseline was still too short, over all pipelines.
    pub fn warming_up(&self) -> u64 {
        self.pipelines
            .iter()
            .filter_map(|p| p.detector.as_ref())
            .map(|d| d.warming_up)
            .sum()
    }

    /// Feeds some pipeline reads.
    pub fn feeds_read(&self) -> std::collections::BTreeSet<String> {
        self.pipelines
            .iter()
            .flat_map(|p| p.pipeline.query.feeds.iter().cloned())
            .collect()
    }

    /// What a worker thread needs to decode `feed` as this engine would.
    pub fn decode_spec(&self, feed: &str) -> Option<DecodeSpec> {
        self.decoders.get(feed).map(Decoder::spec)
    }

    fn unknown_feed(&self, feed: &str) -> Error {
        Error::Other(format!(
            "unknown feed `{feed}` (known: {})",
            self.catalog.names().join(", ")
        ))
    }

    /// Decodes a chunk and runs it through every pipeline that reads its feed.
    /// Returns the largest event time among the chunk's rows.
    pub fn process(&mut self, chunk: &Chunk, sink: &mut dyn Sink) -> Result<Option<Millis>> {
        let feed = chunk.feed.as_ref();
        let decoded = match self.decoders.get_mut(feed) {
            Some(decoder) => decoder.decode(chunk),
            None => return Err(self.unknown_feed(feed)),
        };
        self.process_decoded(chunk, &decoded, sink)
    }

    /// Runs a chunk decoded elsewhere (by a [`DecodeSpec`] of this engine)
    /// through every pipeline that reads its feed.
    pub fn process_decoded(
        &mut self,
        chunk: &Chunk,
        decoded: &Decoded,
        sink: &mut dyn Sink,
    ) -> Result<Option<Millis>> {
        let feed = chunk.feed.as_ref();
        let time_col = match self.catalog.get(feed) {
            Some(schema) => schema.event_time_index,
            None => return Err(self.unknown_feed(feed)),
        };
        self.stats.records += chunk.len() as u64;
        self.stats.events += decoded.batch.num_rows() as u64;
        sink.ingested(feed, decoded.batch.num_rows() as u64)?;
        for d in &decoded.dead {
            tracing::debug!(feed, reason = d.reason.as_str(), "dead letter");
            sink.dead_letter(d)?;
            self.stats.dead_letters += 1;
        }
        if decoded.batch.num_rows() == 0 {
            return Ok(None);
        }
        let times = decoded
            .batch
            .column(time_col)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMillisecondArray>()
            .ok_or_else(|| Error::Other("event_time is not a timestamp".into()))?;
        let max_time = arrow::compute::max(times);
        let min_time = arrow::compute::min(times);
        self.stats.first_event = match (self.stats.first_event, min_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.stats.last_event = self.stats.last_event.max(max_time);
        let input = chunk.input();
        self.ended.remove(&input);
        for p in &mut self.pipelines {
            if !p.operator.reads(feed) {
                continue;
            }
            let _span = tracing::debug_span!("pipeline", pipeline = %p.name).entered();
            let started = Instant::now();
            let wm_before = p.operator.watermark();
            let emitted = p
                .operator
                .process_input(&input, feed, &decoded.batch, time_col)
                .map_err(|source| Error::Query {
                    pipeline: p.name.to_string(),
                    source,
                })?;
            for dead in p.refused(&emitted, decoded, chunk, wm_before) {
                sink.dead_letter(&dead)?;
                self.stats.dead_letters += 1;
            }
            p.emit(
                &mut self.stats,
                sink,
                &emitted.windows,
                &mut self.compounds,
                &mut self.tasks,
                started,
            )?;
        }
        self.max_time = self.max_time.max(max_time);
        self.advance_tasks(self.task_clock(), sink)?;
        Ok(max_time)
    }

    /// Emits, pipeline by pipeline, the windows `close` closes.
    fn close_windows(
        &mut self,
        sink: &mut dyn Sink,
        close: impl Fn(&mut WindowOperator) -> std::result::Result<Vec<WindowResult>, DataFusionError>,
    ) -> Result<()> {
        for p in &mut self.pipelines {
            let _span = tracing::debug_span!("pipeline", pipeline = %p.name).entered();
            let started = Instant::now();
            let windows = close(&mut p.operator).map_err(|source| Error::Query {
                pipeline: p.name.to_string(),
                source,
            })?;
            p.emit(
                &mut self.stats,
                sink,
                &windows,
                &mut self.compounds,
                &mut self.tasks,
                started,
            )?;
        }
        Ok(())
    }

    /// An input ended (end of file) or went idle: it stops holding watermarks back.
    pub fn finish_feed(&mut self, feed: &str, sink: &mut dyn Sink) -> Result<()> {
        self.ended.insert(feed.to_string());
        self.close_windows(sink, |op| op.finish_input(feed))?;
        self.advance_tasks(self.task_clock(), sink)
    }

    /// End of all input: every open window closes.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<()> {
        self.close_windows(sink, WindowOperator::finish)?;
        // The clock ends at the last event, or at the last queued update if later,
        // so every update is applied.
        let last = self.tasks.as_ref().and_then(|t| t.last_pending());
        let processing = self.tasks.as_ref().and_then(TaskManager::processing_now);
        self.advance_tasks(processing.or(self.max_time.max(last)), sink)
    }
}

/// A decoder per feed, building the columns `pipelines` read.
fn decoders(
    catalog: &Catalog,
    pipelines: &[Pipeline],
    options: &DecodeOptions,
) -> HashMap<String, Decoder> {
    catalog
        .feeds
        .iter()
        .map(|(name, schema)| {
            let build = columns_to_build(
                schema,
                pipelines
                    .iter()
                    .filter_map(|p| p.query.columns.get(name.as_str())),
            );
            let decoder = Decoder::new(schema.clone(), options.clone()).building(build);
            (name.clone(), decoder)
        })
        .collect()
}

/// A compiled pipeline made ready to run: its window operator and detector.
fn running(
    p: Pipeline,
    runtime: &Arc<tokio::runtime::Runtime>,
    table_schemas: &HashMap<String, arrow::datatypes::SchemaRef>,
) -> RunningPipeline {
    let name: Arc<str> = p.def.name.as_str().into();
    let operator = WindowOperator::new(
        name.clone(),
        p.query.clone(),
        runtime.clone(),
        p.def.lateness,
        p.def.utc_offset,
        table_schemas.clone(),
    )
    .with_max_keys(p.def.max_keys);
    let slide = p.query.window.slide();
    let detector = PipelineDetector::new(
        &p.def.name,
        p.query.feeds.iter().cloned().collect(),
        p.def.sections.detect.clone(),
        p.rules.clone(),
        &p.query.output_schema,
        slide,
        p.def.utc_offset,
    )
    .map(|d| d.with_sensitive(p.sensitive.clone()));
    RunningPipeline {
        pipeline: p,
        name,
        operator,
        detector,
    }
}

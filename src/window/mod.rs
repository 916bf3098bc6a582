//! Event time and windows. The [`WindowOperator`] of a pipeline keeps a
//! watermark per input (largest event time seen minus the pipeline's lateness;
//! the pipeline's watermark is the minimum over inputs that are still active),
//! assigns each event to its window bin, streams it into that bin's partial
//! aggregate, and when the watermark reaches a window's end runs the final plan
//! over the partial states of the window's bins.
//!
//! Bins are `slide` wide (for a tumbling window, the window itself). A hopping
//! window is the union of `width / slide` consecutive bins, so an event is
//! aggregated once however many windows it falls in. State is one partial
//! aggregate per key per open bin: it grows with open windows × keys, not with
//! events.
//!
//! Lateness is judged event by event, against the watermark as it stood just
//! before the event, so results do not depend on how input is cut into batches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::DataFusionError;

mod bins;
mod grid;
pub mod session;
mod snapshot;

use grid::Grid;
pub use snapshot::OperatorState;

use crate::core::time::Millis;
use crate::query::{CompiledQuery, RunningStage, WindowSpec};

/// Fixed, so which records a full bin refuses does not change between runs.
const KEY_HASH: RandomState = RandomState::with_seed(0x7975_6a69_6e67);

/// The rows one closed window produced.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub pipeline: Arc<str>,
    pub start: Millis,
    pub end: Millis,
    pub batches: Vec<RecordBatch>,
    /// Session windows: each row's own `window_start` and `window_end` columns are its
    /// bounds (`start` and `end` then span them all).
    pub per_row: bool,
}

impl WindowResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A window the pipeline's SQL failed on at run time (e.g. a division by zero):
/// it yields no rows and the pipeline goes on with the next.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFailure {
    pub start: Millis,
    pub end: Millis,
    pub error: String,
}

/// What processing one batch produced.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Rows of the input batch that were late for every window they belong to.
    pub late: Vec<usize>,
    /// Rows that would have opened a key past `max_keys` in their bin.
    pub too_many_keys: Vec<usize>,
    pub windows: Vec<WindowResult>,
}

/// Counters an operator keeps for metrics and summaries.
#[derive(Debug, Default, Clone, Copy)]
pub struct OperatorStats {
    pub accepted: u64,
    pub late: u64,
    /// Rows refused because their bin already held `max_keys` keys.
    pub too_many_keys: u64,
    /// Events that missed some of their (hopping) windows but counted in the open ones.
    pub partially_late: u64,
    pub windows_closed: u64,
    pub rows_out: u64,
}

#[derive(Debug, Clone, Copy)]
struct InputClock {
    max_time: Option<Millis>,
    finished: bool,
}

#[derive(Default)]
struct StageBin {
    running: Option<RunningStage>,
    /// The SQL failed on this bin's rows at run time: the windows holding it fail.
    failed: Option<String>,
    /// Partial states of segments already finished (a bin is finished when one of
    /// its windows closes; rows arriving after that start a new segment).
    states: Vec<RecordBatch>,
    /// `states` as the last checkpoint wrote them, while they have not changed.
    encoded: Option<snapshot::ArrowBytes>,
}

pub struct WindowOperator {
    /// Windows that failed since the engine last took them.
    failures: Vec<WindowFailure>,
    /// Most keys one bin may hold, and the hashes of the keys each open bin holds.
    max_keys: usize,
    bin_keys: BTreeMap<Millis, HashSet<u64>>,
    /// Per feed, the batch columns that are GROUP BY keys of a stage reading it.
    key_columns: HashMap<String, Vec<usize>>,
    pipeline: Arc<str>,
    query: Arc<CompiledQuery>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Where bins and windows fall.
    grid: Grid,
    lateness: Millis,
    inputs: BTreeMap<String, InputClock>,
    table_schemas: HashMap<String, SchemaRef>,
    bins: BTreeMap<Millis, Vec<StageBin>>,
    /// Every window ending at or before this has been closed.
    closed_upto: Millis,
    /// The end of the earliest window that holds data and is still open.
    next_end: Millis,
    /// Session windows: the gap, and the partial rows of sessions still open.
    session_gap: Option<Millis>,
    open_sessions: Vec<RecordBatch>,
    pub stats: OperatorStats,
}

impl WindowOperator {
    /// `utc_offset` is the pipeline's timezone: days, months and years start at
    /// its midnight; `table_schemas` are the feed tables' schemas (fields plus
    /// window columns).
    pub fn new(
        pipeline: Arc<str>,
        query: Arc<CompiledQuery>,
        runtime: Arc<tokio::runtime::Runtime>,
        lateness: Millis,
        utc_offset: Millis,
        table_schemas: HashMap<String, SchemaRef>,
    ) -> Self {
        let session_gap = match query.window {
            WindowSpec::Session { gap } => Some(gap),
            _ => None,
        };
        let grid = Grid::new(query.window, utc_offset);
        let inputs = query
            .feeds
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    InputClock {
                        max_time: None,
                        finished: false,
                    },
                )
            })
            .collect();
        let key_columns = query
            .feeds
            .iter()
            .map(|feed| {
                let mut columns: Vec<usize> = query
                    .stages
                    .iter()
                    .filter(|st| st.feeds.contains(feed))
                    .flat_map(|st| st.keys.iter())
                    // The stages' keys exclude the window columns already.
                    .filter_map(|k| table_schemas.get(feed)?.index_of(k).ok())
                    .collect();
                columns.sort_unstable();
                columns.dedup();
                (feed.clone(), columns)
            })
            .collect();
        WindowOperator {
            failures: Vec::new(),
            max_keys: usize::MAX,
            bin_keys: BTreeMap::new(),
            key_columns,
            pipeline,
            query,
            runtime,
            grid,
            lateness,
            inputs,
            table_schemas,
            bins: BTreeMap::new(),
            closed_upto: Millis::MIN,
            next_end: Millis::MAX,
            session_gap,
            open_sessions: Vec::new(),
            stats: OperatorStats::default(),
        }
    }

    /// Bounds the keys one window bin may hold (see [`Emitted::too_many_keys`]).
    /// Keys are counted on the GROUP BY columns that are the feed's own columns.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    pub fn reads(&self, feed: &str) -> bool {
        self.query.feeds.contains(feed)
    }

    fn input_watermark(&self, clock: &InputClock) -> Millis {
        match (clock.finished, clock.max_time) {
            (true, _) => Millis::MAX,
            (false, None) => Millis::MIN,
            (false, Some(t)) => t.saturating_sub(self.lateness),
        }
    }

    pub fn has_input(&self, input: &str) -> bool {
        self.inputs.contains_key(input)
    }

    /// The inputs that stepped aside (ended or idle).
    pub fn finished_inputs(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .filter(|(_, c)| c.finished)
            .map(|(i, _)| i.as_str())
    }

    /// The pipeline's watermark: the minimum over its active inputs.
    pub fn watermark(&self) -> Millis {
        self.inputs
            .values()
            .map(|c| self.input_watermark(c))
            .min()
            .unwrap_or(Millis::MAX)
    }

    /// Open bins (for memory accounting and tests).
    pub fn open_bins(&self) -> usize {
        self.bins.len()
    }

    /// Processes a batch of `feed` whose event times are column `time_col`.
    pub fn process(
        &mut self,
        feed: &str,
        batch: &RecordBatch,
        time_col: usize,
    ) -> Result<Emitted, DataFusionError> {
        self.process_input(feed, feed, batch, time_col)
    }

    /// Processes a batch of `feed` that came from `input` — an input with a
    /// watermark of its own, e.g. one Kafka partition (`feed/partition`). An input
    /// seen for the first time joins the watermark; a finished (idle) input that
    /// gets data again holds it back again.
    pub fn process_input(
        &mut self,
        input: &str,
        feed: &str,
        batch: &RecordBatch,
        time_col: usize,
    ) -> Result<Emitted, DataFusionError> {
        let mut out = Emitted::default();
        if !self.reads(feed) {
            return Ok(out);
        }
        let clock = self
            .inputs
            .entry(input.to_string())
            .and_modify(|c| c.finished = false)
            .or_insert(InputClock {
                max_time: None,
                finished: false,
            })
            .to_owned();
        let others = self
            .inputs
            .iter()
            .filter(|(f, _)| f.as_str() != input)
            .map(|(_, c)| self.input_watermark(c))
            .min()
            .unwrap_or(Millis::MAX);
        let times = batch
            .column(time_col)
            .as_primitive::<TimestampMillisecondType>()
            .values();
        let mut max_time = clock.max_time;
        let hashes = self.key_hashes(feed, batch)?;
        // Rows to route, with the bin each falls in.
        let mut accepted: Vec<(Millis, u32)> = Vec::with_capacity(batch.num_rows());
        for (i, &t) in times.iter().enumerate() {
            let own = max_time.map_or(Millis::MIN, |m| m.saturating_sub(self.lateness));
            let wm = own.min(others);
            if self.next_end != Millis::MAX && wm >= self.next_end {
                // A window closes before this event: route what came before it first.
                self.route(feed, batch, time_col, &accepted)?;
                accepted.clear();
                self.close_until(wm, &mut out.windows)?;
            }
            let bin = self.grid.bin_start(t);
            // A session event is late when even a session of its own would have closed.
            let last_end = match self.session_gap {
                Some(gap) => t.saturating_add(gap),
                None => self.grid.last_end(bin),
            };
            if last_end <= wm {
                out.late.push(i);
                self.stats.late += 1;
            } else if let Some(h) = &hashes
                && !self.admit_key(bin, h[i])
            {
                out.too_many_keys.push(i);
            } else {
                let bin_end = self.grid.bin_end(bin);
                if self.session_gap.is_none() && bin_end <= wm {
                    self.stats.partially_late += 1;
                }
                accepted.push((bin, i as u32));
                self.stats.accepted += 1;
                let first_open_end = match bin_end > self.closed_upto {
                    true => bin_end,
                    false => self.grid.next_end(self.closed_upto),
                };
                self.next_end = self.next_end.min(first_open_end);
            }
            max_time = Some(max_time.map_or(t, |m| m.max(t)));
        }
        self.route(feed, batch, time_col, &accepted)?;
        if let Some(c) = self.inputs.get_mut(input) {
            c.max_time = max_time;
        }
        let wm = self.watermark();
        self.close_until(wm, &mut out.windows)?;
        Ok(out)
    }

    /// Per row of `batch`, a hash of its key columns; `None` when keys are not
    /// bounded or the feed's keys are not its own columns.
    fn key_hashes(
        &self,
        feed: &str,
        batch: &RecordBatch,
    ) -> Result<Option<Vec<u64>>, DataFusionError> {
        if self.max_keys == usize::MAX {
            return Ok(None);
        }
        let Some(columns) = self.key_columns.get(feed).filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let arrays: Vec<&ArrayRef> = columns
            .iter()
            .filter(|c| **c < batch.num_columns())
            .map(|c| batch.column(*c))
            .collect();
        let mut hashes = vec![0u64; batch.num_rows()];
        create_hashes(arrays, &KEY_HASH, &mut hashes)?;
        Ok(Some(hashes))
    }

    /// Whether a row with key hash `h` may go into `bin`: its key is already
    /// there, or there is room for one more.
    fn admit_key(&mut self, bin: Millis, h: u64) -> bool {
        let keys = self.bin_keys.entry(bin).or_default();
        if keys.contains(&h) {
            return true;
        }
        if keys.len() >= self.max_keys {
            self.stats.too_many_keys += 1;
            return false;
        }
        keys.insert(h);
        true
    }

    /// Windows that failed at run time since the last call.
    pub fn take_failures(&mut self) -> Vec<WindowFailure> {
        std::mem::take(&mut self.failures)
    }

    /// Adds an input (e.g. an assigned Kafka partition), or resumes an idle one:
    /// it holds the watermark back from now on, before its next event arrives.
    pub fn add_input(&mut self, input: &str) {
        self.inputs
            .entry(input.to_string())
            .and_modify(|c| c.finished = false)
            .or_insert(InputClock {
                max_time: None,
                finished: false,
            });
    }

    /// Marks an input as finished (end of file, or idle): it no longer holds the watermark back.
    pub fn finish_input(&mut self, feed: &str) -> Result<Vec<WindowResult>, DataFusionError> {
        if let Some(c) = self.inputs.get_mut(feed) {
            c.finished = true;
        }
        let mut windows = Vec::new();
        let wm = self.watermark();
        self.close_until(wm, &mut windows)?;
        Ok(windows)
    }

    /// End of all input: every open window closes (see [`Self::close_until`]
    /// for cumulating windows).
    pub fn finish(&mut self) -> Result<Vec<WindowResult>, DataFusionError> {
        for c in self.inputs.values_mut() {
            c.finished = true;
        }
        let mut windows = Vec::new();
        self.close_until(Millis::MAX, &mut windows)?;
        Ok(windows)
    }
}

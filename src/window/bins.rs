//! The bins of a window operator: rows routed into their bin's partial
//! aggregate, and bins closed in order of their end once the watermark passes,
//! each window finalised over the partial states of its bins (sessions merge
//! theirs per key first).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::{ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use futures::StreamExt;

use super::{StageBin, WindowFailure, WindowOperator, WindowResult, session};
use crate::core::time::Millis;
use crate::query::RunningStage;

impl WindowOperator {
    /// Streams the accepted rows into their bins' partial aggregates.
    pub(super) fn route(
        &mut self,
        feed: &str,
        batch: &RecordBatch,
        time_col: usize,
        rows: &[(Millis, u32)],
    ) -> Result<(), DataFusionError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Group rows by bin, keeping input order within a bin.
        let mut by_bin: BTreeMap<Millis, Vec<u32>> = BTreeMap::new();
        for &(bin, r) in rows {
            by_bin.entry(bin).or_default().push(r);
        }
        let schema = self
            .table_schemas
            .get(feed)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("no table schema for {feed}")))?;
        for (bin, idx) in by_bin {
            let part = if idx.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(idx))?
            };
            let n = part.num_rows();
            let mut columns: Vec<ArrayRef> = part.columns().to_vec();
            if self.session_gap.is_some() {
                // Sessions are cut per key later; each row keeps its own time.
                let t = part.column(time_col).clone();
                columns.push(t.clone());
                columns.push(t);
            } else {
                columns.push(timestamps(bin, n));
                columns.push(timestamps(self.grid.bin_end(bin), n));
            }
            let routed = RecordBatch::try_new(schema.clone(), columns)?;
            let stage_count = self.query.stages.len();
            let stages = self
                .bins
                .entry(bin)
                .or_insert_with(|| (0..stage_count).map(|_| StageBin::default()).collect());
            for (i, stage) in self.query.stages.iter().enumerate() {
                if !stage.feeds.contains(feed) {
                    continue;
                }
                let sb = &mut stages[i];
                if sb.failed.is_some() {
                    continue;
                }
                if sb.running.is_none() {
                    match self.query.start_stage(i, bin) {
                        Ok(running) => sb.running = Some(running),
                        Err(e) => {
                            sb.failed = Some(e.to_string());
                            continue;
                        }
                    }
                }
                let Some(running) = sb.running.as_mut() else {
                    continue;
                };
                if let Some(senders) = running.senders.get(feed) {
                    for tx in senders {
                        // The receiver lives as long as the stream we hold.
                        let _ = tx.unbounded_send(routed.clone());
                    }
                }
                // A runtime error in the SQL fails this bin's windows, not the pipeline.
                if let Err(e) = poll_ready(running, &mut sb.states) {
                    sb.running = None;
                    sb.failed = Some(e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Closes, in order of their end, every window with data that ends at or
    /// before `wm`; the end of time stops where [`super::Grid::end_of_time`] says.
    pub(super) fn close_until(
        &mut self,
        wm: Millis,
        out: &mut Vec<WindowResult>,
    ) -> Result<(), DataFusionError> {
        if self.session_gap.is_some() {
            return self.close_sessions_until(wm, out);
        }
        let wm = match wm {
            Millis::MAX => {
                let latest = self.inputs.values().filter_map(|c| c.max_time).max();
                self.grid.end_of_time(latest)
            }
            wm => wm,
        };
        // `Millis::MAX` means no open window holds data.
        while self.next_end != Millis::MAX && self.next_end <= wm {
            let end = self.next_end;
            let start = self.grid.window_start(end);
            let mut states: HashMap<usize, Vec<RecordBatch>> = HashMap::new();
            let mut any = false;
            let mut failed: Option<String> = None;
            for (_, stages) in self.bins.range_mut(start..end) {
                any = true;
                for (i, sb) in stages.iter_mut().enumerate() {
                    if let Some(running) = sb.running.take() {
                        // The states change: the checkpoint's copy no longer holds.
                        sb.encoded = None;
                        if let Err(e) = finish_stage(running, &mut sb.states) {
                            sb.failed = Some(e.to_string());
                        }
                    }
                    if let Some(e) = &sb.failed {
                        failed.get_or_insert_with(|| e.clone());
                        continue;
                    }
                    let [ws, we] = self.query.stages[i].window_columns;
                    let list = states.entry(i).or_default();
                    for b in &sb.states {
                        let mut cols = b.columns().to_vec();
                        cols[ws] = timestamps(start, b.num_rows());
                        cols[we] = timestamps(end, b.num_rows());
                        list.push(RecordBatch::try_new(b.schema(), cols)?);
                    }
                }
            }
            if any {
                let result = match failed {
                    Some(e) => Err(e),
                    None => self
                        .finalize(states, start, end, false)
                        .map_err(|e| e.to_string()),
                };
                match result {
                    Ok(window) => out.push(window),
                    Err(error) => self.failures.push(WindowFailure { start, end, error }),
                }
            }
            self.closed_upto = end;
            // A bin is done once the last window holding it has closed.
            let first_kept = self.grid.first_kept(end);
            let keep = self.bins.split_off(&first_kept);
            self.bins = keep;
            self.bin_keys = self.bin_keys.split_off(&first_kept);
            self.next_end = match self.bins.keys().next() {
                None => Millis::MAX,
                Some(&b) => self.grid.bin_end(b).max(self.grid.next_end(end)),
            };
        }
        Ok(())
    }

    /// Runs the final plan over the partial states of a closing window.
    fn finalize(
        &mut self,
        states: HashMap<usize, Vec<RecordBatch>>,
        start: Millis,
        end: Millis,
        per_row: bool,
    ) -> Result<WindowResult, DataFusionError> {
        let _span = tracing::debug_span!("window", pipeline = %self.pipeline, start, end).entered();
        let batches = self
            .runtime
            .block_on(self.query.finish_window(states, start))?;
        let result = WindowResult {
            pipeline: self.pipeline.clone(),
            start,
            end,
            batches: batches.into_iter().filter(|b| b.num_rows() > 0).collect(),
            per_row,
        };
        self.stats.windows_closed += 1;
        self.stats.rows_out += result.num_rows() as u64;
        Ok(result)
    }

    /// Session windows: at each multiple of the gap the watermark passes, sessions
    /// whose end (last event + gap) it has reached are finalised.
    fn close_sessions_until(
        &mut self,
        wm: Millis,
        out: &mut Vec<WindowResult>,
    ) -> Result<(), DataFusionError> {
        let Some(gap) = self.session_gap else {
            return Ok(());
        };
        while self.next_end != Millis::MAX && self.next_end <= wm {
            let check = self.next_end;
            // Bins before the check point hold every row a closing session can have.
            let later = self.bins.split_off(&check);
            let done = std::mem::replace(&mut self.bins, later);
            self.bin_keys = self.bin_keys.split_off(&check);
            let mut rows = std::mem::take(&mut self.open_sessions);
            let mut failed = None;
            for (_, mut stages) in done {
                let sb = &mut stages[0];
                if let Some(running) = sb.running.take()
                    && let Err(e) = finish_stage(running, &mut sb.states)
                {
                    sb.failed = Some(e.to_string());
                }
                if let Some(e) = sb.failed.take() {
                    failed.get_or_insert(e);
                }
                rows.append(&mut sb.states);
            }
            if let Some(error) = failed {
                self.failures.push(WindowFailure {
                    start: check - gap,
                    end: check,
                    error,
                });
            }
            let stage = &self.query.stages[0];
            let keys: Vec<usize> = (0..stage.group_columns)
                .filter(|c| !stage.window_columns.contains(c))
                .collect();
            let split = session::split_sessions(&rows, &keys, stage.window_columns, gap, check)?;
            self.open_sessions.extend(split.open);
            if let Some(closed) = split.closed {
                let states = HashMap::from([(0, vec![closed])]);
                match self.finalize(states, check - gap, check, true) {
                    Ok(window) => out.push(window),
                    Err(e) => self.failures.push(WindowFailure {
                        start: check - gap,
                        end: check,
                        error: e.to_string(),
                    }),
                }
            }
            self.closed_upto = check;
            let has_data = !self.open_sessions.is_empty() || !self.bins.is_empty();
            self.next_end = if has_data {
                self.grid.next_end(check)
            } else {
                Millis::MAX
            };
        }
        Ok(())
    }
}

fn timestamps(value: Millis, n: usize) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_value(value, n).with_timezone("UTC"))
}

/// Lets the partial aggregates take in what was sent, without blocking: they
/// return `Pending` once their channels are empty.
fn poll_ready(
    running: &mut RunningStage,
    states: &mut Vec<RecordBatch>,
) -> Result<(), DataFusionError> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    for stream in &mut running.streams {
        // A partial aggregate may emit early (e.g. under memory pressure); keep what it emits.
        while let Poll::Ready(Some(batch)) = stream.poll_next_unpin(&mut cx) {
            states.push(batch?);
        }
    }
    Ok(())
}

/// Ends a bin segment: closing the channels makes the partial aggregates emit their states.
pub(super) fn finish_stage(
    mut running: RunningStage,
    states: &mut Vec<RecordBatch>,
) -> Result<(), DataFusionError> {
    running.senders.clear();
    for stream in &mut running.streams {
        while let Some(batch) = futures::executor::block_on(stream.next()) {
            let batch = batch?;
            if batch.num_rows() > 0 {
                states.push(batch);
            }
        }
    }
    Ok(())
}
